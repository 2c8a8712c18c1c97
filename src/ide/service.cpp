// The IDE provider's set-up, its API-key gate, status and model-listing routes. See service.h.
#include "ide/service.h"

#include <algorithm>
#include <filesystem>
#include <string>

#include "core/crypto.h"
#include "core/log.h"
#include "ide/detail.h"
#include "model/local.h"
#include "net/http.h"

namespace edgecoder::ide {

namespace stdfs = std::filesystem;
using core::Errc;
using core::make_error;
using detail::json;

std::string_view route_name(Route route) { return route == Route::local ? "local" : "mesh"; }

namespace {

std::vector<std::string> split_list(std::string_view text, char sep) {
  std::vector<std::string> out;
  std::string current;
  auto flush = [&] {
    const auto b = current.find_first_not_of(" \t");
    const auto e = current.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(current.substr(b, e - b + 1));
    current.clear();
  };
  for (char c : text) {
    if (c == sep) {
      flush();
    } else {
      current += c;
    }
  }
  flush();
  return out;
}

core::Result<std::chrono::milliseconds> ms_setting(const core::Settings& s, std::string_view name,
                                                   std::int64_t min, std::int64_t max) {
  auto v = s.get_int(name, min, max);
  if (!v) return v.error();
  return std::chrono::milliseconds(*v);
}

bool is_loopback(std::string_view address) {
  return address.starts_with("127.") || address == "::1" || address == "localhost";
}

}  // namespace

core::Result<IdeOptions> ide_options_from(const core::Config& config) {
  const core::Settings& s = config.settings;
  IdeOptions o;
  o.api_key = s.get_or("IDE_PROVIDER_API_KEY", "");
  auto provider = model::provider_config_from(s);
  if (!provider) return provider.error();
  o.provider = std::move(*provider);

  for (const auto& root : split_list(s.get_or("IDE_PROJECT_ROOTS", ""), ':')) {
    const stdfs::path p(root);
    if (!p.is_absolute()) {
      return make_error(Errc::invalid_argument,
                        "IDE_PROJECT_ROOTS: '" + root + "' is not an absolute path");
    }
    o.project_roots.push_back(p);
  }
  o.route_order.clear();
  for (const auto& name : split_list(s.get_or("IDE_ROUTE_ORDER", "local,mesh"), ',')) {
    Route r;
    if (name == "local") {
      r = Route::local;
    } else if (name == "mesh") {
      r = Route::mesh;
    } else {
      return make_error(Errc::invalid_argument,
                        "IDE_ROUTE_ORDER: unknown route '" + name + "' (use local, mesh)");
    }
    if (std::find(o.route_order.begin(), o.route_order.end(), r) == o.route_order.end()) {
      o.route_order.push_back(r);
    }
  }
  if (o.route_order.empty()) {
    return make_error(Errc::invalid_argument, "IDE_ROUTE_ORDER: name at least one route");
  }
  // The first of COORDINATOR_URL's comma-separated coordinators.
  const auto coordinators = split_list(s.get_or("COORDINATOR_URL", ""), ',');
  o.coordinator_url = coordinators.empty() ? "" : coordinators.front();
  while (!o.coordinator_url.empty() && o.coordinator_url.back() == '/') {
    o.coordinator_url.pop_back();
  }
  o.mesh_token = s.get_or("MESH_AUTH_TOKEN", "");
  if (!o.coordinator_url.empty() && o.mesh_token.empty()) {
    return make_error(Errc::invalid_argument,
                      "COORDINATOR_URL is set but MESH_AUTH_TOKEN is not: the mesh route needs "
                      "the mesh token");
  }
  auto language = s.get_or("IDE_MESH_LANGUAGE", "python");
  if (language != "python" && language != "javascript") {
    return make_error(Errc::invalid_argument, "IDE_MESH_LANGUAGE: python or javascript");
  }
  o.mesh_language = language;
  auto mesh_timeout = ms_setting(s, "IDE_MESH_TIMEOUT_MS", 1'000, 3'600'000);
  if (!mesh_timeout) return mesh_timeout.error();
  o.mesh_timeout = *mesh_timeout;
  auto approval = ms_setting(s, "IDE_APPROVAL_TIMEOUT_MS", 1'000, 3'600'000);
  if (!approval) return approval.error();
  o.approval_timeout = *approval;
  auto steps = s.get_int("IDE_AGENT_MAX_STEPS", 1, 200);
  if (!steps) return steps.error();
  o.max_agent_steps = static_cast<int>(*steps);
  auto sandbox_options = sandbox::options_from_settings(s, config.data_dir);
  if (!sandbox_options) return sandbox_options.error();
  o.sandbox = std::move(*sandbox_options);
  return o;
}

core::Result<void> check_exposure(std::string_view bind_address, const IdeOptions& options,
                                  bool trust_container_network, bool in_container) {
  if (is_loopback(bind_address) || !options.api_key.empty()) return {};
  if (trust_container_network && in_container) return {};
  std::string detail = "the IDE provider would listen on " + std::string(bind_address) +
                       " without IDE_PROVIDER_API_KEY: anyone who can reach the port could read "
                       "and write project files and run commands. Set IDE_PROVIDER_API_KEY (or "
                       "IDE_PROVIDER_API_KEY_FILE), or bind to 127.0.0.1";
  if (trust_container_network && !in_container) {
    detail += " (EDGECODER_TRUST_CONTAINER_NETWORK=1 applies only inside a container)";
  }
  return make_error(Errc::invalid_argument, detail);
}

IdeService::Impl::Impl(IdeOptions o, std::unique_ptr<model::Provider> p,
                       std::unique_ptr<sandbox::Sandbox> s, asio::any_io_executor e,
                       core::metrics::Registry& m)
    : options(std::move(o)),
      provider(std::move(p)),
      sandbox(std::move(s)),
      executor(std::move(e)),
      metrics(m),
      chat_requests(m.counter("edgecoder_ide_chat_requests_total",
                              "Chat and generate requests to the IDE provider")),
      chat_failures(m.counter("edgecoder_ide_chat_failures_total",
                              "IDE chat requests no route could answer")),
      tool_calls(m.counter("edgecoder_ide_tool_calls_total", "Tools run by /v1/ide/chat")),
      approvals_denied(m.counter("edgecoder_ide_approvals_denied_total",
                                 "Tool calls rejected, timed out or abandoned")) {}

json IdeService::Impl::router_status() const {
  std::lock_guard lock(mu);
  json order = json::array();
  for (Route r : options.route_order) order.push_back(route_name(r));
  json routes = json::object();
  for (const auto& [route, c] : route_counters) {
    routes[std::string(route_name(route))] = {
        {"requests", c.requests}, {"failures", c.failures}, {"fallbacks", c.fallbacks}};
  }
  return {{"activeConcurrent", active_local.load()},
          {"concurrencyCap", 0},
          {"localLatencyP95Ms", local_latency.p95()},
          {"latencyThresholdMs", 0},
          {"latencySamples", local_latency.samples},
          {"bluetoothEnabled", false},
          {"swarmEnabled", mesh_configured()},
          {"routeOrder", order},
          {"routes", routes},
          {"meshModel", options.mesh_model},
          {"localProvider", model::provider_kind_name(provider->kind())},
          {"localModel", provider->config().model},
          {"localIsLlm", provider->is_llm()},
          {"sandbox", sandbox ? std::string(sandbox::mode_name(sandbox->mode())) : "unavailable"},
          {"projectRoots", [&] {
             json a = json::array();
             for (const auto& p : options.project_roots) a.push_back(p.string());
             return a;
           }()}};
}

void IdeService::Impl::count(Route route, bool started, bool fell_back) {
  std::lock_guard lock(mu);
  auto& c = route_counters[route];
  if (started) {
    ++c.requests;
  } else {
    ++c.failures;
  }
  if (fell_back) ++c.fallbacks;
}

namespace detail {

namespace {

// The API key gate: every route but the public ones needs `Authorization: Bearer <key>` (OpenAI
// and Ollama clients send it so) or `x-api-key`.
std::optional<net::Response> check_key(const IdeService::Impl& self, const net::Request& r) {
  if (self.options.api_key.empty()) return std::nullopt;
  if (r.path == "/health" || r.path == "/ready") return std::nullopt;
  std::string_view presented = net::bearer_token(r);
  if (presented.empty()) {
    if (auto key = r.header("x-api-key")) presented = *key;
  }
  if (!presented.empty() && core::crypto::constant_time_equal(presented, self.options.api_key)) {
    return std::nullopt;
  }
  const std::string message = presented.empty()
                                  ? "This IDE provider needs an API key: send Authorization: "
                                    "Bearer <IDE_PROVIDER_API_KEY>."
                                  : "Incorrect API key provided.";
  if (r.path.starts_with("/api/")) return ollama_error(401, message);
  auto response = openai_error(401, message, "invalid_request_error", "invalid_api_key");
  response.set_header("WWW-Authenticate", "Bearer");
  return response;
}

json openai_model(const std::string& id, const std::string& owner, std::int64_t context,
                  bool tools) {
  return {
      {"id", id},
      {"object", "model"},
      {"created", unix_seconds()},
      {"owned_by", owner},
      {"context_length", context},
      {"capabilities", tools ? json::array({"completion", "tools"}) : json::array({"completion"})},
      {"supports_tools", tools}};
}

// Context length and tool support of a local model, from the model server's /api/show when it
// says (Ollama), else the conservative defaults. An answer is reused for kModelTraitsTtl while
// the model's size in the listing stays the same; a failed /api/show is asked again next time.
constexpr auto kModelTraitsTtl = std::chrono::minutes(10);

asio::awaitable<detail::ModelTraits> model_traits(ImplPtr self, model::ModelInfo listed) {
  detail::ModelTraits traits;
  traits.size_bytes = listed.size_bytes;
  traits.at = Clock::now();
  if (!self->provider->is_llm()) {
    traits.context_length = 8192;
    co_return traits;
  }
  {
    std::lock_guard lock(self->mu);
    auto it = self->traits_cache.find(listed.name);
    if (it != self->traits_cache.end() && it->second.size_bytes == listed.size_bytes &&
        traits.at - it->second.at < kModelTraitsTtl) {
      co_return it->second;
    }
  }
  auto call = self->provider->show_model(listed.name);
  auto info = co_await std::move(call);
  if (!info) {
    traits.context_length = 4096;
    traits.tools = true;
    co_return traits;
  }
  traits.context_length = info->context_length > 0 ? info->context_length : 4096;
  traits.tools = info->capabilities.empty() ||
                 std::find(info->capabilities.begin(), info->capabilities.end(), "tools") !=
                     info->capabilities.end();
  {
    std::lock_guard lock(self->mu);
    self->traits_cache[listed.name] = traits;
  }
  co_return traits;
}

asio::awaitable<net::Response> handle_v1_models(ImplPtr self, net::Request) {
  auto call = self->provider->list_models();
  auto models = co_await std::move(call);
  json data = json::array();
  if (models) {
    for (const auto& m : *models) {
      auto traits_call = model_traits(self, m);
      auto traits = co_await std::move(traits_call);
      data.push_back(openai_model(m.name, self->provider->is_llm() ? "local" : "edgecoder-local",
                                  traits.context_length, traits.tools));
    }
  }
  if (self->mesh_configured())
    data.push_back(openai_model(self->options.mesh_model, "mesh", 8192, false));
  if (!models && data.empty()) {
    co_return openai_error(model_error_status(models.error()), models.error().detail, "api_error",
                           models.error().wire());
  }
  co_return net::Response::json(200, {{"object", "list"}, {"data", data}});
}

json ollama_details(const model::ModelInfo& m) {
  char size[32];
  std::snprintf(size, sizeof size, "%.1fB", m.param_size_b);
  return {{"parent_model", ""},
          {"format", "gguf"},
          {"family", m.family},
          {"families", m.family.empty() ? json::array() : json::array({m.family})},
          {"parameter_size", m.param_size_b > 0 ? std::string(size) : std::string()},
          {"quantization_level", m.quantization}};
}

asio::awaitable<net::Response> handle_api_tags(ImplPtr self, net::Request) {
  auto call = self->provider->list_models();
  auto models = co_await std::move(call);
  json list = json::array();
  if (models) {
    for (const auto& m : *models) {
      list.push_back({{"name", m.name},
                      {"model", m.name},
                      {"modified_at", "1970-01-01T00:00:00Z"},
                      {"size", m.size_bytes},
                      {"digest", ""},
                      {"details", ollama_details(m)}});
    }
  }
  if (self->mesh_configured()) {
    model::ModelInfo mesh;
    mesh.name = self->options.mesh_model;
    list.push_back({{"name", mesh.name},
                    {"model", mesh.name},
                    {"modified_at", "1970-01-01T00:00:00Z"},
                    {"size", 0},
                    {"digest", ""},
                    {"details", ollama_details(mesh)}});
  }
  if (!models && list.empty()) {
    co_return ollama_error(model_error_status(models.error()), models.error().detail);
  }
  co_return net::Response::json(200, {{"models", list}});
}

asio::awaitable<net::Response> handle_api_show(ImplPtr self, net::Request request) {
  auto body = net::parse_json_body(request);
  if (!body) co_return ollama_error(400, body.error().detail);
  std::string name;
  for (const char* key : {"model", "name"}) {
    if (auto it = body->find(key); it != body->end() && it->is_string())
      name = it->get<std::string>();
    if (!name.empty()) break;
  }
  if (name.empty()) co_return ollama_error(400, "model is required");
  if (name == self->options.mesh_model && self->mesh_configured()) {
    model::ModelInfo mesh;
    mesh.name = name;
    co_return net::Response::json(200,
                                  {{"modelfile", ""},
                                   {"parameters", ""},
                                   {"template", ""},
                                   {"details", ollama_details(mesh)},
                                   {"model_info", {{"general.architecture", "edgecoder-mesh"}}},
                                   {"capabilities", json::array({"completion"})}});
  }
  auto call = self->provider->show_model(name);
  auto info = co_await std::move(call);
  if (!info) {
    if (info.error().code == Errc::not_found) {
      co_return ollama_error(404, "model '" + name + "' not found");
    }
    co_return ollama_error(model_error_status(info.error()), info.error().detail);
  }
  const std::string arch = info->family.empty() ? "unknown" : info->family;
  json model_info = {{"general.architecture", arch}};
  if (info->context_length > 0) model_info[arch + ".context_length"] = info->context_length;
  json capabilities = json::array();
  for (const auto& c : info->capabilities) capabilities.push_back(c);
  if (capabilities.empty()) capabilities.push_back("completion");
  co_return net::Response::json(200, {{"modelfile", ""},
                                      {"parameters", ""},
                                      {"template", ""},
                                      {"details", ollama_details(*info)},
                                      {"model_info", model_info},
                                      {"capabilities", capabilities}});
}

}  // namespace

void add_status_routes(ImplPtr self, net::Router& router) {
  router.use([self](const net::Request& r) { return check_key(*self, r); });
  for (const char* path : {"/status", "/v1/router/status"}) {
    router.add_sync("GET", path, [self](const net::Request&) {
      return net::Response::json(200, self->router_status());
    });
  }
  router.add("GET", "/v1/models",
             [self](net::Request r) { return handle_v1_models(self, std::move(r)); });
  router.add("GET", "/api/tags",
             [self](net::Request r) { return handle_api_tags(self, std::move(r)); });
  router.add("POST", "/api/show",
             [self](net::Request r) { return handle_api_show(self, std::move(r)); });
  router.add_sync("GET", "/api/version", [](const net::Request&) {
    // The Ollama API version whose routes and shapes this endpoint follows.
    return net::Response::json(200, {{"version", "0.6.0"}});
  });
  router.add_sync("GET", "/models", [self](const net::Request&) {
    return net::Response::json(
        200, {{"providers", json::array({model::provider_kind_name(self->provider->kind())})}});
  });
  router.add_sync("GET", "/model/pull/progress", [](const net::Request&) {
    return net::Response::json(200, {{"status", "idle"}});
  });
}

}  // namespace detail

IdeService::IdeService(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

IdeService::~IdeService() = default;

core::Result<std::shared_ptr<IdeService>> IdeService::create(IdeOptions options,
                                                             asio::any_io_executor executor,
                                                             core::metrics::Registry& metrics) {
  auto provider = model::make_provider(options.provider, executor, &metrics);
  if (!provider) return provider.error();
  std::unique_ptr<sandbox::Sandbox> box;
  if (options.sandbox) {
    auto made = sandbox::make_sandbox(*options.sandbox);
    if (made) {
      box = std::move(*made);
    } else {
      core::log::warn("ide", "sandbox_unavailable",
                      {{"detail", made.error().detail},
                       {"effect", "/run does not run code and the run_shell tool is off"}});
    }
  }
  return create_with(std::move(options), std::move(*provider), std::move(box), executor, metrics);
}

std::shared_ptr<IdeService> IdeService::create_with(IdeOptions options,
                                                    std::unique_ptr<model::Provider> provider,
                                                    std::unique_ptr<sandbox::Sandbox> sandbox,
                                                    asio::any_io_executor executor,
                                                    core::metrics::Registry& metrics) {
  auto impl = std::make_shared<Impl>(std::move(options), std::move(provider), std::move(sandbox),
                                     std::move(executor), metrics);
  return std::shared_ptr<IdeService>(new IdeService(std::move(impl)));
}

void IdeService::add_routes(net::Router& router) {
  detail::add_status_routes(impl_, router);
  detail::add_chat_routes(impl_, router);
  detail::add_agent_routes(impl_, router);
  detail::add_run_routes(impl_, router);
}

void IdeService::stop() {
  if (impl_->stopping.exchange(true)) return;
  impl_->provider->release_connections();
  std::lock_guard lock(impl_->mu);
  for (auto& [id, pending] : impl_->approvals) {
    pending.decision->store(2);
    asio::post(pending.executor, [timer = pending.timer] { timer->cancel(); });
  }
  impl_->approvals.clear();
}

core::Result<Mounted> mount(const core::Config& config, asio::io_context& io, net::Router& router,
                            core::metrics::Registry& registry) {
  auto options = ide_options_from(config);
  if (!options) return options.error();
  auto trust = config.settings.get_bool("EDGECODER_TRUST_CONTAINER_NETWORK");
  if (!trust) return trust.error();
  const bool in_container = stdfs::exists("/.dockerenv") || stdfs::exists("/run/.containerenv");
  if (auto ok = check_exposure(config.bind_address, *options, *trust, in_container); !ok) {
    return ok.error();
  }
  if (options->project_roots.empty()) {
    core::log::info("ide", "tools_disabled",
                    {{"detail", "IDE_PROJECT_ROOTS is empty: /v1/ide/chat tools have no project"}});
  }
  const model::ProviderConfig provider = options->provider;
  core::log::info("ide", "model_provider",
                  {{"provider", model::provider_kind_name(provider.kind)},
                   {"url", provider.base_url},
                   {"model", provider.model},
                   {"mesh", options->coordinator_url.empty() ? "off" : options->coordinator_url}});
  if (provider.kind == model::ProviderKind::edgecoder_local) {
    core::log::warn("ide", "model_provider_offline_stub", {{"detail", model::kLocalLabel}});
  }
  auto service = IdeService::create(std::move(*options), io.get_executor(), registry);
  if (!service) return service.error();
  std::shared_ptr<IdeService> s = std::move(*service);
  s->add_routes(router);
  Mounted mounted;
  mounted.on_drain = [s] { s->stop(); };
  mounted.state = std::move(s);
  return mounted;
}

}  // namespace edgecoder::ide

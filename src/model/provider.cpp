// Provider configuration, the factory, shared helpers of the HTTP providers, and the metrics
// probe. The providers themselves live in ollama.cpp, openai.cpp and local.cpp.
#include "model/provider.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <nlohmann/json.hpp>

#include "model/provider_detail.h"

namespace edgecoder::model {

// Factories of the three providers (defined in their .cpp files).
namespace detail {
std::unique_ptr<Provider> make_ollama(ProviderConfig config, asio::any_io_executor executor,
                                      std::shared_ptr<ModelProbe> probe);
std::unique_ptr<Provider> make_openai(ProviderConfig config, asio::any_io_executor executor,
                                      std::shared_ptr<ModelProbe> probe);
std::unique_ptr<Provider> make_local(ProviderConfig config);
}  // namespace detail

namespace provider_detail {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Adds http:// to a bare host[:port] (OLLAMA_HOST's own convention), maps the listen-everywhere
// addresses `ollama serve` accepts to loopback, and drops trailing slashes.
std::string normalise_base_url(std::string url, bool bare_ok) {
  if (bare_ok && url.find("://") == std::string::npos) {
    // `ollama serve` reads OLLAMA_HOST=host[:port] with 11434 as the default port.
    const bool has_port = !url.empty() && url.front() == '[' ? url.find("]:") != std::string::npos
                                                             : url.find(':') != std::string::npos;
    url = "http://" + url + (has_port ? "" : ":11434");
  }
  for (std::string_view any : {"://0.0.0.0", "://[::]"}) {
    const auto at = url.find(any);
    if (at != std::string::npos) {
      url.replace(at, any.size(), any == "://0.0.0.0" ? "://127.0.0.1" : "://[::1]");
    }
  }
  while (url.size() > 1 && url.back() == '/') url.pop_back();
  return url;
}

core::Result<std::chrono::milliseconds> duration_setting(const core::Settings& settings,
                                                         std::string_view name, std::int64_t max) {
  auto v = settings.get_int(name, 1, max);
  if (!v) return v.error();
  return std::chrono::milliseconds(*v);
}

}  // namespace provider_detail

core::Error model_unavailable(std::string detail) {
  return core::Error(core::Errc::unavailable, std::string(kModelUnavailable), std::move(detail));
}
core::Error model_not_found(std::string detail) {
  return core::Error(core::Errc::not_found, std::string(kModelNotFound), std::move(detail));
}
core::Error model_timeout(std::string detail) {
  return core::Error(core::Errc::timeout, std::string(kModelTimeout), std::move(detail));
}

std::string_view provider_kind_name(ProviderKind kind) {
  switch (kind) {
    case ProviderKind::edgecoder_local:
      return "edgecoder-local";
    case ProviderKind::ollama:
      return "ollama-local";
    case ProviderKind::openai:
      return "openai";
  }
  return "edgecoder-local";
}

std::optional<ProviderKind> parse_provider_kind(std::string_view name) {
  const std::string n = provider_detail::lower(name);
  if (n == "edgecoder-local") return ProviderKind::edgecoder_local;
  if (n == "ollama-local" || n == "ollama") return ProviderKind::ollama;
  if (n == "openai") return ProviderKind::openai;
  return std::nullopt;
}

core::Result<ProviderConfig> provider_config_from(const core::Settings& settings) {
  ProviderConfig config;
  const std::string kind_text = settings.get_or("LOCAL_MODEL_PROVIDER", "edgecoder-local");
  const auto kind = parse_provider_kind(kind_text);
  if (!kind) {
    return core::make_error(core::Errc::invalid_argument,
                            "LOCAL_MODEL_PROVIDER: unknown provider '" + kind_text +
                                "'; valid: edgecoder-local, ollama-local (alias ollama), openai");
  }
  config.kind = *kind;

  auto connect = provider_detail::duration_setting(settings, "MODEL_CONNECT_TIMEOUT_MS", 3'600'000);
  if (!connect) return connect.error();
  auto first =
      provider_detail::duration_setting(settings, "MODEL_FIRST_TOKEN_TIMEOUT_MS", 86'400'000);
  if (!first) return first.error();
  auto total = provider_detail::duration_setting(settings, "MODEL_TOTAL_TIMEOUT_MS", 86'400'000);
  if (!total) return total.error();
  config.timeouts.connect = *connect;
  config.timeouts.first_token = *first;
  config.timeouts.total = *total;

  std::string url_setting;
  switch (config.kind) {
    case ProviderKind::edgecoder_local:
      config.model = "edgecoder-local";
      config.coordinator_model = "edgecoder-local";
      return config;
    case ProviderKind::ollama:
      url_setting = "OLLAMA_HOST";
      config.base_url = provider_detail::normalise_base_url(
          settings.get_or("OLLAMA_HOST", "http://127.0.0.1:11434"), true);
      config.model = settings.get_or("OLLAMA_MODEL", "qwen3.5:9b");
      config.coordinator_model = settings.get_or("OLLAMA_COORDINATOR_MODEL", config.model);
      break;
    case ProviderKind::openai:
      url_setting = "OPENAI_BASE_URL";
      config.base_url = provider_detail::normalise_base_url(
          settings.get_or("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1"), false);
      config.api_key = settings.get_or("OPENAI_API_KEY", "");
      config.model = settings.get_or("OPENAI_MODEL", "");
      config.coordinator_model = settings.get_or("OPENAI_COORDINATOR_MODEL", config.model);
      break;
  }
  const auto sep = config.base_url.find("://");
  const std::string scheme = sep == std::string::npos
                                 ? std::string()
                                 : provider_detail::lower(config.base_url.substr(0, sep));
  if ((scheme != "http" && scheme != "https") || sep + 3 >= config.base_url.size()) {
    return core::make_error(
        core::Errc::invalid_argument,
        url_setting + ": expected an http:// or https:// URL, got '" + config.base_url + "'");
  }
  return config;
}

core::Result<std::unique_ptr<Provider>> make_provider(ProviderConfig config,
                                                      asio::any_io_executor executor,
                                                      core::metrics::Registry* metrics) {
  if (config.coordinator_model.empty()) config.coordinator_model = config.model;
  auto probe = std::make_shared<detail::ModelProbe>(metrics, provider_kind_name(config.kind));
  switch (config.kind) {
    case ProviderKind::edgecoder_local:
      return detail::make_local(std::move(config));
    case ProviderKind::ollama:
      return detail::make_ollama(std::move(config), std::move(executor), std::move(probe));
    case ProviderKind::openai:
      return detail::make_openai(std::move(config), std::move(executor), std::move(probe));
  }
  return core::make_error(core::Errc::invalid_argument, "unknown provider kind");
}

asio::awaitable<core::Result<std::string>> collect(std::unique_ptr<TokenStream> stream) {
  std::string text;
  for (;;) {
    auto read = stream->next();
    auto piece = co_await std::move(read);
    if (!piece) co_return piece.error();
    if (!*piece) break;
    for (const auto& token : **piece) text += token;
  }
  co_return text;
}

double parse_param_size(std::string_view text) {
  // The first number, then an optional unit letter: B = billions, M = millions, K = thousands.
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) == 0) ++i;
  if (i == text.size()) return 0;
  const std::string rest(text.substr(i));
  char* end = nullptr;
  const double value = std::strtod(rest.c_str(), &end);
  std::string_view after(end);
  while (!after.empty() && after.front() == ' ') after.remove_prefix(1);
  if (after.empty()) return 0;
  switch (after.front()) {
    case 'B':
    case 'b':
      return value;
    case 'M':
    case 'm':
      return value / 1000.0;
    case 'K':
    case 'k':
      return value / 1'000'000.0;
    default:
      return 0;
  }
}

namespace detail {

ModelProbe::ModelProbe(core::metrics::Registry* registry, std::string_view provider)
    : registry_(registry), provider_(provider) {
  if (registry_ != nullptr) {
    first_token_ = &registry_->histogram(
        "edgecoder_model_first_token_seconds",
        "Seconds from a model request to the first line of its answer", {{"provider", provider_}});
  }
}

void ModelProbe::request_done(std::string_view op, std::string_view outcome) {
  if (registry_ == nullptr) return;
  registry_
      ->counter(
          "edgecoder_model_requests_total", "Model server requests by operation and outcome",
          {{"provider", provider_}, {"op", std::string(op)}, {"outcome", std::string(outcome)}})
      .inc();
}

void ModelProbe::first_token(Clock::duration after_request) {
  if (first_token_ != nullptr) {
    first_token_->observe(std::chrono::duration<double>(after_request).count());
  }
}

LoopClients::LoopClients(asio::any_io_executor home, net::ClientOptions options)
    : options_(std::move(options)) {
  const asio::execution_context* key = &asio::query(home, asio::execution::context);
  clients_.emplace(key, std::make_shared<net::HttpClient>(std::move(home), options_));
}

std::shared_ptr<net::HttpClient> LoopClients::for_executor(const asio::any_io_executor& executor) {
  const asio::execution_context* key = &asio::query(executor, asio::execution::context);
  std::lock_guard lock(mu_);
  if (closed_) {
    net::ClientOptions no_pool = options_;
    no_pool.max_idle_per_host = 0;
    return std::make_shared<net::HttpClient>(executor, no_pool);
  }
  auto& slot = clients_[key];
  if (!slot) slot = std::make_shared<net::HttpClient>(executor, options_);
  return slot;
}

void LoopClients::close() {
  std::map<const asio::execution_context*, std::shared_ptr<net::HttpClient>> dropped;
  std::lock_guard lock(mu_);
  closed_ = true;
  dropped.swap(clients_);
}

std::string_view outcome_of(const core::Error& error) {
  const std::string_view wire = error.wire();
  if (wire == kModelNotFound || wire == kModelTimeout || wire == kModelUnavailable) return wire;
  return "error";
}

net::ClientOptions model_client_options(const Timeouts& t) {
  net::ClientOptions options;
  options.connect_timeout = t.connect;
  options.first_byte_timeout = t.first_token;
  options.total_timeout = t.total;
  // Keep a connection per concurrent stream: a burst of chats would otherwise pay a TCP (or TLS)
  // connect for every stream beyond the default 8.
  options.max_idle_per_host = 64;
  return options;
}

core::Error from_client_error(const core::Error& error, std::string_view what) {
  if (error.code == core::Errc::timeout) {
    return model_timeout(std::string(what) + ": " + error.detail);
  }
  return model_unavailable(std::string(what) + ": " + error.detail);
}

asio::awaitable<std::string> read_bounded(net::ClientStream* stream, std::size_t limit) {
  std::string body;
  while (body.size() < limit) {
    auto read = stream->next();
    auto piece = co_await std::move(read);
    if (!piece || !*piece) break;
    body.append(**piece, 0, limit - body.size());
  }
  co_return body;
}

std::string error_text(std::string_view body) {
  const auto json = nlohmann::json::parse(body, nullptr, false);
  if (!json.is_discarded() && json.is_object()) {
    if (auto it = json.find("error"); it != json.end()) {
      if (it->is_string()) return it->get<std::string>();
      if (it->is_object()) {
        if (auto m = it->find("message"); m != it->end() && m->is_string()) {
          return m->get<std::string>();
        }
      }
    }
    if (auto m = json.find("message"); m != json.end() && m->is_string()) {
      return m->get<std::string>();
    }
    if (auto d = json.find("detail"); d != json.end() && d->is_string()) {
      return d->get<std::string>();
    }
  }
  constexpr std::size_t kMax = 300;
  std::string text(body.substr(0, kMax));
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

core::Error from_http_status(int status, std::string_view body, std::string_view what) {
  std::string text = error_text(body);
  const std::string detail = std::string(what) + ": HTTP " + std::to_string(status) +
                             (text.empty() ? std::string() : ": " + text);
  if (status == 404) {
    const std::string lower = provider_detail::lower(text);
    if (lower.find("model") != std::string::npos) return model_not_found(detail);
    return model_unavailable(detail + " (is the base URL right?)");
  }
  if (status == 401 || status == 403) {
    return model_unavailable(detail + " (check the API key)");
  }
  return model_unavailable(detail);
}

asio::awaitable<core::Result<nlohmann::json>> fetch_json(std::shared_ptr<net::HttpClient> client,
                                                         net::ClientRequest request,
                                                         std::string what, ModelProbe* probe,
                                                         std::string op) {
  constexpr int kAttempts = 2;
  constexpr auto kPause = std::chrono::milliseconds(200);
  std::optional<core::Error> last;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (attempt > 0) {
      const asio::any_io_executor executor = co_await asio::this_coro::executor;
      asio::steady_timer timer(executor, kPause);
      auto wait = timer.async_wait(asio::as_tuple(asio::use_awaitable));
      co_await std::move(wait);
    }
    net::ClientRequest copy = request;
    auto call = client->request(std::move(copy));
    auto response = co_await std::move(call);
    if (!response) {
      last = from_client_error(response.error(), what);
      if (last->code == core::Errc::unavailable) continue;
      break;
    }
    if (response->status < 200 || response->status > 299) {
      last = from_http_status(response->status, response->body, what);
      break;
    }
    auto json = nlohmann::json::parse(response->body, nullptr, false);
    if (json.is_discarded()) {
      last = model_unavailable(what + ": the model server answered with malformed JSON");
      break;
    }
    probe->request_done(op, "ok");
    co_return json;
  }
  probe->request_done(op, outcome_of(*last));
  co_return *last;
}

HttpTokenStream::HttpTokenStream(std::unique_ptr<net::ClientStream> body,
                                 std::shared_ptr<ModelProbe> probe, std::string op,
                                 std::string what, Clock::time_point started,
                                 std::chrono::milliseconds first_token_timeout)
    : body_(std::move(body)),
      probe_(std::move(probe)),
      op_(std::move(op)),
      what_(std::move(what)),
      started_(started),
      first_deadline_(started + first_token_timeout),
      first_token_timeout_(first_token_timeout) {}

HttpTokenStream::~HttpTokenStream() {
  if (!finished_) probe_->request_done(op_, "cancelled");
}

void HttpTokenStream::mark_activity() {
  if (!active_) {
    active_ = true;
    probe_->first_token(Clock::now() - started_);
  }
}

// What a server sends after saying it has finished (Ollama's chunk terminator, OpenAI's after
// [DONE]) is read here, off the reply's path, so that the connection goes back to the pool.
asio::awaitable<void> drain_after_done(std::unique_ptr<net::ClientStream> body) {
  constexpr std::size_t kDrainLimit = 64 * 1024;
  constexpr auto kDrainTimeout = std::chrono::seconds(5);
  auto read = read_bounded(body.get(), kDrainLimit);
  auto raced = before_deadline(std::move(read), Clock::now() + kDrainTimeout);
  co_await std::move(raced);
}

void HttpTokenStream::finish(std::string_view outcome) {
  finished_ = true;
  body_.reset();  // an unfinished body drops its connection: the model server stops generating
  probe_->request_done(op_, outcome);
}

asio::awaitable<core::Result<std::optional<std::vector<std::string>>>> HttpTokenStream::next() {
  if (failed_) co_return *failed_;
  if (pending_error_) {
    failed_ = std::move(pending_error_);
    pending_error_.reset();
    finish(outcome_of(*failed_));
    co_return *failed_;
  }
  if (finished_) co_return std::nullopt;
  std::vector<std::string> tokens;
  for (;;) {
    std::optional<core::Result<std::optional<std::string>>> piece;
    if (!active_) {
      // Before the first line the read races the first-token deadline; afterwards only the
      // client's total timeout applies (no extra timer per token: relay latency matters).
      auto read = body_->next();
      auto race = before_deadline(std::move(read), first_deadline_);
      auto raced = co_await std::move(race);
      if (!raced) {
        failed_ = model_timeout(what_ + ": no answer within the first-token timeout (" +
                                std::to_string(first_token_timeout_.count()) + " ms)");
        finish(kModelTimeout);
        co_return *failed_;
      }
      piece.emplace(std::move(*raced));
    } else {
      auto read = body_->next();
      piece.emplace(co_await std::move(read));
    }
    if (!*piece) {
      failed_ = from_client_error(piece->error(), what_);
      finish(outcome_of(*failed_));
      co_return *failed_;
    }
    const bool end = !piece->value().has_value();
    core::Result<void> consumed = end ? consume(nullptr, tokens) : consume(&***piece, tokens);
    if (!consumed) {
      if (!tokens.empty()) {
        pending_error_ = consumed.error();
        co_return std::optional<std::vector<std::string>>(std::move(tokens));
      }
      failed_ = consumed.error();
      finish(outcome_of(*failed_));
      co_return *failed_;
    }
    if (end) {
      if (!done_) {
        pending_error_ = model_unavailable(
            what_ + ": the model server closed the stream before the answer was complete");
      } else {
        finish("ok");
      }
      if (!tokens.empty()) co_return std::optional<std::vector<std::string>>(std::move(tokens));
      if (pending_error_) {
        failed_ = std::move(pending_error_);
        pending_error_.reset();
        finish(outcome_of(*failed_));
        co_return *failed_;
      }
      co_return std::nullopt;
    }
    if (done_) {
      // The answer is complete: the reply need not wait for the end of the HTTP body.
      auto body = std::move(body_);
      finish("ok");
      const asio::any_io_executor executor = co_await asio::this_coro::executor;
      asio::co_spawn(executor, drain_after_done(std::move(body)), asio::detached);
      if (!tokens.empty()) co_return std::optional<std::vector<std::string>>(std::move(tokens));
      co_return std::nullopt;
    }
    if (!tokens.empty()) co_return std::optional<std::vector<std::string>>(std::move(tokens));
  }
}

std::string make_tool_call_id() {
  thread_local std::mt19937 rng{std::random_device{}()};
  constexpr std::string_view kHex = "0123456789abcdef";
  std::string id = "call_";
  for (int i = 0; i < 8; ++i) id += kHex[rng() % kHex.size()];
  return id;
}

nlohmann::json& ToolCalls::slot(std::optional<std::int64_t> index, const std::string& id) {
  if (calls_.is_null()) calls_ = nlohmann::json::array();
  if (index) {
    if (auto it = by_index_.find(*index); it != by_index_.end()) return calls_[it->second];
  } else if (!id.empty()) {
    for (auto& call : calls_) {
      if (call.value("id", std::string()) == id) return call;
    }
  }
  if (index) by_index_[*index] = calls_.size();
  calls_.push_back({{"id", id.empty() ? make_tool_call_id() : id},
                    {"type", "function"},
                    {"function", {{"name", ""}, {"arguments", ""}}}});
  return calls_.back();
}

void ToolCalls::add_openai(const nlohmann::json& entry, std::size_t position) {
  if (!entry.is_object()) return;
  std::optional<std::int64_t> index;
  std::string id;
  if (auto i = entry.find("index"); i != entry.end() && i->is_number_integer()) {
    index = i->get<std::int64_t>();
  }
  if (auto i = entry.find("id"); i != entry.end() && i->is_string()) id = i->get<std::string>();
  // Without an index, a fragment is a whole call (matched by id) or keeps its array position.
  if (!index && id.empty()) index = static_cast<std::int64_t>(position);
  nlohmann::json& call = slot(index, id);
  if (!id.empty()) call["id"] = id;
  if (auto t = entry.find("type"); t != entry.end() && t->is_string() && !t->empty()) {
    call["type"] = *t;
  }
  auto f = entry.find("function");
  if (f == entry.end() || !f->is_object()) return;
  nlohmann::json& function = call["function"];
  if (auto n = f->find("name"); n != f->end() && n->is_string() && !n->empty()) {
    function["name"] = *n;
  }
  if (auto a = f->find("arguments"); a != f->end()) {
    auto& text = function["arguments"].get_ref<std::string&>();
    if (a->is_string()) {
      text += a->get_ref<const std::string&>();
    } else if (!a->is_null() && text.empty()) {
      text = a->dump();  // a server that sends the arguments as an object
    }
  }
}

void ToolCalls::add_ollama(const nlohmann::json& entry) {
  if (!entry.is_object()) return;
  std::string id;
  if (auto i = entry.find("id"); i != entry.end() && i->is_string()) id = i->get<std::string>();
  std::string name;
  std::string arguments = "{}";
  if (auto f = entry.find("function"); f != entry.end() && f->is_object()) {
    name = f->value("name", std::string());
    if (auto a = f->find("arguments"); a != f->end() && !a->is_null()) {
      arguments = a->is_string() ? a->get<std::string>() : a->dump();
    }
  }
  if (calls_.is_null()) calls_ = nlohmann::json::array();
  calls_.push_back(
      {{"id", id.empty() ? make_tool_call_id() : id},
       {"type", "function"},
       {"function", {{"name", std::move(name)}, {"arguments", std::move(arguments)}}}});
}

std::string join_url(std::string_view base, std::string_view path) {
  std::string url(base);
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += path;
  return url;
}

}  // namespace detail

}  // namespace edgecoder::model

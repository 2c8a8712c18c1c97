// mount(): options, the store, the role middleware (ARCHITECTURE.md §6), the lease sweeper, and
// the helpers the route files share.
#include <chrono>
#include <cstdlib>
#include <utility>

#include "api/coordinator.h"
#include "coordinator/coordinator.h"
#include "coordinator/service.h"
#include "core/crypto.h"
#include "core/log.h"

namespace edgecoder::coordinator {

namespace {

core::Result<std::int64_t> options_int(const core::Config& config, std::string_view name,
                                       std::int64_t fallback, std::int64_t min, std::int64_t max) {
  if (!config.settings.has(name) && core::find_setting(name) == nullptr) return fallback;
  return config.settings.get_int(name, min, max);
}

bool token_ok(const Service& svc, std::string_view presented, const std::string& expected) {
  if (expected.empty()) return svc.options.insecure_dev;
  return core::crypto::constant_time_equal(presented, expected);
}

enum class RouteRole { open, self_authenticating, mesh, admin, mesh_or_admin };

// Which credential a route needs. Routes not named here are mesh routes; the later agent
// signature check (Ed25519, §5.2) slots in as a second middleware for the agent routes.
RouteRole route_role(const std::string& method, const std::string& route) {
  if (route == "/health" || route == "/ready" || route == "/metrics" || route == "/identity" ||
      route == "/health/runtime") {
    return RouteRole::open;
  }
  // /mesh/ws checks the mesh token itself: upstream agents send it as ?token=.
  if (route == "/register" || route == "/mesh/ws") return RouteRole::self_authenticating;
  if (route.rfind("/admin/", 0) == 0) return RouteRole::admin;
  if (method == "GET" && route == "/agent/diagnostics/:agentId") return RouteRole::mesh_or_admin;
  // Blacklist changes are operator actions; agents and operators both read it.
  if (route.rfind("/security/", 0) == 0) {
    return method == "GET" ? RouteRole::mesh_or_admin : RouteRole::admin;
  }
  return RouteRole::mesh;
}

net::Middleware make_auth_middleware(std::shared_ptr<const Service> svc) {
  return [svc](const net::Request& request) -> std::optional<net::Response> {
    switch (route_role(request.method, request.route)) {
      case RouteRole::open:
      case RouteRole::self_authenticating:
        return std::nullopt;
      case RouteRole::admin:
        return net::check_operator(svc->options.operator_gate, request);
      case RouteRole::mesh_or_admin:
        if (has_mesh_token(*svc, request)) return std::nullopt;
        return net::check_operator(svc->options.operator_gate, request);
      case RouteRole::mesh:
        if (has_mesh_token(*svc, request)) return std::nullopt;
        return error_response(401, "mesh_unauthorized",
                              "this route needs x-mesh-token with MESH_AUTH_TOKEN");
    }
    return std::nullopt;
  };
}

// All-in-one: the node's own agent registers with the token the node generated for it
// (core::kSelfAgentTokenSetting); make sure this coordinator knows it. A new secret is a new token
// (the id carries a prefix of its hash); an operator may revoke either like any other token.
core::Result<void> ensure_self_agent_token(const core::Config& config, store::Store& st) {
  const std::string secret = config.settings.get_or(core::kSelfAgentTokenSetting, "");
  if (config.mode != core::Mode::all_in_one || secret.empty()) return {};
  store::RegistrationToken tok;
  tok.token_hash = core::crypto::sha256_hex(secret);
  tok.id = "self-agent-" + tok.token_hash.substr(0, 12);
  tok.label = "embedded agent of this all-in-one node";
  tok.created_by = "node";
  auto created = st.create_registration_token(tok);
  if (!created && created.error().code != core::Errc::conflict) return created.error();
  return {};
}

}  // namespace

core::Result<CoordinatorOptions> coordinator_options(const core::Config& config) {
  CoordinatorOptions o;
  const auto& s = config.settings;
  o.mesh_token = s.get_or("MESH_AUTH_TOKEN", "");
  auto gate = net::operator_gate(config);
  if (!gate) return gate.error();
  o.operator_gate = std::move(*gate);
  o.inference_token = s.get_or("INFERENCE_AUTH_TOKEN", "");
  o.insecure_dev = config.insecure_dev;
  auto auto_approve = s.get_bool("AUTO_APPROVE_AGENTS");
  if (!auto_approve) return auto_approve.error();
  o.auto_approve = *auto_approve;
  o.inference_url = s.get_or("INFERENCE_URL", "");
  if (o.inference_url.empty()) {
    o.inference_url =
        "http://127.0.0.1:" + std::to_string(config.ports.at(core::Service::inference));
  }
  while (!o.inference_url.empty() && o.inference_url.back() == '/') o.inference_url.pop_back();
  struct IntSetting {
    std::string_view name;
    std::int64_t* out;
    std::int64_t fallback, min, max;
  };
  std::int64_t max_attempts = 3, ios_pct = 20;
  const IntSetting ints[] = {
      {"COORDINATOR_LEASE_BUDGET_MS", &o.lease_budget_ms, 60'000, 0, 86'400'000},
      {"COORDINATOR_LEASE_SWEEP_MS", &o.sweep_interval_ms, 1'000, 10, 600'000},
      {"COORDINATOR_MAX_ATTEMPTS", &max_attempts, 3, 1, 20},
      {"COORDINATOR_AGENT_ONLINE_MS", &o.agent_online_ms, 120'000, 1'000, 86'400'000},
      {"COORDINATOR_DECOMPOSE_TIMEOUT_MS", &o.decompose_timeout_ms, 150'000, 100, 3'600'000},
      {"COORDINATOR_ESCALATE_TIMEOUT_MS", &o.escalate_timeout_ms, 150'000, 100, 3'600'000},
      {"COORDINATOR_EVENTS_POLL_MS", &o.events_poll_ms, 250, 10, 60'000},
      {"IOS_BATTERY_PULL_MIN_INTERVAL_MS", &o.power.ios_pull_min_interval_ms, 45'000, 0,
       86'400'000},
      {"IOS_BATTERY_TASK_STOP_LEVEL_PCT", &ios_pct, 20, 0, 100},
      {"TUNNEL_IDLE_TTL_MS", &o.tunnel_idle_ttl_ms, 90'000, 1'000, 86'400'000},
      {"TUNNEL_MAX_RELAYS_PER_MIN", &o.tunnel_max_relays_per_min, 120, 1, 1'000'000},
      {"RELAY_RATE_LIMIT_PER_10S", &o.relay_rate_limit_per_10s, 80, 1, 1'000'000},
      {"DIRECT_WORK_OFFERS_PER_10S", &o.direct_work_offers_per_10s, 20, 1, 1'000'000},
      {"DIRECT_WORK_OFFER_TTL_MS", &o.direct_work_offer_ttl_ms, 600'000, 1'000, 604'800'000},
      {"MESH_WS_PING_MS", &o.mesh_ws_ping_ms, 30'000, 50, 3'600'000},
      {"MESH_PEER_TTL_MS", &o.mesh_peer_ttl_ms, 86'400'000, 60'000, 31'536'000'000},
  };
  for (const auto& i : ints) {
    auto v = options_int(config, i.name, i.fallback, i.min, i.max);
    if (!v) return v.error();
    *i.out = *v;
  }
  o.max_attempts = static_cast<int>(max_attempts);
  auto enforced = s.get_bool("CREDITS_ENFORCED");
  if (!enforced) return enforced.error();
  o.credits_enforced = *enforced;
  const std::string cost = s.get_or("TASK_SUBMIT_CREDITS", "1");
  char* end = nullptr;
  const double credits = std::strtod(cost.c_str(), &end);
  if (cost.empty() || end != cost.c_str() + cost.size() || !(credits > 0) || credits > 1e6) {
    return core::Error(
        core::Errc::invalid_argument,
        "TASK_SUBMIT_CREDITS: expected a number of credits above 0, got '" + cost + "'");
  }
  o.task_cost_millicredits = static_cast<std::int64_t>(credits * 1000 + 0.5);
  AgentSecurityOptions& sec = o.security;
  const IntSetting security_ints[] = {
      {"SECURITY_MAX_SKEW_MS", &sec.max_skew_ms, 120'000, 1'000, 86'400'000},
      {"SECURITY_NONCE_TTL_MS", &sec.nonce_ttl_ms, 300'000, 1'000, 86'400'000},
      {"AGENT_RATE_LIMIT_MAX", &sec.rate_max, 1'200, 0, 1'000'000},
      {"AGENT_RATE_LIMIT_WINDOW_MS", &sec.rate_window_ms, 60'000, 100, 86'400'000},
      {"BEHAVIOR_WINDOW_MS", &sec.behavior_window_ms, 600'000, 1'000, 86'400'000},
      {"BEHAVIOR_PROTOCOL_ABUSE_THRESHOLD", &sec.protocol_abuse_threshold, 10, 1, 1'000'000},
      {"BEHAVIOR_FORGED_RESULT_THRESHOLD", &sec.forged_result_threshold, 3, 1, 1'000'000},
      {"BEHAVIOR_REGISTRATION_THRESHOLD", &sec.registration_threshold, 200, 1, 1'000'000},
  };
  for (const auto& i : security_ints) {
    auto v = options_int(config, i.name, i.fallback, i.min, i.max);
    if (!v) return v.error();
    *i.out = *v;
  }
  for (auto [name, out] :
       {std::pair<std::string_view, bool*>{"REQUIRE_SIGNED_AGENTS", &sec.require_signed},
        std::pair<std::string_view, bool*>{"BEHAVIOR_AUTO_BLACKLIST", &sec.auto_blacklist}}) {
    if (!s.has(name) && core::find_setting(name) == nullptr) continue;
    auto v = s.get_bool(name);
    if (!v) return v.error();
    *out = *v;
  }
  o.power.ios_stop_level_pct = static_cast<int>(ios_pct);
  o.public_url =
      s.get_or("COORDINATOR_PUBLIC_URL",
               "http://127.0.0.1:" + std::to_string(config.ports.at(core::Service::coordinator)));
  o.peer_id = s.get_or("COORDINATOR_PEER_ID", "");
  if (o.peer_id.empty())
    o.peer_id = "coord-" + core::crypto::sha256_hex(o.public_url).substr(0, 12);
  o.network_mode = s.get_or("NETWORK_MODE", "public_mesh");
  if (o.network_mode != "public_mesh" && o.network_mode != "enterprise_overlay") {
    return core::Error(
        core::Errc::invalid_argument,
        "NETWORK_MODE: expected public_mesh or enterprise_overlay, got '" + o.network_mode + "'");
  }
  o.ollama_host = s.get_or("OLLAMA_HOST", "http://127.0.0.1:11434");
  while (!o.ollama_host.empty() && o.ollama_host.back() == '/') o.ollama_host.pop_back();
  o.local_model_provider = s.get_or("LOCAL_MODEL_PROVIDER", "edgecoder-local");
  auto envelopes = s.get_bool("COORDINATOR_ENVELOPES");
  if (!envelopes) return envelopes.error();
  o.envelopes = *envelopes;
  return o;
}

Service::Service(CoordinatorOptions opts, std::unique_ptr<store::Store> st,
                 std::function<std::int64_t()> clock, boost::asio::io_context& io,
                 core::metrics::Registry& registry)
    : options(std::move(opts)),
      store(std::move(st)),
      http(std::make_unique<net::HttpClient>(io.get_executor())),
      clock_(store::clock_or_system(std::move(clock))) {
  auto counter = [&registry](std::string_view name, std::string_view help,
                             core::metrics::Labels labels = {}) {
    return &registry.counter(name, help, labels);
  };
  metrics.registrations =
      counter("edgecoder_coordinator_registrations_total", "Agent registrations accepted.");
  metrics.claims = counter("edgecoder_coordinator_claims_total", "Subtask leases granted.");
  const char* results_help = "Subtask results by outcome.";
  metrics.results_accepted =
      counter("edgecoder_coordinator_results_total", results_help, {{"outcome", "accepted"}});
  metrics.results_duplicate =
      counter("edgecoder_coordinator_results_total", results_help, {{"outcome", "duplicate"}});
  metrics.results_stale =
      counter("edgecoder_coordinator_results_total", results_help, {{"outcome", "stale"}});
  const char* expired_help = "Expired leases by what became of the subtask.";
  metrics.leases_requeued = counter("edgecoder_coordinator_leases_expired_total", expired_help,
                                    {{"outcome", "requeued"}});
  metrics.leases_failed =
      counter("edgecoder_coordinator_leases_expired_total", expired_help, {{"outcome", "failed"}});
  metrics.tasks_created = counter("edgecoder_coordinator_tasks_created_total", "Tasks accepted.");
  const char* signed_help = "Agent requests on the signed routes by signature outcome.";
  metrics.signed_accepted = counter("edgecoder_coordinator_agent_signatures_total", signed_help,
                                    {{"outcome", "accepted"}});
  metrics.signed_unsigned = counter("edgecoder_coordinator_agent_signatures_total", signed_help,
                                    {{"outcome", "unsigned"}});
  metrics.signed_refused = counter("edgecoder_coordinator_agent_signatures_total", signed_help,
                                   {{"outcome", "refused"}});
  metrics.signed_replay =
      counter("edgecoder_coordinator_agent_signatures_total", signed_help, {{"outcome", "replay"}});
  metrics.signed_rate_limited = counter("edgecoder_coordinator_agent_signatures_total", signed_help,
                                        {{"outcome", "rate_limited"}});
  const char* evidence_help = "Behaviour evidence counted toward auto-blacklisting, by kind.";
  metrics.evidence_protocol_abuse = counter("edgecoder_coordinator_behavior_evidence_total",
                                            evidence_help, {{"kind", "protocol_abuse"}});
  metrics.evidence_forged_result = counter("edgecoder_coordinator_behavior_evidence_total",
                                           evidence_help, {{"kind", "forged_result"}});
  metrics.evidence_registration = counter("edgecoder_coordinator_behavior_evidence_total",
                                          evidence_help, {{"kind", "registration"}});
  const char* warning_help = "Behaviour warnings (never a blacklist) by rule.";
  metrics.warning_fast =
      counter("edgecoder_coordinator_behavior_warnings_total", warning_help, {{"rule", "BHV001"}});
  metrics.warning_empty =
      counter("edgecoder_coordinator_behavior_warnings_total", warning_help, {{"rule", "BHV002"}});
  metrics.warning_identical =
      counter("edgecoder_coordinator_behavior_warnings_total", warning_help, {{"rule", "BHV003"}});
  metrics.auto_blacklisted = counter("edgecoder_coordinator_auto_blacklisted_total",
                                     "Agents blacklisted by behaviour monitoring.");
  metrics.decompose_failures = counter("edgecoder_coordinator_decompose_failures_total",
                                       "Submissions refused because inference failed.");
  metrics.envelopes_sealed = counter("edgecoder_coordinator_envelopes_sealed_total",
                                     "Subtasks sent to agents as X25519 envelopes.");
  const char* envelope_results_help = "Encrypted results by outcome.";
  metrics.envelope_results_opened = counter("edgecoder_coordinator_envelope_results_total",
                                            envelope_results_help, {{"outcome", "opened"}});
  metrics.envelope_results_refused = counter("edgecoder_coordinator_envelope_results_total",
                                             envelope_results_help, {{"outcome", "refused"}});
  const char* escalations_help = "POST /escalate relays to the inference service by outcome.";
  metrics.escalations_completed = counter("edgecoder_coordinator_escalations_total",
                                          escalations_help, {{"outcome", "completed"}});
  metrics.escalations_failed =
      counter("edgecoder_coordinator_escalations_total", escalations_help, {{"outcome", "failed"}});
}

Service::~Service() { stop(); }

std::string Service::public_key_pem() const {
  return signing_key.public_key.empty()
             ? std::string()
             : core::crypto::ed25519_public_key_pem(signing_key.public_key);
}

std::string_view Service::network_mode() const {
  return enterprise_overlay() ? "enterprise_overlay" : "public_mesh";
}

void Service::refresh_network_mode() {
  auto stored = store->get_mesh_setting(kNetworkModeSetting);
  if (!stored) {
    core::log::warn("coordinator", "network_mode_read_failed", {{"detail", stored.error().detail}});
    return;
  }
  const std::string& mode = *stored ? (*stored)->value : options.network_mode;
  set_network_mode(mode == "enterprise_overlay");
}

void Service::start(std::optional<std::int64_t> retention_ms) {
  refresh_network_mode();
  sweeper_ = std::thread([this, retention_ms] { sweeper_loop(retention_ms); });
}

void Service::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
}

namespace {
constexpr std::int64_t kOrphanHoldGraceMs = 60'000;
}  // namespace

void Service::sweep_once() {
  auto expired = store->expire_leases();
  if (!expired) {
    core::log::warn("coordinator", "lease_sweep_failed", {{"detail", expired.error().detail}});
    return;
  }
  if (expired->requeued > 0 || expired->failed > 0) {
    metrics.leases_requeued->inc(static_cast<std::uint64_t>(expired->requeued));
    metrics.leases_failed->inc(static_cast<std::uint64_t>(expired->failed));
    core::log::info("coordinator", "leases_expired",
                    {{"requeued", expired->requeued}, {"failed", expired->failed}});
  }
  if (!options.credits_enforced) return;
  // A hold whose task was never created (the coordinator stopped during a submission) is refunded
  // once no submission can still be creating it.
  auto settled =
      store->settle_credit_holds(now() - options.decompose_timeout_ms - kOrphanHoldGraceMs, 500);
  if (!settled) {
    core::log::warn("coordinator", "credit_settlement_failed",
                    {{"detail", settled.error().detail}});
  } else if (settled->committed > 0 || settled->refunded > 0) {
    core::log::info("coordinator", "credits_settled",
                    {{"committed", settled->committed}, {"refunded", settled->refunded}});
  }
}

// retention_ms: tasks finished longer ago than this are pruned; nullopt = keep forever.
void Service::sweeper_loop(std::optional<std::int64_t> retention_ms) {
  auto next_prune = std::chrono::steady_clock::now();
  auto next_guard_prune = next_prune;
  std::int64_t next_mesh_sweep = 0;  // service clock, so tests that move it see expiry
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    sweep_once();
    if (now() >= next_mesh_sweep) {
      next_mesh_sweep = now() + options.mesh_sweep_interval_ms;
      sweep_agent_mesh(*this);
    }
    refresh_network_mode();
    if (std::chrono::steady_clock::now() >= next_guard_prune) {
      // Expired nonces and ended counter windows (one DELETE each; shared by coordinators, so
      // any of them may do it).
      next_guard_prune += std::chrono::milliseconds(options.security.guard_prune_interval_ms);
      if (auto pruned = store->prune_request_guards(); !pruned) {
        core::log::warn("coordinator", "request_guard_prune_failed",
                        {{"detail", pruned.error().detail}});
      }
    }
    if (retention_ms && std::chrono::steady_clock::now() >= next_prune) {
      next_prune += std::chrono::milliseconds(options.prune_interval_ms);
      auto pruned = store->prune(now() - *retention_ms);
      if (pruned && pruned->tasks > 0) {
        core::log::info("coordinator", "pruned", {{"tasks", pruned->tasks}});
      }
    }
    lock.lock();
    cv_.wait_for(lock, std::chrono::milliseconds(options.sweep_interval_ms),
                 [this] { return stopping_; });
  }
}

net::Response error_response(int status, std::string_view code, std::string_view detail,
                             nlohmann::json extra) {
  nlohmann::json body = std::move(extra);
  if (!body.is_object()) body = nlohmann::json::object();
  body["error"] = code;
  body["detail"] = detail;
  return net::Response::json(status, body);
}

net::ClientRequest inference_request(const Service& svc, std::string_view path, std::string body,
                                     std::int64_t timeout_ms) {
  net::ClientRequest req;
  req.method = "POST";
  req.url = svc.options.inference_url + std::string(path);
  req.headers.emplace_back("content-type", "application/json");
  if (!svc.options.inference_token.empty()) {
    req.headers.emplace_back("x-inference-token", svc.options.inference_token);
  }
  req.body = std::move(body);
  req.first_byte_timeout = std::chrono::milliseconds(timeout_ms);
  req.total_timeout = std::chrono::milliseconds(timeout_ms);
  return req;
}

core::Result<nlohmann::json> json_body(const net::Request& request) {
  if (request.body.empty()) return nlohmann::json::object();
  return net::parse_json_body(request);
}

bool has_mesh_token(const Service& svc, const net::Request& request) {
  auto header = request.header("x-mesh-token");
  return token_ok(svc, header ? *header : std::string_view(), svc.options.mesh_token);
}

std::optional<std::string_view> refusal_reason(const Service& svc, const store::Agent& agent) {
  switch (agent.approval) {
    case store::Approval::pending:
      return "awaiting_operator_approval";
    case store::Approval::denied:
      return "denied_by_operator";
    case store::Approval::approved:
      break;
  }
  // The store names how an agent was approved: "operator", "registration-token:<id>" or
  // "auto-approve" (AUTO_APPROVE_AGENTS with the mesh token).
  if (svc.enterprise_overlay() && agent.approval_actor == "auto-approve") {
    return "enterprise_overlay_requires_approval";
  }
  return std::nullopt;
}

std::optional<net::Response> refuse_agent(const Service& svc, const store::Agent& agent) {
  auto reason = refusal_reason(svc, agent);
  if (!reason) return std::nullopt;
  std::string approval(store::approval_name(agent.approval));
  std::string detail = "agent " + agent.info.id + " is " + approval;
  if (*reason == "awaiting_operator_approval") {
    detail += "; an operator must approve it or it must register with a registration token";
  } else if (*reason == "enterprise_overlay_requires_approval") {
    detail +=
        " only by AUTO_APPROVE_AGENTS; this mesh is an enterprise overlay, which serves agents "
        "approved by an operator or a registration token";
  }
  return error_response(403, "agent_not_approved", detail,
                        {{"approval", approval}, {"reason", *reason}});
}

std::string new_uuid() {
  std::string h = core::crypto::random_hex(16);
  h[12] = '4';
  const char variant[] = "89ab";
  h[16] = variant[std::stoi(h.substr(16, 1), nullptr, 16) % 4];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

nlohmann::json execution_policy(int max_concurrent_tasks) {
  return {{"cpuCapPercent", 50},
          {"memoryLimitMb", 2048},
          {"idleOnly", true},
          {"maxConcurrentTasks", max_concurrent_tasks},
          {"allowedHours", {{"startHourUtc", 22}, {"endHourUtc", 6}}}};
}

std::vector<std::string> agent_languages(const store::Agent& agent) {
  return agent.info.languages.empty() ? api::kDefaultAgentLanguages : agent.info.languages;
}

nlohmann::json agent_json(const Service& svc, const store::Agent& a) {
  auto meta = nlohmann::json::parse(a.info.metadata_json, nullptr, false);
  auto telemetry = nlohmann::json::parse(a.info.telemetry_json, nullptr, false);
  auto runtime = nlohmann::json::parse(a.info.runtime_json, nullptr, false);
  if (!meta.is_object()) meta = nlohmann::json::object();
  if (!runtime.is_object()) runtime = nlohmann::json::object();
  PowerInputs in{a.info.os, telemetry.is_object() ? telemetry : nlohmann::json(), a.last_claim_ms,
                 svc.now()};
  nlohmann::json j = {
      {"agentId", a.info.id},
      {"os", a.info.os},
      {"version", a.info.version},
      {"mode", a.mode()},
      {"declaredMode", a.info.mode},
      {"clientType", a.info.client_type},
      {"maxConcurrentTasks", a.info.max_concurrent_tasks},
      {"sandboxMode", a.info.sandbox_mode},
      {"languages", agent_languages(a)},
      {"localModelProvider", meta.value("localModelProvider", "edgecoder-local")},
      {"activeModel", a.info.active_model},
      {"activeModelParamSize", runtime.value("activeModelParamSize", nlohmann::json())},
      {"modelSwapInProgress", runtime.value("modelSwapInProgress", false)},
      {"approval", store::approval_name(a.approval)},
      {"approvalChangedAtMs", a.approval_changed_at_ms},
      {"approvedBy", a.approval == store::Approval::approved ? a.approval_actor : ""},
      {"served", !refusal_reason(svc, a).has_value()},
      {"registeredAtMs", a.registered_at_ms},
      {"lastSeenMs", a.last_seen_ms},
      {"online", svc.now() - a.last_seen_ms <= svc.options.agent_online_ms},
      {"connectedPeers", nlohmann::json::array()},
      {"blacklisted", false},
      {"powerPolicy", to_json(evaluate_power(in, svc.options.power))},
  };
  if (telemetry.is_object()) j["powerTelemetry"] = telemetry;
  return j;
}

core::Result<Mounted> mount(const core::Config& config, boost::asio::io_context& io,
                            net::Router& router, core::metrics::Registry& registry,
                            MountOverrides overrides) {
  auto options = coordinator_options(config);
  if (!options) return options.error();
  std::unique_ptr<store::Store> st = std::move(overrides.store);
  if (!st) {
    auto opened = store::open_store(config, store::ServiceName::coordinator);
    if (!opened) return opened.error();
    st = std::move(*opened);
  }
  auto retention = store::retention_cutoff_ms(config, 0);
  if (!retention) return retention.error();
  std::optional<std::int64_t> retention_ms;
  if (*retention) retention_ms = -**retention;  // cutoff for now=0 is -retention

  if (options->mesh_token.empty() || options->operator_gate.token.empty()) {
    core::log::warn("coordinator", "INSECURE_DEV_MODE",
                    {{"detail", "a token is unset: its routes accept every caller"}});
  }
  if (auto self = ensure_self_agent_token(config, *st); !self) return self.error();
  auto key = load_or_create_signing_key(config.data_dir);
  if (!key) return key.error();
  auto svc = std::make_shared<Service>(std::move(*options), std::move(st),
                                       std::move(overrides.clock), io, registry);
  svc->signing_key = std::move(*key);
  svc->store->set_chain_signer(chain_signer(*svc));
  router.use(make_auth_middleware(svc));
  add_agent_routes(router, svc);
  add_task_routes(router, svc);
  add_admin_routes(router, svc);
  add_status_routes(router, svc);
  add_orchestration_routes(router, svc);
  add_blacklist_routes(router, svc);
  add_ledger_routes(router, svc);
  add_mesh_routes(router, svc);
  add_escalate_routes(router, svc);
  svc->start(retention_ms);
  core::log::info("coordinator", "mounted",
                  {{"store", svc->store->describe()},
                   {"inference_url", svc->options.inference_url},
                   {"auto_approve", svc->options.auto_approve},
                   {"lease_budget_ms", svc->options.lease_budget_ms}});

  Mounted m;
  std::weak_ptr<Service> weak = svc;
  m.ready_check = [weak]() -> core::Result<void> {
    auto s = weak.lock();
    if (!s) return core::Error(core::Errc::unavailable, "stopped", "coordinator stopped");
    return store::check_ready(*s->store);
  };
  m.on_drain = [weak] {
    if (auto s = weak.lock()) s->stop();
  };
  m.on_stopped = [weak] {
    if (auto s = weak.lock()) s->store->wait_idle();
  };
  m.state = std::move(svc);
  return m;
}

}  // namespace edgecoder::coordinator

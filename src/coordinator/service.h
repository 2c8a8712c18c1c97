// Internal to src/coordinator: the state every route handler shares, the options parsed from
// the configuration, and the helpers the route files use.
// Thread-safety: Service is shared by handlers on several threads; its members are either
// constant after mount() or thread-safe themselves (store, HTTP client, metrics, atomics).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "coordinator/power_policy.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/metrics.h"
#include "core/result.h"
#include "net/client.h"
#include "net/client_address.h"
#include "net/router.h"
#include "store/store.h"

namespace edgecoder::coordinator {

namespace asio = boost::asio;

struct CoordinatorOptions {
  std::string mesh_token;           // MESH_AUTH_TOKEN
  net::OperatorGate operator_gate;  // ADMIN_API_TOKEN, ALLOWED_ADMIN_IPS, TRUSTED_PROXIES
  std::string inference_token;      // INFERENCE_AUTH_TOKEN
  bool insecure_dev = false;        // empty tokens then let everyone in (said in the log)
  bool auto_approve = false;        // AUTO_APPROVE_AGENTS
  std::string inference_url;        // INFERENCE_URL, default http://127.0.0.1:<INFERENCE_PORT>
  std::int64_t lease_budget_ms = 60'000;
  std::int64_t sweep_interval_ms = 1'000;
  int max_attempts = 3;
  std::int64_t agent_online_ms = 120'000;
  std::int64_t decompose_timeout_ms = 150'000;
  std::int64_t events_poll_ms = 250;
  std::int64_t prune_interval_ms = 3'600'000;
  int diagnostics_keep = 200;
  PowerSettings power;
  std::string peer_id;
  std::string public_url;
  std::string network_mode = "public_mesh";
  std::string ollama_host;           // OLLAMA_HOST (model probe of /health/runtime)
  std::string local_model_provider;  // LOCAL_MODEL_PROVIDER
  // COORDINATOR_ENVELOPES: seal subtasks for agents that registered an X25519 key.
  bool envelopes = true;
  std::int64_t escalate_timeout_ms = 150'000;  // COORDINATOR_ESCALATE_TIMEOUT_MS
};

core::Result<CoordinatorOptions> coordinator_options(const core::Config& config);

struct CoordinatorMetrics {
  core::metrics::Counter* registrations = nullptr;
  core::metrics::Counter* claims = nullptr;
  core::metrics::Counter* results_accepted = nullptr;
  core::metrics::Counter* results_duplicate = nullptr;
  core::metrics::Counter* results_stale = nullptr;
  core::metrics::Counter* leases_requeued = nullptr;
  core::metrics::Counter* leases_failed = nullptr;
  core::metrics::Counter* tasks_created = nullptr;
  core::metrics::Counter* decompose_failures = nullptr;
  core::metrics::Counter* envelopes_sealed = nullptr;
  core::metrics::Counter* envelope_results_opened = nullptr;
  core::metrics::Counter* envelope_results_refused = nullptr;  // did not decrypt (400)
  core::metrics::Counter* escalations_completed = nullptr;
  core::metrics::Counter* escalations_failed = nullptr;
};

class Service {
 public:
  Service(CoordinatorOptions options, std::unique_ptr<store::Store> store,
          std::function<std::int64_t()> clock, boost::asio::io_context& io,
          core::metrics::Registry& registry);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Starts the sweeper thread (lease expiry, retention).
  void start(std::optional<std::int64_t> retention_days_ms);
  // Stops and joins the sweeper. Idempotent.
  void stop();
  std::int64_t now() const { return clock_(); }
  // One expiry pass (also what the sweeper runs).
  void sweep_once();

  // The network mode in force: the operator's stored choice, else NETWORK_MODE. The sweeper
  // re-reads it from the store, so every coordinator on a shared store follows a change within
  // one sweep interval.
  bool enterprise_overlay() const { return overlay_.load(); }
  std::string_view network_mode() const;
  void set_network_mode(bool enterprise_overlay) { overlay_.store(enterprise_overlay); }
  void refresh_network_mode();

  // Constants after construction.
  const CoordinatorOptions options;
  const std::unique_ptr<store::Store> store;
  const std::unique_ptr<net::HttpClient> http;
  CoordinatorMetrics metrics;
  // Signs blacklist events; set by mount() before any route runs, constant after.
  core::crypto::Ed25519KeyPair signing_key;
  std::string public_key_pem() const;

 private:
  void sweeper_loop(std::optional<std::int64_t> retention_ms);

  const std::function<std::int64_t()> clock_;
  std::atomic<bool> overlay_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread sweeper_;
};

using ServicePtr = std::shared_ptr<Service>;

// ---- helpers shared by the route files ----

// Error responses with the shape {"error":code,"detail":...} plus extra fields (reason, ...).
net::Response error_response(int status, std::string_view code, std::string_view detail,
                             nlohmann::json extra = nlohmann::json::object());
// Parses the JSON body (400 on malformed JSON).
core::Result<nlohmann::json> json_body(const net::Request& request);
// True when the request carries the mesh token (or tokens are off in insecure dev mode).
bool has_mesh_token(const Service& svc, const net::Request& request);
// A random RFC 4122 version 4 UUID.
std::string new_uuid();
// The default ExecutionPolicy agents receive (informational).
nlohmann::json execution_policy(int max_concurrent_tasks);
// nullopt when the agent may be served work now; else the 403 that says why: it is not approved,
// or (enterprise_overlay) it was approved only by AUTO_APPROVE_AGENTS, not by an operator or a
// registration token of this mesh.
std::optional<net::Response> refuse_agent(const Service& svc, const store::Agent& agent);
// The wire reason of that refusal: awaiting_operator_approval, denied_by_operator or
// enterprise_overlay_requires_approval.
std::optional<std::string_view> refusal_reason(const Service& svc, const store::Agent& agent);
// The mesh_settings key of the network mode.
inline constexpr const char* kNetworkModeSetting = "network_mode";
// The agent as /capacity and operator routes show it: no keys, tokens or addresses.
nlohmann::json agent_json(const Service& svc, const store::Agent& agent);
// The languages an agent runs (its own list, or the default for agents that do not say).
std::vector<std::string> agent_languages(const store::Agent& agent);

// Route registration, one function per file.
void add_agent_routes(net::Router& router, ServicePtr svc);
void add_task_routes(net::Router& router, ServicePtr svc);
void add_admin_routes(net::Router& router, ServicePtr svc);
void add_status_routes(net::Router& router, ServicePtr svc);
void add_orchestration_routes(net::Router& router, ServicePtr svc);
void add_blacklist_routes(net::Router& router, ServicePtr svc);
void add_escalate_routes(net::Router& router, ServicePtr svc);

// The coordinator's Ed25519 key in <data dir>/coordinator-signing-key (a base64 seed, 0600),
// created on first start.
core::Result<core::crypto::Ed25519KeyPair> load_or_create_signing_key(
    const std::filesystem::path& data_dir);
// "<reasonCode>: <reason>" when the agent is blacklisted now (runs on the store's thread).
std::optional<std::string> blacklist_reason(store::Store& st, const std::string& agent_id);

// The agent's model switch as its heartbeat and the operator routes show it.
nlohmann::json orchestration_json(const store::Orchestration& o);

}  // namespace edgecoder::coordinator

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
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

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

// Signed agent requests (upstream-coordinator.md §5.2, §5.3) and behaviour monitoring (§5.7);
// docs/coordinator.md "Signed agent requests" says why the defaults are what they are.
struct AgentSecurityOptions {
  bool require_signed = false;           // REQUIRE_SIGNED_AGENTS: refuse unsigned agent requests
  std::int64_t max_skew_ms = 120'000;    // SECURITY_MAX_SKEW_MS
  std::int64_t nonce_ttl_ms = 300'000;   // SECURITY_NONCE_TTL_MS (replay window)
  std::int64_t rate_max = 1'200;         // AGENT_RATE_LIMIT_MAX signed requests per window; 0 = off
  std::int64_t rate_window_ms = 60'000;  // AGENT_RATE_LIMIT_WINDOW_MS
  bool auto_blacklist = true;            // BEHAVIOR_AUTO_BLACKLIST
  std::int64_t behavior_window_ms = 600'000;      // BEHAVIOR_WINDOW_MS
  std::int64_t protocol_abuse_threshold = 10;     // BEHAVIOR_PROTOCOL_ABUSE_THRESHOLD
  std::int64_t forged_result_threshold = 3;       // BEHAVIOR_FORGED_RESULT_THRESHOLD
  std::int64_t registration_threshold = 200;      // BEHAVIOR_REGISTRATION_THRESHOLD
  std::int64_t guard_prune_interval_ms = 60'000;  // expired nonces and counters are deleted
};

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
  std::string ollama_host;                      // OLLAMA_HOST (model probe of /health/runtime)
  std::string local_model_provider;             // LOCAL_MODEL_PROVIDER
  bool credits_enforced = false;                // CREDITS_ENFORCED
  std::int64_t task_cost_millicredits = 1'000;  // TASK_SUBMIT_CREDITS
  AgentSecurityOptions security;
  // The agent mesh (mesh_routes.cpp, upstream-coordinator.md §2.5, §5.3).
  std::int64_t tunnel_idle_ttl_ms = 90'000;         // TUNNEL_IDLE_TTL_MS
  std::int64_t tunnel_max_relays_per_min = 120;     // TUNNEL_MAX_RELAYS_PER_MIN
  std::int64_t relay_rate_limit_per_10s = 80;       // RELAY_RATE_LIMIT_PER_10S
  std::int64_t direct_work_offers_per_10s = 20;     // DIRECT_WORK_OFFERS_PER_10S
  std::int64_t direct_work_offer_ttl_ms = 600'000;  // DIRECT_WORK_OFFER_TTL_MS
  std::int64_t mesh_ws_ping_ms = 30'000;            // MESH_WS_PING_MS
  std::int64_t mesh_peer_ttl_ms = 86'400'000;       // MESH_PEER_TTL_MS
  std::int64_t mesh_sweep_interval_ms = 15'000;
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
  // Signed agent requests by outcome (accepted, unsigned, refused, replay, rate_limited).
  core::metrics::Counter* signed_accepted = nullptr;
  core::metrics::Counter* signed_unsigned = nullptr;
  core::metrics::Counter* signed_refused = nullptr;
  core::metrics::Counter* signed_replay = nullptr;
  core::metrics::Counter* signed_rate_limited = nullptr;
  // Behaviour evidence by rule, warnings by rule, and auto-blacklistings.
  core::metrics::Counter* evidence_protocol_abuse = nullptr;
  core::metrics::Counter* evidence_forged_result = nullptr;
  core::metrics::Counter* evidence_registration = nullptr;
  core::metrics::Counter* warning_fast = nullptr;
  core::metrics::Counter* warning_empty = nullptr;
  core::metrics::Counter* warning_identical = nullptr;
  core::metrics::Counter* auto_blacklisted = nullptr;
  core::metrics::Counter* envelopes_sealed = nullptr;
  core::metrics::Counter* envelope_results_opened = nullptr;
  core::metrics::Counter* envelope_results_refused = nullptr;  // did not decrypt (400)
  core::metrics::Counter* escalations_completed = nullptr;
  core::metrics::Counter* escalations_failed = nullptr;
};

// Per-process signals an honest agent can also produce — very fast results (a cache hit, a
// no-op program), empty outputs, the same output again — kept per agent for one behaviour
// window. They are warnings for operators (metrics, log, the agent's diagnostics) and never a
// reason to blacklist, so they need not be shared between coordinators.
// Thread-safety: observe() may be called from any thread (one mutex).
class ResultWarnings {
 public:
  struct Fired {
    std::string rule;  // BHV001 | BHV002 | BHV003
    std::string message;
  };
  // Records one result; returns the rules that fired for the first time in this window.
  // output_sha256: hex SHA-256 of the output.
  std::vector<Fired> observe(const std::string& agent_id, const std::string& output_sha256,
                             bool empty, std::int64_t duration_ms, std::int64_t now_ms,
                             std::int64_t window_ms);

 private:
  struct State {
    std::int64_t window_start_ms = 0;
    int results = 0;
    int fast = 0;  // under 500 ms
    std::int64_t total_ms = 0;
    int empty = 0;
    int identical_run = 0;  // consecutive results with the same output
    std::string last_hash;
    bool fired_fast = false, fired_empty = false, fired_identical = false;
  };
  std::mutex mu_;
  std::map<std::string, State> agents_;  // guarded by mu_
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
  // One expiry pass (also what the sweeper runs), then, with CREDITS_ENFORCED, the settlement of
  // the credits held for tasks that have ended.
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
  ResultWarnings warnings;
  // Signs blacklist events and the ordering chain; set by mount() before any route runs,
  // constant after.
  core::crypto::Ed25519KeyPair signing_key;
  std::string public_key_pem() const;
  // The credit load multiplier last read from the queue, and when (coordinator clock); see
  // current_load_multiplier().
  std::atomic<double> load_multiplier{1.0};
  std::atomic<std::int64_t> load_read_at_ms{std::numeric_limits<std::int64_t>::min()};

  // Peers holding a /mesh/ws socket on this coordinator (a per-process fact: sockets are).
  void mesh_socket_opened(const std::string& peer_id);
  void mesh_socket_closed(const std::string& peer_id);
  bool mesh_socket_open(const std::string& peer_id) const;

 private:
  void sweeper_loop(std::optional<std::int64_t> retention_ms);

  const std::function<std::int64_t()> clock_;
  std::atomic<bool> overlay_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread sweeper_;
  mutable std::mutex sockets_mu_;
  std::multiset<std::string> mesh_sockets_;  // guarded by sockets_mu_
};

using ServicePtr = std::shared_ptr<Service>;

// ---- helpers shared by the route files ----

// Error responses with the shape {"error":code,"detail":...} plus extra fields (reason, ...).
net::Response error_response(int status, std::string_view code, std::string_view detail,
                             nlohmann::json extra = nlohmann::json::object());
// Parses the JSON body (400 on malformed JSON).
core::Result<nlohmann::json> json_body(const net::Request& request);
// A POST of `body` to the inference service's `path` (INFERENCE_URL) with x-inference-token and
// `timeout_ms` as both first-byte and total timeout.
net::ClientRequest inference_request(const Service& svc, std::string_view path, std::string body,
                                     std::int64_t timeout_ms);
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
void add_ledger_routes(net::Router& router, ServicePtr svc);

// ---- credits and the ordering chain (ledger_routes.cpp) ----

// Reference §3.8: pressure = queued / agents (2 without agents): <=0.5 -> 0.8, <=1 -> 1.0,
// <=2 -> 1.25, else 1.6.
double load_multiplier(std::int64_t queued, std::int64_t agents);
// millicredits = seconds (duration_ms, at most timeout_ms when > 0) x rate (gpu 4.0/s, else
// 1.0/s) x quality (1.0 ok, 0.6 failed) x load, rounded.
std::int64_t earned_millicredits(std::int64_t duration_ms, std::int64_t timeout_ms,
                                 std::string_view resource_class, bool ok, double load);
// The ResultReport::earn of a result: "earn:<subtaskId>" to the agent's account, the resource
// class from the subtask's projectMeta, and the earnings_accrual payload. Nothing for 0.
std::function<bool(const store::Subtask&, store::Earning&)> make_earning(std::string agent_id,
                                                                         bool ok,
                                                                         std::int64_t duration_ms,
                                                                         double load);
// The load multiplier from queued subtasks per online agent, re-read from the store at most
// every 5 s (coordinator clock).
asio::awaitable<double> current_load_multiplier(ServicePtr svc);
// How the store signs this coordinator's chain: its peer id and its Ed25519 key.
store::ChainSigner chain_signer(const Service& svc);
// Where a walk of the ordering chain stands: ok so far, records checked (= the last sequence)
// and the last hash; or the first failure.
struct ChainVerdict {
  bool ok = true;
  std::int64_t count = 0;
  std::string head = std::string(store::kChainGenesis);
  std::string reason;  // invalid_sequence | invalid_prev_hash | hash_mismatch | invalid_signature
  std::int64_t at_sequence = 0;
};
// Continues the walk over the next records (in sequence order) with the signer's public key.
ChainVerdict verify_chain_records(const std::vector<store::ChainRecord>& records,
                                  std::string_view public_key, ChainVerdict state);

void add_mesh_routes(net::Router& router, ServicePtr svc);

// What the agent's heartbeat carries from the agent mesh: {tunnelInvites, tunnelCloseNotices,
// directWorkOffers} (senders blacklisted since are left out).
asio::awaitable<core::Result<nlohmann::json>> agent_mesh_heartbeat(ServicePtr svc,
                                                                   std::string agent_id);
// One expiry pass over tunnels, offers, close notices and peers (run by the sweeper).
void sweep_agent_mesh(Service& svc);

void add_escalate_routes(net::Router& router, ServicePtr svc);

// The coordinator's Ed25519 key in <data dir>/coordinator-signing-key (a base64 seed, 0600),
// created on first start.
core::Result<core::crypto::Ed25519KeyPair> load_or_create_signing_key(
    const std::filesystem::path& data_dir);
// "<reasonCode>: <reason>" when the agent is blacklisted now (runs on the store's thread).
std::optional<std::string> blacklist_reason(store::Store& st, const std::string& agent_id);
// 403 agent_blacklisted ({blacklisted, reason}) when the agent is blacklisted now; nullopt = go on.
asio::awaitable<std::optional<net::Response>> refuse_blacklisted(ServicePtr svc,
                                                                 std::string agent_id);

// Appends an "add" event for the agent to the signed blacklist chain on behalf of behaviour
// monitoring (reporterId and reportedBy "behavioral_monitoring"), through the same path as an
// operator's addition; evidenceHashSha256 is the SHA-256 of `evidence_json`, which the event
// also carries. expires_in_ms 0 = until an operator removes it.
asio::awaitable<core::Result<store::BlacklistEvent>> auto_blacklist(ServicePtr svc,
                                                                    std::string agent_id,
                                                                    std::string reason_code,
                                                                    std::string reason,
                                                                    std::string evidence_json);

// ---- signed agent requests and behaviour (agent_security.cpp) ----

// What a signed request carries, read from the request before any await (the body's hash is
// computed here, over the exact bytes received).
struct SignedRequest {
  bool present = false;  // all five headers; any missing = an unsigned request
  std::string agent_id, timestamp, nonce, body_sha256, signature;
  std::string method, path;
  std::string actual_body_sha256;
  std::string remote_address;
};
SignedRequest signed_request_of(const net::Request& request);
// nullopt when the request may go on: unsigned and allowed, signed and valid, or signed by an
// agent this coordinator does not know (the route then answers agent_not_registered). Else the
// 401/429 answer. Signature failures and replays count as behaviour evidence.
asio::awaitable<std::optional<net::Response>> verify_agent_request(ServicePtr svc,
                                                                   SignedRequest request,
                                                                   std::string body_agent_id);
// Behaviour evidence that honest work cannot produce: "protocol_abuse" (bad signatures,
// replays), "forged_result" (a result for a lease attempt another agent held), "registration"
// (a registration storm). Counted in the store per agent and window; at the rule's threshold
// (and BEHAVIOR_AUTO_BLACKLIST) the agent is blacklisted. `detail` describes this occurrence.
asio::awaitable<void> record_evidence(ServicePtr svc, std::string agent_id, std::string rule,
                                      nlohmann::json detail);
// Feeds the per-process warnings (never a blacklist) with an accepted result.
asio::awaitable<void> note_result(ServicePtr svc, std::string agent_id, std::string output_sha256,
                                  bool empty, std::int64_t duration_ms);

// The agent's model switch as its heartbeat and the operator routes show it.
nlohmann::json orchestration_json(const store::Orchestration& o);

}  // namespace edgecoder::coordinator

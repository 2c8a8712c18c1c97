// The durable store: one interface per concern (agents, tasks/subtasks/leases, blacklist, credits
// ledger for the coordinator; the audit log for the control plane) and one Store that implements
// them all over one of two backends — embedded SQLite (default; one file per service under the
// data directory, one process per file) or PostgreSQL (DATABASE_URL; shared by several
// coordinators). The same conformance tests run against both.
//
// Durability: every mutating call returns only after its transaction has committed (SQLite
// synchronous=FULL, PostgreSQL fsync), so whatever the API acknowledges survives kill -9.
// Errors: Errc::not_found / conflict / invalid_argument as documented per call;
// Errc::unavailable with wire code "store_unavailable" when the database cannot be reached (the
// store keeps trying to reconnect by itself; ready() reports the state).
//
// Thread-safety: every method may be called from any thread concurrently. Calls block the calling
// thread (disk or network); code running on an event loop must use run(), which executes the call
// on the store's own thread pool and resumes the coroutine on its original executor.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/config.h"
#include "core/result.h"
#include "store/agent_mesh.h"
#include "store/types.h"

namespace edgecoder::store {

template <typename T>
using Result = core::Result<T>;

// Coordinator: the agent registry and operator approval.
class AgentStore {
 public:
  virtual ~AgentStore() = default;
  // Inserts or replaces the agent's self-description; keeps approval and registered_at_ms.
  virtual Result<Agent> upsert_agent(const AgentInfo& info) = 0;
  // not_found when unknown.
  virtual Result<Agent> get_agent(const std::string& id) = 0;
  // By id; optionally only those with one approval state. limit 0 = no limit.
  virtual Result<std::vector<Agent>> list_agents(std::optional<Approval> approval, int limit) = 0;
  // not_found when unknown.
  virtual Result<Agent> set_approval(const std::string& id, Approval approval,
                                     const std::string& actor) = 0;
  // The operator's mode for the agent (empty = back to the mode it declares); re-registrations
  // keep it. not_found when unknown.
  virtual Result<Agent> set_agent_mode(const std::string& id, const std::string& mode) = 0;
  // Heartbeat: last_seen_ms = now, and the active model when non-empty. not_found when unknown.
  virtual Result<void> touch_agent(const std::string& id, const std::string& active_model) = 0;
  // Registration in one transaction: checks the registration token (an unknown or revoked one
  // stores nothing and returns TokenCheck::invalid; a valid one counts a use), upserts the agent
  // (a re-registration refreshes it, keeping approval, registered_at_ms, and the active model,
  // telemetry and runtime state when the new values are empty), and approves a pending agent
  // when the token is valid or auto_approve is set. A denied agent stays denied.
  virtual Result<RegisterOutcome> register_agent(const AgentRegistration& registration) = 0;
  // last_seen_ms = now, the non-empty fields of the heartbeat, and (approved agents only) renews
  // the agent's leases as renew_leases does, in the same transaction. not_found when unknown.
  virtual Result<HeartbeatOutcome> heartbeat(const AgentHeartbeat& heartbeat) = 0;
  // Appends diagnostic events and keeps only the newest `keep` of the agent. Returns how many
  // are kept. not_found when the agent is unknown.
  virtual Result<int> append_diagnostics(const std::string& agent_id,
                                         const std::vector<DiagnosticEvent>& events, int keep) = 0;
  // Newest first, at most limit (0 = no limit).
  virtual Result<std::vector<DiagnosticEvent>> list_diagnostics(const std::string& agent_id,
                                                                int limit) = 0;
};

// Coordinator: operator-issued registration tokens (stored as SHA-256 hashes).
class RegistrationTokenStore {
 public:
  virtual ~RegistrationTokenStore() = default;
  // invalid_argument for an empty id or hash; conflict when the id or hash exists.
  virtual Result<RegistrationToken> create_registration_token(const RegistrationToken& token) = 0;
  // Every token (active and revoked), oldest first.
  virtual Result<std::vector<RegistrationToken>> list_registration_tokens() = 0;
  // Marks it revoked (idempotent). not_found when unknown.
  virtual Result<RegistrationToken> revoke_registration_token(const std::string& id) = 0;
};

// Coordinator: tasks, subtasks, leases, results and per-task events.
class TaskStore {
 public:
  virtual ~TaskStore() = default;
  // Creates the task and all its subtasks in one transaction: subtasks without dependencies are
  // queued, the others held. Idempotent on the task id (a repeat returns created=false and the
  // stored subtask ids). invalid_argument for an empty id, no subtasks, a duplicate subtask id or
  // a dependency outside the task; conflict when a subtask id belongs to another task.
  virtual Result<CreatedTask> create_task(const NewTask& task) = 0;
  // Leases the next queued subtask the agent may run, in the order ClaimRequest describes.
  // attempt+1 becomes the fencing token; the lease expires at now + timeout_ms +
  // lease_budget_ms. nullopt when nothing suitable is queued or the agent is at its limit.
  // With request.max_concurrent, claims by one agent are serialised (across processes on
  // PostgreSQL) so the limit holds. The lease carries the outputs of the subtask's
  // dependencies. The claimed subtask's project is counted for fair share and the agent's
  // last_claim_ms is set (when the agent is registered).
  virtual Result<std::optional<Lease>> claim_next(const ClaimRequest& request) = 0;
  // Extends every lease the agent holds to now + timeout_ms + lease_budget_ms. Returns how many.
  virtual Result<int> renew_leases(const std::string& agent_id, std::int64_t lease_budget_ms) = 0;
  // Leases past their expiry go back to queued (the next claim bumps the attempt), or to failed
  // when the subtask has had max_attempts expired leases (attempt - releases >= max_attempts);
  // last_error says why.
  virtual Result<ExpiredLeases> expire_leases() = 0;
  // The holder hands a lease back: the subtask is queued again at once and the release does
  // not count toward max_attempts. conflict "stale_lease" when it is not leased to this
  // (agent, attempt); not_found for an unknown id.
  virtual Result<void> release_lease(const ReleaseRequest& request) = 0;
  // Every non-terminal subtask of the task becomes cancelled (leases are revoked: a late result
  // gets stale_lease) and the task cancelled, with a task_cancelled event. A task already
  // completed or cancelled is left as it is (cancelled=false). not_found when unknown.
  virtual Result<CancelOutcome> cancel_task(const std::string& task_id,
                                            const std::string& reason) = 0;
  // The accepted results of the task's subtasks, in subtask index order.
  virtual Result<std::vector<SubtaskResult>> list_results(const std::string& task_id) = 0;
  // Subtask, task and agent counts; agents_online counts last_seen_ms >= online_since_ms.
  virtual Result<QueueCounts> queue_counts(std::int64_t online_since_ms) = 0;
  // Accepts a result only from the current holder with the current attempt: the subtask becomes
  // completed (ok or not), held dependants whose dependencies are all terminal are queued, and
  // the task becomes completed when every subtask is terminal. A repeat of the accepted result is
  // an idempotent success (duplicate); anything else for a subtask not leased to this
  // (agent, attempt) is a conflict with wire code "stale_lease". not_found for an unknown id.
  virtual Result<RecordOutcome> record_result(const ResultReport& report) = 0;
  // Queues held subtasks of the task whose dependencies are all terminal. Returns how many.
  // (record_result and expire_leases already do this; this is for repairs and tests.)
  virtual Result<int> promote_ready(const std::string& task_id) = 0;
  // not_found when unknown.
  virtual Result<TaskStatus> get_task(const std::string& task_id) = 0;
  // not_found when no result was accepted for the subtask.
  virtual Result<SubtaskResult> get_result(const std::string& subtask_id) = 0;
  // The subtask's fencing state and the lease_key of its last claim. not_found when unknown.
  virtual Result<LeaseKey> get_lease_key(const std::string& subtask_id) = 0;
  // Appends an event (id = previous + 1 for this task). not_found for an unknown task. The store
  // itself appends task_created, subtask_leased, subtask_result, subtask_requeued,
  // subtask_failed and task_completed in the same transactions as those changes.
  virtual Result<std::int64_t> append_event(const std::string& task_id, const std::string& kind,
                                            const std::string& data_json) = 0;
  // Events with id > after_id, oldest first, at most limit (0 = no limit).
  virtual Result<std::vector<TaskEvent>> list_events(const std::string& task_id,
                                                     std::int64_t after_id, int limit) = 0;
  // Deletes completed and cancelled tasks (with their subtasks, results and events) finished before
  // older_than_ms. The ledger and the audit log are never pruned.
  virtual Result<PruneCounts> prune(std::int64_t older_than_ms) = 0;
};

// Coordinator: blacklisted agents.
class BlacklistStore {
 public:
  virtual ~BlacklistStore() = default;
  // Inserts or replaces the agent's entry.
  virtual Result<void> put_blacklist(const BlacklistEntry& entry) = 0;
  // Returns whether an entry was removed.
  virtual Result<bool> remove_blacklist(const std::string& agent_id) = 0;
  // The active (unexpired) entry for the agent, if any.
  virtual Result<std::optional<BlacklistEntry>> get_blacklist(const std::string& agent_id) = 0;
  // Every active entry, by agent id.
  virtual Result<std::vector<BlacklistEntry>> list_blacklist() = 0;
  // The hash of the newest chain event (kBlacklistGenesis before the first) and the version
  // (the newest event's seq, 0 before the first).
  virtual Result<std::pair<std::string, std::int64_t>> blacklist_head() = 0;
  // Appends `event` to the chain and applies it to the active entries in one transaction: with
  // `entry` it replaces the agent's entry (an addition), without it removes the agent's entry (a
  // removal). conflict (wire code "blacklist_chain_moved") when event.prev_event_hash is not
  // the current head: read the head and build the event again.
  virtual Result<BlacklistEvent> append_blacklist_event(
      const BlacklistEvent& event, const std::optional<BlacklistEntry>& entry) = 0;
  // Events with seq > after_seq, oldest first, at most limit (0 = no limit).
  virtual Result<std::vector<BlacklistEvent>> list_blacklist_events(std::int64_t after_seq,
                                                                    int limit) = 0;
};

// Coordinator: the credits ledger. Append-only.
class LedgerStore {
 public:
  virtual ~LedgerStore() = default;
  // invalid_argument for an empty tx_id or account. Repeating a tx_id is a duplicate no-op.
  virtual Result<LedgerAppend> append_ledger(const LedgerEntry& entry) = 0;
  // Sum of the account's entries in millicredits (0 for an unknown account).
  virtual Result<std::int64_t> balance(const std::string& account_id) = 0;
  // The account's entries with seq > after_seq, oldest first, at most limit (0 = no limit).
  virtual Result<std::vector<LedgerEntry>> list_ledger(const std::string& account_id,
                                                       std::int64_t after_seq, int limit) = 0;
  // Appends `hold` (a negative amount) only if the account has ledger history and its balance
  // stays >= 0 after it — checked and written in one transaction, serialised per account across
  // coordinators sharing the store. A repeated tx_id is `duplicate` and changes nothing.
  // The hold's task_id must be set: a credit_holds row records it until settled.
  virtual Result<ReserveOutcome> reserve_credits(const LedgerEntry& hold) = 0;
  // Settles up to `limit` holds whose task has ended — completed with no failed subtask:
  // "release:<task>" (+) and "spend:<task>" (-); failed or cancelled: "release:<task>" only (the
  // refund) — and refunds holds older than `orphan_before_ms` whose task was never created. Each
  // settlement is idempotent (fixed tx ids) and removes its credit_holds row. A non-empty
  // `only_task` settles that task's hold alone.
  virtual Result<CreditSettlement> settle_credit_holds(std::int64_t orphan_before_ms, int limit,
                                                       const std::string& only_task = "") = 0;
  // The account's newest entries first, at most limit (0 = no limit).
  virtual Result<std::vector<LedgerEntry>> recent_ledger(const std::string& account_id,
                                                         int limit) = 0;
};

// Coordinator: the ordering chain, one hash chain of signed task events per coordinator id.
// Append-only; several coordinators on one PostgreSQL each append to their own chain.
class ChainStore {
 public:
  virtual ~ChainStore() = default;
  // From then on the store appends this coordinator's records in the transactions that make the
  // events happen: task_enqueue (create_task, actor = submitter), task_claim (claim_next, actor =
  // agent), task_requeue (expire_leases for requeued leases, actor = coordinator; release_lease,
  // actor = agent), task_complete (record_result, actor = agent) and earnings_accrual
  // (record_result when ResultReport::earn credits, actor = the account). Before it (or with an
  // empty coordinator id) nothing is appended. Set once before serving.
  virtual void set_chain_signer(ChainSigner signer) = 0;
  // Appends one record to the signer's chain: event_type, task_id, subtask_id, actor_id and
  // payload_json come from `draft`; coordinator_id, sequence, prev_hash, id, issued_at_ms, hash
  // and signature are filled in. invalid_argument without a signer or an event type.
  virtual Result<ChainRecord> append_chain(const ChainRecord& draft) = 0;
  // The newest record's (sequence, hash): (0, kChainGenesis) before the first.
  virtual Result<std::pair<std::int64_t, std::string>> chain_head(
      const std::string& coordinator_id) = 0;
  // Records with sequence > after_sequence, oldest first, at most limit (0 = no limit).
  virtual Result<std::vector<ChainRecord>> list_chain(const std::string& coordinator_id,
                                                      std::int64_t after_sequence, int limit) = 0;
};

// Control plane: the operator audit log. Append-only.
class AuditStore {
 public:
  virtual ~AuditStore() = default;
  // Returns the record's id. at_ms 0 = now.
  virtual Result<std::int64_t> append_audit(const AuditRecord& record) = 0;
  // Records with id > after_id, oldest first, at most limit (0 = no limit).
  virtual Result<std::vector<AuditRecord>> list_audit(std::int64_t after_id, int limit) = 0;
  // The newest records with this action and this target ("" = any), newest first, at most
  // `limit` (what a dashboard or one agent's view shows without reading the whole log).
  virtual Result<std::vector<AuditRecord>> recent_audit(const std::string& action,
                                                        const std::string& target, int limit) = 0;
};

// Coordinator: mesh-wide settings an operator changes at run time (the network mode), shared by
// every coordinator on the store.
class MeshSettingsStore {
 public:
  virtual ~MeshSettingsStore() = default;
  // nullopt when the setting was never stored.
  virtual Result<std::optional<MeshSetting>> get_mesh_setting(const std::string& key) = 0;
  // Inserts or replaces it (updated_at_ms = now). invalid_argument for an empty key.
  virtual Result<MeshSetting> put_mesh_setting(const std::string& key, const std::string& value,
                                               const std::string& updated_by) = 0;
};

// Coordinator: one model switch per agent (a new request replaces the old one).
class OrchestrationStore {
 public:
  virtual ~OrchestrationStore() = default;
  // Replaces the agent's orchestration with `o` in status "requested" (requested_at_ms and
  // updated_at_ms = now). invalid_argument for an empty agent, rollout or model.
  virtual Result<Orchestration> put_orchestration(const Orchestration& o) = 0;
  virtual Result<std::optional<Orchestration>> get_orchestration(const std::string& agent_id) = 0;
  // Those of one rollout (every one when rollout_id is empty), by agent id.
  virtual Result<std::vector<Orchestration>> list_orchestrations(const std::string& rollout_id) = 0;
  // The agent's report: status, message and progress. not_found when the agent has no
  // orchestration; conflict (wire code "orchestration_superseded") when rollout_id is non-empty
  // and not the current one.
  virtual Result<Orchestration> report_orchestration(const std::string& agent_id,
                                                     const std::string& rollout_id,
                                                     const std::string& status,
                                                     const std::string& message,
                                                     int progress_pct) = 0;
};

// Control plane: rollout policies and the agents enrolled in them.
class RolloutStore {
 public:
  virtual ~RolloutStore() = default;
  // Stores the rollout and inserts or replaces the given agent states in one transaction, if
  // nobody changed the rollout since it was read: version 0 creates it (conflict when the id
  // exists), version N updates it only while the stored version is N (else conflict, wire code
  // "rollout_changed": read it again). Returns the new version. invalid_argument for an empty
  // id or a state of another rollout.
  virtual Result<std::int64_t> put_rollout(const RolloutRecord& rollout,
                                           const std::vector<RolloutAgentState>& states) = 0;
  virtual Result<std::optional<RolloutRecord>> get_rollout(const std::string& id) = 0;
  // Oldest first.
  virtual Result<std::vector<RolloutRecord>> list_rollouts() = 0;
  // In enrolment order.
  virtual Result<std::vector<RolloutAgentState>> list_rollout_states(const std::string& id) = 0;
};

// Coordinator: what signed agent requests are checked against, shared by every coordinator on
// the store: the nonces seen (replay window) and fixed-window counters per agent and kind (the
// signed-request rate limit, behaviour evidence). Windows start at multiples of their length.
class RequestGuardStore {
 public:
  virtual ~RequestGuardStore() = default;
  // One transaction: remembers (agent, nonce) until nonce_expires_at_ms — a nonce remembered
  // and not yet expired is a replay (nothing is counted) — then counts the request in the
  // agent's rate window; past rate_max it is rate_limited (the nonce stays used).
  // invalid_argument for an empty agent or nonce.
  virtual Result<AdmissionOutcome> admit_signed_request(const SignedRequestAdmission& request) = 0;
  // Adds one to the (agent, kind) counter of the current window of window_ms (a new window
  // starts from zero) and returns it. invalid_argument for an empty agent or kind or
  // window_ms <= 0.
  virtual Result<CounterHit> bump_agent_counter(const std::string& agent_id,
                                                const std::string& kind,
                                                std::int64_t window_ms) = 0;
  // The counter's value in the current window of window_ms (0 when none).
  virtual Result<std::int64_t> agent_counter(const std::string& agent_id, const std::string& kind,
                                             std::int64_t window_ms) = 0;
  // Deletes expired nonces and counters whose window has ended. Returns the rows deleted.
  virtual Result<std::int64_t> prune_request_guards() = 0;
};

enum class Backend { sqlite, postgres };
std::string_view backend_name(Backend backend);

// Which service's data: with SQLite each service has its own file (<data>/<name>.db); with
// PostgreSQL they share the database, each using its own tables.
enum class ServiceName { coordinator, control_plane, portal };
std::string_view service_file_stem(ServiceName service);  // "coordinator", "control-plane", ...

struct MigrationInfo {
  int version = 0;
  std::string name;
  std::int64_t applied_at_ms = 0;  // 0 = not applied
};

struct SchemaStatus {
  int database_version = 0;               // highest applied
  int binary_version = 0;                 // highest this edgecoder knows
  std::vector<MigrationInfo> migrations;  // known and applied, by version
};

class Store : public AgentStore,
              public RegistrationTokenStore,
              public TaskStore,
              public BlacklistStore,
              public LedgerStore,
              public ChainStore,
              public AuditStore,
              public MeshSettingsStore,
              public OrchestrationStore,
              public RolloutStore,
              public RequestGuardStore {
 public:
  ~Store() override = default;

  virtual Backend backend() const = 0;
  // Where the data lives, without secrets: the SQLite file path or the PostgreSQL host/db.
  virtual std::string describe() const = 0;
  // True when the database answered recently (PostgreSQL: not in an outage). Cheap; for /ready.
  virtual bool ready() = 0;
  virtual Result<SchemaStatus> schema_status() = 0;
  // The agent mesh (store/agent_mesh.h): peers, tunnels, peer-direct offers. Lives as long as
  // the store.
  virtual AgentMeshStore& agent_mesh() = 0;

  // Runs `fn` on the store's thread pool; the completion resumes on the caller's executor.
  // From a coroutine, build the awaitable in its own statement, then await it (GCC 12 frees a
  // closure temporary that owns memory wrongly when it sits inside the co_await expression):
  //   auto call = store.run([&store, id] { return store.get_task(id); });
  //   auto status = co_await std::move(call);
  // Capture by value what the call needs, or by reference objects that outlive the await.
  template <typename F, typename R = std::invoke_result_t<F&>>
  boost::asio::awaitable<R> run(F fn) {
    return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(R)>(
        [this](auto handler, F f) {
          using Handler = decltype(handler);
          auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
          struct State {
            Handler handler;
            F f;
            decltype(work) guard;
          };
          // std::function needs a copyable callable; the handler is move-only.
          auto state =
              std::make_shared<State>(State{std::move(handler), std::move(f), std::move(work)});
          in_flight_.enter();
          submit([this, state] {
            auto result = std::make_shared<R>(state->f());
            auto ex = state->guard.get_executor();
            boost::asio::post(ex, [state, result] {
              std::move(state->handler)(std::move(*result));
              state->guard.reset();
            });
            in_flight_.leave();
          });
        },
        boost::asio::use_awaitable, std::move(fn));
  }

  // Like run(), for calls that write; R must be a Result<T>. The SQLite store runs `fn` on its
  // writer thread inside the group commit being built, so concurrent writes share one
  // transaction and one sync without a blocked thread per caller. The completion is posted only
  // once that commit is durable; when the shared commit failed, the result is its error.
  // Same calling rule as run(): build the awaitable in its own statement.
  template <typename F, typename R = std::invoke_result_t<F&>>
  boost::asio::awaitable<R> run_write(F fn) {
    return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(R)>(
        [this](auto handler, F f) {
          using Handler = decltype(handler);
          auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
          struct State {
            Handler handler;
            F f;
            decltype(work) guard;
            std::optional<R> result;  // set by the call, on the writer thread
          };
          auto state = std::make_shared<State>(
              State{std::move(handler), std::move(f), std::move(work), std::nullopt});
          in_flight_.enter();
          submit_batched(
              [state] { state->result.emplace(state->f()); },
              [this, state](core::Result<void> committed) {
                if (!state->result) {  // never ran, or threw
                  state->result.emplace(committed ? core::Error(core::Errc::internal,
                                                                "the store call did not complete")
                                                  : std::move(committed.error()));
                } else if (!committed && *state->result) {
                  state->result.emplace(std::move(committed.error()));
                }
                auto ex = state->guard.get_executor();
                boost::asio::post(ex, [state] {
                  std::move(state->handler)(std::move(*state->result));
                  state->guard.reset();
                });
                in_flight_.leave();
              });
        },
        boost::asio::use_awaitable, std::move(fn));
  }

  // Blocks until no run() or run_write() call is in flight. Call it once the loops that await
  // those calls have stopped, before their io_context is destroyed: a call that finished later
  // would post its completion into a destroyed loop.
  void wait_idle() { in_flight_.wait_zero(); }

  // Runs `job` on the store's thread pool (what run() builds on).
  virtual void submit(std::function<void()> job) = 0;
  // What run_write() builds on: runs `call`, then `committed` once its writes are durable.
  virtual void submit_batched(std::function<void()> call,
                              std::function<void(core::Result<void>)> committed) = 0;

 private:
  // How many run()/run_write() calls have not yet posted their completion.
  class InFlight {
   public:
    void enter() { count_.fetch_add(1); }
    void leave() {
      if (count_.fetch_sub(1) == 1) count_.notify_all();
    }
    void wait_zero() {
      for (auto n = count_.load(); n != 0; n = count_.load()) count_.wait(n);
    }

   private:
    std::atomic<std::size_t> count_{0};
  };
  InFlight in_flight_;
};

struct StoreOptions {
  // SQLite: the data directory (created 0700); the file is <data_dir>/<service>.db (0600).
  std::filesystem::path data_dir;
  // PostgreSQL when non-empty: a postgres:// or postgresql:// URI or a libpq keyword DSN.
  std::string database_url;
  ServiceName service = ServiceName::coordinator;
  // Apply pending migrations at open. When false, open fails unless the schema is current.
  bool migrate = true;
  int pg_pool_size = 8;  // connections
  int pg_statement_timeout_ms = 30'000;
  int pg_connect_timeout_s = 5;
  int thread_pool_size = 16;  // threads behind run()
  // Milliseconds since the epoch; tests replace it to move time.
  std::function<std::int64_t()> clock;
};

// Opens (and migrates) the store. Errors: unavailable when PostgreSQL cannot be reached or the
// SQLite file is locked by another process (wire code "store_locked"); conflict when the schema
// is newer than this binary or the database holds tables not made by these migrations
// (wire code "schema_mismatch"); internal for I/O failures.
Result<std::unique_ptr<Store>> open_store(const StoreOptions& options);

// StoreOptions from configuration: EDGECODER_DATA_DIR (config.data_dir), DATABASE_URL,
// EDGECODER_PG_POOL_SIZE, EDGECODER_PG_STATEMENT_TIMEOUT_MS.
Result<StoreOptions> store_options(const core::Config& config, ServiceName service);
Result<std::unique_ptr<Store>> open_store(const core::Config& config, ServiceName service);

// Retention: EDGECODER_RETENTION_DAYS (default 30; 0 = keep forever). Returns the cutoff to pass
// to TaskStore::prune for `now_ms`, or nullopt when retention is off.
inline constexpr std::string_view kRetentionDaysSetting = "EDGECODER_RETENTION_DAYS";
inline constexpr std::int64_t kDefaultRetentionDays = 30;
Result<std::optional<std::int64_t>> retention_cutoff_ms(const core::Config& config,
                                                        std::int64_t now_ms);

// The error every backend returns while its database cannot be reached.
core::Error store_unavailable(std::string detail);

// `clock`, or the system clock (milliseconds since the epoch) when it is empty: what services
// keep beside their store so that tests can move time for both.
std::function<std::int64_t()> clock_or_system(std::function<std::int64_t()> clock);

// A service's readiness as far as its store goes: an error naming the store when the database
// does not answer (what /ready reports).
core::Result<void> check_ready(Store& store);

}  // namespace edgecoder::store

// Value types of the durable store: agents, tasks and subtasks with their leases, results, task
// events, blacklist entries, credit-ledger entries and control-plane audit records. Plain data, no
// behaviour; the operations live in store.h. All times are Unix epoch milliseconds.
// Thread-safety: plain values; safe to copy between threads.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgecoder::store {

// ---- agents (coordinator) ----

// pending -> approved | denied (an operator may also move an agent back). "rejected" is read as
// denied (the name schema 1 used).
enum class Approval { pending, approved, denied };
std::string_view approval_name(Approval approval);
std::optional<Approval> parse_approval(std::string_view name);

// What an agent tells the coordinator about itself when it registers.
struct AgentInfo {
  std::string id;
  std::string os;
  std::string version;
  std::string mode;         // "swarm-only" | "ide-enabled"
  std::string client_type;  // "edgecoder-native", "edgecoder-ios", ...
  int max_concurrent_tasks = 1;
  std::string sandbox_mode = "none";
  std::string active_model;
  std::string public_key;              // Ed25519 SPKI PEM or empty
  std::string metadata_json = "{}";    // everything else the registry keeps (keys, client, ...)
  std::vector<std::string> languages;  // what its sandbox runs; empty = any language
  std::string telemetry_json;          // last power telemetry; empty = keep the stored one
  std::string runtime_json;            // {activeModelParamSize, modelSwapInProgress}; empty = keep
};

struct Agent {
  AgentInfo info;
  Approval approval = Approval::pending;
  std::string approval_actor;  // who last changed the approval
  std::int64_t approval_changed_at_ms = 0;
  std::int64_t registered_at_ms = 0;  // first registration
  std::int64_t last_seen_ms = 0;      // last upsert or touch
  std::int64_t last_claim_ms = 0;     // last lease granted to it (0 = never)
  std::string mode_override;          // set by an operator; empty = the declared info.mode
  const std::string& mode() const { return mode_override.empty() ? info.mode : mode_override; }
};

// What a heartbeat changes. Empty strings keep the stored value.
struct AgentHeartbeat {
  std::string agent_id;
  std::string active_model;
  std::string telemetry_json;
  std::string runtime_json;
  std::string sandbox_mode;
  std::int64_t lease_budget_ms = 0;  // renewed leases expire at now + timeout_ms + this
};

struct HeartbeatOutcome {
  Agent agent;      // after the update
  int renewed = 0;  // leases of this agent extended
};

// A registration: the agent's self-description plus the credential that may approve it.
struct AgentRegistration {
  AgentInfo info;
  std::string token_hash;     // sha256 hex of a presented registration token; empty = none
  bool auto_approve = false;  // AUTO_APPROVE_AGENTS: a pending agent becomes approved
};

enum class TokenCheck { none, valid, invalid };

struct RegisterOutcome {
  TokenCheck token = TokenCheck::none;  // invalid: nothing was stored
  bool created = false;                 // first registration of this agent id
  Agent agent;
};

// Operator-issued registration tokens. Only the SHA-256 of the token is stored.
struct RegistrationToken {
  std::string id;
  std::string token_hash;
  std::string label;
  std::string created_by;
  std::int64_t created_at_ms = 0;
  std::int64_t revoked_at_ms = 0;  // 0 = active
  std::int64_t last_used_at_ms = 0;
  std::int64_t uses = 0;
};

struct DiagnosticEvent {
  std::int64_t seq = 0;  // assigned by the store; increasing per agent
  std::int64_t event_at_ms = 0;
  std::string message;
  std::string source;
};

// ---- tasks and subtasks (coordinator) ----

// held (waiting on dependencies) -> queued -> leased -> completed | failed; any non-terminal
// state -> cancelled when the task is cancelled.
enum class SubtaskState { held, queued, leased, completed, failed, cancelled };
std::string_view subtask_state_name(SubtaskState state);
std::optional<SubtaskState> parse_subtask_state(std::string_view name);
inline bool is_terminal(SubtaskState s) {
  return s == SubtaskState::completed || s == SubtaskState::failed || s == SubtaskState::cancelled;
}

struct NewSubtask {
  std::string id;  // globally unique (the coordinator uses UUIDs)
  std::string kind = "single_step";
  std::string language = "python";
  std::string input;
  std::string payload_json = "{}";  // the wire subtask (snapshotRef, projectMeta, ...)
  std::string requested_model;      // empty = any model
  int priority = 50;                // higher is claimed first
  std::int64_t timeout_ms = 30'000;
  int max_attempts = 3;  // expired leases before the subtask is failed (dead); releases don't count
  std::vector<std::string> depends_on;  // ids of subtasks in the same task, in context order
  bool requires_sandbox = false;        // only agents whose sandboxMode is not "none" get it
};

struct NewTask {
  std::string id;
  std::string project_id = "default";
  std::string submitter;
  std::string payload_json = "{}";  // the accepted submission
  int priority = 50;
  std::vector<NewSubtask> subtasks;  // in output (assembly) order
};

struct CreatedTask {
  bool created = false;  // false = the task id already existed (idempotent repeat)
  std::vector<std::string> subtask_ids;
};

struct Subtask {
  std::string id;
  std::string task_id;
  int index = 0;  // position in the task's output order
  std::string kind;
  std::string language;
  std::string input;
  std::string payload_json;
  std::string project_id;
  std::string requested_model;
  int priority = 50;
  std::int64_t timeout_ms = 0;
  int max_attempts = 0;
  SubtaskState state = SubtaskState::queued;
  int attempt = 0;     // leases granted so far; the current lease's fencing token
  std::string holder;  // agent holding the lease (state leased), else empty
  std::int64_t lease_expires_at_ms = 0;
  std::string last_error;  // why it was last requeued or failed
  std::int64_t created_at_ms = 0;
  std::int64_t finished_at_ms = 0;
  std::vector<std::string> depends_on;
  bool requires_sandbox = false;
  int releases = 0;  // leases handed back with release_lease
};

// Claim order: requested model == active model first, then fair share across projects (the
// project granted the fewest leases so far), then higher priority, then older.
struct ClaimRequest {
  std::string agent_id;
  std::string active_model;            // preferred: subtasks requesting this model come first
  std::int64_t lease_budget_ms = 0;    // added to the subtask's timeout_ms to make the lease length
  std::vector<std::string> languages;  // only subtasks in these languages; empty = any
  bool sandboxed = true;               // false: skip subtasks that require a sandbox
  int max_concurrent = 0;              // no claim while the agent holds this many; 0 = no limit
  std::int64_t max_timeout_ms = 0;     // only subtasks with timeout_ms <= this; 0 = any
  // Stored with the lease, replacing the previous lease's (opaque to the store: the envelope key
  // material of src/coordinator/envelopes.cpp); empty = the lease is given in clear.
  std::string lease_key;
};

// The key material of a subtask's current (or last) lease, with the fencing state it belongs to.
struct LeaseKey {
  std::string subtask_id;
  SubtaskState state = SubtaskState::queued;
  std::string holder;  // empty unless leased
  int attempt = 0;
  std::string key;  // ClaimRequest::lease_key of the last claim; never log it
};

// The output of one dependency of a leased subtask, in depends_on order.
struct DependencyOutput {
  std::string subtask_id;
  bool has_result = false;  // false: the dependency failed or was cancelled without a result
  bool ok = false;
  std::string output;
};

struct Lease {
  Subtask subtask;  // as leased: state leased, attempt = fencing token
  int attempt = 0;
  std::int64_t expires_at_ms = 0;
  std::vector<DependencyOutput> dependencies;
};

struct ReleaseRequest {
  std::string subtask_id;
  std::string agent_id;
  int attempt = 0;  // 0 = whatever the current attempt is (holder checked alone)
  std::string reason;
};

struct CancelOutcome {
  bool cancelled = false;  // false: the task had already finished
  int subtasks = 0;        // subtasks moved to cancelled
};

struct ExpiredLeases {
  int requeued = 0;
  int failed = 0;  // past max_attempts: dead, kept with state failed
};

struct Earning;

struct ResultReport {
  std::string subtask_id;
  std::string agent_id;
  int attempt = 0;  // the fencing token the agent was given; 0 = unknown (holder checked alone)
  bool ok = false;
  std::string output;
  std::string error;
  std::int64_t duration_ms = 0;
  int iterations = 0;      // code runs with the agent's own model; 0 = not reported
  bool escalated = false;  // the agent asked /escalate for a larger model's code
  // Credit accrual, called inside the transaction that accepts the result (never for a duplicate
  // or a stale one) with the subtask as stored: fills `earning` and returns true to credit it.
  // The entry is appended to the credits ledger in that transaction; its tx_id must identify
  // the subtask (a tx_id already there is not appended again).
  std::function<bool(const Subtask& subtask, Earning& earning)> earn;
};

enum class RecordOutcome { accepted, duplicate };

struct SubtaskResult {
  std::string subtask_id;
  std::string task_id;
  std::string agent_id;
  int attempt = 0;
  bool ok = false;
  std::string output;
  std::string error;
  std::int64_t duration_ms = 0;
  std::int64_t created_at_ms = 0;
  int iterations = 0;  // as reported (ResultReport)
  bool escalated = false;
};

// completed = every subtask terminal; cancelled = cancelled before that.
enum class TaskState { open, completed, cancelled };
std::string_view task_state_name(TaskState state);

struct TaskStatus {
  std::string id;
  std::string project_id;
  std::string submitter;
  std::string payload_json;
  int priority = 0;
  TaskState state = TaskState::open;
  std::int64_t created_at_ms = 0;
  std::int64_t completed_at_ms = 0;
  std::int64_t last_event_id = 0;
  std::vector<Subtask> subtasks;  // in index order
};

struct TaskEvent {
  std::string task_id;
  std::int64_t id = 0;  // 1, 2, 3, ... per task (SSE Last-Event-ID)
  std::string kind;
  std::string data_json;
  std::int64_t created_at_ms = 0;
};

// Counts for /status and /health/runtime.
struct QueueCounts {
  std::int64_t held = 0;
  std::int64_t queued = 0;
  std::int64_t leased = 0;
  std::int64_t completed = 0;
  std::int64_t failed = 0;
  std::int64_t cancelled = 0;
  std::int64_t results = 0;
  std::int64_t tasks_open = 0;
  std::int64_t tasks_finished = 0;  // completed or cancelled
  std::int64_t agents = 0;
  std::int64_t agents_approved = 0;
  std::int64_t agents_pending = 0;
  std::int64_t agents_denied = 0;
  std::int64_t agents_online = 0;  // last_seen_ms >= the given cutoff
};

// ---- blacklist (coordinator) ----

struct BlacklistEntry {
  std::string agent_id;
  std::string reason_code;
  std::string reason;
  std::string reporter_id;
  std::string record_json = "{}";  // the signed, hash-chained record
  std::int64_t created_at_ms = 0;  // 0 = now when stored
  std::int64_t expires_at_ms = 0;  // 0 = never
};

// One event of the blacklist chain: an addition or a removal, as the coordinator signed it.
// record_json holds {event, eventHash, signature, publicKeyPem}; event_hash is SHA-256 of the
// canonical event JSON, which names prev_event_hash.
struct BlacklistEvent {
  std::int64_t seq = 0;  // assigned by the store; the chain's version
  std::string event_hash;
  std::string prev_event_hash;
  std::string agent_id;
  std::string action;  // "add" | "remove"
  std::string record_json = "{}";
  std::int64_t created_at_ms = 0;  // 0 = now when stored
};

inline constexpr std::string_view kBlacklistGenesis = "BLACKLIST_GENESIS";

// ---- credits ledger (coordinator; append-only) ----

struct LedgerEntry {
  std::int64_t seq = 0;  // assigned by the store; increasing
  std::string tx_id;     // unique; appending an existing tx_id is an idempotent no-op
  std::string account_id;
  std::string kind;                      // "earn", "spend", "adjust", "held", ...
  std::int64_t amount_millicredits = 0;  // signed; 1 credit = 1000
  std::string reason;
  std::string task_id;
  std::int64_t created_at_ms = 0;
};

// A credit accrual for an accepted result (ResultReport::earn).
struct Earning {
  LedgerEntry entry;         // tx_id, account_id, kind, amount, reason, task_id
  std::string payload_json;  // the earnings_accrual chain record's payloadJson
};

struct LedgerAppend {
  std::int64_t seq = 0;
  bool duplicate = false;  // the tx_id was already recorded; nothing changed
};

enum class ReserveOutcome {
  reserved,
  duplicate,     // the tx_id was already recorded
  no_history,    // the account has never earned or been granted anything
  insufficient,  // the balance would go below zero
};

struct CreditSettlement {
  int committed = 0;  // tasks completed: hold released and spent
  int refunded = 0;   // tasks failed, cancelled or never created: hold released
};

// ---- ordering chain (coordinator; append-only; one chain per coordinator id) ----

// One record of the ordering chain (upstream QueueEventRecord, reference §8.1). hash = lower-case
// hex SHA-256 of chain_record_canonical(); signature = base64 Ed25519 (the coordinator's key) over
// the UTF-8 bytes of that hex hash.
struct ChainRecord {
  std::string coordinator_id;
  std::int64_t sequence = 0;  // 1-based within the coordinator's chain
  std::string id;             // a UUID
  std::string
      event_type;  // task_enqueue, task_claim, task_requeue, task_complete, earnings_accrual
  std::string task_id;
  std::string subtask_id;  // "" = absent (omitted from the hash)
  std::string actor_id;
  std::int64_t issued_at_ms = 0;
  std::string prev_hash;     // kChainGenesis for the first record
  std::string payload_json;  // "" = absent; else a JSON text hashed as a string
  std::string hash;
  std::string signature;
};

inline constexpr std::string_view kChainGenesis = "GENESIS";

// The JSON text the hash covers, as JavaScript's JSON.stringify writes it: keys eventType,
// taskId, subtaskId, actorId, sequence, issuedAtMs, prevHash, coordinatorId, payloadJson in this
// order, absent optional fields omitted.
std::string chain_record_canonical(const ChainRecord& record);
// sha256_hex(chain_record_canonical(record)).
std::string chain_record_hash(const ChainRecord& record);

// How the store seals the records it appends: this coordinator's id and its signing function
// (base64 Ed25519 signature of the hex hash).
struct ChainSigner {
  std::string coordinator_id;
  std::function<std::string(std::string_view hash)> sign;
};

// ---- audit log (control plane; append-only) ----

struct AuditRecord {
  std::int64_t id = 0;  // assigned by the store; increasing
  std::int64_t at_ms = 0;
  std::string actor;
  std::string action;
  std::string target;
  std::string detail_json = "{}";
};

// ---- mesh settings (coordinator) ----

struct MeshSetting {
  std::string key;
  std::string value;
  std::string updated_by;
  std::int64_t updated_at_ms = 0;
};

// ---- model orchestration (coordinator) and rollouts (control plane) ----

// One model switch asked of one agent, delivered in its heartbeat. status: requested ->
// downloading -> applied -> healthy (the agent runs the model and a probe generation with it
// succeeded) | failed.
struct Orchestration {
  std::string agent_id;
  std::string rollout_id;
  std::string provider;
  std::string model;
  std::string status = "requested";
  std::string message;
  int progress_pct = -1;  // -1 = unknown
  std::string requested_by;
  std::int64_t requested_at_ms = 0;
  std::int64_t updated_at_ms = 0;
};

// A rollout's policy and stage as the control plane keeps them (JSON: the policy is the wire
// object of docs/control-plane.md).
struct RolloutRecord {
  std::string id;
  std::string policy_json = "{}";
  std::int64_t version = 0;        // 0 = not stored yet; each put_rollout adds one
  std::int64_t created_at_ms = 0;  // 0 = now when stored
  std::int64_t updated_at_ms = 0;  // set by the store
};

// One agent enrolled in a rollout. status: pending | downloading | applied | healthy | failed;
// rollback marks the switch back to previous_model.
struct RolloutAgentState {
  std::string rollout_id;
  std::string agent_id;
  std::string status = "pending";
  std::string target_model;
  std::string previous_model;
  std::string error;
  bool rollback = false;
  std::int64_t enrolled_at_ms = 0;  // 0 = now when first stored
  std::int64_t updated_at_ms = 0;   // set by the store
};

// ---- signed agent requests: replay window, rate limit, behaviour counters ----

// One signed agent request to admit (upstream-coordinator.md §5.2, §5.3).
struct SignedRequestAdmission {
  std::string agent_id;
  std::string nonce;
  std::int64_t nonce_expires_at_ms = 0;  // the nonce is remembered until then
  std::int64_t rate_window_ms = 60'000;  // fixed windows of this length (ms since the epoch)
  std::int64_t rate_max = 0;             // requests per window; 0 = no limit
};

enum class Admission { admitted, replay, rate_limited };

struct AdmissionOutcome {
  Admission admission = Admission::admitted;
  std::int64_t count = 0;           // requests counted in the current window (0 for a replay)
  std::int64_t retry_after_ms = 0;  // rate_limited: until the window ends
};

// A fixed-window counter after an increment.
struct CounterHit {
  std::int64_t count = 0;  // in the current window, this increment included
  std::int64_t window_start_ms = 0;
};

// ---- retention ----

struct PruneCounts {
  std::int64_t tasks = 0;
  std::int64_t subtasks = 0;
  std::int64_t results = 0;
  std::int64_t events = 0;
};

}  // namespace edgecoder::store

// Value types of the durable store: agents, tasks and subtasks with their leases, results, task
// events, blacklist entries, credit-ledger entries and control-plane audit records. Plain data, no
// behaviour; the operations live in store.h. All times are Unix epoch milliseconds.
// Thread-safety: plain values; safe to copy between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgecoder::store {

// ---- agents (coordinator) ----

enum class Approval { pending, approved, rejected };
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
  std::string public_key;            // Ed25519 SPKI PEM or empty
  std::string metadata_json = "{}";  // everything else the registry keeps (telemetry, keys, ...)
};

struct Agent {
  AgentInfo info;
  Approval approval = Approval::pending;
  std::string approval_actor;  // who last changed the approval
  std::int64_t approval_changed_at_ms = 0;
  std::int64_t registered_at_ms = 0;  // first registration
  std::int64_t last_seen_ms = 0;      // last upsert or touch
};

// ---- tasks and subtasks (coordinator) ----

// held (waiting on dependencies) -> queued -> leased -> completed | failed.
enum class SubtaskState { held, queued, leased, completed, failed };
std::string_view subtask_state_name(SubtaskState state);
std::optional<SubtaskState> parse_subtask_state(std::string_view name);
inline bool is_terminal(SubtaskState s) {
  return s == SubtaskState::completed || s == SubtaskState::failed;
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
  int max_attempts = 3;                 // leases granted before the subtask is failed (dead)
  std::vector<std::string> depends_on;  // ids of subtasks in the same task
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
};

struct ClaimRequest {
  std::string agent_id;
  std::string active_model;          // preferred: subtasks requesting this model come first
  std::int64_t lease_budget_ms = 0;  // added to the subtask's timeout_ms to make the lease length
};

struct Lease {
  Subtask subtask;  // as leased: state leased, attempt = fencing token
  int attempt = 0;
  std::int64_t expires_at_ms = 0;
};

struct ExpiredLeases {
  int requeued = 0;
  int failed = 0;  // past max_attempts: dead, kept with state failed
};

struct ResultReport {
  std::string subtask_id;
  std::string agent_id;
  int attempt = 0;  // the fencing token the agent was given
  bool ok = false;
  std::string output;
  std::string error;
  std::int64_t duration_ms = 0;
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
};

enum class TaskState { open, completed };  // completed = every subtask terminal
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

struct LedgerAppend {
  std::int64_t seq = 0;
  bool duplicate = false;  // the tx_id was already recorded; nothing changed
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

// ---- retention ----

struct PruneCounts {
  std::int64_t tasks = 0;
  std::int64_t subtasks = 0;
  std::int64_t results = 0;
  std::int64_t events = 0;
};

}  // namespace edgecoder::store

// Wire types of the coordinator's agent and task routes (shared by the coordinator, the agent and
// the CLI). Field names are the existing clients' (upstream-coordinator.md §2, §4.7); new fields
// are added, never renamed: sandboxMode (bwrap|process|docker|vm|none), languages, attempt (the
// lease's fencing token), POST /release. parse_* validate a request body and return
// Errc::invalid_argument "invalid_request" naming the bad field; to_json builds responses.
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace edgecoder::api {

// Sandbox modes an agent may report; "none" means generated code runs unsandboxed.
inline const std::vector<std::string_view> kSandboxModes = {"bwrap", "process", "docker", "vm",
                                                            "none"};
// What an agent that does not send `languages` is assumed to run (the Node worker's set).
inline const std::vector<std::string> kDefaultAgentLanguages = {"python", "javascript"};

// ---- agent lifecycle ----

struct RegisterRequest {
  std::string agent_id;
  std::string device_id;
  std::string os;
  std::string version;
  std::string mode = "swarm-only";  // swarm-only | ide-enabled
  std::string registration_token;
  std::string local_model_provider = "edgecoder-local";
  std::string client_type = "edgecoder-native";
  int max_concurrent_tasks = 1;  // 1..64
  std::optional<nlohmann::json> power_telemetry;
  std::string public_key_pem;
  std::string x25519_public_key;
  std::string sandbox_mode = "none";
  std::vector<std::string> languages;  // empty = kDefaultAgentLanguages
  std::string active_model;
  std::optional<nlohmann::json> active_model_param_size;
  std::optional<nlohmann::json> binary_integrity;
};
core::Result<RegisterRequest> parse_register(const nlohmann::json& body);

struct HeartbeatRequest {
  std::string agent_id;
  std::optional<nlohmann::json> power_telemetry;
  std::string active_model;
  std::optional<nlohmann::json> active_model_param_size;
  std::optional<bool> model_swap_in_progress;
  std::string sandbox_mode;  // empty = unchanged
};
core::Result<HeartbeatRequest> parse_heartbeat(const nlohmann::json& body);

struct PullRequest {
  std::string agent_id;
};
core::Result<PullRequest> parse_pull(const nlohmann::json& body);

struct ResultRequest {
  std::string subtask_id;
  std::string task_id;
  std::string agent_id;
  bool ok = false;
  std::string output;
  std::string error;
  std::int64_t duration_ms = 0;
  int attempt = 0;  // 0 = not sent (checked by holder id alone)
  std::string report_nonce;
  std::string report_signature;
  int iterations = 0;      // code runs with the agent's own model; 0 = not reported
  bool escalated = false;  // the agent used the coordinator's /escalate
  // The body carries encryptedPayload (api/envelope.h): ok, output, error, durationMs,
  // iterations and escalated are inside it and not read here; open_result() then parse again.
  bool encrypted = false;
};
core::Result<ResultRequest> parse_result(const nlohmann::json& body);

struct ReleaseRequest {
  std::string agent_id;
  std::string subtask_id;
  int attempt = 0;
  std::string reason;
};
core::Result<ReleaseRequest> parse_release(const nlohmann::json& body);

struct DiagnosticEventIn {
  std::int64_t event_at_ms = 0;  // 0 = now
  std::string message;           // 1..500
};
struct DiagnosticsRequest {
  std::string agent_id;
  std::vector<DiagnosticEventIn> events;  // at most 40
  std::string source;
};
core::Result<DiagnosticsRequest> parse_diagnostics(const nlohmann::json& body);

// ---- tasks ----

// Fields common to /submit and /tasks.
struct TaskOptions {
  std::string task_id;  // empty = the coordinator assigns one
  std::string language = "python";
  std::string snapshot_ref;
  std::string submitter_account_id = "anonymous";
  std::string project_id = "default";
  std::string tenant_id;
  std::string resource_class = "cpu";  // cpu | gpu
  int priority = 50;                   // 0..100
  std::string requested_model;
  bool sandbox_required = false;
  int max_attempts = 3;
};

struct SubmitRequest {
  TaskOptions options;
  std::string prompt;
};
core::Result<SubmitRequest> parse_submit(const nlohmann::json& body);

// A dependency by id (of a subtask in the same request) or by 0-based index in `subtasks`.
using DependencyRef = std::variant<std::string, std::int64_t>;

struct SubtaskSpec {
  std::string id;     // optional; the coordinator assigns one when empty
  std::string input;  // `input`, or `prompt` as the iOS app and the IDE send
  std::string language;
  std::string kind = "single_step";
  std::int64_t timeout_ms = 30'000;
  std::string requested_model;
  std::vector<DependencyRef> depends_on;
};

struct TasksRequest {
  TaskOptions options;
  std::string prompt;  // optional description of the whole task
  std::vector<SubtaskSpec> subtasks;
};
core::Result<TasksRequest> parse_tasks(const nlohmann::json& body);

// The subtask as agents receive it from /pull (and as stored with the subtask).
struct ProjectMeta {
  std::string project_id = "default";
  std::string tenant_id;
  std::string resource_class = "cpu";
  int priority = 50;
};
struct WireSubtask {
  std::string id;
  std::string task_id;
  std::string kind = "single_step";
  std::string language = "python";
  std::string input;
  std::int64_t timeout_ms = 30'000;
  std::string snapshot_ref;
  ProjectMeta project_meta;
  std::string requested_model;
  std::vector<std::string> depends_on;
  int subtask_index = 0;
  int attempt = 0;                       // set when leased
  std::int64_t lease_expires_at_ms = 0;  // set when leased
};
nlohmann::json to_json(const WireSubtask& s);
// Reads what to_json wrote: a stored payload, or a /pull answer with its lease (attempt,
// leaseExpiresAtMs); missing fields keep their defaults.
WireSubtask wire_subtask_from_json(const nlohmann::json& j);

// ---- coordinator -> inference /decompose ----

struct DecomposeRequest {
  std::string task_id;
  std::string prompt;
  std::string snapshot_ref;
  std::string language;
};
nlohmann::json to_json(const DecomposeRequest& r);

struct DecomposedSubtask {
  std::string input;
  std::string language;
  std::string kind;
  std::int64_t timeout_ms = 30'000;
  std::vector<DependencyRef> depends_on;
  std::optional<int> subtask_index;
};
// {subtasks:[...]} from the inference service; at least one subtask.
core::Result<std::vector<DecomposedSubtask>> parse_decompose_response(const nlohmann::json& body);

// ---- signed agent requests (upstream-coordinator.md §5.2) ----

// The routes an agent signs (POST only; the path without a query).
bool is_signed_agent_route(std::string_view path);
// The string an agent signs: "timestamp\nnonce\nMETHOD\npath\nbodySha256".
std::string agent_request_canonical(std::string_view timestamp_ms, std::string_view nonce,
                                    std::string_view method, std::string_view path,
                                    std::string_view body_sha256);
// The five headers of a signed request — x-agent-id, x-timestamp-ms, x-nonce (a UUID v4),
// x-body-sha256 (hex SHA-256 of exactly `body`), x-signature (base64 Ed25519 with the 64-byte
// `secret_key`) — as (name, value) pairs.
core::Result<std::vector<std::pair<std::string, std::string>>> sign_agent_request(
    std::string_view agent_id, std::string_view secret_key, std::string_view method,
    std::string_view path, std::string_view body, std::int64_t now_ms);

// ---- POST /escalate (agents -> coordinator -> inference /escalate) ----

struct EscalateRequest {
  std::string task_id;
  std::string agent_id;
  std::string task;         // the subtask's input (non-empty)
  std::string failed_code;  // the last code that failed (may be empty)
  std::vector<std::string> error_history;
  std::string language;  // python | javascript
  int iterations_attempted = 1;
};
core::Result<EscalateRequest> parse_escalate(const nlohmann::json& body);
// What the coordinator sends on to the inference service's /escalate.
nlohmann::json to_inference_json(const EscalateRequest& r);

// 40-hex commit id (any case) or an https:// URL.
bool valid_snapshot_ref(std::string_view ref);

}  // namespace edgecoder::api

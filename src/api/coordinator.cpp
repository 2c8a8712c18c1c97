#include "api/coordinator.h"

#include "api/json_reader.h"
#include "core/crypto.h"

namespace edgecoder::api {

namespace {

constexpr std::size_t kMaxInputBytes = 256 * 1024;
constexpr std::size_t kMaxOutputBytes = 4 * 1024 * 1024;
constexpr std::size_t kMaxSubtasks = 100;

std::string read_id(JsonReader& r, std::string_view key, bool required) {
  std::string v = r.str(key, required, 1, 128);
  if (!v.empty() && !is_identifier(v)) r.fail(key, "expected letters, digits and ._:@+#/-");
  return v;
}

std::string read_language(JsonReader& r, std::string_view key, std::string fallback) {
  std::string v = r.str(key, false, 1, 32, fallback);
  if (!v.empty() && !is_identifier(v, 32)) r.fail(key, "expected a language name");
  return v;
}

std::vector<std::string> read_languages(JsonReader& r, std::string_view key) {
  std::vector<std::string> out;
  const auto* arr = r.array(key, 32);
  if (!arr) return out;
  for (const auto& v : *arr) {
    if (!v.is_string() || !is_identifier(v.get_ref<const std::string&>(), 32)) {
      r.fail(key, "expected an array of language names");
      return {};
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::vector<DependencyRef> read_depends_on(JsonReader& r, std::string_view key) {
  std::vector<DependencyRef> out;
  const auto* arr = r.array(key, kMaxSubtasks);
  if (!arr) return out;
  for (const auto& v : *arr) {
    if (v.is_number_integer() && v.get<std::int64_t>() >= 0) {
      out.emplace_back(v.get<std::int64_t>());
    } else if (v.is_string() && is_identifier(v.get_ref<const std::string&>())) {
      out.emplace_back(v.get<std::string>());
    } else {
      r.fail(key, "expected subtask ids or 0-based indexes");
      return {};
    }
  }
  return out;
}

TaskOptions read_task_options(JsonReader& r) {
  TaskOptions o;
  o.task_id = read_id(r, "taskId", false);
  o.language = read_language(r, "language", "python");
  o.snapshot_ref = r.str("snapshotRef", false, 0, 2048);
  if (!o.snapshot_ref.empty() && !valid_snapshot_ref(o.snapshot_ref)) {
    r.fail("snapshotRef", "expected a 40-hex commit id or an https:// URL");
  }
  o.submitter_account_id = r.str("submitterAccountId", false, 1, 128, "anonymous");
  o.project_id = read_id(r, "projectId", false);
  if (o.project_id.empty()) o.project_id = "default";
  o.tenant_id = r.str("tenantId", false, 0, 128);
  o.resource_class = r.one_of("resourceClass", {"cpu", "gpu"}, "cpu");
  o.priority = static_cast<int>(r.integer("priority", 0, 100, 50));
  o.requested_model = r.str("requestedModel", false, 0, 128);
  o.sandbox_required = r.boolean("sandboxRequired", false);
  o.max_attempts = static_cast<int>(r.integer("maxAttempts", 1, 20, 3));
  return o;
}

}  // namespace

bool valid_snapshot_ref(std::string_view ref) {
  if (ref.size() == 40) {
    bool hex = true;
    for (char c : ref) {
      hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
    }
    if (hex) return true;
  }
  return ref.size() > 8 && ref.substr(0, 8) == "https://";
}

core::Result<RegisterRequest> parse_register(const nlohmann::json& body) {
  JsonReader r(body);
  RegisterRequest q;
  q.agent_id = read_id(r, "agentId", true);
  q.device_id = r.str("deviceId", false, 3, 128);
  q.os = r.str("os", false, 2, 64, "unknown");
  q.version = r.str("version", false, 0, 64);
  q.mode = r.one_of("mode", {"swarm-only", "ide-enabled"}, "swarm-only");
  q.registration_token = r.str("registrationToken", false, 0, 512);
  q.local_model_provider = r.str("localModelProvider", false, 1, 64, "edgecoder-local");
  q.client_type = r.str("clientType", false, 1, 64, "edgecoder-native");
  q.max_concurrent_tasks = static_cast<int>(r.integer("maxConcurrentTasks", 1, 64, 1));
  q.power_telemetry = r.object("powerTelemetry");
  q.public_key_pem = r.str("publicKeyPem", false, 0, 4096);
  q.x25519_public_key = r.str("x25519PublicKey", false, 0, 256);
  if (!q.x25519_public_key.empty()) {
    // Envelopes are sealed for this key: a malformed one is refused here, not at the first /pull.
    auto raw = core::crypto::base64_decode(q.x25519_public_key);
    if (!raw || raw->size() != 32) {
      r.fail("x25519PublicKey", "expected base64 of 32 raw bytes");
    } else if (!core::crypto::x25519_shared(core::crypto::random_bytes(32), *raw)) {
      r.fail("x25519PublicKey", "not a usable X25519 public key (small order)");
    }
  }
  q.sandbox_mode = r.one_of("sandboxMode", kSandboxModes, "none");
  q.languages = read_languages(r, "languages");
  q.active_model = r.str("activeModel", false, 0, 128);
  if (r.has("activeModelParamSize")) q.active_model_param_size = body["activeModelParamSize"];
  q.binary_integrity = r.object("binaryIntegrity");
  if (!r.ok()) return *r.error();
  return q;
}

core::Result<HeartbeatRequest> parse_heartbeat(const nlohmann::json& body) {
  JsonReader r(body);
  HeartbeatRequest q;
  q.agent_id = read_id(r, "agentId", true);
  q.power_telemetry = r.object("powerTelemetry");
  q.active_model = r.str("activeModel", false, 0, 128);
  if (r.has("activeModelParamSize")) q.active_model_param_size = body["activeModelParamSize"];
  q.model_swap_in_progress = r.opt_boolean("modelSwapInProgress");
  if (r.has("sandboxMode")) q.sandbox_mode = r.one_of("sandboxMode", kSandboxModes, "");
  if (!r.ok()) return *r.error();
  return q;
}

core::Result<PullRequest> parse_pull(const nlohmann::json& body) {
  JsonReader r(body);
  PullRequest q;
  q.agent_id = read_id(r, "agentId", true);
  if (!r.ok()) return *r.error();
  return q;
}

core::Result<ResultRequest> parse_result(const nlohmann::json& body) {
  JsonReader r(body);
  ResultRequest q;
  q.subtask_id = read_id(r, "subtaskId", true);
  q.task_id = r.str("taskId", false, 0, 128);
  q.agent_id = read_id(r, "agentId", true);
  q.attempt = static_cast<int>(r.integer("attempt", 1, 1'000'000, 0));
  q.encrypted = r.has("encryptedPayload");
  if (!q.encrypted) {
    q.ok = r.boolean("ok", false, true);
    q.output = r.str("output", false, 0, kMaxOutputBytes);
    q.error = r.str("error", false, 0, kMaxOutputBytes);
    q.duration_ms = r.number("durationMs", 0, 1e12, 0);
    q.iterations = static_cast<int>(r.integer("iterations", 0, 1000, 0));
    q.escalated = r.boolean("escalated", false);
  }
  q.report_nonce = r.str("reportNonce", false, 0, 256);
  q.report_signature = r.str("reportSignature", false, 0, 1024);
  if (!r.ok()) return *r.error();
  return q;
}

core::Result<ReleaseRequest> parse_release(const nlohmann::json& body) {
  JsonReader r(body);
  ReleaseRequest q;
  q.agent_id = read_id(r, "agentId", true);
  q.subtask_id = read_id(r, "subtaskId", true);
  q.attempt = static_cast<int>(r.integer("attempt", 1, 1'000'000, 0));
  q.reason = r.str("reason", false, 0, 500);
  if (!r.ok()) return *r.error();
  return q;
}

core::Result<DiagnosticsRequest> parse_diagnostics(const nlohmann::json& body) {
  JsonReader r(body);
  DiagnosticsRequest q;
  q.agent_id = read_id(r, "agentId", true);
  q.source = r.str("source", false, 0, 64);
  const auto* events = r.array("events", 40, true);
  if (events) {
    for (std::size_t i = 0; i < events->size() && r.ok(); ++i) {
      JsonReader e((*events)[i], "events[" + std::to_string(i) + "]");
      DiagnosticEventIn ev;
      ev.event_at_ms = e.number("eventAtMs", 0, 1e15, 0);
      ev.message = e.str("message", true, 1, 500);
      if (!e.ok()) return *e.error();
      q.events.push_back(std::move(ev));
    }
  }
  if (!r.ok()) return *r.error();
  return q;
}

core::Result<SubmitRequest> parse_submit(const nlohmann::json& body) {
  JsonReader r(body);
  SubmitRequest q;
  q.options = read_task_options(r);
  q.prompt = r.str("prompt", true, 1, kMaxInputBytes);
  if (!r.ok()) return *r.error();
  return q;
}

core::Result<TasksRequest> parse_tasks(const nlohmann::json& body) {
  JsonReader r(body);
  TasksRequest q;
  q.options = read_task_options(r);
  q.prompt = r.str("prompt", false, 0, kMaxInputBytes);
  const auto* subs = r.array("subtasks", kMaxSubtasks, true);
  if (subs && subs->empty()) r.fail("subtasks", "expected at least one subtask");
  if (!r.ok()) return *r.error();
  for (std::size_t i = 0; i < subs->size(); ++i) {
    JsonReader s((*subs)[i], "subtasks[" + std::to_string(i) + "]");
    SubtaskSpec spec;
    spec.id = read_id(s, "id", false);
    spec.input = s.str("input", false, 1, kMaxInputBytes);
    if (spec.input.empty()) spec.input = s.str("prompt", false, 1, kMaxInputBytes);
    if (spec.input.empty() && s.ok()) s.fail("input", "is required (input or prompt)");
    spec.language = read_language(s, "language", q.options.language);
    spec.kind = s.one_of("kind", {"single_step", "micro_loop"}, "single_step");
    spec.timeout_ms = s.integer("timeoutMs", 1'000, 3'600'000, 30'000);
    spec.requested_model = s.str("requestedModel", false, 0, 128, q.options.requested_model);
    spec.depends_on = read_depends_on(s, "dependsOn");
    if (!s.ok()) return *s.error();
    q.subtasks.push_back(std::move(spec));
  }
  return q;
}

nlohmann::json to_json(const WireSubtask& s) {
  nlohmann::json meta = {{"projectId", s.project_meta.project_id},
                         {"resourceClass", s.project_meta.resource_class},
                         {"priority", s.project_meta.priority}};
  if (!s.project_meta.tenant_id.empty()) meta["tenantId"] = s.project_meta.tenant_id;
  nlohmann::json j = {{"id", s.id},
                      {"taskId", s.task_id},
                      {"kind", s.kind},
                      {"language", s.language},
                      {"input", s.input},
                      {"timeoutMs", s.timeout_ms},
                      {"snapshotRef", s.snapshot_ref},
                      {"projectMeta", std::move(meta)},
                      {"subtaskIndex", s.subtask_index}};
  if (!s.requested_model.empty()) j["requestedModel"] = s.requested_model;
  if (!s.depends_on.empty()) j["dependsOn"] = s.depends_on;
  if (s.attempt > 0) {
    j["attempt"] = s.attempt;
    j["leaseExpiresAtMs"] = s.lease_expires_at_ms;
  }
  return j;
}

WireSubtask wire_subtask_from_json(const nlohmann::json& j) {
  WireSubtask s;
  if (!j.is_object()) return s;
  s.id = j.value("id", "");
  s.task_id = j.value("taskId", "");
  s.kind = j.value("kind", "single_step");
  s.language = j.value("language", "python");
  s.input = j.value("input", "");
  s.timeout_ms = j.value("timeoutMs", std::int64_t{30'000});
  s.snapshot_ref = j.value("snapshotRef", "");
  if (auto it = j.find("projectMeta"); it != j.end() && it->is_object()) {
    s.project_meta.project_id = it->value("projectId", "default");
    s.project_meta.tenant_id = it->value("tenantId", "");
    s.project_meta.resource_class = it->value("resourceClass", "cpu");
    s.project_meta.priority = it->value("priority", 50);
  }
  s.requested_model = j.value("requestedModel", "");
  if (auto it = j.find("dependsOn"); it != j.end() && it->is_array()) {
    for (const auto& d : *it) {
      if (d.is_string()) s.depends_on.push_back(d.get<std::string>());
    }
  }
  s.subtask_index = j.value("subtaskIndex", 0);
  // Present only in a /pull answer (the lease); stored payloads carry none.
  if (auto it = j.find("attempt"); it != j.end() && it->is_number_integer()) {
    s.attempt = it->get<int>();
  }
  if (auto it = j.find("leaseExpiresAtMs"); it != j.end() && it->is_number_integer()) {
    s.lease_expires_at_ms = it->get<std::int64_t>();
  }
  return s;
}

nlohmann::json to_json(const DecomposeRequest& r) {
  return {{"taskId", r.task_id},
          {"prompt", r.prompt},
          {"snapshotRef", r.snapshot_ref},
          {"language", r.language}};
}

core::Result<std::vector<DecomposedSubtask>> parse_decompose_response(const nlohmann::json& body) {
  JsonReader r(body, "decompose response");
  const auto* subs = r.array("subtasks", kMaxSubtasks, true);
  if (subs && subs->empty()) r.fail("subtasks", "is empty");
  if (!r.ok()) return *r.error();
  std::vector<DecomposedSubtask> out;
  for (std::size_t i = 0; i < subs->size(); ++i) {
    JsonReader s((*subs)[i], "subtasks[" + std::to_string(i) + "]");
    DecomposedSubtask d;
    d.input = s.str("input", true, 1, kMaxInputBytes);
    d.language = read_language(s, "language", "");
    d.kind = s.one_of("kind", {"single_step", "micro_loop"}, "micro_loop");
    d.timeout_ms = s.integer("timeoutMs", 1'000, 3'600'000, 30'000);
    d.depends_on = read_depends_on(s, "dependsOn");
    if (auto idx = s.opt_integer("subtaskIndex", 0, 1000)) d.subtask_index = static_cast<int>(*idx);
    if (!s.ok()) return *s.error();
    out.push_back(std::move(d));
  }
  return out;
}

bool is_signed_agent_route(std::string_view path) {
  return path == "/heartbeat" || path == "/pull" || path == "/result" || path == "/release";
}

std::string agent_request_canonical(std::string_view timestamp_ms, std::string_view nonce,
                                    std::string_view method, std::string_view path,
                                    std::string_view body_sha256) {
  std::string out;
  out.reserve(timestamp_ms.size() + nonce.size() + method.size() + path.size() +
              body_sha256.size() + 4);
  out.append(timestamp_ms).append("\n").append(nonce).append("\n").append(method);
  out.append("\n").append(path).append("\n").append(body_sha256);
  return out;
}

core::Result<std::vector<std::pair<std::string, std::string>>> sign_agent_request(
    std::string_view agent_id, std::string_view secret_key, std::string_view method,
    std::string_view path, std::string_view body, std::int64_t now_ms) {
  std::string h = core::crypto::random_hex(16);  // a version 4 UUID
  h[12] = '4';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) % 4];
  const std::string nonce = h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" +
                            h.substr(16, 4) + "-" + h.substr(20, 12);
  const std::string timestamp = std::to_string(now_ms);
  const std::string body_hash = core::crypto::sha256_hex(body);
  auto signature = core::crypto::ed25519_sign(
      agent_request_canonical(timestamp, nonce, method, path, body_hash), secret_key);
  if (!signature) return signature.error();
  return std::vector<std::pair<std::string, std::string>>{
      {"x-agent-id", std::string(agent_id)},
      {"x-timestamp-ms", timestamp},
      {"x-nonce", nonce},
      {"x-body-sha256", body_hash},
      {"x-signature", core::crypto::base64_encode(*signature)}};
}

core::Result<EscalateRequest> parse_escalate(const nlohmann::json& body) {
  JsonReader r(body);
  EscalateRequest q;
  q.task_id = r.str("taskId", false, 0, 128);
  q.agent_id = r.str("agentId", false, 0, 128);
  q.task = r.str("task", true, 1, kMaxInputBytes);
  q.failed_code = r.str("failedCode", true, 0, kMaxInputBytes);
  if (const auto* history = r.array("errorHistory", 50)) {
    for (std::size_t i = 0; i < history->size(); ++i) {
      const auto& e = (*history)[i];
      if (!e.is_string() || e.get_ref<const std::string&>().size() > kMaxInputBytes) {
        r.fail("errorHistory", "expected strings of at most 256 KiB");
        break;
      }
      q.error_history.push_back(e.get<std::string>());
    }
  }
  q.language = r.one_of("language", {"python", "javascript"}, "", true);
  q.iterations_attempted = static_cast<int>(r.integer("iterationsAttempted", 1, 1000, 1));
  if (!r.ok()) return *r.error();
  return q;
}

nlohmann::json to_inference_json(const EscalateRequest& r) {
  return {{"task", r.task},
          {"failedCode", r.failed_code},
          {"errorHistory", r.error_history},
          {"language", r.language}};
}

}  // namespace edgecoder::api

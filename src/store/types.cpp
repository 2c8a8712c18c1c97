// Names of the store's enums and the small helpers of the SQL layer.
#include "store/types.h"

#include <charconv>
#include <chrono>

#include <nlohmann/json.hpp>

#include "core/crypto.h"

#include "store/sql.h"
#include "store/store.h"

namespace edgecoder::store {

std::string_view approval_name(Approval approval) {
  switch (approval) {
    case Approval::pending:
      return "pending";
    case Approval::approved:
      return "approved";
    case Approval::denied:
      return "denied";
  }
  return "pending";
}

std::optional<Approval> parse_approval(std::string_view name) {
  for (Approval a : {Approval::pending, Approval::approved, Approval::denied}) {
    if (approval_name(a) == name) return a;
  }
  if (name == "rejected") return Approval::denied;
  return std::nullopt;
}

std::string_view subtask_state_name(SubtaskState state) {
  switch (state) {
    case SubtaskState::held:
      return "held";
    case SubtaskState::queued:
      return "queued";
    case SubtaskState::leased:
      return "leased";
    case SubtaskState::completed:
      return "completed";
    case SubtaskState::failed:
      return "failed";
    case SubtaskState::cancelled:
      return "cancelled";
  }
  return "queued";
}

std::optional<SubtaskState> parse_subtask_state(std::string_view name) {
  for (SubtaskState s : {SubtaskState::held, SubtaskState::queued, SubtaskState::leased,
                         SubtaskState::completed, SubtaskState::failed, SubtaskState::cancelled}) {
    if (subtask_state_name(s) == name) return s;
  }
  return std::nullopt;
}

std::string_view task_state_name(TaskState state) {
  switch (state) {
    case TaskState::open:
      return "open";
    case TaskState::completed:
      return "completed";
    case TaskState::cancelled:
      return "cancelled";
  }
  return "open";
}

std::string_view backend_name(Backend backend) {
  return backend == Backend::sqlite ? "sqlite" : "postgres";
}

std::string_view service_file_stem(ServiceName service) {
  switch (service) {
    case ServiceName::coordinator:
      return "coordinator";
    case ServiceName::control_plane:
      return "control-plane";
    case ServiceName::portal:
      return "portal";
  }
  return "coordinator";
}

core::Error store_unavailable(std::string detail) {
  return core::Error(core::Errc::unavailable, "store_unavailable", std::move(detail));
}

std::function<std::int64_t()> clock_or_system(std::function<std::int64_t()> clock) {
  if (clock) return clock;
  return sql::system_now_ms;
}

core::Result<void> check_ready(Store& store) {
  if (store.ready()) return {};
  return store_unavailable("the store does not answer: " + store.describe());
}

std::string chain_record_canonical(const ChainRecord& r) {
  // ordered_json keeps insertion order; nlohmann writes strings and integers the way
  // JSON.stringify does (compact, UTF-8 raw, only quote, backslash and controls escaped, with
  // lower-case \u00xx).
  nlohmann::ordered_json j;
  j["eventType"] = r.event_type;
  j["taskId"] = r.task_id;
  if (!r.subtask_id.empty()) j["subtaskId"] = r.subtask_id;
  j["actorId"] = r.actor_id;
  j["sequence"] = r.sequence;
  j["issuedAtMs"] = r.issued_at_ms;
  j["prevHash"] = r.prev_hash;
  if (!r.coordinator_id.empty()) j["coordinatorId"] = r.coordinator_id;
  if (!r.payload_json.empty()) j["payloadJson"] = r.payload_json;
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string chain_record_hash(const ChainRecord& record) {
  return core::crypto::sha256_hex(chain_record_canonical(record));
}

namespace sql {

std::int64_t Row::i(std::size_t n) const {
  const Value& v = cols.at(n);
  if (const auto* iv = std::get_if<std::int64_t>(&v)) return *iv;
  if (const auto* sv = std::get_if<std::string>(&v)) {
    std::int64_t out = 0;
    std::from_chars(sv->data(), sv->data() + sv->size(), out);
    return out;
  }
  return 0;
}

const std::string& Row::s(std::size_t n) const {
  static const std::string kEmpty;
  const Value& v = cols.at(n);
  if (const auto* sv = std::get_if<std::string>(&v)) return *sv;
  return kEmpty;
}

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace sql
}  // namespace edgecoder::store

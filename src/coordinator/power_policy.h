// The power policy (upstream-coordinator.md §4.5): from an agent's last reported telemetry, may
// it take coordinator tasks now, peer-direct work, only small tasks, or should it come back
// later. Evaluated on /pull and shown in /capacity. First matching row wins.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace edgecoder::coordinator {

struct PowerSettings {
  std::int64_t ios_pull_min_interval_ms = 45'000;  // IOS_BATTERY_PULL_MIN_INTERVAL_MS
  int ios_stop_level_pct = 20;                     // IOS_BATTERY_TASK_STOP_LEVEL_PCT
};

struct PowerInputs {
  std::string os;                  // "ios", "macos", "debian", ...
  nlohmann::json telemetry;        // powerTelemetry as last reported (object, or null)
  std::int64_t last_claim_ms = 0;  // last lease granted to the agent (0 = never)
  std::int64_t now_ms = 0;
};

struct PowerDecision {
  bool allow_coordinator_tasks = true;
  bool allow_peer_direct = true;
  std::int64_t defer_ms = 0;      // > 0: come back after this long
  bool small_tasks_only = false;  // only subtasks with timeoutMs <= kSmallTaskTimeoutMs
  std::string reason;
};

inline constexpr std::int64_t kSmallTaskTimeoutMs = 10'000;

PowerDecision evaluate_power(const PowerInputs& inputs, const PowerSettings& settings);
// {allowCoordinatorTasks, allowPeerDirectWork, deferMs?, smallTasksOnly?, reason}
nlohmann::json to_json(const PowerDecision& decision);

}  // namespace edgecoder::coordinator

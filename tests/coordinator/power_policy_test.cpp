// The power-policy table (upstream-coordinator.md §4.5), row by row, with its boundaries.
#include <gtest/gtest.h>

#include "coordinator/power_policy.h"

namespace edgecoder::coordinator {
namespace {

struct Row {
  const char* name;
  const char* os;
  nlohmann::json telemetry;
  std::int64_t since_last_claim_ms;  // -1 = never claimed
  bool coordinator;
  bool peer;
  std::int64_t defer_ms;
  bool small_only;
  const char* reason;
};

TEST(PowerPolicy, DecisionTable) {
  const std::int64_t now = 1'700'000'000'000;
  const std::vector<Row> rows = {
      {"ios low power beats external power",
       "ios",
       {{"lowPowerMode", true}, {"onExternalPower", true}},
       -1,
       false,
       false,
       0,
       false,
       "ios_low_power_mode"},
      {"ios plugged in",
       "ios",
       {{"onExternalPower", true}, {"batteryLevelPct", 5}},
       1000,
       true,
       true,
       0,
       false,
       "ios_external_power"},
      {"ios battery at the stop level",
       "ios",
       {{"batteryLevelPct", 20}},
       -1,
       false,
       false,
       0,
       false,
       "ios_battery_critical"},
      {"ios battery just above",
       "ios",
       {{"batteryLevelPct", 21}},
       -1,
       true,
       false,
       0,
       false,
       "ios_on_battery_lite_mode"},
      {"ios throttled within 45 s",
       "iOS",
       {{"batteryLevelPct", 80}},
       44'999,
       false,
       false,
       0,
       false,
       "ios_on_battery_throttled"},
      {"ios after 45 s",
       "ios",
       {{"batteryLevelPct", 80}},
       45'000,
       true,
       false,
       0,
       false,
       "ios_on_battery_lite_mode"},
      {"server",
       "debian",
       {{"deviceType", "server"}, {"cpuUsagePct", 99}},
       -1,
       true,
       true,
       0,
       false,
       "server_unlimited"},
      {"cpu above 85 defers",
       "debian",
       {{"cpuUsagePct", 85.5}},
       -1,
       true,
       true,
       5000,
       false,
       "high_cpu_defer"},
      {"cpu at 85 does not",
       "debian",
       {{"cpuUsagePct", 85}},
       -1,
       true,
       true,
       0,
       false,
       "desktop_ac_power"},
      {"thermal serious",
       "macos",
       {{"thermalState", "serious"}, {"onACPower", true}},
       -1,
       false,
       false,
       0,
       false,
       "thermal_throttle"},
      {"thermal critical",
       "macos",
       {{"thermalState", "critical"}},
       -1,
       false,
       false,
       0,
       false,
       "thermal_throttle"},
      {"thermal fair is fine",
       "macos",
       {{"thermalState", "fair"}},
       -1,
       true,
       true,
       0,
       false,
       "desktop_ac_power"},
      {"desktop device",
       "windows",
       {{"deviceType", "desktop"}, {"batteryPct", 3}},
       -1,
       true,
       true,
       0,
       false,
       "desktop_ac_power"},
      {"on AC",
       "macos",
       {{"onACPower", true}, {"batteryPct", 3}},
       -1,
       true,
       true,
       0,
       false,
       "desktop_ac_power"},
      {"no power info at all", "debian", nlohmann::json(), -1, true, true, 0, false,
       "desktop_ac_power"},
      {"battery below 15",
       "macos",
       {{"onACPower", false}, {"batteryPct", 14.9}},
       -1,
       false,
       false,
       0,
       false,
       "laptop_battery_critical"},
      {"battery at 15",
       "macos",
       {{"onACPower", false}, {"batteryPct", 15}},
       -1,
       true,
       false,
       0,
       true,
       "laptop_battery_low"},
      {"battery at 40",
       "macos",
       {{"batteryPct", 40}},
       -1,
       true,
       false,
       0,
       true,
       "laptop_battery_low"},
      {"battery above 40",
       "macos",
       {{"batteryPct", 41}},
       -1,
       true,
       false,
       0,
       false,
       "laptop_battery_high"},
      {"on battery, unknown percentage",
       "macos",
       {{"onACPower", false}},
       -1,
       true,
       false,
       0,
       false,
       "laptop_battery_high"},
  };
  PowerSettings settings;
  for (const auto& row : rows) {
    PowerInputs in{row.os, row.telemetry,
                   row.since_last_claim_ms < 0 ? 0 : now - row.since_last_claim_ms, now};
    auto d = evaluate_power(in, settings);
    EXPECT_EQ(d.reason, row.reason) << row.name;
    EXPECT_EQ(d.allow_coordinator_tasks, row.coordinator) << row.name;
    EXPECT_EQ(d.allow_peer_direct, row.peer) << row.name;
    EXPECT_EQ(d.defer_ms, row.defer_ms) << row.name;
    EXPECT_EQ(d.small_tasks_only, row.small_only) << row.name;
  }
}

TEST(PowerPolicy, SettingsMoveTheIosThresholds) {
  PowerSettings s;
  s.ios_stop_level_pct = 50;
  s.ios_pull_min_interval_ms = 1000;
  const std::int64_t now = 1'000'000;
  EXPECT_EQ(evaluate_power({"ios", {{"batteryLevelPct", 50}}, 0, now}, s).reason,
            "ios_battery_critical");
  EXPECT_EQ(evaluate_power({"ios", {{"batteryLevelPct", 51}}, now - 1000, now}, s).reason,
            "ios_on_battery_lite_mode");
  auto j = to_json(evaluate_power({"macos", {{"batteryPct", 30}}, 0, now}, s));
  EXPECT_EQ(j.value("smallTasksOnly", false), true);
  EXPECT_EQ(j.value("allowPeerDirectWork", true), false);
}

}  // namespace
}  // namespace edgecoder::coordinator

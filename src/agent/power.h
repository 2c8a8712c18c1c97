// Power telemetry of the host the agent runs on (Linux): AC/battery from
// <sys>/class/power_supply, temperature from <sys>/class/thermal/thermal_zone*/temp, load from
// <proc>/loadavg and <proc>/stat, memory from <proc>/meminfo. Sent as `powerTelemetry` in the
// agent's /register and /heartbeat bodies with the desktop field names the coordinator's power
// policy reads (upstream-coordinator.md §4.5; docs/agent.md). Whatever cannot be read is unknown
// (left out of the JSON), never an error.
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace edgecoder::agent {

// Where /sys and /proc are; tests point them at a fake tree.
struct PowerRoots {
  std::filesystem::path sys = "/sys";
  std::filesystem::path proc = "/proc";
};

struct PowerTelemetry {
  std::optional<bool> on_ac;               // a mains/USB supply online, or the battery's status
  std::optional<double> battery_pct;       // mean capacity of the system batteries (0..100)
  std::optional<double> temperature_c;     // the hottest thermal zone
  std::string thermal_state;               // nominal|fair|serious|critical, "" = unknown
  std::optional<double> load_1m;           // /proc/loadavg
  std::optional<int> cpu_count;            // cpuN lines of /proc/stat
  std::optional<double> cpu_usage_pct;     // load_1m / cpu_count, capped at 100
  std::optional<double> memory_usage_pct;  // 1 - MemAvailable / MemTotal
  std::string device_type;  // laptop (has a system battery) | desktop | the override; "" = unknown
};

// Thresholds for thermal_state: below 70 °C nominal, below 80 fair, below 90 serious, else
// critical.
std::string thermal_state_for(double celsius);

// Reads everything; `device_type_override` (AGENT_DEVICE_TYPE, "" = detect) replaces the
// detected device type.
PowerTelemetry read_power_telemetry(const PowerRoots& roots,
                                    const std::string& device_type_override = "");

// The wire form: onACPower, batteryPct, thermalState, memoryUsagePct, deviceType, plus
// temperatureC, loadAvg1m, cpuCount and updatedAtMs; unknown values are left out. cpuUsagePct
// (above 85 the coordinator defers all work) only with `with_cpu_usage` (AGENT_REPORT_CPU_USAGE):
// the load counts the agent's own sandbox runs and everything else on the host, so on a busy
// build or CI machine an agent would otherwise starve itself.
nlohmann::json power_telemetry_json(const PowerTelemetry& t, std::int64_t now_ms,
                                    bool with_cpu_usage = false);

}  // namespace edgecoder::agent

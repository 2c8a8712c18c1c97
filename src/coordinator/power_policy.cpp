#include "coordinator/power_policy.h"

#include <cctype>
#include <optional>

namespace edgecoder::coordinator {

namespace {

std::optional<bool> power_bool(const nlohmann::json& t, const char* key) {
  if (!t.is_object()) return std::nullopt;
  auto it = t.find(key);
  if (it == t.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

std::optional<double> power_number(const nlohmann::json& t, const char* key) {
  if (!t.is_object()) return std::nullopt;
  auto it = t.find(key);
  if (it == t.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::string power_string(const nlohmann::json& t, const char* key) {
  if (!t.is_object()) return "";
  auto it = t.find(key);
  if (it == t.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

PowerDecision power_decision(bool coordinator, bool peer, std::string reason) {
  PowerDecision d;
  d.allow_coordinator_tasks = coordinator;
  d.allow_peer_direct = peer;
  d.reason = std::move(reason);
  return d;
}

}  // namespace

PowerDecision evaluate_power(const PowerInputs& in, const PowerSettings& settings) {
  std::string os;
  for (char c : in.os) os.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  const nlohmann::json& t = in.telemetry;
  if (os == "ios") {
    if (power_bool(t, "lowPowerMode").value_or(false)) {
      return power_decision(false, false, "ios_low_power_mode");
    }
    if (power_bool(t, "onExternalPower").value_or(false)) {
      return power_decision(true, true, "ios_external_power");
    }
    auto level = power_number(t, "batteryLevelPct");
    if (level && *level <= settings.ios_stop_level_pct) {
      return power_decision(false, false, "ios_battery_critical");
    }
    if (in.last_claim_ms > 0 && in.now_ms - in.last_claim_ms < settings.ios_pull_min_interval_ms) {
      return power_decision(false, false, "ios_on_battery_throttled");
    }
    return power_decision(true, false, "ios_on_battery_lite_mode");
  }
  const std::string device = power_string(t, "deviceType");
  if (device == "server") return power_decision(true, true, "server_unlimited");
  if (auto cpu = power_number(t, "cpuUsagePct"); cpu && *cpu > 85) {
    PowerDecision d = power_decision(true, true, "high_cpu_defer");
    d.defer_ms = 5'000;
    return d;
  }
  const std::string thermal = power_string(t, "thermalState");
  if (thermal == "serious" || thermal == "critical") {
    return power_decision(false, false, "thermal_throttle");
  }
  auto on_ac = power_bool(t, "onACPower");
  auto battery = power_number(t, "batteryPct");
  if (device == "desktop" || on_ac.value_or(false) || (!on_ac && !battery)) {
    return power_decision(true, true, "desktop_ac_power");
  }
  if (battery && *battery < 15) return power_decision(false, false, "laptop_battery_critical");
  if (battery && *battery <= 40) {
    PowerDecision d = power_decision(true, false, "laptop_battery_low");
    d.small_tasks_only = true;
    return d;
  }
  return power_decision(true, false, "laptop_battery_high");
}

nlohmann::json to_json(const PowerDecision& d) {
  nlohmann::json j = {{"allowCoordinatorTasks", d.allow_coordinator_tasks},
                      {"allowPeerDirectWork", d.allow_peer_direct},
                      {"reason", d.reason}};
  if (d.defer_ms > 0) j["deferMs"] = d.defer_ms;
  if (d.small_tasks_only) j["smallTasksOnly"] = true;
  return j;
}

}  // namespace edgecoder::coordinator

#include "agent/power.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

namespace edgecoder::agent {
namespace {

namespace stdfs = std::filesystem;

// The first line of a small file, trimmed; nullopt when it cannot be read.
std::optional<std::string> read_line(const stdfs::path& p) {
  std::ifstream in(p);
  if (!in) return std::nullopt;
  std::string line;
  if (!std::getline(in, line) && line.empty()) return std::nullopt;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r' || line.back() == ' ')) {
    line.pop_back();
  }
  return line;
}

std::optional<double> parse_number(const std::optional<std::string>& text) {
  if (!text || text->empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text->c_str(), &end);
  if (end == text->c_str() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// The entries of a directory, sorted (empty when it cannot be read).
std::vector<stdfs::path> entries(const stdfs::path& dir) {
  std::vector<stdfs::path> out;
  std::error_code ec;
  for (stdfs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

double round1(double v) { return std::round(v * 10.0) / 10.0; }

void read_power_supply(const stdfs::path& sys, PowerTelemetry& t) {
  const stdfs::path dir = sys / "class" / "power_supply";
  std::error_code ec;
  if (!stdfs::is_directory(dir, ec)) return;
  std::optional<bool> supply_online;  // any mains/USB supply: online?
  std::optional<bool> battery_charging;
  double capacity_sum = 0;
  int capacities = 0;
  bool has_battery = false;
  for (const auto& supply : entries(dir)) {
    const auto type = read_line(supply / "type");
    if (!type) continue;
    if (*type == "Mains" || *type == "USB" || *type == "USB_C" || *type == "USB_PD") {
      if (auto online = parse_number(read_line(supply / "online"))) {
        supply_online = supply_online.value_or(false) || *online > 0;
      }
    } else if (*type == "Battery") {
      // Peripherals (a mouse's battery) say scope=Device; the system's say System or nothing.
      if (read_line(supply / "scope").value_or("System") == "Device") continue;
      has_battery = true;
      if (auto cap = parse_number(read_line(supply / "capacity"));
          cap && *cap >= 0 && *cap <= 100) {
        capacity_sum += *cap;
        ++capacities;
      }
      const auto status = read_line(supply / "status").value_or("");
      if (status == "Discharging") {
        battery_charging = false;
      } else if ((status == "Charging" || status == "Full" || status == "Not charging") &&
                 !battery_charging.has_value()) {
        battery_charging = true;
      }
    }
  }
  if (supply_online) {
    t.on_ac = *supply_online;
  } else if (battery_charging) {
    t.on_ac = *battery_charging;
  }
  if (capacities > 0) t.battery_pct = round1(capacity_sum / capacities);
  t.device_type = has_battery ? "laptop" : "desktop";
}

void read_thermal(const stdfs::path& sys, PowerTelemetry& t) {
  for (const auto& zone : entries(sys / "class" / "thermal")) {
    if (zone.filename().string().rfind("thermal_zone", 0) != 0) continue;
    const auto milli = parse_number(read_line(zone / "temp"));
    // Millidegrees Celsius; a zone without a sensor reads an error or nonsense.
    if (!milli || *milli <= 0 || *milli > 200'000) continue;
    const double c = *milli / 1000.0;
    if (!t.temperature_c || c > *t.temperature_c) t.temperature_c = round1(c);
  }
  if (t.temperature_c) t.thermal_state = thermal_state_for(*t.temperature_c);
}

void read_proc(const stdfs::path& proc, PowerTelemetry& t) {
  if (auto load = read_line(proc / "loadavg")) {
    if (auto v = parse_number(load); v && *v >= 0) t.load_1m = *v;
  }
  {
    std::ifstream in(proc / "stat");
    int cpus = 0;
    for (std::string line; std::getline(in, line);) {
      if (line.size() > 3 && line.compare(0, 3, "cpu") == 0 && line[3] >= '0' && line[3] <= '9') {
        ++cpus;
      }
    }
    if (cpus > 0) t.cpu_count = cpus;
  }
  if (t.load_1m && t.cpu_count) {
    t.cpu_usage_pct = round1(std::min(100.0, *t.load_1m / *t.cpu_count * 100.0));
  }
  std::ifstream in(proc / "meminfo");
  std::optional<double> total, available;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key;
    double kb = 0;
    if (!(fields >> key >> kb)) continue;
    if (key == "MemTotal:") total = kb;
    if (key == "MemAvailable:") available = kb;
  }
  if (total && available && *total > 0 && *available <= *total) {
    t.memory_usage_pct = round1((1.0 - *available / *total) * 100.0);
  }
}

}  // namespace

std::string thermal_state_for(double celsius) {
  if (celsius < 70) return "nominal";
  if (celsius < 80) return "fair";
  if (celsius < 90) return "serious";
  return "critical";
}

PowerTelemetry read_power_telemetry(const PowerRoots& roots,
                                    const std::string& device_type_override) {
  PowerTelemetry t;
  read_power_supply(roots.sys, t);
  read_thermal(roots.sys, t);
  read_proc(roots.proc, t);
  if (!device_type_override.empty()) t.device_type = device_type_override;
  return t;
}

nlohmann::json power_telemetry_json(const PowerTelemetry& t, std::int64_t now_ms,
                                    bool with_cpu_usage) {
  nlohmann::json j = nlohmann::json::object();
  if (t.on_ac) j["onACPower"] = *t.on_ac;
  if (t.battery_pct) j["batteryPct"] = *t.battery_pct;
  if (!t.thermal_state.empty()) j["thermalState"] = t.thermal_state;
  if (t.temperature_c) j["temperatureC"] = *t.temperature_c;
  if (t.cpu_usage_pct && with_cpu_usage) j["cpuUsagePct"] = *t.cpu_usage_pct;
  if (t.load_1m) j["loadAvg1m"] = *t.load_1m;
  if (t.cpu_count) j["cpuCount"] = *t.cpu_count;
  if (t.memory_usage_pct) j["memoryUsagePct"] = *t.memory_usage_pct;
  if (!t.device_type.empty()) j["deviceType"] = t.device_type;
  j["updatedAtMs"] = now_ms;
  return j;
}

}  // namespace edgecoder::agent

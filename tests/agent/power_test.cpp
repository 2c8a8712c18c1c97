// Power telemetry read from a fake /sys and /proc tree in a temporary directory: parsed values,
// and unknown (left out) for whatever is missing or malformed.
#include "agent/power.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace edgecoder::agent {
namespace {

namespace stdfs = std::filesystem;

class PowerTelemetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = stdfs::temp_directory_path() /
            ("edgecoder-power-" + std::to_string(std::random_device{}()));
    stdfs::create_directories(root_);
    roots_.sys = root_ / "sys";
    roots_.proc = root_ / "proc";
  }
  void TearDown() override {
    std::error_code ec;
    stdfs::remove_all(root_, ec);
  }
  void write(const stdfs::path& rel, const std::string& text) {
    const auto p = root_ / rel;
    stdfs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  stdfs::path root_;
  PowerRoots roots_;
};

TEST_F(PowerTelemetryTest, ReadsLaptopOnBattery) {
  write("sys/class/power_supply/AC/type", "Mains\n");
  write("sys/class/power_supply/AC/online", "0\n");
  write("sys/class/power_supply/BAT0/type", "Battery\n");
  write("sys/class/power_supply/BAT0/capacity", "37\n");
  write("sys/class/power_supply/BAT0/status", "Discharging\n");
  // A mouse's battery is not the host's.
  write("sys/class/power_supply/hidpp_battery_0/type", "Battery\n");
  write("sys/class/power_supply/hidpp_battery_0/scope", "Device\n");
  write("sys/class/power_supply/hidpp_battery_0/capacity", "5\n");
  write("sys/class/thermal/thermal_zone0/temp", "45000\n");
  write("sys/class/thermal/thermal_zone1/temp", "83500\n");
  write("sys/class/thermal/cooling_device0/cur_state", "1\n");
  write("proc/loadavg", "3.00 2.10 1.50 2/345 6789\n");
  write("proc/stat",
        "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\ncpu1 1 2 3 4 5 6 7 8 9 10\n"
        "cpu2 1 2 3 4\ncpu3 1 2 3 4\nintr 1\n");
  write("proc/meminfo",
        "MemTotal:       16000000 kB\nMemFree: 1 kB\nMemAvailable:    4000000 kB\n");

  const PowerTelemetry t = read_power_telemetry(roots_);
  ASSERT_TRUE(t.on_ac.has_value());
  EXPECT_FALSE(*t.on_ac);
  ASSERT_TRUE(t.battery_pct.has_value());
  EXPECT_DOUBLE_EQ(*t.battery_pct, 37.0);
  ASSERT_TRUE(t.temperature_c.has_value());
  EXPECT_DOUBLE_EQ(*t.temperature_c, 83.5);
  EXPECT_EQ(t.thermal_state, "serious");
  ASSERT_TRUE(t.cpu_count.has_value());
  EXPECT_EQ(*t.cpu_count, 4);
  ASSERT_TRUE(t.load_1m.has_value());
  EXPECT_DOUBLE_EQ(*t.load_1m, 3.0);
  ASSERT_TRUE(t.cpu_usage_pct.has_value());
  EXPECT_DOUBLE_EQ(*t.cpu_usage_pct, 75.0);
  ASSERT_TRUE(t.memory_usage_pct.has_value());
  EXPECT_DOUBLE_EQ(*t.memory_usage_pct, 75.0);
  EXPECT_EQ(t.device_type, "laptop");

  auto j = power_telemetry_json(t, 1234);
  EXPECT_EQ(j.at("onACPower"), false);
  EXPECT_EQ(j.at("batteryPct"), 37.0);
  EXPECT_EQ(j.at("thermalState"), "serious");
  EXPECT_FALSE(j.contains("cpuUsagePct")) << "sent only with AGENT_REPORT_CPU_USAGE";
  EXPECT_EQ(j.at("loadAvg1m"), 3.0);
  j = power_telemetry_json(t, 1234, true);
  EXPECT_EQ(j.at("cpuUsagePct"), 75.0);
  EXPECT_EQ(j.at("memoryUsagePct"), 75.0);
  EXPECT_EQ(j.at("deviceType"), "laptop");
  EXPECT_EQ(j.at("cpuCount"), 4);
  EXPECT_EQ(j.at("updatedAtMs"), 1234);
}

TEST_F(PowerTelemetryTest, MainsOnlineAndLoadCappedAtHundred) {
  write("sys/class/power_supply/ADP1/type", "Mains\n");
  write("sys/class/power_supply/ADP1/online", "1\n");
  write("sys/class/power_supply/BAT1/type", "Battery\n");
  write("sys/class/power_supply/BAT1/capacity", "90\n");
  write("sys/class/power_supply/BAT1/status", "Charging\n");
  write("sys/class/thermal/thermal_zone0/temp", "95000\n");
  write("proc/loadavg", "9.50 1 1 1/1 1\n");
  write("proc/stat", "cpu 1\ncpu0 1\ncpu1 1\n");
  const PowerTelemetry t = read_power_telemetry(roots_, "server");
  EXPECT_EQ(t.on_ac, std::optional<bool>(true));
  EXPECT_EQ(t.battery_pct, std::optional<double>(90.0));
  EXPECT_EQ(t.thermal_state, "critical");
  EXPECT_EQ(t.cpu_usage_pct, std::optional<double>(100.0));
  EXPECT_EQ(t.device_type, "server");  // the override wins over the detected laptop
}

TEST_F(PowerTelemetryTest, MissingFilesAreUnknownNotErrors) {
  // Nothing at all: every value unknown, only the timestamp is sent.
  PowerTelemetry t = read_power_telemetry(roots_);
  EXPECT_FALSE(t.on_ac.has_value());
  EXPECT_FALSE(t.battery_pct.has_value());
  EXPECT_FALSE(t.temperature_c.has_value());
  EXPECT_TRUE(t.thermal_state.empty());
  EXPECT_FALSE(t.load_1m.has_value());
  EXPECT_FALSE(t.cpu_count.has_value());
  EXPECT_FALSE(t.cpu_usage_pct.has_value());
  EXPECT_FALSE(t.memory_usage_pct.has_value());
  EXPECT_TRUE(t.device_type.empty());
  const auto j = power_telemetry_json(t, 7);
  EXPECT_EQ(j, nlohmann::json({{"updatedAtMs", 7}}));

  // Present but partial or malformed: a supply without `online`, a battery without capacity or
  // status, a zone without a sensor, garbage in loadavg, meminfo without MemAvailable.
  write("sys/class/power_supply/AC/type", "Mains\n");
  write("sys/class/power_supply/BAT0/type", "Battery\n");
  write("sys/class/thermal/thermal_zone0/temp", "-273000\n");
  write("sys/class/thermal/thermal_zone1/temp", "not a number\n");
  write("proc/loadavg", "garbage\n");
  write("proc/meminfo", "MemTotal: 100 kB\n");
  t = read_power_telemetry(roots_);
  EXPECT_FALSE(t.on_ac.has_value());
  EXPECT_FALSE(t.battery_pct.has_value());
  EXPECT_FALSE(t.temperature_c.has_value());
  EXPECT_TRUE(t.thermal_state.empty());
  EXPECT_FALSE(t.load_1m.has_value());
  EXPECT_FALSE(t.cpu_usage_pct.has_value());
  EXPECT_FALSE(t.memory_usage_pct.has_value());
  EXPECT_EQ(t.device_type, "laptop");
}

TEST(PowerThermalState, Thresholds) {
  EXPECT_EQ(thermal_state_for(20), "nominal");
  EXPECT_EQ(thermal_state_for(69.9), "nominal");
  EXPECT_EQ(thermal_state_for(70), "fair");
  EXPECT_EQ(thermal_state_for(80), "serious");
  EXPECT_EQ(thermal_state_for(90), "critical");
}

}  // namespace
}  // namespace edgecoder::agent

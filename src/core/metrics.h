// Prometheus metrics: counters, gauges and fixed-bucket histograms with label sets, rendered in
// the text exposition format 0.0.4 (and as JSON for older dashboards). Metric names follow
// edgecoder_<subsystem>_<name>_<unit|total>. Label values must come from bounded sets (route
// patterns, status codes), never from user input such as ids or prompts.
// Thread-safety: a Registry and every metric it hands out may be used from any thread. Metric
// references stay valid for the registry's lifetime.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace edgecoder::core::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `bounds` are upper bucket bounds in ascending order (+Inf is implicit).
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1 (+Inf)
  std::atomic<double> sum_{0};
  std::atomic<std::uint64_t> count_{0};
};

// Default latency buckets in seconds (100 µs .. 10 s).
const std::vector<double>& latency_buckets();

// Values computed at scrape time (process RSS, queue depth read from a store, ...).
struct Sample {
  std::string name;
  std::string help;
  std::string type;  // "gauge" or "counter"
  Labels labels;
  double value = 0;
};
using Collector = std::function<void(std::vector<Sample>& out)>;

class Registry {
 public:
  Registry();
  ~Registry();  // out of line: Family is defined in metrics.cpp
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the metric for (name, labels), creating it on first use. The same name must always
  // be used with the same type and help text.
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, const Labels& labels = {},
                       const std::vector<double>& bounds = latency_buckets());

  void add_collector(Collector collector);

  // Text exposition format 0.0.4.
  std::string render_text() const;
  // {"<name>": value | [{"labels":{..},"value":..}, ...]} for clients that only accept JSON.
  nlohmann::json render_json() const;

 private:
  struct Family;
  Family& family(std::string_view name, std::string_view help, std::string_view type);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;  // guarded by mu_
  std::vector<Collector> collectors_;                                     // guarded by mu_
};

// Registers process metrics (RSS, CPU seconds, open fds, start time) and edgecoder_build_info.
void add_process_metrics(Registry& registry);

}  // namespace edgecoder::core::metrics

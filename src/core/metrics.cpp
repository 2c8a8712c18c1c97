#include "core/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/fs.h"

#ifndef EDGECODER_VERSION
#define EDGECODER_VERSION "unknown"
#endif

// Misuse of this API (a bad metric or label name, one name used with two types or help texts, a
// counter name without _total, a histogram label named "le") is a programming error and throws
// std::invalid_argument / std::logic_error at registration, so it shows in the first test run
// rather than as an exposition Prometheus rejects.

namespace edgecoder::core::metrics {
namespace {

constexpr std::string_view kMetricsCounter = "counter";
constexpr std::string_view kMetricsGauge = "gauge";
constexpr std::string_view kMetricsHistogram = "histogram";

bool metrics_valid_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool metrics_valid_label_name(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;  // "__" is reserved by Prometheus
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

void metrics_check_name(std::string_view name, std::string_view type) {
  if (!metrics_valid_name(name)) {
    throw std::invalid_argument("metrics: invalid metric name '" + std::string(name) + "'");
  }
  if (type == kMetricsCounter && !name.ends_with("_total")) {
    throw std::invalid_argument("metrics: counter name '" + std::string(name) +
                                "' must end in _total");
  }
}

// Label identity ignores the order the caller listed them in.
Labels metrics_canonical_labels(std::string_view metric, const Labels& labels) {
  Labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (!metrics_valid_label_name(sorted[i].first)) {
      throw std::invalid_argument("metrics: invalid label name '" + sorted[i].first + "' on " +
                                  std::string(metric));
    }
    if (i > 0 && sorted[i].first == sorted[i - 1].first) {
      throw std::invalid_argument("metrics: duplicate label '" + sorted[i].first + "' on " +
                                  std::string(metric));
    }
  }
  return sorted;
}

std::vector<double> metrics_normalize_bounds(std::vector<double> bounds) {
  // +Inf is always implicit; accept it explicitly at the end too.
  while (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (std::isnan(bounds[i]) || std::isinf(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      throw std::invalid_argument(
          "metrics: histogram bounds must be finite and strictly ascending");
    }
  }
  return bounds;
}

void metrics_atomic_add(std::atomic<double>& target, double v) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + v, std::memory_order_relaxed)) {
  }
}

// Go's ParseFloat (used by Prometheus) accepts fmt's shortest round-trip form ("0.25",
// "1e-05", "1e+20"); only the non-finite values need Prometheus' own spelling.
std::string metrics_format_double(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

std::string metrics_escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '"') {
      out.append("\\\"");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string metrics_escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// `{a="1",b="2"}`, with an optional trailing le label; empty when there are no labels.
std::string metrics_label_text(const Labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out.push_back(',');
    first = false;
    out.append(k).append("=\"").append(metrics_escape_label_value(v)).push_back('"');
  }
  if (le != nullptr) {
    if (!first) out.push_back(',');
    out.append("le=\"").append(*le).push_back('"');
  }
  out.push_back('}');
  return out;
}

// A consistent copy of everything one scrape shows, taken under the registry mutex (plus the
// collectors' samples, gathered outside it), so both renderers share one code path.
struct MetricsPoint {
  Labels labels;
  double value = 0;
  std::optional<std::uint64_t> exact;  // counters: integral value, printed without rounding
  Histogram::Snapshot histogram;
};

struct MetricsView {
  std::string help;
  std::string type;
  std::vector<MetricsPoint> points;
};

using MetricsViews = std::map<std::string, MetricsView, std::less<>>;

std::string metrics_point_value(const MetricsPoint& p) {
  return p.exact ? std::to_string(*p.exact) : metrics_format_double(p.value);
}

nlohmann::json metrics_json_number(const MetricsPoint& p) {
  if (p.exact) return *p.exact;
  return p.value;  // NaN/Inf serialise as null
}

nlohmann::json metrics_json_labels(const Labels& labels) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : labels) out[k] = v;
  return out;
}

// /proc/self/stat fields after the ")" that closes the command name (which may contain
// spaces); index 0 is field 3 (state) of proc(5).
std::vector<std::string> metrics_stat_fields() {
  auto text = core::fs::read_file("/proc/self/stat");
  if (!text) return {};
  const auto close = text->rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream in(text->substr(close + 1));
  std::vector<std::string> fields;
  for (std::string f; in >> f;) fields.push_back(f);
  return fields;
}

std::optional<double> metrics_parse_number(const std::string& s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> metrics_boot_time_seconds() {
  auto text = core::fs::read_file("/proc/stat");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("btime ")) return metrics_parse_number(line.substr(6));
  }
  return std::nullopt;
}

void metrics_collect_process(std::vector<Sample>& out) {
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  const auto fields = metrics_stat_fields();
  auto field = [&fields](std::size_t proc_index) -> std::optional<double> {
    const std::size_t i = proc_index - 3;
    if (i >= fields.size()) return std::nullopt;
    return metrics_parse_number(fields[i]);
  };
  const auto utime = field(14);  // clock ticks
  const auto stime = field(15);  // clock ticks
  if (utime && stime && ticks > 0) {
    out.push_back({"process_cpu_seconds_total",
                   "Total user and system CPU time spent in seconds.",
                   "counter",
                   {},
                   (*utime + *stime) / ticks});
  }
  const auto vsize = field(23);  // bytes
  if (vsize) {
    out.push_back(
        {"process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", {}, *vsize});
  }
  const auto rss = field(24);  // pages
  if (rss && page > 0) {
    out.push_back({"process_resident_memory_bytes",
                   "Resident memory size in bytes.",
                   "gauge",
                   {},
                   *rss * page});
  }
  const auto start = field(22);  // clock ticks since boot
  const auto boot = metrics_boot_time_seconds();
  if (start && boot && ticks > 0) {
    out.push_back({"process_start_time_seconds",
                   "Start time of the process since unix epoch in seconds.",
                   "gauge",
                   {},
                   *boot + *start / ticks});
  }
  std::error_code ec;
  double fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++fds;
  }
  if (!ec) {
    out.push_back({"process_open_fds", "Number of open file descriptors.", "gauge", {}, fds});
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    const double max_fds = limit.rlim_cur == RLIM_INFINITY ? std::numeric_limits<double>::infinity()
                                                           : static_cast<double>(limit.rlim_cur);
    out.push_back(
        {"process_max_fds", "Maximum number of open file descriptors.", "gauge", {}, max_fds});
  }
}

}  // namespace

void Gauge::add(double v) { metrics_atomic_add(value_, v); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(metrics_normalize_bounds(std::move(bounds))),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(double v) {
  // A NaN has no bucket and would turn the sum into NaN for the rest of the process's life.
  if (std::isnan(v)) return;
  // First bound >= v: Prometheus buckets are "less than or equal" (le).
  const auto index = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                              bounds_.begin());
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  metrics_atomic_add(sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  // Derived from the buckets rather than count_, so that count always equals the +Inf bucket
  // even while other threads observe (Prometheus rejects a mismatch).
  s.count = running;
  return s;
}

const std::vector<double>& latency_buckets() {
  static const std::vector<double> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                               1,      2.5,     5,      10};
  return kBuckets;
}

struct Registry::Family {
  std::string help;
  std::string type;
  std::vector<double> bounds;  // histograms only; fixed by the first registration
  std::map<Labels, std::unique_ptr<Counter>> counters;
  std::map<Labels, std::unique_ptr<Gauge>> gauges;
  std::map<Labels, std::unique_ptr<Histogram>> histograms;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::family(std::string_view name, std::string_view help,
                                   std::string_view type) {
  metrics_check_name(name, type);
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto created = std::make_unique<Family>();
    created->help = std::string(help);
    created->type = std::string(type);
    it = families_.emplace(std::string(name), std::move(created)).first;
  } else if (it->second->type != type || it->second->help != help) {
    throw std::logic_error("metrics: '" + std::string(name) +
                           "' registered again with a different type or help text");
  }
  return *it->second;
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  Labels key = metrics_canonical_labels(name, labels);
  std::lock_guard lock(mu_);
  auto& slot = family(name, help, kMetricsCounter).counters[std::move(key)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  Labels key = metrics_canonical_labels(name, labels);
  std::lock_guard lock(mu_);
  auto& slot = family(name, help, kMetricsGauge).gauges[std::move(key)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help, const Labels& labels,
                               const std::vector<double>& bounds) {
  Labels key = metrics_canonical_labels(name, labels);
  for (const auto& label : key) {
    if (label.first == "le") {
      throw std::invalid_argument("metrics: histogram '" + std::string(name) +
                                  "' may not have a label named le");
    }
  }
  std::vector<double> normalized = metrics_normalize_bounds(bounds);
  std::lock_guard lock(mu_);
  Family& f = family(name, help, kMetricsHistogram);
  if (f.histograms.empty()) {
    f.bounds = normalized;
  } else if (f.bounds != normalized) {
    throw std::logic_error("metrics: histogram '" + std::string(name) +
                           "' registered again with different buckets");
  }
  auto& slot = f.histograms[std::move(key)];
  if (!slot) slot = std::make_unique<Histogram>(std::move(normalized));
  return *slot;
}

void Registry::add_collector(Collector collector) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collector));
}

namespace {

// Snapshot of a registry; collectors run without the registry mutex so that they may read other
// state (or even this registry) without deadlocking.
template <typename FamilyMap>
MetricsViews metrics_snapshot(std::mutex& mu, const FamilyMap& families,
                              const std::vector<Collector>& collectors_guarded) {
  MetricsViews views;
  std::vector<Collector> collectors;
  {
    std::lock_guard lock(mu);
    collectors = collectors_guarded;
    for (const auto& [name, family] : families) {
      MetricsView view{family->help, family->type, {}};
      for (const auto& [labels, c] : family->counters) {
        const std::uint64_t v = c->value();
        view.points.push_back({labels, static_cast<double>(v), v, {}});
      }
      for (const auto& [labels, g] : family->gauges) {
        view.points.push_back({labels, g->value(), std::nullopt, {}});
      }
      for (const auto& [labels, h] : family->histograms) {
        view.points.push_back({labels, 0, std::nullopt, h->snapshot()});
      }
      views.emplace(name, std::move(view));
    }
  }
  std::vector<Sample> samples;
  for (const auto& collect : collectors) collect(samples);
  for (auto& sample : samples) {
    if (sample.type != kMetricsGauge && sample.type != kMetricsCounter) {
      throw std::invalid_argument("metrics: sample '" + sample.name + "' has type '" + sample.type +
                                  "' (expected gauge or counter)");
    }
    metrics_check_name(sample.name, sample.type);
    Labels labels = metrics_canonical_labels(sample.name, sample.labels);
    auto it = views.find(sample.name);
    if (it == views.end()) {
      it = views.emplace(sample.name, MetricsView{sample.help, sample.type, {}}).first;
    } else if (it->second.type != sample.type) {
      throw std::logic_error("metrics: collected sample '" + sample.name +
                             "' conflicts with a metric of another type");
    }
    auto& points = it->second.points;
    // A series appears once per scrape (e.g. when a collector was added twice).
    const bool duplicate =
        std::any_of(points.begin(), points.end(),
                    [&labels](const MetricsPoint& p) { return p.labels == labels; });
    if (!duplicate) points.push_back({std::move(labels), sample.value, std::nullopt, {}});
  }
  return views;
}

}  // namespace

std::string Registry::render_text() const {
  const MetricsViews views = metrics_snapshot(mu_, families_, collectors_);
  std::string out;
  for (const auto& [name, view] : views) {
    if (view.points.empty()) continue;
    out.append("# HELP ").append(name).append(" ").append(metrics_escape_help(view.help));
    out.append("\n# TYPE ").append(name).append(" ").append(view.type).append("\n");
    for (const MetricsPoint& p : view.points) {
      if (view.type != kMetricsHistogram) {
        out.append(name).append(metrics_label_text(p.labels)).append(" ");
        out.append(metrics_point_value(p)).append("\n");
        continue;
      }
      const auto& h = p.histogram;
      for (std::size_t i = 0; i <= h.bounds.size(); ++i) {
        const std::string le = i < h.bounds.size() ? metrics_format_double(h.bounds[i]) : "+Inf";
        out.append(name).append("_bucket").append(metrics_label_text(p.labels, &le));
        out.append(" ").append(std::to_string(h.cumulative[i])).append("\n");
      }
      const std::string labels = metrics_label_text(p.labels);
      out.append(name).append("_sum").append(labels).append(" ");
      out.append(metrics_format_double(h.sum)).append("\n");
      out.append(name).append("_count").append(labels).append(" ");
      out.append(std::to_string(h.count)).append("\n");
    }
  }
  return out;
}

nlohmann::json Registry::render_json() const {
  const MetricsViews views = metrics_snapshot(mu_, families_, collectors_);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, view] : views) {
    if (view.points.empty()) continue;
    const bool histogram = view.type == kMetricsHistogram;
    auto body = [histogram](const MetricsPoint& p) {
      if (histogram) {
        return nlohmann::json{{"count", p.histogram.count}, {"sum", p.histogram.sum}};
      }
      return metrics_json_number(p);
    };
    if (view.points.size() == 1 && view.points.front().labels.empty()) {
      out[name] = body(view.points.front());
      continue;
    }
    nlohmann::json list = nlohmann::json::array();
    for (const MetricsPoint& p : view.points) {
      nlohmann::json entry = {{"labels", metrics_json_labels(p.labels)}};
      if (histogram) {
        entry["count"] = p.histogram.count;
        entry["sum"] = p.histogram.sum;
      } else {
        entry["value"] = metrics_json_number(p);
      }
      list.push_back(std::move(entry));
    }
    out[name] = std::move(list);
  }
  return out;
}

void add_process_metrics(Registry& registry) {
  registry
      .gauge("edgecoder_build_info", "EdgeCoder build information; the value is always 1.",
             {{"version", EDGECODER_VERSION}})
      .set(1);
  registry.add_collector(metrics_collect_process);
}

}  // namespace edgecoder::core::metrics

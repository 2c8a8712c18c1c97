#include "core/metrics.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace edgecoder::core::metrics {
namespace {

namespace stdfs = std::filesystem;

struct PromtoolResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Pipes `text` into `promtool check metrics`; any output at all is a lint complaint.
PromtoolResult run_promtool(const std::string& text) {
  std::string tmpl = (stdfs::temp_directory_path() / "edgecoder-metrics-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return {};
  const stdfs::path dir = tmpl;
  std::ofstream(dir / "in.txt", std::ios::binary) << text;
  const std::string cmd = "/usr/bin/promtool check metrics < '" + (dir / "in.txt").string() +
                          "' > '" + (dir / "out.txt").string() + "' 2>&1";
  const int status = std::system(cmd.c_str());
  PromtoolResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(dir / "out.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  std::error_code ec;
  stdfs::remove_all(dir, ec);
  return r;
}

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

int count_occurrences(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

void fill_registry(Registry& r) {
  r.counter("edgecoder_test_requests_total", "Requests handled.").inc(3);
  r.counter("edgecoder_test_http_requests_total", "HTTP requests by route and status.",
            {{"route", "/tasks/{id}"}, {"status", "200"}})
      .inc(5);
  r.counter("edgecoder_test_http_requests_total", "HTTP requests by route and status.",
            {{"status", "404"}, {"route", "/tasks/{id}"}})
      .inc();
  r.gauge("edgecoder_test_queue_depth", "Subtasks waiting.").set(7.25);
  r.gauge("edgecoder_test_temperature_celsius", "Negative and tiny values.", {{"zone", "a"}})
      .set(-0.000012);
  r.gauge("edgecoder_test_escaped_info", "Help with a \\ backslash\nand newline.",
          {{"value", "quote \" backslash \\ newline \n end"}})
      .set(1);
  auto& h = r.histogram("edgecoder_test_request_duration_seconds", "Request latency.",
                        {{"route", "/health"}});
  h.observe(0.00005);
  h.observe(0.003);
  h.observe(42);
  r.histogram("edgecoder_test_size_bytes", "Sizes.", {}, {10, 100, 1000}).observe(50);
  add_process_metrics(r);
}

TEST(MetricsTest, PromtoolHarnessReportsProblems) {
  // Proves the check below can fail: a counter without _total is a lint problem.
  const PromtoolResult bad = run_promtool("# HELP foo x\n# TYPE foo counter\nfoo 1\n");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output, "");
}

TEST(MetricsTest, RenderTextPassesPromtool) {
  Registry r;
  fill_registry(r);
  const std::string text = r.render_text();
  const PromtoolResult check = run_promtool(text);
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n---\n" << text;
  EXPECT_EQ(check.output, "") << text;
}

TEST(MetricsTest, RenderTextShape) {
  Registry r;
  fill_registry(r);
  const std::string text = r.render_text();
  EXPECT_TRUE(has_line(text, "# HELP edgecoder_test_requests_total Requests handled.")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE edgecoder_test_requests_total counter"));
  EXPECT_TRUE(has_line(text, "edgecoder_test_requests_total 3"));
  // Label order is canonical (sorted), whatever order the caller used.
  EXPECT_TRUE(
      has_line(text, "edgecoder_test_http_requests_total{route=\"/tasks/{id}\",status=\"200\"} 5"));
  EXPECT_TRUE(
      has_line(text, "edgecoder_test_http_requests_total{route=\"/tasks/{id}\",status=\"404\"} 1"));
  EXPECT_EQ(count_occurrences(text, "# HELP edgecoder_test_http_requests_total "), 1);
  EXPECT_EQ(count_occurrences(text, "# TYPE edgecoder_test_http_requests_total "), 1);
  EXPECT_TRUE(has_line(text, "edgecoder_test_queue_depth 7.25"));
  EXPECT_TRUE(has_line(text, "edgecoder_test_temperature_celsius{zone=\"a\"} -1.2e-05")) << text;
  EXPECT_TRUE(has_line(text,
                       "# HELP edgecoder_test_escaped_info Help with a \\\\ backslash\\nand "
                       "newline."));
  EXPECT_TRUE(has_line(text,
                       "edgecoder_test_escaped_info{value=\"quote \\\" backslash \\\\ newline "
                       "\\n end\"} 1"))
      << text;
  EXPECT_TRUE(has_line(text, "edgecoder_build_info{version=\"" EDGECODER_VERSION "\"} 1"));
  for (const char* name : {"process_resident_memory_bytes", "process_cpu_seconds_total",
                           "process_open_fds", "process_start_time_seconds"}) {
    EXPECT_EQ(count_occurrences(text, std::string("# TYPE ") + name + " "), 1) << name;
  }
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Registry r;
  auto& h = r.histogram("edgecoder_test_size_bytes", "Sizes.", {{"kind", "x"}}, {1, 5, 10});
  for (double v : {0.5, 1.0, 3.0, 5.0, 7.0, 10.0, 11.0, 1e9}) h.observe(v);
  h.observe(std::numeric_limits<double>::quiet_NaN());  // ignored
  const auto s = h.snapshot();
  EXPECT_EQ(s.bounds, (std::vector<double>{1, 5, 10}));
  // le=1: 0.5, 1.0 (bounds are inclusive); le=5: +3, 5; le=10: +7, 10; +Inf: +11, 1e9.
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{2, 4, 6, 8}));
  EXPECT_EQ(s.count, 8U);
  EXPECT_DOUBLE_EQ(s.sum, 0.5 + 1 + 3 + 5 + 7 + 10 + 11 + 1e9);

  const std::string text = r.render_text();
  EXPECT_TRUE(has_line(text, "# TYPE edgecoder_test_size_bytes histogram"));
  EXPECT_TRUE(has_line(text, "edgecoder_test_size_bytes_bucket{kind=\"x\",le=\"1\"} 2")) << text;
  EXPECT_TRUE(has_line(text, "edgecoder_test_size_bytes_bucket{kind=\"x\",le=\"5\"} 4"));
  EXPECT_TRUE(has_line(text, "edgecoder_test_size_bytes_bucket{kind=\"x\",le=\"10\"} 6"));
  EXPECT_TRUE(has_line(text, "edgecoder_test_size_bytes_bucket{kind=\"x\",le=\"+Inf\"} 8"));
  EXPECT_TRUE(has_line(text, "edgecoder_test_size_bytes_count{kind=\"x\"} 8"));
  EXPECT_TRUE(has_line(text, "edgecoder_test_size_bytes_sum{kind=\"x\"} 1000000037.5")) << text;
}

TEST(MetricsTest, LatencyBucketsAndUnlabelledHistogram) {
  const auto& b = latency_buckets();
  ASSERT_FALSE(b.empty());
  EXPECT_DOUBLE_EQ(b.front(), 0.0001);
  EXPECT_DOUBLE_EQ(b.back(), 10);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  Registry r;
  r.histogram("edgecoder_test_latency_seconds", "Latency.").observe(0.2);
  const std::string text = r.render_text();
  EXPECT_TRUE(has_line(text, "edgecoder_test_latency_seconds_bucket{le=\"0.0001\"} 0")) << text;
  EXPECT_TRUE(has_line(text, "edgecoder_test_latency_seconds_bucket{le=\"0.25\"} 1"));
  EXPECT_TRUE(has_line(text, "edgecoder_test_latency_seconds_bucket{le=\"+Inf\"} 1"));
  EXPECT_TRUE(has_line(text, "edgecoder_test_latency_seconds_sum 0.2"));
  EXPECT_TRUE(has_line(text, "edgecoder_test_latency_seconds_count 1"));
  EXPECT_EQ(run_promtool(text).output, "");
}

TEST(MetricsTest, SameNameAndLabelsReturnSameMetric) {
  Registry r;
  Counter& a = r.counter("edgecoder_test_x_total", "X.", {{"a", "1"}, {"b", "2"}});
  Counter& b = r.counter("edgecoder_test_x_total", "X.", {{"b", "2"}, {"a", "1"}});
  Counter& c = r.counter("edgecoder_test_x_total", "X.", {{"a", "1"}, {"b", "3"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  Gauge& g1 = r.gauge("edgecoder_test_g", "G.");
  EXPECT_EQ(&g1, &r.gauge("edgecoder_test_g", "G."));
}

TEST(MetricsTest, MisuseThrows) {
  Registry r;
  EXPECT_THROW(r.counter("edgecoder_test_requests", "No _total suffix."), std::invalid_argument);
  EXPECT_THROW(r.gauge("bad-name", "x"), std::invalid_argument);
  EXPECT_THROW(r.gauge("9starts_with_digit", "x"), std::invalid_argument);
  EXPECT_THROW(r.gauge("edgecoder_test_g", "x", {{"bad-label", "v"}}), std::invalid_argument);
  EXPECT_THROW(r.gauge("edgecoder_test_g", "x", {{"__reserved", "v"}}), std::invalid_argument);
  EXPECT_THROW(r.gauge("edgecoder_test_g", "x", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
  EXPECT_THROW(r.histogram("edgecoder_test_h_seconds", "x", {{"le", "1"}}), std::invalid_argument);
  EXPECT_THROW(r.histogram("edgecoder_test_h2_seconds", "x", {}, {2, 1}), std::invalid_argument);
  r.gauge("edgecoder_test_typed", "Typed.");
  EXPECT_THROW(r.counter("edgecoder_test_typed", "Typed."), std::invalid_argument);  // no _total
  r.counter("edgecoder_test_t_total", "T.");
  EXPECT_THROW(r.gauge("edgecoder_test_t_total", "T."), std::logic_error);
  EXPECT_THROW(r.counter("edgecoder_test_t_total", "Other help."), std::logic_error);
  r.histogram("edgecoder_test_h3_seconds", "H.", {}, {1, 2});
  EXPECT_THROW(r.histogram("edgecoder_test_h3_seconds", "H.", {{"a", "b"}}, {1, 3}),
               std::logic_error);
  // An explicit trailing +Inf bound is accepted and not duplicated.
  Histogram h({1, std::numeric_limits<double>::infinity()});
  EXPECT_EQ(h.snapshot().cumulative.size(), 2U);
}

TEST(MetricsTest, GaugeAddAndSet) {
  Gauge g;
  g.add(1.5);
  g.add(-0.5);
  EXPECT_DOUBLE_EQ(g.value(), 1.0);
  g.set(-3);
  EXPECT_DOUBLE_EQ(g.value(), -3.0);
}

TEST(MetricsTest, ConcurrentUpdatesSumCorrectly) {
  Registry r;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&r] {
      // Looked up inside each thread: registration races too.
      Counter& c = r.counter("edgecoder_test_hits_total", "Hits.", {{"k", "v"}});
      Gauge& g = r.gauge("edgecoder_test_level", "Level.");
      Histogram& h = r.histogram("edgecoder_test_op_seconds", "Ops.", {}, {0.5});
      for (int i = 0; i < kPerThread; ++i) {
        c.inc();
        g.add(1);
        h.observe(i % 2 == 0 ? 0.25 : 1.0);
      }
    });
  }
  // Scrape while writers run: the exposition must stay consistent.
  for (int i = 0; i < 20; ++i) (void)r.render_text();
  for (auto& t : threads) t.join();
  EXPECT_EQ(r.counter("edgecoder_test_hits_total", "Hits.", {{"k", "v"}}).value(),
            static_cast<std::uint64_t>(kThreads) * kPerThread);
  EXPECT_DOUBLE_EQ(r.gauge("edgecoder_test_level", "Level.").value(), kThreads * kPerThread);
  const auto s = r.histogram("edgecoder_test_op_seconds", "Ops.", {}, {0.5}).snapshot();
  EXPECT_EQ(s.count, static_cast<std::uint64_t>(kThreads) * kPerThread);
  EXPECT_EQ(s.cumulative[0], static_cast<std::uint64_t>(kThreads) * kPerThread / 2);
  EXPECT_DOUBLE_EQ(s.sum, kThreads * (kPerThread / 2) * 1.25);
}

TEST(MetricsTest, CollectorsAndProcessMetrics) {
  Registry r;
  add_process_metrics(r);
  add_process_metrics(r);  // twice: series must still appear once
  r.add_collector([](std::vector<Sample>& out) {
    out.push_back({"edgecoder_test_queue_items", "Queue items.", "gauge", {{"q", "b"}}, 2});
    out.push_back({"edgecoder_test_queue_items", "Queue items.", "gauge", {{"q", "a"}}, 1});
  });
  const std::string text = r.render_text();
  EXPECT_EQ(run_promtool(text).output, "") << text;
  EXPECT_EQ(count_occurrences(text, "\nprocess_open_fds "), 1) << text;
  EXPECT_EQ(count_occurrences(text, "# HELP edgecoder_test_queue_items "), 1);
  EXPECT_TRUE(has_line(text, "edgecoder_test_queue_items{q=\"a\"} 1"));

  const nlohmann::json j = r.render_json();
  ASSERT_TRUE(j.contains("process_resident_memory_bytes"));
  EXPECT_GT(j["process_resident_memory_bytes"].get<double>(), 1024 * 1024);
  EXPECT_GT(j["process_open_fds"].get<double>(), 2);
  EXPECT_GE(j["process_cpu_seconds_total"].get<double>(), 0);
  const double start = j["process_start_time_seconds"].get<double>();
  const double now = static_cast<double>(::time(nullptr));
  EXPECT_GT(start, now - 24 * 3600.0);
  EXPECT_LE(start, now + 1);
}

TEST(MetricsTest, RenderJson) {
  Registry r;
  r.counter("edgecoder_test_plain_total", "Plain.").inc(4);
  r.gauge("edgecoder_test_ratio", "Ratio.").set(0.5);
  r.counter("edgecoder_test_by_route_total", "By route.", {{"route", "/a"}}).inc(2);
  r.counter("edgecoder_test_by_route_total", "By route.", {{"route", "/b"}}).inc(3);
  auto& h = r.histogram("edgecoder_test_dur_seconds", "Durations.", {}, {1});
  h.observe(0.5);
  h.observe(2);
  r.histogram("edgecoder_test_lab_seconds", "Labelled.", {{"op", "x"}}, {1}).observe(3);

  const nlohmann::json j = r.render_json();
  EXPECT_EQ(j["edgecoder_test_plain_total"], 4);
  EXPECT_EQ(j["edgecoder_test_ratio"], 0.5);
  const nlohmann::json expected_routes = nlohmann::json::parse(
      R"([{"labels":{"route":"/a"},"value":2},{"labels":{"route":"/b"},"value":3}])");
  EXPECT_EQ(j["edgecoder_test_by_route_total"], expected_routes);
  EXPECT_EQ(j["edgecoder_test_dur_seconds"], nlohmann::json::parse(R"({"count":2,"sum":2.5})"));
  EXPECT_EQ(j["edgecoder_test_lab_seconds"],
            nlohmann::json::parse(R"([{"labels":{"op":"x"},"count":1,"sum":3.0}])"));
}

}  // namespace
}  // namespace edgecoder::core::metrics

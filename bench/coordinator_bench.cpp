// Coordinator throughput, latency and memory: the real edgecoder binary in coordinator mode (its
// embedded SQLite store, synchronous=FULL) on loopback, driven by simulated agents and submitters
// running as coroutines on one event loop in this process (the load generator shares the 2 cores).
// Every scenario starts a fresh coordinator on a fresh data directory.
//
//   lifecycle  --subtasks (20,000) subtasks are queued first (POST /tasks, 100 per task); then
//              --agents (100) no-op agents loop POST /pull -> POST /result (with the lease's
//              attempt) until all are done. Figure: claim+result lifecycles per second.
//   pull       1,000 agents, each heartbeating every 5 s and pulling every 1.2 s (the worker
//              runner's loop), answering each claim at once, with work always queued; for
//              --seconds. Figure: /pull latency p50/p99 (every pull, claims and empty ones).
//   rss        VmRSS of the coordinator idle 2 s after start, then after 10,000 agents
//              registered (64 at a time).
//   e2e        16 submitters send 2,000 one-subtask tasks (POST /tasks, each submitter one after
//              the other), 4 agents loop pull -> result (an empty pull retries after 1 ms).
//              Figures: tasks/s from the first submit to the last accepted result, and each
//              task's submit -> result-accepted latency p50/p99.
//
//   coordinator_bench [--scenarios lifecycle,pull,rss,e2e] [--runs 3] [--agents 100]
//                     [--subtasks 20000] [--seconds 20] [--binary PATH]
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "net/client.h"
#include "support/child_process.h"

namespace {

namespace asio = boost::asio;
using namespace edgecoder;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr const char* kMesh = "bench-mesh-token";

struct Args {
  std::vector<std::string> scenarios = {"lifecycle", "pull", "rss", "e2e"};
  int runs = 3;
  int agents = 100;
  int subtasks = 20'000;
  int seconds = 20;
  std::string binary = EDGECODER_BINARY_PATH;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double micros_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// One coordinator process on a fresh data directory.
class Node {
 public:
  explicit Node(const std::string& binary) {
    testing::ChildOptions options;
    options.env = {{"EDGE_RUNTIME_MODE", "coordinator"},
                   {"COORDINATOR_PORT", std::to_string(port_)},
                   {"MESH_AUTH_TOKEN", kMesh},
                   {"ADMIN_API_TOKEN", "bench-admin-token"},
                   {"INFERENCE_AUTH_TOKEN", "bench-inference-token"},
                   {"AUTO_APPROVE_AGENTS", "true"},
                   {"EDGECODER_LOG_LEVEL", "warn"},
                   {"EDGECODER_DATA_DIR", (dir_.path() / "data").string()},
                   {"HOME", dir_.path().string()}};
    options.output_dir = dir_.path() / "out";
    child_ = std::make_unique<testing::ChildProcess>(binary, options);
    if (!testing::wait_for_port(port_, 60s)) {
      std::fprintf(stderr, "coordinator did not start: %s\n", child_->stderr_text().c_str());
      std::exit(1);
    }
  }
  ~Node() {
    child_->signal(SIGTERM);
    child_->wait(30s);
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  double rss_mib() const {
    std::ifstream in("/proc/" + std::to_string(child_->pid()) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    }
    return 0;
  }

 private:
  testing::TempDir dir_;
  std::uint16_t port_ = testing::free_port();
  std::unique_ptr<testing::ChildProcess> child_;
};

// The load generator: one event loop, one pooled HTTP client.
struct Load {
  explicit Load(std::string base_url, std::size_t pool)
      : base(std::move(base_url)), client(io.get_executor(), options(pool)) {}
  static net::ClientOptions options(std::size_t pool) {
    net::ClientOptions o;
    o.max_idle_per_host = pool;
    return o;
  }
  asio::io_context io;
  std::string base;
  net::HttpClient client;
  std::atomic<long> errors{0};
  std::string first_error;
};

asio::awaitable<json> post(Load* load, std::string path, std::string body) {
  net::ClientRequest req;
  req.method = "POST";
  req.url = load->base + path;
  req.headers = {{"x-mesh-token", kMesh}, {"content-type", "application/json"}};
  req.body = std::move(body);
  auto call = load->client.request(std::move(req));
  auto resp = co_await std::move(call);
  if (!resp || resp->status >= 300) {
    if (load->errors++ == 0) {
      load->first_error =
          path + ": " +
          (resp ? std::to_string(resp->status) + " " + resp->body : resp.error().detail);
    }
    co_return json();
  }
  co_return json::parse(resp->body, nullptr, false);
}

asio::awaitable<void> pause(Load* load, std::chrono::microseconds d) {
  asio::steady_timer timer(load->io, d);
  co_await timer.async_wait(asio::use_awaitable);
}

std::string result_body(const json& subtask, const std::string& agent) {
  return json{{"subtaskId", subtask["id"]},
              {"taskId", subtask["taskId"]},
              {"agentId", agent},
              {"ok", true},
              {"output", "ok"},
              {"durationMs", 1},
              {"attempt", subtask["attempt"]}}
      .dump();
}

asio::awaitable<void> register_agents(Load* load, int first, int count, std::string prefix,
                                      std::atomic<int>* left) {
  for (int i = first; i < first + count; ++i) {
    const std::string body =
        json{{"agentId", prefix + std::to_string(i)}, {"os", "linux"}, {"maxConcurrentTasks", 4}}
            .dump();
    auto call = post(load, "/register", body);
    co_await std::move(call);
  }
  if (--*left == 0) load->io.stop();
}

// Registers agents prefix0..prefix<n-1>, `parallel` at a time; blocks.
void register_all(Load& load, int n, const std::string& prefix, int parallel) {
  std::atomic<int> left{parallel};
  const int per = (n + parallel - 1) / parallel;
  for (int p = 0; p < parallel; ++p) {
    const int first = p * per;
    const int count = std::max(0, std::min(per, n - first));
    asio::co_spawn(load.io, register_agents(&load, first, count, prefix, &left), asio::detached);
  }
  load.io.restart();
  load.io.run();
}

asio::awaitable<void> create_tasks(Load* load, int tasks, int per_task, std::atomic<int>* left) {
  for (int t = 0; t < tasks; ++t) {
    json subtasks = json::array();
    for (int s = 0; s < per_task; ++s) subtasks.push_back({{"input", "noop"}});
    const std::string body = json{{"subtasks", subtasks}}.dump();
    auto call = post(load, "/tasks", body);
    co_await std::move(call);
  }
  if (--*left == 0) load->io.stop();
}

void queue_subtasks(Load& load, int total) {
  const int per_task = 100, tasks = (total + per_task - 1) / per_task, parallel = 8;
  std::atomic<int> left{parallel};
  for (int p = 0; p < parallel; ++p) {
    const int mine = tasks / parallel + (p < tasks % parallel ? 1 : 0);
    asio::co_spawn(load.io, create_tasks(&load, mine, per_task, &left), asio::detached);
  }
  load.io.restart();
  load.io.run();
}

// ---- lifecycle ----

struct LifecycleState {
  int total = 0;
  std::atomic<int> done{0};
  std::atomic<int> running{0};
};

asio::awaitable<void> lifecycle_agent(Load* load, LifecycleState* state, std::string id) {
  const std::string pull_body = json{{"agentId", id}}.dump();
  while (state->done.load() < state->total && load->errors.load() == 0) {
    auto pull = post(load, "/pull", pull_body);
    json pulled = co_await std::move(pull);
    if (!pulled.is_object() || !pulled["subtask"].is_object()) {
      auto wait = pause(load, 1ms);
      co_await std::move(wait);
      continue;
    }
    auto result = post(load, "/result", result_body(pulled["subtask"], id));
    co_await std::move(result);
    ++state->done;
  }
  if (--state->running == 0) load->io.stop();
}

double run_lifecycle(const Args& args) {
  Node node(args.binary);
  Load load(node.base(), static_cast<std::size_t>(args.agents) + 16);
  register_all(load, args.agents, "lc-", 16);
  queue_subtasks(load, args.subtasks);
  LifecycleState state;
  state.total = args.subtasks;
  state.running = args.agents;
  for (int a = 0; a < args.agents; ++a) {
    asio::co_spawn(load.io, lifecycle_agent(&load, &state, "lc-" + std::to_string(a)),
                   asio::detached);
  }
  const auto t0 = Clock::now();
  load.io.restart();
  load.io.run();
  const double seconds = micros_since(t0) / 1e6;
  if (load.errors > 0)
    std::fprintf(stderr, "  errors: %ld (%s)\n", load.errors.load(), load.first_error.c_str());
  return state.done.load() / seconds;
}

// ---- pull latency ----

struct PullState {
  Clock::time_point end;
  std::vector<double> pull_us;
  int running = 0;
};

asio::awaitable<void> online_agent(Load* load, PullState* state, std::string id,
                                   std::chrono::milliseconds offset) {
  const std::string pull_body = json{{"agentId", id}}.dump();
  const std::string hb_body = json{{"agentId", id}, {"os", "linux"}}.dump();
  auto first = pause(load, offset);
  co_await std::move(first);
  auto next_heartbeat = Clock::now();
  while (Clock::now() < state->end) {
    if (Clock::now() >= next_heartbeat) {
      auto hb = post(load, "/heartbeat", hb_body);
      co_await std::move(hb);
      next_heartbeat += 5s;
    }
    const auto t0 = Clock::now();
    auto pull = post(load, "/pull", pull_body);
    json pulled = co_await std::move(pull);
    state->pull_us.push_back(micros_since(t0));
    if (pulled.is_object() && pulled["subtask"].is_object()) {
      auto result = post(load, "/result", result_body(pulled["subtask"], id));
      co_await std::move(result);
    }
    auto wait = pause(load, 1200ms);
    co_await std::move(wait);
  }
  if (--state->running == 0) load->io.stop();
}

std::pair<double, double> run_pull(const Args& args) {
  constexpr int kAgents = 1'000;
  Node node(args.binary);
  Load load(node.base(), 256);
  register_all(load, kAgents, "on-", 32);
  // ~830 claims/s for the run; queue enough that pulls always find work.
  queue_subtasks(load, 900 * (args.seconds + 2));
  PullState state;
  state.end = Clock::now() + std::chrono::seconds(args.seconds);
  state.running = kAgents;
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> spread(0, 1'199);
  for (int a = 0; a < kAgents; ++a) {
    asio::co_spawn(load.io,
                   online_agent(&load, &state, "on-" + std::to_string(a),
                                std::chrono::milliseconds(spread(rng))),
                   asio::detached);
  }
  load.io.restart();
  load.io.run();
  if (load.errors > 0)
    std::fprintf(stderr, "  errors: %ld (%s)\n", load.errors.load(), load.first_error.c_str());
  return {percentile(state.pull_us, 0.5) / 1000, percentile(state.pull_us, 0.99) / 1000};
}

// ---- rss ----

std::pair<double, double> run_rss(const Args& args) {
  Node node(args.binary);
  std::this_thread::sleep_for(2s);
  const double idle = node.rss_mib();
  Load load(node.base(), 80);
  register_all(load, 10'000, "reg-", 64);
  std::this_thread::sleep_for(2s);
  if (load.errors > 0)
    std::fprintf(stderr, "  errors: %ld (%s)\n", load.errors.load(), load.first_error.c_str());
  return {idle, node.rss_mib()};
}

// ---- end to end ----

struct E2eState {
  int total = 0;
  std::atomic<int> done{0};
  int running = 0;
  std::map<std::string, Clock::time_point> submitted;  // task id -> submit start
  std::vector<double> latency_us;
  Clock::time_point first_submit{}, last_result{};
};

asio::awaitable<void> submitter(Load* load, E2eState* state, int count, int index) {
  for (int i = 0; i < count; ++i) {
    const std::string task_id = "e2e-" + std::to_string(index) + "-" + std::to_string(i);
    const std::string body =
        json{{"taskId", task_id}, {"subtasks", json::array({json{{"input", "noop"}}})}}.dump();
    const auto t0 = Clock::now();
    if (state->first_submit == Clock::time_point{}) state->first_submit = t0;
    state->submitted[task_id] = t0;
    auto call = post(load, "/tasks", body);
    co_await std::move(call);
  }
  if (--state->running == 0 && state->done.load() == state->total) load->io.stop();
}

asio::awaitable<void> e2e_agent(Load* load, E2eState* state, std::string id) {
  const std::string pull_body = json{{"agentId", id}}.dump();
  while (state->done.load() < state->total && load->errors.load() == 0) {
    auto pull = post(load, "/pull", pull_body);
    json pulled = co_await std::move(pull);
    if (!pulled.is_object() || !pulled["subtask"].is_object()) {
      auto wait = pause(load, 1ms);
      co_await std::move(wait);
      continue;
    }
    const std::string task_id = pulled["subtask"].value("taskId", "");
    auto result = post(load, "/result", result_body(pulled["subtask"], id));
    co_await std::move(result);
    const auto now = Clock::now();
    state->last_result = now;
    auto it = state->submitted.find(task_id);
    if (it != state->submitted.end()) {
      state->latency_us.push_back(
          std::chrono::duration<double, std::micro>(now - it->second).count());
    }
    ++state->done;
  }
  load->io.stop();
}

struct E2eFigures {
  double tasks_per_s = 0, p50_ms = 0, p99_ms = 0;
};

E2eFigures run_e2e(const Args& args) {
  constexpr int kTasks = 2'000, kSubmitters = 16, kAgents = 4;
  Node node(args.binary);
  Load load(node.base(), 32);
  register_all(load, kAgents, "e2e-agent-", kAgents);
  E2eState state;
  state.total = kTasks;
  state.running = kSubmitters;
  for (int s = 0; s < kSubmitters; ++s) {
    asio::co_spawn(load.io, submitter(&load, &state, kTasks / kSubmitters, s), asio::detached);
  }
  for (int a = 0; a < kAgents; ++a) {
    asio::co_spawn(load.io, e2e_agent(&load, &state, "e2e-agent-" + std::to_string(a)),
                   asio::detached);
  }
  load.io.restart();
  load.io.run();
  if (load.errors > 0)
    std::fprintf(stderr, "  errors: %ld (%s)\n", load.errors.load(), load.first_error.c_str());
  const double seconds =
      std::chrono::duration<double>(state.last_result - state.first_submit).count();
  return {state.done.load() / seconds, percentile(state.latency_us, 0.5) / 1000,
          percentile(state.latency_us, 0.99) / 1000};
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  return out;
}

double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--scenarios")
      args.scenarios = split(value);
    else if (flag == "--runs")
      args.runs = std::stoi(value);
    else if (flag == "--agents")
      args.agents = std::stoi(value);
    else if (flag == "--subtasks")
      args.subtasks = std::stoi(value);
    else if (flag == "--seconds")
      args.seconds = std::stoi(value);
    else if (flag == "--binary")
      args.binary = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  for (const auto& scenario : args.scenarios) {
    std::vector<double> a, b, c;
    for (int run = 0; run < args.runs; ++run) {
      if (scenario == "lifecycle") {
        a.push_back(run_lifecycle(args));
        std::printf("lifecycle run %d: %.0f lifecycles/s (%d agents)\n", run + 1, a.back(),
                    args.agents);
      } else if (scenario == "pull") {
        auto [p50, p99] = run_pull(args);
        a.push_back(p50);
        b.push_back(p99);
        std::printf("pull run %d: p50 %.2f ms, p99 %.2f ms (1,000 agents)\n", run + 1, p50, p99);
      } else if (scenario == "rss") {
        auto [idle, loaded] = run_rss(args);
        a.push_back(idle);
        b.push_back(loaded);
        std::printf("rss run %d: idle %.1f MiB, 10,000 agents %.1f MiB\n", run + 1, idle, loaded);
      } else if (scenario == "e2e") {
        auto f = run_e2e(args);
        a.push_back(f.tasks_per_s);
        b.push_back(f.p50_ms);
        c.push_back(f.p99_ms);
        std::printf("e2e run %d: %.0f tasks/s, submit->result p50 %.2f ms p99 %.2f ms\n", run + 1,
                    f.tasks_per_s, f.p50_ms, f.p99_ms);
      } else {
        std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
        return 2;
      }
      std::fflush(stdout);
    }
    std::printf("== %s median of %d: %.2f %.2f %.2f\n", scenario.c_str(), args.runs, median(a),
                median(b), median(c));
  }
  return 0;
}

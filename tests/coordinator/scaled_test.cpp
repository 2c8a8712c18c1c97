// Scaled mode: two real edgecoder coordinator processes on one PostgreSQL schema. A client
// following a task's event stream on one coordinator sees what is done through the other, and
// agents split between the two complete every subtask exactly once.
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "coordinator/harness.h"
#include "net/client.h"
#include "net/stream_parsers.h"
#include "store/store_test_support.h"
#include "support/child_process.h"

namespace edgecoder {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kMeshToken = "scaled-mesh-token";

struct Call {
  int status = 0;
  json body;
  std::string text;
};

Call call(std::uint16_t port, const std::string& method, const std::string& path,
          const json& body = nullptr) {
  net::ClientRequest req;
  req.method = method;
  req.url = "http://127.0.0.1:" + std::to_string(port) + path;
  req.headers = {{"x-mesh-token", kMeshToken}, {"content-type", "application/json"}};
  if (method == "POST") req.body = body.dump();
  auto resp = net::fetch(req);
  if (!resp) return Call{0, nullptr, resp.error().detail};
  return Call{resp->status, json::parse(resp->body, nullptr, false), resp->body};
}

class Coordinator {
 public:
  Coordinator(const std::string& database_url, const std::string& name) {
    testing::ChildOptions options;
    options.env = {{"EDGE_RUNTIME_MODE", "coordinator"},
                   {"COORDINATOR_PORT", std::to_string(port_)},
                   {"DATABASE_URL", database_url},
                   {"MESH_AUTH_TOKEN", kMeshToken},
                   {"ADMIN_API_TOKEN", "scaled-admin-token"},
                   {"INFERENCE_AUTH_TOKEN", "scaled-inference-token"},
                   {"AUTO_APPROVE_AGENTS", "true"},
                   {"COORDINATOR_PEER_ID", name},
                   {"EDGECODER_DATA_DIR", (dir_.path() / "data").string()},
                   {"HOME", dir_.path().string()}};
    options.output_dir = dir_.path() / "out";
    child_ = std::make_unique<testing::ChildProcess>(EDGECODER_BINARY_PATH, options);
    EXPECT_TRUE(testing::wait_for_port(port_, 60s)) << child_->stderr_text();
  }
  ~Coordinator() {
    child_->signal(SIGTERM);
    EXPECT_EQ(child_->wait(30s), 0) << child_->stderr_text();
  }
  std::uint16_t port() const { return port_; }

 private:
  testing::TempDir dir_;
  std::uint16_t port_ = testing::free_port();
  std::unique_ptr<testing::ChildProcess> child_;
};

json post_ok(std::uint16_t port, const std::string& path, const json& body, int expect = 200) {
  auto r = call(port, "POST", path, body);
  EXPECT_EQ(r.status, expect) << path << ": " << r.text;
  return r.body;
}

json result_body(const json& subtask, const std::string& agent) {
  return {{"subtaskId", subtask["id"]},
          {"taskId", subtask["taskId"]},
          {"agentId", agent},
          {"ok", true},
          {"output", "by " + agent},
          {"durationMs", 3},
          {"attempt", subtask["attempt"]}};
}

TEST(ScaledCoordinators, TwoProcessesOnOnePostgresShareQueueAndEvents) {
  if (coordinator::testing::pg_missing_should_skip(store::Backend::postgres)) {
    GTEST_SKIP() << "EDGECODER_TEST_PG_DSN is not set";
  }
  store::testing::PgSchema schema(*store::testing::pg_test_dsn());
  Coordinator a(schema.dsn(), "coordinator-a");
  Coordinator b(schema.dsn(), "coordinator-b");
  const std::uint16_t ports[2] = {a.port(), b.port()};

  // A task made on B, followed on A while an agent of B completes it.
  post_ok(b.port(), "/register", {{"agentId", "b-watched"}});
  post_ok(b.port(), "/tasks",
          {{"taskId", "watched"}, {"subtasks", {{{"input", "w1"}}, {{"input", "w2"}}}}}, 201);
  std::string followed;
  std::thread follower([&] { followed = call(a.port(), "GET", "/tasks/watched/events").text; });
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 2; ++i) {
    auto pulled = post_ok(b.port(), "/pull", {{"agentId", "b-watched"}});
    ASSERT_TRUE(pulled["subtask"].is_object()) << pulled.dump();
    post_ok(b.port(), "/result", result_body(pulled["subtask"], "b-watched"));
  }
  follower.join();
  net::SseParser parser;
  auto events = parser.feed(followed);
  ASSERT_TRUE(events) << followed;
  std::vector<std::string> kinds;
  int leased_by_b = 0;
  for (const auto& e : *events) {
    kinds.push_back(e.event);
    auto data = json::parse(e.data, nullptr, false);
    if (e.event == "subtask_leased" && data.value("agentId", "") == "b-watched") ++leased_by_b;
  }
  ASSERT_FALSE(kinds.empty()) << followed;
  EXPECT_EQ(kinds.front(), "task_created");
  EXPECT_EQ(kinds.back(), "task_completed");
  EXPECT_EQ(leased_by_b, 2) << followed;
  EXPECT_EQ(call(a.port(), "GET", "/tasks/watched").body.value("output", ""),
            "by b-watched\nby b-watched");

  // 12 tasks of 4 subtasks, made alternately on A and B; 3 agents on each coordinator.
  constexpr int kTasks = 12, kPerTask = 4, kTotal = kTasks * kPerTask;
  for (int t = 0; t < kTasks; ++t) {
    json subtasks = json::array();
    for (int s = 0; s < kPerTask; ++s) subtasks.push_back({{"input", "t" + std::to_string(s)}});
    post_ok(ports[t % 2], "/tasks",
            {{"taskId", "bulk-" + std::to_string(t)}, {"subtasks", subtasks}}, 201);
  }
  std::mutex mu;
  std::map<std::string, int> accepted;  // subtask id -> accepted results
  std::map<std::string, int> per_side;  // "a"/"b" -> accepted results
  std::atomic<int> done{0};
  std::vector<std::thread> agents;
  for (int i = 0; i < 6; ++i) {
    const std::uint16_t port = ports[i % 2];
    const std::string side = i % 2 == 0 ? "a" : "b";
    const std::string id = side + "-agent-" + std::to_string(i);
    agents.emplace_back([&, port, side, id] {
      post_ok(port, "/register", {{"agentId", id}});
      const auto deadline = std::chrono::steady_clock::now() + 120s;
      while (done.load() < kTotal && std::chrono::steady_clock::now() < deadline) {
        auto pulled = call(port, "POST", "/pull", {{"agentId", id}});
        if (pulled.status != 200 || !pulled.body["subtask"].is_object()) {
          std::this_thread::sleep_for(10ms);
          continue;
        }
        auto r = call(port, "POST", "/result", result_body(pulled.body["subtask"], id));
        if (r.status != 200 || r.body.value("duplicate", false)) {
          ADD_FAILURE() << "result not accepted once: " << r.status << " " << r.text;
          continue;
        }
        std::lock_guard lock(mu);
        ++accepted[pulled.body["subtask"].value("id", "")];
        ++per_side[side];
        ++done;
      }
    });
  }
  for (auto& t : agents) t.join();
  ASSERT_EQ(done.load(), kTotal);
  EXPECT_EQ(accepted.size(), static_cast<std::size_t>(kTotal));
  for (const auto& [id, n] : accepted) EXPECT_EQ(n, 1) << id;
  EXPECT_GT(per_side["a"], 0);
  EXPECT_GT(per_side["b"], 0);
  for (int t = 0; t < kTasks; ++t) {
    for (std::uint16_t port : ports) {
      auto task = call(port, "GET", "/tasks/bulk-" + std::to_string(t)).body;
      EXPECT_EQ(task.value("status", ""), "completed") << task.dump();
      for (const auto& s : task["subtasks"]) EXPECT_EQ(s.value("attempt", 0), 1) << s.dump();
    }
  }
  for (std::uint16_t port : ports) {
    EXPECT_EQ(call(port, "GET", "/status").body.value("results", 0), kTotal + 2);
  }
}

}  // namespace
}  // namespace edgecoder

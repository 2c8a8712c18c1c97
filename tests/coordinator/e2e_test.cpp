// The real edgecoder binary in coordinator mode over loopback: register, submit via /tasks, pull,
// result, GET the completed task; and kill -9 with a task in flight: after a restart on the same
// data directory the accepted task and its recorded result are there and it completes. And an
// all-in-one node: /submit decomposes through its own inference service (offline provider).
#include <signal.h>

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/client.h"
#include "support/child_process.h"

namespace edgecoder {
namespace {

using namespace std::chrono_literals;

constexpr const char* kMeshToken = "e2e-mesh-token";

class CoordinatorBinary : public ::testing::Test {
 protected:
  std::unique_ptr<testing::ChildProcess> start() {
    testing::ChildOptions options;
    options.env = {{"EDGE_RUNTIME_MODE", "coordinator"},
                   {"COORDINATOR_PORT", std::to_string(port_)},
                   {"MESH_AUTH_TOKEN", kMeshToken},
                   {"ADMIN_API_TOKEN", "e2e-admin-token"},
                   {"INFERENCE_AUTH_TOKEN", "e2e-inference-token"},
                   {"AUTO_APPROVE_AGENTS", "true"},
                   {"EDGECODER_DATA_DIR", (dir_.path() / "data").string()},
                   {"HOME", dir_.path().string()}};
    options.output_dir = dir_.path() / ("out" + std::to_string(starts_++));
    auto child = std::make_unique<testing::ChildProcess>(EDGECODER_BINARY_PATH, options);
    EXPECT_TRUE(testing::wait_for_port(port_, 60s)) << child->stderr_text();
    return child;
  }
  nlohmann::json call(const std::string& method, const std::string& path,
                      const nlohmann::json& body, int expect) {
    net::ClientRequest req;
    req.method = method;
    req.url = "http://127.0.0.1:" + std::to_string(port_) + path;
    req.headers = {{"x-mesh-token", kMeshToken}, {"content-type", "application/json"}};
    if (method == "POST") req.body = body.dump();
    auto resp = net::fetch(req);
    EXPECT_TRUE(resp) << path << ": " << (resp ? "" : resp.error().detail);
    if (!resp) return nullptr;
    EXPECT_EQ(resp->status, expect) << path << ": " << resp->body;
    return nlohmann::json::parse(resp->body, nullptr, false);
  }
  nlohmann::json post(const std::string& path, const nlohmann::json& body, int expect = 200) {
    return call("POST", path, body, expect);
  }
  nlohmann::json get(const std::string& path) { return call("GET", path, nullptr, 200); }

  testing::TempDir dir_;
  std::uint16_t port_ = testing::free_port();
  int starts_ = 0;
};

TEST_F(CoordinatorBinary, RegisterSubmitPullResultCompletes) {
  auto node = start();
  auto reg = post("/register", {{"agentId", "e2e-agent"}, {"os", "debian"}});
  EXPECT_EQ(reg.value("accepted", false), true);
  auto created = post("/tasks", {{"subtasks", {{{"input", "print('hi')"}}}}}, 201);
  const std::string task_id = created.value("taskId", "");
  ASSERT_FALSE(task_id.empty());
  auto pulled = post("/pull", {{"agentId", "e2e-agent"}});
  ASSERT_TRUE(pulled["subtask"].is_object()) << pulled.dump();
  const auto& s = pulled["subtask"];
  EXPECT_EQ(s.value("taskId", ""), task_id);
  EXPECT_EQ(s.value("attempt", 0), 1);
  post("/result", {{"subtaskId", s["id"]},
                   {"taskId", task_id},
                   {"agentId", "e2e-agent"},
                   {"ok", true},
                   {"output", "hi"},
                   {"durationMs", 5},
                   {"attempt", 1}});
  auto task = get("/tasks/" + task_id);
  EXPECT_EQ(task.value("status", ""), "completed");
  EXPECT_EQ(task.value("output", ""), "hi");
  auto ready = get("/ready");
  EXPECT_EQ(ready.value("ready", false), true);
  node->signal(SIGTERM);
  auto code = node->wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << node->stderr_text();
}

TEST_F(CoordinatorBinary, AcceptedTaskSurvivesSigkill) {
  auto node = start();
  post("/register", {{"agentId", "w1"}});
  auto created =
      post("/tasks",
           {{"taskId", "survivor"}, {"subtasks", {{{"input", "one"}}, {{"input", "two"}}}}}, 201);
  auto first = post("/pull", {{"agentId", "w1"}})["subtask"];
  ASSERT_TRUE(first.is_object());
  post("/result", {{"subtaskId", first["id"]},
                   {"agentId", "w1"},
                   {"ok", true},
                   {"output", "first-out"},
                   {"attempt", first["attempt"]}});
  node->signal(SIGKILL);
  ASSERT_TRUE(node->wait(30s).has_value());

  auto again = start();
  auto task = get("/tasks/survivor");
  ASSERT_EQ(task["subtasks"].size(), 2u) << task.dump();
  EXPECT_EQ(task["subtasks"][0].value("state", ""), "completed");
  EXPECT_EQ(task["subtasks"][0]["result"].value("output", ""), "first-out");
  EXPECT_EQ(task["subtasks"][1].value("state", ""), "queued");
  // The agent re-registers (a refresh) and finishes the task.
  post("/register", {{"agentId", "w1"}});
  auto second = post("/pull", {{"agentId", "w1"}})["subtask"];
  ASSERT_TRUE(second.is_object());
  EXPECT_EQ(second.value("input", ""), "two");
  post("/result", {{"subtaskId", second["id"]},
                   {"agentId", "w1"},
                   {"ok", true},
                   {"output", "second-out"},
                   {"attempt", second["attempt"]}});
  task = get("/tasks/survivor");
  EXPECT_EQ(task.value("status", ""), "completed");
  EXPECT_EQ(task.value("output", ""), "first-out\nsecond-out");
  EXPECT_EQ(get("/status").value("results", 0), 2);
  again->signal(SIGTERM);
  ASSERT_TRUE(again->wait(30s).has_value());
}

// The coordinator and inference processes of one all-in-one node wired together by the tokens it
// generated: /submit (without a snapshotRef, which is optional) is decomposed by the real
// inference service's offline provider into a dependency chain, in order.
TEST(AllInOneBinary, SubmitDecomposesThroughItsInferenceService) {
  testing::TempDir dir;
  const std::uint16_t coordinator = testing::free_port();
  testing::ChildOptions options;
  options.env = {{"COORDINATOR_PORT", std::to_string(coordinator)},
                 {"INFERENCE_PORT", std::to_string(testing::free_port())},
                 {"CONTROL_PLANE_PORT", std::to_string(testing::free_port())},
                 {"AUTO_APPROVE_AGENTS", "true"},
                 // The queue is inspected before any agent takes work.
                 {"DISABLE_SELF_AGENT", "true"},
                 {"EDGECODER_DATA_DIR", (dir.path() / "data").string()},
                 {"HOME", dir.path().string()}};
  options.output_dir = dir.path() / "out";
  testing::ChildProcess node(EDGECODER_BINARY_PATH, options);
  ASSERT_TRUE(testing::wait_for_port(coordinator, 60s)) << node.stderr_text();
  std::string token;
  std::ifstream(dir.path() / "data/secrets/MESH_AUTH_TOKEN") >> token;
  ASSERT_EQ(token.size(), 64u);

  net::ClientRequest req;
  req.method = "POST";
  req.url = "http://127.0.0.1:" + std::to_string(coordinator) + "/submit";
  req.headers = {{"x-mesh-token", token}, {"content-type", "application/json"}};
  req.body = nlohmann::json{{"prompt",
                             "Build a report:\n1. Generate the first 10 Fibonacci numbers\n"
                             "2. Sum them\n3) javascript: Print the sum as JSON"}}
                 .dump();
  auto resp = net::fetch(req);
  ASSERT_TRUE(resp) << resp.error().detail;
  ASSERT_EQ(resp->status, 201) << resp->body << node.stderr_text();
  const auto created = nlohmann::json::parse(resp->body);
  ASSERT_EQ(created["subtasks"].size(), 3u) << resp->body;

  req.method = "GET";
  req.body.clear();
  req.url = "http://127.0.0.1:" + std::to_string(coordinator) + "/tasks/" +
            created["taskId"].get<std::string>();
  auto task = net::fetch(req);
  ASSERT_TRUE(task && task->status == 200) << (task ? task->body : task.error().detail);
  const auto t = nlohmann::json::parse(task->body);
  ASSERT_EQ(t["subtasks"].size(), 3u) << task->body;
  // Only the first step is ready; the others wait for the one before them.
  EXPECT_EQ(t["subtasks"][0].value("state", ""), "queued") << task->body;
  EXPECT_EQ(t["subtasks"][1].value("state", ""), "held") << task->body;
  EXPECT_EQ(t["subtasks"][2].value("language", ""), "javascript") << task->body;
  node.signal(SIGTERM);
  auto code = node.wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << node.stderr_text();
}

}  // namespace
}  // namespace edgecoder

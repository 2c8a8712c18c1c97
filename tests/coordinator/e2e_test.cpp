// The real edgecoder binary in coordinator mode over loopback: register, submit via /tasks, pull,
// result, GET the completed task; and kill -9 with a task in flight: after a restart on the same
// data directory the accepted task and its recorded result are there and it completes. And an
// all-in-one node: /submit decomposes through its own inference service (offline provider).
#include <signal.h>

#include <fstream>
#include <map>
#include <set>
#include <thread>

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
  std::unique_ptr<testing::ChildProcess> start(std::map<std::string, std::string> extra = {}) {
    testing::ChildOptions options;
    options.env = {{"EDGE_RUNTIME_MODE", "coordinator"},
                   {"COORDINATOR_PORT", std::to_string(port_)},
                   {"MESH_AUTH_TOKEN", kMeshToken},
                   {"ADMIN_API_TOKEN", "e2e-admin-token"},
                   {"INFERENCE_AUTH_TOKEN", "e2e-inference-token"},
                   {"AUTO_APPROVE_AGENTS", "true"},
                   {"EDGECODER_DATA_DIR", (dir_.path() / "data").string()},
                   {"HOME", dir_.path().string()}};
    for (auto& [k, v] : extra) options.env[k] = v;
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

// Issue 4's crash test: agents work a task over HTTP; the coordinator is SIGKILLed with leases and
// a result in flight and restarted on the same data directory. Every subtask completes once, no
// result is recorded twice, each accepted subtask earns exactly one ledger entry, and the ordering
// chain verifies and continues from where it stopped (no second GENESIS).
TEST_F(CoordinatorBinary, CreditsAndOrderingChainSurviveSigkill) {
  // Short leases so that the leases cut off by the kill expire soon after the restart.
  const std::map<std::string, std::string> env = {{"COORDINATOR_LEASE_BUDGET_MS", "1000"},
                                                  {"COORDINATOR_LEASE_SWEEP_MS", "100"}};
  auto node = start(env);
  const std::vector<std::string> agents = {"w1", "w2", "w3"};
  for (const auto& a : agents) post("/register", {{"agentId", a}});
  nlohmann::json subtasks = nlohmann::json::array();
  for (int i = 0; i < 8; ++i) {
    subtasks.push_back({{"input", "step " + std::to_string(i)}, {"timeoutMs", 2000}});
  }
  post("/tasks", {{"taskId", "crash"}, {"subtasks", subtasks}}, 201);
  auto result_body = [](const nlohmann::json& s, const std::string& agent) {
    return nlohmann::json{{"subtaskId", s["id"]}, {"agentId", agent},  {"ok", true},
                          {"output", "out"},      {"durationMs", 700}, {"attempt", s["attempt"]}};
  };
  // Before the kill: two results accepted, one lease left in flight, one result in flight.
  std::vector<nlohmann::json> accepted;
  for (const auto& a : {"w1", "w2"}) {
    auto s = post("/pull", {{"agentId", a}})["subtask"];
    ASSERT_TRUE(s.is_object());
    post("/result", result_body(s, a));
    accepted.push_back(s);
  }
  auto held = post("/pull", {{"agentId", "w3"}})["subtask"];  // never answered before the kill
  ASSERT_TRUE(held.is_object());
  auto racing = post("/pull", {{"agentId", "w1"}})["subtask"];
  ASSERT_TRUE(racing.is_object());
  const auto before = get("/ledger/verify");
  ASSERT_EQ(before.value("ok", false), true) << before.dump();
  const int count_before = before.value("count", 0);
  EXPECT_EQ(count_before, 1 + 4 + 2 + 2);  // enqueue, 4 claims, 2 completions, 2 accruals
  const std::string head_before = before.value("head", "");
  // The result of `racing` is on its way when the coordinator dies: acknowledged or not, it must
  // count once.
  std::thread racer([this, body = result_body(racing, "w1")] {
    net::ClientRequest req;
    req.method = "POST";
    req.url = "http://127.0.0.1:" + std::to_string(port_) + "/result";
    req.headers = {{"x-mesh-token", kMeshToken}, {"content-type", "application/json"}};
    req.body = body.dump();
    (void)net::fetch(req);
  });
  node->signal(SIGKILL);
  racer.join();
  ASSERT_TRUE(node->wait(30s).has_value());

  auto again = start(env);
  const auto after_restart = get("/ledger/verify");
  EXPECT_EQ(after_restart.value("ok", false), true) << after_restart.dump();
  EXPECT_GE(after_restart.value("count", 0), count_before);  // nothing acknowledged was lost
  // The agents finish the task; the result cut off by the kill is sent again, and the results
  // accepted before it are sent again too (a retrying agent): duplicates, no second credit.
  for (const auto& a : agents) post("/register", {{"agentId", a}});
  {
    net::ClientRequest req;
    req.method = "POST";
    req.url = "http://127.0.0.1:" + std::to_string(port_) + "/result";
    req.headers = {{"x-mesh-token", kMeshToken}, {"content-type", "application/json"}};
    req.body = result_body(racing, "w1").dump();
    auto resp = net::fetch(req);
    ASSERT_TRUE(resp);
    EXPECT_TRUE(resp->status == 200 || resp->status == 409) << resp->body;
  }
  for (const auto& s : accepted) {
    const std::string agent = s == accepted[0] ? "w1" : "w2";
    auto dup = post("/result", result_body(s, agent));
    EXPECT_EQ(dup.value("duplicate", false), true) << dup.dump();
  }
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  nlohmann::json task;
  while (std::chrono::steady_clock::now() < deadline) {
    task = get("/tasks/crash");
    if (task.value("status", "") == "completed") break;
    for (const auto& a : agents) {
      auto s = post("/pull", {{"agentId", a}})["subtask"];
      if (!s.is_object()) continue;
      net::ClientRequest req;
      req.method = "POST";
      req.url = "http://127.0.0.1:" + std::to_string(port_) + "/result";
      req.headers = {{"x-mesh-token", kMeshToken}, {"content-type", "application/json"}};
      req.body = result_body(s, a).dump();
      auto resp = net::fetch(req);
      ASSERT_TRUE(resp);
      EXPECT_TRUE(resp->status == 200 || resp->status == 409) << resp->body;  // 409: lease lost
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(task.value("status", ""), "completed") << task.dump();
  ASSERT_EQ(task["subtasks"].size(), 8u);
  std::set<std::string> subtask_ids;
  for (const auto& s : task["subtasks"]) {
    EXPECT_EQ(s.value("state", ""), "completed") << s.dump();
    subtask_ids.insert(s.value("id", ""));
  }
  // No subtask result recorded twice.
  EXPECT_EQ(get("/status").value("results", 0), 8);
  // Exactly one earn entry per subtask across the agents' accounts: 0.7 s each at a load
  // multiplier of 0.8..1.6.
  std::multiset<std::string> earned;
  std::int64_t total = 0;
  for (const auto& a : agents) {
    auto history = get("/credits/" + a + "/history?limit=500")["history"];
    std::int64_t sum = 0;
    for (const auto& e : history) {
      earned.insert(e.value("txId", ""));
      sum += e.value("millicredits", std::int64_t{0});
      EXPECT_GE(e.value("millicredits", 0), 560);
      EXPECT_LE(e.value("millicredits", 0), 1120);
    }
    EXPECT_EQ(get("/credits/" + a + "/balance").value("balanceMillicredits", std::int64_t{-1}),
              sum);
    total += sum;
  }
  std::multiset<std::string> expected;
  for (const auto& id : subtask_ids) expected.insert("earn:" + id);
  EXPECT_EQ(earned, expected);
  EXPECT_GT(total, 0);
  // The chain verifies and continued across the restart.
  const auto after = get("/ledger/verify");
  EXPECT_EQ(after.value("ok", false), true) << after.dump();
  EXPECT_GT(after.value("count", 0), count_before);
  const auto snapshot = get("/ledger/snapshot?limit=5000");
  int genesis = 0, accruals = 0, completions = 0;
  for (const auto& r : snapshot["records"]) {
    if (r.value("prevHash", "") == "GENESIS") ++genesis;
    if (r.value("eventType", "") == "earnings_accrual") ++accruals;
    if (r.value("eventType", "") == "task_complete") ++completions;
    if (r.value("sequence", 0) == count_before + 1) {
      EXPECT_EQ(r.value("prevHash", ""), head_before);
    }
  }
  EXPECT_EQ(genesis, 1);
  EXPECT_EQ(accruals, 8);
  EXPECT_EQ(completions, 8);
  EXPECT_EQ(static_cast<int>(snapshot["records"].size()), after.value("count", -1));
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

// A model rollout end to end with the real binary: an all-in-one node (whose embedded agent is
// agent-a) and a second EDGE_RUNTIME_MODE=agent process (agent-b), both on the ollama provider
// against a protocol-faithful fake Ollama server. A canary rollout created through the control
// plane makes the canary agent pull the new model and generate with it; the node is killed
// (SIGKILL) and restarted in the middle; promote reaches the other agent; rollback makes both
// generate with the previous model again.
// Everything is observed through the control plane's API and the fake server's request log.
#include <signal.h>

#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/fake_model_server.h"
#include "net/client.h"
#include "support/child_process.h"

namespace edgecoder {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

constexpr const char* kMesh = "rollout-e2e-mesh-token";
constexpr const char* kAdmin = "rollout-e2e-admin-token";
constexpr const char* kOld = "coder-old:1";
constexpr const char* kNew = "coder-new:2";

class RolloutBinary : public ::testing::Test {
 protected:
  RolloutBinary() {
    testing::FakeBehaviour b;
    b.installed = {kOld};  // the new model exists only once an agent pulled it
    b.reply("```python\nprint('ready')\n```");
    // Started after the fixed ports are chosen and before any child (see fake_model_server.h).
    ollama_ =
        std::make_unique<testing::FakeModelServer>(testing::FakeModelServer::Flavor::ollama, b);
  }

  std::map<std::string, std::string> model_env() const {
    return {{"LOCAL_MODEL_PROVIDER", "ollama-local"},
            {"OLLAMA_HOST", ollama_->base_url()},
            {"OLLAMA_MODEL", kOld},
            {"HOME", dir_.path().string()}};
  }

  std::unique_ptr<testing::ChildProcess> start_node() {
    testing::ChildOptions options;
    options.env = model_env();
    options.env.insert({{"EDGE_RUNTIME_MODE", "all-in-one"},
                        {"COORDINATOR_PORT", std::to_string(coordinator_)},
                        {"INFERENCE_PORT", std::to_string(inference_)},
                        {"CONTROL_PLANE_PORT", std::to_string(control_)},
                        {"MESH_AUTH_TOKEN", kMesh},
                        {"ADMIN_API_TOKEN", kAdmin},
                        {"INFERENCE_AUTH_TOKEN", "rollout-e2e-inference-token"},
                        {"AUTO_APPROVE_AGENTS", "true"},
                        {"CONTROL_ROLLOUT_POLL_MS", "100"},
                        {"AGENT_ID", "agent-a"},  // the embedded agent
                        {"AGENT_HEARTBEAT_MS", "200"},
                        {"SANDBOX_MODE", "none"},  // this test runs no generated code
                        {"EDGECODER_DATA_DIR", (dir_.path() / "node").string()}});
    options.output_dir = dir_.path() / ("node-out" + std::to_string(starts_++));
    auto child = std::make_unique<testing::ChildProcess>(EDGECODER_BINARY_PATH, options);
    EXPECT_TRUE(testing::wait_for_port(control_, 60s)) << child->stderr_text();
    EXPECT_TRUE(testing::wait_for_port(coordinator_, 60s)) << child->stderr_text();
    return child;
  }

  std::unique_ptr<testing::ChildProcess> start_agent(const std::string& id) {
    testing::ChildOptions options;
    options.env = model_env();
    options.env.insert({{"EDGE_RUNTIME_MODE", "agent"},
                        {"AGENT_ID", id},
                        {"COORDINATOR_URL", "http://127.0.0.1:" + std::to_string(coordinator_)},
                        {"MESH_AUTH_TOKEN", kMesh},
                        {"SANDBOX_MODE", "none"},  // this test runs no generated code
                        {"AGENT_HEARTBEAT_MS", "200"},
                        {"EDGECODER_DATA_DIR", (dir_.path() / id).string()}});
    options.output_dir = dir_.path() / (id + "-out" + std::to_string(starts_++));
    return std::make_unique<testing::ChildProcess>(EDGECODER_BINARY_PATH, options);
  }

  json control(const std::string& method, const std::string& path, const json& body = nullptr,
               int expect = 200) {
    net::ClientRequest req;
    req.method = method;
    req.url = "http://127.0.0.1:" + std::to_string(control_) + path;
    req.headers = {{"x-admin-token", kAdmin}, {"content-type", "application/json"}};
    if (!body.is_null()) req.body = body.dump();
    req.total_timeout = 30s;
    auto resp = net::fetch(req);
    EXPECT_TRUE(resp) << path << ": " << (resp ? "" : resp.error().detail);
    if (!resp) return nullptr;
    EXPECT_EQ(resp->status, expect) << method << " " << path << ": " << resp->body;
    return json::parse(resp->body, nullptr, false);
  }

  // Polls GET `path` until `pred` holds; generous deadline for the ASan build under load.
  template <typename Pred>
  json wait_for(const std::string& path, Pred pred, std::chrono::seconds deadline = 90s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    json last;
    while (std::chrono::steady_clock::now() < until) {
      net::ClientRequest req;
      req.url = "http://127.0.0.1:" + std::to_string(control_) + path;
      req.headers = {{"x-admin-token", kAdmin}};
      auto resp = net::fetch(req);
      if (resp && resp->status == 200) {
        last = json::parse(resp->body, nullptr, false);
        if (pred(last)) return last;
      }
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "timed out waiting on " << path << ": " << last.dump();
    return last;
  }

  static json state_of(const json& rollout, const std::string& agent) {
    for (const auto& s : rollout.value("agentStates", json::array())) {
      if (s.value("agentId", "") == agent) return s;
    }
    return json::object();
  }

  static std::string active_model(const json& agents, const std::string& agent) {
    for (const auto& a : agents.value("agents", json::array())) {
      if (a.value("agentId", "") == agent) return a.value("activeModel", "");
    }
    return "";
  }

  // Models named in the fake's /api/generate requests since it was last cleared.
  std::vector<std::string> generated_with() const {
    std::vector<std::string> out;
    for (const auto& r : ollama_->requests_to("/api/generate")) {
      out.push_back(r.body.value("model", ""));
    }
    return out;
  }

  testing::TempDir dir_;
  const std::uint16_t coordinator_ = testing::free_port();
  const std::uint16_t inference_ = testing::free_port();
  const std::uint16_t control_ = testing::free_port();
  std::unique_ptr<testing::FakeModelServer> ollama_;
  int starts_ = 0;
};

TEST_F(RolloutBinary, CanaryPromoteRollbackAcrossANodeRestart) {
  auto node = start_node();
  auto agent_b = start_agent("agent-b");
  wait_for("/agents", [](const json& j) {
    return active_model(j, "agent-a") == kOld && active_model(j, "agent-b") == kOld;
  });
  ollama_->clear_requests();

  // Canary: half of two agents is agent-a (the agents are taken by id).
  auto created = control("POST", "/rollouts",
                         {{"modelId", kNew},
                          {"targetProvider", "ollama-local"},
                          {"canaryPercent", 50},
                          {"batchSize", 5}},
                         201);
  const std::string id = created.value("rolloutId", "");
  ASSERT_EQ(created["canaryAgents"], json::array({"agent-a"})) << created.dump();
  auto canary = wait_for("/rollouts/" + id, [](const json& r) {
    return state_of(r, "agent-a").value("status", "") == "healthy";
  });
  EXPECT_EQ(state_of(canary, "agent-b"), json::object()) << "agent-b is not in the canary";
  ASSERT_FALSE(ollama_->requests_to("/api/pull").empty());
  EXPECT_EQ(ollama_->requests_to("/api/pull")[0].body.value("model", ""), kNew);
  auto models = generated_with();
  EXPECT_NE(std::find(models.begin(), models.end(), kNew), models.end())
      << "the fake never saw a generation with the new model";
  EXPECT_EQ(active_model(control("GET", "/agents"), "agent-a"), kNew);
  EXPECT_EQ(active_model(control("GET", "/agents"), "agent-b"), kOld);

  // The node dies without warning and comes back: the rollout is where it was.
  node->signal(SIGKILL);
  ASSERT_TRUE(node->wait(30s).has_value());
  node = start_node();
  auto after = control("GET", "/rollouts/" + id);
  EXPECT_EQ(after.value("stage", ""), "canary") << after.dump();
  EXPECT_EQ(state_of(after, "agent-a").value("status", ""), "healthy");
  wait_for("/agents", [](const json& j) { return active_model(j, "agent-b") == kOld; });

  // Promote reaches the other agent.
  auto promoted = control("POST", "/rollouts/" + id + "/promote", json::object());
  EXPECT_EQ(promoted.value("stage", ""), "batch") << promoted.dump();
  EXPECT_EQ(promoted["enrolledAgents"], json::array({"agent-b"}));
  wait_for("/rollouts/" + id,
           [](const json& r) { return state_of(r, "agent-b").value("status", "") == "healthy"; });
  auto both = control("GET", "/agents");
  EXPECT_EQ(active_model(both, "agent-a"), kNew);
  EXPECT_EQ(active_model(both, "agent-b"), kNew);

  // Rollback: both agents switch back and generate with the previous model again.
  ollama_->clear_requests();
  auto back = control("POST", "/rollouts/" + id + "/rollback", json::object());
  EXPECT_EQ(back.value("stage", ""), "rolled_back");
  wait_for("/rollouts/" + id, [](const json& r) {
    for (const char* a : {"agent-a", "agent-b"}) {
      const json s = state_of(r, a);
      if (!s.value("rollback", false) || s.value("status", "") != "healthy") return false;
    }
    return true;
  });
  auto restored = control("GET", "/agents");
  EXPECT_EQ(active_model(restored, "agent-a"), kOld);
  EXPECT_EQ(active_model(restored, "agent-b"), kOld);
  models = generated_with();
  EXPECT_EQ(std::count(models.begin(), models.end(), std::string(kOld)), 2)
      << "each agent probes the previous model once after the rollback";
  EXPECT_EQ(std::count(models.begin(), models.end(), std::string(kNew)), 0);

  // The audit log has the three operator actions.
  auto audit = control("GET", "/audit");
  std::vector<std::string> actions;
  for (const auto& r : audit["records"]) actions.push_back(r.value("action", ""));
  EXPECT_EQ(actions,
            (std::vector<std::string>{"rollout.create", "rollout.promote", "rollout.rollback"}));
}

TEST_F(RolloutBinary, ACanaryThatCannotPullTheModelFailsTheGateAndKeepsItsModel) {
  auto behaviour = ollama_->behaviour();
  behaviour.pull_fail = true;  // the registry answers an error line, as Ollama does
  ollama_->set_behaviour(behaviour);
  auto node = start_node();
  auto agent_b = start_agent("agent-b");
  wait_for("/agents", [](const json& j) {
    return active_model(j, "agent-a") == kOld && active_model(j, "agent-b") == kOld;
  });
  auto created = control("POST", "/rollouts", {{"modelId", kNew}, {"canaryPercent", 50}}, 201);
  const std::string id = created.value("rolloutId", "");
  auto failed = wait_for("/rollouts/" + id, [](const json& r) {
    return state_of(r, "agent-a").value("status", "") == "failed";
  });
  EXPECT_NE(state_of(failed, "agent-a").value("error", "").find("pull"), std::string::npos)
      << failed.dump();
  auto gated = control("POST", "/rollouts/" + id + "/promote", json::object(), 400);
  EXPECT_EQ(gated.value("error", ""), "health_check_failed");
  EXPECT_EQ(gated.value("failurePercent", 0), 100);
  // The agent kept the model it had and still generates with it.
  EXPECT_EQ(active_model(control("GET", "/agents"), "agent-a"), kOld);
  auto back = control("POST", "/rollouts/" + id + "/rollback", json::object());
  EXPECT_EQ(back.value("stage", ""), "rolled_back");
  EXPECT_EQ(back["rolledBackAgents"], json::array({"agent-a"}));
  wait_for("/rollouts/" + id, [](const json& r) {
    return state_of(r, "agent-a").value("rollback", false) &&
           state_of(r, "agent-a").value("status", "") == "healthy";
  });
}

}  // namespace
}  // namespace edgecoder

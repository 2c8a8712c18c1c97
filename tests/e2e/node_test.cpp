// End-to-end tests of the edgecoder binary: modes and their ports, tokens, busy ports, config
// precedence and redaction, /metrics through promtool, sd_notify, graceful stop.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/client.h"
#include "net/stream_parsers.h"
#include "support/child_process.h"

namespace edgecoder {
namespace {

using testing::ChildOptions;
using testing::ChildProcess;
using testing::TempDir;
using namespace std::chrono_literals;

const std::string kBinary = EDGECODER_BINARY_PATH;

struct Ports {
  std::uint16_t coordinator = testing::free_port();
  std::uint16_t inference = testing::free_port();
  std::uint16_t control = testing::free_port();
  std::uint16_t ide = testing::free_port();
  std::uint16_t portal = testing::free_port();
  std::uint16_t anchor = testing::free_port();

  std::map<std::string, std::string> env() const {
    return {{"COORDINATOR_PORT", std::to_string(coordinator)},
            {"INFERENCE_PORT", std::to_string(inference)},
            {"CONTROL_PLANE_PORT", std::to_string(control)},
            {"IDE_PROVIDER_PORT", std::to_string(ide)},
            {"PORTAL_PORT", std::to_string(portal)},
            {"ANCHOR_PROXY_PORT", std::to_string(anchor)}};
  }
  std::vector<std::uint16_t> all() const {
    return {coordinator, inference, control, ide, portal, anchor};
  }
};

class NodeTest : public ::testing::Test {
 protected:
  // The environment for a node: its ports, a private data dir, and no /etc env file.
  std::map<std::string, std::string> node_env(const Ports& ports) {
    auto env = ports.env();
    env["EDGECODER_DATA_DIR"] = (dir_.path() / "data").string();
    env["HOME"] = dir_.path().string();
    return env;
  }
  std::unique_ptr<ChildProcess> start(std::map<std::string, std::string> env,
                                      std::vector<std::string> args = {}) {
    ChildOptions options;
    options.env = std::move(env);
    options.args = std::move(args);
    options.output_dir = dir_.path() / "out";
    return std::make_unique<ChildProcess>(kBinary, std::move(options));
  }
  testing::RunResult run(std::map<std::string, std::string> env, std::vector<std::string> args) {
    ChildOptions options;
    options.env = std::move(env);
    options.args = std::move(args);
    options.output_dir = dir_.path() / "out";
    return testing::run_to_end(kBinary, std::move(options));
  }
  static net::ClientResponse get(std::uint16_t port, const std::string& path,
                                 net::Headers headers = {}) {
    net::ClientRequest request;
    request.url = "http://127.0.0.1:" + std::to_string(port) + path;
    request.headers = std::move(headers);
    auto response = net::fetch(std::move(request));
    EXPECT_TRUE(response.has_value()) << (response ? "" : response.error().detail);
    return response ? *response : net::ClientResponse{};
  }
  static void stop(ChildProcess& child) {
    child.signal(SIGTERM);
    auto code = child.wait(30s);
    ASSERT_TRUE(code.has_value()) << "did not stop after SIGTERM";
    EXPECT_EQ(*code, 0) << child.stderr_text();
  }

  TempDir dir_;
};

// The all-in-one node runs its own agent: a task submitted with nothing else running completes,
// and the agent is approved by the token the node generated for it (not by AUTO_APPROVE_AGENTS).
TEST_F(NodeTest, AllInOneRunsItsEmbeddedAgentWhichCompletesATask) {
  Ports ports;
  auto env = node_env(ports);
  const char* mode = std::getenv("EDGECODER_TEST_SANDBOX_MODE");
  env["SANDBOX_MODE"] = mode && *mode ? mode : "bwrap";
  env["AGENT_HEARTBEAT_MS"] = "300";
  env["AGENT_POLL_MS"] = "100";
  auto node = start(env);
  ASSERT_TRUE(testing::wait_for_port(ports.coordinator, 30s)) << node->stderr_text();
  auto secret = [&](const char* name) {
    std::ifstream in(dir_.path() / "data/secrets" / name);
    std::string value;
    std::getline(in, value);
    return value;
  };
  const std::string mesh = secret("MESH_AUTH_TOKEN");
  const std::string admin = secret("ADMIN_API_TOKEN");
  net::ClientRequest submit;
  submit.method = "POST";
  submit.url = "http://127.0.0.1:" + std::to_string(ports.coordinator) + "/tasks";
  submit.headers = {{"x-mesh-token", mesh}, {"content-type", "application/json"}};
  submit.body = nlohmann::json{{"taskId", "embedded-1"},
                               {"subtasks", {{{"input", "print(6 * 7)"}, {"language", "python"}}}}}
                    .dump();
  auto created = net::fetch(submit);
  ASSERT_TRUE(created) << created.error().detail;
  ASSERT_EQ(created->status, 201) << created->body;
  nlohmann::json task;
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (std::chrono::steady_clock::now() < deadline) {
    task = nlohmann::json::parse(
        get(ports.coordinator, "/tasks/embedded-1", {{"x-mesh-token", mesh}}).body, nullptr, false);
    if (task.is_object() && task.value("status", "") == "completed") break;
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_EQ(task.value("status", ""), "completed") << task.dump() << node->stderr_text();
  EXPECT_NE(task.value("output", "").find("42"), std::string::npos) << task.dump();
  auto agents = nlohmann::json::parse(
      get(ports.coordinator, "/admin/agents", {{"x-admin-token", admin}}).body, nullptr, false);
  ASSERT_EQ(agents["agents"].size(), 1u) << agents.dump();
  EXPECT_EQ(agents["agents"][0].value("approvedBy", "").rfind("registration-token:self-agent-", 0),
            0u)
      << agents.dump();
  stop(*node);
}

// The whole path on one all-in-one node (SQLite, the built-in offline provider, the embedded
// agent in its sandbox): a prompt /submit decomposes into a dependency chain completes in order,
// each later step receiving the results before it as its context block; the results come through
// the result routes and the event stream; a task sent through /tasks completes; cancel stops a
// task still queued behind it (the agent works on one subtask at a time).
TEST_F(NodeTest, AllInOneSubmitDecomposesRunsInDependencyOrderAndCancels) {
  Ports ports;
  auto env = node_env(ports);
  const char* mode = std::getenv("EDGECODER_TEST_SANDBOX_MODE");
  env["SANDBOX_MODE"] = mode && *mode ? mode : "bwrap";
  env["SANDBOX_TIMEOUT_MS"] = "60000";
  env["AGENT_HEARTBEAT_MS"] = "300";
  env["AGENT_POLL_MS"] = "100";
  auto node = start(env);
  ASSERT_TRUE(testing::wait_for_port(ports.coordinator, 30s)) << node->stderr_text();
  std::string mesh;
  std::ifstream(dir_.path() / "data/secrets/MESH_AUTH_TOKEN") >> mesh;
  const net::Headers auth = {{"x-mesh-token", mesh}, {"content-type", "application/json"}};
  auto post = [&](const std::string& path, const nlohmann::json& body) {
    net::ClientRequest request;
    request.method = "POST";
    request.url = "http://127.0.0.1:" + std::to_string(ports.coordinator) + path;
    request.headers = auth;
    request.body = body.dump();
    auto response = net::fetch(std::move(request));
    EXPECT_TRUE(response.has_value()) << (response ? "" : response.error().detail);
    return response ? *response : net::ClientResponse{};
  };
  auto task_json = [&](const std::string& id) {
    return nlohmann::json::parse(get(ports.coordinator, "/tasks/" + id, auth).body, nullptr, false);
  };
  auto wait_status = [&](const std::string& id, const std::string& status) {
    nlohmann::json task;
    const auto deadline = std::chrono::steady_clock::now() + 180s;
    while (std::chrono::steady_clock::now() < deadline) {
      task = task_json(id);
      if (task.is_object() && task.value("status", "") == status) break;
      std::this_thread::sleep_for(200ms);
    }
    return task;
  };

  auto submitted = post("/submit", {{"prompt",
                                     "Build a report:\n1. Generate the first 10 Fibonacci numbers\n"
                                     "2. Sum them\n3) javascript: Print the sum as JSON"}});
  ASSERT_EQ(submitted.status, 201) << submitted.body << node->stderr_text();
  const auto created = nlohmann::json::parse(submitted.body);
  const std::string task_id = created.value("taskId", "");
  ASSERT_EQ(created["subtasks"].size(), 3u) << submitted.body;
  auto task = wait_status(task_id, "completed");
  ASSERT_EQ(task.value("status", ""), "completed") << task.dump() << node->stderr_text();

  // Each step's result, through the result route.
  std::vector<std::string> outputs;
  for (const auto& s : task["subtasks"]) {
    auto r = get(ports.coordinator,
                 "/tasks/" + task_id + "/subtasks/" + s.value("id", "") + "/result", auth);
    ASSERT_EQ(r.status, 200) << r.body;
    outputs.push_back(nlohmann::json::parse(r.body).value("output", ""));
  }
  EXPECT_EQ(outputs[0], "0, 1, 1, 2, 3, 5, 8, 13, 21, 34\n") << task.dump();
  // "Sum them" names no number: the sum can only come from step 1's result in its context
  // block, and step 3 sees step 2's.
  EXPECT_EQ(outputs[1], "88\n") << task.dump();
  EXPECT_NE(outputs[2].find("88"), std::string::npos) << task.dump();

  // The event stream (the task is complete, so it replays everything and ends): every step is
  // leased only after the step before it has its result.
  auto events_text = get(ports.coordinator, "/tasks/" + task_id + "/events", auth).body;
  net::SseParser parser;
  auto events = parser.feed(events_text);
  ASSERT_TRUE(events) << events_text;
  std::map<std::string, int> index_of;
  for (const auto& s : task["subtasks"]) index_of[s.value("id", "")] = s.value("subtaskIndex", -1);
  std::vector<std::string> order;
  for (const auto& e : *events) {
    auto data = nlohmann::json::parse(e.data, nullptr, false);
    if (e.event == "subtask_leased" || e.event == "subtask_result") {
      order.push_back(e.event + ":" + std::to_string(index_of[data.value("subtaskId", "")]));
    }
  }
  EXPECT_EQ(order,
            (std::vector<std::string>{"subtask_leased:0", "subtask_result:0", "subtask_leased:1",
                                      "subtask_result:1", "subtask_leased:2", "subtask_result:2"}))
      << events_text;
  EXPECT_EQ(events->back().event, "task_completed") << events_text;

  // A slow task through /tasks keeps the agent busy; one queued behind it is cancelled and never
  // runs; the slow one completes.
  auto slow = post(
      "/tasks",
      {{"taskId", "slow"},
       {"subtasks",
        {{{"input", "import time\ntime.sleep(3)\nprint('slow done')"}, {"language", "python"}}}}});
  ASSERT_EQ(slow.status, 201) << slow.body;
  auto running = wait_status("slow", "running");
  ASSERT_EQ(running.value("status", ""), "running") << running.dump();
  auto queued =
      post("/tasks", {{"taskId", "queued"},
                      {"subtasks", {{{"input", "print('never')"}, {"language", "python"}}}}});
  ASSERT_EQ(queued.status, 201) << queued.body;
  EXPECT_EQ(task_json("queued")["subtasks"][0].value("state", ""), "queued");
  auto cancelled = post("/tasks/queued/cancel", nlohmann::json::object());
  EXPECT_EQ(cancelled.status, 200) << cancelled.body;
  auto done = wait_status("slow", "completed");
  EXPECT_EQ(done.value("output", ""), "slow done\n") << done.dump();
  std::this_thread::sleep_for(1s);
  auto after = task_json("queued");
  EXPECT_EQ(after.value("status", ""), "cancelled") << after.dump();
  EXPECT_FALSE(after["subtasks"][0].contains("result")) << after.dump();
  stop(*node);
}

// The client verbs against a running all-in-one node (they find its port and generated mesh
// token through the same data directory): submit follows progress and prints the result; show,
// cancel and status; Ctrl-C detaches; an unreachable coordinator and a wrong token are explained.
TEST_F(NodeTest, TaskVerbsSubmitShowCancelStatusAndDetach) {
  Ports ports;
  auto env = node_env(ports);
  const char* mode = std::getenv("EDGECODER_TEST_SANDBOX_MODE");
  env["SANDBOX_MODE"] = mode && *mode ? mode : "bwrap";
  env["SANDBOX_TIMEOUT_MS"] = "60000";
  env["AGENT_HEARTBEAT_MS"] = "300";
  env["AGENT_POLL_MS"] = "100";
  auto node = start(env);
  ASSERT_TRUE(testing::wait_for_port(ports.coordinator, 30s)) << node->stderr_text();

  auto submitted =
      run(env, {"task", "submit", "Print the first 10 Fibonacci numbers", "--language", "python"});
  ASSERT_EQ(submitted.code, 0) << submitted.err << node->stderr_text();
  EXPECT_EQ(submitted.out, "0, 1, 1, 2, 3, 5, 8, 13, 21, 34\n");
  EXPECT_NE(submitted.err.find("subtask 1/1: running on"), std::string::npos) << submitted.err;
  EXPECT_NE(submitted.err.find("subtask 1/1: done"), std::string::npos) << submitted.err;
  ASSERT_EQ(submitted.err.rfind("task ", 0), 0u) << submitted.err;
  const std::string task_id = submitted.err.substr(5, submitted.err.find(':') - 5);

  auto shown = run(env, {"task", "show", task_id});
  EXPECT_EQ(shown.code, 0) << shown.err;
  EXPECT_NE(shown.out.find("task " + task_id + ": completed"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("--- output ---\n0, 1, 1"), std::string::npos) << shown.out;
  auto as_json = run(env, {"task", "show", task_id, "--json"});
  EXPECT_EQ(nlohmann::json::parse(as_json.out, nullptr, false).value("status", ""), "completed")
      << as_json.out;
  auto missing = run(env, {"task", "show", "no-such-task"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("task_not_found"), std::string::npos) << missing.err;
  auto status = run(env, {"status"});
  EXPECT_EQ(status.code, 0) << status.err;
  EXPECT_NE(status.out.find("agents"), std::string::npos) << status.out;
  EXPECT_EQ(run(env, {"task", "submit"}).code, 2);
  EXPECT_EQ(run(env, {"task", "submit", "x", "--language", "cobol"}).code, 2);

  // A slow task keeps the agent busy; a submit queued behind it detaches on Ctrl-C, and cancel
  // stops it.
  std::string mesh;
  std::ifstream(dir_.path() / "data/secrets/MESH_AUTH_TOKEN") >> mesh;
  net::ClientRequest slow;
  slow.method = "POST";
  slow.url = "http://127.0.0.1:" + std::to_string(ports.coordinator) + "/tasks";
  slow.headers = {{"x-mesh-token", mesh}, {"content-type", "application/json"}};
  slow.body = nlohmann::json{{"taskId", "slow"},
                             {"subtasks",
                              {{{"input", "import time\ntime.sleep(25)\nprint('slow done')"},
                                {"language", "python"}}}}}
                  .dump();
  auto created = net::fetch(slow);
  ASSERT_TRUE(created && created->status == 201);
  for (auto until = std::chrono::steady_clock::now() + 60s;
       run(env, {"task", "show", "slow"}).out.find(": running") == std::string::npos &&
       std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(100ms);
  }
  ChildOptions options;
  options.env = env;
  options.args = {"task", "submit", "Print hello world"};
  options.output_dir = dir_.path() / "detach";
  ChildProcess follower(kBinary, options);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (follower.stderr_text().find(" subtask") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  const std::string err = follower.stderr_text();
  ASSERT_EQ(err.rfind("task ", 0), 0u) << err;
  const std::string queued_id = err.substr(5, err.find(':') - 5);
  follower.signal(SIGINT);
  auto code = follower.wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 130) << follower.stderr_text();
  EXPECT_NE(follower.stderr_text().find("edgecoder task cancel " + queued_id), std::string::npos)
      << follower.stderr_text();
  auto cancelled = run(env, {"task", "cancel", queued_id});
  EXPECT_EQ(cancelled.code, 0) << cancelled.err;
  EXPECT_NE(run(env, {"task", "show", queued_id}).out.find(": cancelled"), std::string::npos);
  // The slow task (25 s, longer than the steps above take even under ASan) still completes.
  for (auto until = std::chrono::steady_clock::now() + 120s;
       run(env, {"task", "show", "slow"}).out.find(": completed") == std::string::npos &&
       std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_NE(run(env, {"task", "show", "slow"}).out.find("slow done"), std::string::npos);

  auto unreachable_env = env;
  unreachable_env["COORDINATOR_URL"] = "http://127.0.0.1:" + std::to_string(testing::free_port());
  auto unreachable = run(unreachable_env, {"status"});
  EXPECT_EQ(unreachable.code, 1);
  EXPECT_NE(unreachable.err.find("cannot reach the coordinator"), std::string::npos)
      << unreachable.err;
  auto wrong_env = env;
  wrong_env["MESH_AUTH_TOKEN"] = "not-the-token";
  auto wrong = run(wrong_env, {"status"});
  EXPECT_EQ(wrong.code, 1);
  EXPECT_NE(wrong.err.find("refused the mesh token"), std::string::npos) << wrong.err;
  EXPECT_EQ(wrong.err.find("not-the-token"), std::string::npos) << wrong.err;
  stop(*node);
}

TEST_F(NodeTest, AllInOneServesHealthOnItsThreePortsOnly) {
  Ports ports;
  auto node = start(node_env(ports));
  for (auto port : {ports.coordinator, ports.inference, ports.control}) {
    ASSERT_TRUE(testing::wait_for_port(port, 30s)) << node->stderr_text();
  }
  for (auto port : {ports.coordinator, ports.inference, ports.control}) {
    auto response = get(port, "/health");
    EXPECT_EQ(response.status, 200);
    auto body = nlohmann::json::parse(response.body, nullptr, false);
    EXPECT_EQ(body.value("ok", false), true) << response.body;
    EXPECT_EQ(get(port, "/ready").status, 200);
  }
  for (auto port : {ports.ide, ports.portal, ports.anchor}) {
    EXPECT_FALSE(testing::port_open(port)) << port;
  }
  // The generated secrets are private to the node's user.
  struct stat st {};
  ASSERT_EQ(::stat((dir_.path() / "data").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
  ASSERT_EQ(::stat((dir_.path() / "data/secrets/MESH_AUTH_TOKEN").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  stop(*node);
  std::string token;
  std::getline(std::ifstream(dir_.path() / "data/secrets/MESH_AUTH_TOKEN"), token);
  ASSERT_EQ(token.size(), 64u);
  EXPECT_EQ(node->stderr_text().find(token), std::string::npos) << "a generated token was logged";
}

TEST_F(NodeTest, EachStandaloneModeListensOnItsOwnPortOnly) {
  Ports ports;
  const std::map<std::string, std::uint16_t> modes = {
      {"coordinator", ports.coordinator}, {"inference", ports.inference},
      {"control-plane", ports.control},   {"ide-provider", ports.ide},
      {"portal", ports.portal},           {"anchor-proxy", ports.anchor}};
  for (const auto& [mode, port] : modes) {
    auto env = node_env(ports);
    env["EDGE_RUNTIME_MODE"] = mode;
    env["MESH_AUTH_TOKEN"] = "mesh-secret-for-tests";
    env["ADMIN_API_TOKEN"] = "admin-secret-for-tests";
    env["INFERENCE_AUTH_TOKEN"] = "inference-secret-for-tests";
    auto node = start(env);
    ASSERT_TRUE(testing::wait_for_port(port, 30s)) << mode << ": " << node->stderr_text();
    auto health = nlohmann::json::parse(get(port, "/health").body, nullptr, false);
    EXPECT_EQ(health.value("ok", false), true) << mode;
    for (auto other : ports.all()) {
      if (other != port) {
        EXPECT_FALSE(testing::port_open(other)) << mode << " opened " << other;
      }
    }
    stop(*node);
  }
}

TEST_F(NodeTest, StandaloneModeWithoutItsTokenRefusesAndNamesTheSetting) {
  Ports ports;
  const std::map<std::string, std::string> needs = {{"inference", "INFERENCE_AUTH_TOKEN"},
                                                    {"coordinator", "MESH_AUTH_TOKEN"},
                                                    {"control-plane", "ADMIN_API_TOKEN"},
                                                    {"agent", "MESH_AUTH_TOKEN"}};
  for (const auto& [mode, setting] : needs) {
    auto env = node_env(ports);
    env["EDGE_RUNTIME_MODE"] = mode;
    auto result = run(env, {});
    EXPECT_NE(result.code, 0) << mode;
    EXPECT_NE(result.err.find(setting), std::string::npos) << mode << ": " << result.err;
  }
}

TEST_F(NodeTest, InsecureDevModeStartsWithoutTokensAndSaysSoLoudly) {
  Ports ports;
  auto env = node_env(ports);
  env["EDGE_RUNTIME_MODE"] = "inference";
  env["EDGECODER_INSECURE_DEV"] = "1";
  auto node = start(env);
  ASSERT_TRUE(testing::wait_for_port(ports.inference, 30s)) << node->stderr_text();
  auto health = nlohmann::json::parse(get(ports.inference, "/health").body, nullptr, false);
  EXPECT_EQ(health.value("insecureDev", false), true);
  stop(*node);
  EXPECT_NE(node->stderr_text().find("INSECURE"), std::string::npos);
}

TEST_F(NodeTest, SecondAllInOneExitsOneQuicklyNamingTheBusyPort) {
  Ports ports;
  auto first = start(node_env(ports));
  ASSERT_TRUE(testing::wait_for_port(ports.control, 30s)) << first->stderr_text();

  auto began = std::chrono::steady_clock::now();
  auto second = start(node_env(ports));
  auto code = second->wait(20s);
  auto elapsed = std::chrono::steady_clock::now() - began;
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_LT(elapsed, 2s);
  EXPECT_NE(second->stderr_text().find(std::to_string(ports.coordinator)), std::string::npos)
      << second->stderr_text();
  // The first node is unaffected.
  EXPECT_EQ(get(ports.coordinator, "/health").status, 200);
  stop(*first);
}

TEST_F(NodeTest, BusyLastPortLeavesNothingHalfStarted) {
  Ports ports;
  // Hold the control-plane port with a plain listener.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(ports.control);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  auto result = run(node_env(ports), {});
  ::close(fd);
  EXPECT_EQ(result.code, 1);
  EXPECT_NE(result.err.find(std::to_string(ports.control)), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("control-plane"), std::string::npos) << result.err;
  EXPECT_FALSE(testing::port_open(ports.coordinator));
  EXPECT_FALSE(testing::port_open(ports.inference));
}

TEST_F(NodeTest, UnknownModeExitsTwoAndListsValidModes) {
  Ports ports;
  auto env = node_env(ports);
  auto result = run(env, {"--mode", "bogus"});
  EXPECT_EQ(result.code, 2);
  for (const char* mode : {"all-in-one", "coordinator", "inference", "control-plane",
                           "ide-provider", "portal", "anchor-proxy", "agent"}) {
    EXPECT_NE(result.err.find(mode), std::string::npos) << result.err;
  }
}

TEST_F(NodeTest, WorkerIsAnAliasOfAgent) {
  Ports ports;
  auto env = node_env(ports);
  env["EDGE_RUNTIME_MODE"] = "worker";
  env["MESH_AUTH_TOKEN"] = "mesh-secret-for-tests";
  auto result = run(env, {"config", "show"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_NE(result.out.find("EDGE_RUNTIME_MODE=worker"), std::string::npos) << result.out;
}

TEST_F(NodeTest, BadSettingExitsNonZeroNamingIt) {
  Ports ports;
  auto env = node_env(ports);
  env["COORDINATOR_PORT"] = "70000";
  auto result = run(env, {});
  EXPECT_NE(result.code, 0);
  EXPECT_NE(result.err.find("COORDINATOR_PORT"), std::string::npos) << result.err;
}

TEST_F(NodeTest, ConfigShowHonoursPrecedenceAndRedactsSecrets) {
  Ports ports;
  auto env = node_env(ports);
  auto env_file = dir_.path() / "edgecoder.env";
  std::ofstream(env_file) << "# test env file\nEDGECODER_LOG_LEVEL=debug\nINFERENCE_PORT=4999\n"
                          << "COORDINATOR_PORT=4998\nADMIN_API_TOKEN=admin-from-env-file\n";
  env["INFERENCE_PORT"] = "5001";  // environment beats the env file
  auto secret_file = dir_.path() / "mesh.token";
  std::ofstream(secret_file) << "mesh-from-file-secret\n";
  env["MESH_AUTH_TOKEN_FILE"] = secret_file.string();
  auto creds = dir_.path() / "creds";
  std::filesystem::create_directories(creds);
  std::ofstream(creds / "INFERENCE_AUTH_TOKEN") << "inference-from-credential";
  env["CREDENTIALS_DIRECTORY"] = creds.string();

  auto result = run(
      env, {"--env-file", env_file.string(), "--set", "COORDINATOR_PORT=5002", "config", "show"});
  ASSERT_EQ(result.code, 0) << result.err;
  const auto& out = result.out;
  EXPECT_NE(out.find("EDGECODER_LOG_LEVEL=debug"), std::string::npos) << out;
  EXPECT_NE(out.find("INFERENCE_PORT=5001"), std::string::npos) << out;
  EXPECT_NE(out.find("COORDINATOR_PORT=5002"), std::string::npos) << out;
  for (const char* secret :
       {"admin-from-env-file", "mesh-from-file-secret", "inference-from-credential"}) {
    EXPECT_EQ(out.find(secret), std::string::npos) << secret << " leaked";
    EXPECT_EQ(result.err.find(secret), std::string::npos) << secret << " leaked";
  }
  EXPECT_NE(out.find("MESH_AUTH_TOKEN=<redacted>"), std::string::npos) << out;
  EXPECT_NE(out.find("INFERENCE_AUTH_TOKEN=<redacted>"), std::string::npos) << out;
  EXPECT_NE(out.find("ADMIN_API_TOKEN=<redacted>"), std::string::npos) << out;
  EXPECT_NE(out.find("FEDERATION_TOKEN=<unset>"), std::string::npos) << out;
  // No server was started by the verb.
  EXPECT_FALSE(testing::port_open(5002));
}

TEST_F(NodeTest, TokenShowPrintsTheGeneratedTokenToItsOwner) {
  Ports ports;
  auto node = start(node_env(ports));
  ASSERT_TRUE(testing::wait_for_port(ports.control, 30s)) << node->stderr_text();
  stop(*node);
  auto result = run(node_env(ports), {"token", "show", "mesh"});
  ASSERT_EQ(result.code, 0) << result.err;
  std::ifstream in(dir_.path() / "data/secrets/MESH_AUTH_TOKEN");
  std::string stored;
  std::getline(in, stored);
  EXPECT_EQ(result.out, stored + "\n");
  EXPECT_EQ(stored.size(), 64u);
  auto unknown = run(node_env(ports), {"token", "show", "nobody"});
  EXPECT_EQ(unknown.code, 2);
  // A restart keeps the same token (the parts stay wired together).
  auto again = start(node_env(ports));
  ASSERT_TRUE(testing::wait_for_port(ports.control, 30s)) << again->stderr_text();
  stop(*again);
  EXPECT_EQ(run(node_env(ports), {"token", "show", "mesh"}).out, stored + "\n");
}

TEST_F(NodeTest, MetricsFromEveryServicePassPromtool) {
  Ports ports;
  auto node = start(node_env(ports));
  for (auto port : {ports.coordinator, ports.inference, ports.control}) {
    ASSERT_TRUE(testing::wait_for_port(port, 30s)) << node->stderr_text();
    get(port, "/health");
    get(port, "/no-such-route");
    auto metrics = get(port, "/metrics");
    ASSERT_EQ(metrics.status, 200);
    EXPECT_NE(metrics.body.find("edgecoder_http_requests_total"), std::string::npos);
    EXPECT_NE(metrics.body.find("process_resident_memory_bytes"), std::string::npos);
    EXPECT_NE(metrics.body.find("edgecoder_build_info"), std::string::npos);
    auto check = testing::run_shell("promtool check metrics", metrics.body);
    EXPECT_EQ(check.code, 0) << check.out;
    EXPECT_EQ(check.out, "") << check.out;
    // Older dashboards ask for JSON.
    auto json = get(port, "/metrics", {{"Accept", "application/json"}});
    EXPECT_TRUE(nlohmann::json::parse(json.body, nullptr, false).is_object()) << json.body;
  }
  stop(*node);
}

TEST_F(NodeTest, MetricsTokenGuardsMetricsOnly) {
  Ports ports;
  auto env = node_env(ports);
  env["METRICS_TOKEN"] = "scrape-secret";
  auto node = start(env);
  ASSERT_TRUE(testing::wait_for_port(ports.inference, 30s)) << node->stderr_text();
  EXPECT_EQ(get(ports.inference, "/metrics").status, 401);
  EXPECT_EQ(get(ports.inference, "/metrics", {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(get(ports.inference, "/metrics", {{"Authorization", "Bearer scrape-secret"}}).status,
            200);
  EXPECT_EQ(get(ports.inference, "/health").status, 200);
  stop(*node);
}

TEST_F(NodeTest, NotifiesSystemdReadyWatchdogAndStopping) {
  Ports ports;
  auto socket_path = dir_.path() / "notify.sock";
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  auto env = node_env(ports);
  env["NOTIFY_SOCKET"] = socket_path.string();
  env["WATCHDOG_USEC"] = "200000";
  auto node = start(env);
  auto receive = [fd]() {
    char buf[512];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  };
  std::vector<std::string> messages;
  bool ready = false;
  bool watchdog = false;
  while (!(ready && watchdog)) {
    auto m = receive();
    ASSERT_FALSE(m.empty()) << "no notification; got so far: " << messages.size();
    messages.push_back(m);
    if (m.find("READY=1") != std::string::npos) {
      ready = true;
      // READY is sent only once every listener accepts connections.
      EXPECT_TRUE(testing::port_open(ports.coordinator));
      EXPECT_TRUE(testing::port_open(ports.control));
    }
    watchdog = watchdog || m == "WATCHDOG=1";
  }
  node->signal(SIGTERM);
  bool stopping = false;
  while (!stopping) {
    auto m = receive();
    ASSERT_FALSE(m.empty()) << "no STOPPING=1";
    stopping = m.find("STOPPING=1") != std::string::npos;
  }
  auto code = node->wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  ::close(fd);
}

TEST_F(NodeTest, SigtermWithIdleKeepAliveConnectionStopsPromptly) {
  Ports ports;
  auto node = start(node_env(ports));
  ASSERT_TRUE(testing::wait_for_port(ports.coordinator, 30s)) << node->stderr_text();
  // An idle keep-alive connection must not hold the drain until its idle timeout.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(ports.coordinator);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string request = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  char buf[1024];
  ASSERT_GT(::recv(fd, buf, sizeof buf, 0), 0);
  node->signal(SIGTERM);
  auto code = node->wait(8s);  // the drain timeout is 10 s; an idle connection must not use it
  ASSERT_TRUE(code.has_value()) << node->stderr_text();
  EXPECT_EQ(*code, 0);
  ::close(fd);
}

// `edgecoder doctor` says what works and what to fix, and exits 1 when something must be fixed.
TEST_F(NodeTest, DoctorSaysWhatToFixAndExitsOneUntilNothingIs) {
  Ports ports;
  const std::uint16_t nothing = testing::free_port();  // no one listens here
  auto env = node_env(ports);
  env["EDGE_RUNTIME_MODE"] = "agent";
  env["SANDBOX_MODE"] = "process";
  // Process mode's RLIMIT_NPROC counts every process of its uid: as root, use one of our own.
  const std::string sandbox_uid = std::to_string(testing::private_uid());
  if (::geteuid() == 0) env["SANDBOX_UID"] = env["SANDBOX_GID"] = sandbox_uid;
  env["LOCAL_MODEL_PROVIDER"] = "ollama";
  env["OLLAMA_HOST"] = "http://127.0.0.1:" + std::to_string(nothing);
  env["COORDINATOR_URL"] = "http://127.0.0.1:" + std::to_string(nothing);
  auto broken = run(env, {"doctor"});
  EXPECT_EQ(broken.code, 1) << broken.out << broken.err;
  EXPECT_NE(broken.out.find("ok    sandbox"), std::string::npos) << broken.out;
  EXPECT_NE(broken.out.find("FAIL  model"), std::string::npos) << broken.out;
  EXPECT_NE(broken.out.find("FAIL  coordinator"), std::string::npos) << broken.out;
  EXPECT_NE(broken.out.find("fix:  start the model server"), std::string::npos) << broken.out;
  EXPECT_NE(broken.out.find("fix:  start the coordinator"), std::string::npos) << broken.out;
  EXPECT_NE(broken.out.find("something to fix"), std::string::npos) << broken.out;

  // A coordinator that answers, and the built-in provider: nothing to fix.
  auto coordinator_env = node_env(ports);
  coordinator_env["EDGE_RUNTIME_MODE"] = "coordinator";
  coordinator_env["MESH_AUTH_TOKEN"] = "mesh-secret-for-tests";
  coordinator_env["ADMIN_API_TOKEN"] = "admin-secret-for-tests";
  coordinator_env["INFERENCE_AUTH_TOKEN"] = "inference-secret-for-tests";
  auto coordinator = start(coordinator_env);
  ASSERT_TRUE(testing::wait_for_port(ports.coordinator, 30s)) << coordinator->stderr_text();
  env.erase("LOCAL_MODEL_PROVIDER");
  env.erase("OLLAMA_HOST");
  env["COORDINATOR_URL"] = "http://127.0.0.1:" + std::to_string(ports.coordinator);
  auto fine = run(env, {"doctor"});
  EXPECT_EQ(fine.code, 0) << fine.out << fine.err;
  EXPECT_NE(fine.out.find("ok    coordinator"), std::string::npos) << fine.out;
  EXPECT_NE(fine.out.find("ok    model"), std::string::npos) << fine.out;
  EXPECT_NE(fine.out.find("nothing to fix"), std::string::npos) << fine.out;
  stop(*coordinator);

  // The all-in-one node reads its store without creating or migrating it.
  auto all = node_env(ports);
  all["SANDBOX_MODE"] = "process";
  if (::geteuid() == 0) all["SANDBOX_UID"] = all["SANDBOX_GID"] = sandbox_uid;
  auto store = run(all, {"doctor"});
  EXPECT_EQ(store.code, 0) << store.out << store.err;
  EXPECT_NE(store.out.find("ok    store"), std::string::npos) << store.out;
  EXPECT_NE(store.out.find("skip  coordinator"), std::string::npos) << store.out;
}

}  // namespace
}  // namespace edgecoder

// Real clients against the IDE provider: the official `openai` and `ollama` npm packages
// (tests/ide/js, pinned by its package-lock.json; scripts/test.sh runs `npm ci` there) relaying
// to protocol-faithful fake model servers, and once through the mesh path: the real edgecoder
// binary as an all-in-one node, an agent and an ide-provider, chatting with `edgecoder/mesh`.
// Also the binary's start-up rule: an ide-provider on 0.0.0.0 without an API key refuses to start.
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "ide/ide_fixture.h"
#include "support/child_process.h"

namespace edgecoder::ide {
namespace {

namespace stdfs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kKey = "ide-client-test-key";
constexpr const char* kTool = "get_weather";

const stdfs::path kJsDir = stdfs::path(EDGECODER_SOURCE_DIR) / "tests" / "ide" / "js";

std::string node_binary() {
  for (const char* p : {"/usr/bin/node", "/usr/bin/nodejs", "/usr/local/bin/node"}) {
    if (stdfs::exists(p)) return p;
  }
  return "";
}

// Runs one of the client scripts; returns its exit code and prints its output on failure.
int run_client(const std::string& script, std::map<std::string, std::string> env,
               std::string* output) {
  const std::string node = node_binary();
  EXPECT_FALSE(node.empty()) << "nodejs is not installed (scripts/deps.sh installs it)";
  EXPECT_TRUE(stdfs::exists(kJsDir / "node_modules" / "openai"))
      << "the npm clients are not installed: npm ci --prefix tests/ide/js (scripts/test.sh does)";
  testing::TempDir out;
  testing::ChildOptions options;
  options.args = {(kJsDir / script).string()};
  options.env = std::move(env);
  options.env["HOME"] = out.path().string();
  options.output_dir = out.path();
  testing::ChildProcess child(node, options);
  auto code = child.wait(240s);
  *output = child.stdout_text() + child.stderr_text();
  return code.value_or(-1);
}

testing::FakeBehaviour tool_behaviour() {
  testing::FakeBehaviour b;
  b.reply("Hello from the fake model, in pieces.", 5);
  b.tool_calls = {json{{"name", kTool}, {"arguments", {{"city", "Paris"}}}}};
  b.tool_calls_only_when_offered = true;
  return b;
}

std::string expected_text() {
  std::string s;
  for (const auto& t : tool_behaviour().tokens) s += t;
  return s;
}

// The provider (with an API key) in front of a fake `flavor` server whose model calls a tool
// when offered one; runs `script` against it and returns its output.
class IdeClients : public IdeFixture {
 protected:
  std::string run_local(Flavor flavor, const std::string& script) {
    start(
        flavor, [](IdeOptions& o) { o.api_key = kKey; }, tool_behaviour());
    std::string out;
    const int code = run_client(script,
                                {{"BASE_URL", url("/v1")},
                                 {"HOST", url("")},
                                 {"API_KEY", kKey},
                                 {"MODEL", kIdeModel},
                                 {"EXPECT", expected_text()},
                                 {"TOOL", kTool},
                                 {"MODE", "local"}},
                                &out);
    EXPECT_EQ(code, 0) << out;
    return out;
  }
};

TEST_F(IdeClients, OpenAiNpmClientThroughOllamaBackend) {
  const std::string out = run_local(Flavor::ollama, "openai_client.mjs");
  EXPECT_NE(out.find("ok tool call streaming"), std::string::npos) << out;
  bool tools_sent = false;  // the tools reached the model server
  for (const auto& r : fake_->requests_to("/api/chat")) {
    tools_sent = tools_sent || r.body.contains("tools");
  }
  EXPECT_TRUE(tools_sent);
}

TEST_F(IdeClients, OpenAiNpmClientThroughOpenAiBackend) {
  const std::string out = run_local(Flavor::openai, "openai_client.mjs");
  EXPECT_NE(out.find("ok error object: unknown model"), std::string::npos) << out;
}

TEST_F(IdeClients, OllamaNpmClient) {
  const std::string out = run_local(Flavor::ollama, "ollama_client.mjs");
  EXPECT_NE(out.find("ok error: unknown model"), std::string::npos) << out;
}

// The real binary: all-in-one node (coordinator + inference + control plane, built-in provider),
// an agent, and the IDE provider, all separate processes on loopback.
TEST(IdeBinary, OpenAiClientThroughTheMeshToAnAllInOneNode) {
  testing::TempDir dir;
  const auto coordinator = testing::free_port();
  const auto ide = testing::free_port();
  const std::string mesh = "ide-mesh-test-token";
  testing::ChildOptions node;
  node.env = {{"EDGE_RUNTIME_MODE", "all-in-one"},
              {"COORDINATOR_PORT", std::to_string(coordinator)},
              {"INFERENCE_PORT", std::to_string(testing::free_port())},
              {"CONTROL_PLANE_PORT", std::to_string(testing::free_port())},
              {"MESH_AUTH_TOKEN", mesh},
              {"AUTO_APPROVE_AGENTS", "true"},
              {"DISABLE_SELF_AGENT", "true"},
              {"EDGECODER_DATA_DIR", (dir.path() / "node").string()},
              {"HOME", dir.path().string()}};
  node.output_dir = dir.path() / "node-out";
  testing::ChildProcess all_in_one(EDGECODER_BINARY_PATH, node);
  ASSERT_TRUE(testing::wait_for_port(coordinator, 60s)) << all_in_one.stderr_text();

  testing::ChildOptions agent;
  agent.env = {{"EDGE_RUNTIME_MODE", "agent"},
               {"COORDINATOR_URL", "http://127.0.0.1:" + std::to_string(coordinator)},
               {"MESH_AUTH_TOKEN", mesh},
               {"SANDBOX_CGROUP", "off"},
               {"AGENT_HEARTBEAT_MS", "300"},
               {"AGENT_POLL_MS", "100"},
               {"EDGECODER_DATA_DIR", (dir.path() / "agent").string()},
               {"HOME", dir.path().string()}};
  agent.output_dir = dir.path() / "agent-out";
  testing::ChildProcess worker(EDGECODER_BINARY_PATH, agent);

  testing::ChildOptions provider;
  provider.env = {{"EDGE_RUNTIME_MODE", "ide-provider"},
                  {"IDE_PROVIDER_PORT", std::to_string(ide)},
                  {"COORDINATOR_URL", "http://127.0.0.1:" + std::to_string(coordinator)},
                  {"MESH_AUTH_TOKEN", mesh},
                  {"IDE_PROVIDER_API_KEY", kKey},
                  {"SANDBOX_CGROUP", "off"},
                  {"EDGECODER_DATA_DIR", (dir.path() / "ide").string()},
                  {"HOME", dir.path().string()}};
  provider.output_dir = dir.path() / "ide-out";
  testing::ChildProcess ide_provider(EDGECODER_BINARY_PATH, provider);
  ASSERT_TRUE(testing::wait_for_port(ide, 60s)) << ide_provider.stderr_text();

  std::string out;
  const int code = run_client("openai_client.mjs",
                              {{"BASE_URL", "http://127.0.0.1:" + std::to_string(ide) + "/v1"},
                               {"API_KEY", kKey},
                               {"MODEL", "edgecoder/mesh"},
                               {"PROMPT", "print('mesh-' + 'hello')"},
                               {"EXPECT", "mesh-hello"},
                               {"MODE", "mesh"}},
                              &out);
  EXPECT_EQ(code, 0) << out << "\n--- agent\n"
                     << worker.stderr_text() << "\n--- ide\n"
                     << ide_provider.stderr_text();
  for (auto* child : {&ide_provider, &worker, &all_in_one}) {
    child->signal(SIGTERM);
    EXPECT_TRUE(child->wait(30s).has_value());
  }
}

TEST(IdeBinary, PublicBindWithoutKeyRefusesToStart) {
  testing::TempDir dir;
  testing::ChildOptions options;
  options.env = {{"EDGE_RUNTIME_MODE", "ide-provider"},
                 {"EDGECODER_BIND", "0.0.0.0"},
                 {"IDE_PROVIDER_PORT", std::to_string(testing::free_port())},
                 {"EDGECODER_DATA_DIR", (dir.path() / "ide").string()},
                 {"HOME", dir.path().string()}};
  options.output_dir = dir.path() / "out";
  testing::ChildProcess child(EDGECODER_BINARY_PATH, options);
  auto code = child.wait(60s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_NE(child.stderr_text().find("IDE_PROVIDER_API_KEY"), std::string::npos)
      << child.stderr_text();
}

TEST(IdeBinary, PublicBindWithKeyServesOnlyWithTheKey) {
  testing::TempDir dir;
  const auto port = testing::free_port();
  testing::ChildOptions options;
  options.env = {{"EDGE_RUNTIME_MODE", "ide-provider"},
                 {"EDGECODER_BIND", "0.0.0.0"},
                 {"IDE_PROVIDER_PORT", std::to_string(port)},
                 {"IDE_PROVIDER_API_KEY", kKey},
                 {"SANDBOX_CGROUP", "off"},
                 {"EDGECODER_DATA_DIR", (dir.path() / "ide").string()},
                 {"HOME", dir.path().string()}};
  options.output_dir = dir.path() / "out";
  testing::ChildProcess child(EDGECODER_BINARY_PATH, options);
  ASSERT_TRUE(testing::wait_for_port(port, 60s)) << child.stderr_text();
  net::ClientRequest r;
  r.url = "http://127.0.0.1:" + std::to_string(port) + "/v1/models";
  auto without = net::fetch(r);
  ASSERT_TRUE(without.has_value());
  EXPECT_EQ(without->status, 401);
  r.headers = {{"Authorization", std::string("Bearer ") + kKey}};
  auto with = net::fetch(r);
  ASSERT_TRUE(with.has_value());
  EXPECT_EQ(with->status, 200) << with->body;
  EXPECT_EQ(child.stderr_text().find(kKey), std::string::npos) << "the key must never be logged";
  child.signal(SIGTERM);
  EXPECT_TRUE(child.wait(30s).has_value());
}

}  // namespace
}  // namespace edgecoder::ide

// Peer-direct work between two real agents on one coordinator (the real binary): agent-b is an
// EDGE_RUNTIME_MODE=agent process, agent-a runs in this process and offers it work through
// Agent::offer_direct_work. Both register as mesh peers at start-up; agent-b finds the offer in
// its heartbeat, runs it through the model + sandbox path and posts the result, which the
// coordinator then shows as completed. SANDBOX_MODE for agent-b comes from
// EDGECODER_TEST_SANDBOX_MODE (default bwrap).
#include <cstdlib>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "core/config.h"
#include "net/client.h"
#include "support/child_process.h"

namespace edgecoder {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace asio = boost::asio;

constexpr const char* kMeshToken = "direct-work-mesh-token";

std::string sandbox_mode() {
  const char* m = std::getenv("EDGECODER_TEST_SANDBOX_MODE");
  return m && *m ? m : "bwrap";
}

class DirectWork : public ::testing::Test {
 protected:
  json get(const std::string& path) {
    net::ClientRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(port_) + path;
    req.headers = {{"x-mesh-token", kMeshToken}};
    auto resp = net::fetch(req);
    if (!resp || resp->status != 200) return nullptr;
    return json::parse(resp->body, nullptr, false);
  }

  testing::TempDir dir_;
  std::uint16_t port_ = testing::free_port();
};

TEST_F(DirectWork, OneAgentOffersWorkTheOtherRunsItAndTheResultComesBackCompleted) {
  testing::ChildOptions coord;
  coord.env = {{"EDGE_RUNTIME_MODE", "coordinator"},
               {"COORDINATOR_PORT", std::to_string(port_)},
               {"MESH_AUTH_TOKEN", kMeshToken},
               {"ADMIN_API_TOKEN", "direct-work-admin-token"},
               {"INFERENCE_AUTH_TOKEN", "direct-work-inference-token"},
               {"AUTO_APPROVE_AGENTS", "true"},
               {"EDGECODER_DATA_DIR", (dir_.path() / "coordinator").string()},
               {"HOME", dir_.path().string()}};
  coord.output_dir = dir_.path() / "coordinator-out";
  testing::ChildProcess coordinator(EDGECODER_BINARY_PATH, coord);
  ASSERT_TRUE(testing::wait_for_port(port_, 60s)) << coordinator.stderr_text();
  const std::string url = "http://127.0.0.1:" + std::to_string(port_);

  testing::ChildOptions worker;
  worker.env = {{"EDGE_RUNTIME_MODE", "agent"},
                {"COORDINATOR_URL", url},
                {"MESH_AUTH_TOKEN", kMeshToken},
                {"AGENT_ID", "agent-b"},
                {"SANDBOX_MODE", sandbox_mode()},
                {"SANDBOX_CGROUP", "off"},
                {"AGENT_HEARTBEAT_MS", "300"},
                {"AGENT_POLL_MS", "200"},
                {"EDGECODER_DATA_DIR", (dir_.path() / "agent-b").string()},
                {"HOME", dir_.path().string()}};
  worker.output_dir = dir_.path() / "agent-b-out";
  testing::ChildProcess agent_b(EDGECODER_BINARY_PATH, worker);

  // agent-a, in this process; it offers work and takes none (no sandbox).
  std::filesystem::create_directories(dir_.path() / "agent-a");
  core::LoadOptions load;
  load.default_env_file = "";
  load.environment = {{"EDGE_RUNTIME_MODE", "agent"},
                      {"COORDINATOR_URL", url},
                      {"MESH_AUTH_TOKEN", kMeshToken},
                      {"AGENT_ID", "agent-a"},
                      {"SANDBOX_MODE", "none"},
                      {"AGENT_HEARTBEAT_MS", "300"},
                      {"EDGECODER_DATA_DIR", (dir_.path() / "agent-a").string()}};
  auto settings = core::Settings::load(load);
  ASSERT_TRUE(settings) << settings.error().detail;
  auto config = core::parse_config(std::move(*settings));
  ASSERT_TRUE(config) << config.error().detail;
  auto options = agent::agent_options_from(*config);
  ASSERT_TRUE(options) << options.error().detail;
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  auto created = agent::Agent::create(*config, std::move(*options), io.get_executor());
  ASSERT_TRUE(created) << created.error().detail;
  std::unique_ptr<agent::Agent> agent_a = std::move(*created);
  std::thread runner([&io] { io.run(); });
  asio::post(io, [&] { agent_a->start(); });
  struct Stop {
    asio::io_context& io;
    agent::Agent& agent;
    asio::executor_work_guard<asio::io_context::executor_type>& work;
    std::thread& runner;
    ~Stop() {
      asio::post(io, [this] { agent.stop(); });
      auto until = std::chrono::steady_clock::now() + 20s;
      while (std::chrono::steady_clock::now() < until) {
        std::promise<bool> done;
        auto f = done.get_future();
        asio::post(io, [&] { done.set_value(agent.stopped()); });
        if (f.get()) break;
        std::this_thread::sleep_for(50ms);
      }
      work.reset();
      io.stop();
      runner.join();
    }
  } stop{io, *agent_a, work, runner};

  // Both registered themselves as mesh peers (role agent) at start-up.
  bool both = false;
  auto until = std::chrono::steady_clock::now() + 60s;
  while (!both && std::chrono::steady_clock::now() < until) {
    auto peers = get("/mesh/peers");
    int n = 0;
    if (peers.is_object() && peers["peers"].is_array()) {
      for (const auto& p : peers["peers"]) {
        const std::string id = p.value("peerId", "");
        if ((id == "agent-a" || id == "agent-b") && p.value("role", "") == "agent") ++n;
      }
    }
    both = n == 2;
    if (!both) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(both) << agent_b.stderr_text();

  std::promise<core::Result<std::string>> offered;
  asio::co_spawn(
      io,
      [](agent::Agent* a) -> asio::awaitable<core::Result<std::string>> {
        auto call = a->offer_direct_work("agent-b", "print('peer-direct-' + str(6 * 7))");
        co_return co_await std::move(call);
      }(agent_a.get()),
      [&offered](std::exception_ptr e, core::Result<std::string> r) {
        if (e) r = core::Error(core::Errc::internal, "offer threw");
        offered.set_value(std::move(r));
      });
  auto offer_id = offered.get_future().get();
  ASSERT_TRUE(offer_id) << offer_id.error().detail;

  json offer;
  until = std::chrono::steady_clock::now() + 90s;
  while (std::chrono::steady_clock::now() < until) {
    offer = get("/agent-mesh/direct-work/" + *offer_id);
    if (offer.is_object() && offer.value("status", "") == "completed") break;
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_EQ(offer.value("status", ""), "completed") << offer.dump() << "\n"
                                                    << agent_b.stderr_text();
  EXPECT_EQ(offer.value("fromAgentId", ""), "agent-a");
  EXPECT_EQ(offer.value("toAgentId", ""), "agent-b");
  EXPECT_TRUE(offer["result"].value("ok", false)) << offer.dump();
  std::string output = offer["result"].value("output", "");
  while (!output.empty() && output.back() == '\n') output.pop_back();
  EXPECT_EQ(output, "peer-direct-42") << offer.dump();

  // The offering agent reads the same through its API.
  std::promise<core::Result<json>> read;
  asio::co_spawn(
      io,
      [](agent::Agent* a, std::string id) -> asio::awaitable<core::Result<json>> {
        auto call = a->direct_work(std::move(id));
        co_return co_await std::move(call);
      }(agent_a.get(), *offer_id),
      [&read](std::exception_ptr e, core::Result<json> r) {
        if (e) r = core::Error(core::Errc::internal, "read threw");
        read.set_value(std::move(r));
      });
  auto seen = read.get_future().get();
  ASSERT_TRUE(seen) << seen.error().detail;
  EXPECT_EQ(seen->value("status", ""), "completed");
  // An offer to an unknown agent is an error naming the coordinator's code.
  std::promise<core::Result<std::string>> refused;
  asio::co_spawn(
      io,
      [](agent::Agent* a) -> asio::awaitable<core::Result<std::string>> {
        auto call = a->offer_direct_work("agent-nobody", "print(1)");
        co_return co_await std::move(call);
      }(agent_a.get()),
      [&refused](std::exception_ptr e, core::Result<std::string> r) {
        if (e) r = core::Error(core::Errc::internal, "offer threw");
        refused.set_value(std::move(r));
      });
  auto nobody = refused.get_future().get();
  ASSERT_FALSE(nobody);
  EXPECT_EQ(nobody.error().wire(), "agent_not_found");
}

}  // namespace
}  // namespace edgecoder

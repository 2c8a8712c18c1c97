// The real edgecoder binary: one coordinator and EDGE_RUNTIME_MODE=agent processes over
// loopback. Two agents complete several tasks; one is killed with SIGKILL while it holds a lease
// and every task still completes exactly once; an agent keeps its id and keys across a restart;
// a result finished while the coordinator is down is delivered from the outbox once it is back;
// subtasks travel as X25519 envelopes and results come back sealed; a subtask whose local model
// keeps failing is fixed through the coordinator's /escalate (a real inference service).
// SANDBOX_MODE comes from EDGECODER_TEST_SANDBOX_MODE (default bwrap).
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
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

constexpr const char* kMeshToken = "agent-e2e-mesh-token";
constexpr const char* kAdminToken = "agent-e2e-admin-token";

std::string sandbox_mode() {
  const char* m = std::getenv("EDGECODER_TEST_SANDBOX_MODE");
  return m && *m ? m : "bwrap";
}

// The value of `key=` in the first log line with `event=<event>`, or "".
std::string log_field(const std::string& log, const std::string& event, const std::string& key) {
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("event=" + event + " ") == std::string::npos &&
        !line.ends_with("event=" + event)) {
      continue;
    }
    std::smatch m;
    if (std::regex_search(line, m, std::regex("(^| )" + key + "=([^ ]+)"))) return m[2];
  }
  return "";
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A minimal HTTP/1.1 server on 127.0.0.1 (its own thread) answering every request with 200
// and the body set by set_body(); counts the requests. Stands in for the control plane's
// GET /network/coordinators.
class ListServer {
 public:
  ListServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ListServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  void set_body(std::string body) {
    std::lock_guard lock(mu_);
    body_ = std::move(body);
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/network/coordinators";
  }
  int requests() const { return requests_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      // Read the request head (requests here have no body).
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536) {
        pollfd q{c, POLLIN, 0};
        if (::poll(&q, 1, 2000) <= 0) break;
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
      std::string body;
      {
        std::lock_guard lock(mu_);
        body = body_;
      }
      ++requests_;
      const std::string resp =
          "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
          "connection: close\r\ncontent-length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
      std::size_t done = 0;
      while (done < resp.size()) {
        const ssize_t n = ::write(c, resp.data() + done, resp.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
      }
      ::close(c);
    }
  }
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::string body_ = "{}";
  std::thread thread_;
};

class AgentBinary : public ::testing::Test {
 protected:
  std::unique_ptr<testing::ChildProcess> start_coordinator(
      const std::map<std::string, std::string>& extra = {}) {
    testing::ChildOptions options;
    options.env = {{"EDGE_RUNTIME_MODE", "coordinator"},
                   {"COORDINATOR_PORT", std::to_string(port_)},
                   {"MESH_AUTH_TOKEN", kMeshToken},
                   {"ADMIN_API_TOKEN", kAdminToken},
                   {"INFERENCE_AUTH_TOKEN", "agent-e2e-inference-token"},
                   {"AUTO_APPROVE_AGENTS", "true"},
                   {"COORDINATOR_LEASE_BUDGET_MS", "2000"},
                   {"COORDINATOR_LEASE_SWEEP_MS", "200"},
                   {"EDGECODER_DATA_DIR", (dir_.path() / "coordinator").string()},
                   {"HOME", dir_.path().string()}};
    for (const auto& [k, v] : extra) options.env[k] = v;
    options.output_dir = dir_.path() / ("coordinator-out" + std::to_string(starts_++));
    auto child = std::make_unique<testing::ChildProcess>(EDGECODER_BINARY_PATH, options);
    EXPECT_TRUE(testing::wait_for_port(port_, 60s)) << child->stderr_text();
    return child;
  }

  std::unique_ptr<testing::ChildProcess> start_agent(
      const std::string& name, const std::string& agent_id, int max_concurrent = 1,
      const std::map<std::string, std::string>& extra = {}) {
    testing::ChildOptions options;
    options.env = {{"EDGE_RUNTIME_MODE", "agent"},
                   {"COORDINATOR_URL", "http://127.0.0.1:" + std::to_string(port_)},
                   {"MESH_AUTH_TOKEN", kMeshToken},
                   {"SANDBOX_MODE", sandbox_mode()},
                   {"SANDBOX_CGROUP", "off"},
                   {"AGENT_HEARTBEAT_MS", "300"},
                   {"AGENT_POLL_MS", "100"},
                   {"MAX_CONCURRENT_TASKS", std::to_string(max_concurrent)},
                   {"EDGECODER_DATA_DIR", (dir_.path() / name).string()},
                   {"HOME", dir_.path().string()}};
    if (!agent_id.empty()) options.env["AGENT_ID"] = agent_id;
    for (const auto& [k, v] : extra) options.env[k] = v;
    options.output_dir = dir_.path() / (name + "-out" + std::to_string(starts_++));
    return std::make_unique<testing::ChildProcess>(EDGECODER_BINARY_PATH, options);
  }

  json call(const std::string& method, const std::string& path, const json& body,
            int expect = 200) {
    net::ClientRequest req;
    req.method = method;
    req.url = "http://127.0.0.1:" + std::to_string(port_) + path;
    req.headers = {{"x-mesh-token", kMeshToken},
                   {"x-admin-token", kAdminToken},
                   {"content-type", "application/json"}};
    if (method == "POST") req.body = body.dump();
    auto resp = net::fetch(req);
    EXPECT_TRUE(resp) << path << ": " << (resp ? "" : resp.error().detail);
    if (!resp) return nullptr;
    EXPECT_EQ(resp->status, expect) << path << ": " << resp->body;
    return json::parse(resp->body, nullptr, false);
  }
  json get(const std::string& path) { return call("GET", path, nullptr); }

  // Submits a one-subtask Python task that sleeps `sleep_s` then prints `marker`.
  std::string submit(const std::string& task_id, const std::string& marker, double sleep_s,
                     int timeout_ms = 5000) {
    std::string code =
        "import time\ntime.sleep(" + std::to_string(sleep_s) + ")\nprint('" + marker + "')\n";
    auto created =
        call("POST", "/tasks",
             {{"taskId", task_id},
              {"subtasks", {{{"input", code}, {"language", "python"}, {"timeoutMs", timeout_ms}}}}},
             201);
    return created.value("taskId", "");
  }

  // Polls until every task is completed (true) or the deadline passes.
  bool wait_completed(const std::vector<std::string>& ids, std::chrono::seconds deadline) {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      bool all = true;
      for (const auto& id : ids) {
        if (get("/tasks/" + id).value("status", "") != "completed") {
          all = false;
          break;
        }
      }
      if (all) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  // The id of an agent holding a lease on task `id`'s subtask ("" if none).
  std::string holder(const std::string& id) {
    auto t = get("/tasks/" + id);
    if (!t.is_object() || !t.contains("subtasks") || t["subtasks"].empty()) return "";
    const auto& s = t["subtasks"][0];
    return s.contains("holder") && s["holder"].is_string() ? s["holder"].get<std::string>() : "";
  }

  testing::TempDir dir_;
  std::uint16_t port_ = testing::free_port();
  int starts_ = 0;
};

TEST_F(AgentBinary, TwoAgentsCompleteEveryTaskOnceDespiteSigkill) {
  auto coordinator = start_coordinator();
  auto a = start_agent("agent-a", "agent-a");
  auto b = start_agent("agent-b", "agent-b");
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(submit("t" + std::to_string(i), "done-" + std::to_string(i), 1.5));
    ASSERT_FALSE(ids.back().empty());
  }
  // Kill agent-a as soon as it holds a lease.
  std::string killed_task;
  auto until = std::chrono::steady_clock::now() + 60s;
  while (killed_task.empty() && std::chrono::steady_clock::now() < until) {
    for (const auto& id : ids) {
      if (holder(id) == "agent-a") {
        killed_task = id;
        break;
      }
    }
    if (killed_task.empty()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_FALSE(killed_task.empty()) << "agent-a never leased a subtask\n" << a->stderr_text();
  a->signal(SIGKILL);
  ASSERT_TRUE(a->wait(10s).has_value());

  ASSERT_TRUE(wait_completed(ids, 120s)) << b->stderr_text();
  for (int i = 0; i < 6; ++i) {
    auto t = get("/tasks/" + ids[i]);
    EXPECT_EQ(trimmed(t.value("output", "")), "done-" + std::to_string(i)) << t.dump();
  }
  // Exactly once: six accepted results, none failed.
  auto status = get("/status");
  EXPECT_EQ(status.value("results", -1), 6) << status.dump();
  EXPECT_EQ(status.value("failed", -1), 0) << status.dump();
  auto killed = get("/tasks/" + killed_task)["subtasks"][0];
  EXPECT_GE(killed.value("attempt", 0), 2) << killed.dump();
  EXPECT_EQ(killed["result"].value("agentId", ""), "agent-b") << killed.dump();

  b->signal(SIGTERM);
  auto code = b->wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << b->stderr_text();
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
}

// The agent signs /heartbeat, /pull, /result and /release with its identity key, so it works
// against a coordinator that refuses unsigned agent requests.
TEST_F(AgentBinary, WorksAgainstACoordinatorRequiringSignedRequests) {
  auto coordinator = start_coordinator({{"REQUIRE_SIGNED_AGENTS", "true"}});
  auto agent = start_agent("agent-signed", "agent-signed");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(submit("signed" + std::to_string(i), "signed-" + std::to_string(i), 0.1));
  }
  ASSERT_TRUE(wait_completed(ids, 120s)) << agent->stderr_text();
  for (int i = 0; i < 3; ++i) {
    auto t = get("/tasks/" + ids[i]);
    EXPECT_EQ(trimmed(t.value("output", "")), "signed-" + std::to_string(i)) << t.dump();
    EXPECT_EQ(t["subtasks"][0]["result"].value("agentId", ""), "agent-signed") << t.dump();
  }
  // The same request unsigned is refused: the requirement is in force.
  auto unsigned_pull = call("POST", "/pull", {{"agentId", "agent-signed"}}, 401);
  EXPECT_EQ(unsigned_pull.value("error", ""), "signature_required") << unsigned_pull.dump();
  EXPECT_EQ(agent->stderr_text().find("signature_"), std::string::npos) << agent->stderr_text();
  agent->signal(SIGTERM);
  auto code = agent->wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << agent->stderr_text();
  EXPECT_EQ(agent->stderr_text().find("request_not_signed"), std::string::npos);
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
}

TEST_F(AgentBinary, IdentitySurvivesRestart) {
  auto coordinator = start_coordinator();
  std::string id1, key1;
  {
    auto agent = start_agent("agent-id", "");
    auto until = std::chrono::steady_clock::now() + 60s;
    while (id1.empty() && std::chrono::steady_clock::now() < until) {
      id1 = log_field(agent->stderr_text(), "registered", "agent_id");
      std::this_thread::sleep_for(100ms);
    }
    ASSERT_FALSE(id1.empty()) << agent->stderr_text();
    key1 = log_field(agent->stderr_text(), "registered", "public_key_fingerprint");
    ASSERT_FALSE(key1.empty());
    agent->signal(SIGTERM);
    auto code = agent->wait(30s);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0) << agent->stderr_text();
  }
  auto file = dir_.path() / "agent-id" / "agent-identity.json";
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream in(file);
  auto stored = json::parse(in, nullptr, false);
  EXPECT_EQ(stored.value("agentId", ""), id1);

  auto again = start_agent("agent-id", "");
  std::string id2;
  auto until = std::chrono::steady_clock::now() + 60s;
  while (id2.empty() && std::chrono::steady_clock::now() < until) {
    id2 = log_field(again->stderr_text(), "registered", "agent_id");
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(id2, id1) << again->stderr_text();
  EXPECT_EQ(log_field(again->stderr_text(), "registered", "public_key_fingerprint"), key1);
  // The coordinator knows it under that id.
  auto agents = get("/admin/agents");
  EXPECT_NE(agents.dump().find(id1), std::string::npos) << agents.dump();
  again->signal(SIGTERM);
  ASSERT_TRUE(again->wait(30s).has_value());
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
}

TEST_F(AgentBinary, ResultFinishedDuringOutageIsDeliveredFromOutbox) {
  auto coordinator = start_coordinator();
  auto agent = start_agent("agent-outbox", "agent-outbox");
  const std::string id = submit("outage", "after-outage", 3.0);
  auto until = std::chrono::steady_clock::now() + 60s;
  while (holder(id) != "agent-outbox" && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(holder(id), "agent-outbox") << agent->stderr_text();
  coordinator->signal(SIGKILL);
  ASSERT_TRUE(coordinator->wait(10s).has_value());
  // The program ends while the coordinator is down: the result goes to the outbox.
  until = std::chrono::steady_clock::now() + 30s;
  while (agent->stderr_text().find("event=result_queued_in_outbox") == std::string::npos &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_NE(agent->stderr_text().find("event=result_queued_in_outbox"), std::string::npos)
      << agent->stderr_text();
  coordinator = start_coordinator();
  ASSERT_TRUE(wait_completed({id}, 60s)) << agent->stderr_text();
  auto task = get("/tasks/" + id);
  EXPECT_EQ(trimmed(task.value("output", "")), "after-outage") << task.dump();
  EXPECT_NE(agent->stderr_text().find("event=outbox_delivered"), std::string::npos)
      << agent->stderr_text();
  agent->signal(SIGTERM);
  auto code = agent->wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << agent->stderr_text();
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
}

TEST_F(AgentBinary, OutboxSurvivesAnAgentRestartDuringTheOutage) {
  auto coordinator = start_coordinator();
  auto agent = start_agent("agent-durable", "agent-durable");
  // A long lease, so that the outage below cannot expire it.
  const std::string id = submit("durable", "kept-on-disk", 2.0, 30000);
  auto until = std::chrono::steady_clock::now() + 60s;
  while (holder(id) != "agent-durable" && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(holder(id), "agent-durable") << agent->stderr_text();
  coordinator->signal(SIGKILL);
  ASSERT_TRUE(coordinator->wait(10s).has_value());
  until = std::chrono::steady_clock::now() + 30s;
  while (agent->stderr_text().find("event=result_queued_in_outbox") == std::string::npos &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_NE(agent->stderr_text().find("event=result_queued_in_outbox"), std::string::npos)
      << agent->stderr_text();
  // The agent stops and starts again while the coordinator is still down.
  agent->signal(SIGTERM);
  auto code = agent->wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << agent->stderr_text();
  auto again = start_agent("agent-durable", "agent-durable");
  std::this_thread::sleep_for(500ms);
  coordinator = start_coordinator();
  ASSERT_TRUE(wait_completed({id}, 60s)) << again->stderr_text();
  auto task = get("/tasks/" + id);
  EXPECT_EQ(trimmed(task.value("output", "")), "kept-on-disk") << task.dump();
  EXPECT_EQ(task["subtasks"][0]["result"].value("attempt", 0), 1) << task.dump();
  EXPECT_NE(again->stderr_text().find("event=outbox_delivered"), std::string::npos)
      << again->stderr_text();
  again->signal(SIGTERM);
  ASSERT_TRUE(again->wait(30s).has_value());
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
}

TEST_F(AgentBinary, SigtermReleasesTheLeaseAndExitsZero) {
  auto coordinator = start_coordinator();
  auto a = start_agent("agent-term", "agent-term");
  const std::string id = submit("handed-back", "finished-elsewhere", 2.0);
  auto until = std::chrono::steady_clock::now() + 60s;
  while (holder(id) != "agent-term" && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(holder(id), "agent-term") << a->stderr_text();
  a->signal(SIGTERM);
  auto code = a->wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << a->stderr_text();
  EXPECT_NE(a->stderr_text().find("event=lease_released"), std::string::npos) << a->stderr_text();
  // Queued again at once (no lease expiry) and finished by another agent.
  auto t = get("/tasks/" + id);
  EXPECT_EQ(t["subtasks"][0].value("state", ""), "queued") << t.dump();
  auto b = start_agent("agent-after", "agent-after");
  ASSERT_TRUE(wait_completed({id}, 60s)) << b->stderr_text();
  t = get("/tasks/" + id);
  EXPECT_EQ(trimmed(t.value("output", "")), "finished-elsewhere");
  EXPECT_EQ(t["subtasks"][0]["result"].value("agentId", ""), "agent-after") << t.dump();
  b->signal(SIGTERM);
  ASSERT_TRUE(b->wait(30s).has_value());
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
}

TEST_F(AgentBinary, FailsOverToTheNextCoordinatorOfTheList) {
  auto coordinator = start_coordinator();
  const std::uint16_t dead = testing::free_port();
  auto agent =
      start_agent("agent-failover", "agent-failover", 1,
                  {{"COORDINATOR_URL", "http://127.0.0.1:" + std::to_string(dead) +
                                           ", http://127.0.0.1:" + std::to_string(port_) + "/"}});
  const std::string id = submit("via-second", "second-coordinator", 0.1);
  ASSERT_TRUE(wait_completed({id}, 60s)) << agent->stderr_text();
  EXPECT_EQ(trimmed(get("/tasks/" + id).value("output", "")), "second-coordinator");
  EXPECT_NE(agent->stderr_text().find("event=coordinator_failover"), std::string::npos)
      << agent->stderr_text();
  agent->signal(SIGTERM);
  auto code = agent->wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
}

// COORDINATOR_URL names only a dead coordinator; the discovery registry names the live one:
// the agent fails over to it and completes the work.
TEST_F(AgentBinary, UsesTheCoordinatorsOfTheDiscoveryUrl) {
  auto coordinator = start_coordinator();
  const std::uint16_t dead = testing::free_port();
  ListServer registry;
  registry.set_body(json({{"generatedAt", "2026-11-27T00:00:00Z"},
                          {"count", 2},
                          {"coordinators",
                           {{{"peerId", "bootstrap"},
                             {"coordinatorUrl", "http://127.0.0.1:" + std::to_string(dead)},
                             {"source", "bootstrap"}},
                            {{"peerId", "coord-1"},
                             {"coordinatorUrl", "http://127.0.0.1:" + std::to_string(port_) + "/"},
                             {"source", "mesh"}}}}})
                        .dump());
  auto agent = start_agent("agent-discovery", "agent-discovery", 1,
                           {{"COORDINATOR_URL", "http://127.0.0.1:" + std::to_string(dead)},
                            {"COORDINATOR_DISCOVERY_URL", registry.url()},
                            {"COORDINATOR_DISCOVERY_MS", "1000"}});
  const std::string id = submit("via-discovery", "discovered-coordinator", 0.1);
  ASSERT_TRUE(wait_completed({id}, 60s)) << agent->stderr_text();
  EXPECT_EQ(trimmed(get("/tasks/" + id).value("output", "")), "discovered-coordinator");
  const std::string log = agent->stderr_text();
  EXPECT_NE(log.find("event=coordinators_discovered"), std::string::npos) << log;
  EXPECT_NE(log.find("event=coordinator_failover"), std::string::npos) << log;
  // The agent registered with its power telemetry (at least the timestamp; on this host maybe
  // more).
  auto capacity = get("/capacity");
  bool found = false;
  for (const auto& a : capacity.value("agents", json::array())) {
    if (a.value("agentId", "") != "agent-discovery") continue;
    found = true;
    ASSERT_TRUE(a.contains("powerTelemetry")) << a.dump();
    EXPECT_TRUE(a["powerTelemetry"].contains("updatedAtMs")) << a.dump();
  }
  EXPECT_TRUE(found) << capacity.dump();
  // Refreshed periodically.
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (registry.requests() < 2 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_GE(registry.requests(), 2);
  agent->signal(SIGTERM);
  auto code = agent->wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
}

// A discovery URL that answers nonsense, and one that does not answer at all: logged, and the
// static COORDINATOR_URL still works.
TEST_F(AgentBinary, BadDiscoveryUrlLeavesTheStaticListWorking) {
  auto coordinator = start_coordinator();
  ListServer registry;
  registry.set_body("<html>not json</html>");
  const std::uint16_t dead = testing::free_port();
  auto nonsense = start_agent("agent-bad-registry", "agent-bad-registry", 1,
                              {{"COORDINATOR_DISCOVERY_URL", registry.url()}});
  auto unreachable =
      start_agent("agent-no-registry", "agent-no-registry", 1,
                  {{"COORDINATOR_DISCOVERY_URL",
                    "http://127.0.0.1:" + std::to_string(dead) + "/network/coordinators"}});
  const std::string a = submit("static-a", "static-list-a", 0.1);
  const std::string b = submit("static-b", "static-list-b", 0.1);
  ASSERT_TRUE(wait_completed({a, b}, 60s)) << nonsense->stderr_text() << unreachable->stderr_text();
  for (auto* agent : {nonsense.get(), unreachable.get()}) {
    const std::string log = agent->stderr_text();
    EXPECT_NE(log.find("event=coordinator_discovery_failed"), std::string::npos) << log;
    EXPECT_EQ(log.find("event=coordinators_discovered"), std::string::npos) << log;
    agent->signal(SIGTERM);
    auto code = agent->wait(30s);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0);
  }
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
}

TEST_F(AgentBinary, AgentWhoseSandboxCannotStartTakesNoWork) {
  auto coordinator = start_coordinator();
  auto broken = start_agent("agent-broken", "agent-broken", 1,
                            {{"SANDBOX_BWRAP", "/nonexistent/bwrap"},
                             {"SANDBOX_PYTHON", "/nonexistent/python3"},
                             {"SANDBOX_NODE", "/nonexistent/node"}});
  const std::string id = submit("unsandboxed", "never", 0.1);
  auto until = std::chrono::steady_clock::now() + 30s;
  while (broken->stderr_text().find("event=registered") == std::string::npos &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(100ms);
  }
  const std::string log = broken->stderr_text();
  ASSERT_NE(log.find("event=registered"), std::string::npos) << log;
  EXPECT_NE(log.find("event=sandbox_unavailable"), std::string::npos) << log;
  EXPECT_EQ(log_field(log, "registered", "sandbox_mode"), "none") << log;
  std::this_thread::sleep_for(1500ms);  // several poll intervals
  auto t = get("/tasks/" + id);
  EXPECT_EQ(t["subtasks"][0].value("state", ""), "queued") << t.dump();
  EXPECT_EQ(t["subtasks"][0].value("attempt", -1), 0) << t.dump();
  EXPECT_EQ(broken->stderr_text().find("event=subtask_leased"), std::string::npos);
  broken->signal(SIGTERM);
  auto code = broken->wait(30s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
}

// A coordinator counter from /metrics (Prometheus text), or -1.
double metric(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

TEST_F(AgentBinary, SubtasksTravelAsEnvelopesAndResultsComeBackSealed) {
  auto coordinator = start_coordinator();
  auto agent = start_agent("agent-env", "agent-env");
  const std::string id = submit("sealed", "opened-by-the-agent", 0.1);
  ASSERT_TRUE(wait_completed({id}, 60s)) << agent->stderr_text();
  EXPECT_EQ(trimmed(get("/tasks/" + id).value("output", "")), "opened-by-the-agent");
  EXPECT_EQ(log_field(agent->stderr_text(), "subtask_leased", "envelope"), "true")
      << agent->stderr_text();
  net::ClientRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(port_) + "/metrics";
  auto metrics = net::fetch(req);
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metric(metrics->body, "edgecoder_coordinator_envelopes_sealed_total"), 1)
      << metrics->body;
  EXPECT_EQ(
      metric(metrics->body, "edgecoder_coordinator_envelope_results_total{outcome=\"opened\"}"), 1)
      << metrics->body;
  agent->signal(SIGTERM);
  ASSERT_TRUE(agent->wait(30s).has_value());
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
}

// The agent's own model (a fake Ollama) answers every prompt with a program that fails, so both
// local iterations (plan + code, then reflect) fail; the agent asks the coordinator's /escalate,
// which relays to a real inference service (edgecoder-local answers the reflect prompt with
// working code for "hello world"), and the subtask completes with the escalated code's output.
TEST_F(AgentBinary, LocalFailuresThenReflectionThenEscalationFixesTheSubtask) {
  edgecoder::testing::FakeBehaviour broken;
  broken.reply("```python\nimport sys\nsys.exit('local model code failed')\n```\n");
  edgecoder::testing::FakeModelServer model(edgecoder::testing::FakeModelServer::Flavor::ollama,
                                            broken);
  const std::uint16_t inference_port = testing::free_port();
  testing::ChildOptions inference_options;
  inference_options.env = {{"EDGE_RUNTIME_MODE", "inference"},
                           {"INFERENCE_PORT", std::to_string(inference_port)},
                           {"INFERENCE_AUTH_TOKEN", "agent-e2e-inference-token"},
                           {"LOCAL_MODEL_PROVIDER", "edgecoder-local"},
                           {"EDGECODER_DATA_DIR", (dir_.path() / "inference").string()},
                           {"HOME", dir_.path().string()},
                           {"EDGECODER_THREADS", "1"}};
  inference_options.output_dir = dir_.path() / "inference-out";
  auto inference =
      std::make_unique<testing::ChildProcess>(EDGECODER_BINARY_PATH, std::move(inference_options));
  ASSERT_TRUE(testing::wait_for_port(inference_port, 60s)) << inference->stderr_text();
  auto coordinator =
      start_coordinator({{"INFERENCE_URL", "http://127.0.0.1:" + std::to_string(inference_port)}});
  auto agent = start_agent("agent-esc", "agent-esc", 1,
                           {{"LOCAL_MODEL_PROVIDER", "ollama-local"},
                            {"OLLAMA_HOST", model.base_url()},
                            {"OLLAMA_MODEL", "qwen2.5-coder:7b"},
                            {"AGENT_MAX_ITERATIONS", "2"}});
  auto created = call("POST", "/tasks",
                      {{"taskId", "escalated"},
                       {"subtasks",
                        {{{"id", "hello"},
                          {"input", "print hello world"},
                          {"language", "python"},
                          {"timeoutMs", 20000}}}}},
                      201);
  ASSERT_TRUE(wait_completed({"escalated"}, 90s))
      << agent->stderr_text() << coordinator->stderr_text() << inference->stderr_text();
  auto result = get("/tasks/escalated/subtasks/hello/result");
  EXPECT_TRUE(result.value("ok", false)) << result.dump();
  EXPECT_EQ(trimmed(result.value("output", "")), "Hello, world!") << result.dump();
  EXPECT_EQ(result.value("iterations", 0), 2) << result.dump();
  EXPECT_TRUE(result.value("escalated", false)) << result.dump();

  // The local model was asked to plan, to code, then to reflect on the failure it caused.
  bool reflected = false;
  for (const auto& r : model.requests_to("/api/generate")) {
    const std::string prompt = r.body.value("prompt", "");
    if (prompt.find("The code below failed") != std::string::npos &&
        prompt.find("local model code failed") != std::string::npos) {
      reflected = true;
    }
  }
  EXPECT_TRUE(reflected);
  EXPECT_GE(model.requests_to("/api/generate").size(), 3U);
  EXPECT_NE(agent->stderr_text().find("event=iteration_failed"), std::string::npos);
  EXPECT_NE(coordinator->stderr_text().find("event=escalation_completed"), std::string::npos)
      << coordinator->stderr_text();

  agent->signal(SIGTERM);
  ASSERT_TRUE(agent->wait(30s).has_value());
  coordinator->signal(SIGTERM);
  ASSERT_TRUE(coordinator->wait(30s).has_value());
  inference->signal(SIGTERM);
  ASSERT_TRUE(inference->wait(30s).has_value());
}

}  // namespace
}  // namespace edgecoder

// The worker loop of EDGE_RUNTIME_MODE=agent: registers once with the coordinator (again only
// after 401 mesh_unauthorized), heartbeats on a cadence (which renews its leases while it works),
// pulls up to MAX_CONCURRENT_TASKS subtasks, turns each into code with the configured model
// provider (src/model), runs it once in the sandbox (src/sandbox) and posts the result with the
// lease's attempt. Results the coordinator cannot take are kept in a SQLite outbox in the data
// directory and delivered when it answers again. Connection failures back off exponentially with
// jitter. stop() stops pulling, hands unfinished leases back (/release) and ends every loop.
// A sandbox that cannot be set up (or SANDBOX_MODE=none) means: register with no languages, take
// no work, and say why in the log; never a weaker sandbox.
// The agent is also a mesh peer (upstream-coordinator.md §2.5, §4.2): it registers itself with
// /mesh/register-peer (best effort, refreshed every 10 minutes), accepts tunnel invites and
// acknowledges close notices from its heartbeat, and takes the peer-direct work offered to it
// there when it can run it (a language its sandbox runs, within MAX_CONCURRENT_TASKS, and a
// power state that allows peer-direct work): the input goes through the same model + sandbox
// path as a pulled subtask and the result to /agent-mesh/direct-work/result. It earns no
// credits. offer_direct_work() offers work to another agent.
//
// Ownership: the Agent owns its identity, HTTP client, provider, sandbox, outbox and the threads
// sandbox runs block on (joined by the destructor). Its coroutines run on the executor given to
// create() and must have ended (stopped() is true) or that executor's context must have stopped
// before the Agent is destroyed.
// Thread-safety: start(), stop() and stopped() are called on the executor's thread; state is
// touched only there (sandbox runs happen on their own threads and post back).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json_fwd.hpp>

#include "core/config.h"
#include "core/result.h"

namespace edgecoder::agent {

struct AgentOptions {
  // COORDINATOR_URL: one or more base URLs (no trailing '/'); the agent fails over to the next
  // one when the current one does not answer.
  std::vector<std::string> coordinator_urls;
  std::string mesh_token;  // x-mesh-token; may be replaced by the one /register returns
  std::string registration_token;
  std::string agent_id;  // AGENT_ID; empty = the stored or a generated one
  std::filesystem::path data_dir;
  std::chrono::milliseconds heartbeat_interval{5'000};
  std::chrono::milliseconds poll_interval{1'000};  // between /pull calls while idle
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30'000};
  int max_concurrent_tasks = 1;  // 1..64
  std::string version;
  // COORDINATOR_DISCOVERY_URL: a registry answering {coordinators:[{coordinatorUrl}]} (the
  // control plane's GET /network/coordinators); "" = none. Its coordinators are appended to
  // coordinator_urls (failed over through the same way), fetched at start and every
  // discovery_interval (COORDINATOR_DISCOVERY_MS).
  std::string discovery_url;
  std::chrono::milliseconds discovery_interval{45'000};
  // Power telemetry (power.h): where /sys and /proc are, and AGENT_DEVICE_TYPE ("" = detect).
  std::filesystem::path sys_root = "/sys";
  std::filesystem::path proc_root = "/proc";
  std::string device_type;
  bool report_cpu_usage = false;  // AGENT_REPORT_CPU_USAGE: send cpuUsagePct (see power.h)
  int max_iterations = 2;         // AGENT_MAX_ITERATIONS: local code runs per subtask, 1..10
  bool escalate = true;           // AGENT_ESCALATE: then ask the coordinator's /escalate
};

// Reads COORDINATOR_URL (a comma-separated list), MESH_AUTH_TOKEN,
// AGENT_REGISTRATION_TOKEN, AGENT_ID, AGENT_HEARTBEAT_MS, AGENT_POLL_MS and MAX_CONCURRENT_TASKS.
core::Result<AgentOptions> agent_options_from(const core::Config& config);

// The coordinator URLs of a discovery answer ({coordinators:[{coordinatorUrl}]}): http(s) only,
// without trailing '/', deduplicated, at most 64; empty for anything else.
std::vector<std::string> parse_discovered_coordinators(const std::string& body);

class Agent {
 public:
  // Loads or creates the identity, opens the outbox, sets up the model provider and probes the
  // sandbox. Errors are things the operator must fix (unwritable data directory, bad settings);
  // a sandbox that cannot be set up is not an error (the agent takes no work).
  static core::Result<std::unique_ptr<Agent>> create(const core::Config& config,
                                                     AgentOptions options,
                                                     boost::asio::any_io_executor executor);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  const std::string& agent_id() const;
  void start();
  // Stop pulling, release unfinished leases, end the loops. Idempotent.
  void stop();
  // True once stop() was called and every loop of the agent has ended.
  bool stopped() const;

  // Peer-direct work, from the agent's executor: offers `input` (code in `language` for
  // work_type "code_task", a prompt for "model_inference") to another agent through the
  // coordinator and returns the offer id; the coordinator's 4xx (unknown or blacklisted agent,
  // 429 rate limit) comes back as an error naming its code.
  boost::asio::awaitable<core::Result<std::string>> offer_direct_work(
      std::string to_agent_id, std::string input, std::string language = "python",
      std::string work_type = "code_task");
  // The offer as the coordinator has it: {offerId, status, result:{ok, output, error?,
  // durationMs}|null, ...}.
  boost::asio::awaitable<core::Result<nlohmann::json>> direct_work(std::string offer_id);

 private:
  struct Impl;
  explicit Agent(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace edgecoder::agent

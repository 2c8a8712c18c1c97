// How an agent turns one subtask into a result (upstream-inference-ide-executor.md §5, and the
// escalation upstream never wired up): plan -> code -> run, then while the run fails and
// iterations are left, reflect on the error -> run again; when every local iteration failed,
// ask the coordinator's POST /escalate for a larger model's code and run that. Models are
// reached through src/model (any provider); runs go through the caller's sandbox. The result is
// the last run's output and error, how many local runs were made and whether it escalated.
//
// A model that cannot answer counts as a failed iteration (nothing runs); escalation still
// happens after the last one, so a subtask can finish while the agent's own model is down.
// Ownership: execute() borrows the provider; the callbacks are copied.
// Thread-safety: one execute() per subtask, on the agent's executor.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "api/coordinator.h"
#include "core/result.h"
#include "model/provider.h"

namespace edgecoder::agent {

struct ExecuteOptions {
  std::string model;       // passed to the provider (empty = its configured model)
  int max_iterations = 2;  // AGENT_MAX_ITERATIONS, 1..10: local code runs
  bool escalate = true;    // AGENT_ESCALATE
};

// One sandboxed run of a program in the subtask's language.
struct RunOutcome {
  bool ok = false;
  std::string output;  // stdout
  std::string error;   // stderr, plus why the run failed when it says nothing
};

struct Execution {
  bool ok = false;
  std::string output;
  std::string error;
  int iterations = 0;      // local iterations used (a model call and, with code, a run)
  bool escalated = false;  // /escalate was asked (whatever came of it)
};

using RunCode = std::function<boost::asio::awaitable<RunOutcome>(std::string code)>;
// Returns the improved code, or an error saying why there is none.
using Escalate =
    std::function<boost::asio::awaitable<core::Result<std::string>>(api::EscalateRequest request)>;

// `language` is the subtask's, normalised ("python", "javascript", "shell"); only python and
// javascript can be escalated (the inference service's contract).
boost::asio::awaitable<Execution> execute(model::Provider* provider, ExecuteOptions options,
                                          api::WireSubtask subtask, std::string language,
                                          std::string agent_id, RunCode run, Escalate escalate);

}  // namespace edgecoder::agent

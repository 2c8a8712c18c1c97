// Client verbs against a coordinator: `edgecoder task submit|show|cancel` and `edgecoder status`.
// The coordinator is the first entry of COORDINATOR_URL, else this node's own
// (http://127.0.0.1:COORDINATOR_PORT); the mesh token is MESH_AUTH_TOKEN, else the one the
// all-in-one node generated into its data directory.
// Exit codes: 0 done (submit: the task completed), 1 refused / failed / cancelled / unreachable
// (the message says which), 2 usage, 130 detached by Ctrl-C (the task keeps running).
// Thread-safety: each verb runs once on the main thread.
#pragma once

#include <string>

#include "core/config.h"

namespace edgecoder::app {

struct TaskVerb {
  std::string prompt;    // submit
  std::string language;  // submit: python|javascript (optional)
  std::string task_id;   // show, cancel
  bool json = false;     // show, status: print the coordinator's JSON as is
};

// POST /submit, then follows GET /tasks/:id/events, printing progress to stderr, and prints the
// assembled output to stdout. Ctrl-C detaches and says how to follow or cancel.
int task_submit(const core::Config& config, const TaskVerb& verb);
int task_show(const core::Config& config, const TaskVerb& verb);
int task_cancel(const core::Config& config, const TaskVerb& verb);
int status_show(const core::Config& config, bool json);

}  // namespace edgecoder::app

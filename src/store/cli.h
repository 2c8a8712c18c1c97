// The `edgecoder db ...` verbs: migrate, status, backup FILE. main.cpp passes the words after
// "db" and the loaded configuration; output goes to stdout, problems to stderr.
// Thread-safety: call from the main thread only (no server runs during a verb).
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace edgecoder::store {

// args: {"migrate"} | {"status"} | {"backup", FILE}, each optionally followed by
// "--service coordinator|control-plane|portal" (default: the services of the configured mode).
// Returns the process exit code: 0 done, 1 failed, 2 usage error.
int run_db_verb(const std::vector<std::string>& args, const core::Config& config);

// One line of usage for `edgecoder --help`.
const char* db_verb_usage();

}  // namespace edgecoder::store

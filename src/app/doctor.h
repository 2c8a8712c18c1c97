// `edgecoder doctor`: checks what a node in this configuration depends on — the code sandbox,
// the model server, the coordinator and the store — and says what to fix. It changes nothing
// (no migration, no file written outside a sandbox trial run's own temporary directory).
#pragma once

#include "core/config.h"

namespace edgecoder::app {

// Prints one line per check ("ok", "FAIL" or "skip", what was found, and for a failure what to
// set or do). Returns 0 when nothing failed, 1 otherwise.
int run_doctor(const core::Config& config);

}  // namespace edgecoder::app

// Runs a node: the HTTP listeners of the configured mode, signals, systemd notification and
// graceful drain. Every listener is bound before any starts, so a busy port fails the whole
// process cleanly (exit 1) and nothing is left half-started.
// Thread-safety: run_node() owns its io_context and threads; call it once from main.
#pragma once

#include "core/config.h"

namespace edgecoder::app {

// Returns the process exit code.
int run_node(core::Config config);

}  // namespace edgecoder::app

// The `edgecoder sandbox run --language python|javascript FILE` verb: runs one file in exactly
// the sandbox the agent uses (SANDBOX_MODE and the SANDBOX_* limits), prints the program's
// stdout and stderr, then any containment event on stderr, and returns the program's exit code.
// Other exit codes: 2 usage error, 124 timed out, 125 the sandbox cannot be set up (with the
// reason and what to set). A `none` sandbox runs the file too: the operator asked for it.
// Thread-safety: call from the main thread only (no server runs during a verb).
#pragma once

#include <string>

#include "core/config.h"

namespace edgecoder::sandbox {

// `file` "-" reads the program from standard input.
int run_sandbox_verb(const core::Config& config, const std::string& language,
                     const std::string& file);

}  // namespace edgecoder::sandbox

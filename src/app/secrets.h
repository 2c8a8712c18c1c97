// Node secrets: the tokens an all-in-one node generates for itself on first start (kept under
// <data dir>/secrets/, one 0600 file per setting, the same layout as $CREDENTIALS_DIRECTORY), the
// check that a standalone mode has the tokens it needs, and `edgecoder token show <role>`.
// Thread-safety: used once at start-up, single-threaded.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/result.h"

namespace edgecoder::app {

// Maps a role name (mesh, admin, inference, portal, federation, ide, metrics) to its setting.
std::optional<std::string_view> setting_for_role(std::string_view role);
std::string role_names();

// All-in-one: for each required secret not given by the operator, load it from the data
// directory or generate and store it. Standalone modes: every required secret must be set, else
// an error naming the settings — unless `insecure_dev`, in which case the missing names are
// returned for the caller to warn about.
core::Result<std::vector<std::string>> prepare_secrets(core::Config& config);

// The value of a secret setting: the operator's (env, file, credential) or the one the node
// generated into its data directory; empty when neither exists.
std::string effective_secret(const core::Config& config, std::string_view setting);

// `edgecoder token show <role>`: prints the effective token. Only the data directory's owner (or
// root) may read it. Returns the process exit code.
int token_show(const core::Config& config, std::string_view role);

}  // namespace edgecoder::app

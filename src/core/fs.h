// Small file-system helpers with the permissions EdgeCoder promises: private directories (0700)
// and private files (0600) written atomically and synced.
// Thread-safety: stateless functions.
#pragma once

#include <filesystem>
#include <string>

#include "core/result.h"

namespace edgecoder::core::fs {

// Creates `dir` (and parents) if missing and sets mode 0700 on it.
Result<void> ensure_private_dir(const std::filesystem::path& dir);

Result<std::string> read_file(const std::filesystem::path& path);

// Writes `content` to `path` via a temp file + fsync + rename, mode 0600.
Result<void> write_private_file(const std::filesystem::path& path, std::string_view content);

// $XDG_DATA_HOME/edgecoder, else $HOME/.local/share/edgecoder, else ./edgecoder-data.
std::filesystem::path default_data_dir();

}  // namespace edgecoder::core::fs

// The IDE agent's tools (upstream-inference-ide-executor.md §3.5): what the `/v1/ide/chat` loop
// runs over a developer's project — reading, listing, searching and editing files, git, and
// shell commands — with the upstream's argument names and result texts, and with its holes
// (§8.1 item 4) closed:
//   * every path argument stays inside the project root, compared by path components after
//     resolving symlinks (also for files that do not exist yet), and files are opened without
//     following a symlink swapped in after the check; writes into any `.git` directory are
//     refused (git would run hooks and config planted there);
//   * grep and git run from an argv (no shell) with a scrubbed environment, a timeout and an
//     output cap; option-like refs, remotes, branches and paths (a leading `-`) are refused,
//     git hooks and fsmonitor are switched off, remotes must be configured remote names;
//   * run_shell goes through the sandbox (Language::shell with the project bound read-write),
//     never the server's own environment, and its timeout kills the whole process tree.
// GitHub tools are not built (no network here): they return an error.
//
// Ownership: ProjectTools keeps its root and borrows the sandbox, which must outlive it.
// Thread-safety: run() is const and may be called from several threads at once; it blocks the
// calling thread while a tool runs (up to the tool's timeout: 10 s, 60 s for network git,
// the run_shell `timeout` argument).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/result.h"
#include "sandbox/sandbox.h"

namespace edgecoder::ide {

struct ShellOutput {
  std::string stdout_text;  // trailing whitespace trimmed
  std::string stderr_text;  // trailing whitespace trimmed; sandbox events appended
  int exit_code = 0;        // 137 when the timeout killed the command
};

// Exactly one of result/error is set. Texts are valid UTF-8 (invalid bytes become U+FFFD).
struct ToolResult {
  std::optional<std::string> result;
  std::optional<std::string> error;
  std::optional<ShellOutput> shell;  // set for run_shell (also with `result`, its JSON text)
};

// Read tools run without the user's approval; every other name (unknown ones included) needs it.
bool is_read_tool(std::string_view tool);
// Every tool name, read tools first.
std::vector<std::string> tool_names();

// The allow-list check for a project root asked for by a client: `requested` (absolute) must
// resolve (realpath) to an existing directory equal to or inside one of `allowed` (each
// realpath'd; ones that do not exist are skipped), compared by path components. Returns the
// real path. Errors: invalid_argument (not absolute, not an existing directory),
// permission_denied (outside every allowed directory).
core::Result<std::filesystem::path> resolve_project_root(
    const std::vector<std::filesystem::path>& allowed, std::string_view requested);

class ProjectTools {
 public:
  // The largest read_file output and list_directory listing; longer ones end with a note.
  static constexpr std::size_t kMaxReadBytes = 1 << 20;
  static constexpr std::size_t kMaxListEntries = 1000;
  static constexpr std::size_t kMaxSearchLines = 50;
  static constexpr std::size_t kMaxCommandOutputBytes = 1 << 20;  // git, grep: per stream
  static constexpr int kDefaultShellTimeoutMs = 30'000;
  static constexpr int kMaxShellTimeoutMs = 300'000;

  // root: an already-resolved project root (resolve_project_root); it is realpath'd again.
  // sandbox: runs run_shell (null: run_shell errors "shell tool disabled: no sandbox"). The
  // developer asked for (and approved) the command on their own machine, so a `none` sandbox
  // the operator chose is accepted (require_isolation = false).
  ProjectTools(std::filesystem::path root, const sandbox::Sandbox* sandbox);

  const std::filesystem::path& root() const { return root_; }

  // Runs one tool; blocking; never throws (an exception becomes `error`).
  ToolResult run(std::string_view tool, const nlohmann::json& args) const;

 private:
  ToolResult dispatch(std::string_view tool, const nlohmann::json& args) const;

  const std::filesystem::path root_;
  const sandbox::Sandbox* const sandbox_;
};

}  // namespace edgecoder::ide

// Internal to the sandbox library: the per-mode backends behind the Sandbox interface and the
// pieces they share (interpreter command lines, the program's environment, rlimits, turning a
// finished child into a RunResult with its containment events).
// Thread-safety: backends are immutable after construction; run() is reentrant.
#pragma once

#include <sys/resource.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"
#include "sandbox/spawn.h"

namespace edgecoder::sandbox::detail {

// The file name a program is stored under in its work directory.
std::string program_file_name(Language language);

// The interpreter for a language from the options (python, node or shell).
const std::filesystem::path& interpreter_path(const Options& options, Language language);

// The limits of one run: the sandbox's, with the request's wall_timeout override applied.
Limits run_limits(const Limits& limits, const RunRequest& request);

// The interpreter's argv running `script`.
std::vector<std::string> interpreter_argv(const Options& options, Language language,
                                          const std::string& interpreter,
                                          const std::string& script);

// The whole environment a program sees (nothing from the caller's environment).
std::vector<std::string> program_env(const std::string& home, const std::string& tmp,
                                     const std::string& run_id);

// RLIMIT_AS for a language: memory_mb, plus node_vm_reserve_mb for Node.
std::uint64_t address_space_bytes(const Limits& limits, Language language);

// The rlimits every non-docker program gets, set before exec. `with_nproc` false leaves
// RLIMIT_NPROC out: bwrap sets it on the sandbox's first process instead (see bwrap.cpp).
std::vector<std::pair<int, std::uint64_t>> program_rlimits(const Limits& limits, Language language,
                                                           bool with_nproc);

// True when the effective uid is 0.
bool running_as_root();

// Builds the RunResult of a finished child: output with truncation markers, exit status, and
// the containment events that can be told from the outside (timeout, signals for CPU and file
// size limits, cgroup events, truncation) or from the runtime's own error text (failed
// allocations, refused forks, unreachable network, read-only file system, EPERM).
RunResult make_result(Outcome outcome, const Limits& limits, const std::string& run_id,
                      std::optional<int> exit_code_override = std::nullopt,
                      std::optional<RunCgroup::Events> events = std::nullopt,
                      bool network_isolated = true);

// An error for a `none` sandbox asked to run work that requires isolation.
core::Error isolation_required_error();

// --- backends -------------------------------------------------------------------------------

// Shared by the backends that may use cgroups (bwrap, process).
struct CgroupChoice {
  bool available = false;
  std::filesystem::path dir;
  std::string detail;
};

std::unique_ptr<Sandbox> make_bwrap_sandbox(const Options& options, ProbeReport report,
                                            std::vector<sock_filter> seccomp, CgroupChoice cgroup);
std::unique_ptr<Sandbox> make_process_sandbox(const Options& options, ProbeReport report,
                                              std::vector<sock_filter> seccomp,
                                              CgroupChoice cgroup);
std::unique_ptr<Sandbox> make_none_sandbox(const Options& options, ProbeReport report);
std::unique_ptr<Sandbox> make_docker_sandbox(const Options& options, ProbeReport report);

// Per-mode checks that probe() runs before the trial runs: fills report.problem/fix/warnings.
void check_bwrap(const Options& options, ProbeReport& report);
void check_process(const Options& options, ProbeReport& report);
void check_docker(const Options& options, ProbeReport& report);

// bwrap: directories that are never bound, and validation of SANDBOX_EXTRA_RO_BINDS.
core::Result<void> check_extra_binds(const Options& options);

// RunRequest::project_dir: its real path when it may be shown to a program, else
// permission_denied (it is, contains or lies inside a protected or system location) or
// invalid_argument (not an absolute path to an existing directory).
core::Result<std::filesystem::path> check_project_dir(const Options& options,
                                                      const std::filesystem::path& dir);

// A note for RunResult::error when the program runs as `uid` (switched from root) and the
// project directory looks unwritable for it (empty when it looks writable).
std::string project_write_note(const std::filesystem::path& dir, uid_t uid, gid_t gid);

// The docker CLI's full path (PATH lookup when not absolute), or empty.
std::string resolve_in_path(const std::string& program);

}  // namespace edgecoder::sandbox::detail

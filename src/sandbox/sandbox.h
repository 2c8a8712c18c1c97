// The sandbox library: runs one program written by a model (Python 3 or JavaScript/Node), or a
// shell command the IDE agent asked for (optionally inside a project directory), with the
// isolation chosen by SANDBOX_MODE, and returns its output, exit status and any containment
// event (timeout, truncated output, limits hit). Used by the agent and the IDE provider; the
// `edgecoder sandbox run` verb runs exactly this code.
//
// Modes (docs/sandbox.md has the full picture):
//   bwrap   (default) bubblewrap: every namespace unshared (the network namespace has only lo),
//           read-only system directories, a fresh tmpfs /work, an unprivileged uid, a seccomp
//           filter, rlimits, a wall-clock timeout that kills the whole process tree, capped
//           output, and cgroup v2 memory/pids limits when a delegated hierarchy exists.
//   process rlimits, an unprivileged uid (when the caller is root), seccomp, the timeout and the
//           output cap only. Weak: no filesystem or PID isolation. Says so loudly.
//   docker  `docker run --network=none --read-only --user ...` with the same limits; the
//           container is killed by name on timeout.
//   none    no isolation at all; only when set explicitly, and such a sandbox refuses every
//           run that requires isolation (tenant work).
// A mode that cannot be set up is reported by probe() and make_sandbox() fails; the library
// never substitutes a weaker mode.
//
// Ownership: a Sandbox owns nothing between runs but its options (and, with cgroups, the parent
// cgroup it prepared). Each run creates and removes its own pipes, memfds, work directory and
// per-run cgroup.
// Thread-safety: Sandbox::run() is const and may be called from several threads at once. A run
// blocks the calling thread until the program has ended and every process it started is gone;
// that thread must stay alive meanwhile (the kernel's parent-death signal follows the thread).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/result.h"

namespace edgecoder::sandbox {

enum class Mode { bwrap, process, docker, none };
// `shell`: the code is a /bin/sh script (a command line). It is never advertised by probe() and
// so never taken as tenant work; the IDE's run_shell tool uses it.
enum class Language { python, javascript, shell };

std::string_view mode_name(Mode mode);
core::Result<Mode> parse_mode(std::string_view name);
std::string_view language_name(Language language);
// Accepts python/python3/py, javascript/js/node and shell/sh.
core::Result<Language> parse_language(std::string_view name);

// Per-run resource limits. Every limit applies to the whole run (the program and every process
// it starts) unless noted.
struct Limits {
  std::chrono::milliseconds wall_timeout{10'000};  // then the whole process tree is killed
  int cpu_seconds = 10;                            // RLIMIT_CPU per process (SIGXCPU, then KILL)
  std::uint64_t memory_mb = 512;  // RLIMIT_AS (Python) / JS heap + AS; cgroup memory.max
  // Extra address space (not memory) Node gets on top of memory_mb: V8 reserves ~700 MiB of
  // virtual address space at start, so RLIMIT_AS = memory_mb + this for JavaScript (and for
  // shell commands, which may well start Node).
  std::uint64_t node_vm_reserve_mb = 1024;
  int max_processes = 64;                  // RLIMIT_NPROC (per host uid); cgroup pids.max
  std::uint64_t max_file_mb = 16;          // RLIMIT_FSIZE: largest file the program may write
  std::uint64_t work_dir_mb = 64;          // size of the tmpfs /work and /tmp (bwrap, docker)
  int max_open_files = 64;                 // RLIMIT_NOFILE
  std::size_t max_output_bytes = 1 << 20;  // per stream; the rest is discarded and marked
};

struct Options {
  Mode mode = Mode::bwrap;
  Limits limits;
  // Interpreters (absolute paths; for bwrap they must lie under a bound system directory).
  std::filesystem::path python = "/usr/bin/python3";
  std::filesystem::path node = "/usr/bin/node";
  std::filesystem::path shell = "/bin/sh";  // runs Language::shell scripts
  std::filesystem::path bwrap = "/usr/bin/bwrap";
  // The uid/gid programs run as when the caller is root (bwrap, process, docker --user). When
  // the caller is not root, bwrap maps this id inside its user namespace onto the caller's.
  uid_t uid = 65534;
  gid_t gid = 65534;
  // Extra host directories bound read-only (bwrap), e.g. an interpreter under /opt. Never
  // /home, /root, /etc as a whole, the data directory or a parent of any of them.
  std::vector<std::filesystem::path> extra_ro_binds;
  // "auto": use a delegated, writable cgroup v2 directory when one exists; "off"; or the path
  // of a cgroup v2 directory to create the per-run cgroups in.
  std::string cgroup = "auto";
  // Host directory for process/none-mode work directories (empty = $TMPDIR or /tmp).
  std::filesystem::path work_root;
  // docker mode.
  std::string docker = "docker";  // the CLI, looked up in PATH when not absolute
  std::string docker_python_image = "python:3.11-slim";
  std::string docker_node_image = "node:20-slim";
  std::string docker_cpus = "1";
  // The node's data directory (and other secret locations): never made visible to a program.
  std::vector<std::filesystem::path> protected_paths;
};

// Reads the SANDBOX_* settings (see docs/sandbox.md); errors name the setting. `data_dir` is
// added to protected_paths.
core::Result<Options> options_from_settings(const core::Settings& settings,
                                            const std::filesystem::path& data_dir);

// What probe() found out about a mode on this host.
struct ProbeReport {
  Mode mode = Mode::bwrap;
  bool ready = false;                // the mode can be set up; runs will work
  bool isolated = false;             // bwrap or docker and ready (process is weak, none is nothing)
  bool tenant_work_allowed = false;  // ready and not `none`: may run code for other people
  std::string problem;               // why not ready (empty when ready)
  std::string fix;                   // what to set or do about `problem`
  std::vector<std::string> warnings;  // weak isolation, missing cgroup limits, ...
  std::vector<Language> languages;    // languages whose interpreter ran in a trial
  std::string cgroup;                 // "cgroup v2 memory+pids limits in <dir>" or why not
};

// Checks that `options.mode` can be set up here, including a trial run of each language. Never
// changes the host. Takes about as long as two sandboxed interpreter starts.
ProbeReport probe(const Options& options);

struct RunRequest {
  Language language = Language::python;
  std::string code;   // the program's source text
  std::string input;  // given to the program on standard input (empty = /dev/null)
  // True for work done for other people (tenant work): refused by a `none` sandbox.
  bool require_isolation = true;
  // A host directory (empty = none) the program sees read-write and starts in: bwrap binds it
  // at /project (its .git, when there is one, read-only: a run must not plant git hooks or
  // config that the host's git would later execute), docker mounts it at /project, process and
  // none chdir into it. Refused (permission_denied) when it is, contains or lies inside a
  // protected or system location (docs/sandbox.md). As root the program runs as Options::uid,
  // which can write only where that uid may; RunResult::error then says so.
  std::filesystem::path project_dir;
  // Overrides Limits::wall_timeout for this run (unset = the sandbox's limit).
  std::optional<std::chrono::milliseconds> wall_timeout;
};

struct RunResult {
  std::string stdout_text;  // at most max_output_bytes plus a truncation marker
  std::string stderr_text;
  int exit_code = -1;         // exit status; 128+signal when killed by a signal
  std::optional<int> signal;  // the signal that ended the program, if any
  bool timed_out = false;     // killed at the wall-clock timeout
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  std::int64_t duration_ms = 0;  // wall time from start to the last process gone
  std::int64_t cpu_ms = 0;       // user+system time of the program and its children
  std::string error;   // containment events, "; "-separated (empty when none was detected)
  std::string run_id;  // unique per run; also EDGECODER_SANDBOX_RUN in the program's env

  bool ok() const { return exit_code == 0 && !signal && !timed_out; }
  // The exit code a CLI should return: 124 on timeout, else exit_code.
  int cli_exit_code() const { return timed_out ? 124 : exit_code; }
};

class Sandbox {
 public:
  virtual ~Sandbox() = default;
  virtual Mode mode() const = 0;
  // The probe report the sandbox was created with.
  virtual const ProbeReport& report() const = 0;
  // Runs one program. Errors are setup failures (the sandbox could not start the program, or a
  // `none` sandbox was asked for isolation); everything the program does is in RunResult.
  virtual core::Result<RunResult> run(const RunRequest& request) const = 0;
};

// Probes options.mode and returns a sandbox for it, or Errc::unavailable carrying the probe's
// problem and fix. Never falls back to another mode.
core::Result<std::unique_ptr<Sandbox>> make_sandbox(const Options& options);

// As make_sandbox, with a probe report already obtained (saves the trial run).
core::Result<std::unique_ptr<Sandbox>> make_sandbox(const Options& options,
                                                    const ProbeReport& report);

}  // namespace edgecoder::sandbox

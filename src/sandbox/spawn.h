// Internal to the sandbox library: starting one child process with a prepared environment,
// descriptors, credentials, rlimits and seccomp filter; draining its stdout/stderr without
// blocking (each capped, the rest read and discarded); the wall-clock deadline; and killing the
// whole process tree. Every mode (bwrap, process, docker, none) runs through run_child().
//
// Between fork and exec the child runs only async-signal-safe code (raw syscalls on values
// prepared before the fork), because the caller may be multi-threaded. A child without a
// supervisor shares the caller's memory until its execve (clone(CLONE_VM | CLONE_VFORK), like
// posix_spawn; plain fork under AddressSanitizer): no page-table copy, no copy-on-write faults.
// Ownership: run_child() owns every pipe and pidfd it creates and closes them before returning;
// descriptors passed in ChildSpec stay owned by the caller.
// Thread-safety: run_child() may be called from several threads at once.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/fs.h"
#include "core/result.h"

namespace edgecoder::sandbox::detail {

using core::fs::Fd;  // an owned file descriptor

// An anonymous in-memory file (close-on-exec) holding `content`, positioned at offset 0.
core::Result<Fd> make_memfd(const char* name, std::string_view content);

struct ChildSpec {
  std::string path;  // what execve runs (absolute)
  std::vector<std::string> argv;
  std::vector<std::string> env;  // the whole environment, "KEY=VALUE"
  int stdin_fd = -1;             // -1: /dev/null
  std::vector<int> extra_fds;    // appear in the program as fds 3, 4, ... in this order
  // Switch to this uid/gid (and no supplementary groups) before exec; needs root.
  std::optional<std::pair<uid_t, gid_t>> switch_user;
  bool no_new_privs = true;
  // {resource, limit}: soft = hard = limit, except RLIMIT_CPU whose hard limit is one second
  // higher so that SIGXCPU (reportable) comes before SIGKILL.
  std::vector<std::pair<int, std::uint64_t>> rlimits;
  std::string cgroup_procs;  // cgroup.procs of the run's cgroup ("" = none); joined first
  std::string chdir = "/";
  std::vector<sock_filter> seccomp;  // loaded right before exec ("" = none)
  // Run the program under a supervisor process that is a child subreaper: when the program
  // ends (or on timeout) it kills every process the program left behind, even ones that called
  // setsid() and double-forked. Used by the modes without a PID namespace.
  bool supervise = false;
};

struct Control {
  std::chrono::milliseconds timeout{10'000};
  std::size_t max_output_bytes = 1 << 20;  // per stream
  // Called once, in the calling thread, when the deadline passes (before the kill).
  std::function<void()> on_timeout;
};

struct Captured {
  std::string text;
  bool truncated = false;
  std::uint64_t dropped = 0;  // bytes read and discarded after the cap
};

struct Outcome {
  Captured out;
  Captured err;
  std::optional<int> wait_status;  // the program's raw wait status, when known
  bool timed_out = false;
  // The child could not be set up or exec failed: "<step>: <strerror>" (then wait_status is
  // that of the failed child).
  std::string setup_error;
  bool escaped_output = false;  // output pipes stayed open after the tree was gone
  std::int64_t duration_ms = 0;
  std::int64_t cpu_ms = 0;
};

// A start gate for bubblewrap (--info-fd / --block-fd): the program's first process inside the
// sandbox announces its host pid on `info` ("child-pid": N) and then waits for a byte on the
// other end of `release`. run_child() then sets `rlimits` on that process with prlimit(2) (root,
// or the owner of its user namespace, may), writes the byte and closes `release`. Limits set
// this way hold inside the sandbox's own user namespace only, like a prlimit run in it, without
// the cost of another exec. The child's ends of both pipes go in ChildSpec::extra_fds.
struct StartGate {
  Fd info;     // read end (the child's write end is one of ChildSpec::extra_fds)
  Fd release;  // write end
  std::vector<std::pair<int, std::uint64_t>> rlimits;  // soft = hard
  // The ids the child runs as (ChildSpec::switch_user), for root without CAP_SYS_RESOURCE.
  std::optional<std::pair<uid_t, gid_t>> ids;
};

// Starts the child, drains its output until it and every process holding its output have
// ended, enforces the deadline, and reaps everything it started. Errors: the process could not
// even be created (pipe/fork failure). `gate`, when given, is opened as described above (and
// closed if the child never announces itself).
core::Result<Outcome> run_child(const ChildSpec& spec, const Control& control,
                                StartGate* gate = nullptr);

// Appends the truncation marker to a captured stream (when it was truncated) and returns the
// text; cuts a UTF-8 sequence split by the cap.
std::string finish_captured(Captured captured, std::string_view stream, std::size_t cap);

// A short random hex id (16 chars) for run ids, container and cgroup names.
std::string random_id();

}  // namespace edgecoder::sandbox::detail

// Internal to the sandbox library: cgroup v2 memory and pids limits for each run, when the
// host gives us a delegated, writable cgroup v2 directory with the memory and pids
// controllers (systemd: Delegate=yes; or an explicit SANDBOX_CGROUP directory). Each run gets
// its own child cgroup (memory.max, memory.swap.max=0, memory.oom.group=1, pids.max), is killed
// as a whole through it (cgroup.kill) and reports OOM kills and pids-limit hits from its event
// files. On hosts without such a directory (cgroup v1 or hybrid, no delegation) the sandbox
// relies on rlimits and says so in its probe report.
// Ownership: RunCgroup owns its directory and removes it.
// Thread-safety: detect_cgroup() is stateless; prepare_cgroup() must run once, before runs
// start; RunCgroup objects are independent.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/result.h"

namespace edgecoder::sandbox::detail {

// Where to look; tests point these at a fake tree.
struct CgroupSources {
  std::filesystem::path proc_self_cgroup = "/proc/self/cgroup";
  std::filesystem::path mountinfo = "/proc/self/mountinfo";
};

struct CgroupSupport {
  bool available = false;
  std::filesystem::path dir;  // the delegated directory; per-run cgroups are created in it
  std::string detail;         // what was found, or why there is nothing to use
};

// `setting`: "auto", "off", or a directory. Reads only; changes nothing.
CgroupSupport detect_cgroup(const std::string& setting, const CgroupSources& sources = {});

// Makes support.dir able to hold per-run cgroups with memory and pids limits: enables the
// controllers in its cgroup.subtree_control and, when the directory holds this very process
// (the delegated unit's own cgroup), first moves this process into a leaf "edgecoder-agent".
// Processes other than ours are never moved.
core::Result<void> prepare_cgroup(const CgroupSupport& support);

class RunCgroup {
 public:
  struct Events {
    std::uint64_t oom_kills = 0;  // memory.events oom_kill
    std::uint64_t pids_max = 0;   // pids.events max: forks refused at pids.max
  };

  static core::Result<RunCgroup> create(const std::filesystem::path& parent,
                                        const std::string& name, std::uint64_t memory_bytes,
                                        std::uint64_t max_pids);
  RunCgroup(RunCgroup&& other) noexcept;
  RunCgroup& operator=(RunCgroup&&) = delete;
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;
  ~RunCgroup();

  const std::string& procs_path() const { return procs_; }
  // Kills every process still in the cgroup, waits for it to empty, reads the events and
  // removes the directory. Idempotent.
  Events finish();

 private:
  RunCgroup() = default;
  std::filesystem::path dir_;
  std::string procs_;
  bool finished_ = false;
  Events events_;
};

}  // namespace edgecoder::sandbox::detail

#include "sandbox/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace edgecoder::sandbox::detail {
namespace cgroup_detail {

namespace stdfs = std::filesystem;
using core::Errc;
using core::make_error;

std::string slurp(const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::set<std::string> words(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.insert(w);
  return out;
}

// Writes with one write() call: cgroup files take one value per write.
core::Result<void> write_value(const stdfs::path& path, const std::string& value) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_error(Errc::unavailable,
                      "cannot open " + path.string() + ": " + std::strerror(errno));
  }
  const ssize_t n = ::write(fd, value.data(), value.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return make_error(Errc::unavailable, "cannot write '" + value + "' to " + path.string() + ": " +
                                             std::strerror(n < 0 ? err : EIO));
  }
  return {};
}

struct Mount {
  stdfs::path root;   // the mount's root within the hierarchy
  stdfs::path point;  // where it is mounted
};

// The cgroup2 mounts from mountinfo ("id parent maj:min root point opts ... - fstype src opts").
std::vector<Mount> cgroup2_mounts(const stdfs::path& mountinfo) {
  std::vector<Mount> out;
  std::istringstream in(slurp(mountinfo));
  for (std::string line; std::getline(in, line);) {
    const auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream tail(line.substr(sep + 3));
    std::string fstype;
    tail >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream head(line.substr(0, sep));
    std::string id, parent, dev, root, point;
    head >> id >> parent >> dev >> root >> point;
    out.push_back({root, point});
  }
  return out;
}

// Checks one candidate directory; fills `support` and returns true when usable.
bool check_dir(const stdfs::path& dir, CgroupSupport& support) {
  support.dir = dir;
  const auto controllers = words(slurp(dir / "cgroup.controllers"));
  if (controllers.empty() && !stdfs::exists(dir / "cgroup.controllers")) {
    support.detail = dir.string() + " is not a cgroup v2 directory";
    return false;
  }
  if (!controllers.count("memory") || !controllers.count("pids")) {
    support.detail = "cgroup v2 directory " + dir.string() +
                     " lacks the memory and pids controllers (host uses cgroup v1 or a "
                     "hybrid layout, or they were not delegated)";
    return false;
  }
  if (::access(dir.c_str(), W_OK) != 0 ||
      ::access((dir / "cgroup.subtree_control").c_str(), W_OK) != 0 ||
      ::access((dir / "cgroup.procs").c_str(), W_OK) != 0) {
    support.detail = "cgroup v2 directory " + dir.string() +
                     " is not writable by this user (not delegated; under systemd use "
                     "Delegate=yes)";
    return false;
  }
  support.available = true;
  support.detail = "cgroup v2 memory+pids limits per run in " + dir.string();
  return true;
}

bool contains_pid(const stdfs::path& procs_file, pid_t pid) {
  std::istringstream in(slurp(procs_file));
  for (long p; in >> p;) {
    if (p == pid) return true;
  }
  return false;
}

std::uint64_t event_value(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  for (std::string k; in >> k;) {
    std::uint64_t v = 0;
    if (!(in >> v)) break;
    if (k == key) return v;
  }
  return 0;
}

}  // namespace cgroup_detail

CgroupSupport detect_cgroup(const std::string& setting, const CgroupSources& sources) {
  using namespace cgroup_detail;
  CgroupSupport support;
  if (setting == "off") {
    support.detail = "cgroup limits disabled (SANDBOX_CGROUP=off)";
    return support;
  }
  const auto mounts = cgroup2_mounts(sources.mountinfo);
  if (mounts.empty()) {
    support.detail = "no cgroup v2 hierarchy is mounted";
    return support;
  }
  if (setting != "auto" && !setting.empty()) {
    const stdfs::path dir(setting);
    bool under_mount = false;
    for (const auto& m : mounts) {
      const auto rel = dir.lexically_relative(m.point);
      if (!rel.empty() && *rel.begin() != "..") under_mount = true;
    }
    if (!under_mount) {
      support.detail = "SANDBOX_CGROUP=" + setting + " is not inside a cgroup v2 mount";
      return support;
    }
    check_dir(dir, support);
    return support;
  }
  // auto: our own cgroup, the one systemd delegates to a unit with Delegate=yes.
  std::string own;
  std::istringstream in(slurp(sources.proc_self_cgroup));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) == 0) own = line.substr(3);
  }
  if (own.empty()) {
    support.detail = "this process is in no cgroup v2 hierarchy (cgroup v1 host)";
    return support;
  }
  const Mount& m = mounts.front();
  stdfs::path rel = stdfs::path(own).lexically_relative(m.root);
  if (rel.empty() || *rel.begin() == "..") rel = stdfs::path(own).relative_path();
  if (rel == ".") rel.clear();
  const stdfs::path dir = rel.empty() ? m.point : m.point / rel;
  check_dir(dir, support);
  return support;
}

core::Result<void> prepare_cgroup(const CgroupSupport& support) {
  using namespace cgroup_detail;
  if (!support.available) return make_error(Errc::unavailable, support.detail);
  const auto enabled = words(slurp(support.dir / "cgroup.subtree_control"));
  if (enabled.count("memory") && enabled.count("pids")) return {};
  auto enable = write_value(support.dir / "cgroup.subtree_control", "+memory +pids");
  if (enable) return {};
  // A cgroup with processes cannot enable controllers for children ("no internal processes"):
  // move this process (all its threads) into a leaf of its own, then retry.
  if (!contains_pid(support.dir / "cgroup.procs", ::getpid())) return enable.error();
  const stdfs::path leaf = support.dir / "edgecoder-agent";
  std::error_code ec;
  stdfs::create_directory(leaf, ec);
  if (ec) {
    return make_error(Errc::unavailable, "cannot create " + leaf.string() + ": " + ec.message());
  }
  if (auto moved = write_value(leaf / "cgroup.procs", std::to_string(::getpid())); !moved) {
    return moved.error();
  }
  enable = write_value(support.dir / "cgroup.subtree_control", "+memory +pids");
  if (!enable) {
    return make_error(Errc::unavailable,
                      enable.error().detail +
                          " (other processes share the cgroup; give the agent a cgroup of its "
                          "own, e.g. a systemd unit with Delegate=yes)");
  }
  return {};
}

core::Result<RunCgroup> RunCgroup::create(const std::filesystem::path& parent,
                                          const std::string& name, std::uint64_t memory_bytes,
                                          std::uint64_t max_pids) {
  using namespace cgroup_detail;
  RunCgroup cg;
  cg.dir_ = parent / name;
  if (::mkdir(cg.dir_.c_str(), 0755) != 0) {
    return make_error(Errc::unavailable,
                      "cannot create cgroup " + cg.dir_.string() + ": " + std::strerror(errno));
  }
  cg.procs_ = (cg.dir_ / "cgroup.procs").string();
  if (auto r = write_value(cg.dir_ / "memory.max", std::to_string(memory_bytes)); !r) {
    return r.error();
  }
  if (auto r = write_value(cg.dir_ / "pids.max", std::to_string(max_pids)); !r) return r.error();
  // Best effort: no swap to hide in, and an OOM kill takes the whole run down at once.
  if (stdfs::exists(cg.dir_ / "memory.swap.max")) {
    (void)write_value(cg.dir_ / "memory.swap.max", "0");
  }
  if (stdfs::exists(cg.dir_ / "memory.oom.group")) {
    (void)write_value(cg.dir_ / "memory.oom.group", "1");
  }
  return cg;
}

RunCgroup::RunCgroup(RunCgroup&& other) noexcept
    : dir_(std::move(other.dir_)),
      procs_(std::move(other.procs_)),
      finished_(other.finished_),
      events_(other.events_) {
  other.finished_ = true;
}

RunCgroup::~RunCgroup() { finish(); }

RunCgroup::Events RunCgroup::finish() {
  using namespace cgroup_detail;
  if (finished_) return events_;
  finished_ = true;
  const bool has_kill = std::filesystem::exists(dir_ / "cgroup.kill");
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < until) {
    const std::string procs = slurp(procs_);
    if (procs.find_first_not_of(" \n") == std::string::npos) break;
    if (has_kill) {
      (void)write_value(dir_ / "cgroup.kill", "1");
    } else {
      std::istringstream in(procs);
      for (long pid; in >> pid;) ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  events_.oom_kills = event_value(slurp(dir_ / "memory.events"), "oom_kill");
  events_.pids_max = event_value(slurp(dir_ / "pids.events"), "max");
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (::rmdir(dir_.c_str()) == 0 || errno == ENOENT) break;
    if (errno != EBUSY) {
      // A plain directory (tests' fake tree): remove its files too.
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return events_;
}

}  // namespace edgecoder::sandbox::detail

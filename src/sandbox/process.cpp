// The process and none backends: the interpreter runs directly on the host, under a supervisor
// that kills everything the program leaves behind. `process` adds an unprivileged uid (when the
// caller is root), rlimits, no_new_privs and the seccomp filter (which here also refuses
// AF_INET/AF_INET6 sockets, as there is no network namespace). `none` adds nothing.
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "sandbox/backends.h"

namespace edgecoder::sandbox::detail {
namespace process_detail {

namespace stdfs = std::filesystem;
using core::Errc;
using core::make_error;

// A private host directory for one run: <root>/edgecoder-sandbox-XXXXXX with the program and a
// tmp/ inside. Removed (whatever the program did to its permissions) on destruction.
class WorkDir {
 public:
  static core::Result<WorkDir> create(const Options& options, bool chown_to_sandbox,
                                      Language language, const std::string& code) {
    stdfs::path root = options.work_root;
    if (root.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      root = (tmp != nullptr && tmp[0] == '/') ? tmp : "/tmp";
    }
    std::string tmpl = (root / "edgecoder-sandbox-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return make_error(Errc::unavailable, "cannot create a work directory in " + root.string() +
                                               ": " + std::strerror(errno));
    }
    WorkDir dir;
    dir.path_ = tmpl;
    dir.program_ = dir.path_ / program_file_name(language);
    {
      std::ofstream out(dir.program_, std::ios::binary);
      out << code;
      if (!out) return make_error(Errc::unavailable, "cannot write " + dir.program_.string());
    }
    ::chmod(dir.program_.c_str(), 0644);
    const stdfs::path tmp = dir.path_ / "tmp";
    if (::mkdir(tmp.c_str(), 0700) != 0) {
      return make_error(Errc::unavailable, "cannot create " + tmp.string());
    }
    if (chown_to_sandbox) {
      // The program owns its directory; the program file stays the caller's (read-only to it).
      if (::chown(dir.path_.c_str(), options.uid, options.gid) != 0 ||
          ::chown(tmp.c_str(), options.uid, options.gid) != 0) {
        return make_error(Errc::unavailable, "cannot hand the work directory to uid " +
                                                 std::to_string(options.uid) + ": " +
                                                 std::strerror(errno));
      }
    }
    return dir;
  }

  WorkDir(WorkDir&& other) noexcept
      : path_(std::move(other.path_)), program_(std::move(other.program_)) {
    other.path_.clear();
  }
  WorkDir& operator=(WorkDir&&) = delete;
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  ~WorkDir() {
    if (path_.empty()) return;
    std::error_code ec;
    stdfs::remove_all(path_, ec);
    if (!ec) return;
    // The program may have removed permissions from what it created; restore and retry.
    for (auto it = stdfs::recursive_directory_iterator(
             path_, stdfs::directory_options::skip_permission_denied, ec);
         !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
    }
    ::chmod(path_.c_str(), 0700);
    stdfs::remove_all(path_, ec);
  }

  const stdfs::path& path() const { return path_; }
  const stdfs::path& program() const { return program_; }

 private:
  WorkDir() = default;
  stdfs::path path_;
  stdfs::path program_;
};

class HostSandbox final : public Sandbox {
 public:
  HostSandbox(Mode mode, Options options, ProbeReport report, std::vector<sock_filter> seccomp,
              CgroupChoice cgroup)
      : mode_(mode),
        options_(std::move(options)),
        report_(std::move(report)),
        seccomp_(std::move(seccomp)),
        cgroup_(std::move(cgroup)) {}

  Mode mode() const override { return mode_; }
  const ProbeReport& report() const override { return report_; }

  core::Result<RunResult> run(const RunRequest& request) const override {
    const bool confined = mode_ == Mode::process;
    if (!confined && request.require_isolation) return isolation_required_error();
    const std::string run_id = random_id();
    const bool switch_user = confined && running_as_root();
    const Limits limits = run_limits(options_.limits, request);
    stdfs::path project;
    if (!request.project_dir.empty()) {
      auto checked = check_project_dir(options_, request.project_dir);
      if (!checked) return checked.error();
      project = std::move(*checked);
    }
    auto work = WorkDir::create(options_, switch_user, request.language, request.code);
    if (!work) return work.error();
    Fd input;
    if (!request.input.empty()) {
      auto in = make_memfd("edgecoder-stdin", request.input);
      if (!in) return in.error();
      input = std::move(*in);
    }
    std::optional<RunCgroup> cgroup;
    if (confined && cgroup_.available) {
      auto cg = RunCgroup::create(cgroup_.dir, "edgecoder-run-" + run_id,
                                  address_space_bytes(options_.limits, Language::python),
                                  static_cast<std::uint64_t>(options_.limits.max_processes) + 1);
      if (!cg) return cg.error();
      cgroup.emplace(std::move(*cg));
    }

    const std::string interpreter = interpreter_path(options_, request.language).string();
    ChildSpec spec;
    spec.path = interpreter;
    spec.argv = interpreter_argv(options_, request.language, interpreter, work->program());
    spec.env = program_env(work->path(), (work->path() / "tmp").string(), run_id);
    spec.stdin_fd = input.valid() ? input.get() : -1;
    spec.chdir = project.empty() ? work->path().string() : project.string();
    spec.supervise = true;
    if (confined) {
      if (switch_user) spec.switch_user = {{options_.uid, options_.gid}};
      spec.rlimits = program_rlimits(options_.limits, request.language, true);
      spec.seccomp = seccomp_;
      if (cgroup) spec.cgroup_procs = cgroup->procs_path();
    } else {
      spec.no_new_privs = false;
    }

    Control control;
    control.timeout = limits.wall_timeout;
    control.max_output_bytes = limits.max_output_bytes;
    auto outcome = run_child(spec, control);
    std::optional<RunCgroup::Events> events;
    if (cgroup) events = cgroup->finish();
    if (!outcome) return outcome.error();
    if (!outcome->setup_error.empty()) {
      return core::Error(Errc::unavailable, "sandbox_unavailable",
                         "cannot start " + interpreter + ": " + outcome->setup_error);
    }
    auto result = make_result(std::move(*outcome), limits, run_id, std::nullopt, events, false);
    if (switch_user && !project.empty()) {
      const std::string note = project_write_note(project, options_.uid, options_.gid);
      if (!note.empty()) result.error += (result.error.empty() ? "" : "; ") + note;
    }
    return result;
  }

 private:
  const Mode mode_;
  const Options options_;
  const ProbeReport report_;
  const std::vector<sock_filter> seccomp_;
  const CgroupChoice cgroup_;
};

}  // namespace process_detail

void check_process(const Options& options, ProbeReport& report) {
  const bool root = running_as_root();
  if (root && options.uid == 0) {
    report.problem = "SANDBOX_UID=0: programs would run as root";
    report.fix = "set SANDBOX_UID and SANDBOX_GID to an unprivileged account (default 65534)";
    return;
  }
  report.warnings.push_back(
      "SANDBOX_MODE=process gives WEAK isolation: the program sees the host's whole file system "
      "(whatever its uid may read), shares the PID and IPC namespaces, and is kept off the "
      "network only by a seccomp socket filter; use SANDBOX_MODE=bwrap wherever user "
      "namespaces are available");
  if (!root) {
    report.warnings.push_back(
        "SANDBOX_MODE=process without root: programs run as this agent's own uid " +
        std::to_string(::getuid()) +
        " and can read and change its files (the data directory and keys included) and "
        "signal it");
  }
}

std::unique_ptr<Sandbox> make_process_sandbox(const Options& options, ProbeReport report,
                                              std::vector<sock_filter> seccomp,
                                              CgroupChoice cgroup) {
  return std::make_unique<process_detail::HostSandbox>(Mode::process, options, std::move(report),
                                                       std::move(seccomp), std::move(cgroup));
}

std::unique_ptr<Sandbox> make_none_sandbox(const Options& options, ProbeReport report) {
  return std::make_unique<process_detail::HostSandbox>(Mode::none, options, std::move(report),
                                                       std::vector<sock_filter>{}, CgroupChoice{});
}

}  // namespace edgecoder::sandbox::detail

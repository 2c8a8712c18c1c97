// The bwrap backend: one bubblewrap invocation per run. See sandbox.h and docs/sandbox.md.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <fstream>
#include <sstream>

#include "sandbox/backends.h"

namespace edgecoder::sandbox::detail {
namespace bwrap_detail {

namespace stdfs = std::filesystem;
using core::Errc;
using core::make_error;

// Descriptor numbers inside bwrap (ChildSpec::extra_fds order, starting at 3).
constexpr int kSeccompFd = 3;
constexpr int kProgramFd = 4;
constexpr int kPasswdFd = 5;
constexpr int kGroupFd = 6;
constexpr int kHostsFd = 7;
constexpr int kStatusFd = 8;
constexpr int kInfoFd = 9;    // bwrap announces the sandbox's first process (its host pid) here
constexpr int kBlockFd = 10;  // ... which then waits here until its limits are set

// Where RunRequest::project_dir appears inside the sandbox.
constexpr const char* kProjectMount = "/project";

// The root-level system directories a runtime may need. On a merged-/usr system the others are
// symlinks into /usr and are recreated as symlinks.
constexpr std::array<const char*, 6> kTopLevel = {"/bin",   "/sbin",  "/lib",
                                                  "/lib32", "/lib64", "/libx32"};

// Files under /etc a runtime reads; nothing else of /etc (passwd, group and hosts are
// synthesised, shadow and the rest never appear).
constexpr std::array<const char*, 5> kEtcFiles = {"/etc/ld.so.cache", "/etc/ld.so.conf",
                                                  "/etc/ld.so.conf.d", "/etc/localtime",
                                                  "/etc/alternatives"};

bool is_dir(const stdfs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular(const stdfs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_symlink(const stdfs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

// True when `inner` is `outer` or lies below it (both lexically normal absolute paths).
bool within(const stdfs::path& inner, const stdfs::path& outer) {
  const auto rel = inner.lexically_normal().lexically_relative(outer.lexically_normal());
  return !rel.empty() && *rel.begin() != "..";
}

// The host directories visible (read-only) in the sandbox.
std::vector<stdfs::path> visible_roots(const Options& options) {
  std::vector<stdfs::path> out = {"/usr"};
  for (const char* top : kTopLevel) {
    if (is_dir(top)) out.emplace_back(top);
  }
  for (const auto& extra : options.extra_ro_binds) out.push_back(extra);
  return out;
}

// `project`: the checked real path of RunRequest::project_dir, or empty.
std::vector<std::string> bwrap_argv(const Options& options, Language language, uid_t uid, gid_t gid,
                                    const stdfs::path& project) {
  const Limits& l = options.limits;
  const std::string tmpfs_bytes = std::to_string(l.work_dir_mb * 1024 * 1024);
  std::vector<std::string> a = {options.bwrap.string(),
                                "--unshare-all",
                                "--unshare-user",
                                "--disable-userns",
                                "--die-with-parent",
                                "--new-session",
                                "--uid",
                                std::to_string(uid),
                                "--gid",
                                std::to_string(gid),
                                "--hostname",
                                "edgecoder-sandbox",
                                "--ro-bind",
                                "/usr",
                                "/usr"};
  for (const char* top : kTopLevel) {
    if (is_symlink(top)) {
      std::error_code ec;
      const auto target = stdfs::read_symlink(top, ec);
      if (!ec) a.insert(a.end(), {"--symlink", target.string(), top});
    } else if (is_dir(top)) {
      a.insert(a.end(), {"--ro-bind", top, top});
    }
  }
  for (const char* etc : kEtcFiles) a.insert(a.end(), {"--ro-bind-try", etc, etc});
  a.insert(a.end(), {"--ro-bind-data", std::to_string(kPasswdFd), "/etc/passwd", "--ro-bind-data",
                     std::to_string(kGroupFd), "/etc/group", "--ro-bind-data",
                     std::to_string(kHostsFd), "/etc/hosts"});
  for (const auto& extra : options.extra_ro_binds) {
    a.insert(a.end(), {"--ro-bind", extra.string(), extra.string()});
  }
  // Every writable place is a size-limited tmpfs. bwrap's /dev is a tmpfs of its own (up to
  // half the host's RAM), so it becomes read-only once /dev/shm is mounted in it.
  a.insert(a.end(), {"--proc", "/proc", "--dev", "/dev"});
  a.insert(a.end(), {"--size", tmpfs_bytes, "--tmpfs", "/dev/shm", "--remount-ro", "/dev"});
  a.insert(a.end(), {"--size", tmpfs_bytes, "--tmpfs", "/tmp"});
  a.insert(a.end(), {"--size", tmpfs_bytes, "--tmpfs", "/work"});
  a.insert(a.end(), {"--perms", "0644", "--file", std::to_string(kProgramFd),
                     "/work/" + program_file_name(language)});
  if (project.empty()) {
    a.insert(a.end(), {"--chdir", "/work"});
  } else {
    a.insert(a.end(), {"--bind", project.string(), kProjectMount});
    // The host's git runs hooks and config from .git (the IDE's git tools, the developer's
    // shell): a sandboxed run must not be able to plant them there.
    const stdfs::path git = project / ".git";
    if (is_dir(git) || is_regular(git)) {
      a.insert(a.end(), {"--ro-bind", git.string(), std::string(kProjectMount) + "/.git"});
    }
    a.insert(a.end(), {"--chdir", kProjectMount});
  }
  a.insert(a.end(), {"--seccomp", std::to_string(kSeccompFd), "--json-status-fd",
                     std::to_string(kStatusFd), "--info-fd", std::to_string(kInfoFd), "--block-fd",
                     std::to_string(kBlockFd), "--remount-ro", "/", "--"});
  const std::string interpreter = interpreter_path(options, language).string();
  for (auto& arg :
       interpreter_argv(options, language, interpreter, "/work/" + program_file_name(language))) {
    a.push_back(std::move(arg));
  }
  return a;
}

// The program's exit code from bwrap's --json-status-fd output ({ "exit-code": N }), written
// only when the command actually ran.
std::optional<int> status_exit_code(int fd) {
  std::string text;
  char buf[4096];
  off_t off = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    off += n;
  }
  const auto key = text.find("\"exit-code\"");
  if (key == std::string::npos) return std::nullopt;
  const auto colon = text.find(':', key);
  if (colon == std::string::npos) return std::nullopt;
  return std::atoi(text.c_str() + colon + 1);
}

std::string bwrap_messages(const std::string& err) {
  std::string out;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("bwrap:", 0) == 0) out += (out.empty() ? "" : "; ") + line;
  }
  if (out.empty()) out = err.substr(0, 400);
  return out;
}

class BwrapSandbox final : public Sandbox {
 public:
  BwrapSandbox(Options options, ProbeReport report, std::vector<sock_filter> seccomp,
               CgroupChoice cgroup)
      : options_(std::move(options)),
        report_(std::move(report)),
        seccomp_(std::move(seccomp)),
        cgroup_(std::move(cgroup)) {}

  Mode mode() const override { return Mode::bwrap; }
  const ProbeReport& report() const override { return report_; }

  core::Result<RunResult> run(const RunRequest& request) const override {
    const std::string run_id = random_id();
    const bool root = running_as_root();
    const uid_t uid = options_.uid;
    const gid_t gid = options_.gid;
    const Limits limits = run_limits(options_.limits, request);
    stdfs::path project;
    if (!request.project_dir.empty()) {
      auto checked = check_project_dir(options_, request.project_dir);
      if (!checked) return checked.error();
      project = std::move(*checked);
    }
    auto seccomp = make_memfd("edgecoder-seccomp",
                              std::string_view(reinterpret_cast<const char*>(seccomp_.data()),
                                               seccomp_.size() * sizeof(sock_filter)));
    auto program = make_memfd("edgecoder-program", request.code);
    auto passwd = make_memfd("edgecoder-passwd", "sandbox:x:" + std::to_string(uid) + ":" +
                                                     std::to_string(gid) +
                                                     ":EdgeCoder sandbox:/work:/bin/false\n");
    auto group = make_memfd("edgecoder-group", "sandbox:x:" + std::to_string(gid) + ":\n");
    auto hosts = make_memfd("edgecoder-hosts", "127.0.0.1 localhost\n::1 localhost\n");
    auto status = make_memfd("edgecoder-status", "");
    for (const auto* fd : {&seccomp, &program, &passwd, &group, &hosts, &status}) {
      if (!*fd) return fd->error();
    }
    int info_pipe[2];
    if (::pipe2(info_pipe, O_CLOEXEC) != 0)
      return make_error(Errc::internal, std::string("pipe: ") + std::strerror(errno));
    Fd info_w(info_pipe[1]);
    int block_pipe[2];
    if (::pipe2(block_pipe, O_CLOEXEC) != 0)
      return make_error(Errc::internal, std::string("pipe: ") + std::strerror(errno));
    Fd block_r(block_pipe[0]);
    StartGate gate;
    gate.info = Fd(info_pipe[0]);
    gate.release = Fd(block_pipe[1]);
    // RLIMIT_NPROC counts processes (and threads) per uid in each user namespace up to the
    // host's, checked at every level against the limit its creator had. Set on bwrap it would
    // count every process of the host uid, so concurrent runs (and, without root, the agent's
    // own threads) would share one budget and one run's fork bomb would starve the others.
    // Set on the sandbox's first process, after bwrap created its user namespace and before
    // anything runs in it, it counts this run's namespace only.
    gate.rlimits = {{RLIMIT_NPROC, static_cast<std::uint64_t>(options_.limits.max_processes)}};
    Fd input;
    if (!request.input.empty()) {
      auto in = make_memfd("edgecoder-stdin", request.input);
      if (!in) return in.error();
      input = std::move(*in);
    }

    std::optional<RunCgroup> cgroup;
    if (cgroup_.available) {
      // bwrap's own two processes live in the cgroup too.
      auto cg = RunCgroup::create(cgroup_.dir, "edgecoder-run-" + run_id,
                                  address_space_bytes(options_.limits, Language::python),
                                  static_cast<std::uint64_t>(options_.limits.max_processes) + 2);
      if (!cg) return cg.error();
      cgroup.emplace(std::move(*cg));
    }

    ChildSpec spec;
    spec.path = options_.bwrap.string();
    spec.argv = bwrap_argv(options_, request.language, uid, gid, project);
    spec.env = program_env("/work", "/tmp", run_id);
    spec.stdin_fd = input.valid() ? input.get() : -1;
    spec.extra_fds = {seccomp->get(), program->get(), passwd->get(), group->get(),
                      hosts->get(),   status->get(),  info_w.get(),  block_r.get()};
    // As root, bwrap itself runs as the unprivileged uid: inside its user namespace the program
    // is then that uid on the host too, not root with a different name.
    if (root) spec.switch_user = {{uid, gid}};
    gate.ids = spec.switch_user;
    // RLIMIT_NPROC goes through the start gate (above).
    spec.rlimits = program_rlimits(options_.limits, request.language, false);
    if (cgroup) spec.cgroup_procs = cgroup->procs_path();

    Control control;
    control.timeout = limits.wall_timeout;
    control.max_output_bytes = limits.max_output_bytes;
    auto outcome = run_child(spec, control, &gate);
    std::optional<RunCgroup::Events> events;
    if (cgroup) events = cgroup->finish();
    if (!outcome) return outcome.error();
    if (!outcome->setup_error.empty()) {
      return core::Error(
          Errc::unavailable, "sandbox_unavailable",
          "cannot start bwrap (" + options_.bwrap.string() + "): " + outcome->setup_error);
    }
    auto code = status_exit_code(status->get());
    if (!code && !outcome->timed_out) {
      if (events && events->oom_kills > 0) {
        code = 128 + SIGKILL;
      } else {
        return core::Error(
            Errc::unavailable, "sandbox_unavailable",
            "bwrap could not set up the sandbox: " + bwrap_messages(outcome->err.text));
      }
    }
    auto result = make_result(std::move(*outcome), limits, run_id, code, events, true);
    if (root && !project.empty()) {
      const std::string note = project_write_note(project, uid, gid);
      if (!note.empty()) result.error += (result.error.empty() ? "" : "; ") + note;
    }
    return result;
  }

 private:
  const Options options_;
  const ProbeReport report_;
  const std::vector<sock_filter> seccomp_;
  const CgroupChoice cgroup_;
};

std::string read_sysctl(const char* path) {
  std::ifstream in(path);
  std::string v;
  in >> v;
  return v;
}

}  // namespace bwrap_detail

namespace bwrap_detail {

// Never exposed, not even partly: binding one of these, a parent of one, or anything inside one
// is refused (project directories may lie inside /home and /root, see check_project_dir).
std::vector<stdfs::path> secret_paths(const Options& options) {
  std::vector<stdfs::path> secret = {"/root",
                                     "/home",
                                     "/etc/shadow",
                                     "/etc/gshadow",
                                     "/etc/edgecoder",
                                     "/var/lib/edgecoder",
                                     "/run/credentials",
                                     "/proc",
                                     "/sys"};
  for (const auto& p : options.protected_paths) secret.push_back(p);
  if (const char* creds = std::getenv("CREDENTIALS_DIRECTORY")) secret.emplace_back(creds);
  if (const char* home = std::getenv("HOME")) {
    if (home[0] == '/' && home[1] != '\0') secret.emplace_back(home);
  }
  return secret;
}

// The real path of `p` when it exists, else `p` itself, lexically normal.
stdfs::path real_or_lexical(const stdfs::path& p) {
  std::error_code ec;
  auto real = stdfs::canonical(p, ec);
  return ec ? p.lexically_normal() : real;
}

}  // namespace bwrap_detail

core::Result<void> check_extra_binds(const Options& options) {
  using namespace bwrap_detail;
  const std::vector<stdfs::path> secret = secret_paths(options);
  for (const auto& bind : options.extra_ro_binds) {
    if (!bind.is_absolute()) {
      return make_error(Errc::invalid_argument,
                        "SANDBOX_EXTRA_RO_BINDS: '" + bind.string() + "' is not absolute");
    }
    for (const auto& s : secret) {
      if (within(s, bind) || within(bind, s)) {
        return make_error(Errc::invalid_argument, "SANDBOX_EXTRA_RO_BINDS: '" + bind.string() +
                                                      "' would expose " + s.string());
      }
    }
    if (within("/etc", bind)) {
      return make_error(Errc::invalid_argument,
                        "SANDBOX_EXTRA_RO_BINDS: '" + bind.string() + "' would expose all of /etc");
    }
  }
  return {};
}

core::Result<std::filesystem::path> check_project_dir(const Options& options,
                                                      const std::filesystem::path& dir) {
  using namespace bwrap_detail;
  if (!dir.is_absolute()) {
    return make_error(Errc::invalid_argument,
                      "project directory '" + dir.string() + "' is not an absolute path");
  }
  std::error_code ec;
  const stdfs::path real = stdfs::canonical(dir, ec);
  if (ec || !stdfs::is_directory(real, ec)) {
    return make_error(Errc::invalid_argument,
                      "project directory '" + dir.string() + "' is not an existing directory");
  }
  auto refuse = [&](const std::string& why) -> core::Error {
    return core::Error(Errc::permission_denied, "project_dir_refused",
                       "project directory '" + dir.string() + "' " + why);
  };
  // The directory may lie inside /home or /root (that is where projects live) but may never
  // be one of these or a parent of one.
  std::vector<stdfs::path> never_exposed = secret_paths(options);
  never_exposed.insert(never_exposed.end(), {"/etc", "/usr", "/var", "/boot", "/dev", "/run"});
  for (const auto& s : never_exposed) {
    for (const auto& candidate : {s.lexically_normal(), real_or_lexical(s)}) {
      if (within(candidate, real)) return refuse("would expose " + s.string());
    }
  }
  // ... and never lie inside one of these.
  std::vector<stdfs::path> never_inside = {
      "/etc", "/proc", "/sys",  "/dev", "/boot", "/run/credentials", "/var/lib/edgecoder",
      "/usr", "/bin",  "/sbin", "/lib", "/lib64"};
  for (const auto& p : options.protected_paths) never_inside.push_back(p);
  if (const char* creds = std::getenv("CREDENTIALS_DIRECTORY")) never_inside.emplace_back(creds);
  for (const auto& p : never_inside) {
    for (const auto& candidate : {p.lexically_normal(), real_or_lexical(p)}) {
      if (within(real, candidate)) return refuse("lies inside " + p.string());
    }
  }
  return real;
}

std::string project_write_note(const std::filesystem::path& dir, uid_t uid, gid_t gid) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return {};
  const bool writable = (st.st_uid == uid && (st.st_mode & S_IWUSR) != 0) ||
                        (st.st_gid == gid && (st.st_mode & S_IWGRP) != 0) ||
                        (st.st_mode & S_IWOTH) != 0;
  if (writable) return {};
  return "the program ran as uid " + std::to_string(uid) +
         ", which cannot write to the project directory " + dir.string() + " (owned by uid " +
         std::to_string(st.st_uid) +
         "); run the service as the project's owner or set SANDBOX_UID/SANDBOX_GID to it";
}

void check_bwrap(const Options& options, ProbeReport& report) {
  using namespace bwrap_detail;
  if (::access(options.bwrap.c_str(), X_OK) != 0) {
    report.problem = "bubblewrap is not installed at " + options.bwrap.string();
    report.fix = "apt-get install bubblewrap, or point SANDBOX_BWRAP at it";
    return;
  }
  if (running_as_root() && options.uid == 0) {
    report.problem = "SANDBOX_UID=0: programs would run as root";
    report.fix = "set SANDBOX_UID and SANDBOX_GID to an unprivileged account (default 65534)";
    return;
  }
  if (read_sysctl("/proc/sys/user/max_user_namespaces") == "0") {
    report.problem = "user namespaces are disabled (user.max_user_namespaces=0)";
    report.fix = "sysctl -w user.max_user_namespaces=15000, or SANDBOX_MODE=docker";
    return;
  }
  if (read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == "0") {
    report.problem =
        "unprivileged user namespaces are disabled "
        "(kernel.unprivileged_userns_clone=0)";
    report.fix = "sysctl -w kernel.unprivileged_userns_clone=1, or SANDBOX_MODE=docker";
    return;
  }
  if (auto binds = check_extra_binds(options); !binds) {
    report.problem = binds.error().detail;
    report.fix = "remove that directory from SANDBOX_EXTRA_RO_BINDS";
    return;
  }
  const auto roots = visible_roots(options);
  for (const auto& [language, path] : {std::pair{Language::python, options.python},
                                       std::pair{Language::javascript, options.node}}) {
    std::error_code ec;
    const auto real = stdfs::canonical(path, ec);
    if (ec) continue;  // probe() reports a missing interpreter

    bool visible = false;
    for (const auto& r : roots) visible = visible || within(real, r);
    if (!visible) {
      report.warnings.push_back(std::string(language_name(language)) + ": interpreter " +
                                real.string() +
                                " lies outside the directories bound into the sandbox; add its "
                                "installation directory to SANDBOX_EXTRA_RO_BINDS");
    }
  }
}

std::unique_ptr<Sandbox> make_bwrap_sandbox(const Options& options, ProbeReport report,
                                            std::vector<sock_filter> seccomp, CgroupChoice cgroup) {
  return std::make_unique<bwrap_detail::BwrapSandbox>(options, std::move(report),
                                                      std::move(seccomp), std::move(cgroup));
}

}  // namespace edgecoder::sandbox::detail

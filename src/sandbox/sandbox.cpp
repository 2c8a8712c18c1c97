#include "sandbox/sandbox.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <sstream>

#include "core/log.h"
#include "sandbox/backends.h"
#include "sandbox/cgroup.h"
#include "sandbox/seccomp_policy.h"

namespace edgecoder::sandbox {
namespace sandbox_detail {

namespace stdfs = std::filesystem;
using core::Errc;
using core::make_error;

constexpr std::uint64_t kMiB = 1024 * 1024;

// An integer setting; an unset setting keeps `value` (the struct's default, which the settings
// table documents).
template <typename T>
core::Result<void> int_setting(const core::Settings& settings, std::string_view name, T& value,
                               std::int64_t min, std::int64_t max) {
  if (!settings.has(name)) return {};
  auto v = settings.get_int(name, min, max);
  if (!v) return v.error();
  value = static_cast<T>(*v);
  return {};
}

core::Result<void> path_setting(const core::Settings& settings, std::string_view name,
                                stdfs::path& value) {
  if (!settings.has(name)) return {};
  const std::string v = *settings.get(name);
  if (v.empty() || v.front() != '/') {
    return make_error(Errc::invalid_argument,
                      std::string(name) + ": expected an absolute path, got '" + v + "'");
  }
  value = v;
  return {};
}

bool valid_cpus(const std::string& text) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && end == text.data() + text.size() && v > 0 && v <= 1024;
}

std::string trial_code(Language language) {
  return language == Language::python ? "print('edgecoder-probe')\n"
                                      : "console.log('edgecoder-probe')\n";
}

std::string first_lines(const std::string& text, std::size_t max_chars = 400) {
  std::string out = text.substr(0, max_chars);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

std::string fix_for(Mode mode) {
  switch (mode) {
    case Mode::bwrap:
      return "install bubblewrap (apt-get install bubblewrap) and allow unprivileged user "
             "namespaces (sysctl user.max_user_namespaces > 0; Debian: "
             "kernel.unprivileged_userns_clone=1; Ubuntu 23.10+: an AppArmor profile for bwrap "
             "or kernel.apparmor_restrict_unprivileged_userns=0; in a container: "
             "--security-opt seccomp=unconfined or a runtime that allows nested user "
             "namespaces); or choose another sandbox with SANDBOX_MODE=docker (Docker engine) "
             "or SANDBOX_MODE=process (weak isolation)";
    case Mode::process:
      return "set SANDBOX_PYTHON/SANDBOX_NODE to working interpreters; as root, set SANDBOX_UID "
             "and SANDBOX_GID to an unprivileged account";
    case Mode::docker:
      return "start the Docker engine and give this user access to it (docker group), pull "
             "the images named by SANDBOX_DOCKER_PYTHON_IMAGE and SANDBOX_DOCKER_NODE_IMAGE, or "
             "choose SANDBOX_MODE=bwrap";
    case Mode::none:
      return "";
  }
  return "";
}

// Builds the backend for a report (ready or not: probe() uses it for the trial runs).
core::Result<std::unique_ptr<Sandbox>> build(const Options& options, const ProbeReport& report,
                                             detail::CgroupChoice cgroup) {
  switch (options.mode) {
    case Mode::bwrap:
    case Mode::process: {
      auto filter = detail::build_seccomp_filter(
          detail::SeccompPolicy{.deny_inet = options.mode == Mode::process});
      if (!filter) return filter.error();
      if (options.mode == Mode::bwrap) {
        return detail::make_bwrap_sandbox(options, report, std::move(*filter), std::move(cgroup));
      }
      return detail::make_process_sandbox(options, report, std::move(*filter), std::move(cgroup));
    }
    case Mode::docker:
      return detail::make_docker_sandbox(options, report);
    case Mode::none:
      return detail::make_none_sandbox(options, report);
  }
  return make_error(Errc::internal, "unknown sandbox mode");
}

}  // namespace sandbox_detail

std::string_view mode_name(Mode mode) {
  switch (mode) {
    case Mode::bwrap:
      return "bwrap";
    case Mode::process:
      return "process";
    case Mode::docker:
      return "docker";
    case Mode::none:
      return "none";
  }
  return "unknown";
}

core::Result<Mode> parse_mode(std::string_view name) {
  for (Mode m : {Mode::bwrap, Mode::process, Mode::docker, Mode::none}) {
    if (name == mode_name(m)) return m;
  }
  return core::make_error(
      core::Errc::invalid_argument,
      "SANDBOX_MODE: expected bwrap, process, docker or none, got '" + std::string(name) + "'");
}

std::string_view language_name(Language language) {
  switch (language) {
    case Language::python:
      return "python";
    case Language::javascript:
      return "javascript";
    case Language::shell:
      return "shell";
  }
  return "unknown";
}

core::Result<Language> parse_language(std::string_view name) {
  if (name == "python" || name == "python3" || name == "py") return Language::python;
  if (name == "javascript" || name == "js" || name == "node") return Language::javascript;
  if (name == "shell" || name == "sh") return Language::shell;
  return core::make_error(
      core::Errc::invalid_argument,
      "language: expected python, javascript or shell, got '" + std::string(name) + "'");
}

core::Result<Options> options_from_settings(const core::Settings& settings,
                                            const std::filesystem::path& data_dir) {
  using namespace sandbox_detail;
  Options o;
  if (settings.has("SANDBOX_MODE")) {
    auto mode = parse_mode(*settings.get("SANDBOX_MODE"));
    if (!mode) return mode.error();
    o.mode = *mode;
  }
  Limits& l = o.limits;
  std::int64_t timeout_ms = l.wall_timeout.count();
  for (auto r : {
           int_setting(settings, "SANDBOX_TIMEOUT_MS", timeout_ms, 100, 3'600'000),
           int_setting(settings, "SANDBOX_CPU_SECONDS", l.cpu_seconds, 1, 3600),
           int_setting(settings, "SANDBOX_MEMORY_MB", l.memory_mb, 32, 1 << 20),
           int_setting(settings, "SANDBOX_NODE_VM_RESERVE_MB", l.node_vm_reserve_mb, 0, 1 << 20),
           int_setting(settings, "SANDBOX_MAX_PROCESSES", l.max_processes, 1, 100'000),
           int_setting(settings, "SANDBOX_MAX_FILE_MB", l.max_file_mb, 1, 1 << 20),
           int_setting(settings, "SANDBOX_WORK_DIR_MB", l.work_dir_mb, 1, 1 << 20),
           int_setting(settings, "SANDBOX_MAX_OPEN_FILES", l.max_open_files, 32, 1 << 20),
           int_setting(settings, "SANDBOX_MAX_OUTPUT_BYTES", l.max_output_bytes, 1024, 1 << 30),
           int_setting(settings, "SANDBOX_UID", o.uid, 1, 4'294'967'294),
           int_setting(settings, "SANDBOX_GID", o.gid, 1, 4'294'967'294),
           path_setting(settings, "SANDBOX_PYTHON", o.python),
           path_setting(settings, "SANDBOX_NODE", o.node),
           path_setting(settings, "SANDBOX_BWRAP", o.bwrap),
           path_setting(settings, "SANDBOX_WORK_ROOT", o.work_root),
       }) {
    if (!r) return r.error();
  }
  l.wall_timeout = std::chrono::milliseconds(timeout_ms);
  if (settings.has("SANDBOX_EXTRA_RO_BINDS")) {
    std::istringstream in(*settings.get("SANDBOX_EXTRA_RO_BINDS"));
    for (std::string item; std::getline(in, item, ':');) {
      if (item.empty()) continue;
      if (item.front() != '/') {
        return make_error(Errc::invalid_argument,
                          "SANDBOX_EXTRA_RO_BINDS: expected absolute paths separated by ':', "
                          "got '" +
                              item + "'");
      }
      o.extra_ro_binds.emplace_back(item);
    }
  }
  o.cgroup = settings.get_or("SANDBOX_CGROUP", o.cgroup);
  if (o.cgroup != "auto" && o.cgroup != "off" && o.cgroup.front() != '/') {
    return make_error(Errc::invalid_argument,
                      "SANDBOX_CGROUP: expected auto, off or an absolute cgroup v2 directory, "
                      "got '" +
                          o.cgroup + "'");
  }
  o.docker = settings.get_or("SANDBOX_DOCKER", o.docker);
  o.docker_python_image = settings.get_or("SANDBOX_DOCKER_PYTHON_IMAGE", o.docker_python_image);
  o.docker_node_image = settings.get_or("SANDBOX_DOCKER_NODE_IMAGE", o.docker_node_image);
  o.docker_cpus = settings.get_or("SANDBOX_DOCKER_CPUS", o.docker_cpus);
  if (!valid_cpus(o.docker_cpus)) {
    return make_error(Errc::invalid_argument,
                      "SANDBOX_DOCKER_CPUS: expected a number of CPUs such as 1 or 0.5, got '" +
                          o.docker_cpus + "'");
  }
  if (!data_dir.empty()) o.protected_paths.push_back(data_dir);
  if (auto r = detail::check_extra_binds(o); !r) return r.error();
  return o;
}

ProbeReport probe(const Options& options) {
  using namespace sandbox_detail;
  ProbeReport report;
  report.mode = options.mode;
  switch (options.mode) {
    case Mode::bwrap:
      detail::check_bwrap(options, report);
      break;
    case Mode::process:
      detail::check_process(options, report);
      break;
    case Mode::docker:
      detail::check_docker(options, report);
      break;
    case Mode::none:
      report.warnings.push_back(
          "SANDBOX_MODE=none: generated code runs with no isolation at all, as this user, with "
          "its files, network and secrets; work that requires a sandbox is refused");
      break;
  }
  if (options.mode == Mode::bwrap || options.mode == Mode::process) {
    const auto cg = detail::detect_cgroup(options.cgroup);
    report.cgroup = cg.detail;
    if (!cg.available) {
      if (options.cgroup != "auto" && options.cgroup != "off" && report.problem.empty()) {
        report.problem = "SANDBOX_CGROUP=" + options.cgroup + " cannot be used: " + cg.detail;
        report.fix = "set SANDBOX_CGROUP=auto, or delegate that cgroup v2 directory to this user";
      } else if (options.cgroup != "off") {
        report.warnings.push_back(
            "no cgroup v2 limits (" + cg.detail +
            "): memory is bounded by RLIMIT_AS and processes by RLIMIT_NPROC only; run the "
            "agent under systemd with Delegate=yes for per-run memory and pids limits");
      }
    }
  } else {
    report.cgroup =
        options.mode == Mode::docker ? "docker enforces --memory and --pids-limit" : "none";
  }
  if (!report.problem.empty()) return report;

  // Trial runs: the only reliable test that namespaces, mounts and interpreters work here.
  auto sandbox = build(options, report, detail::CgroupChoice{});
  if (!sandbox) {
    report.problem = sandbox.error().detail;
    report.fix = fix_for(options.mode);
    return report;
  }
  std::string failures;
  for (Language language : {Language::python, Language::javascript}) {
    const auto& interpreter = language == Language::python ? options.python : options.node;
    if (options.mode != Mode::docker && ::access(interpreter.c_str(), X_OK) != 0) {
      const std::string why = std::string(language_name(language)) + ": interpreter " +
                              interpreter.string() + " not found (set SANDBOX_" +
                              (language == Language::python ? "PYTHON" : "NODE") + ")";
      report.warnings.push_back(why);
      failures += (failures.empty() ? "" : "; ") + why;
      continue;
    }
    RunRequest request;
    request.language = language;
    request.code = trial_code(language);
    request.require_isolation = false;
    auto result = (*sandbox)->run(request);
    if (!result) {
      report.problem = std::string(mode_name(options.mode)) +
                       " sandbox cannot start a program: " + result.error().detail;
      report.fix = fix_for(options.mode);
      return report;
    }
    if (result->ok() && result->stdout_text == "edgecoder-probe\n") {
      report.languages.push_back(language);
    } else {
      const std::string why = std::string(language_name(language)) + " trial run failed (exit " +
                              std::to_string(result->exit_code) +
                              "): " + first_lines(result->stderr_text + " " + result->error);
      report.warnings.push_back(why);
      failures += (failures.empty() ? "" : "; ") + why;
    }
  }
  if (report.languages.empty()) {
    report.problem =
        "no language runs in the " + std::string(mode_name(options.mode)) + " sandbox: " + failures;
    report.fix = options.mode == Mode::docker
                     ? fix_for(Mode::docker)
                     : "check SANDBOX_PYTHON and SANDBOX_NODE (interpreters must lie under /usr "
                       "or a directory listed in SANDBOX_EXTRA_RO_BINDS) and the limits "
                       "(SANDBOX_MEMORY_MB, SANDBOX_MAX_OPEN_FILES)";
    return report;
  }
  report.ready = true;
  report.isolated = options.mode == Mode::bwrap || options.mode == Mode::docker;
  report.tenant_work_allowed = options.mode != Mode::none;
  return report;
}

core::Result<std::unique_ptr<Sandbox>> make_sandbox(const Options& options) {
  return make_sandbox(options, probe(options));
}

core::Result<std::unique_ptr<Sandbox>> make_sandbox(const Options& options,
                                                    const ProbeReport& probed) {
  using namespace sandbox_detail;
  if (!probed.ready) {
    std::string detail = "SANDBOX_MODE=" + std::string(mode_name(options.mode)) +
                         " cannot be set up: " + probed.problem;
    if (!probed.fix.empty()) detail += ". Fix: " + probed.fix;
    return core::Error(Errc::unavailable, "sandbox_unavailable", detail);
  }
  ProbeReport report = probed;
  detail::CgroupChoice cgroup;
  if (options.mode == Mode::bwrap || options.mode == Mode::process) {
    const auto found = detail::detect_cgroup(options.cgroup);
    if (found.available) {
      if (auto prepared = detail::prepare_cgroup(found); prepared) {
        cgroup.available = true;
        cgroup.dir = found.dir;
        cgroup.detail = found.detail;
      } else if (options.cgroup != "auto") {
        return core::Error(
            Errc::unavailable, "sandbox_unavailable",
            "SANDBOX_CGROUP=" + options.cgroup + " cannot be used: " + prepared.error().detail);
      } else {
        report.cgroup = "not usable: " + prepared.error().detail;
        report.warnings.push_back("no cgroup v2 limits: " + prepared.error().detail);
      }
    }
  }
  auto sandbox = build(options, report, std::move(cgroup));
  if (!sandbox) return sandbox.error();
  std::string languages;
  for (Language l : report.languages) {
    languages += (languages.empty() ? "" : ",") + std::string(language_name(l));
  }
  core::log::info("sandbox", "ready",
                  {{"mode", mode_name(options.mode)},
                   {"languages", languages},
                   {"isolated", report.isolated},
                   {"cgroup", report.cgroup}});
  for (const auto& w : report.warnings) {
    core::log::warn("sandbox", options.mode == Mode::process ? "weak_isolation" : "warning",
                    {{"mode", mode_name(options.mode)}, {"detail", w}});
  }
  return sandbox;
}

namespace detail {

std::string program_file_name(Language language) {
  switch (language) {
    case Language::python:
      return "main.py";
    case Language::javascript:
      return "main.js";
    case Language::shell:
      return "main.sh";
  }
  return "main";
}

const std::filesystem::path& interpreter_path(const Options& options, Language language) {
  switch (language) {
    case Language::python:
      return options.python;
    case Language::javascript:
      return options.node;
    case Language::shell:
      return options.shell;
  }
  return options.python;
}

Limits run_limits(const Limits& limits, const RunRequest& request) {
  Limits out = limits;
  if (request.wall_timeout && request.wall_timeout->count() > 0) {
    out.wall_timeout = *request.wall_timeout;
  }
  return out;
}

std::vector<std::string> interpreter_argv(const Options& options, Language language,
                                          const std::string& interpreter,
                                          const std::string& script) {
  if (language == Language::python) {
    // -I: ignore PYTHON* variables and the user site directory; -B: write no .pyc files.
    return {interpreter, "-I", "-B", script};
  }
  if (language == Language::shell) return {interpreter, script};
  // A JS heap bounded by the memory limit fails with a clear "heap out of memory" before the
  // address-space limit makes V8 abort somewhere less clear.
  return {interpreter, "--max-old-space-size=" + std::to_string(options.limits.memory_mb), script};
}

std::vector<std::string> program_env(const std::string& home, const std::string& tmp,
                                     const std::string& run_id) {
  return {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "TMPDIR=" + tmp, "LANG=C.UTF-8",
          "USER=sandbox", "LOGNAME=sandbox", "PYTHONDONTWRITEBYTECODE=1",
          // glibc reserves 64 MiB of address space per malloc arena (one per thread by default);
          // under RLIMIT_AS a threaded program would run out of address space, not memory.
          "MALLOC_ARENA_MAX=2", "EDGECODER_SANDBOX_RUN=" + run_id};
}

std::uint64_t address_space_bytes(const Limits& limits, Language language) {
  std::uint64_t mb = limits.memory_mb;
  if (language != Language::python) mb += limits.node_vm_reserve_mb;
  return mb * sandbox_detail::kMiB;
}

std::vector<std::pair<int, std::uint64_t>> program_rlimits(const Limits& limits, Language language,
                                                           bool with_nproc) {
  std::vector<std::pair<int, std::uint64_t>> out = {
      {RLIMIT_AS, address_space_bytes(limits, language)},
      {RLIMIT_CPU, static_cast<std::uint64_t>(limits.cpu_seconds)},
      {RLIMIT_FSIZE, limits.max_file_mb * sandbox_detail::kMiB},
      {RLIMIT_NOFILE, static_cast<std::uint64_t>(limits.max_open_files)},
      {RLIMIT_CORE, 0},
  };
  if (with_nproc) {
    out.emplace_back(RLIMIT_NPROC, static_cast<std::uint64_t>(limits.max_processes));
  }
  return out;
}

bool running_as_root() { return ::geteuid() == 0; }

core::Error isolation_required_error() {
  return core::Error(core::Errc::permission_denied, "sandbox_required",
                     "SANDBOX_MODE=none runs code without isolation and refuses work that "
                     "requires a sandbox; set SANDBOX_MODE=bwrap (or docker)");
}

RunResult make_result(Outcome outcome, const Limits& limits, const std::string& run_id,
                      std::optional<int> exit_code_override,
                      std::optional<RunCgroup::Events> events, bool network_isolated) {
  RunResult r;
  r.run_id = run_id;
  r.timed_out = outcome.timed_out;
  r.duration_ms = outcome.duration_ms;
  r.cpu_ms = outcome.cpu_ms;
  r.stdout_truncated = outcome.out.truncated;
  r.stderr_truncated = outcome.err.truncated;
  const std::uint64_t out_dropped = outcome.out.dropped;
  const std::uint64_t err_dropped = outcome.err.dropped;
  r.stdout_text = finish_captured(std::move(outcome.out), "stdout", limits.max_output_bytes);
  r.stderr_text = finish_captured(std::move(outcome.err), "stderr", limits.max_output_bytes);
  if (exit_code_override) {
    r.exit_code = *exit_code_override;
    // bwrap and docker report a signal as 128+n.
    if (r.exit_code > 128 && r.exit_code < 128 + NSIG) r.signal = r.exit_code - 128;
  } else if (outcome.wait_status) {
    const int st = *outcome.wait_status;
    if (WIFEXITED(st)) {
      r.exit_code = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
      r.signal = WTERMSIG(st);
      r.exit_code = 128 + *r.signal;
    }
  } else if (outcome.timed_out) {
    r.signal = SIGKILL;
    r.exit_code = 128 + SIGKILL;
  }

  std::vector<std::string> ev;
  if (r.timed_out) {
    ev.push_back("timed out: the whole process tree was killed at the wall-clock limit of " +
                 std::to_string(limits.wall_timeout.count()) + " ms");
  }
  const std::int64_t cpu_limit_ms = static_cast<std::int64_t>(limits.cpu_seconds) * 1000;
  if (!r.timed_out && r.signal &&
      (*r.signal == SIGXCPU || (*r.signal == SIGKILL && r.cpu_ms >= cpu_limit_ms - 50))) {
    ev.push_back("killed: CPU time limit of " + std::to_string(limits.cpu_seconds) + " s reached");
  }
  if (r.signal && *r.signal == SIGXFSZ) {
    ev.push_back("killed: file size limit of " + std::to_string(limits.max_file_mb) +
                 " MiB reached");
  }
  if (r.signal && *r.signal == SIGSYS) {
    ev.push_back("killed: forbidden system call (seccomp)");
  }
  const std::string mem = std::to_string(limits.memory_mb) + " MiB";
  if (events && events->oom_kills > 0) {
    ev.push_back("killed: memory limit of " + mem + " reached (cgroup OOM kill)");
  }
  if (events && events->pids_max > 0) {
    ev.push_back("process limit of " + std::to_string(limits.max_processes) +
                 " reached (cgroup pids.max refused forks)");
  }
  if (!r.ok() && !r.timed_out) {
    // The runtime's own words for a refused resource; best effort, only when the run failed.
    const std::string& e = r.stderr_text;
    auto has = [&e](std::initializer_list<std::string_view> needles) {
      return std::any_of(needles.begin(), needles.end(),
                         [&e](std::string_view n) { return e.find(n) != std::string::npos; });
    };
    if (has({"MemoryError", "Array buffer allocation failed", "heap out of memory",
             "Fatal process out of memory", "Fatal process OOM", "std::bad_alloc",
             "Cannot allocate memory", "ENOMEM"})) {
      ev.push_back("memory limit of " + mem + " reached (allocation refused)");
    }
    if (has({"BlockingIOError", "Resource temporarily unavailable", "spawn EAGAIN",
             "uv_thread_create"})) {
      ev.push_back("process limit of " + std::to_string(limits.max_processes) +
                   " reached (fork refused)");
    }
    if (network_isolated &&
        has({"Network is unreachable", "ENETUNREACH", "Temporary failure in name resolution",
             "EAI_AGAIN", "Name or service not known", "ENOTFOUND"})) {
      ev.push_back("network access blocked: the sandbox has no network, only its own loopback");
    }
    if (has({"Address family not supported", "EAFNOSUPPORT"})) {
      ev.push_back("socket type not allowed in the sandbox (seccomp)");
    }
    if (has({"Read-only file system", "EROFS"})) {
      ev.push_back("write outside the work directory refused (read-only file system)");
    }
    if (has({"File too large", "EFBIG"})) {
      ev.push_back("file size limit of " + std::to_string(limits.max_file_mb) + " MiB reached");
    }
    if (has({"No space left on device", "ENOSPC"})) {
      ev.push_back("work directory full (" + std::to_string(limits.work_dir_mb) + " MiB)");
    }
    if (has({"Too many open files", "EMFILE"})) {
      ev.push_back("open-file limit of " + std::to_string(limits.max_open_files) + " reached");
    }
    if (has({"Operation not permitted", "EPERM"})) {
      ev.push_back("operation not permitted in the sandbox");
    }
  }
  if (r.stdout_truncated) {
    ev.push_back("stdout truncated at " + std::to_string(limits.max_output_bytes) + " bytes (" +
                 std::to_string(out_dropped) + " bytes discarded)");
  }
  if (r.stderr_truncated) {
    ev.push_back("stderr truncated at " + std::to_string(limits.max_output_bytes) + " bytes (" +
                 std::to_string(err_dropped) + " bytes discarded)");
  }
  if (outcome.escaped_output) {
    ev.push_back("a process outside the sandbox's reach kept the output open");
  }
  for (const auto& e : ev) r.error += (r.error.empty() ? "" : "; ") + e;
  return r;
}

}  // namespace detail
}  // namespace edgecoder::sandbox

// The docker backend: one `docker run` per run, the program passed on standard input (no
// 128 KiB argv limit), every limit given to docker, and the container killed by name when the
// deadline passes (killing the CLI alone would leave the container running).
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

#include "core/log.h"
#include "sandbox/backends.h"

namespace edgecoder::sandbox::detail {
namespace docker_detail {

using core::Errc;
using core::make_error;

// The docker CLI's environment: what it needs to find the engine, nothing else of ours.
std::vector<std::string> cli_env() {
  std::vector<std::string> env;
  for (const char* name : {"PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT",
                           "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "XDG_RUNTIME_DIR"}) {
    if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
  }
  if (std::getenv("PATH") == nullptr) env.emplace_back("PATH=/usr/local/bin:/usr/bin:/bin");
  return env;
}

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a short docker CLI command (version, image inspect, kill, rm).
CliResult run_cli(const std::string& docker, std::vector<std::string> args,
                  std::chrono::milliseconds timeout) {
  ChildSpec spec;
  spec.path = docker;
  spec.argv = {docker};
  for (auto& a : args) spec.argv.push_back(std::move(a));
  spec.env = cli_env();
  spec.no_new_privs = false;
  Control control;
  control.timeout = timeout;
  control.max_output_bytes = 64 * 1024;
  CliResult r;
  auto outcome = run_child(spec, control);
  if (!outcome) {
    r.err = outcome.error().detail;
    return r;
  }
  r.out = outcome->out.text;
  r.err = outcome->setup_error.empty() ? outcome->err.text : outcome->setup_error;
  if (outcome->timed_out) {
    r.err = "timed out after " + std::to_string(timeout.count()) + " ms";
  } else if (outcome->wait_status && WIFEXITED(*outcome->wait_status)) {
    r.exit_code = WEXITSTATUS(*outcome->wait_status);
  }
  return r;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

class DockerSandbox final : public Sandbox {
 public:
  DockerSandbox(Options options, ProbeReport report, std::string docker)
      : options_(std::move(options)), report_(std::move(report)), docker_(std::move(docker)) {}

  Mode mode() const override { return Mode::docker; }
  const ProbeReport& report() const override { return report_; }

  core::Result<RunResult> run(const RunRequest& request) const override {
    const std::string run_id = random_id();
    const std::string name = "edgecoder-sbx-" + run_id;
    const Limits limits = run_limits(options_.limits, request);
    std::filesystem::path project;
    if (!request.project_dir.empty()) {
      auto checked = check_project_dir(options_, request.project_dir);
      if (!checked) return checked.error();
      project = std::move(*checked);
      // docker's --volume syntax separates fields with ':'.
      if (project.string().find(':') != std::string::npos) {
        return make_error(Errc::invalid_argument, "project directory '" + project.string() +
                                                      "' contains ':', which docker --volume "
                                                      "cannot express");
      }
    }
    // The program first, then its input, on one stream.
    auto input = make_memfd("edgecoder-stdin", request.code + request.input);
    if (!input) return input.error();

    ChildSpec spec;
    spec.path = docker_;
    spec.argv = run_argv(request, name, run_id, limits, project);
    spec.env = cli_env();
    spec.stdin_fd = input->get();
    spec.no_new_privs = false;
    Control control;
    control.timeout = limits.wall_timeout;
    control.max_output_bytes = limits.max_output_bytes;
    control.on_timeout = [this, &name] {
      const auto kill = run_cli(docker_, {"kill", name}, std::chrono::seconds(10));
      const auto rm = run_cli(docker_, {"rm", "-f", name}, std::chrono::seconds(10));
      core::log::info(
          "sandbox", "docker_timeout_kill",
          {{"container", name}, {"kill_exit", kill.exit_code}, {"rm_exit", rm.exit_code}});
    };
    auto outcome = run_child(spec, control);
    if (!outcome) return outcome.error();
    if (!outcome->setup_error.empty()) {
      return core::Error(Errc::unavailable, "sandbox_unavailable",
                         "cannot start the docker CLI (" + docker_ + "): " + outcome->setup_error);
    }
    std::optional<int> code;
    if (outcome->wait_status && WIFEXITED(*outcome->wait_status)) {
      code = WEXITSTATUS(*outcome->wait_status);
    }
    // 125: docker itself failed (engine unreachable, image missing, bad option).
    if (!outcome->timed_out && code == 125 &&
        (outcome->err.text.find("docker:") != std::string::npos ||
         outcome->err.text.find("Error response from daemon") != std::string::npos)) {
      return core::Error(Errc::unavailable, "sandbox_unavailable",
                         "docker run failed: " + trim(outcome->err.text.substr(0, 600)));
    }
    auto result = make_result(std::move(*outcome), limits, run_id, code, std::nullopt, true);
    if (running_as_root() && !project.empty()) {
      const std::string note = project_write_note(project, options_.uid, options_.gid);
      if (!note.empty()) result.error += (result.error.empty() ? "" : "; ") + note;
    }
    return result;
  }

  // `project`: the checked real path of RunRequest::project_dir, or empty.
  std::vector<std::string> run_argv(const RunRequest& request, const std::string& name,
                                    const std::string& run_id, const Limits& l,
                                    const std::filesystem::path& project) const {
    const std::string mem = std::to_string(l.memory_mb) + "m";
    const std::string tmpfs_opts =
        "rw,nosuid,nodev,size=" + std::to_string(l.work_dir_mb) + "m,mode=1777";
    std::vector<std::string> a = {
        docker_,
        "run",
        "--rm",
        "-i",
        "--pull=never",
        "--name",
        name,
        "--network=none",
        "--read-only",
        "--user",
        std::to_string(options_.uid) + ":" + std::to_string(options_.gid),
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--memory=" + mem,
        "--memory-swap=" + mem,
        "--cpus=" + options_.docker_cpus,
        "--pids-limit=" + std::to_string(l.max_processes),
        "--ulimit",
        "cpu=" + std::to_string(l.cpu_seconds) + ":" + std::to_string(l.cpu_seconds + 1),
        "--ulimit",
        "fsize=" + std::to_string(l.max_file_mb * 1024 * 1024),
        "--ulimit",
        "nofile=" + std::to_string(l.max_open_files) + ":" + std::to_string(l.max_open_files),
        "--ulimit",
        "core=0",
        "--tmpfs",
        "/work:" + tmpfs_opts,
        "--tmpfs",
        "/tmp:" + tmpfs_opts,
        "--workdir",
        project.empty() ? "/work" : "/project",
        "--log-driver=none",
        "--init",
    };
    if (!project.empty()) {
      a.insert(a.end(), {"--volume", project.string() + ":/project"});
      // As with bwrap: the host's git must not run hooks or config a run planted.
      std::error_code ec;
      const auto git = project / ".git";
      if (!std::filesystem::is_symlink(git, ec) && std::filesystem::exists(git, ec)) {
        a.insert(a.end(), {"--volume", git.string() + ":/project/.git:ro"});
      }
    }
    for (const auto& kv : program_env("/work", "/tmp", run_id)) {
      if (kv.rfind("PATH=", 0) == 0) continue;  // keep the image's PATH
      a.insert(a.end(), {"--env", kv});
    }
    const bool node = request.language == Language::javascript;
    const std::string script = "/work/" + program_file_name(request.language);
    // The image's interpreter, by name: the host paths mean nothing inside the image. Shell
    // commands run in the Python image (any image has /bin/sh).
    const char* interpreter = request.language == Language::python       ? "python3"
                              : request.language == Language::javascript ? "node"
                                                                         : "/bin/sh";
    std::string run;
    for (const auto& arg : interpreter_argv(options_, request.language, interpreter, script)) {
      run += (run.empty() ? "" : " ") + arg;
    }
    // cat reads everything; with input following the program, read exactly the program.
    const std::string copy = request.input.empty()
                                 ? "cat > " + script
                                 : "dd bs=1 count=" + std::to_string(request.code.size()) +
                                       " of=" + script + " 2>/dev/null";
    a.insert(a.end(), {"--entrypoint", "/bin/sh",
                       node ? options_.docker_node_image : options_.docker_python_image, "-c",
                       copy + " && exec " + run});
    return a;
  }

 private:
  const Options options_;
  const ProbeReport report_;
  const std::string docker_;
};

}  // namespace docker_detail

std::string resolve_in_path(const std::string& program) {
  if (program.empty()) return {};
  if (program.find('/') != std::string::npos) {
    return ::access(program.c_str(), X_OK) == 0 ? program : std::string();
  }
  const char* path = std::getenv("PATH");
  std::istringstream in(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(in, dir, ':');) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

void check_docker(const Options& options, ProbeReport& report) {
  using namespace docker_detail;
  const std::string docker = resolve_in_path(options.docker);
  if (docker.empty()) {
    report.problem = "the docker CLI (" + options.docker + ") is not installed or not in PATH";
    report.fix = "install Docker (docker.io), or set SANDBOX_DOCKER to the CLI's path";
    return;
  }
  if (running_as_root() && options.uid == 0) {
    report.problem = "SANDBOX_UID=0: containers would run as root";
    report.fix = "set SANDBOX_UID and SANDBOX_GID to an unprivileged id (default 65534)";
    return;
  }
  const auto version =
      run_cli(docker, {"version", "--format", "{{.Server.Version}}"}, std::chrono::seconds(15));
  if (version.exit_code != 0) {
    report.problem = "the Docker engine is not reachable: " + trim(version.err.substr(0, 400));
    report.fix =
        "start the Docker engine (systemctl start docker) and add this user to the "
        "docker group, or choose SANDBOX_MODE=bwrap";
    return;
  }
  for (const auto& image : {options.docker_python_image, options.docker_node_image}) {
    const auto inspect = run_cli(docker, {"image", "inspect", "--format", "{{.Id}}", image},
                                 std::chrono::seconds(15));
    if (inspect.exit_code != 0) {
      report.warnings.push_back("docker image " + image +
                                " is not present (runs never pull): docker pull " + image);
    }
  }
}

std::unique_ptr<Sandbox> make_docker_sandbox(const Options& options, ProbeReport report) {
  return std::make_unique<docker_detail::DockerSandbox>(options, std::move(report),
                                                        resolve_in_path(options.docker));
}

}  // namespace edgecoder::sandbox::detail

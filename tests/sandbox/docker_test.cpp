// docker mode against a stand-in `docker` placed first on PATH (no Docker engine exists here).
// The stand-in records every call's argv and emulates the engine: `version`, `image inspect`,
// `run` (the "container" is a separate process in its own session, so killing the CLI alone
// would not stop it) and `kill`/`rm` (which kill that process). The tests check the command
// line and its limits, that output and exit codes come back, that a timeout kills the
// container by name, and that an unreachable engine is reported and never replaced.
#include <errno.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/sandbox.h"
#include "sandbox/sandbox_test_support.h"
#include "support/child_process.h"

namespace edgecoder::sandbox {
namespace {

namespace stdfs = std::filesystem;
using edgecoder::testing::TempDir;
using testing::test_options;

// State lives next to the script ($0's directory): the library passes the CLI only PATH, HOME
// and DOCKER_* connection variables, so a test cannot hand it a state directory any other way.
constexpr const char* kStandIn = R"sh(#!/bin/sh
here=$(cd "$(dirname "$0")" && pwd)
{ printf 'CALL'; for a in "$@"; do printf '\037%s' "$a"; done; printf '\n'; } >> "$here/calls"
case "$1" in
  version)
    if [ -f "$here/engine-down" ]; then
      echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1
    fi
    echo "24.0.0-standin"; exit 0 ;;
  image)
    if [ -f "$here/no-images" ]; then echo "Error: No such image" >&2; exit 1; fi
    echo "sha256:standin"; exit 0 ;;
  kill|rm)
    for last in "$@"; do :; done
    if [ -f "$here/$last.pid" ]; then kill -9 "$(cat "$here/$last.pid")" 2>/dev/null; fi
    echo "$last"; exit 0 ;;
  run)
    if [ -f "$here/run-fails" ]; then
      echo "docker: Error response from daemon: failed to create task." >&2; exit 125
    fi
    name=""; prev=""
    for a in "$@"; do
      [ "$prev" = "--name" ] && name="$a"
      prev="$a"; script="$a"
    done
    work=$(mktemp -d)
    case "$script" in
      *main.py*) prog="$work/main.py"; interp="/usr/bin/python3" ;;
      *) prog="$work/main.js"; interp="/usr/bin/node" ;;
    esac
    cat > "$prog"
    setsid "$interp" "$prog" < /dev/null &
    echo $! > "$here/$name.pid"
    wait $!
    rc=$?
    rm -rf "$work"
    exit $rc ;;
esac
echo "docker stand-in: unsupported command $1" >&2
exit 125
)sh";

class DockerMode : public ::testing::Test {
 protected:
  void SetUp() override {
    script_ = dir_.path() / "docker";
    std::ofstream(script_) << kStandIn;
    ::chmod(script_.c_str(), 0755);
    const char* path = std::getenv("PATH");
    old_path_ = path != nullptr ? path : "/usr/bin:/bin";
    ::setenv("PATH", (dir_.path().string() + ":" + old_path_).c_str(), 1);
    options_ = test_options(Mode::docker);
  }
  void TearDown() override {
    ::setenv("PATH", old_path_.c_str(), 1);
    // Never leave an emulated container behind, whatever the test did.
    for (const auto& e : stdfs::directory_iterator(dir_.path())) {
      if (e.path().extension() != ".pid") continue;
      std::ifstream in(e.path());
      pid_t pid = 0;
      if (in >> pid && pid > 0) ::kill(pid, SIGKILL);
    }
  }

  void flag(const char* name) { std::ofstream(dir_.path() / name) << "1"; }

  // Each recorded call's argv (without the program name).
  std::vector<std::vector<std::string>> calls() const {
    std::vector<std::vector<std::string>> out;
    std::ifstream in(dir_.path() / "calls");
    for (std::string line; std::getline(in, line);) {
      std::vector<std::string> argv;
      std::size_t pos = line.find('\037');
      while (pos != std::string::npos) {
        const std::size_t next = line.find('\037', pos + 1);
        argv.push_back(
            line.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1));
        pos = next;
      }
      out.push_back(argv);
    }
    return out;
  }

  std::vector<std::vector<std::string>> calls_of(const std::string& verb) const {
    std::vector<std::vector<std::string>> out;
    for (auto& c : calls()) {
      if (!c.empty() && c[0] == verb) out.push_back(c);
    }
    return out;
  }

  std::unique_ptr<Sandbox> sandbox() {
    auto s = make_sandbox(options_);
    EXPECT_TRUE(s) << s.error().detail;
    return s ? std::move(*s) : nullptr;
  }

  TempDir dir_;
  stdfs::path script_;
  std::string old_path_;
  Options options_;
};

bool has(const std::vector<std::string>& argv, const std::string& arg) {
  return std::find(argv.begin(), argv.end(), arg) != argv.end();
}

// The value following `option` (e.g. --user 65534:65534), or "".
std::vector<std::string> values_of(const std::vector<std::string>& argv,
                                   const std::string& option) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == option) out.push_back(argv[i + 1]);
  }
  return out;
}

TEST_F(DockerMode, CommandLineCarriesEveryLimit) {
  options_.limits.memory_mb = 256;
  options_.limits.max_processes = 48;
  options_.limits.cpu_seconds = 7;
  options_.limits.max_open_files = 80;
  options_.limits.max_file_mb = 3;
  options_.limits.work_dir_mb = 32;
  options_.docker_cpus = "0.5";
  options_.docker_python_image = "example/python:test";
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  EXPECT_TRUE(sb->report().isolated);
  EXPECT_EQ(sb->report().languages,
            (std::vector<Language>{Language::python, Language::javascript}));
  auto r = testing::run_code(*sb, Language::python, "print('from the container')\n");
  EXPECT_TRUE(r.ok()) << r.stderr_text << r.error;
  EXPECT_EQ(r.stdout_text, "from the container\n");

  const auto runs = calls_of("run");
  ASSERT_FALSE(runs.empty());
  const auto& a = runs.back();
  for (const char* expected :
       {"--rm", "-i", "--pull=never", "--network=none", "--read-only", "--cap-drop=ALL",
        "--security-opt=no-new-privileges", "--memory=256m", "--memory-swap=256m", "--cpus=0.5",
        "--pids-limit=48", "--log-driver=none", "--init"}) {
    EXPECT_TRUE(has(a, expected)) << expected;
  }
  EXPECT_EQ(values_of(a, "--user"), (std::vector<std::string>{"65534:65534"}));
  EXPECT_EQ(values_of(a, "--name"), (std::vector<std::string>{"edgecoder-sbx-" + r.run_id}));
  const auto ulimits = values_of(a, "--ulimit");
  for (const char* expected : {"cpu=7:8", "nofile=80:80", "fsize=3145728", "core=0"}) {
    EXPECT_TRUE(has(ulimits, expected)) << expected;
  }
  const auto tmpfs = values_of(a, "--tmpfs");
  EXPECT_TRUE(has(tmpfs, "/work:rw,nosuid,nodev,size=32m,mode=1777"));
  EXPECT_TRUE(has(tmpfs, "/tmp:rw,nosuid,nodev,size=32m,mode=1777"));
  EXPECT_TRUE(has(values_of(a, "--env"), "EDGECODER_SANDBOX_RUN=" + r.run_id));
  EXPECT_TRUE(has(a, "example/python:test"));
  // Nothing of the host goes in, and nothing widens the container.
  for (const char* forbidden : {"-v", "--volume", "--mount", "--privileged", "--network=host",
                                "--pid=host", "--ipc=host", "--cap-add"}) {
    EXPECT_FALSE(has(a, forbidden)) << forbidden;
  }
  for (const auto& arg : a) {
    if (arg.rfind("--net", 0) == 0) {
      EXPECT_EQ(arg, "--network=none");
    }
  }
  // The program travels on stdin, not in argv.
  EXPECT_FALSE(has(a, "print('from the container')\n"));
  EXPECT_EQ(a.back(), "cat > /work/main.py && exec python3 -I -B /work/main.py");
}

TEST_F(DockerMode, ShellCommandsMountTheProjectWithGitReadOnly) {
  TempDir project;
  stdfs::create_directories(project.path() / ".git");
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  RunRequest request;
  request.language = Language::shell;
  request.code = "ls";
  request.require_isolation = false;
  request.project_dir = project.path();
  auto r = sb->run(request);
  ASSERT_TRUE(r) << r.error().detail;
  const auto a = calls_of("run").back();
  const std::string real = stdfs::canonical(project.path()).string();
  EXPECT_EQ(values_of(a, "--volume"),
            (std::vector<std::string>{real + ":/project", real + "/.git:/project/.git:ro"}));
  EXPECT_EQ(values_of(a, "--workdir"), (std::vector<std::string>{"/project"}));
  EXPECT_TRUE(has(a, options_.docker_python_image));
  EXPECT_EQ(a.back(), "cat > /work/main.sh && exec /bin/sh /work/main.sh");

  request.project_dir = "/etc";
  auto refused = sb->run(request);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, core::Errc::permission_denied);
}

TEST_F(DockerMode, JavaScriptGetsItsImageAndHeapLimit) {
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = testing::run_code(*sb, Language::javascript, "console.log('js'); process.exit(5)\n");
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.stdout_text, "js\n");
  const auto a = calls_of("run").back();
  EXPECT_TRUE(has(a, options_.docker_node_image));
  EXPECT_EQ(a.back(), "cat > /work/main.js && exec node --max-old-space-size=512 /work/main.js");
}

TEST_F(DockerMode, TimeoutKillsTheContainerByName) {
  options_.limits.wall_timeout = std::chrono::milliseconds(2000);
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = testing::run_code(*sb, Language::python,
                             "import time\nprint('started', flush=True)\ntime.sleep(600)\n");
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.cli_exit_code(), 124);
  EXPECT_EQ(r.stdout_text, "started\n");
  EXPECT_TRUE(r.error.find("timed out") != std::string::npos) << r.error;
  const std::string name = "edgecoder-sbx-" + r.run_id;
  const auto kills = calls_of("kill");
  ASSERT_EQ(kills.size(), 1u);
  EXPECT_EQ(kills[0].back(), name);
  // The emulated container (its own session, not the CLI's child group) is gone.
  std::ifstream pidfile(dir_.path() / (name + ".pid"));
  pid_t pid = 0;
  ASSERT_TRUE(pidfile >> pid);
  bool gone = false;
  for (int i = 0; i < 250 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    gone = !std::getline(stat, line) || line.find(") Z ") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(gone) << "container process " << pid << " survived the timeout";
}

TEST_F(DockerMode, UnreachableEngineIsReportedNotReplaced) {
  flag("engine-down");
  const auto report = probe(options_);
  EXPECT_FALSE(report.ready);
  EXPECT_NE(report.problem.find("Docker engine is not reachable"), std::string::npos)
      << report.problem;
  EXPECT_NE(report.problem.find("Cannot connect to the Docker daemon"), std::string::npos);
  EXPECT_FALSE(report.fix.empty());
  auto s = make_sandbox(options_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, core::Errc::unavailable);
  EXPECT_TRUE(calls_of("run").empty()) << "something ran although the engine is down";
}

TEST_F(DockerMode, MissingImagesAndEngineErrorsAreSetupErrors) {
  flag("no-images");
  const auto report = probe(options_);
  EXPECT_TRUE(report.ready);
  ASSERT_GE(report.warnings.size(), 2u);
  EXPECT_NE(report.warnings[0].find("docker pull"), std::string::npos);
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  flag("run-fails");
  RunRequest req;
  req.code = "print(1)";
  auto r = sb->run(req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::Errc::unavailable);
  EXPECT_NE(r.error().detail.find("failed to create task"), std::string::npos);
}

TEST_F(DockerMode, MissingCliIsReported) {
  options_.docker = "/nonexistent/docker";
  const auto report = probe(options_);
  EXPECT_FALSE(report.ready);
  EXPECT_NE(report.problem.find("docker CLI"), std::string::npos) << report.problem;
}

}  // namespace
}  // namespace edgecoder::sandbox

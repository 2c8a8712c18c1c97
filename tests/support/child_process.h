// Test support: run a child process (usually the real edgecoder binary) with a chosen
// environment, capture its stdout/stderr into files, signal it, and wait for it with a deadline.
// Also temp directories and free loopback ports.
// Thread-safety: one ChildProcess per test thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace edgecoder::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A loopback TCP port that was free a moment ago (bind port 0, read it, close).
std::uint16_t free_port();
// True when something accepts TCP connections on 127.0.0.1:port.
bool port_open(std::uint16_t port);
// Polls until port_open(port) or the deadline passes.
bool wait_for_port(std::uint16_t port, std::chrono::milliseconds deadline);

// An unused host uid, one per test process, for sandboxed runs (as root) that must not share
// RLIMIT_NPROC with concurrent tests: ctest runs each test in its own process, several at once,
// and the sandboxes of other tests run as 65534.
uid_t private_uid();

struct ChildOptions {
  std::vector<std::string> args;           // argv[1..]
  std::map<std::string, std::string> env;  // the whole environment (plus PATH and HOME)
  std::filesystem::path output_dir;        // stdout.txt / stderr.txt go here
};

class ChildProcess {
 public:
  explicit ChildProcess(const std::string& binary, ChildOptions options);
  ~ChildProcess();  // SIGKILLs a child still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int signal_number);
  // The exit code (or 128+signal), or nullopt if still running at the deadline.
  std::optional<int> wait(std::chrono::milliseconds deadline);
  bool running();
  std::string stdout_text() const;
  std::string stderr_text() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::filesystem::path stdout_path_;
  std::filesystem::path stderr_path_;
};

// Runs to completion (deadline 60 s) and returns {exit code, stdout, stderr}.
struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
};
RunResult run_to_end(const std::string& binary, ChildOptions options);

// Runs `command` via /bin/sh with `input` on stdin; returns exit code and combined output.
RunResult run_shell(const std::string& command, const std::string& input = "");

}  // namespace edgecoder::testing

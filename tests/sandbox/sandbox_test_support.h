// Shared helpers for the sandbox suite: sandboxes with test limits, a loopback listener that
// counts connections, and a scan of /proc for processes a run left behind (every sandboxed
// process carries EDGECODER_SANDBOX_RUN=<run id> in its environment).
// Thread-safety: LoopbackListener::accepted() may be called from any thread; the rest are
// plain functions.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/sandbox.h"

namespace edgecoder::sandbox::testing {

// Limits for tests: generous deadlines (ASan builds are slow; 5x margin), small enough caps.
// As root, process mode runs as testing::private_uid() (support/child_process.h): without a user
// namespace its RLIMIT_NPROC counts every process and thread of the host uid, including other
// tests' bwrap runs as `nobody`.
Options test_options(Mode mode);

// A sandbox for `options`, reusing one probe per mode (the probe's trial runs are what cost).
// Fails the calling test (and returns null) when the mode cannot be set up here.
std::unique_ptr<Sandbox> make_test_sandbox(const Options& options);

// Runs code; fails the calling test on a setup error (then returns a default RunResult).
RunResult run_code(const Sandbox& sandbox, Language language, const std::string& code);

// Pids of live (non-zombie) processes whose environment holds EDGECODER_SANDBOX_RUN=<run_id>.
std::vector<pid_t> processes_of_run(const std::string& run_id);

// Pids of live processes with any EDGECODER_SANDBOX_RUN, with their run ids.
std::vector<std::pair<pid_t, std::string>> sandboxed_processes();

// A TCP listener on 127.0.0.1 (or a given address) that accepts and counts connections on a
// background thread.
class LoopbackListener {
 public:
  explicit LoopbackListener(const std::string& address = "127.0.0.1");
  ~LoopbackListener();
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;
  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// True when a TCP connection to address:port succeeds within a few seconds.
bool can_connect(const std::string& address, std::uint16_t port);

// Runs a shell command, returns its exit code; output goes to `output` when given.
int shell(const std::string& command, std::string* output = nullptr);

}  // namespace edgecoder::sandbox::testing

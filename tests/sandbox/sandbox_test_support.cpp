#include "sandbox/sandbox_test_support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "support/child_process.h"

namespace edgecoder::sandbox::testing {

Options test_options(Mode mode) {
  Options o;
  o.mode = mode;
  if (mode == Mode::process && ::geteuid() == 0) o.uid = o.gid = edgecoder::testing::private_uid();
  o.limits.wall_timeout = std::chrono::milliseconds(30'000);
  o.limits.cpu_seconds = 30;
  o.limits.memory_mb = 512;
  o.limits.max_processes = 32;
  o.limits.max_output_bytes = 64 * 1024;
  return o;
}

std::unique_ptr<Sandbox> make_test_sandbox(const Options& options) {
  static std::mutex mu;
  static std::map<Mode, ProbeReport> reports;
  ProbeReport report;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = reports.find(options.mode);
    if (it == reports.end()) {
      it = reports.emplace(options.mode, probe(test_options(options.mode))).first;
    }
    report = it->second;
  }
  auto sandbox = make_sandbox(options, report);
  if (!sandbox) {
    ADD_FAILURE() << "cannot set up the " << mode_name(options.mode)
                  << " sandbox: " << sandbox.error().detail;
    return nullptr;
  }
  return std::move(*sandbox);
}

RunResult run_code(const Sandbox& sandbox, Language language, const std::string& code) {
  RunRequest request;
  request.language = language;
  request.code = code;
  auto result = sandbox.run(request);
  if (!result) {
    ADD_FAILURE() << "run failed to start: " << result.error().detail;
    return {};
  }
  return *result;
}

std::vector<std::pair<pid_t, std::string>> sandboxed_processes() {
  std::vector<std::pair<pid_t, std::string>> out;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return out;
  static const std::string kKey = "EDGECODER_SANDBOX_RUN=";
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    const std::string base = "/proc/" + std::string(e->d_name);
    std::string state;
    {
      std::ifstream stat(base + "/stat");
      std::string line;
      std::getline(stat, line);
      const auto paren = line.rfind(')');
      if (paren != std::string::npos && paren + 2 < line.size()) state = line.substr(paren + 2, 1);
    }
    if (state.empty() || state == "Z" || state == "X") continue;
    std::ifstream env(base + "/environ", std::ios::binary);
    std::stringstream ss;
    ss << env.rdbuf();
    const std::string text = ss.str();
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t nul = text.find('\0', pos);
      const std::string var =
          text.substr(pos, nul == std::string::npos ? std::string::npos : nul - pos);
      if (var.rfind(kKey, 0) == 0) out.emplace_back(pid, var.substr(kKey.size()));
      if (nul == std::string::npos) break;
      pos = nul + 1;
    }
  }
  ::closedir(dir);
  return out;
}

std::vector<pid_t> processes_of_run(const std::string& run_id) {
  std::vector<pid_t> out;
  for (const auto& [pid, id] : sandboxed_processes()) {
    if (id == run_id) out.push_back(pid);
  }
  return out;
}

LoopbackListener::LoopbackListener(const std::string& address) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0) {
    ADD_FAILURE() << "cannot listen on " << address;
    return;
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        ++accepted_;
        ::close(c);
      }
    }
  });
}

LoopbackListener::~LoopbackListener() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
}

bool can_connect(const std::string& address, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (!ok && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 5000) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      ok = err == 0;
    }
  }
  ::close(fd);
  return ok;
}

int shell(const std::string& command, std::string* output) {
  std::FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) text.append(buf, n);
  const int status = ::pclose(p);
  if (output != nullptr) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace edgecoder::sandbox::testing

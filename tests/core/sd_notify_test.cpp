#include "core/sd_notify.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "core/crypto.h"

namespace edgecoder::core {
namespace {

namespace stdfs = std::filesystem;

class SdEnvGuard {
 public:
  explicit SdEnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  ~SdEnvGuard() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  SdEnvGuard(const SdEnvGuard&) = delete;
  SdEnvGuard& operator=(const SdEnvGuard&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A bound SOCK_DGRAM receiver standing in for systemd.
class SdReceiver {
 public:
  // `name` starting with '@' binds an abstract socket.
  explicit SdReceiver(const std::string& name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    if (name[0] == '@') {
      addr.sun_path[0] = '\0';
    } else {
      len += 1;
    }
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0) << std::strerror(errno);
    timeval tv{2, 0};  // a missing datagram fails the test instead of hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~SdReceiver() { ::close(fd_); }
  SdReceiver(const SdReceiver&) = delete;
  SdReceiver& operator=(const SdReceiver&) = delete;

  std::string receive() {
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return "<recv failed: " + std::string(std::strerror(errno)) + ">";
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  int fd_ = -1;
};

class SdNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (stdfs::temp_directory_path() / "edgecoder-sd-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    stdfs::remove_all(dir_, ec);
  }

  SdEnvGuard socket_env_{"NOTIFY_SOCKET"};
  SdEnvGuard usec_env_{"WATCHDOG_USEC"};
  SdEnvGuard pid_env_{"WATCHDOG_PID"};
  stdfs::path dir_;
};

TEST_F(SdNotifyTest, SendsToPathSocket) {
  const std::string path = (dir_ / "notify.sock").string();
  SdReceiver receiver(path);
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  for (const char* msg : {"READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=serving 3 listeners"}) {
    EXPECT_TRUE(sd_notify(msg)) << msg;
    EXPECT_EQ(receiver.receive(), msg);
  }
}

TEST_F(SdNotifyTest, SendsToAbstractSocket) {
  const std::string name = "@edgecoder-test-" + crypto::random_hex(8);
  SdReceiver receiver(name);
  ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  EXPECT_TRUE(sd_notify("READY=1"));
  EXPECT_EQ(receiver.receive(), "READY=1");
  EXPECT_TRUE(sd_notify("WATCHDOG=1"));
  EXPECT_EQ(receiver.receive(), "WATCHDOG=1");
}

TEST_F(SdNotifyTest, NoSocketMeansFalse) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(sd_notify("READY=1"));
  ::setenv("NOTIFY_SOCKET", "", 1);
  EXPECT_FALSE(sd_notify("READY=1"));
  ::setenv("NOTIFY_SOCKET", "relative/path", 1);
  EXPECT_FALSE(sd_notify("READY=1"));
  ::setenv("NOTIFY_SOCKET", (dir_ / "nobody-listens.sock").c_str(), 1);
  EXPECT_FALSE(sd_notify("READY=1"));
  const std::string too_long = "/" + std::string(200, 'x');
  ::setenv("NOTIFY_SOCKET", too_long.c_str(), 1);
  EXPECT_FALSE(sd_notify("READY=1"));
}

TEST_F(SdNotifyTest, WatchdogInterval) {
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  EXPECT_FALSE(sd_watchdog_interval().has_value());

  ::setenv("WATCHDOG_USEC", "30000000", 1);
  EXPECT_EQ(sd_watchdog_interval(), std::chrono::microseconds(15'000'000));

  const std::string self = std::to_string(::getpid());
  ::setenv("WATCHDOG_PID", self.c_str(), 1);
  EXPECT_EQ(sd_watchdog_interval(), std::chrono::microseconds(15'000'000));

  const std::string other = std::to_string(::getpid() + 1);
  ::setenv("WATCHDOG_PID", other.c_str(), 1);
  EXPECT_FALSE(sd_watchdog_interval().has_value());

  ::unsetenv("WATCHDOG_PID");
  for (const char* bad : {"", "0", "abc", "-5", "12x"}) {
    ::setenv("WATCHDOG_USEC", bad, 1);
    EXPECT_FALSE(sd_watchdog_interval().has_value()) << bad;
  }
}

}  // namespace
}  // namespace edgecoder::core

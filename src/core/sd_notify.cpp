#include "core/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace edgecoder::core {
namespace {

template <typename T>
std::optional<T> sd_parse_unsigned(const char* text) {
  if (text == nullptr || text[0] == '\0') return std::nullopt;
  const std::string_view s(text);
  T value{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

}  // namespace

bool sd_notify(std::string_view message) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (env == nullptr) return false;
  const std::string_view path(env);
  // Only absolute paths and abstract names ('@' stands for the leading NUL) are valid; sun_path
  // must keep room for the terminating NUL of a filesystem path.
  if (path.size() < 2 || (path[0] != '/' && path[0] != '@')) return false;
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  // An abstract address's length is exact (no NUL terminator is part of the name).
  const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                               (path[0] == '/' ? 1 : 0));

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t sent;
  do {
    sent = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&addr), addr_len);
  } while (sent < 0 && errno == EINTR);
  ::close(fd);
  return sent >= 0 && static_cast<std::size_t>(sent) == message.size();
}

std::optional<std::chrono::microseconds> sd_watchdog_interval() {
  const auto usec = sd_parse_unsigned<std::uint64_t>(std::getenv("WATCHDOG_USEC"));
  if (!usec || *usec == 0) return std::nullopt;
  if (const char* pid_text = std::getenv("WATCHDOG_PID"); pid_text != nullptr) {
    const auto pid = sd_parse_unsigned<std::uint64_t>(pid_text);
    // The watchdog belongs to another process (e.g. our parent passed its environment on).
    if (!pid || *pid != static_cast<std::uint64_t>(::getpid())) return std::nullopt;
  }
  // Half the deadline, as systemd recommends, so one late tick never trips the watchdog.
  return std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(*usec / 2));
}

}  // namespace edgecoder::core

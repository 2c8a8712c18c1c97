// Socket helpers shared by the server and the client (inside src/net only).
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <optional>

#include <boost/asio/buffer.hpp>

namespace edgecoder::net::detail {

// Sends what the socket takes right now without blocking (MSG_DONTWAIT: the descriptor's mode is
// left alone), from a sequence of at most 8 non-empty buffers. The bytes sent, possibly 0;
// nullopt when the connection is broken. A caller then waits (with its timeout) only for the
// rest: a peer that keeps up takes each small write at once, for one system call instead of a
// timer, a completion and a trip through the event loop.
template <class Buffers>
std::optional<std::size_t> send_now(int fd, const Buffers& buffers) {
  std::array<iovec, 8> iov{};
  std::size_t count = 0;
  for (const boost::asio::const_buffer& b : buffers) {
    if (b.size() == 0) continue;
    if (count == iov.size()) break;
    iov[count++] = iovec{const_cast<void*>(b.data()), b.size()};
  }
  if (count == 0) return 0;
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  for (;;) {
    const ssize_t n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;  // EWOULDBLOCK is the same value on Linux
    return std::nullopt;
  }
}

}  // namespace edgecoder::net::detail

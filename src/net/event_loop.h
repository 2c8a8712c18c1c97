// EventLoop: an io_context whose pending work can be destroyed before the context itself,
// LoopsShutdown, which does that for a set of loops when it goes out of scope, and the default
// number of loops.
// Thread-safety: as io_context; shut a loop down only after every thread running it returned.
#pragma once

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

namespace edgecoder::net {

// Event loops a node runs when EDGECODER_THREADS does not say: one per hardware thread, 1 to 4.
inline int default_loop_count() {
  return std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 4);
}

// Loops that hand work to each other must all be shut down before any is destroyed:
// destroying a pending coroutine on one loop can post to another (asio's awaitable_thread
// does), and posting into a destroyed io_context corrupts the heap. shutdown() destroys every
// pending handler and coroutine frame; later posts are queued and destroyed with the context.
class EventLoop : public boost::asio::io_context {
 public:
  using boost::asio::io_context::io_context;
  using boost::asio::io_context::shutdown;
};

// Declare it after the loops it names and before what runs on them: it is destroyed after
// those users and before any of the loops, and shuts every loop down first.
class LoopsShutdown {
 public:
  explicit LoopsShutdown(std::vector<EventLoop*> loops) : loops_(std::move(loops)) {}
  ~LoopsShutdown() {
    for (auto* loop : loops_) loop->shutdown();
  }
  LoopsShutdown(const LoopsShutdown&) = delete;
  LoopsShutdown& operator=(const LoopsShutdown&) = delete;

 private:
  std::vector<EventLoop*> loops_;
};

}  // namespace edgecoder::net

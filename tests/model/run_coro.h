// Test helper: runs a coroutine on an io_context until it and everything it started are done,
// and returns its value. Exceptions escaping the coroutine are rethrown in the test.
#pragma once

#include <exception>
#include <optional>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

namespace edgecoder::testing {

template <typename T>
boost::asio::awaitable<void> store_coro_result(boost::asio::awaitable<T> task,
                                               std::optional<T>* out) {
  out->emplace(co_await std::move(task));
}

struct RethrowCoro {
  void operator()(std::exception_ptr error) const {
    if (error) std::rethrow_exception(error);
  }
};

template <typename T>
T run_coro(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  std::optional<T> out;
  boost::asio::co_spawn(io, store_coro_result(std::move(task), &out), RethrowCoro{});
  io.restart();
  io.run();
  return std::move(*out);
}

}  // namespace edgecoder::testing

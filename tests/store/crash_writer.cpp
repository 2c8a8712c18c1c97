// Test helper: performs acknowledged writes (credit-ledger appends) in a loop and prints
// "SUBMIT <tx_id>" before and "ACK <tx_id>" after each write the store acknowledged, on stdout,
// unbuffered. The crash test SIGKILLs it at random moments and then checks that every
// acknowledged id is stored.
// Usage: crash_writer (--dir DATA_DIR | --dsn DSN) --prefix P [--threads N | --coroutines N]
//                     [--count N]
// --threads: blocking store calls from N threads; --coroutines: N coroutines on one event loop
// awaiting Store::run_write() (how the services write).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "store/store.h"

namespace {

void crash_writer_emit(const std::string& line) {
  std::string out = line + "\n";
  // One write(2) per line: lines from several threads never interleave.
  ssize_t n = ::write(1, out.data(), out.size());
  (void)n;
}

edgecoder::store::LedgerEntry crash_writer_entry(const std::string& prefix, long n) {
  edgecoder::store::LedgerEntry e;
  e.tx_id = prefix + "-" + std::to_string(n);
  e.account_id = "crash";
  e.kind = "earn";
  e.amount_millicredits = 1;
  return e;
}

boost::asio::awaitable<void> crash_writer_coroutine(edgecoder::store::Store& store,
                                                    std::string prefix, std::atomic<long>& next,
                                                    long count) {
  for (;;) {
    long n = next++;
    if (count >= 0 && n >= count) co_return;
    auto e = crash_writer_entry(prefix, n);
    crash_writer_emit("SUBMIT " + e.tx_id);
    auto call = store.run_write([&store, e] { return store.append_ledger(e); });
    auto r = co_await std::move(call);
    if (!r) {
      std::fprintf(stderr, "write failed: %s\n", r.error().detail.c_str());
      std::_Exit(1);
    }
    crash_writer_emit("ACK " + e.tx_id);
  }
}

}  // namespace

int main(int argc, char** argv) {
  edgecoder::store::StoreOptions options;
  std::string prefix = "w";
  int threads = 1;
  int coroutines = 0;
  long count = -1;  // -1 = until killed
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--dir") options.data_dir = value;
    if (flag == "--dsn") options.database_url = value;
    if (flag == "--prefix") prefix = value;
    if (flag == "--threads") threads = std::atoi(value.c_str());
    if (flag == "--coroutines") coroutines = std::atoi(value.c_str());
    if (flag == "--count") count = std::atol(value.c_str());
  }
  options.thread_pool_size = 1;
  auto store = edgecoder::store::open_store(options);
  if (!store) {
    std::fprintf(stderr, "open failed: %s\n", store.error().detail.c_str());
    return 1;
  }
  crash_writer_emit("OPEN");
  std::atomic<long> next{0};
  if (coroutines > 0) {
    boost::asio::io_context io(1);
    for (int c = 0; c < coroutines; ++c) {
      boost::asio::co_spawn(io, crash_writer_coroutine(**store, prefix, next, count),
                            boost::asio::detached);
    }
    io.run();
    crash_writer_emit("DONE");
    return 0;
  }
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (;;) {
        long n = next++;
        if (count >= 0 && n >= count) return;
        auto e = crash_writer_entry(prefix, n);
        crash_writer_emit("SUBMIT " + e.tx_id);
        auto r = (*store)->append_ledger(e);
        if (!r) {
          std::fprintf(stderr, "write failed: %s\n", r.error().detail.c_str());
          std::_Exit(1);
        }
        crash_writer_emit("ACK " + e.tx_id);
      }
    });
  }
  for (auto& w : workers) w.join();
  crash_writer_emit("DONE");
  return 0;
}

// Test helper: performs acknowledged writes (credit-ledger appends) in a loop and prints
// "ACK <tx_id>" on stdout, unbuffered, after each write the store acknowledged. The crash test
// SIGKILLs it at random moments and then checks that every printed id is stored.
// Usage: crash_writer (--dir DATA_DIR | --dsn DSN) --prefix P [--threads N] [--count N]
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"

namespace {

void crash_writer_emit(const std::string& line) {
  std::string out = line + "\n";
  // One write(2) per line: lines from several threads never interleave.
  ssize_t n = ::write(1, out.data(), out.size());
  (void)n;
}

}  // namespace

int main(int argc, char** argv) {
  edgecoder::store::StoreOptions options;
  std::string prefix = "w";
  int threads = 1;
  long count = -1;  // -1 = until killed
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--dir") options.data_dir = value;
    if (flag == "--dsn") options.database_url = value;
    if (flag == "--prefix") prefix = value;
    if (flag == "--threads") threads = std::atoi(value.c_str());
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
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (;;) {
        long n = next++;
        if (count >= 0 && n >= count) return;
        edgecoder::store::LedgerEntry e;
        e.tx_id = prefix + "-" + std::to_string(n);
        e.account_id = "crash";
        e.kind = "earn";
        e.amount_millicredits = 1;
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

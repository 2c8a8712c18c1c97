// Acknowledged writes per second through the store with 1, 16 and 64 concurrent writers.
// Each writer thread loops on one kind of write and counts the calls that returned success
// (committed and synced). Every run uses a fresh database: a new SQLite data directory, or a new
// PostgreSQL schema. Prints one line per run and the median per writer count.
//
//   store_bench [--backend sqlite|postgres] [--dsn "host=... dbname=..."] [--dir /tmp]
//               [--seconds 3] [--runs 5] [--writers 1,16,64] [--op ledger|task]
//               [--pg-pool N]   (default: the store's default pool size, 8)
//               [--callers threads|coroutines]
// --callers threads (default): each writer is an OS thread making blocking store calls.
// --callers coroutines: each writer is a coroutine on one event-loop thread awaiting
// Store::run_write(), which is how the services call the store.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "store/sql.h"
#include "store/store.h"

namespace {

using edgecoder::store::Store;
using edgecoder::store::StoreOptions;

struct BenchArgs {
  std::string backend = "sqlite";
  std::string dsn;
  std::filesystem::path dir = std::filesystem::temp_directory_path();
  double seconds = 3;
  int runs = 5;
  std::vector<int> writers = {1, 16, 64};
  std::string op = "ledger";
  int pg_pool = 0;  // 0 = the store's default
  std::string callers = "threads";
};

std::string bench_random_name() {
  std::mt19937_64 rng{std::random_device{}()};
  return "bench_" + std::to_string(rng() % 1'000'000'000);
}

// One write of the chosen kind.
edgecoder::core::Result<void> bench_write(Store& store, const std::string& op, int thread, long n) {
  std::string id = std::to_string(thread) + "-" + std::to_string(n);
  if (op == "task") {
    edgecoder::store::NewTask t;
    t.id = "t" + id;
    edgecoder::store::NewSubtask s;
    s.id = "s" + id;
    s.input = "print(1)";
    t.subtasks.push_back(s);
    auto r = store.create_task(t);
    if (!r) return r.error();
    return {};
  }
  edgecoder::store::LedgerEntry e;
  e.tx_id = "tx" + id;
  e.account_id = "acct-" + std::to_string(thread % 16);
  e.kind = "earn";
  e.amount_millicredits = 1000;
  auto r = store.append_ledger(e);
  if (!r) return r.error();
  return {};
}

boost::asio::awaitable<void> bench_coroutine_writer(Store& store, std::string op, int t,
                                                    std::atomic<bool>& stop,
                                                    std::atomic<long>& acked,
                                                    std::atomic<long>& failed) {
  for (long n = 0; !stop; ++n) {
    auto call = store.run_write([&store, &op, t, n] { return bench_write(store, op, t, n); });
    auto result = co_await std::move(call);
    if (result) {
      ++acked;
    } else {
      ++failed;
    }
  }
}

double bench_run(const BenchArgs& args, int writers) {
  StoreOptions options;
  std::filesystem::path dir;
  std::string schema;
  if (args.backend == "postgres") {
    schema = bench_random_name();
    edgecoder::store::sql::PgOptions po;
    po.conninfo = args.dsn;
    auto session = edgecoder::store::sql::pg_connect(po);
    if (!session || !(*session)->exec_script("CREATE SCHEMA " + schema)) {
      std::fprintf(stderr, "cannot create schema on %s\n", args.dsn.c_str());
      std::exit(1);
    }
    options.database_url = args.dsn + " options='-csearch_path=" + schema + "'";
    if (args.pg_pool > 0) options.pg_pool_size = args.pg_pool;
  } else {
    dir = args.dir / bench_random_name();
    options.data_dir = dir;
  }
  double rate = 0;
  {
    auto opened = edgecoder::store::open_store(options);
    if (!opened) {
      std::fprintf(stderr, "open: %s\n", opened.error().detail.c_str());
      std::exit(1);
    }
    Store& store = **opened;
    std::atomic<bool> go{false}, stop{false};
    std::atomic<long> acked{0}, failed{0};
    std::vector<std::thread> threads;
    boost::asio::io_context io(1);
    if (args.callers == "coroutines") {
      for (int t = 0; t < writers; ++t) {
        boost::asio::co_spawn(io, bench_coroutine_writer(store, args.op, t, stop, acked, failed),
                              boost::asio::detached);
      }
      threads.emplace_back([&] {
        while (!go) std::this_thread::yield();
        io.run();
      });
    }
    for (int t = 0; args.callers == "threads" && t < writers; ++t) {
      threads.emplace_back([&, t] {
        while (!go) std::this_thread::yield();
        long mine = 0;
        for (long n = 0; !stop; ++n) {
          if (bench_write(store, args.op, t, n)) {
            ++mine;
          } else {
            ++failed;
          }
        }
        acked += mine;
      });
    }
    auto start = std::chrono::steady_clock::now();
    go = true;
    std::this_thread::sleep_for(std::chrono::duration<double>(args.seconds));
    stop = true;
    for (auto& t : threads) t.join();
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rate = static_cast<double>(acked.load()) / elapsed;
    if (failed) std::fprintf(stderr, "  %ld writes failed\n", failed.load());
  }
  if (!schema.empty()) {
    edgecoder::store::sql::PgOptions po;
    po.conninfo = args.dsn;
    if (auto session = edgecoder::store::sql::pg_connect(po)) {
      (void)(*session)->exec_script("DROP SCHEMA " + schema + " CASCADE");
    }
  }
  if (!dir.empty()) std::filesystem::remove_all(dir);
  return rate;
}

}  // namespace

int main(int argc, char** argv) {
  BenchArgs args;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--backend") args.backend = value;
    if (flag == "--dsn") args.dsn = value;
    if (flag == "--dir") args.dir = value;
    if (flag == "--seconds") args.seconds = std::atof(value.c_str());
    if (flag == "--runs") args.runs = std::atoi(value.c_str());
    if (flag == "--op") args.op = value;
    if (flag == "--pg-pool") args.pg_pool = std::atoi(value.c_str());
    if (flag == "--callers") args.callers = value;
    if (flag == "--writers") {
      args.writers.clear();
      std::stringstream ss(value);
      std::string item;
      while (std::getline(ss, item, ',')) args.writers.push_back(std::atoi(item.c_str()));
    }
  }
  if (args.backend == "postgres" && args.dsn.empty()) {
    std::fprintf(stderr, "--backend postgres needs --dsn\n");
    return 2;
  }
  if (args.callers != "threads" && args.callers != "coroutines") {
    std::fprintf(stderr, "--callers is threads or coroutines\n");
    return 2;
  }
  std::printf("backend=%s op=%s callers=%s seconds=%.1f runs=%d\n", args.backend.c_str(),
              args.op.c_str(), args.callers.c_str(), args.seconds, args.runs);
  for (int writers : args.writers) {
    std::vector<double> rates;
    for (int r = 0; r < args.runs; ++r) {
      rates.push_back(bench_run(args, writers));
      std::printf("  writers=%d run=%d acked_writes_per_s=%.0f\n", writers, r + 1, rates.back());
      std::fflush(stdout);
    }
    std::sort(rates.begin(), rates.end());
    std::printf("writers=%d median_acked_writes_per_s=%.0f\n", writers, rates[rates.size() / 2]);
    std::fflush(stdout);
  }
  return 0;
}

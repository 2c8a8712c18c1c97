// Store::run_write(): coroutines writing through the group commit (SQLite: on the writer thread,
// inside the batch) or the pool (PostgreSQL). Results are the store call's own, a failing call
// does not disturb the others in its batch, and everything acknowledged is stored.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "store/store.h"
#include "store/store_test_support.h"

namespace edgecoder::store {
namespace {

using testing::StoreHome;

LedgerEntry run_write_entry(const std::string& tx_id) {
  LedgerEntry e;
  e.tx_id = tx_id;
  e.account_id = "rw";
  e.kind = "earn";
  e.amount_millicredits = 1;
  return e;
}

struct RunWriteOutcome {
  std::atomic<int> ok{0};
  std::atomic<int> duplicate{0};
  std::atomic<int> invalid{0};
  std::atomic<int> other{0};
};

// Appends `tx_id` (empty: an invalid entry the store refuses before writing).
boost::asio::awaitable<void> run_write_one(Store& store, std::string tx_id,
                                           RunWriteOutcome& outcome) {
  auto call =
      store.run_write([&store, tx_id] { return store.append_ledger(run_write_entry(tx_id)); });
  auto r = co_await std::move(call);
  if (!r) {
    (r.error().code == core::Errc::invalid_argument ? outcome.invalid : outcome.other)++;
  } else if (r->duplicate) {
    outcome.duplicate++;
  } else {
    outcome.ok++;
  }
}

class StoreRunWrite : public ::testing::TestWithParam<Backend> {};

TEST_P(StoreRunWrite, ConcurrentCoroutinesAreAllStoredAndFailuresStayTheirOwn) {
  if (GetParam() == Backend::postgres && !testing::pg_test_dsn()) {
    if (testing::pg_unavailable_is_failure()) FAIL() << "CI=true but no PostgreSQL";
    GTEST_SKIP() << testing::pg_skip_reason();
  }
  StoreHome home(GetParam(), nullptr);
  auto opened = home.open();
  ASSERT_TRUE(opened) << opened.error().detail;
  Store& store = **opened;
  ASSERT_TRUE(store.append_ledger(run_write_entry("seen-before")));

  RunWriteOutcome outcome;
  boost::asio::io_context io(1);
  constexpr int kWriters = 200;
  int want_invalid = 0;
  int want_duplicate = 0;
  for (int i = 0; i < kWriters; ++i) {
    // Every 10th is invalid, some repeat an existing tx_id: they share batches with the valid
    // ones.
    std::string tx = "rw-" + std::to_string(i);
    if (i % 10 == 0) {
      tx.clear();
      ++want_invalid;
    } else if (i % 25 == 5) {
      tx = "seen-before";
      ++want_duplicate;
    }
    boost::asio::co_spawn(io, run_write_one(store, tx, outcome), boost::asio::detached);
  }
  io.run();

  EXPECT_EQ(want_invalid, 20);
  EXPECT_EQ(want_duplicate, 4);
  EXPECT_EQ(outcome.invalid.load(), want_invalid);
  EXPECT_EQ(outcome.duplicate.load(), want_duplicate);
  EXPECT_EQ(outcome.other.load(), 0);
  EXPECT_EQ(outcome.ok.load(), kWriters - want_invalid - want_duplicate);

  auto stored = store.list_ledger("rw", 0, 0);
  ASSERT_TRUE(stored) << stored.error().detail;
  std::set<std::string> ids;
  for (const auto& e : *stored) ids.insert(e.tx_id);
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(outcome.ok.load() + 1));
  for (int i = 0; i < kWriters; ++i) {
    if (i % 10 == 0 || i % 25 == 5) continue;
    EXPECT_TRUE(ids.count("rw-" + std::to_string(i))) << i;
  }
}

TEST_P(StoreRunWrite, MixesWithBlockingWritersFromOtherThreads) {
  if (GetParam() == Backend::postgres && !testing::pg_test_dsn()) {
    if (testing::pg_unavailable_is_failure()) FAIL() << "CI=true but no PostgreSQL";
    GTEST_SKIP() << testing::pg_skip_reason();
  }
  StoreHome home(GetParam(), nullptr);
  auto opened = home.open();
  ASSERT_TRUE(opened) << opened.error().detail;
  Store& store = **opened;
  RunWriteOutcome outcome;
  std::atomic<int> blocking_ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < 25; ++n) {
        if (store.append_ledger(
                run_write_entry("b-" + std::to_string(t) + "-" + std::to_string(n)))) {
          blocking_ok++;
        }
      }
    });
  }
  boost::asio::io_context io(1);
  for (int i = 0; i < 100; ++i) {
    boost::asio::co_spawn(io, run_write_one(store, "c-" + std::to_string(i), outcome),
                          boost::asio::detached);
  }
  io.run();
  for (auto& t : threads) t.join();
  EXPECT_EQ(outcome.ok.load(), 100);
  EXPECT_EQ(blocking_ok.load(), 100);
  auto stored = store.list_ledger("rw", 0, 0);
  ASSERT_TRUE(stored) << stored.error().detail;
  EXPECT_EQ(stored->size(), 200u);
}

std::string run_write_backend_name(const ::testing::TestParamInfo<Backend>& param) {
  return param.param == Backend::sqlite ? "sqlite" : "postgres";
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreRunWrite,
                         ::testing::Values(Backend::sqlite, Backend::postgres),
                         run_write_backend_name);

}  // namespace
}  // namespace edgecoder::store

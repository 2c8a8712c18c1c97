// PostgreSQL backend: RAII over PGconn/PGresult, a small connection pool with prepared-statement
// caches, statement_timeout, transaction retry on serialization failures and deadlocks, and
// outage handling: once the server cannot be reached every call fails fast with
// Errc::unavailable ("store_unavailable") while a background thread reconnects with backoff.
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "core/log.h"
#include "store/sql.h"

namespace edgecoder::store::sql {

namespace {

constexpr int kPgMaxTxRetries = 8;
constexpr auto kPgBackoffMin = std::chrono::milliseconds(100);
constexpr auto kPgBackoffMax = std::chrono::milliseconds(5'000);
constexpr auto kPgHealthInterval = std::chrono::milliseconds(2'000);  // idle probe period

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

// True for SQLSTATEs worth retrying the whole transaction for.
bool pg_retryable(std::string_view sqlstate) { return sqlstate == "40001" || sqlstate == "40P01"; }

}  // namespace

// One connection. Tx over it for the duration of one job.
class PgConn final : public Tx {
 public:
  explicit PgConn(PGconn* conn) : conn_(conn) {}
  ~PgConn() override { PQfinish(conn_); }
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  Dialect dialect() const override { return Dialect::postgres; }
  bool bad() const { return PQstatus(conn_) != CONNECTION_OK; }
  const std::string& last_sqlstate() const { return last_sqlstate_; }

  core::Result<Rows> query(std::string_view sql, const std::vector<Value>& params) override {
    std::string key(sql);
    auto it = prepared_.find(key);
    if (it == prepared_.end()) {
      std::string name = "s" + std::to_string(prepared_.size() + 1);
      PgResultPtr res(PQprepare(conn_, name.c_str(), key.c_str(), 0, nullptr));
      if (auto err = check(res.get(), "prepare"); !err) return err.error();
      it = prepared_.emplace(std::move(key), std::move(name)).first;
    }
    std::vector<std::string> ints;
    ints.reserve(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    for (std::size_t n = 0; n < params.size(); ++n) {
      if (const auto* iv = std::get_if<std::int64_t>(&params[n])) {
        ints.push_back(std::to_string(*iv));
        values[n] = ints.back().c_str();
      } else if (const auto* sv = std::get_if<std::string>(&params[n])) {
        values[n] = sv->c_str();
      }
    }
    PgResultPtr res(PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(params.size()),
                                   values.data(), nullptr, nullptr, 0));
    if (auto err = check(res.get(), "query"); !err) return err.error();
    return to_rows(res.get());
  }

  std::int64_t changes() override { return changes_; }

  core::Result<Rows> exec_text(std::string_view sql) {
    std::string text(sql);
    PgResultPtr res(PQexec(conn_, text.c_str()));
    if (auto err = check(res.get(), "exec"); !err) return err.error();
    return to_rows(res.get());
  }

  core::Result<void> check(PGresult* res, std::string_view what) {
    last_sqlstate_.clear();
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      const char* tuples = PQcmdTuples(res);
      changes_ = 0;
      if (tuples && *tuples) std::from_chars(tuples, tuples + std::strlen(tuples), changes_);
      return {};
    }
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    last_sqlstate_ = state ? state : "";
    std::string msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn_);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    std::string detail = std::string(what) + ": " + msg;
    if (bad() || last_sqlstate_.starts_with("08") || last_sqlstate_ == "57P01" ||
        last_sqlstate_ == "57P02" || last_sqlstate_ == "57P03") {
      return core::Error(core::Errc::unavailable, "store_unavailable", std::move(detail));
    }
    if (last_sqlstate_ == "57014") return core::Error(core::Errc::timeout, std::move(detail));
    if (last_sqlstate_.starts_with("23")) return core::Error(core::Errc::conflict, detail);
    return core::Error(core::Errc::internal, std::move(detail));
  }

 private:
  static Rows to_rows(PGresult* res) {
    Rows rows;
    int n = PQntuples(res);
    int ncols = PQnfields(res);
    rows.reserve(static_cast<std::size_t>(n));
    for (int r = 0; r < n; ++r) {
      Row row;
      row.cols.reserve(static_cast<std::size_t>(ncols));
      for (int c = 0; c < ncols; ++c) {
        if (PQgetisnull(res, r, c)) {
          row.cols.emplace_back(std::monostate{});
        } else {
          row.cols.emplace_back(
              std::string(PQgetvalue(res, r, c), static_cast<std::size_t>(PQgetlength(res, r, c))));
        }
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  PGconn* conn_;
  std::unordered_map<std::string, std::string> prepared_;  // sql -> statement name
  std::string last_sqlstate_;
  std::int64_t changes_ = 0;
};

std::string pg_describe(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    PQfreemem(err);
    return "postgres:<unparsable DATABASE_URL>";
  }
  std::string out = "postgres:";
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    std::string_view k = o->keyword;
    if (o->val && (k == "host" || k == "port" || k == "dbname" || k == "user")) {
      out += std::string(k) + "=" + o->val + " ";
    }
  }
  PQconninfoFree(opts);
  if (out.back() == ' ') out.pop_back();
  return out;
}

namespace {

core::Result<std::unique_ptr<PgConn>> pg_open_conn(const PgOptions& options) {
  std::string timeout = std::to_string(options.connect_timeout_s);
  // Earlier entries are overridden by what the expanded DSN sets itself.
  const char* keys[] = {"connect_timeout", "fallback_application_name", "dbname", nullptr};
  const char* vals[] = {timeout.c_str(), "edgecoder", options.conninfo.c_str(), nullptr};
  PGconn* raw = PQconnectdbParams(keys, vals, 1);
  auto conn = std::make_unique<PgConn>(raw);
  if (!raw || PQstatus(raw) != CONNECTION_OK) {
    std::string msg = raw ? PQerrorMessage(raw) : "out of memory";
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return core::Error(core::Errc::unavailable, "store_unavailable",
                       "cannot connect to " + pg_describe(options.conninfo) + ": " + msg);
  }
  std::string setup = "SET statement_timeout = " + std::to_string(options.statement_timeout_ms) +
                      "; SET client_min_messages = warning";
  if (auto r = conn->exec_text(setup); !r) return r.error();
  return conn;
}

class PgSessionImpl final : public PgSession {
 public:
  explicit PgSessionImpl(std::unique_ptr<PgConn> conn) : conn_(std::move(conn)) {}
  core::Result<Rows> exec(std::string_view sql, const std::vector<Value>& params) override {
    return conn_->query(sql, params);
  }
  core::Result<void> exec_script(std::string_view script) override {
    auto r = conn_->exec_text(script);
    if (!r) return r.error();
    return {};
  }
  core::Result<void> transaction(const Job& job) override {
    if (auto r = conn_->exec_text("BEGIN"); !r) return r.error();
    auto r = job(*conn_);
    if (!r) {
      (void)conn_->exec_text("ROLLBACK");
      return r.error();
    }
    if (auto c = conn_->exec_text("COMMIT"); !c) return c.error();
    return {};
  }

 private:
  std::unique_ptr<PgConn> conn_;
};

// One write waiting for a batch: a blocking caller's job (job set; the caller waits on cv) or
// a batched call (call set; `committed` is called instead).
struct PgPendingWrite {
  const Job* job = nullptr;
  std::function<void()> call;
  std::function<void(core::Result<void>)> committed;
  core::Result<void> result;  // written by the batcher before done
  bool lost_race = false;     // a deadlock/serialization loss: re-run alone after the batch
  std::mutex mu;
  std::condition_variable cv;  // wakes only this caller
  bool done = false;           // guarded by mu
};

class PgDb;
// Set on a batcher thread while it runs a batched call: that call's write()s join the batch's
// transaction on this connection.
thread_local PgDb* tl_pg_batching_db = nullptr;
thread_local PgConn* tl_pg_batching_conn = nullptr;

// Writes are group-committed: batcher threads (half the pool's connections) each take what is
// queued, run it in one transaction with a savepoint per job, and commit once — so concurrent
// writes share a WAL flush instead of paying one each.
class PgDb final : public Db {
 public:
  explicit PgDb(PgOptions options)
      : options_(std::move(options)),
        pool_(static_cast<std::size_t>(std::max(1, options_.thread_pool_size))) {
    reconnect_thread_ = std::thread([this] { reconnect_loop(); });
    const int batchers = std::max(1, options_.pool_size / 2);
    for (int i = 0; i < batchers; ++i) {
      batcher_threads_.emplace_back([this] { batcher_loop(); });
    }
  }

  ~PgDb() override {
    {
      std::lock_guard lock(wq_mu_);
      wq_stopping_ = true;
    }
    wq_cv_.notify_all();
    for (auto& t : batcher_threads_) t.join();
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    reconnect_thread_.join();
    pool_.join();
  }

  Dialect dialect() const override { return Dialect::postgres; }
  std::string describe() const override { return pg_describe(options_.conninfo); }
  bool ready() override { return !down_.load(); }
  void submit(std::function<void()> task) override { boost::asio::post(pool_, std::move(task)); }

  void add_idle(std::unique_ptr<PgConn> conn) {
    std::lock_guard lock(mu_);
    ++open_;
    idle_.push_back(std::move(conn));
  }

  core::Result<void> read(const Job& job) override {
    return run(job, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  }
  core::Result<void> write(const Job& job) override {
    if (tl_pg_batching_db == this) return run_in_savepoint(*tl_pg_batching_conn, job);
    auto pending = std::make_shared<PgPendingWrite>();
    pending->job = &job;
    if (!enqueue(pending)) {
      return core::Error(core::Errc::unavailable, "store_unavailable", "closing");
    }
    std::unique_lock lock(pending->mu);
    pending->cv.wait(lock, [&] { return pending->done; });
    return std::move(pending->result);
  }

  void submit_batched(std::function<void()> call,
                      std::function<void(core::Result<void>)> committed) override {
    auto pending = std::make_shared<PgPendingWrite>();
    pending->call = std::move(call);
    pending->committed = std::move(committed);
    if (!enqueue(pending)) {
      pending->committed(core::Error(core::Errc::unavailable, "store_unavailable", "closing"));
    }
  }

 private:
  static constexpr std::size_t kPgMaxBatch = 256;  // jobs per transaction

  bool enqueue(std::shared_ptr<PgPendingWrite> pending) {
    {
      std::lock_guard lock(wq_mu_);
      if (wq_stopping_) return false;
      wq_.push_back(std::move(pending));
    }
    wq_cv_.notify_one();
    return true;
  }

  void batcher_loop() {
    std::vector<std::shared_ptr<PgPendingWrite>> batch;
    for (;;) {
      {
        std::unique_lock lock(wq_mu_);
        wq_cv_.wait(lock, [&] { return wq_stopping_ || !wq_.empty(); });
        if (wq_.empty()) return;  // stopping and drained
        while (!wq_.empty() && batch.size() < kPgMaxBatch) {
          batch.push_back(std::move(wq_.front()));
          wq_.pop_front();
        }
      }
      run_batch(batch);
      for (auto& p : batch) {
        if (p->committed) {
          p->committed(std::move(p->result));
          continue;
        }
        {
          std::lock_guard lock(p->mu);
          p->done = true;
        }
        p->cv.notify_one();
      }
      batch.clear();
    }
  }

  // One transaction for the whole batch; each job in its own savepoint so a failing job leaves
  // the others intact. On a failed BEGIN or COMMIT every job gets that error.
  void run_batch(std::vector<std::shared_ptr<PgPendingWrite>>& batch) {
    auto fail_all = [&](const core::Error& e) {
      for (auto& p : batch) p->result = e;
    };
    auto conn = acquire();
    if (!conn) return fail_all(conn.error());
    auto b = (*conn)->exec_text("BEGIN");
    if (!b && (*conn)->bad()) {
      // A pooled connection the server dropped (restart): one fresh try.
      release(std::move(*conn), true);
      conn = acquire();
      if (!conn) return fail_all(conn.error());
      b = (*conn)->exec_text("BEGIN");
    }
    PgConn& tx = **conn;
    if (!b) {
      fail_all(b.error());
      release(std::move(*conn), tx.bad());
      return;
    }
    for (auto& p : batch) {
      if (p->job != nullptr) {
        p->result = run_in_savepoint(tx, *p->job, &p->lost_race);
        continue;
      }
      tl_pg_batching_db = this;
      tl_pg_batching_conn = &tx;
      try {
        p->call();
      } catch (const std::exception& e) {
        core::log::error("store", "batched_call_exception", {{"what", e.what()}});
      }
      tl_pg_batching_db = nullptr;
      tl_pg_batching_conn = nullptr;
    }
    auto c = tx.exec_text("COMMIT");
    if (!c) {
      for (auto& p : batch) {
        if (p->result) p->result = c.error();
      }
      // A batched call's own result is replaced by the commit error in Store::run_write().
    }
    const bool broken = tx.bad();
    release(std::move(*conn), broken);
    // Retrying inside the batch cannot win a deadlock: the locks of the batch's earlier jobs
    // stay held. Such a job runs again alone, in its own transaction with its own retries.
    for (auto& p : batch) {
      if (p->lost_race) p->result = run(*p->job, "BEGIN");
    }
  }

  // Runs a job in a savepoint. One that lost a deadlock or serialization race is retried there,
  // or, when `lost_race` is given, rolled back and flagged for the caller to run again alone.
  static core::Result<void> run_in_savepoint(PgConn& tx, const Job& job,
                                             bool* lost_race = nullptr) {
    for (int attempt = 0;; ++attempt) {
      if (auto r = tx.exec_text("SAVEPOINT job"); !r) return r.error();
      core::Result<void> result;
      try {
        result = job(tx);
      } catch (const std::exception& e) {
        result = core::Error(core::Errc::internal, e.what());
      }
      if (result) {
        if (auto r = tx.exec_text("RELEASE SAVEPOINT job"); !r) return r.error();
        return result;
      }
      if (tx.bad()) return result;
      const bool raced = pg_retryable(tx.last_sqlstate());
      if (auto r = tx.exec_text("ROLLBACK TO SAVEPOINT job"); !r) return r.error();
      (void)tx.exec_text("RELEASE SAVEPOINT job");
      if (raced && lost_race != nullptr) {
        *lost_race = true;
        return result;
      }
      if (!(raced && attempt < kPgMaxTxRetries)) return result;
      std::this_thread::sleep_for(std::chrono::milliseconds(1 << std::min(attempt, 5)));
    }
  }

  core::Result<void> run(const Job& job, const char* begin) {
    for (int attempt = 0;; ++attempt) {
      auto conn = acquire();
      if (!conn) return conn.error();
      PgConn& c = **conn;
      auto b = c.exec_text(begin);
      if (!b && c.bad()) {
        // A pooled connection the server dropped (restart): one fresh try.
        release(std::move(*conn), true);
        conn = acquire();
        if (!conn) return conn.error();
        b = (*conn)->exec_text(begin);
      }
      PgConn& tx = **conn;
      if (!b) {
        auto err = b.error();
        bool broken = tx.bad();
        release(std::move(*conn), broken);
        return err;
      }
      core::Result<void> result;
      try {
        result = job(tx);
      } catch (const std::exception& e) {
        result = core::Error(core::Errc::internal, e.what());
      }
      if (result) {
        auto c2 = tx.exec_text("COMMIT");
        if (c2) {
          release(std::move(*conn), false);
          return {};
        }
        result = c2.error();
      } else if (!tx.bad()) {
        (void)tx.exec_text("ROLLBACK");
      }
      bool retry = pg_retryable(tx.last_sqlstate()) && attempt < kPgMaxTxRetries;
      bool broken = tx.bad();
      release(std::move(*conn), broken);
      if (!retry) return result;
      std::this_thread::sleep_for(std::chrono::milliseconds(1 << std::min(attempt, 5)));
    }
  }

  core::Result<std::unique_ptr<PgConn>> acquire() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (down_) {
        return core::Error(core::Errc::unavailable, "store_unavailable",
                           "database unreachable: " + last_error_);
      }
      if (!idle_.empty()) {
        auto conn = std::move(idle_.back());
        idle_.pop_back();
        return conn;
      }
      if (open_ < options_.pool_size) {
        ++open_;
        lock.unlock();
        auto conn = pg_open_conn(options_);
        if (conn) return conn;
        mark_down(conn.error().detail);
        return conn.error();
      }
      if (cv_.wait_for(lock, std::chrono::milliseconds(options_.statement_timeout_ms)) ==
          std::cv_status::timeout) {
        return core::Error(core::Errc::timeout, "no database connection free in time");
      }
    }
  }

  void release(std::unique_ptr<PgConn> conn, bool broken) {
    if (broken) {
      conn.reset();
      std::lock_guard lock(mu_);
      --open_;
      cv_.notify_all();
      return;
    }
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(conn));
    cv_.notify_one();
  }

  // Called without mu_ held, after a failed connect (the slot is given back).
  void mark_down(const std::string& why) {
    std::lock_guard lock(mu_);
    --open_;
    if (!down_) core::log::warn("store", "pg_unreachable", {{"detail", why}});
    last_error_ = why;
    down_ = true;
    cv_.notify_all();
  }

  void reconnect_loop() {
    auto backoff = kPgBackoffMin;
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait_for(lock, kPgHealthInterval, [&] { return stopping_ || down_.load(); });
      if (stopping_) return;
      if (!down_) {
        // Idle health probe, so ready() notices an outage even when nothing is being written.
        if (idle_.empty()) continue;
        auto probe = std::move(idle_.back());
        idle_.pop_back();
        lock.unlock();
        auto r = probe->exec_text("SELECT 1");
        bool broken = !r && probe->bad();
        lock.lock();
        if (!broken) {
          idle_.push_back(std::move(probe));
          cv_.notify_one();
          continue;
        }
        --open_;
        probe.reset();
        if (!down_) core::log::warn("store", "pg_unreachable", {{"detail", r.error().detail}});
        last_error_ = r.error().detail;
        down_ = true;
        cv_.notify_all();
        continue;
      }
      lock.unlock();
      auto conn = pg_open_conn(options_);
      lock.lock();
      if (stopping_) return;
      if (conn) {
        // Connections opened before the outage are likely dead; start over.
        open_ -= static_cast<int>(idle_.size());
        idle_.clear();
        ++open_;
        idle_.push_back(std::move(*conn));
        down_ = false;
        backoff = kPgBackoffMin;
        core::log::info("store", "pg_reconnected", {{"db", pg_describe(options_.conninfo)}});
        cv_.notify_all();
        continue;
      }
      last_error_ = conn.error().detail;
      cv_.wait_for(lock, backoff, [&] { return stopping_; });
      backoff = std::min(backoff * 2,
                         std::chrono::duration_cast<std::chrono::milliseconds>(kPgBackoffMax));
    }
  }

  // Constants after construction.
  const PgOptions options_;
  boost::asio::thread_pool pool_;  // runs submit()ted work (Store::run)

  std::mutex mu_;
  std::condition_variable cv_;                 // pool slot freed / outage state; guarded by mu_
  std::vector<std::unique_ptr<PgConn>> idle_;  // guarded by mu_
  int open_ = 0;                               // connections idle or in use; guarded by mu_
  std::atomic<bool> down_{false};              // written under mu_
  std::string last_error_;                     // guarded by mu_
  bool stopping_ = false;                      // guarded by mu_
  std::thread reconnect_thread_;

  // Writes waiting for a batcher.
  std::mutex wq_mu_;
  std::condition_variable wq_cv_;                   // guarded by wq_mu_
  std::deque<std::shared_ptr<PgPendingWrite>> wq_;  // guarded by wq_mu_
  bool wq_stopping_ = false;                        // guarded by wq_mu_
  std::vector<std::thread> batcher_threads_;
};

}  // namespace

core::Result<std::unique_ptr<PgSession>> pg_connect(const PgOptions& options) {
  auto conn = pg_open_conn(options);
  if (!conn) return conn.error();
  std::unique_ptr<PgSession> session = std::make_unique<PgSessionImpl>(std::move(*conn));
  return session;
}

core::Result<std::unique_ptr<Db>> open_pg_db(const PgOptions& options) {
  auto first = pg_open_conn(options);
  if (!first) return first.error();
  auto db = std::make_unique<PgDb>(options);
  db->add_idle(std::move(*first));
  std::unique_ptr<Db> out = std::move(db);
  return out;
}

}  // namespace edgecoder::store::sql

// SQLite backend: RAII over sqlite3 handles and statements, one writer thread per file that group
// commits concurrent writes (each job in its own savepoint, one COMMIT + sync per batch; callers
// are released only after COMMIT returned), a pool of reader connections (WAL snapshots), and
// the online backup.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
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

constexpr int kSqliteBusyTimeoutMs = 10'000;
constexpr std::size_t kSqliteMaxBatch = 4096;  // jobs per group commit
// Longest the writer waits to gather a batch as big as the previous one.
constexpr auto kSqliteMaxGather = std::chrono::microseconds(500);

core::Error sqlite_error(sqlite3* db, int rc, std::string_view what) {
  std::string detail = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  int primary = rc & 0xff;
  switch (primary) {
    case SQLITE_CONSTRAINT:
      return core::Error(core::Errc::conflict, std::move(detail));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return core::Error(core::Errc::unavailable, "store_unavailable", std::move(detail));
    default:
      return core::Error(core::Errc::internal, std::move(detail));
  }
}

// "$12" -> "?12" outside quoted strings and identifiers.
std::string sqlite_rewrite_placeholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  char quote = 0;
  for (char c : sql) {
    if (quote) {
      if (c == quote) quote = 0;
      out.push_back(c);
      continue;
    }
    if (c == '\'' || c == '"') quote = c;
    out.push_back(c == '$' ? '?' : c);
  }
  return out;
}

}  // namespace

struct SqliteSqlHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view sql) const { return std::hash<std::string_view>{}(sql); }
};

class SqliteConn final : public Tx {
 public:
  explicit SqliteConn(sqlite3* db) : db_(db) {}
  ~SqliteConn() override {
    for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  SqliteConn(const SqliteConn&) = delete;
  SqliteConn& operator=(const SqliteConn&) = delete;

  Dialect dialect() const override { return Dialect::sqlite; }

  core::Result<Rows> query(std::string_view sql, const std::vector<Value>& params) override {
    auto prepared = prepare(sql);
    if (!prepared) return prepared.error();
    sqlite3_stmt* stmt = *prepared;
    for (std::size_t n = 0; n < params.size(); ++n) {
      int idx = static_cast<int>(n + 1);
      int rc = SQLITE_OK;
      if (const auto* iv = std::get_if<std::int64_t>(&params[n])) {
        rc = sqlite3_bind_int64(stmt, idx, *iv);
      } else if (const auto* sv = std::get_if<std::string>(&params[n])) {
        rc = sqlite3_bind_text(stmt, idx, sv->data(), static_cast<int>(sv->size()), SQLITE_STATIC);
      } else {
        rc = sqlite3_bind_null(stmt, idx);
      }
      if (rc != SQLITE_OK) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
        return sqlite_error(db_, rc, "bind");
      }
    }
    Rows rows;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      Row row;
      int ncols = sqlite3_column_count(stmt);
      row.cols.reserve(static_cast<std::size_t>(ncols));
      for (int c = 0; c < ncols; ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_NULL:
            row.cols.emplace_back(std::monostate{});
            break;
          case SQLITE_INTEGER:
            row.cols.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(stmt, c)));
            break;
          default: {
            const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
            int len = sqlite3_column_bytes(stmt, c);
            row.cols.emplace_back(std::string(text ? text : "", static_cast<std::size_t>(len)));
          }
        }
      }
      rows.push_back(std::move(row));
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE) return sqlite_error(db_, rc, "step");
    return rows;
  }

  std::int64_t changes() override { return sqlite3_changes64(db_); }

  core::Result<void> exec(const char* sql) {
    char* msg = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
      std::string detail = msg ? msg : sqlite3_errstr(rc);
      sqlite3_free(msg);
      auto err = sqlite_error(nullptr, rc, sql);
      err.detail = std::string(sql) + ": " + detail;
      return err;
    }
    return {};
  }

  // A cached statement (short fixed statements like SAVEPOINT included).
  core::Result<void> run_simple(std::string_view sql) {
    auto rows = query(sql, {});
    if (!rows) return rows.error();
    return {};
  }

  sqlite3* handle() { return db_; }

 private:
  core::Result<sqlite3_stmt*> prepare(std::string_view sql) {
    if (auto it = stmts_.find(sql); it != stmts_.end()) return it->second;
    std::string key(sql);
    std::string rewritten = sqlite_rewrite_placeholders(sql);
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, rewritten.c_str(), static_cast<int>(rewritten.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return sqlite_error(db_, rc, "prepare " + key);
    stmts_.emplace(std::move(key), stmt);
    return stmt;
  }

  sqlite3* db_;
  // Keyed by the SQL text; looked up without copying it. Finalized in the destructor.
  std::unordered_map<std::string, sqlite3_stmt*, SqliteSqlHash, std::equal_to<>> stmts_;
};

void SqliteConnDeleter::operator()(SqliteConn* conn) const { delete conn; }

core::Result<SqliteConnPtr> sqlite_connect(const std::filesystem::path& file, bool create) {
  // Memory statistics take a process-wide mutex on every SQLite allocation; nothing reads them.
  // Settable only before SQLite initialises (the first open); later calls change nothing.
  static std::once_flag configured;
  std::call_once(configured, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(file.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    core::Error err = sqlite_error(db, rc, "open " + file.string());
    sqlite3_close_v2(db);
    return err;
  }
  SqliteConnPtr conn(new SqliteConn(db));
  sqlite3_busy_timeout(db, kSqliteBusyTimeoutMs);
  sqlite3_extended_result_codes(db, 1);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                             "PRAGMA foreign_keys=OFF", "PRAGMA temp_store=MEMORY"}) {
    if (auto r = conn->exec(pragma); !r) return r.error();
  }
  if (create) ::chmod(file.c_str(), 0600);
  return conn;
}

core::Result<void> sqlite_transaction(SqliteConn& conn, const Job& job) {
  if (auto r = conn.exec("BEGIN IMMEDIATE"); !r) return r.error();
  auto r = job(conn);
  if (!r) {
    (void)conn.exec("ROLLBACK");
    return r.error();
  }
  if (auto c = conn.exec("COMMIT"); !c) {
    (void)conn.exec("ROLLBACK");
    return c.error();
  }
  return {};
}

core::Result<void> sqlite_exec_script(Tx& tx, std::string_view script) {
  auto& conn = static_cast<SqliteConn&>(tx);
  std::string text(script);
  return conn.exec(text.c_str());
}

core::Result<void> sqlite_backup(const std::filesystem::path& source,
                                 const std::filesystem::path& target) {
  auto src = sqlite_connect(source, false);
  if (!src) return src.error();
  std::filesystem::path tmp = target;
  tmp += ".partial";
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
  sqlite3* dst = nullptr;
  int rc = sqlite3_open_v2(tmp.c_str(), &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    core::Error err = sqlite_error(dst, rc, "open " + tmp.string());
    sqlite3_close_v2(dst);
    return err;
  }
  ::chmod(tmp.c_str(), 0600);
  sqlite3_backup* bk = sqlite3_backup_init(dst, "main", (*src)->handle(), "main");
  if (!bk) {
    core::Error err = sqlite_error(dst, sqlite3_errcode(dst), "backup");
    sqlite3_close_v2(dst);
    return err;
  }
  // One step copies every page under a single read transaction: a consistent snapshot even
  // while the service keeps writing (WAL readers do not block the writer).
  do {
    rc = sqlite3_backup_step(bk, -1);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) sqlite3_sleep(20);
  } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
  sqlite3_backup_finish(bk);
  if (rc != SQLITE_DONE) {
    core::Error err = sqlite_error(dst, rc, "backup");
    sqlite3_close_v2(dst);
    return err;
  }
  // The copy is a standalone file: no -wal sidecar to carry around.
  char* msg = nullptr;
  rc = sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", nullptr, nullptr, &msg);
  sqlite3_free(msg);
  sqlite3_close_v2(dst);
  if (rc != SQLITE_OK) return core::Error(core::Errc::internal, "backup: journal mode");
  std::filesystem::rename(tmp, target, ec);
  if (ec) return core::Error(core::Errc::internal, "backup: rename: " + ec.message());
  return {};
}

namespace {

// One unit of work for the writer thread: either a blocking caller's job (job set; the caller
// waits on cv) or a batched call (call set; `committed` is called instead of waking anyone).
// Shared by the caller and the writer so the writer can signal after unlocking.
struct SqlitePendingWrite {
  const Job* job = nullptr;
  std::function<void()> call;
  std::function<void(core::Result<void>)> committed;
  core::Result<void> result;  // written by the writer before done
  std::mutex mu;
  std::condition_variable cv;  // wakes only this caller
  bool done = false;           // guarded by mu
};

class SqliteDb;
// The SqliteDb whose writer thread is running a batched call right now on this thread: its
// write()s run inline, inside the batch's transaction.
thread_local SqliteDb* tl_batching_db = nullptr;

class SqliteDb final : public Db {
 public:
  SqliteDb(SqliteOptions options, SqliteConnPtr writer)
      : options_(std::move(options)),
        pool_(static_cast<std::size_t>(std::max(1, options_.thread_pool_size))),
        writer_conn_(std::move(writer)) {
    writer_thread_ = std::thread([this] { writer_loop(); });
    releaser_thread_ = std::thread([this] { releaser_loop(); });
  }

  ~SqliteDb() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    writer_thread_.join();
    {
      std::lock_guard lock(release_mu_);
      release_stopping_ = true;
    }
    release_cv_.notify_one();
    releaser_thread_.join();
    pool_.join();
    writer_conn_.reset();
    {
      std::lock_guard lock(readers_mu_);
      readers_.clear();
    }
    if (options_.lock_fd >= 0) ::close(options_.lock_fd);
  }

  Dialect dialect() const override { return Dialect::sqlite; }
  std::string describe() const override { return "sqlite:" + options_.file.string(); }
  bool ready() override { return healthy_.load(); }
  void submit(std::function<void()> task) override { boost::asio::post(pool_, std::move(task)); }

  core::Result<void> read(const Job& job) override {
    auto conn = borrow_reader();
    if (!conn) return conn.error();
    core::Result<void> result = run_read(**conn, job);
    return_reader(std::move(*conn));
    return result;
  }

  core::Result<void> write(const Job& job) override {
    if (tl_batching_db == this) {
      return run_in_savepoint(*writer_conn_, job);
    }
    auto pending = std::make_shared<SqlitePendingWrite>();
    pending->job = &job;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return core::Error(core::Errc::unavailable, "store_unavailable", "closing");
      queue_.push_back(pending);
      if (queue_.size() == 1 || queue_.size() == want_) work_cv_.notify_one();
    }
    std::unique_lock lock(pending->mu);
    pending->cv.wait(lock, [&] { return pending->done; });
    return std::move(pending->result);
  }

  void submit_batched(std::function<void()> call,
                      std::function<void(core::Result<void>)> committed) override {
    auto pending = std::make_shared<SqlitePendingWrite>();
    pending->call = std::move(call);
    pending->committed = std::move(committed);
    {
      std::lock_guard lock(mu_);
      if (!stopping_) {
        queue_.push_back(pending);
        if (queue_.size() == 1 || queue_.size() == want_) work_cv_.notify_one();
        return;
      }
    }
    pending->committed(core::Error(core::Errc::unavailable, "store_unavailable", "closing"));
  }

 private:
  static core::Result<void> run_read(SqliteConn& conn, const Job& job) {
    if (auto r = conn.run_simple("BEGIN"); !r) return r.error();
    core::Result<void> result;
    try {
      result = job(conn);
    } catch (const std::exception& e) {
      result = core::Error(core::Errc::internal, e.what());
    }
    (void)conn.run_simple("COMMIT");
    return result;
  }

  core::Result<SqliteConnPtr> borrow_reader() {
    {
      std::lock_guard lock(readers_mu_);
      if (!readers_.empty()) {
        SqliteConnPtr conn = std::move(readers_.back());
        readers_.pop_back();
        return conn;
      }
    }
    auto conn = sqlite_connect(options_.file, false);
    if (!conn) return conn.error();
    (void)(*conn)->exec("PRAGMA query_only=ON");
    return conn;
  }

  void return_reader(SqliteConnPtr conn) {
    std::lock_guard lock(readers_mu_);
    if (readers_.size() < static_cast<std::size_t>(options_.reader_pool)) {
      readers_.push_back(std::move(conn));
    }
  }

  void writer_loop() {
    std::vector<std::shared_ptr<SqlitePendingWrite>> batch;
    auto last_commit = std::chrono::microseconds(0);
    for (;;) {
      {
        std::unique_lock lock(mu_);
        work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        // Adaptive group commit: when the last batch was bigger than what is queued now, the
        // callers it released are probably about to write again; wait a fraction of a commit
        // for them so the next sync is shared by as many writes as the last one.
        if (queue_.size() < want_ && !stopping_) {
          auto pause = std::min(last_commit / 4, kSqliteMaxGather);
          work_cv_.wait_for(lock, pause, [&] { return stopping_ || queue_.size() >= want_; });
        }
        while (!queue_.empty() && batch.size() < kSqliteMaxBatch) {
          batch.push_back(queue_.front());
          queue_.pop_front();
        }
      }
      auto started = std::chrono::steady_clock::now();
      commit_batch(batch);
      last_commit = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - started);
      {
        std::lock_guard lock(mu_);
        want_ = batch.size();
      }
      // Waking each caller is a syscall; the releaser does it while this thread already runs
      // the next batch.
      {
        std::lock_guard lock(release_mu_);
        to_release_.insert(to_release_.end(), std::make_move_iterator(batch.begin()),
                           std::make_move_iterator(batch.end()));
      }
      release_cv_.notify_one();
      batch.clear();
    }
  }

  void releaser_loop() {
    std::vector<std::shared_ptr<SqlitePendingWrite>> releasing;
    for (;;) {
      {
        std::unique_lock lock(release_mu_);
        release_cv_.wait(lock, [&] { return release_stopping_ || !to_release_.empty(); });
        if (to_release_.empty()) return;  // stopping, and the writer has already stopped
        releasing.swap(to_release_);
      }
      for (auto& p : releasing) {
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
      releasing.clear();
    }
  }

  // One job in its own savepoint, so a failing job leaves the rest of the batch intact.
  static core::Result<void> run_in_savepoint(SqliteConn& conn, const Job& job) {
    if (auto r = conn.run_simple("SAVEPOINT job"); !r) return r.error();
    core::Result<void> result;
    try {
      result = job(conn);
    } catch (const std::exception& e) {
      result = core::Error(core::Errc::internal, e.what());
    }
    if (!result) (void)conn.run_simple("ROLLBACK TO job");
    (void)conn.run_simple("RELEASE job");
    return result;
  }

  void commit_batch(std::vector<std::shared_ptr<SqlitePendingWrite>>& batch) {
    SqliteConn& conn = *writer_conn_;
    if (auto r = conn.run_simple("BEGIN IMMEDIATE"); !r) {
      for (auto& p : batch) p->result = r.error();
      healthy_ = false;
      return;
    }
    for (auto& p : batch) {
      if (p->job != nullptr) {
        p->result = run_in_savepoint(conn, *p->job);
        continue;
      }
      // A batched call: its write()s come back here through tl_batching_db.
      tl_batching_db = this;
      try {
        p->call();
      } catch (const std::exception& e) {
        core::log::error("store", "batched_call_exception", {{"what", e.what()}});
      }
      tl_batching_db = nullptr;
    }
    // synchronous=FULL: COMMIT returns after the WAL is synced; only then are callers released.
    if (auto r = conn.run_simple("COMMIT"); !r) {
      (void)conn.exec("ROLLBACK");
      core::log::error("store", "sqlite_commit_failed", {{"detail", r.error().detail}});
      for (auto& p : batch) {
        if (p->result) p->result = r.error();
      }
      healthy_ = false;
      return;
    }
    healthy_ = true;
  }

  // Constants after construction.
  const SqliteOptions options_;
  boost::asio::thread_pool pool_;  // runs submit()ted work (Store::run)

  // Writer state.
  std::mutex mu_;
  std::condition_variable work_cv_;                        // writer waits for work; guarded by mu_
  std::deque<std::shared_ptr<SqlitePendingWrite>> queue_;  // guarded by mu_
  bool stopping_ = false;                                  // guarded by mu_
  // Size of the last batch; the writer briefly gathers up to it. Guarded by mu_.
  std::size_t want_ = 1;
  SqliteConnPtr writer_conn_;  // used only by writer_thread_
  std::atomic<bool> healthy_{true};
  std::thread writer_thread_;

  // Committed writes whose callers are still to be told (by releaser_thread_).
  std::mutex release_mu_;
  std::condition_variable release_cv_;                           // guarded by release_mu_
  std::vector<std::shared_ptr<SqlitePendingWrite>> to_release_;  // guarded by release_mu_
  bool release_stopping_ = false;                                // guarded by release_mu_
  std::thread releaser_thread_;

  std::mutex readers_mu_;
  std::vector<SqliteConnPtr> readers_;  // idle reader connections; guarded by readers_mu_
};

}  // namespace

core::Result<std::unique_ptr<Db>> open_sqlite_db(const SqliteOptions& options) {
  auto writer = sqlite_connect(options.file, true);
  if (!writer) return writer.error();
  std::unique_ptr<Db> db = std::make_unique<SqliteDb>(options, std::move(*writer));
  return db;
}

}  // namespace edgecoder::store::sql

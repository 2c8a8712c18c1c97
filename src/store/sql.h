// Internal to src/store: the small SQL layer the store logic is written against once, and the two
// backends (sqlite_db.cpp, pg_db.cpp) implement. SQL uses PostgreSQL placeholders ($1, $2, ...);
// the SQLite backend rewrites them to ?1, ?2, ... Values travel as null, int64 or text.
// Thread-safety: a Tx is used by one thread for the duration of one job. Db methods may be called
// from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/result.h"
#include "store/store.h"

namespace edgecoder::store::sql {

using Value = std::variant<std::monostate, std::int64_t, std::string>;

struct Row {
  std::vector<Value> cols;
  std::int64_t i(std::size_t n) const;        // int column (text parsed; null = 0)
  const std::string& s(std::size_t n) const;  // text column (null = "")
  bool null(std::size_t n) const { return std::holds_alternative<std::monostate>(cols.at(n)); }
};
using Rows = std::vector<Row>;

enum class Dialect { sqlite, postgres };

// One transaction (or, in a batched SQLite commit, one savepoint inside it).
class Tx {
 public:
  virtual ~Tx() = default;
  virtual Dialect dialect() const = 0;
  // Runs one statement; returns its rows (RETURNING included).
  virtual core::Result<Rows> query(std::string_view sql, const std::vector<Value>& params) = 0;
  // Rows changed by the last statement.
  virtual std::int64_t changes() = 0;
};

using Job = std::function<core::Result<void>(Tx&)>;

// A database the store logic runs jobs against.
class Db {
 public:
  virtual ~Db() = default;
  virtual Dialect dialect() const = 0;
  // Runs `job` in a read-only transaction (a consistent snapshot).
  virtual core::Result<void> read(const Job& job) = 0;
  // Runs `job` atomically and durably: on success it has been committed and synced; on error
  // nothing it did remains.
  virtual core::Result<void> write(const Job& job) = 0;
  virtual bool ready() = 0;
  virtual std::string describe() const = 0;
  virtual void submit(std::function<void()> task) = 0;
  // Runs `call` where its writes group-commit best, then calls `committed` once what it wrote
  // is durable (with the shared commit's error if that failed). SQLite: on the writer thread,
  // inside the batch being built, so every write() the call makes joins that transaction and no
  // thread blocks per caller. Default: on the pool, where each write() commits by itself.
  virtual void submit_batched(std::function<void()> call,
                              std::function<void(core::Result<void>)> committed) {
    submit([call = std::move(call), committed = std::move(committed)] {
      call();
      committed({});
    });
  }
};

// ---- SQLite backend (sqlite_db.cpp) ----

struct SqliteOptions {
  std::filesystem::path file;
  int reader_pool = 8;  // connections kept for reads
  int thread_pool_size = 16;
  int lock_fd = -1;  // flock()ed lock file; closed (released) when the Db is destroyed
};
// Opens (creating if missing, mode 0600) with WAL, synchronous=FULL and busy_timeout. The caller
// has already taken the file lock and run the migrations.
core::Result<std::unique_ptr<Db>> open_sqlite_db(const SqliteOptions& options);

// A single connection for migrations, status and backup (no batching).
class SqliteConn;
struct SqliteConnDeleter {
  void operator()(SqliteConn* conn) const;
};
using SqliteConnPtr = std::unique_ptr<SqliteConn, SqliteConnDeleter>;
core::Result<SqliteConnPtr> sqlite_connect(const std::filesystem::path& file, bool create);
// Runs `job` in one IMMEDIATE transaction on the connection.
core::Result<void> sqlite_transaction(SqliteConn& conn, const Job& job);
// Runs a script of several statements (a migration) inside the current transaction.
core::Result<void> sqlite_exec_script(Tx& tx, std::string_view script);
// Online copy of the database into `target` (consistent even while others write).
core::Result<void> sqlite_backup(const std::filesystem::path& source,
                                 const std::filesystem::path& target);

// ---- PostgreSQL backend (pg_db.cpp) ----

struct PgOptions {
  std::string conninfo;  // URI or keyword DSN, passed to libpq
  int pool_size = 8;
  int statement_timeout_ms = 30'000;
  int connect_timeout_s = 5;
  int thread_pool_size = 16;
};
core::Result<std::unique_ptr<Db>> open_pg_db(const PgOptions& options);

// A dedicated session for migrations (session-level advisory lock).
class PgSession {
 public:
  virtual ~PgSession() = default;
  virtual core::Result<Rows> exec(std::string_view sql, const std::vector<Value>& params) = 0;
  // Runs a multi-statement script (no parameters).
  virtual core::Result<void> exec_script(std::string_view script) = 0;
  // Runs job inside BEGIN/COMMIT on this session.
  virtual core::Result<void> transaction(const Job& job) = 0;
};
core::Result<std::unique_ptr<PgSession>> pg_connect(const PgOptions& options);
// "host=/tmp/x dbname=y" without password, for messages.
std::string pg_describe(const std::string& conninfo);

// ---- migrations (migrations.cpp) ----

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};
// Embedded migrations for the dialect, by version (generated from migrations/*/NNNN_name.sql).
const std::vector<Migration>& migrations(Dialect dialect);
int binary_schema_version();

// Brings the database to the newest schema (or only checks it when apply=false). Refuses a newer
// schema and a database holding other tables without schema_migrations.
core::Result<void> migrate_sqlite(SqliteConn& conn, bool apply);
core::Result<void> migrate_pg(PgSession& session, bool apply);
core::Result<SchemaStatus> schema_status_of(Tx& tx);

// ---- the store logic (sql_store.cpp) ----

// The agent mesh over `db` (agent_mesh_sql.cpp); `db` must outlive it.
std::unique_ptr<AgentMeshStore> make_sql_agent_mesh(Db& db, std::function<std::int64_t()> clock);

std::unique_ptr<Store> make_sql_store(std::unique_ptr<Db> db, std::function<std::int64_t()> clock);

std::int64_t system_now_ms();

}  // namespace edgecoder::store::sql

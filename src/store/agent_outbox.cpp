#include "store/agent_outbox.h"

#include <chrono>
#include <mutex>

#include "store/sql.h"

namespace edgecoder::store {

namespace {

constexpr std::string_view kSchema =
    "CREATE TABLE IF NOT EXISTS agent_outbox ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " subtask_id TEXT NOT NULL UNIQUE,"
    " body TEXT NOT NULL,"
    " created_at_ms INTEGER NOT NULL)";

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct AgentOutbox::Impl {
  std::mutex mutex;
  sql::SqliteConnPtr conn;  // guarded by mutex
};

AgentOutbox::AgentOutbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AgentOutbox::~AgentOutbox() = default;

core::Result<std::unique_ptr<AgentOutbox>> AgentOutbox::open(const std::filesystem::path& file) {
  auto conn = sql::sqlite_connect(file, true);
  if (!conn) return conn.error();
  auto created = sql::sqlite_transaction(**conn, [](sql::Tx& tx) -> core::Result<void> {
    return sql::sqlite_exec_script(tx, kSchema);
  });
  if (!created) return created.error();
  auto impl = std::make_unique<Impl>();
  impl->conn = std::move(*conn);
  return std::unique_ptr<AgentOutbox>(new AgentOutbox(std::move(impl)));
}

core::Result<void> AgentOutbox::add(std::string_view subtask_id, std::string_view body) {
  std::lock_guard lock(impl_->mutex);
  return sql::sqlite_transaction(*impl_->conn, [&](sql::Tx& tx) -> core::Result<void> {
    auto r = tx.query(
        "INSERT INTO agent_outbox (subtask_id, body, created_at_ms) VALUES ($1, $2, $3) "
        "ON CONFLICT (subtask_id) DO UPDATE SET body = excluded.body",
        {std::string(subtask_id), std::string(body), now_ms()});
    if (!r) return r.error();
    return {};
  });
}

core::Result<std::vector<OutboxEntry>> AgentOutbox::list(std::size_t limit) {
  std::lock_guard lock(impl_->mutex);
  std::vector<OutboxEntry> out;
  auto r = sql::sqlite_transaction(*impl_->conn, [&](sql::Tx& tx) -> core::Result<void> {
    auto rows = tx.query(
        "SELECT id, subtask_id, body, created_at_ms FROM agent_outbox ORDER BY id LIMIT $1",
        {static_cast<std::int64_t>(limit)});
    if (!rows) return rows.error();
    for (const auto& row : *rows) {
      out.push_back({row.i(0), row.s(1), row.s(2), row.i(3)});
    }
    return {};
  });
  if (!r) return r.error();
  return out;
}

core::Result<void> AgentOutbox::remove(std::int64_t id) {
  std::lock_guard lock(impl_->mutex);
  return sql::sqlite_transaction(*impl_->conn, [&](sql::Tx& tx) -> core::Result<void> {
    auto r = tx.query("DELETE FROM agent_outbox WHERE id = $1", {id});
    if (!r) return r.error();
    return {};
  });
}

core::Result<std::int64_t> AgentOutbox::size() {
  std::lock_guard lock(impl_->mutex);
  std::int64_t n = 0;
  auto r = sql::sqlite_transaction(*impl_->conn, [&](sql::Tx& tx) -> core::Result<void> {
    auto rows = tx.query("SELECT COUNT(*) FROM agent_outbox", {});
    if (!rows) return rows.error();
    if (!rows->empty()) n = rows->front().i(0);
    return {};
  });
  if (!r) return r.error();
  return n;
}

}  // namespace edgecoder::store

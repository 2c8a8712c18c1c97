// Versioned schema migrations: embedded SQL (migrations_data.cpp, generated from
// src/store/migrations), applied in one transaction, recorded in schema_migrations(version, name,
// applied_at). PostgreSQL migrators serialise on a session advisory lock, so several coordinators
// starting at once apply each migration exactly once.
#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/log.h"
#include "store/sql.h"

namespace edgecoder::store::sql {

const std::vector<Migration>& embedded_migrations_sqlite();
const std::vector<Migration>& embedded_migrations_postgres();

namespace {

// Arbitrary constant shared by every edgecoder migrator ("edgecodr" in ASCII).
constexpr std::int64_t kMigrationsAdvisoryLockKey = 0x6564676563'6f6472;

// Tables the earlier (TypeScript) EdgeCoder created without any version table.
const std::set<std::string>& migrations_earlier_tables() {
  static const std::set<std::string> kTables = {"queue_tasks",
                                                "queue_results",
                                                "ledger_records",
                                                "stats_ledger_records",
                                                "node_status_projection",
                                                "coordinator_earnings_projection",
                                                "credit_transactions",
                                                "agent_registry",
                                                "blacklist_events",
                                                "credit_accounts",
                                                "account_memberships",
                                                "agent_ownership",
                                                "ollama_rollouts",
                                                "wallet_accounts",
                                                "payment_intents",
                                                "price_epochs",
                                                "coordinator_fee_events",
                                                "treasury_policies",
                                                "key_custody_events",
                                                "compute_contribution_reports",
                                                "issuance_epochs",
                                                "issuance_allocations",
                                                "quorum_ledger_records",
                                                "bitcoin_anchor_records",
                                                "issuance_payout_events",
                                                "rollout_policies",
                                                "agent_rollout_states",
                                                "portal_users",
                                                "portal_sessions",
                                                "portal_email_verifications",
                                                "portal_oauth_links",
                                                "portal_oauth_states",
                                                "portal_github_tokens",
                                                "portal_node_enrollments",
                                                "portal_wallet_onboarding",
                                                "portal_wallet_send_mfa_challenges",
                                                "portal_wallet_send_requests",
                                                "portal_passkey_credentials",
                                                "portal_passkey_challenges",
                                                "portal_conversations",
                                                "portal_messages",
                                                "task_history",
                                                "ble_peers",
                                                "heartbeat_log",
                                                "kv_config",
                                                "pending_results",
                                                "ble_credit_ledger",
                                                "outbound_task_queue"};
  return kTables;
}

core::Error migrations_foreign_tables(const std::vector<std::string>& tables,
                                      const std::string& where) {
  std::string list;
  int earlier = 0;
  for (std::size_t n = 0; n < tables.size(); ++n) {
    if (migrations_earlier_tables().count(tables[n])) ++earlier;
    if (n < 8) list += (n ? ", " : "") + tables[n];
  }
  if (tables.size() > 8) list += ", ... (" + std::to_string(tables.size()) + " tables)";
  std::string detail = "database " + where + " has tables (" + list +
                       ") but no schema_migrations table, so edgecoder did not create it";
  if (earlier > 0) {
    detail +=
        "; they are the earlier EdgeCoder (TypeScript) implementation's tables, which this "
        "edgecoder does not convert. Point DATABASE_URL at a new empty database (or give "
        "edgecoder its own schema with options=-csearch_path=NAME), keep the old database for "
        "reference, and re-register agents";
  } else {
    detail +=
        "; refusing to write into it. Point edgecoder at an empty database (DATABASE_URL, or "
        "EDGECODER_DATA_DIR for SQLite) or move these tables away";
  }
  return core::Error(core::Errc::conflict, "schema_mismatch", std::move(detail));
}

core::Result<void> migrations_apply(
    Tx& tx, Dialect dialect, bool apply, const std::vector<std::string>& tables,
    const std::string& where, const std::function<core::Result<void>(std::string_view)>& script) {
  bool have_table = std::find(tables.begin(), tables.end(), "schema_migrations") != tables.end();
  if (!have_table && !tables.empty()) return migrations_foreign_tables(tables, where);
  int current = 0;
  if (have_table) {
    auto rows = tx.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", {});
    if (!rows) return rows.error();
    current = static_cast<int>(rows->at(0).i(0));
  }
  int newest = binary_schema_version();
  if (current > newest) {
    return core::Error(core::Errc::conflict, "schema_mismatch",
                       "database schema version " + std::to_string(current) +
                           " is newer than this edgecoder (" + std::to_string(newest) +
                           "); upgrade edgecoder");
  }
  if (current == newest) return {};
  if (!apply) {
    return core::Error(core::Errc::conflict, "schema_mismatch",
                       "database schema version " + std::to_string(current) +
                           " is older than this edgecoder (" + std::to_string(newest) +
                           "); run `edgecoder db migrate`");
  }
  if (!have_table) {
    if (auto r = script(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at BIGINT NOT NULL)");
        !r) {
      return r.error();
    }
  }
  for (const Migration& m : migrations(dialect)) {
    if (m.version <= current) continue;
    if (auto r = script(m.sql); !r) {
      auto err = r.error();
      err.detail =
          "migration " + std::to_string(m.version) + "_" + std::string(m.name) + ": " + err.detail;
      return err;
    }
    auto ins = tx.query(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, "
        "$2, $3)",
        {std::int64_t{m.version}, std::string(m.name), system_now_ms()});
    if (!ins) return ins.error();
    core::log::info("store", "migration_applied",
                    {{"version", m.version}, {"name", std::string(m.name)}, {"db", where}});
  }
  return {};
}

}  // namespace

const std::vector<Migration>& migrations(Dialect dialect) {
  return dialect == Dialect::sqlite ? embedded_migrations_sqlite() : embedded_migrations_postgres();
}

int binary_schema_version() {
  const auto& m = embedded_migrations_sqlite();
  return m.empty() ? 0 : m.back().version;
}

core::Result<void> migrate_sqlite(SqliteConn& conn, bool apply) {
  return sqlite_transaction(conn, [&](Tx& tx) -> core::Result<void> {
    auto rows = tx.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name",
        {});
    if (!rows) return rows.error();
    std::vector<std::string> tables;
    for (const auto& row : *rows) tables.push_back(row.s(0));
    return migrations_apply(tx, Dialect::sqlite, apply, tables, "(SQLite file)",
                            [&](std::string_view sql) { return sqlite_exec_script(tx, sql); });
  });
}

core::Result<void> migrate_pg(PgSession& session, bool apply) {
  auto lock = session.exec("SELECT pg_advisory_lock($1)", {kMigrationsAdvisoryLockKey});
  if (!lock) return lock.error();
  auto result = session.transaction([&](Tx& tx) -> core::Result<void> {
    auto schema = tx.query("SELECT current_schema()", {});
    if (!schema) return schema.error();
    if (schema->empty() || schema->at(0).null(0)) {
      return core::Error(core::Errc::invalid_argument,
                         "no schema selected: the search_path names no existing schema");
    }
    auto rows = tx.query(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = "
        "current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
        {});
    if (!rows) return rows.error();
    std::vector<std::string> tables;
    for (const auto& row : *rows) tables.push_back(row.s(0));
    return migrations_apply(tx, Dialect::postgres, apply, tables,
                            "(PostgreSQL schema " + schema->at(0).s(0) + ")",
                            [&](std::string_view sql) { return session.exec_script(sql); });
  });
  (void)session.exec("SELECT pg_advisory_unlock($1)", {kMigrationsAdvisoryLockKey});
  return result;
}

core::Result<SchemaStatus> schema_status_of(Tx& tx) {
  SchemaStatus status;
  status.binary_version = binary_schema_version();
  std::map<int, MigrationInfo> by_version;
  for (const Migration& m : migrations(tx.dialect())) {
    by_version[m.version] = MigrationInfo{m.version, std::string(m.name), 0};
  }
  auto rows =
      tx.query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version", {});
  if (!rows) return rows.error();
  for (const auto& row : *rows) {
    int v = static_cast<int>(row.i(0));
    by_version[v] = MigrationInfo{v, row.s(1), row.i(2)};
    status.database_version = std::max(status.database_version, v);
  }
  for (auto& [v, info] : by_version) status.migrations.push_back(info);
  return status;
}

}  // namespace edgecoder::store::sql

// `edgecoder db migrate|status|backup FILE`.
#include "store/cli.h"

#include <time.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "store/sql.h"
#include "store/store.h"

namespace edgecoder::store {

namespace {

std::string cli_time(std::int64_t ms) {
  if (ms <= 0) return "-";
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<ServiceName> cli_parse_service(const std::string& name) {
  for (ServiceName s :
       {ServiceName::coordinator, ServiceName::control_plane, ServiceName::portal}) {
    if (service_file_stem(s) == name) return s;
  }
  return std::nullopt;
}

std::vector<ServiceName> cli_services_of(core::Mode mode) {
  switch (mode) {
    case core::Mode::all_in_one:
      return {ServiceName::coordinator, ServiceName::control_plane};
    case core::Mode::control_plane:
      return {ServiceName::control_plane};
    case core::Mode::portal:
      return {ServiceName::portal};
    default:
      return {ServiceName::coordinator};
  }
}

void cli_print_status(const std::string& label, const SchemaStatus& st) {
  std::cout << label << "\n  schema version " << st.database_version
            << " (this edgecoder: " << st.binary_version << ")"
            << (st.database_version == st.binary_version ? " - up to date"
                : st.database_version < st.binary_version
                    ? " - pending migrations; run `edgecoder db migrate`"
                    : " - NEWER than this edgecoder; upgrade edgecoder")
            << "\n";
  for (const auto& m : st.migrations) {
    char version[16];
    std::snprintf(version, sizeof version, "%04d", m.version);
    std::cout << "  " << version << " " << m.name << "  "
              << (m.applied_at_ms ? "applied " + cli_time(m.applied_at_ms) : "pending") << "\n";
  }
}

int cli_status_sqlite(const StoreOptions& options) {
  std::filesystem::path file =
      options.data_dir / (std::string(service_file_stem(options.service)) + ".db");
  std::string label = std::string(service_file_stem(options.service)) + ": sqlite:" + file.string();
  if (!std::filesystem::exists(file)) {
    std::cout << label
              << "\n  no database yet (created at first start or by `edgecoder db "
                 "migrate`)\n";
    return 0;
  }
  auto conn = sql::sqlite_connect(file, false);
  if (!conn) {
    std::cerr << "edgecoder db status: " << conn.error().detail << "\n";
    return 1;
  }
  core::Result<SchemaStatus> st = core::Error(core::Errc::internal, "unset");
  auto r = sql::sqlite_transaction(**conn, [&](sql::Tx& tx) -> core::Result<void> {
    auto rows = tx.query(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        {});
    if (!rows) return rows.error();
    if (rows->at(0).i(0) == 0) {
      SchemaStatus empty;
      empty.binary_version = sql::binary_schema_version();
      for (const auto& m : sql::migrations(sql::Dialect::sqlite)) {
        empty.migrations.push_back(MigrationInfo{m.version, std::string(m.name), 0});
      }
      st = empty;
      return {};
    }
    st = sql::schema_status_of(tx);
    return {};
  });
  if (!r || !st) {
    std::cerr << "edgecoder db status: " << (r ? st.error().detail : r.error().detail) << "\n";
    return 1;
  }
  cli_print_status(label, *st);
  return 0;
}

int cli_status_pg(const StoreOptions& options) {
  sql::PgOptions po;
  po.conninfo = options.database_url;
  auto session = sql::pg_connect(po);
  if (!session) {
    std::cerr << "edgecoder db status: " << session.error().detail << "\n";
    return 1;
  }
  core::Result<SchemaStatus> st = core::Error(core::Errc::internal, "unset");
  auto r = (*session)->transaction([&](sql::Tx& tx) -> core::Result<void> {
    auto rows = tx.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_name = 'schema_migrations'",
        {});
    if (!rows) return rows.error();
    if (rows->at(0).i(0) == 0) {
      SchemaStatus empty;
      empty.binary_version = sql::binary_schema_version();
      for (const auto& m : sql::migrations(sql::Dialect::postgres)) {
        empty.migrations.push_back(MigrationInfo{m.version, std::string(m.name), 0});
      }
      st = empty;
      return {};
    }
    st = sql::schema_status_of(tx);
    return {};
  });
  if (!r || !st) {
    std::cerr << "edgecoder db status: " << (r ? st.error().detail : r.error().detail) << "\n";
    return 1;
  }
  cli_print_status(sql::pg_describe(options.database_url), *st);
  return 0;
}

}  // namespace

const char* db_verb_usage() {
  return "edgecoder db migrate|status|backup FILE [--service coordinator|control-plane|portal]";
}

int run_db_verb(const std::vector<std::string>& args, const core::Config& config) {
  std::vector<std::string> words;
  std::optional<ServiceName> service;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--service") {
      if (i + 1 >= args.size() || !(service = cli_parse_service(args[i + 1]))) {
        std::cerr << "edgecoder db: --service takes coordinator, control-plane or portal\n";
        return 2;
      }
      ++i;
    } else {
      words.push_back(args[i]);
    }
  }
  if (words.empty()) {
    std::cerr << "usage: " << db_verb_usage() << "\n";
    return 2;
  }
  const std::string& verb = words[0];
  std::vector<ServiceName> services =
      service ? std::vector<ServiceName>{*service} : cli_services_of(config.mode);

  auto base = store_options(config, services.front());
  if (!base) {
    std::cerr << "edgecoder db: " << base.error().detail << "\n";
    return 1;
  }
  bool pg = !base->database_url.empty();
  if (pg) services.resize(1);  // one shared database

  if (verb == "migrate" && words.size() == 1) {
    for (ServiceName s : services) {
      StoreOptions options = *base;
      options.service = s;
      options.migrate = true;
      auto store = open_store(options);
      if (!store) {
        std::cerr << "edgecoder db migrate: " << store.error().detail << "\n";
        return 1;
      }
      auto st = (*store)->schema_status();
      if (!st) {
        std::cerr << "edgecoder db migrate: " << st.error().detail << "\n";
        return 1;
      }
      std::cout << (pg ? std::string("postgres") : std::string(service_file_stem(s))) << ": "
                << (*store)->describe() << " at schema version " << st->database_version << "\n";
    }
    return 0;
  }
  if (verb == "status" && words.size() == 1) {
    int rc = 0;
    for (ServiceName s : services) {
      StoreOptions options = *base;
      options.service = s;
      int r = pg ? cli_status_pg(options) : cli_status_sqlite(options);
      if (r != 0) rc = r;
    }
    return rc;
  }
  if (verb == "backup" && words.size() == 2) {
    if (pg) {
      std::cerr << "edgecoder db backup: the store is PostgreSQL (DATABASE_URL); back it up with "
                   "pg_dump, e.g. `pg_dump --format=custom --file=FILE \"$DATABASE_URL\"` (see "
                   "docs/store.md)\n";
      return 1;
    }
    ServiceName s = service.value_or(services.front());
    std::filesystem::path file = base->data_dir / (std::string(service_file_stem(s)) + ".db");
    if (!std::filesystem::exists(file)) {
      std::cerr << "edgecoder db backup: no database at " << file.string() << "\n";
      return 1;
    }
    std::filesystem::path target = words[1];
    auto r = sql::sqlite_backup(file, target);
    if (!r) {
      std::cerr << "edgecoder db backup: " << r.error().detail << "\n";
      return 1;
    }
    std::cout << "backed up " << file.string() << " to " << target.string() << "\n";
    return 0;
  }
  std::cerr << "usage: " << db_verb_usage() << "\n";
  return 2;
}

}  // namespace edgecoder::store

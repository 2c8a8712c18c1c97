// open_store: picks the backend (PostgreSQL when DATABASE_URL is set, else a SQLite file per
// service under the data directory), takes the one-process-per-file lock, and applies migrations.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include "core/log.h"
#include "store/sql.h"
#include "store/store.h"

namespace edgecoder::store {

namespace {

core::Result<void> open_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return core::Error(core::Errc::internal,
                       "cannot create data directory " + dir.string() + ": " + ec.message());
  }
  if (::chmod(dir.c_str(), 0700) != 0) {
    return core::Error(core::Errc::internal, "cannot chmod 0700 data directory " + dir.string() +
                                                 ": " + std::strerror(errno));
  }
  return {};
}

// Holds <file>.lock with flock() so a second process (or a second open in this process) refuses.
core::Result<int> open_lock_file(const std::filesystem::path& db_file) {
  std::filesystem::path lock_path = db_file;
  lock_path += ".lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return core::Error(core::Errc::internal,
                       "cannot open lock file " + lock_path.string() + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return core::Error(core::Errc::unavailable, "store_locked",
                         "another edgecoder process is using " + db_file.string() + " (lock " +
                             lock_path.string() +
                             "); with SQLite only one process may open a service's file — stop "
                             "the other one, or use PostgreSQL (DATABASE_URL) to share state");
    }
    return core::Error(core::Errc::internal,
                       "cannot lock " + lock_path.string() + ": " + std::strerror(err));
  }
  return fd;
}

Result<std::unique_ptr<Store>> open_sqlite_store(const StoreOptions& options) {
  if (options.data_dir.empty()) {
    return core::Error(core::Errc::invalid_argument, "no data directory (EDGECODER_DATA_DIR)");
  }
  if (auto r = open_private_dir(options.data_dir); !r) return r.error();
  std::filesystem::path file =
      options.data_dir / (std::string(service_file_stem(options.service)) + ".db");
  auto lock = open_lock_file(file);
  if (!lock) return lock.error();
  int lock_fd = *lock;
  {
    auto conn = sql::sqlite_connect(file, true);
    if (!conn) {
      ::close(lock_fd);
      return conn.error();
    }
    if (auto r = sql::migrate_sqlite(**conn, options.migrate); !r) {
      ::close(lock_fd);
      auto err = r.error();
      err.detail = file.string() + ": " + err.detail;
      return err;
    }
  }
  for (const char* suffix : {"-wal", "-shm"}) {
    std::filesystem::path side = file;
    side += suffix;
    ::chmod(side.c_str(), 0600);
  }
  sql::SqliteOptions so;
  so.file = file;
  so.thread_pool_size = options.thread_pool_size;
  so.lock_fd = lock_fd;
  auto db = sql::open_sqlite_db(so);
  if (!db) {
    ::close(lock_fd);
    return db.error();
  }
  return sql::make_sql_store(std::move(*db), options.clock);
}

Result<std::unique_ptr<Store>> open_pg_store(const StoreOptions& options) {
  sql::PgOptions po;
  po.conninfo = options.database_url;
  po.pool_size = std::max(1, options.pg_pool_size);
  po.statement_timeout_ms = options.pg_statement_timeout_ms;
  po.connect_timeout_s = options.pg_connect_timeout_s;
  po.thread_pool_size = options.thread_pool_size;
  {
    auto session = sql::pg_connect(po);
    if (!session) return session.error();
    if (auto r = sql::migrate_pg(**session, options.migrate); !r) return r.error();
  }
  auto db = sql::open_pg_db(po);
  if (!db) return db.error();
  return sql::make_sql_store(std::move(*db), options.clock);
}

}  // namespace

Result<std::unique_ptr<Store>> open_store(const StoreOptions& options) {
  auto store = options.database_url.empty() ? open_sqlite_store(options) : open_pg_store(options);
  if (store) {
    core::log::info("store", "opened",
                    {{"backend", std::string(backend_name((*store)->backend()))},
                     {"db", (*store)->describe()}});
  }
  return store;
}

Result<StoreOptions> store_options(const core::Config& config, ServiceName service) {
  StoreOptions options;
  options.service = service;
  options.data_dir = config.data_dir;
  options.database_url = config.settings.get_or("DATABASE_URL", "");
  if (config.settings.has("EDGECODER_PG_POOL_SIZE")) {
    auto n = config.settings.get_int("EDGECODER_PG_POOL_SIZE", 1, 256);
    if (!n) return n.error();
    options.pg_pool_size = static_cast<int>(*n);
  }
  if (config.settings.has("EDGECODER_PG_STATEMENT_TIMEOUT_MS")) {
    auto n = config.settings.get_int("EDGECODER_PG_STATEMENT_TIMEOUT_MS", 100, 3'600'000);
    if (!n) return n.error();
    options.pg_statement_timeout_ms = static_cast<int>(*n);
  }
  return options;
}

Result<std::unique_ptr<Store>> open_store(const core::Config& config, ServiceName service) {
  auto options = store_options(config, service);
  if (!options) return options.error();
  return open_store(*options);
}

Result<std::optional<std::int64_t>> retention_cutoff_ms(const core::Config& config,
                                                        std::int64_t now_ms) {
  std::int64_t days = kDefaultRetentionDays;
  if (config.settings.has(kRetentionDaysSetting)) {
    auto n = config.settings.get_int(kRetentionDaysSetting, 0, 36'500);
    if (!n) return n.error();
    days = *n;
  }
  if (days == 0) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(now_ms - days * 86'400'000);
}

}  // namespace edgecoder::store

// Test support for the store: fresh stores on either backend (SQLite in a temp dir, PostgreSQL in
// a fresh schema of EDGECODER_TEST_PG_DSN), a settable clock, and a private PostgreSQL cluster
// the test owns (for outage tests). Without EDGECODER_TEST_PG_DSN the PostgreSQL cases skip —
// unless CI=true, where they fail (a missing database must never pass silently in CI).
// Thread-safety: one fixture per test thread; the clock is atomic.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "store/store.h"

namespace edgecoder::store::testing {

struct TestClock {
  std::atomic<std::int64_t> now_ms{1'700'000'000'000};
  std::function<std::int64_t()> fn() {
    return [this] { return now_ms.load(); };
  }
  void advance(std::int64_t ms) { now_ms += ms; }
};

// EDGECODER_TEST_PG_DSN, or nullopt.
std::optional<std::string> pg_test_dsn();
// "" when PostgreSQL tests can run; else why not. Under CI=true a missing DSN is reported as
// failure by the callers via pg_unavailable_is_failure().
std::string pg_skip_reason();
bool pg_unavailable_is_failure();

// A scratch directory removed at destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A fresh, empty PostgreSQL schema in the test database, dropped at destruction. dsn() selects
// it via options=-csearch_path.
class PgSchema {
 public:
  explicit PgSchema(const std::string& base_dsn);
  ~PgSchema();
  PgSchema(const PgSchema&) = delete;
  PgSchema& operator=(const PgSchema&) = delete;
  const std::string& dsn() const { return dsn_; }
  const std::string& name() const { return name_; }
  // Runs SQL in the schema (test setup); aborts the test on failure.
  void exec(const std::string& sql) const;

 private:
  std::string base_dsn_;
  std::string name_;
  std::string dsn_;
};

// Where a test's store lives; open() may be called again (restart) after the previous store is
// destroyed.
class StoreHome {
 public:
  StoreHome(Backend backend, std::shared_ptr<TestClock> clock);
  StoreHome(const StoreHome&) = delete;
  StoreHome& operator=(const StoreHome&) = delete;
  StoreOptions options() const;
  core::Result<std::unique_ptr<Store>> open() const;
  Backend backend() const { return backend_; }
  const std::filesystem::path& data_dir() const { return dir_.path(); }
  // PostgreSQL only.
  const PgSchema* schema() const { return schema_.get(); }

 private:
  Backend backend_;
  std::shared_ptr<TestClock> clock_;
  ScratchDir dir_;
  std::unique_ptr<PgSchema> schema_;
};

// A throwaway PostgreSQL cluster on a Unix socket, started with runuser -u postgres (when run as
// root) so the test can stop and restart it. available() false when binaries are missing.
class PrivatePgCluster {
 public:
  explicit PrivatePgCluster(bool fsync = false);
  ~PrivatePgCluster();
  PrivatePgCluster(const PrivatePgCluster&) = delete;
  PrivatePgCluster& operator=(const PrivatePgCluster&) = delete;
  bool available() const { return ok_; }
  const std::string& error() const { return error_; }
  std::string dsn() const;
  bool start();
  bool stop();

 private:
  std::string run(const std::string& what) const;
  std::filesystem::path dir_;
  bool fsync_ = false;
  bool ok_ = false;
  std::string error_;
};

// Binary dir of test helpers (crash_writer, the fsync shim) — set by CMake.
std::filesystem::path helper_path(const std::string& name);

}  // namespace edgecoder::store::testing

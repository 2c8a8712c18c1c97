#include "store/store_test_support.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>

#include "store/sql.h"

namespace edgecoder::store::testing {

namespace {

std::string random_suffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  static std::mutex mu;
  std::lock_guard lock(mu);
  const char* digits = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (int i = 0; i < 12; ++i) s.push_back(digits[rng() % 36]);
  return s;
}

std::string pg_bin_dir() {
  for (const char* v : {"17", "16", "15", "14", "13"}) {
    std::filesystem::path p = std::filesystem::path("/usr/lib/postgresql") / v / "bin";
    if (std::filesystem::exists(p / "initdb")) return p.string();
  }
  return "";
}

}  // namespace

std::optional<std::string> pg_test_dsn() {
  const char* v = std::getenv("EDGECODER_TEST_PG_DSN");
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

bool pg_unavailable_is_failure() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::string pg_skip_reason() {
  if (!pg_test_dsn()) return "EDGECODER_TEST_PG_DSN is not set";
  return "";
}

ScratchDir::ScratchDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "edgecoder-store-XXXXXX").string();
  char* made = ::mkdtemp(tmpl.data());
  if (!made) throw std::runtime_error("mkdtemp failed");
  path_ = made;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

PgSchema::PgSchema(const std::string& base_dsn) : base_dsn_(base_dsn) {
  name_ = "t_" + random_suffix();
  dsn_ = base_dsn_ + " options='-csearch_path=" + name_ + "'";
  sql::PgOptions po;
  po.conninfo = base_dsn_;
  auto session = sql::pg_connect(po);
  if (!session) throw std::runtime_error("cannot connect to test PG: " + session.error().detail);
  auto r = (*session)->exec_script("CREATE SCHEMA " + name_);
  if (!r) throw std::runtime_error("create schema: " + r.error().detail);
}

PgSchema::~PgSchema() {
  sql::PgOptions po;
  po.conninfo = base_dsn_;
  auto session = sql::pg_connect(po);
  if (session) (void)(*session)->exec_script("DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
}

void PgSchema::exec(const std::string& sql_text) const {
  sql::PgOptions po;
  po.conninfo = dsn_;
  auto session = sql::pg_connect(po);
  ASSERT_TRUE(session) << session.error().detail;
  auto r = (*session)->exec_script(sql_text);
  ASSERT_TRUE(r) << r.error().detail;
}

StoreHome::StoreHome(Backend backend, std::shared_ptr<TestClock> clock)
    : backend_(backend), clock_(std::move(clock)) {
  if (backend_ == Backend::postgres) {
    auto dsn = pg_test_dsn();
    if (!dsn) throw std::runtime_error("EDGECODER_TEST_PG_DSN is not set");
    schema_ = std::make_unique<PgSchema>(*dsn);
  }
}

StoreOptions StoreHome::options() const {
  StoreOptions o;
  o.data_dir = dir_.path() / "data";
  if (schema_) o.database_url = schema_->dsn();
  if (clock_) o.clock = clock_->fn();
  o.thread_pool_size = 4;
  return o;
}

core::Result<std::unique_ptr<Store>> StoreHome::open() const { return open_store(options()); }

PrivatePgCluster::PrivatePgCluster(bool fsync) : fsync_(fsync) {
  std::string bin = pg_bin_dir();
  if (bin.empty()) {
    error_ = "PostgreSQL server binaries not installed";
    return;
  }
  std::string tmpl = "/tmp/edgecoder-pg-XXXXXX";
  char* made = ::mkdtemp(tmpl.data());
  if (!made) {
    error_ = "mkdtemp failed";
    return;
  }
  dir_ = made;
  if (::geteuid() == 0) {
    struct passwd* pw = ::getpwnam("postgres");
    if (!pw || ::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      error_ = "running as root but cannot hand the cluster dir to user postgres";
      return;
    }
  }
  std::string out = run(bin + "/initdb -D " + dir_.string() + "/data -A trust -U postgres");
  if (!std::filesystem::exists(dir_ / "data" / "PG_VERSION")) {
    error_ = "initdb failed: " + out;
    return;
  }
  ok_ = start();
  if (!ok_) error_ = "pg_ctl start failed";
}

PrivatePgCluster::~PrivatePgCluster() {
  if (dir_.empty()) return;
  stop();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string PrivatePgCluster::run(const std::string& what) const {
  std::string cmd = (::geteuid() == 0 ? "runuser -u postgres -- " : "") + what + " 2>&1";
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return "popen failed";
  char buf[512];
  while (std::fgets(buf, sizeof buf, f)) out += buf;
  ::pclose(f);
  return out;
}

std::string PrivatePgCluster::dsn() const {
  return "host=" + dir_.string() + " user=postgres dbname=postgres";
}

bool PrivatePgCluster::start() {
  std::string bin = pg_bin_dir();
  std::string opts = "-k " + dir_.string() +
                     " -c listen_addresses='' -c fsync=" + (fsync_ ? "on" : "off") +
                     " -c max_connections=200";
  (void)run(bin + "/pg_ctl -D " + dir_.string() + "/data -o \"" + opts + "\" -l " + dir_.string() +
            "/log -w start");
  return std::filesystem::exists(dir_ / "data" / "postmaster.pid");
}

bool PrivatePgCluster::stop() {
  std::string bin = pg_bin_dir();
  (void)run(bin + "/pg_ctl -D " + dir_.string() + "/data -m fast -w stop");
  return !std::filesystem::exists(dir_ / "data" / "postmaster.pid");
}

std::filesystem::path helper_path(const std::string& name) {
  return std::filesystem::path(EDGECODER_STORE_TEST_HELPERS) / name;
}

}  // namespace edgecoder::store::testing

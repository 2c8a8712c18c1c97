// Durability and lifecycle of the store: kill -9 never loses an acknowledged write (both
// backends), SQLite syncs before it acknowledges, PostgreSQL outages fail fast and recover,
// migrations (concurrent, refused, newer), the file lock, permissions, backup, `db` verbs, and
// both backends producing the same results.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <boost/asio/io_context.hpp>

#include "net/router.h"
#include "net/server.h"
#include "store/cli.h"
#include "store/sql.h"
#include "store/store.h"
#include "store/store_test_support.h"
#include "support/child_process.h"

namespace edgecoder::store {
namespace {

using namespace std::chrono_literals;
using testing::PgSchema;
using testing::ScratchDir;
using testing::StoreHome;

#define REQUIRE_PG()                                              \
  do {                                                            \
    if (!testing::pg_test_dsn()) {                                \
      if (testing::pg_unavailable_is_failure()) {                 \
        FAIL() << "CI=true but EDGECODER_TEST_PG_DSN is not set"; \
      }                                                           \
      GTEST_SKIP() << testing::pg_skip_reason();                  \
    }                                                             \
  } while (0)

std::string backend_param_name(const ::testing::TestParamInfo<Backend>& info) {
  return std::string(backend_name(info.param));
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::map<std::string, std::string> child_env() {
  std::map<std::string, std::string> env;
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"}) {
    if (const char* v = std::getenv(name)) env[name] = v;
  }
  return env;
}

// ---- crash test ----

class StoreCrash : public ::testing::TestWithParam<Backend> {};

TEST_P(StoreCrash, KillNineNeverLosesAnAcknowledgedWrite) {
  if (GetParam() == Backend::postgres) REQUIRE_PG();
  StoreHome home(GetParam(), nullptr);
  ScratchDir out;
  std::vector<std::string> base_args;
  if (GetParam() == Backend::postgres) {
    base_args = {"--dsn", home.schema()->dsn()};
  } else {
    base_args = {"--dir", (home.data_dir() / "data").string()};
  }
  std::mt19937 rng(std::random_device{}());
  std::set<std::string> acked;
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    edgecoder::testing::ChildOptions opts;
    opts.args = base_args;
    // Even rounds: blocking calls from threads; odd rounds: coroutines awaiting run_write().
    for (const char* a :
         {"--prefix", "", round % 2 ? "--coroutines" : "--threads", round % 2 ? "16" : "4"}) {
      opts.args.emplace_back(a);
    }
    opts.args[base_args.size() + 1] = "r" + std::to_string(round);
    opts.env = child_env();
    opts.output_dir = out.path() / std::to_string(round);
    std::filesystem::create_directories(opts.output_dir);
    edgecoder::testing::ChildProcess child(testing::helper_path("crash_writer").string(), opts);
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (child.stdout_text().find("ACK ") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline && child.running()) {
      std::this_thread::sleep_for(2ms);
    }
    ASSERT_NE(child.stdout_text().find("ACK "), std::string::npos)
        << "round " << round << ": no write acknowledged; stderr: " << child.stderr_text();
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 40));
    child.signal(SIGKILL);
    auto code = child.wait(10s);
    ASSERT_TRUE(code.has_value());
    for (const auto& line : lines_of(child.stdout_text())) {
      if (line.rfind("ACK ", 0) == 0) acked.insert(line.substr(4));
    }
  }
  auto store = home.open();
  ASSERT_TRUE(store) << store.error().detail;
  auto stored = (*store)->list_ledger("crash", 0, 0);
  ASSERT_TRUE(stored) << stored.error().detail;
  std::set<std::string> ids;
  for (const auto& e : *stored) ids.insert(e.tx_id);
  std::size_t missing = 0;
  for (const auto& id : acked) missing += ids.count(id) ? 0 : 1;
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged writes";
  EXPECT_GE(acked.size(), static_cast<std::size_t>(kRounds));
  if (GetParam() == Backend::sqlite) {
    store->reset();
    auto conn = sql::sqlite_connect(home.data_dir() / "data" / "coordinator.db", false);
    ASSERT_TRUE(conn);
    auto check = sql::sqlite_transaction(**conn, [](sql::Tx& tx) -> core::Result<void> {
      auto rows = tx.query("PRAGMA integrity_check", {});
      if (!rows) return rows.error();
      if (rows->at(0).s(0) != "ok") return core::Error(core::Errc::internal, rows->at(0).s(0));
      return {};
    });
    EXPECT_TRUE(check) << check.error().detail;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreCrash,
                         ::testing::Values(Backend::sqlite, Backend::postgres), backend_param_name);

// ---- SQLite syncs before acknowledging ----

// Callers: "--threads 1" (blocking calls) or "--coroutines 8" (run_write, batched).
class StoreSqliteDurability : public ::testing::TestWithParam<const char*> {};

TEST_P(StoreSqliteDurability, EveryAcknowledgementFollowsASyncOfTheDatabase) {
  ScratchDir dir;
  edgecoder::testing::ChildOptions opts;
  const std::string callers = GetParam();
  opts.args = {"--dir", (dir.path() / "data").string(),    "--prefix", "f", "--count", "40",
               callers, callers == "--threads" ? "1" : "8"};
  opts.env = child_env();
  std::string preload = testing::helper_path("libedgecoder_fsync_shim.so").string();
  opts.env["LD_PRELOAD"] = preload;
  // Under ASan the runtime must come first in the library list; the shim only wraps
  // fsync/fdatasync, so relaxing the check is safe.
  std::string asan = opts.env.count("ASAN_OPTIONS") ? opts.env["ASAN_OPTIONS"] + ":" : "";
  opts.env["ASAN_OPTIONS"] = asan + "verify_asan_link_order=0";
  opts.output_dir = dir.path() / "out";
  std::filesystem::create_directories(opts.output_dir);
  auto result = edgecoder::testing::run_to_end(testing::helper_path("crash_writer").string(), opts);
  ASSERT_EQ(result.code, 0) << result.err;
  auto lines = lines_of(result.out);
  // Every acknowledged write needs a sync of the database between its submission and its ACK.
  std::map<std::string, bool> synced_since_submit;
  int acks = 0;
  bool opened = false;
  for (const auto& line : lines) {
    if (line == "OPEN") {
      opened = true;
    } else if (line.rfind("SUBMIT ", 0) == 0) {
      synced_since_submit[line.substr(7)] = false;
    } else if (line.rfind("SYNC ", 0) == 0) {
      if (line.find("coordinator.db") != std::string::npos) {
        for (auto& [id, synced] : synced_since_submit) synced = true;
      }
    } else if (line.rfind("ACK ", 0) == 0) {
      ++acks;
      auto it = synced_since_submit.find(line.substr(4));
      ASSERT_NE(it, synced_since_submit.end()) << "ACK without SUBMIT: " << line;
      EXPECT_TRUE(it->second) << "acknowledged " << line << " without a sync after submitting it";
      synced_since_submit.erase(it);
    }
  }
  EXPECT_TRUE(opened);
  EXPECT_EQ(acks, 40) << result.out;
}

std::string durability_callers_name(const ::testing::TestParamInfo<const char*>& param) {
  return std::string(param.param).substr(2);
}

INSTANTIATE_TEST_SUITE_P(Callers, StoreSqliteDurability,
                         ::testing::Values("--threads", "--coroutines"), durability_callers_name);

// ---- PostgreSQL outage ----

// The one route of the outage test's service: a write through the store, run off the loop.
boost::asio::awaitable<net::Response> outage_write_route(Store* store, net::Request request) {
  std::string tx_id = request.query_param("tx").value_or("none");
  // GCC 12: never a temporary with a destructor (this closure owns a string) inside the co_await
  // expression itself; build the awaitable in its own statement.
  auto call = store->run([store, tx_id] {
    LedgerEntry e{0, tx_id, "acct", "earn", 1, "", "", 0};
    return store->append_ledger(e);
  });
  auto r = co_await std::move(call);
  if (!r) co_return net::Response::error(r.error());
  co_return net::Response::text(200, "ok");
}

// POSTs to the in-process server and returns "<status> <body>".
std::string outage_http_post(std::uint16_t port, const std::string& target) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "connect failed";
  }
  std::string req =
      "POST " + target +
      " HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  if (::write(fd, req.data(), req.size()) < 0) {
    ::close(fd);
    return "write failed";
  }
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  // "HTTP/1.1 503 Service Unavailable\r\n...\r\n\r\nbody"
  std::string status = resp.size() > 12 ? resp.substr(9, 3) : "???";
  auto body_at = resp.find("\r\n\r\n");
  return status + " " + (body_at == std::string::npos ? "" : resp.substr(body_at + 4));
}

TEST(StorePgOutage, FailsFastWhileDownAndRecoversWithoutReopening) {
  testing::PrivatePgCluster cluster;
  if (!cluster.available()) {
    if (testing::pg_unavailable_is_failure()) FAIL() << cluster.error();
    GTEST_SKIP() << cluster.error();
  }
  StoreOptions options;
  options.database_url = cluster.dsn();
  options.pg_connect_timeout_s = 2;
  auto opened = open_store(options);
  ASSERT_TRUE(opened) << opened.error().detail;
  Store& store = **opened;

  boost::asio::io_context io;
  net::Router router;
  Store* store_ptr = &store;
  router.add("POST", "/write", [store_ptr](net::Request req) {
    return outage_write_route(store_ptr, std::move(req));
  });
  net::ServerOptions server_options;
  server_options.name = "store-outage-test";
  net::HttpServer server(io, server_options, std::move(router), nullptr);
  auto port = server.listen();
  ASSERT_TRUE(port) << port.error().detail;
  server.start();
  std::thread loop([&io] {
    auto guard = boost::asio::make_work_guard(io);
    io.run();
  });
  struct LoopStopper {
    boost::asio::io_context& io;
    std::thread& t;
    net::HttpServer& s;
    ~LoopStopper() {
      s.shutdown();
      io.stop();
      t.join();
    }
  } stopper{io, loop, server};

  EXPECT_EQ(outage_http_post(*port, "/write?tx=before"), "200 ok");
  EXPECT_TRUE(store.ready());

  ASSERT_TRUE(cluster.stop());
  // Nothing is written yet: the idle health probe alone must notice the outage.
  auto noticed_by = std::chrono::steady_clock::now() + 8s;
  while (store.ready() && std::chrono::steady_clock::now() < noticed_by) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_FALSE(store.ready()) << "the health probe did not notice the outage";
  std::string during = outage_http_post(*port, "/write?tx=during");
  EXPECT_EQ(during.substr(0, 3), "503") << during;
  EXPECT_NE(during.find("store_unavailable"), std::string::npos) << during;
  LedgerEntry e{0, "during2", "acct", "earn", 1, "", "", 0};
  auto failed = store.append_ledger(e);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, core::Errc::unavailable);
  EXPECT_EQ(failed.error().wire(), "store_unavailable");
  EXPECT_FALSE(store.ready());
  for (int i = 0; i < 20; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto r = store.balance("acct");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().wire(), "store_unavailable");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms) << "not failing fast";
  }
  EXPECT_EQ(outage_http_post(*port, "/write?tx=during3").substr(0, 3), "503");

  ASSERT_TRUE(cluster.start());
  auto deadline = std::chrono::steady_clock::now() + 20s;
  std::string after;
  while (std::chrono::steady_clock::now() < deadline) {
    after = outage_http_post(*port, "/write?tx=after");
    if (after == "200 ok") break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(after, "200 ok");
  EXPECT_TRUE(store.ready());
  auto balance = store.balance("acct");
  ASSERT_TRUE(balance) << balance.error().detail;
  EXPECT_EQ(*balance, 2);
}

// ---- migrations ----

TEST(StoreMigrations, ConcurrentMigratorsOnOneFreshPostgresDatabaseApplyOnce) {
  REQUIRE_PG();
  PgSchema schema(*testing::pg_test_dsn());
  constexpr int kMigrators = 4;
  std::atomic<int> ready{0}, ok{0};
  std::vector<std::string> errors(kMigrators);
  std::vector<std::thread> threads;
  for (int i = 0; i < kMigrators; ++i) {
    threads.emplace_back([&, i] {
      StoreOptions o;
      o.database_url = schema.dsn();
      ++ready;
      while (ready.load() < kMigrators) std::this_thread::yield();
      auto s = open_store(o);
      if (s) {
        ++ok;
      } else {
        errors[i] = s.error().detail;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kMigrators) << errors[0] << errors[1] << errors[2] << errors[3];
  StoreOptions o;
  o.database_url = schema.dsn();
  auto s = open_store(o);
  ASSERT_TRUE(s);
  auto st = (*s)->schema_status();
  ASSERT_TRUE(st);
  // Every migration the binary has was applied once (versions need not be contiguous).
  std::size_t applied = 0;
  for (const auto& m : st->migrations) applied += m.applied_at_ms > 0 ? 1 : 0;
  EXPECT_EQ(applied, st->migrations.size());
  EXPECT_EQ(st->database_version, st->binary_version);
}

class StoreRefusal : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::postgres) REQUIRE_PG();
    home_ = std::make_unique<StoreHome>(GetParam(), nullptr);
  }
  // Creates a table in the (empty) database before edgecoder ever opens it.
  void create_foreign_table(const std::string& name) {
    if (GetParam() == Backend::postgres) {
      home_->schema()->exec("CREATE TABLE " + name + " (id TEXT PRIMARY KEY)");
      return;
    }
    std::filesystem::create_directories(home_->data_dir() / "data");
    auto conn = sql::sqlite_connect(home_->data_dir() / "data" / "coordinator.db", true);
    ASSERT_TRUE(conn);
    auto r = sql::sqlite_transaction(**conn, [&](sql::Tx& tx) -> core::Result<void> {
      auto rows = tx.query("CREATE TABLE " + name + " (id TEXT PRIMARY KEY)", {});
      if (!rows) return rows.error();
      return {};
    });
    ASSERT_TRUE(r) << r.error().detail;
  }
  std::unique_ptr<StoreHome> home_;
};

TEST_P(StoreRefusal, EarlierImplementationTablesAreRefusedWithAMessage) {
  create_foreign_table("queue_tasks");
  create_foreign_table("ledger_records");
  auto s = home_->open();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, core::Errc::conflict);
  EXPECT_EQ(s.error().wire(), "schema_mismatch");
  EXPECT_NE(s.error().detail.find("queue_tasks"), std::string::npos) << s.error().detail;
  EXPECT_NE(s.error().detail.find("no schema_migrations"), std::string::npos);
  EXPECT_NE(s.error().detail.find("earlier EdgeCoder"), std::string::npos);
  EXPECT_NE(s.error().detail.find("new empty database"), std::string::npos);
}

TEST_P(StoreRefusal, AnyOtherTablesAreRefusedToo) {
  create_foreign_table("my_app_users");
  auto s = home_->open();
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().detail.find("my_app_users"), std::string::npos) << s.error().detail;
  EXPECT_NE(s.error().detail.find("empty database"), std::string::npos);
}

TEST_P(StoreRefusal, NewerSchemaIsRefused) {
  {
    auto s = home_->open();
    ASSERT_TRUE(s) << s.error().detail;
    auto st = (*s)->schema_status();
    ASSERT_TRUE(st);
  }
  const std::string bump =
      "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 1)";
  if (GetParam() == Backend::postgres) {
    home_->schema()->exec(bump);
  } else {
    auto conn = sql::sqlite_connect(home_->data_dir() / "data" / "coordinator.db", false);
    ASSERT_TRUE(conn);
    ASSERT_TRUE(sql::sqlite_transaction(**conn, [&](sql::Tx& tx) -> core::Result<void> {
      auto r = tx.query(bump, {});
      if (!r) return r.error();
      return {};
    }));
  }
  auto s = home_->open();
  ASSERT_FALSE(s);
  EXPECT_NE(
      s.error().detail.find("database schema version 999 is newer than this edgecoder (" +
                            std::to_string(sql::binary_schema_version()) + "); upgrade edgecoder"),
      std::string::npos)
      << s.error().detail;
}

TEST_P(StoreRefusal, WithoutMigrateAFreshDatabaseIsRefused) {
  StoreOptions o = home_->options();
  o.migrate = false;
  auto s = open_store(o);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().detail.find("db migrate"), std::string::npos) << s.error().detail;
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreRefusal,
                         ::testing::Values(Backend::sqlite, Backend::postgres), backend_param_name);

// ---- SQLite file: lock, permissions, backup, verbs ----

TEST(StoreSqliteFile, OneProcessPerFileAndPrivatePermissions) {
  StoreHome home(Backend::sqlite, nullptr);
  auto first = home.open();
  ASSERT_TRUE(first) << first.error().detail;
  auto second = home.open();
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, core::Errc::unavailable);
  EXPECT_EQ(second.error().wire(), "store_locked");

  struct stat st {};
  ASSERT_EQ(::stat((home.data_dir() / "data").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((home.data_dir() / "data" / "coordinator.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  first->reset();
  auto third = home.open();
  EXPECT_TRUE(third) << third.error().detail;

  StoreOptions cp = home.options();
  cp.service = ServiceName::control_plane;
  auto other = open_store(cp);  // another service's file is independent
  ASSERT_TRUE(other) << other.error().detail;
  EXPECT_TRUE(std::filesystem::exists(home.data_dir() / "data" / "control-plane.db"));
}

core::Config verb_config(const std::filesystem::path& data_dir) {
  core::Config config;
  config.mode = core::Mode::coordinator;
  config.data_dir = data_dir;
  return config;
}

TEST(StoreSqliteFile, BackupWhileWritesContinueIsConsistentAndComplete) {
  StoreHome home(Backend::sqlite, nullptr);
  auto opened = home.open();
  ASSERT_TRUE(opened);
  Store& store = **opened;
  for (int i = 0; i < 200; ++i) {
    LedgerEntry e{0, "pre-" + std::to_string(i), "acct", "earn", 1, "", "", 0};
    ASSERT_TRUE(store.append_ledger(e));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int n = 0; !stop; ++n) {
        LedgerEntry e{
            0, "bg-" + std::to_string(t) + "-" + std::to_string(n), "acct", "earn", 1, "", "", 0};
        if (store.append_ledger(e)) ++written;
      }
    });
  }
  while (written.load() < 100) std::this_thread::sleep_for(1ms);
  ScratchDir out;
  std::filesystem::path file = out.path() / "backup.db";
  int rc = run_db_verb({"backup", file.string()}, verb_config(home.data_dir() / "data"));
  int during = written.load();
  stop = true;
  for (auto& w : writers) w.join();
  ASSERT_EQ(rc, 0);
  ASSERT_GT(during, 100);

  auto conn = sql::sqlite_connect(file, false);
  ASSERT_TRUE(conn);
  std::int64_t rows_in_backup = 0;
  auto r = sql::sqlite_transaction(**conn, [&](sql::Tx& tx) -> core::Result<void> {
    auto check = tx.query("PRAGMA integrity_check", {});
    if (!check) return check.error();
    if (check->at(0).s(0) != "ok") return core::Error(core::Errc::internal, "corrupt backup");
    auto rows = tx.query("SELECT count(*), sum(amount_millicredits) FROM credit_ledger", {});
    if (!rows) return rows.error();
    rows_in_backup = rows->at(0).i(0);
    if (rows->at(0).i(1) != rows_in_backup) return core::Error(core::Errc::internal, "sum");
    return {};
  });
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_GE(rows_in_backup, 300);  // 200 before + at least 100 acknowledged before the backup
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(StoreVerbs, MigrateStatusBackupAndUsage) {
  ScratchDir dir;
  core::Config config = verb_config(dir.path() / "data");
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run_db_verb({"status"}, config), 0);
  EXPECT_EQ(run_db_verb({"migrate"}, config), 0);
  EXPECT_EQ(run_db_verb({"status"}, config), 0);
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("no database yet"), std::string::npos) << out;
  EXPECT_NE(out.find("0001 initial  applied"), std::string::npos) << out;
  EXPECT_NE(out.find("up to date"), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "data" / "coordinator.db"));

  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_db_verb({}, config), 2);
  EXPECT_EQ(run_db_verb({"frobnicate"}, config), 2);
  EXPECT_EQ(run_db_verb({"backup"}, config), 2);
  EXPECT_EQ(run_db_verb({"status", "--service", "nope"}, config), 2);
  (void)::testing::internal::GetCapturedStderr();

  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run_db_verb({"backup", (dir.path() / "b.db").string()}, config), 0);
  (void)::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "b.db"));

  // While a service holds the file, migrate says so and fails; status still works.
  StoreOptions o;
  o.data_dir = dir.path() / "data";
  auto running = open_store(o);
  ASSERT_TRUE(running);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_db_verb({"migrate"}, config), 1);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("another edgecoder process"), std::string::npos) << err;
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run_db_verb({"status"}, config), 0);
  (void)::testing::internal::GetCapturedStdout();
}

TEST(StoreVerbs, PostgresStatusAndBackupAdvice) {
  REQUIRE_PG();
  PgSchema schema(*testing::pg_test_dsn());
  core::Config config = verb_config("/nonexistent");
  auto settings = core::Settings::load(
      core::LoadOptions{std::nullopt, "/nonexistent.env", {{"DATABASE_URL", schema.dsn()}}, {}});
  ASSERT_TRUE(settings) << settings.error().detail;
  config.settings = *settings;
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run_db_verb({"status"}, config), 0);
  EXPECT_EQ(run_db_verb({"migrate"}, config), 0);
  EXPECT_EQ(run_db_verb({"status"}, config), 0);
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("pending"), std::string::npos) << out;
  EXPECT_NE(out.find("up to date"), std::string::npos) << out;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_db_verb({"backup", "/tmp/x.dump"}, config), 1);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("pg_dump"), std::string::npos) << err;
}

TEST(StoreRetention, CutoffFromSetting) {
  core::Config config;
  auto cutoff = retention_cutoff_ms(config, 100 * 86'400'000LL);
  ASSERT_TRUE(cutoff);
  ASSERT_TRUE(cutoff->has_value());
  EXPECT_EQ(**cutoff, 70 * 86'400'000LL);
  auto settings = core::Settings::load(core::LoadOptions{
      std::nullopt, "/nonexistent.env", {{std::string(kRetentionDaysSetting), "0"}}, {}});
  ASSERT_TRUE(settings);
  config.settings = *settings;
  auto off = retention_cutoff_ms(config, 100 * 86'400'000LL);
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->has_value());
}

// ---- same results from both backends ----

std::string transcript(Store& store, testing::TestClock& clock) {
  nlohmann::json out = nlohmann::json::array();
  auto note = [&](const std::string& what, const std::string& value) {
    out.push_back({what, value});
  };
  auto err = [](const core::Error& e) { return std::string(e.wire()); };
  NewTask t;
  t.id = "task";
  for (int i = 0; i < 4; ++i) {
    NewSubtask s;
    s.id = "s" + std::to_string(i);
    s.priority = 10 * i;
    s.max_attempts = 2;
    if (i == 3) s.depends_on = {"s0", "s1"};
    if (i == 1) s.requested_model = "m";
    t.subtasks.push_back(s);
  }
  auto c = store.create_task(t);
  note("create", c ? std::to_string(c->created) : err(c.error()));
  for (int round = 0; round < 10; ++round) {
    ClaimRequest req;
    req.agent_id = "agent-" + std::to_string(round % 2);
    req.active_model = round == 0 ? "m" : "";
    req.lease_budget_ms = 100;
    auto l = store.claim_next(req);
    if (!l || !l->has_value()) {
      note("claim", l ? "none" : err(l.error()));
      clock.advance(20'000);
      auto e = store.expire_leases();
      note("expire", e ? std::to_string(e->requeued) + "/" + std::to_string(e->failed) : "err");
      continue;
    }
    const Lease& lease = **l;
    note("claim", lease.subtask.id + "#" + std::to_string(lease.attempt));
    if (round == 2) continue;  // abandoned: expires later
    ResultReport rep;
    rep.subtask_id = lease.subtask.id;
    rep.agent_id = req.agent_id;
    rep.attempt = lease.attempt;
    rep.ok = round != 3;
    rep.output = "o";
    rep.duration_ms = 5;
    auto r = store.record_result(rep);
    note("result", r ? std::to_string(static_cast<int>(*r)) : err(r.error()));
    auto again = store.record_result(rep);
    note("again", again ? std::to_string(static_cast<int>(*again)) : err(again.error()));
    clock.advance(1000);
  }
  auto st = store.get_task("task");
  if (st) {
    note("task", std::string(task_state_name(st->state)));
    for (const auto& s : st->subtasks) {
      note(s.id, std::string(subtask_state_name(s.state)) + "#" + std::to_string(s.attempt));
    }
  }
  auto events = store.list_events("task", 0, 0);
  if (events) {
    for (const auto& e : *events) note("event" + std::to_string(e.id), e.kind + " " + e.data_json);
  }
  LedgerEntry le{0, "x", "acct", "earn", 7, "", "", 0};
  (void)store.append_ledger(le);
  auto dup = store.append_ledger(le);
  note("ledger", dup ? std::to_string(dup->duplicate) : err(dup.error()));
  note("balance", std::to_string(store.balance("acct").value_or(-1)));
  return out.dump(1);
}

TEST(StoreBackends, SameScenarioSameResults) {
  REQUIRE_PG();
  std::string a, b;
  for (Backend backend : {Backend::sqlite, Backend::postgres}) {
    auto clock = std::make_shared<testing::TestClock>();
    StoreHome home(backend, clock);
    auto s = home.open();
    ASSERT_TRUE(s) << s.error().detail;
    (backend == Backend::sqlite ? a : b) = transcript(**s, *clock);
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a.find("task_completed"), std::string::npos) << a;
}

}  // namespace
}  // namespace edgecoder::store

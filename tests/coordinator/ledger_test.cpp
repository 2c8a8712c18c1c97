// Credits and the ordering chain over real HTTP on loopback, on SQLite and PostgreSQL: accrual
// once per accepted result (duplicates and stale results earn nothing, failed results earn at
// the lower quality, GPU tasks at the GPU rate, durations capped at the timeout), the balance and
// history routes and their auth, /ledger/verify and /ledger/snapshot, and tampering with stored
// chain rows found by /ledger/verify with the right reason.
#include <sqlite3.h>

#include <gtest/gtest.h>

#include <set>

#include "coordinator/harness.h"
#include "coordinator/service.h"
#include "store/types.h"

namespace edgecoder::coordinator {
namespace {

using testing::Harness;
using testing::HarnessOptions;
using testing::kAdmin;
using testing::Reply;

std::string ledger_backend_name(const ::testing::TestParamInfo<store::Backend>& info) {
  return std::string(store::backend_name(info.param));
}

class LedgerTest : public ::testing::TestWithParam<store::Backend> {
 protected:
  void SetUp() override {
    if (testing::pg_missing_should_skip(GetParam())) GTEST_SKIP() << "EDGECODER_TEST_PG_DSN unset";
    HarnessOptions o;
    o.backend = GetParam();
    h_ = std::make_unique<Harness>(o);
  }

  // Direct SQL on the coordinator's database, behind the store's back.
  void sql(const std::string& statement) {
    if (GetParam() == store::Backend::postgres) {
      h_->home().schema()->exec(statement);
      return;
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((h_->data_dir() / "data" / "coordinator.db").c_str(), &db), SQLITE_OK);
    // The coordinator's sweeper may hold the write lock for a moment: wait for it.
    sqlite3_busy_timeout(db, 30'000);
    char* msg = nullptr;
    const int rc = sqlite3_exec(db, statement.c_str(), nullptr, nullptr, &msg);
    EXPECT_EQ(rc, SQLITE_OK) << (msg ? msg : "") << " in " << statement;
    sqlite3_free(msg);
    sqlite3_close(db);
  }

  Reply send_result(const std::string& agent, const nlohmann::json& subtask, bool ok,
                    std::int64_t duration_ms, std::optional<int> attempt = std::nullopt) {
    nlohmann::json body = {{"subtaskId", subtask.value("id", "")},
                           {"taskId", subtask.value("taskId", "")},
                           {"agentId", agent},
                           {"ok", ok},
                           {"output", ok ? "done" : ""},
                           {"error", ok ? "" : "boom"},
                           {"durationMs", duration_ms},
                           {"attempt", attempt ? *attempt : subtask.value("attempt", 0)}};
    return h_->post("/result", body);
  }

  std::int64_t balance_millis(const std::string& account) {
    auto r = h_->get("/credits/" + account + "/balance");
    EXPECT_EQ(r.status, 200) << r.text;
    return r.body.value("balanceMillicredits", std::int64_t{-1});
  }

  // Moves the coordinator clock past the load multiplier's refresh interval (5 s).
  void next_load_reading() { h_->clock().advance(6'000); }

  std::string coordinator_id() { return h_->get("/ledger/verify").body.value("coordinatorId", ""); }

  std::unique_ptr<Harness> h_;
};

TEST_P(LedgerTest, AcceptedResultsAccrueOnceDuplicatesAndStaleResultsNothing) {
  h_->register_agent("w1");
  std::string task_id;
  auto ids = h_->create_task({{"subtasks",
                               {{{"input", "a"}, {"timeoutMs", 60'000}},
                                {{"input", "b"}, {"timeoutMs", 60'000}},
                                {{"input", "c"}, {"timeoutMs", 60'000}}}}},
                             &task_id);
  ASSERT_EQ(ids.size(), 3u);

  // 2 queued per online agent: load 1.25. 2 s x 1.0/s x 1.0 x 1.25 = 2.5 credits.
  auto a = h_->pull("w1");
  ASSERT_TRUE(a.is_object());
  auto first = send_result("w1", a, true, 2'000);
  ASSERT_EQ(first.status, 200) << first.text;
  EXPECT_EQ(balance_millis("w1"), 2'500);
  // The same result again is a duplicate: nothing more.
  auto dup = send_result("w1", a, true, 2'000);
  ASSERT_EQ(dup.status, 200) << dup.text;
  EXPECT_EQ(dup.body.value("duplicate", false), true);
  EXPECT_EQ(balance_millis("w1"), 2'500);

  // A failed result earns at quality 0.6; 1 queued per agent: load 1.0. 2 x 0.6 = 1.2 credits.
  auto b = h_->pull("w1");
  ASSERT_TRUE(b.is_object());
  next_load_reading();
  auto failed = send_result("w1", b, false, 2'000);
  ASSERT_EQ(failed.status, 200) << failed.text;
  EXPECT_EQ(balance_millis("w1"), 3'700);

  // A stale result (its lease expired and was requeued) is refused and earns nothing.
  auto c = h_->pull("w1");
  ASSERT_TRUE(c.is_object());
  h_->clock().advance(60'000 + testing::kBudget + 1);
  ASSERT_TRUE(h_->store().expire_leases());
  auto stale = send_result("w1", c, true, 2'000);
  EXPECT_EQ(stale.status, 409) << stale.text;
  EXPECT_EQ(balance_millis("w1"), 3'700);
  // Its next attempt is accepted; the duration counts at most up to the timeout (60 s); nothing
  // is queued any more: load 0.8. 60 x 0.8 = 48 credits.
  h_->register_agent("w1");  // back online after the long pause
  auto c2 = h_->pull("w1");
  ASSERT_TRUE(c2.is_object());
  EXPECT_EQ(c2.value("id", ""), c.value("id", "-"));
  EXPECT_EQ(c2.value("attempt", 0), 2);
  next_load_reading();
  ASSERT_EQ(send_result("w1", c2, true, 999'999).status, 200);
  EXPECT_EQ(balance_millis("w1"), 51'700);

  // A GPU task earns 4.0/s: 1 s x 4 x 0.8 = 3.2 credits.
  std::string gpu_task;
  auto gpu_ids = h_->create_task(
      {{"resourceClass", "gpu"}, {"subtasks", {{{"input", "g"}, {"timeoutMs", 60'000}}}}},
      &gpu_task);
  auto g = h_->pull("w1");
  ASSERT_TRUE(g.is_object());
  next_load_reading();
  ASSERT_EQ(send_result("w1", g, true, 1'000).status, 200);
  auto balance = h_->get("/credits/w1/balance");
  EXPECT_EQ(balance.body.value("accountId", ""), "w1");
  EXPECT_EQ(balance.body.value("balanceMillicredits", 0), 54'900);
  EXPECT_DOUBLE_EQ(balance.body.value("balance", 0.0), 54.9);

  // The ledger holds exactly one earn entry per accepted subtask.
  auto entries = h_->store().list_ledger("w1", 0, 0);
  ASSERT_TRUE(entries);
  std::multiset<std::string> tx_ids;
  for (const auto& e : *entries) tx_ids.insert(e.tx_id);
  EXPECT_EQ(tx_ids, (std::multiset<std::string>{"earn:" + ids[0], "earn:" + ids[1],
                                                "earn:" + ids[2], "earn:" + gpu_ids[0]}));

  // History: newest first, bounded.
  auto history = h_->get("/credits/w1/history?limit=2");
  ASSERT_EQ(history.status, 200) << history.text;
  ASSERT_EQ(history.body["history"].size(), 2u) << history.text;
  const auto& newest = history.body["history"][0];
  EXPECT_EQ(newest.value("txId", ""), "earn:" + gpu_ids[0]);
  EXPECT_EQ(newest.value("type", ""), "earn");
  EXPECT_DOUBLE_EQ(newest.value("credits", 0.0), 3.2);
  EXPECT_EQ(newest.value("millicredits", 0), 3'200);
  EXPECT_EQ(newest.value("relatedTaskId", ""), gpu_task);
  EXPECT_EQ(newest.value("reason", ""), "compute_contribution");
  EXPECT_EQ(history.body["history"][1].value("txId", ""), "earn:" + ids[2]);
  EXPECT_EQ(h_->get("/credits/w1/history").body["history"].size(), 4u);

  // The chain: 2 enqueues, 5 claims, 1 requeue, 4 completions, 4 accruals; all verified.
  auto verify = h_->get("/ledger/verify");
  ASSERT_EQ(verify.status, 200) << verify.text;
  EXPECT_EQ(verify.body.value("ok", false), true) << verify.text;
  EXPECT_EQ(verify.body.value("count", 0), 16) << verify.text;
  auto snapshot = h_->get("/ledger/snapshot");
  ASSERT_EQ(snapshot.status, 200) << snapshot.text;
  std::map<std::string, int> kinds;
  for (const auto& r : snapshot.body["records"]) kinds[r.value("eventType", "")]++;
  EXPECT_EQ(kinds, (std::map<std::string, int>{{"earnings_accrual", 4},
                                               {"task_claim", 5},
                                               {"task_complete", 4},
                                               {"task_enqueue", 2},
                                               {"task_requeue", 1}}));
  // The accrual record names the account, the amount and the resource class.
  const nlohmann::json* accrual = nullptr;
  for (const auto& r : snapshot.body["records"]) {
    if (r.value("eventType", "") == "earnings_accrual" && r.value("subtaskId", "") == gpu_ids[0]) {
      accrual = &r;
    }
  }
  ASSERT_NE(accrual, nullptr);
  EXPECT_EQ(accrual->value("actorId", ""), "w1");
  auto payload = nlohmann::json::parse(accrual->value("payloadJson", "{}"));
  EXPECT_EQ(payload.value("accountId", ""), "w1");
  EXPECT_EQ(payload.value("resourceClass", ""), "gpu");
  EXPECT_DOUBLE_EQ(payload.value("credits", 0.0), 3.2);
  EXPECT_EQ(payload.value("millicredits", 0), 3'200);
  EXPECT_EQ(snapshot.body["proof"].value("sequence", 0), 16);
  EXPECT_EQ(snapshot.body["proof"].value("hash", ""), verify.body.value("head", "-"));
  EXPECT_EQ(snapshot.body.value("coordinatorId", ""),
            h_->get("/identity").body.value("peerId", "-"));
  // Bounded pages.
  auto page = h_->get("/ledger/snapshot?afterSequence=3&limit=5");
  ASSERT_EQ(page.body["records"].size(), 5u) << page.text;
  EXPECT_EQ(page.body["records"][0].value("sequence", 0), 4);
  EXPECT_EQ(page.body.value("nextAfterSequence", 0), 8);
}

TEST_P(LedgerTest, RoutesNeedTheMeshTokenAndCheckTheirInput) {
  for (const char* path :
       {"/credits/w1/balance", "/credits/w1/history", "/ledger/verify", "/ledger/snapshot"}) {
    auto none = h_->request("GET", path, std::nullopt, {});
    EXPECT_EQ(none.status, 401) << path;
    EXPECT_EQ(none.body.value("error", ""), "mesh_unauthorized") << path;
    EXPECT_EQ(h_->request("GET", path, std::nullopt, {{"x-mesh-token", "wrong"}}).status, 401);
    EXPECT_EQ(h_->request("GET", path, std::nullopt, {{"x-admin-token", kAdmin}}).status, 401);
    EXPECT_EQ(h_->get(path).status, 200) << path;
  }
  auto unknown = h_->get("/credits/nobody/balance");
  EXPECT_EQ(unknown.body.value("balanceMillicredits", -1), 0);
  EXPECT_TRUE(h_->get("/credits/nobody/history").body["history"].empty());
  auto bad = h_->get("/credits/bad%21id/balance");
  EXPECT_EQ(bad.status, 400) << bad.text;
  EXPECT_EQ(bad.body.value("error", ""), "invalid_account_id");
  EXPECT_EQ(h_->get("/credits/w1/history?limit=0").status, 400);
  EXPECT_EQ(h_->get("/credits/w1/history?limit=abc").status, 400);
  EXPECT_EQ(h_->get("/ledger/snapshot?limit=5001").status, 400);
  // An empty chain verifies, at GENESIS.
  auto empty = h_->get("/ledger/verify");
  EXPECT_EQ(empty.body.value("ok", false), true);
  EXPECT_EQ(empty.body.value("count", -1), 0);
  EXPECT_EQ(empty.body.value("head", ""), "GENESIS");
  EXPECT_TRUE(h_->get("/ledger/snapshot").body["proof"].is_null());
}

TEST_P(LedgerTest, TamperingWithStoredRecordsFailsVerificationWithTheReason) {
  h_->register_agent("w1");
  h_->create_task({{"subtasks", {{{"input", "a"}}, {{"input", "b"}}}}});
  for (int i = 0; i < 2; ++i) {
    auto s = h_->pull("w1");
    ASSERT_TRUE(s.is_object());
    ASSERT_EQ(send_result("w1", s, true, 1'500).status, 200);
  }
  auto ok = h_->get("/ledger/verify");
  ASSERT_EQ(ok.body.value("ok", false), true) << ok.text;
  const int count = ok.body.value("count", 0);
  ASSERT_EQ(count, 7);  // enqueue, 2 x (claim, complete, accrual)
  const std::string coord = coordinator_id();
  auto records = h_->store().list_chain(coord, 0, 0);
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 7u);
  const std::string where = " WHERE coordinator_id = '" + coord + "' AND sequence = ";
  auto expect_failure = [&](const std::string& reason, int at) {
    auto v = h_->get("/ledger/verify");
    EXPECT_EQ(v.status, 200);
    EXPECT_EQ(v.body.value("ok", true), false) << v.text;
    EXPECT_EQ(v.body.value("reason", ""), reason) << v.text;
    EXPECT_EQ(v.body.value("atSequence", 0), at) << v.text;
  };

  // A changed field: the hash no longer matches.
  sql("UPDATE ledger_chain SET actor_id = 'mallory'" + where + "2");
  expect_failure("hash_mismatch", 2);
  sql("UPDATE ledger_chain SET actor_id = '" + records->at(1).actor_id + "'" + where + "2");
  EXPECT_EQ(h_->get("/ledger/verify").body.value("ok", false), true);

  // A changed field with its hash recomputed: the signature gives it away.
  store::ChainRecord forged = records->back();
  forged.payload_json = R"({"credits":1000000})";
  sql("UPDATE ledger_chain SET payload_json = '" + forged.payload_json + "', hash = '" +
      store::chain_record_hash(forged) + "'" + where + "7");
  expect_failure("invalid_signature", 7);
  sql("UPDATE ledger_chain SET payload_json = '" + records->back().payload_json + "', hash = '" +
      records->back().hash + "'" + where + "7");
  EXPECT_EQ(h_->get("/ledger/verify").body.value("ok", false), true);

  // A broken link.
  sql("UPDATE ledger_chain SET prev_hash = 'not-the-previous-hash'" + where + "3");
  expect_failure("invalid_prev_hash", 3);
  sql("UPDATE ledger_chain SET prev_hash = '" + records->at(2).prev_hash + "'" + where + "3");
  EXPECT_EQ(h_->get("/ledger/verify").body.value("ok", false), true);

  // A record removed from the middle, and one from the end.
  sql("DELETE FROM ledger_chain" + where + "7");
  expect_failure("invalid_sequence", 7);
  sql("DELETE FROM ledger_chain" + where + "4");
  expect_failure("invalid_sequence", 4);
}

INSTANTIATE_TEST_SUITE_P(Backends, LedgerTest,
                         ::testing::Values(store::Backend::sqlite, store::Backend::postgres),
                         ledger_backend_name);

TEST(CreditFormula, RatesQualityLoadAndCap) {
  EXPECT_DOUBLE_EQ(load_multiplier(0, 0), 1.25);  // no agents: pressure 2
  EXPECT_DOUBLE_EQ(load_multiplier(1, 2), 0.8);
  EXPECT_DOUBLE_EQ(load_multiplier(2, 2), 1.0);
  EXPECT_DOUBLE_EQ(load_multiplier(3, 2), 1.25);
  EXPECT_DOUBLE_EQ(load_multiplier(5, 2), 1.6);
  EXPECT_EQ(earned_millicredits(1'000, 0, "cpu", true, 1.0), 1'000);
  EXPECT_EQ(earned_millicredits(1'000, 0, "gpu", true, 1.0), 4'000);
  EXPECT_EQ(earned_millicredits(1'000, 0, "cpu", false, 1.0), 600);
  EXPECT_EQ(earned_millicredits(10'000, 2'000, "cpu", true, 1.6), 3'200);  // capped at timeout
  EXPECT_EQ(earned_millicredits(-5, 2'000, "cpu", true, 1.0), 0);
}

}  // namespace
}  // namespace edgecoder::coordinator

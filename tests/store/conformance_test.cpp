// The store conformance suite: written once, run against SQLite (temp dir) and PostgreSQL
// (a fresh schema of EDGECODER_TEST_PG_DSN).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "core/crypto.h"
#include "store/store.h"
#include "store/store_test_support.h"

namespace asio = boost::asio;

namespace edgecoder::store {
namespace {

using testing::StoreHome;
using testing::TestClock;

std::string backend_param_name(const ::testing::TestParamInfo<Backend>& info) {
  return std::string(backend_name(info.param));
}

NewSubtask sub(std::string id, int priority = 50, std::vector<std::string> deps = {},
               std::string model = "") {
  NewSubtask s;
  s.id = std::move(id);
  s.input = "print('" + s.id + "')";
  s.priority = priority;
  s.depends_on = std::move(deps);
  s.requested_model = std::move(model);
  s.timeout_ms = 10'000;
  return s;
}

ClaimRequest claim_request(std::string agent) {
  ClaimRequest req;
  req.agent_id = std::move(agent);
  return req;
}

NewTask task(std::string id, std::vector<NewSubtask> subs) {
  NewTask t;
  t.id = std::move(id);
  t.submitter = "alice";
  t.subtasks = std::move(subs);
  return t;
}

class StoreConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::postgres && !testing::pg_test_dsn()) {
      if (testing::pg_unavailable_is_failure()) {
        FAIL() << "CI=true but EDGECODER_TEST_PG_DSN is not set: PostgreSQL conformance must run";
      }
      GTEST_SKIP() << testing::pg_skip_reason();
    }
    clock_ = std::make_shared<TestClock>();
    home_ = std::make_unique<StoreHome>(GetParam(), clock_);
    auto s = home_->open();
    ASSERT_TRUE(s) << s.error().detail;
    store_ = std::move(*s);
  }
  void TearDown() override { store_.reset(); }

  Lease claim(const std::string& agent, const std::string& model = "", std::int64_t budget = 0) {
    ClaimRequest req;
    req.agent_id = agent;
    req.active_model = model;
    req.lease_budget_ms = budget;
    auto r = store_->claim_next(req);
    EXPECT_TRUE(r) << r.error().detail;
    EXPECT_TRUE(r && r->has_value()) << "nothing to claim";
    return r && r->has_value() ? **r : Lease{};
  }

  ResultReport report(const Lease& lease, const std::string& agent, bool ok = true) {
    ResultReport rep;
    rep.subtask_id = lease.subtask.id;
    rep.agent_id = agent;
    rep.attempt = lease.attempt;
    rep.ok = ok;
    rep.output = "out-" + lease.subtask.id;
    rep.duration_ms = 12;
    return rep;
  }

  std::shared_ptr<TestClock> clock_;
  std::unique_ptr<StoreHome> home_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreConformance, AgentsUpsertGetListApproveTouch) {
  AgentInfo info;
  info.id = "agent-1";
  info.os = "debian";
  info.version = "1.0";
  info.max_concurrent_tasks = 2;
  auto a = store_->upsert_agent(info);
  ASSERT_TRUE(a) << a.error().detail;
  EXPECT_EQ(a->approval, Approval::pending);
  EXPECT_EQ(a->registered_at_ms, clock_->now_ms.load());
  EXPECT_EQ(a->info.max_concurrent_tasks, 2);

  clock_->advance(1000);
  info.version = "1.1";
  auto again = store_->upsert_agent(info);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->info.version, "1.1");
  EXPECT_EQ(again->registered_at_ms, a->registered_at_ms);
  EXPECT_EQ(again->last_seen_ms, a->last_seen_ms + 1000);

  info.id = "agent-0";
  ASSERT_TRUE(store_->upsert_agent(info));
  auto approved = store_->set_approval("agent-1", Approval::approved, "operator");
  ASSERT_TRUE(approved);
  EXPECT_EQ(approved->approval, Approval::approved);
  EXPECT_EQ(approved->approval_actor, "operator");

  auto all = store_->list_agents(std::nullopt, 0);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].info.id, "agent-0");
  auto only = store_->list_agents(Approval::approved, 0);
  ASSERT_TRUE(only);
  ASSERT_EQ(only->size(), 1u);
  EXPECT_EQ(only->at(0).info.id, "agent-1");
  auto limited = store_->list_agents(std::nullopt, 1);
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->size(), 1u);

  clock_->advance(500);
  ASSERT_TRUE(store_->touch_agent("agent-1", "qwen2.5-coder"));
  auto got = store_->get_agent("agent-1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->info.active_model, "qwen2.5-coder");
  EXPECT_EQ(got->last_seen_ms, clock_->now_ms.load());
  ASSERT_TRUE(store_->touch_agent("agent-1", ""));
  EXPECT_EQ(store_->get_agent("agent-1")->info.active_model, "qwen2.5-coder");

  EXPECT_EQ(store_->get_agent("nope").error().code, core::Errc::not_found);
  EXPECT_EQ(store_->touch_agent("nope", "").error().code, core::Errc::not_found);
  EXPECT_EQ(store_->set_approval("nope", Approval::denied, "op").error().code,
            core::Errc::not_found);
  info.id = "";
  EXPECT_EQ(store_->upsert_agent(info).error().code, core::Errc::invalid_argument);
}

TEST_P(StoreConformance, CreateTaskQueuesHoldsAndIsIdempotent) {
  auto created = store_->create_task(task("t1", {sub("a"), sub("b", 50, {"a"}), sub("c")}));
  ASSERT_TRUE(created) << created.error().detail;
  EXPECT_TRUE(created->created);
  EXPECT_EQ(created->subtask_ids, (std::vector<std::string>{"a", "b", "c"}));

  auto st = store_->get_task("t1");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, TaskState::open);
  EXPECT_EQ(st->submitter, "alice");
  ASSERT_EQ(st->subtasks.size(), 3u);
  EXPECT_EQ(st->subtasks[0].state, SubtaskState::queued);
  EXPECT_EQ(st->subtasks[1].state, SubtaskState::held);
  EXPECT_EQ(st->subtasks[1].depends_on, (std::vector<std::string>{"a"}));
  EXPECT_EQ(st->subtasks[2].index, 2);

  auto repeat = store_->create_task(task("t1", {sub("x")}));
  ASSERT_TRUE(repeat);
  EXPECT_FALSE(repeat->created);
  EXPECT_EQ(repeat->subtask_ids, (std::vector<std::string>{"a", "b", "c"}));

  EXPECT_EQ(store_->create_task(task("", {sub("z")})).error().code, core::Errc::invalid_argument);
  EXPECT_EQ(store_->create_task(task("t2", {})).error().code, core::Errc::invalid_argument);
  EXPECT_EQ(store_->create_task(task("t2", {sub("z"), sub("z")})).error().code,
            core::Errc::invalid_argument);
  EXPECT_EQ(store_->create_task(task("t2", {sub("z", 50, {"elsewhere"})})).error().code,
            core::Errc::invalid_argument);
  EXPECT_EQ(store_->create_task(task("t2", {sub("z", 50, {"z"})})).error().code,
            core::Errc::invalid_argument);
  // A subtask id taken by another task: conflict, and nothing of t2 remains.
  auto clash = store_->create_task(task("t2", {sub("q"), sub("a")}));
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code, core::Errc::conflict);
  EXPECT_EQ(store_->get_task("t2").error().code, core::Errc::not_found);
  EXPECT_TRUE(store_->create_task(task("t2", {sub("q")}))->created);
  EXPECT_EQ(store_->get_task("missing").error().code, core::Errc::not_found);
}

TEST_P(StoreConformance, ClaimOrderAffinityPriorityAge) {
  ASSERT_TRUE(store_->create_task(task("t1", {sub("old-low", 10), sub("old-high", 90)})));
  clock_->advance(10);
  ASSERT_TRUE(store_->create_task(task(
      "t2", {sub("new-high", 90), sub("model", 1, {}, "qwen"), sub("dep", 99, {"new-high"})})));

  EXPECT_EQ(claim("a1", "qwen").subtask.id, "model");      // affinity beats priority
  EXPECT_EQ(claim("a1", "llama").subtask.id, "old-high");  // no match: priority, then age
  EXPECT_EQ(claim("a2").subtask.id, "new-high");
  EXPECT_EQ(claim("a2").subtask.id, "old-low");
  auto none = store_->claim_next(claim_request("a3"));
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());  // "dep" is held
  EXPECT_EQ(store_->claim_next(claim_request("")).error().code, core::Errc::invalid_argument);
}

TEST_P(StoreConformance, LeaseCarriesAttemptAndExpiry) {
  ASSERT_TRUE(store_->create_task(task("t1", {sub("a")})));
  auto lease = claim("agent-1", "", 5'000);
  EXPECT_EQ(lease.attempt, 1);
  EXPECT_EQ(lease.subtask.state, SubtaskState::leased);
  EXPECT_EQ(lease.subtask.holder, "agent-1");
  EXPECT_EQ(lease.expires_at_ms, clock_->now_ms.load() + 10'000 + 5'000);

  clock_->advance(7'000);
  auto renewed = store_->renew_leases("agent-1", 5'000);
  ASSERT_TRUE(renewed);
  EXPECT_EQ(*renewed, 1);
  EXPECT_EQ(*store_->renew_leases("agent-2", 5'000), 0);
  auto st = store_->get_task("t1");
  EXPECT_EQ(st->subtasks[0].lease_expires_at_ms, clock_->now_ms.load() + 15'000);

  clock_->advance(14'000);
  auto nothing = store_->expire_leases();
  ASSERT_TRUE(nothing);
  EXPECT_EQ(nothing->requeued + nothing->failed, 0);
}

TEST_P(StoreConformance, ExpiryRequeuesThenFailsPastMaxAttempts) {
  NewSubtask s = sub("a");
  s.max_attempts = 2;
  ASSERT_TRUE(store_->create_task(task("t1", {s, sub("b", 50, {"a"})})));
  auto first = claim("agent-1");
  clock_->advance(10'001);
  auto exp = store_->expire_leases();
  ASSERT_TRUE(exp);
  EXPECT_EQ(exp->requeued, 1);
  EXPECT_EQ(exp->failed, 0);
  auto st = store_->get_task("t1");
  EXPECT_EQ(st->subtasks[0].state, SubtaskState::queued);
  EXPECT_EQ(st->subtasks[0].holder, "");
  EXPECT_EQ(st->subtasks[0].last_error, "lease expired");

  // The stale holder cannot report any more.
  auto stale = store_->record_result(report(first, "agent-1"));
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, core::Errc::conflict);
  EXPECT_EQ(stale.error().wire(), "stale_lease");

  auto second = claim("agent-2");
  EXPECT_EQ(second.attempt, 2);
  EXPECT_EQ(store_->record_result(report(first, "agent-1")).error().code, core::Errc::conflict);
  clock_->advance(10'001);
  exp = store_->expire_leases();
  ASSERT_TRUE(exp);
  EXPECT_EQ(exp->failed, 1);
  st = store_->get_task("t1");
  EXPECT_EQ(st->subtasks[0].state, SubtaskState::failed);
  EXPECT_EQ(st->subtasks[1].state, SubtaskState::queued);  // a failed dependency releases
  EXPECT_EQ(st->state, TaskState::open);

  auto b = claim("agent-3");
  ASSERT_TRUE(store_->record_result(report(b, "agent-3")));
  st = store_->get_task("t1");
  EXPECT_EQ(st->state, TaskState::completed);
  EXPECT_EQ(st->completed_at_ms, clock_->now_ms.load());
}

TEST_P(StoreConformance, RecordResultFencingAndIdempotence) {
  ASSERT_TRUE(store_->create_task(task("t1", {sub("a"), sub("b", 50, {"a"}), sub("c", 40)})));
  auto lease = claim("agent-1");
  ASSERT_EQ(lease.subtask.id, "a");

  ResultReport wrong_agent = report(lease, "agent-2");
  EXPECT_EQ(store_->record_result(wrong_agent).error().code, core::Errc::conflict);
  ResultReport wrong_attempt = report(lease, "agent-1");
  wrong_attempt.attempt = 7;
  EXPECT_EQ(store_->record_result(wrong_attempt).error().code, core::Errc::conflict);
  ResultReport missing = report(lease, "agent-1");
  missing.subtask_id = "nope";
  EXPECT_EQ(store_->record_result(missing).error().code, core::Errc::not_found);

  auto ok = store_->record_result(report(lease, "agent-1"));
  ASSERT_TRUE(ok) << ok.error().detail;
  EXPECT_EQ(*ok, RecordOutcome::accepted);
  auto dup = store_->record_result(report(lease, "agent-1"));
  ASSERT_TRUE(dup) << dup.error().detail;
  EXPECT_EQ(*dup, RecordOutcome::duplicate);
  ResultReport different = report(lease, "agent-1");
  different.output = "something else";
  EXPECT_EQ(store_->record_result(different).error().code, core::Errc::conflict);

  auto res = store_->get_result("a");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->output, "out-a");
  EXPECT_EQ(res->agent_id, "agent-1");
  EXPECT_EQ(res->attempt, 1);
  EXPECT_TRUE(res->ok);
  EXPECT_EQ(res->duration_ms, 12);
  EXPECT_EQ(store_->get_result("b").error().code, core::Errc::not_found);

  auto st = store_->get_task("t1");
  EXPECT_EQ(st->subtasks[0].state, SubtaskState::completed);
  EXPECT_EQ(st->subtasks[1].state, SubtaskState::queued);  // promoted

  auto b = claim("agent-1");
  EXPECT_EQ(b.subtask.id, "b");
  auto c = claim("agent-2");
  ASSERT_TRUE(store_->record_result(report(c, "agent-2", false)));
  EXPECT_EQ(store_->get_task("t1")->state, TaskState::open);
  ASSERT_TRUE(store_->record_result(report(b, "agent-1")));
  st = store_->get_task("t1");
  EXPECT_EQ(st->state, TaskState::completed);
  EXPECT_FALSE(store_->get_result("c")->ok);

  auto events = store_->list_events("t1", 0, 0);
  ASSERT_TRUE(events);
  std::vector<std::string> kinds;
  for (std::size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].id, static_cast<std::int64_t>(i + 1));
    kinds.push_back((*events)[i].kind);
  }
  EXPECT_EQ(kinds,
            (std::vector<std::string>{"task_created", "subtask_leased", "subtask_result",
                                      "subtask_queued", "subtask_leased", "subtask_leased",
                                      "subtask_result", "subtask_result", "task_completed"}));
}

TEST_P(StoreConformance, PromoteReadyIsANoOpWhenNothingWaits) {
  ASSERT_TRUE(store_->create_task(task("t1", {sub("a"), sub("b", 50, {"a"})})));
  EXPECT_EQ(*store_->promote_ready("t1"), 0);
  auto a = claim("x");
  ASSERT_TRUE(store_->record_result(report(a, "x")));
  EXPECT_EQ(*store_->promote_ready("t1"), 0);  // already promoted by record_result
  EXPECT_EQ(store_->get_task("t1")->subtasks[1].state, SubtaskState::queued);
}

TEST_P(StoreConformance, EventsAppendListResume) {
  ASSERT_TRUE(store_->create_task(task("t1", {sub("a")})));
  auto id = store_->append_event("t1", "progress", R"({"pct":50})");
  ASSERT_TRUE(id) << id.error().detail;
  EXPECT_EQ(*id, 2);  // 1 = task_created
  EXPECT_EQ(*store_->append_event("t1", "progress", R"({"pct":60})"), 3);
  EXPECT_EQ(store_->append_event("nope", "progress", "{}").error().code, core::Errc::not_found);
  EXPECT_EQ(store_->append_event("t1", "", "{}").error().code, core::Errc::invalid_argument);

  auto after = store_->list_events("t1", 1, 0);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ(after->at(0).data_json, R"({"pct":50})");
  EXPECT_EQ(after->at(0).created_at_ms, clock_->now_ms.load());
  auto one = store_->list_events("t1", 0, 1);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ(one->at(0).kind, "task_created");
  EXPECT_TRUE(store_->list_events("t1", 3, 0)->empty());
  EXPECT_TRUE(store_->list_events("nope", 0, 0)->empty());
  EXPECT_EQ(store_->get_task("t1")->last_event_id, 3);
}

TEST_P(StoreConformance, Blacklist) {
  BlacklistEntry e;
  e.agent_id = "bad";
  e.reason_code = "abuse";
  e.reason = "spam";
  e.reporter_id = "coord-1";
  ASSERT_TRUE(store_->put_blacklist(e));
  e.agent_id = "temp";
  e.expires_at_ms = clock_->now_ms.load() + 1000;
  ASSERT_TRUE(store_->put_blacklist(e));

  auto got = store_->get_blacklist("bad");
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->reason, "spam");
  EXPECT_EQ((*got)->created_at_ms, clock_->now_ms.load());
  EXPECT_EQ(store_->list_blacklist()->size(), 2u);
  clock_->advance(1001);
  EXPECT_FALSE(store_->get_blacklist("temp")->has_value());
  EXPECT_EQ(store_->list_blacklist()->size(), 1u);

  e.agent_id = "bad";
  e.reason = "updated";
  e.expires_at_ms = 0;
  ASSERT_TRUE(store_->put_blacklist(e));
  EXPECT_EQ((*store_->get_blacklist("bad"))->reason, "updated");
  EXPECT_TRUE(*store_->remove_blacklist("bad"));
  EXPECT_FALSE(*store_->remove_blacklist("bad"));
  EXPECT_FALSE(store_->get_blacklist("bad")->has_value());
}

// Reservations never overdraw, even when many race for the same account.
TEST_P(StoreConformance, ReserveCreditsIsAtomicPerAccount) {
  LedgerEntry hold;
  hold.account_id = "payer";
  hold.kind = "held";
  hold.amount_millicredits = -1000;
  hold.tx_id = "hold:first";
  hold.task_id = "first";
  EXPECT_EQ(*store_->reserve_credits(hold), ReserveOutcome::no_history);
  LedgerEntry grant;
  grant.tx_id = "grant";
  grant.account_id = "payer";
  grant.kind = "adjust";
  grant.amount_millicredits = 3500;
  ASSERT_TRUE(store_->append_ledger(grant));
  EXPECT_EQ(*store_->reserve_credits(hold), ReserveOutcome::reserved);
  EXPECT_EQ(*store_->reserve_credits(hold), ReserveOutcome::duplicate);
  EXPECT_EQ(*store_->balance("payer"), 2500);
  hold.amount_millicredits = 0;
  EXPECT_FALSE(store_->reserve_credits(hold));
  // 8 callers race for 2.5 credits at 1 each: exactly 2 win.
  std::atomic<int> won{0}, refused{0};
  std::vector<std::thread> racers;
  for (int i = 0; i < 8; ++i) {
    racers.emplace_back([&, i] {
      LedgerEntry h;
      h.account_id = "payer";
      h.kind = "held";
      h.amount_millicredits = -1000;
      h.tx_id = "hold:race-" + std::to_string(i);
      h.task_id = "race-" + std::to_string(i);
      auto r = store_->reserve_credits(h);
      if (r && *r == ReserveOutcome::reserved) ++won;
      if (r && *r == ReserveOutcome::insufficient) ++refused;
    });
  }
  for (auto& t : racers) t.join();
  EXPECT_EQ(won.load(), 2);
  EXPECT_EQ(refused.load(), 6);
  EXPECT_EQ(*store_->balance("payer"), 500);
}

// Holds settle once their task ends: completed spends, failed / cancelled / never created refund,
// a task still running keeps its hold.
TEST_P(StoreConformance, CreditHoldsSettleWhenTheirTaskEnds) {
  LedgerEntry grant;
  grant.tx_id = "grant";
  grant.account_id = "payer";
  grant.kind = "adjust";
  grant.amount_millicredits = 10'000;
  ASSERT_TRUE(store_->append_ledger(grant));
  auto hold = [&](const std::string& task_id) {
    LedgerEntry h;
    h.tx_id = "hold:" + task_id;
    h.account_id = "payer";
    h.kind = "held";
    h.task_id = task_id;
    h.amount_millicredits = -1000;
    auto r = store_->reserve_credits(h);
    ASSERT_TRUE(r) << r.error().detail;
    EXPECT_EQ(*r, ReserveOutcome::reserved);
  };
  for (const char* id : {"done", "failing", "cancelled", "open", "orphan"}) hold(id);
  ASSERT_TRUE(store_->create_task(task("done", {sub("d1")})));
  auto once = sub("f1");
  once.max_attempts = 1;
  ASSERT_TRUE(store_->create_task(task("failing", {once})));
  ASSERT_TRUE(store_->create_task(task("cancelled", {sub("c1")})));
  ASSERT_TRUE(store_->create_task(task("open", {sub("o1")})));
  auto done = claim("agent-1");
  ASSERT_TRUE(store_->record_result(report(done, "agent-1")));
  // The mesh fails "failing": its only attempt's lease expires.
  auto failing = claim("agent-1");
  EXPECT_EQ(failing.subtask.id, "f1");
  clock_->now_ms += 600'000;
  auto expired = store_->expire_leases();
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->failed, 1);
  ASSERT_TRUE(store_->cancel_task("cancelled", "test"));
  EXPECT_EQ(*store_->balance("payer"), 5'000);

  // The orphan's hold is young: it is left for the submission that may still create its task.
  auto first = store_->settle_credit_holds(clock_->now_ms.load() - 3'600'000, 100);
  ASSERT_TRUE(first) << first.error().detail;
  const int settled_first = first->committed + first->refunded;
  auto second = store_->settle_credit_holds(clock_->now_ms.load() + 1, 100);
  ASSERT_TRUE(second) << second.error().detail;
  EXPECT_EQ(first->committed + second->committed, 1);
  EXPECT_EQ(first->refunded + second->refunded, 3);
  EXPECT_EQ(settled_first, 3);  // all but the orphan (and open)
  EXPECT_EQ(second->refunded, 1);
  // done spent 1 and open still holds 1; failing, cancelled and orphan were refunded.
  EXPECT_EQ(*store_->balance("payer"), 8'000);
  auto again = store_->settle_credit_holds(clock_->now_ms.load() + 1, 100);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->committed + again->refunded, 0);
  auto entries = store_->list_ledger("payer", 0, 0);
  ASSERT_TRUE(entries);
  std::set<std::string> tx;
  for (const auto& e : *entries) tx.insert(e.tx_id);
  EXPECT_TRUE(tx.count("spend:done"));
  EXPECT_TRUE(tx.count("release:done"));
  EXPECT_TRUE(tx.count("release:cancelled"));
  EXPECT_TRUE(tx.count("release:orphan"));
  EXPECT_FALSE(tx.count("spend:cancelled"));
  EXPECT_FALSE(tx.count("release:open"));
}

TEST_P(StoreConformance, LedgerAppendOnlyIdempotentBalance) {
  LedgerEntry e;
  e.tx_id = "tx1";
  e.account_id = "acct";
  e.kind = "earn";
  e.amount_millicredits = 2500;
  auto a = store_->append_ledger(e);
  ASSERT_TRUE(a) << a.error().detail;
  EXPECT_FALSE(a->duplicate);
  auto again = store_->append_ledger(e);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->seq, a->seq);
  e.tx_id = "tx2";
  e.kind = "spend";
  e.amount_millicredits = -1000;
  auto b = store_->append_ledger(e);
  ASSERT_TRUE(b);
  EXPECT_GT(b->seq, a->seq);
  e.tx_id = "tx3";
  e.account_id = "other";
  ASSERT_TRUE(store_->append_ledger(e));

  EXPECT_EQ(*store_->balance("acct"), 1500);
  EXPECT_EQ(*store_->balance("nobody"), 0);
  auto list = store_->list_ledger("acct", 0, 0);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ(list->at(0).tx_id, "tx1");
  EXPECT_EQ(list->at(1).amount_millicredits, -1000);
  EXPECT_EQ(list->at(1).created_at_ms, clock_->now_ms.load());
  EXPECT_EQ(store_->list_ledger("acct", a->seq, 0)->size(), 1u);
  EXPECT_EQ(store_->list_ledger("acct", 0, 1)->size(), 1u);
  e.tx_id = "";
  EXPECT_EQ(store_->append_ledger(e).error().code, core::Errc::invalid_argument);
}

TEST_P(StoreConformance, AuditLog) {
  AuditRecord rec;
  rec.actor = "admin";
  rec.action = "approve_agent";
  rec.target = "agent-1";
  auto id1 = store_->append_audit(rec);
  ASSERT_TRUE(id1);
  rec.action = "blacklist";
  auto id2 = store_->append_audit(rec);
  ASSERT_TRUE(id2);
  EXPECT_GT(*id2, *id1);
  auto all = store_->list_audit(0, 0);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(all->at(0).action, "approve_agent");
  EXPECT_EQ(all->at(0).at_ms, clock_->now_ms.load());
  EXPECT_EQ(store_->list_audit(*id1, 0)->size(), 1u);
  EXPECT_EQ(store_->list_audit(0, 1)->size(), 1u);
  rec.target = "agent-2";
  ASSERT_TRUE(store_->append_audit(rec));
  auto recent = store_->recent_audit("blacklist", "", 0);
  ASSERT_TRUE(recent);
  ASSERT_EQ(recent->size(), 2u);
  EXPECT_EQ(recent->at(0).target, "agent-2");  // newest first
  EXPECT_EQ(store_->recent_audit("", "agent-1", 0)->size(), 2u);
  EXPECT_EQ(store_->recent_audit("approve_agent", "agent-2", 0)->size(), 0u);
  EXPECT_EQ(store_->recent_audit("", "", 1)->size(), 1u);
  rec.actor = "";
  EXPECT_EQ(store_->append_audit(rec).error().code, core::Errc::invalid_argument);
}

TEST_P(StoreConformance, MeshSettingsAreStoredAndReplaced) {
  auto missing = store_->get_mesh_setting("network_mode");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(store_->put_mesh_setting("network_mode", "enterprise_overlay", "operator"));
  clock_->now_ms += 5;
  ASSERT_TRUE(store_->put_mesh_setting("network_mode", "public_mesh", "operator-2"));
  auto got = store_->get_mesh_setting("network_mode");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->value, "public_mesh");
  EXPECT_EQ((*got)->updated_by, "operator-2");
  EXPECT_EQ((*got)->updated_at_ms, clock_->now_ms.load());
  EXPECT_EQ(store_->put_mesh_setting("", "x", "operator").error().code,
            core::Errc::invalid_argument);
}

TEST_P(StoreConformance, OrchestrationOnePerAgentWithReports) {
  Orchestration o;
  o.agent_id = "agent-1";
  o.rollout_id = "r1";
  o.provider = "ollama-local";
  o.model = "qwen:7b";
  o.requested_by = "control-plane";
  auto put = store_->put_orchestration(o);
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, "requested");
  clock_->now_ms += 10;
  auto rep = store_->report_orchestration("agent-1", "r1", "downloading", "pulling", 40);
  ASSERT_TRUE(rep) << rep.error().detail;
  EXPECT_EQ(rep->status, "downloading");
  EXPECT_EQ(rep->progress_pct, 40);
  EXPECT_EQ(rep->updated_at_ms, clock_->now_ms.load());
  // A new request replaces the old one; a late report for the old one is refused.
  o.rollout_id = "r2";
  o.model = "qwen:14b";
  ASSERT_TRUE(store_->put_orchestration(o));
  auto late = store_->report_orchestration("agent-1", "r1", "healthy", "", -1);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, core::Errc::conflict);
  auto got = store_->get_orchestration("agent-1");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->model, "qwen:14b");
  EXPECT_EQ((*got)->status, "requested");
  EXPECT_EQ(store_->report_orchestration("nobody", "", "healthy", "", -1).error().code,
            core::Errc::not_found);
  o.agent_id = "agent-0";
  ASSERT_TRUE(store_->put_orchestration(o));
  EXPECT_EQ(store_->list_orchestrations("r2")->size(), 2u);
  EXPECT_EQ(store_->list_orchestrations("r1")->size(), 0u);
  EXPECT_EQ(store_->list_orchestrations("")->at(0).agent_id, "agent-0");
  o.model = "";
  EXPECT_EQ(store_->put_orchestration(o).error().code, core::Errc::invalid_argument);
}

TEST_P(StoreConformance, RolloutPolicyAndStatesAreStoredTogether) {
  RolloutRecord r{"rollout-1", R"({"stage":"canary"})", 0, 0, 0};
  RolloutAgentState a{"rollout-1", "agent-a", "pending", "m2", "m1", "", false, 0, 0};
  auto v1 = store_->put_rollout(r, {a});
  ASSERT_TRUE(v1);
  EXPECT_EQ(*v1, 1);
  EXPECT_EQ(store_->put_rollout(r, {a}).error().code, core::Errc::conflict);  // exists
  clock_->now_ms += 5;
  RolloutAgentState b{"rollout-1", "agent-b", "pending", "m2", "m1", "", false, 0, 0};
  a.status = "healthy";
  r.policy_json = R"({"stage":"batch"})";
  r.version = 1;
  auto v2 = store_->put_rollout(r, {a, b});
  ASSERT_TRUE(v2);
  EXPECT_EQ(*v2, 2);
  // A writer holding the old version is refused and changes nothing.
  r.policy_json = R"({"stage":"full"})";
  auto stale = store_->put_rollout(r, {});
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, core::Errc::conflict);
  auto got = store_->get_rollout("rollout-1");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->policy_json, R"({"stage":"batch"})");
  EXPECT_EQ((*got)->version, 2);
  EXPECT_LT((*got)->created_at_ms, (*got)->updated_at_ms);
  auto states = store_->list_rollout_states("rollout-1");
  ASSERT_TRUE(states);
  ASSERT_EQ(states->size(), 2u);
  EXPECT_EQ(states->at(0).agent_id, "agent-a");  // enrolment order
  EXPECT_EQ(states->at(0).status, "healthy");
  EXPECT_EQ(states->at(0).previous_model, "m1");
  EXPECT_LT(states->at(0).enrolled_at_ms, states->at(1).enrolled_at_ms);
  EXPECT_EQ(store_->list_rollouts()->size(), 1u);
  EXPECT_FALSE(store_->get_rollout("nope")->has_value());
  b.rollout_id = "other";
  EXPECT_EQ(store_->put_rollout(r, {b}).error().code, core::Errc::invalid_argument);
}

TEST_P(StoreConformance, AnOperatorsAgentModeSurvivesReRegistration) {
  AgentRegistration reg;
  reg.info.id = "a1";
  reg.info.mode = "swarm-only";
  ASSERT_TRUE(store_->register_agent(reg));
  auto set = store_->set_agent_mode("a1", "ide-enabled");
  ASSERT_TRUE(set);
  EXPECT_EQ(set->mode(), "ide-enabled");
  auto again = store_->register_agent(reg);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->agent.mode(), "ide-enabled");
  EXPECT_EQ(again->agent.info.mode, "swarm-only");
  ASSERT_TRUE(store_->set_agent_mode("a1", ""));
  EXPECT_EQ(store_->get_agent("a1")->mode(), "swarm-only");
  EXPECT_EQ(store_->set_agent_mode("nobody", "ide-enabled").error().code, core::Errc::not_found);
}

TEST_P(StoreConformance, AgentMeshPeersTunnelsOffersAndRateWindows) {
  AgentMeshStore& mesh = store_->agent_mesh();
  // Peers: re-registration refreshes, keeps the first registration time.
  MeshPeer p{"agent-1", "PEM", "http://c:4301", "public_mesh", "agent", 0, 0};
  auto put = mesh.put_mesh_peer(p);
  ASSERT_TRUE(put) << put.error().detail;
  EXPECT_EQ(put->peer_count, 1);
  const auto first = put->peer.registered_at_ms;
  clock_->advance(1'000);
  p.coordinator_url = "http://d:4301";
  put = mesh.put_mesh_peer(p);
  ASSERT_TRUE(put);
  EXPECT_EQ(put->peer_count, 1);
  EXPECT_EQ(put->peer.registered_at_ms, first);
  EXPECT_EQ(put->peer.last_seen_ms, first + 1'000);
  EXPECT_EQ(mesh.list_mesh_peers()->at(0).coordinator_url, "http://d:4301");

  // Tunnels: one per pair, either direction; only the invited end accepts.
  AgentRegistration reg;
  for (const char* id : {"a", "b", "c"}) {
    reg.info.id = id;
    ASSERT_TRUE(store_->register_agent(reg));
  }
  auto opened = mesh.open_tunnel("a", "b", "tok-1");
  ASSERT_TRUE(opened);
  EXPECT_FALSE(opened->second);
  auto again = mesh.open_tunnel("b", "a", "tok-2");
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->second);
  EXPECT_EQ(again->first.token, "tok-1");
  EXPECT_EQ(mesh.agent_mesh_inbox("b", 10)->invites.size(), 1u);
  EXPECT_EQ(mesh.accept_tunnel("tok-1", "a").error().wire(), "tunnel_target_mismatch");
  EXPECT_EQ(mesh.accept_tunnel("nope", "b").error().wire(), "tunnel_not_found");
  ASSERT_TRUE(mesh.accept_tunnel("tok-1", "b"));
  EXPECT_TRUE(mesh.agent_mesh_inbox("b", 10)->invites.empty());

  // Relays: per-agent window and per-tunnel cap; a refused relay counts for nothing.
  RateLimit agent_limit{"relay:a", 10'000, 2};
  RateLimit tunnel_limit{"tunnel:tok-1", 60'000, 3};
  EXPECT_EQ(mesh.relay_tunnel("tok-1", "c", agent_limit, tunnel_limit).error().wire(),
            "tunnel_peer_mismatch");
  EXPECT_EQ(mesh.relay_tunnel("tok-1", "a", agent_limit, tunnel_limit)->relay_count, 1);
  EXPECT_EQ(mesh.relay_tunnel("tok-1", "a", agent_limit, tunnel_limit)->relay_count, 2);
  EXPECT_EQ(mesh.relay_tunnel("tok-1", "a", agent_limit, tunnel_limit)->status,
            RelayOutcome::Status::agent_rate_limited);
  RateLimit b_limit{"relay:b", 10'000, 2};
  EXPECT_EQ(mesh.relay_tunnel("tok-1", "b", b_limit, tunnel_limit)->relay_count, 3);
  EXPECT_EQ(mesh.relay_tunnel("tok-1", "b", b_limit, tunnel_limit)->status,
            RelayOutcome::Status::tunnel_cap_reached);
  // Had the refused relay counted for b, b would now be at its own limit.
  EXPECT_EQ(mesh.relay_tunnel("tok-1", "b", b_limit, tunnel_limit)->status,
            RelayOutcome::Status::tunnel_cap_reached);

  // Close: removed, the other end gets a notice until it acknowledges it.
  ASSERT_TRUE(mesh.close_tunnel("tok-1", "a", "done"));
  EXPECT_TRUE(mesh.list_tunnels()->empty());
  auto inbox = mesh.agent_mesh_inbox("b", 10);
  ASSERT_EQ(inbox->close_notices.size(), 1u);
  EXPECT_EQ(inbox->close_notices[0].peer_agent_id, "a");
  EXPECT_EQ(inbox->close_notices[0].reason, "done");
  EXPECT_TRUE(*mesh.ack_tunnel_close("b", "tok-1"));
  EXPECT_TRUE(mesh.agent_mesh_inbox("b", 10)->close_notices.empty());

  // Offers: offered -> accepted -> completed, only by the target.
  DirectWorkOffer o;
  o.offer_id = "o1";
  o.from_agent = "a";
  o.to_agent = "b";
  o.work_type = "code_task";
  o.language = "python";
  o.input = "print(1)";
  RateLimit offers{"offer:a", 10'000, 1};
  EXPECT_EQ(*mesh.create_offer(o, offers), RateOutcome::taken);
  o.offer_id = "o2";
  EXPECT_EQ(*mesh.create_offer(o, offers), RateOutcome::limited);
  EXPECT_EQ(mesh.get_offer("o2").error().wire(), "offer_not_found");
  EXPECT_EQ(mesh.agent_mesh_inbox("b", 10)->offers.size(), 1u);
  EXPECT_EQ(mesh.complete_offer("o1", "b", true, "1", "", 5).error().wire(), "offer_not_accepted");
  EXPECT_EQ(mesh.accept_offer("o1", "c").error().wire(), "offer_target_mismatch");
  ASSERT_TRUE(mesh.accept_offer("o1", "b"));
  EXPECT_EQ(mesh.accept_offer("o1", "b").error().wire(), "offer_not_available");
  EXPECT_TRUE(mesh.agent_mesh_inbox("b", 10)->offers.empty());
  auto done = mesh.complete_offer("o1", "b", true, "1\n", "", 5);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, "completed");
  auto listed = mesh.list_offers(10);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->at(0).output, "1\n");
  EXPECT_TRUE(listed->at(0).ok);
  EXPECT_EQ(mesh.agent_mesh_counts()->offers_completed, 1);

  // Sweep: an idle tunnel closes with a notice to both ends; stale offers expire.
  ASSERT_TRUE(mesh.open_tunnel("a", "c", "tok-3"));
  clock_->advance(10'000);
  o.offer_id = "o3";
  ASSERT_EQ(*mesh.create_offer(o, offers), RateOutcome::taken);
  AgentMeshSweep sweep;
  sweep.tunnel_idle_before_ms = clock_->now_ms - 5'000;
  sweep.offer_before_ms = clock_->now_ms - 1;
  sweep.notice_before_ms = 0;
  sweep.peer_before_ms = 0;
  auto swept = mesh.sweep_agent_mesh(sweep);
  ASSERT_TRUE(swept) << swept.error().detail;
  EXPECT_EQ(swept->tunnels_closed, 1);
  EXPECT_EQ(swept->offers_expired, 0);
  EXPECT_EQ(mesh.agent_mesh_inbox("c", 10)->close_notices.at(0).reason, "idle_timeout");
  EXPECT_EQ(mesh.agent_mesh_inbox("a", 10)->close_notices.size(), 1u);
  clock_->advance(1);
  sweep.offer_before_ms = clock_->now_ms;
  sweep.peer_before_ms = clock_->now_ms;
  swept = mesh.sweep_agent_mesh(sweep);
  EXPECT_EQ(swept->offers_expired, 1);
  EXPECT_EQ(swept->peers_removed, 1);
  EXPECT_EQ(mesh.get_offer("o3")->status, "expired");
  EXPECT_EQ(mesh.get_offer("o1")->status, "completed");
}

TEST_P(StoreConformance, BlacklistChainAppendsOnTheHeadAndAppliesEachEvent) {
  auto head = store_->blacklist_head();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->first, kBlacklistGenesis);
  EXPECT_EQ(head->second, 0);
  BlacklistEvent add{0, "hash-1", std::string(kBlacklistGenesis), "a1", "add", "{}", 0};
  BlacklistEntry entry;
  entry.agent_id = "a1";
  entry.reason_code = "manual_review";
  entry.reason = "looked odd";
  auto first = store_->append_blacklist_event(add, entry);
  ASSERT_TRUE(first) << first.error().detail;
  EXPECT_EQ(first->seq, 1);
  ASSERT_TRUE(store_->get_blacklist("a1")->has_value());
  // An event built on a stale head is refused and changes nothing.
  BlacklistEvent stale{0, "hash-x", std::string(kBlacklistGenesis), "a2", "add", "{}", 0};
  entry.agent_id = "a2";
  auto refused = store_->append_blacklist_event(stale, entry);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, core::Errc::conflict);
  EXPECT_FALSE(store_->get_blacklist("a2")->has_value());
  BlacklistEvent remove{0, "hash-2", "hash-1", "a1", "remove", "{}", 0};
  auto second = store_->append_blacklist_event(remove, std::nullopt);
  ASSERT_TRUE(second);
  EXPECT_FALSE(store_->get_blacklist("a1")->has_value());
  head = store_->blacklist_head();
  EXPECT_EQ(head->first, "hash-2");
  EXPECT_EQ(head->second, 2);
  auto events = store_->list_blacklist_events(0, 0);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ(events->at(1).prev_event_hash, "hash-1");
  EXPECT_EQ(store_->list_blacklist_events(1, 0)->size(), 1u);
}

TEST_P(StoreConformance, PruneRemovesOldCompletedTasksKeepsLedgerAndOpenTasks) {
  ASSERT_TRUE(store_->create_task(task("old", {sub("o1")})));
  ASSERT_TRUE(store_->create_task(task("open", {sub("p1")})));
  auto lease = claim("x");
  ASSERT_EQ(lease.subtask.id, "o1");
  ASSERT_TRUE(store_->record_result(report(lease, "x")));
  LedgerEntry e{0, "tx", "acct", "earn", 10, "", "old", 0};
  ASSERT_TRUE(store_->append_ledger(e));
  AuditRecord rec;
  rec.actor = "a";
  rec.action = "b";
  ASSERT_TRUE(store_->append_audit(rec));

  clock_->advance(86'400'000);
  ASSERT_TRUE(store_->create_task(task("recent", {sub("r1")})));
  auto recent = claim("x");
  ASSERT_TRUE(store_->record_result(report(recent, "x")));

  auto counts = store_->prune(clock_->now_ms.load() - 1000);
  ASSERT_TRUE(counts) << counts.error().detail;
  EXPECT_EQ(counts->tasks, 1);
  EXPECT_EQ(counts->subtasks, 1);
  EXPECT_EQ(counts->results, 1);
  EXPECT_GE(counts->events, 3);
  EXPECT_EQ(store_->get_task("old").error().code, core::Errc::not_found);
  EXPECT_EQ(store_->get_result("o1").error().code, core::Errc::not_found);
  EXPECT_TRUE(store_->get_task("open"));
  EXPECT_TRUE(store_->get_task("recent"));
  EXPECT_EQ(*store_->balance("acct"), 10);
  EXPECT_EQ(store_->list_audit(0, 0)->size(), 1u);
}

TEST_P(StoreConformance, ConcurrentClaimsLeaseEachSubtaskOnce) {
  constexpr int kTasks = 20, kPerTask = 5, kThreads = 8;
  for (int t = 0; t < kTasks; ++t) {
    std::vector<NewSubtask> subs;
    for (int s = 0; s < kPerTask; ++s) subs.push_back(sub("s" + std::to_string(t * 10 + s)));
    ASSERT_TRUE(store_->create_task(task("t" + std::to_string(t), subs)));
  }
  std::mutex mu;
  std::multiset<std::string> seen;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      std::string agent = "agent-" + std::to_string(i);
      for (;;) {
        auto r = store_->claim_next(claim_request(agent));
        if (!r) {
          ++errors;
          ADD_FAILURE() << agent << " claim_next: " << r.error().detail;
          return;
        }
        if (!r->has_value()) return;
        const Lease& lease = **r;
        ResultReport rep;
        rep.subtask_id = lease.subtask.id;
        rep.agent_id = agent;
        rep.attempt = lease.attempt;
        rep.ok = true;
        rep.output = lease.subtask.id;
        auto rec = store_->record_result(rep);
        if (!rec || *rec != RecordOutcome::accepted) {
          ++errors;
          ADD_FAILURE() << agent << " record_result " << lease.subtask.id << ": "
                        << (rec ? "not accepted" : rec.error().detail);
        }
        std::lock_guard lock(mu);
        seen.insert(lease.subtask.id);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kTasks * kPerTask));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size());
  for (int t = 0; t < kTasks; ++t) {
    auto st = store_->get_task("t" + std::to_string(t));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->state, TaskState::completed) << st->id;
  }
}

TEST_P(StoreConformance, ConcurrentWritersLedgerAndEvents) {
  ASSERT_TRUE(store_->create_task(task("t1", {sub("a")})));
  constexpr int kThreads = 16, kEach = 25;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < kEach; ++n) {
        LedgerEntry e;
        e.tx_id = "tx-" + std::to_string(i) + "-" + std::to_string(n);
        e.account_id = "acct-" + std::to_string(i % 4);
        e.kind = "earn";
        e.amount_millicredits = 1;
        if (!store_->append_ledger(e)) ++errors;
        if (!store_->append_event("t1", "tick", "{}")) ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  std::int64_t total = 0;
  for (int a = 0; a < 4; ++a) total += *store_->balance("acct-" + std::to_string(a));
  EXPECT_EQ(total, kThreads * kEach);
  auto events = store_->list_events("t1", 0, 0);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), static_cast<std::size_t>(kThreads * kEach + 1));
  for (std::size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].id, static_cast<std::int64_t>(i + 1));
  }
}

TEST_P(StoreConformance, ConcurrentCreateOfTheSameTaskCreatesItOnce) {
  std::atomic<int> created{0}, errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto r = store_->create_task(task("same", {sub("x"), sub("y")}));
      if (!r) {
        ++errors;
      } else if (r->created) {
        ++created;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(created.load(), 1);
}

TEST_P(StoreConformance, RegisterAgentWithTokensAndAutoApprove) {
  RegistrationToken tok;
  tok.id = "tok1";
  tok.token_hash = "hash-1";
  tok.label = "laptops";
  tok.created_by = "operator";
  auto created = store_->create_registration_token(tok);
  ASSERT_TRUE(created) << created.error().detail;
  EXPECT_EQ(created->created_at_ms, clock_->now_ms.load());
  EXPECT_EQ(store_->create_registration_token(tok).error().code, core::Errc::conflict);

  AgentRegistration reg;
  reg.info.id = "a1";
  reg.info.languages = {"python", "rust"};
  reg.info.telemetry_json = R"({"batteryPct":50})";
  auto plain = store_->register_agent(reg);
  ASSERT_TRUE(plain) << plain.error().detail;
  EXPECT_EQ(plain->token, TokenCheck::none);
  EXPECT_TRUE(plain->created);
  EXPECT_EQ(plain->agent.approval, Approval::pending);
  EXPECT_EQ(plain->agent.info.languages, (std::vector<std::string>{"python", "rust"}));

  reg.token_hash = "hash-1";
  clock_->advance(10);
  auto approved = store_->register_agent(reg);
  ASSERT_TRUE(approved);
  EXPECT_EQ(approved->token, TokenCheck::valid);
  EXPECT_FALSE(approved->created);
  EXPECT_EQ(approved->agent.approval, Approval::approved);
  EXPECT_EQ(approved->agent.approval_actor, "registration-token:tok1");
  auto tokens = store_->list_registration_tokens();
  ASSERT_TRUE(tokens);
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_EQ(tokens->at(0).uses, 1);
  EXPECT_EQ(tokens->at(0).last_used_at_ms, clock_->now_ms.load());

  // A refresh without telemetry keeps the stored telemetry and approval.
  reg.token_hash.clear();
  reg.info.telemetry_json.clear();
  auto refreshed = store_->register_agent(reg);
  ASSERT_TRUE(refreshed);
  EXPECT_EQ(refreshed->agent.approval, Approval::approved);
  EXPECT_EQ(refreshed->agent.info.telemetry_json, R"({"batteryPct":50})");

  auto revoked = store_->revoke_registration_token("tok1");
  ASSERT_TRUE(revoked);
  EXPECT_EQ(revoked->revoked_at_ms, clock_->now_ms.load());
  EXPECT_EQ(store_->revoke_registration_token("nope").error().code, core::Errc::not_found);
  AgentRegistration other;
  other.info.id = "a2";
  other.token_hash = "hash-1";
  auto refused = store_->register_agent(other);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->token, TokenCheck::invalid);
  EXPECT_EQ(store_->get_agent("a2").error().code, core::Errc::not_found);

  other.token_hash.clear();
  other.auto_approve = true;
  EXPECT_EQ(store_->register_agent(other)->agent.approval, Approval::approved);
  ASSERT_TRUE(store_->set_approval("a2", Approval::denied, "operator"));
  EXPECT_EQ(store_->register_agent(other)->agent.approval, Approval::denied);
}

TEST_P(StoreConformance, HeartbeatUpdatesAgentAndRenewsOnlyApprovedLeases) {
  AgentRegistration reg;
  reg.info.id = "a1";
  reg.auto_approve = true;
  ASSERT_TRUE(store_->register_agent(reg));
  ASSERT_TRUE(store_->create_task(task("t1", {sub("a")})));
  auto lease = claim("a1", "", 1'000);
  EXPECT_EQ(store_->get_agent("a1")->last_claim_ms, clock_->now_ms.load());
  clock_->advance(5'000);
  AgentHeartbeat hb;
  hb.agent_id = "a1";
  hb.active_model = "qwen";
  hb.telemetry_json = R"({"cpuUsagePct":10})";
  hb.sandbox_mode = "bwrap";
  hb.lease_budget_ms = 1'000;
  auto out = store_->heartbeat(hb);
  ASSERT_TRUE(out) << out.error().detail;
  EXPECT_EQ(out->renewed, 1);
  EXPECT_EQ(out->agent.info.active_model, "qwen");
  EXPECT_EQ(out->agent.info.sandbox_mode, "bwrap");
  EXPECT_EQ(out->agent.last_seen_ms, clock_->now_ms.load());
  EXPECT_EQ(store_->get_task("t1")->subtasks[0].lease_expires_at_ms,
            clock_->now_ms.load() + 10'000 + 1'000);
  hb.active_model.clear();
  hb.sandbox_mode.clear();
  EXPECT_EQ(store_->heartbeat(hb)->agent.info.active_model, "qwen");
  ASSERT_TRUE(store_->set_approval("a1", Approval::denied, "operator"));
  EXPECT_EQ(store_->heartbeat(hb)->renewed, 0);  // a denied agent's leases run out
  hb.agent_id = "ghost";
  EXPECT_EQ(store_->heartbeat(hb).error().code, core::Errc::not_found);
}

TEST_P(StoreConformance, ClaimRespectsLanguagesSandboxTimeoutAndConcurrency) {
  NewSubtask rust = sub("rust");
  rust.language = "rust";
  NewSubtask boxed = sub("boxed");
  boxed.requires_sandbox = true;
  NewSubtask big = sub("big");
  big.timeout_ms = 60'000;
  ASSERT_TRUE(store_->create_task(task("t1", {rust, boxed, big, sub("p1"), sub("p2")})));
  ClaimRequest req = claim_request("a1");
  req.languages = {"python"};
  req.sandboxed = false;
  req.max_timeout_ms = 10'000;
  req.max_concurrent = 1;
  auto c1 = store_->claim_next(req);
  ASSERT_TRUE(c1 && c1->has_value());
  EXPECT_EQ((*c1)->subtask.id, "p1");
  auto c2 = store_->claim_next(req);  // at its limit of 1
  ASSERT_TRUE(c2);
  EXPECT_FALSE(c2->has_value());
  req.max_concurrent = 2;
  EXPECT_EQ((*store_->claim_next(req))->subtask.id, "p2");
  req.max_concurrent = 0;
  EXPECT_FALSE(store_->claim_next(req)->has_value());  // big, boxed, rust filtered out
  req.max_timeout_ms = 0;
  EXPECT_EQ((*store_->claim_next(req))->subtask.id, "big");
  req.sandboxed = true;
  EXPECT_EQ((*store_->claim_next(req))->subtask.id, "boxed");
  EXPECT_FALSE(store_->claim_next(req)->has_value());
  req.languages.clear();
  EXPECT_EQ((*store_->claim_next(req))->subtask.id, "rust");
}

TEST_P(StoreConformance, ConcurrentClaimsOfOneAgentHonourItsLimit) {
  std::vector<NewSubtask> subs;
  for (int i = 0; i < 20; ++i) subs.push_back(sub("s" + std::to_string(i)));
  ASSERT_TRUE(store_->create_task(task("t1", subs)));
  std::atomic<int> leased{0}, errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      ClaimRequest req = claim_request("same-agent");
      req.max_concurrent = 3;
      for (int n = 0; n < 4; ++n) {
        auto r = store_->claim_next(req);
        if (!r) {
          ++errors;
        } else if (r->has_value()) {
          ++leased;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(leased.load(), 3);
}

TEST_P(StoreConformance, FairShareAlternatesProjectsAndNewcomersDoNotStarveOthers) {
  NewTask p1 = task("t1", {sub("p1a"), sub("p1b"), sub("p1c"), sub("p1d")});
  p1.project_id = "p1";
  ASSERT_TRUE(store_->create_task(p1));
  EXPECT_EQ(claim("x").subtask.id, "p1a");
  EXPECT_EQ(claim("x").subtask.id, "p1b");
  clock_->advance(10);
  // p2 joins at p1's level (2 leases served), not at 0, so it does not take every claim.
  NewTask p2 = task("t2", {sub("p2a"), sub("p2b"), sub("p2c")});
  p2.project_id = "p2";
  ASSERT_TRUE(store_->create_task(p2));
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) order.push_back(claim("x").subtask.project_id);
  EXPECT_EQ(order, (std::vector<std::string>{"p1", "p2", "p1", "p2", "p2"}));
}

TEST_P(StoreConformance, ReleaseRequeuesWithoutSpendingAnAttempt) {
  NewSubtask s = sub("a");
  s.max_attempts = 1;
  ASSERT_TRUE(store_->create_task(task("t1", {s})));
  auto first = claim("a1");
  ReleaseRequest rel{"a", "a2", 0, ""};
  EXPECT_EQ(store_->release_lease(rel).error().code, core::Errc::conflict);
  rel.agent_id = "a1";
  rel.attempt = 5;
  EXPECT_EQ(store_->release_lease(rel).error().code, core::Errc::conflict);
  rel.attempt = first.attempt;
  rel.reason = "draining";
  ASSERT_TRUE(store_->release_lease(rel));
  auto st = store_->get_task("t1");
  EXPECT_EQ(st->subtasks[0].state, SubtaskState::queued);
  EXPECT_EQ(st->subtasks[0].releases, 1);
  EXPECT_EQ(st->subtasks[0].last_error, "released: draining");
  rel.subtask_id = "nope";
  EXPECT_EQ(store_->release_lease(rel).error().code, core::Errc::not_found);
  auto second = claim("a2");
  EXPECT_EQ(second.attempt, 2);
  clock_->advance(10'001);
  auto exp = store_->expire_leases();
  ASSERT_TRUE(exp);
  EXPECT_EQ(exp->failed, 1);  // one expired lease = max_attempts 1; the release did not count
  st = store_->get_task("t1");
  EXPECT_EQ(st->subtasks[0].state, SubtaskState::failed);
  EXPECT_NE(st->subtasks[0].last_error.find("max_attempts"), std::string::npos);
}

TEST_P(StoreConformance, CancelTaskStopsEverythingNotFinished) {
  ASSERT_TRUE(store_->create_task(task("t1", {sub("a"), sub("b"), sub("c", 50, {"a"})})));
  auto a = claim("x");
  auto b = claim("y");
  ASSERT_TRUE(store_->record_result(report(b, "y")));
  auto out = store_->cancel_task("t1", "user");
  ASSERT_TRUE(out) << out.error().detail;
  EXPECT_TRUE(out->cancelled);
  EXPECT_EQ(out->subtasks, 2);  // a (leased) and c (held)
  auto st = store_->get_task("t1");
  EXPECT_EQ(st->state, TaskState::cancelled);
  EXPECT_EQ(st->subtasks[0].state, SubtaskState::cancelled);
  EXPECT_EQ(st->subtasks[1].state, SubtaskState::completed);
  EXPECT_EQ(st->subtasks[2].state, SubtaskState::cancelled);
  EXPECT_EQ(store_->record_result(report(a, "x")).error().code, core::Errc::conflict);
  EXPECT_FALSE(store_->cancel_task("t1", "again")->cancelled);
  EXPECT_EQ(store_->cancel_task("nope", "").error().code, core::Errc::not_found);
  EXPECT_EQ(store_->list_events("t1", 0, 0)->back().kind, "task_cancelled");
  clock_->advance(1000);
  EXPECT_EQ(store_->prune(clock_->now_ms.load())->tasks, 1);  // cancelled tasks are pruned too
}

TEST_P(StoreConformance, LeaseCarriesDependencyOutputsInDependsOnOrder) {
  ASSERT_TRUE(store_->create_task(task("t1", {sub("a"), sub("b"), sub("c", 50, {"b", "a"})})));
  auto a = claim("x");
  auto b = claim("x");
  ASSERT_TRUE(store_->record_result(report(b, "x")));
  ASSERT_TRUE(store_->record_result(report(a, "x", false)));
  auto c = claim("x");
  ASSERT_EQ(c.subtask.id, "c");
  EXPECT_EQ(c.subtask.depends_on, (std::vector<std::string>{"b", "a"}));
  ASSERT_EQ(c.dependencies.size(), 2u);
  EXPECT_EQ(c.dependencies[0].subtask_id, "b");
  EXPECT_EQ(c.dependencies[0].output, "out-b");
  EXPECT_TRUE(c.dependencies[0].has_result);
  EXPECT_FALSE(c.dependencies[1].ok);
  EXPECT_EQ(store_->get_task("t1")->subtasks[2].depends_on, (std::vector<std::string>{"b", "a"}));
}

TEST_P(StoreConformance, ResultWithoutAttemptIsCheckedByHolder) {
  ASSERT_TRUE(store_->create_task(task("t1", {sub("a")})));
  auto lease = claim("x");
  ResultReport rep = report(lease, "y");
  rep.attempt = 0;
  EXPECT_EQ(store_->record_result(rep).error().code, core::Errc::conflict);
  rep.agent_id = "x";
  EXPECT_EQ(*store_->record_result(rep), RecordOutcome::accepted);
  EXPECT_EQ(store_->get_result("a")->attempt, 1);
  EXPECT_EQ(*store_->record_result(rep), RecordOutcome::duplicate);
}

// The envelope key material travels with the lease: each claim replaces it (a re-claim after
// expiry, or a claim in clear, leaves nothing of the previous lease's key), and it is read back
// with the fencing state it belongs to. A result keeps how it was reached.
TEST_P(StoreConformance, LeaseKeyIsPerClaimAndResultsKeepIterations) {
  ASSERT_TRUE(store_->create_task(task("t1", {sub("a")})));
  EXPECT_EQ(store_->get_lease_key("nope").error().code, core::Errc::not_found);
  auto before = store_->get_lease_key("a");
  ASSERT_TRUE(before) << before.error().detail;
  EXPECT_EQ(before->state, SubtaskState::queued);
  EXPECT_EQ(before->key, "");

  ClaimRequest first = claim_request("agent-1");
  first.lease_key = "key-of-attempt-1";
  auto l1 = store_->claim_next(first);
  ASSERT_TRUE(l1 && l1->has_value());
  auto k1 = store_->get_lease_key("a");
  ASSERT_TRUE(k1);
  EXPECT_EQ(k1->key, "key-of-attempt-1");
  EXPECT_EQ(k1->state, SubtaskState::leased);
  EXPECT_EQ(k1->holder, "agent-1");
  EXPECT_EQ(k1->attempt, 1);

  clock_->advance(10'001);
  ASSERT_TRUE(store_->expire_leases());
  auto l2 = store_->claim_next(claim_request("agent-2"));  // in clear
  ASSERT_TRUE(l2 && l2->has_value());
  auto k2 = store_->get_lease_key("a");
  ASSERT_TRUE(k2);
  EXPECT_EQ(k2->key, "");
  EXPECT_EQ(k2->holder, "agent-2");
  EXPECT_EQ(k2->attempt, 2);

  clock_->advance(10'001);
  ASSERT_TRUE(store_->expire_leases());
  ClaimRequest third = claim_request("agent-3");
  third.lease_key = "key-of-attempt-3";
  auto l3 = store_->claim_next(third);
  ASSERT_TRUE(l3 && l3->has_value());
  EXPECT_EQ(store_->get_lease_key("a")->key, "key-of-attempt-3");

  ResultReport rep = report(**l3, "agent-3");
  rep.iterations = 2;
  rep.escalated = true;
  ASSERT_TRUE(store_->record_result(rep));
  auto res = store_->get_result("a");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->iterations, 2);
  EXPECT_TRUE(res->escalated);
  auto listed = store_->list_results("t1");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1U);
  EXPECT_EQ((*listed)[0].iterations, 2);
  EXPECT_TRUE((*listed)[0].escalated);
  // The completed subtask keeps the key of the lease that produced its result (a repeated
  // encrypted result can still be opened and is then an idempotent duplicate).
  auto done = store_->get_lease_key("a");
  EXPECT_EQ(done->state, SubtaskState::completed);
  EXPECT_EQ(done->holder, "");
  EXPECT_EQ(done->attempt, 3);
  EXPECT_EQ(done->key, "key-of-attempt-3");
}

TEST_P(StoreConformance, CountsResultsAndDiagnostics) {
  AgentRegistration reg;
  reg.info.id = "a1";
  reg.auto_approve = true;
  ASSERT_TRUE(store_->register_agent(reg));
  reg.info.id = "a2";
  reg.auto_approve = false;
  ASSERT_TRUE(store_->register_agent(reg));
  ASSERT_TRUE(store_->create_task(task("t1", {sub("a"), sub("b"), sub("c", 50, {"a"})})));
  auto a = claim("a1");
  auto b = claim("a1");
  ASSERT_EQ(a.subtask.id, "a");
  ASSERT_TRUE(store_->record_result(report(a, "a1")));
  auto counts = store_->queue_counts(clock_->now_ms.load());
  ASSERT_TRUE(counts) << counts.error().detail;
  EXPECT_EQ(counts->queued, 1);  // c, released by a
  EXPECT_EQ(counts->leased, 1);
  EXPECT_EQ(counts->completed, 1);
  EXPECT_EQ(counts->results, 1);
  EXPECT_EQ(counts->tasks_open, 1);
  EXPECT_EQ(counts->agents, 2);
  EXPECT_EQ(counts->agents_approved, 1);
  EXPECT_EQ(counts->agents_pending, 1);
  EXPECT_EQ(counts->agents_online, 2);
  EXPECT_EQ(store_->queue_counts(clock_->now_ms.load() + 1)->agents_online, 0);
  ASSERT_TRUE(store_->record_result(report(b, "a1")));
  auto results = store_->list_results("t1");
  ASSERT_TRUE(results);
  ASSERT_EQ(results->size(), 2u);
  EXPECT_EQ(results->at(0).subtask_id, "a");
  EXPECT_EQ(results->at(1).subtask_id, "b");

  std::vector<DiagnosticEvent> events;
  for (int i = 0; i < 5; ++i) events.push_back({0, 100 + i, "m" + std::to_string(i), "ios"});
  auto kept = store_->append_diagnostics("a1", events, 3);
  ASSERT_TRUE(kept) << kept.error().detail;
  EXPECT_EQ(*kept, 3);
  auto listed = store_->list_diagnostics("a1", 0);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ(listed->at(0).message, "m4");
  EXPECT_EQ(listed->at(2).message, "m2");
  EXPECT_EQ(store_->append_diagnostics("ghost", events, 3).error().code, core::Errc::not_found);
}

asio::awaitable<void> conformance_run_coroutine(Store* store, std::thread::id loop_thread,
                                                bool* resumed_on_loop, std::string* task_state) {
  std::string id = "co-task-with-a-long-enough-id-to-live-on-the-heap";
  // The documented pattern: the awaitable is built in its own statement (GCC 12 rule).
  auto create = store->run([store, id] { return store->create_task(task(id, {sub("c")})); });
  auto created = co_await std::move(create);
  *resumed_on_loop = created.has_value() && std::this_thread::get_id() == loop_thread;
  auto get = store->run([store, id] { return store->get_task(id); });
  auto st = co_await std::move(get);
  *resumed_on_loop = *resumed_on_loop && std::this_thread::get_id() == loop_thread;
  *task_state = st ? std::string(task_state_name(st->state)) : st.error().detail;
}

TEST_P(StoreConformance, RunFromACoroutineResumesOnTheCallersExecutor) {
  asio::io_context io;
  bool resumed_on_loop = false;
  std::string state;
  asio::co_spawn(
      io,
      conformance_run_coroutine(store_.get(), std::this_thread::get_id(), &resumed_on_loop, &state),
      asio::detached);
  io.run();
  EXPECT_TRUE(resumed_on_loop);
  EXPECT_EQ(state, "open");
}

TEST_P(StoreConformance, ReadyAndDescribe) {
  EXPECT_TRUE(store_->ready());
  EXPECT_EQ(store_->backend(), GetParam());
  EXPECT_FALSE(store_->describe().empty());
  auto st = store_->schema_status();
  ASSERT_TRUE(st) << st.error().detail;
  EXPECT_EQ(st->database_version, st->binary_version);
  ASSERT_FALSE(st->migrations.empty());
  EXPECT_GT(st->migrations[0].applied_at_ms, 0);
}

// ---- the ordering chain ----

ChainSigner test_signer(const std::string& coordinator_id,
                        const core::crypto::Ed25519KeyPair& key) {
  ChainSigner signer;
  signer.coordinator_id = coordinator_id;
  signer.sign = [secret = key.secret_key](std::string_view hash) {
    auto sig = core::crypto::ed25519_sign(hash, secret);
    return sig ? core::crypto::base64_encode(*sig) : std::string();
  };
  return signer;
}

// Every record links to the one before, recomputes to its hash and carries a valid signature.
void expect_valid_chain(const std::vector<ChainRecord>& records, const std::string& public_key) {
  std::string prev(kChainGenesis);
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    EXPECT_EQ(r.sequence, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(r.prev_hash, prev) << "at " << r.sequence;
    EXPECT_EQ(chain_record_hash(r), r.hash) << "at " << r.sequence;
    auto sig = core::crypto::base64_decode(r.signature);
    ASSERT_TRUE(sig);
    EXPECT_TRUE(core::crypto::ed25519_verify(r.hash, *sig, public_key)) << "at " << r.sequence;
    prev = r.hash;
  }
}

TEST(ChainCanonical, JsJsonKeyOrderAndAbsentFieldsOmitted) {
  ChainRecord r;
  r.event_type = "task_claim";
  r.task_id = "t1";
  r.actor_id = "agent/1";
  r.sequence = 2;
  r.issued_at_ms = 1700000000000;
  r.prev_hash = "GENESIS";
  r.coordinator_id = "coord-1";
  EXPECT_EQ(chain_record_canonical(r),
            R"({"eventType":"task_claim","taskId":"t1","actorId":"agent/1","sequence":2,)"
            R"("issuedAtMs":1700000000000,"prevHash":"GENESIS","coordinatorId":"coord-1"})");
  r.subtask_id = "s\u00e9\n";
  r.payload_json = R"({"ok":true})";
  EXPECT_EQ(chain_record_canonical(r),
            "{\"eventType\":\"task_claim\",\"taskId\":\"t1\",\"subtaskId\":\"s\u00e9\\n\","
            "\"actorId\":\"agent/1\",\"sequence\":2,\"issuedAtMs\":1700000000000,"
            "\"prevHash\":\"GENESIS\",\"coordinatorId\":\"coord-1\","
            "\"payloadJson\":\"{\\\"ok\\\":true}\"}");
  EXPECT_EQ(chain_record_hash(r), core::crypto::sha256_hex(chain_record_canonical(r)));
}

TEST_P(StoreConformance, ChainRecordsTaskEventsInTheirTransactionsAndContinuesAfterReopen) {
  const auto key = core::crypto::ed25519_generate();
  // Without a signer nothing is chained.
  ASSERT_TRUE(store_->create_task(task("t0", {sub("s0")})));
  EXPECT_TRUE(store_->list_chain("coord-a", 0, 0)->empty());
  store_->set_chain_signer(test_signer("coord-a", key));
  auto head = store_->chain_head("coord-a");
  ASSERT_TRUE(head) << head.error().detail;
  EXPECT_EQ(head->first, 0);
  EXPECT_EQ(head->second, kChainGenesis);

  ASSERT_TRUE(store_->create_task(task("t1", {sub("s1"), sub("s2")})));
  ASSERT_TRUE(store_->create_task(task("t1", {sub("s1"), sub("s2")})));  // idempotent repeat
  Lease l0 = claim("w1");                                                // s0 (older task)
  Lease l1 = claim("w1");
  ASSERT_EQ(l1.subtask.id, "s1");
  int earn_calls = 0;
  ResultReport rep = report(l1, "w1");
  rep.earn = [&earn_calls](const Subtask& s, Earning& e) {
    ++earn_calls;
    EXPECT_EQ(s.id, "s1");
    e.entry.tx_id = "earn:" + s.id;
    e.entry.account_id = "w1";
    e.entry.kind = "earn";
    e.entry.amount_millicredits = 1234;
    e.payload_json = R"({"credits":1.234})";
    return true;
  };
  ASSERT_EQ(*store_->record_result(rep), RecordOutcome::accepted);
  EXPECT_EQ(*store_->record_result(rep), RecordOutcome::duplicate);  // earns nothing again
  ResultReport stale = rep;
  stale.attempt = 7;
  EXPECT_FALSE(store_->record_result(stale));
  EXPECT_EQ(earn_calls, 1);
  EXPECT_EQ(*store_->balance("w1"), 1234);
  auto entries = store_->list_ledger("w1", 0, 0);
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ(entries->at(0).tx_id, "earn:s1");
  EXPECT_EQ(entries->at(0).task_id, "t1");
  // The holder hands s0 back; its lease of s2 expires.
  ReleaseRequest rel;
  rel.subtask_id = l0.subtask.id;
  rel.agent_id = "w1";
  rel.attempt = l0.attempt;
  ASSERT_TRUE(store_->release_lease(rel));
  Lease l2 = claim("w2");
  ASSERT_TRUE(l2.subtask.id == "s0" || l2.subtask.id == "s2") << l2.subtask.id;
  clock_->advance(3'600'000);
  ASSERT_EQ(store_->expire_leases()->requeued, 1);

  auto chain = store_->list_chain("coord-a", 0, 0);
  ASSERT_TRUE(chain) << chain.error().detail;
  std::vector<std::string> kinds;
  for (const auto& r : *chain) kinds.push_back(r.event_type + ":" + r.subtask_id);
  EXPECT_EQ(kinds, (std::vector<std::string>{"task_enqueue:", "task_claim:s0", "task_claim:s1",
                                             "task_complete:s1", "earnings_accrual:s1",
                                             "task_requeue:s0", "task_claim:" + l2.subtask.id,
                                             "task_requeue:" + l2.subtask.id}));
  EXPECT_EQ(chain->at(0).actor_id, "alice");
  EXPECT_EQ(chain->at(0).task_id, "t1");
  EXPECT_EQ(chain->at(3).actor_id, "w1");
  EXPECT_EQ(chain->at(4).actor_id, "w1");
  EXPECT_EQ(chain->at(4).payload_json, R"({"credits":1.234})");
  EXPECT_EQ(chain->at(5).actor_id, "w1");       // released by the holder
  EXPECT_EQ(chain->at(7).actor_id, "coord-a");  // expired by the coordinator
  for (const auto& r : *chain) EXPECT_EQ(r.coordinator_id, "coord-a");
  expect_valid_chain(*chain, key.public_key);
  EXPECT_EQ(store_->list_chain("coord-a", 6, 1)->at(0).sequence, 7);
  head = store_->chain_head("coord-a");
  EXPECT_EQ(head->first, 8);
  EXPECT_EQ(head->second, chain->back().hash);

  // After a restart the chain continues where it stopped (no new GENESIS).
  store_.reset();
  auto reopened = home_->open();
  ASSERT_TRUE(reopened) << reopened.error().detail;
  store_ = std::move(*reopened);
  store_->set_chain_signer(test_signer("coord-a", key));
  ASSERT_TRUE(store_->create_task(task("t2", {sub("s3")})));
  chain = store_->list_chain("coord-a", 0, 0);
  ASSERT_EQ(chain->size(), 9u);
  EXPECT_EQ(chain->back().event_type, "task_enqueue");
  EXPECT_EQ(chain->back().prev_hash, chain->at(7).hash);
  expect_valid_chain(*chain, key.public_key);
}

TEST_P(StoreConformance, ChainAppendsStayLinearUnderConcurrencyAndPerCoordinator) {
  const auto key_a = core::crypto::ed25519_generate();
  const auto key_b = core::crypto::ed25519_generate();
  EXPECT_FALSE(store_->append_chain(ChainRecord{}));  // no signer, no event type
  store_->set_chain_signer(test_signer("coord-a", key_a));
  ChainRecord empty;
  EXPECT_EQ(store_->append_chain(empty).error().code, core::Errc::invalid_argument);
  // A second coordinator on the same database (PostgreSQL: a second process's store; SQLite
  // allows one process per file, so the same store appends for both ids there).
  std::unique_ptr<Store> second_owner;
  Store* second = store_.get();
  if (GetParam() == Backend::postgres) {
    auto s = home_->open();
    ASSERT_TRUE(s) << s.error().detail;
    second_owner = std::move(*s);
    second = second_owner.get();
    second->set_chain_signer(test_signer("coord-b", key_b));
  }
  constexpr int kThreads = 4;
  constexpr int kEach = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        ChainRecord d;
        d.event_type = "task_enqueue";
        d.task_id = "t" + std::to_string(t) + "-" + std::to_string(i);
        d.actor_id = "tester";
        Store* target = t % 2 == 0 ? store_.get() : second;
        if (GetParam() == Backend::sqlite && t % 2 == 1) continue;
        if (!target->append_chain(d)) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto a = store_->list_chain("coord-a", 0, 0);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size(), static_cast<std::size_t>(kThreads / 2 * kEach));
  expect_valid_chain(*a, key_a.public_key);
  if (GetParam() == Backend::postgres) {
    auto b = store_->list_chain("coord-b", 0, 0);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->size(), static_cast<std::size_t>(kThreads / 2 * kEach));
    expect_valid_chain(*b, key_b.public_key);
  }
  // The unique (coordinator, sequence) and (coordinator, prev hash) keys hold regardless.
  EXPECT_EQ(store_->chain_head("coord-a")->first, kThreads / 2 * kEach);
  EXPECT_EQ(store_->chain_head("nobody")->first, 0);
}

TEST_P(StoreConformance, RecentLedgerIsNewestFirst) {
  for (int i = 1; i <= 3; ++i) {
    LedgerEntry e;
    e.tx_id = "tx" + std::to_string(i);
    e.account_id = "acct";
    e.kind = "earn";
    e.amount_millicredits = i * 1000;
    ASSERT_TRUE(store_->append_ledger(e));
  }
  auto recent = store_->recent_ledger("acct", 2);
  ASSERT_TRUE(recent) << recent.error().detail;
  ASSERT_EQ(recent->size(), 2u);
  EXPECT_EQ(recent->at(0).tx_id, "tx3");
  EXPECT_EQ(recent->at(1).tx_id, "tx2");
  EXPECT_EQ(store_->recent_ledger("acct", 0)->size(), 3u);
  EXPECT_TRUE(store_->recent_ledger("none", 5)->empty());
}

SignedRequestAdmission admission(std::string agent, std::string nonce, std::int64_t expires,
                                 std::int64_t rate_max = 0, std::int64_t window = 60'000) {
  SignedRequestAdmission a;
  a.agent_id = std::move(agent);
  a.nonce = std::move(nonce);
  a.nonce_expires_at_ms = expires;
  a.rate_max = rate_max;
  a.rate_window_ms = window;
  return a;
}

TEST_P(StoreConformance, NoncesAreSingleUseUntilTheyExpireAndArePruned) {
  const std::int64_t t0 = clock_->now_ms.load();
  auto first = store_->admit_signed_request(admission("a1", "n1", t0 + 300'000));
  ASSERT_TRUE(first) << first.error().detail;
  EXPECT_EQ(first->admission, Admission::admitted);
  auto again = store_->admit_signed_request(admission("a1", "n1", t0 + 300'000));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->admission, Admission::replay);
  // Nonces are per agent.
  EXPECT_EQ(store_->admit_signed_request(admission("a2", "n1", t0 + 300'000))->admission,
            Admission::admitted);
  EXPECT_EQ(store_->admit_signed_request(admission("", "n1", t0 + 1)).error().code,
            core::Errc::invalid_argument);
  clock_->advance(299'999);
  EXPECT_EQ(store_->admit_signed_request(admission("a1", "n1", t0 + 600'000))->admission,
            Admission::replay);
  clock_->advance(1);  // expired: the prune removes it, and an expired nonce is not a replay
  auto pruned = store_->prune_request_guards();
  ASSERT_TRUE(pruned) << pruned.error().detail;
  EXPECT_EQ(*pruned, 2);
  EXPECT_EQ(store_->admit_signed_request(admission("a1", "n1", t0 + 600'000))->admission,
            Admission::admitted);
  EXPECT_EQ(*store_->prune_request_guards(), 0);
}

TEST_P(StoreConformance, SignedRequestRateWindowLimitsThenResets) {
  clock_->now_ms = 1'699'999'990'000;  // 10 s into a 60 s window
  const std::int64_t t0 = clock_->now_ms.load();
  for (int i = 1; i <= 3; ++i) {
    auto a = store_->admit_signed_request(admission("a1", "n" + std::to_string(i), t0 + 1000, 3));
    ASSERT_TRUE(a) << a.error().detail;
    EXPECT_EQ(a->admission, Admission::admitted);
    EXPECT_EQ(a->count, i);
  }
  // A replay is refused as a replay and does not count.
  EXPECT_EQ(store_->admit_signed_request(admission("a1", "n3", t0 + 1000, 3))->admission,
            Admission::replay);
  auto limited = store_->admit_signed_request(admission("a1", "n4", t0 + 1000, 3));
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->admission, Admission::rate_limited);
  EXPECT_EQ(limited->count, 4);
  EXPECT_EQ(limited->retry_after_ms, 50'000);
  // Another agent has its own window.
  EXPECT_EQ(store_->admit_signed_request(admission("a2", "n4", t0 + 1000, 3))->admission,
            Admission::admitted);
  clock_->advance(50'000);
  auto next = store_->admit_signed_request(admission("a1", "n5", t0 + 60'000, 3));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->admission, Admission::admitted);
  EXPECT_EQ(next->count, 1);
}

TEST_P(StoreConformance, AgentCountersCountPerKindInFixedWindows) {
  clock_->now_ms = 1'700'000'000'000;
  for (int i = 1; i <= 3; ++i) {
    auto hit = store_->bump_agent_counter("a1", "protocol_abuse", 600'000);
    ASSERT_TRUE(hit) << hit.error().detail;
    EXPECT_EQ(hit->count, i);
    EXPECT_EQ(hit->window_start_ms, 1'700'000'000'000 - 1'700'000'000'000 % 600'000);
  }
  EXPECT_EQ(store_->bump_agent_counter("a1", "registration", 600'000)->count, 1);
  EXPECT_EQ(*store_->agent_counter("a1", "protocol_abuse", 600'000), 3);
  EXPECT_EQ(*store_->agent_counter("a2", "protocol_abuse", 600'000), 0);
  EXPECT_FALSE(store_->bump_agent_counter("a1", "", 600'000));
  EXPECT_FALSE(store_->bump_agent_counter("a1", "x", 0));
  clock_->advance(600'000);
  EXPECT_EQ(*store_->agent_counter("a1", "protocol_abuse", 600'000), 0);
  EXPECT_EQ(*store_->prune_request_guards(), 2);
  EXPECT_EQ(store_->bump_agent_counter("a1", "protocol_abuse", 600'000)->count, 1);
}

// Several coordinators on one store: every increment is counted once and a nonce is taken by
// exactly one of them (on PostgreSQL through two separate stores on the same schema).
TEST_P(StoreConformance, RequestGuardsAreSharedByConcurrentWriters) {
  std::unique_ptr<Store> second;
  if (GetParam() == Backend::postgres) {
    auto s = home_->open();
    ASSERT_TRUE(s) << s.error().detail;
    second = std::move(*s);
  }
  Store* stores[2] = {store_.get(), second ? second.get() : store_.get()};
  constexpr int kThreads = 8, kEach = 10;
  std::atomic<int> admitted{0}, replays{0}, errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      Store* st = stores[i % 2];
      for (int n = 0; n < kEach; ++n) {
        // Every thread tries the same nonces; each is admitted once.
        auto a = st->admit_signed_request(
            admission("shared", "nonce-" + std::to_string(n), clock_->now_ms.load() + 300'000));
        if (!a) {
          ++errors;
        } else if (a->admission == Admission::admitted) {
          ++admitted;
        } else if (a->admission == Admission::replay) {
          ++replays;
        }
        if (!st->bump_agent_counter("shared", "protocol_abuse", 600'000)) ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(admitted.load(), kEach);
  EXPECT_EQ(replays.load(), kThreads * kEach - kEach);
  EXPECT_EQ(*stores[1]->agent_counter("shared", "protocol_abuse", 600'000), kThreads * kEach);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance,
                         ::testing::Values(Backend::sqlite, Backend::postgres), backend_param_name);

}  // namespace
}  // namespace edgecoder::store

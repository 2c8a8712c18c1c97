// The coordinator over real HTTP on loopback with simulated agents, on SQLite and PostgreSQL:
// roles, approval, registration tokens, leases swept by the timer alone, heartbeat renewal,
// fencing, max_attempts, fair share and priority, capabilities, dependencies with the context
// block, events over SSE with Last-Event-ID, cancel, /submit through a fake inference service.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "coordinator/harness.h"
#include "net/stream_parsers.h"

namespace edgecoder::coordinator {
namespace {

using testing::Harness;
using testing::HarnessOptions;
using testing::kAdmin;
using testing::kBudget;
using testing::kMesh;
using testing::Reply;

std::string backend_param_name(const ::testing::TestParamInfo<store::Backend>& info) {
  return std::string(store::backend_name(info.param));
}

nlohmann::json one_subtask_task(const std::string& input, nlohmann::json extra = {}) {
  nlohmann::json body = {{"subtasks", {{{"input", input}, {"timeoutMs", 1000}}}}};
  if (extra.is_object()) body.update(extra);
  return body;
}

class SchedulerTest : public ::testing::TestWithParam<store::Backend> {
 protected:
  void SetUp() override {
    if (testing::pg_missing_should_skip(GetParam())) GTEST_SKIP() << "EDGECODER_TEST_PG_DSN unset";
  }
  std::unique_ptr<Harness> make(HarnessOptions o = {}) {
    o.backend = GetParam();
    return std::make_unique<Harness>(std::move(o));
  }
};

TEST_P(SchedulerTest, RolesMeshAndAdminTokensAreSeparate) {
  auto h = make();
  EXPECT_EQ(h->request("GET", "/status", std::nullopt, {}).status, 401);
  auto wrong = h->request("GET", "/status", std::nullopt, {{"x-mesh-token", "nope"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.body.value("error", ""), "mesh_unauthorized");
  EXPECT_EQ(h->request("POST", "/pull", nlohmann::json{{"agentId", "a"}}, {}).status, 401);
  EXPECT_EQ(h->request("POST", "/tasks", one_subtask_task("x"), {}).status, 401);
  EXPECT_EQ(h->get("/status").status, 200);
  // The mesh token does not open operator routes; the admin token does not open mesh routes.
  auto mesh_on_admin = h->request("GET", "/admin/agents", std::nullopt, {{"x-mesh-token", kMesh}});
  EXPECT_EQ(mesh_on_admin.status, 401);
  EXPECT_EQ(h->request("GET", "/admin/agents", std::nullopt, {{"x-admin-token", kMesh}}).status,
            401);
  EXPECT_EQ(h->admin_get("/admin/agents").status, 200);
  EXPECT_EQ(h->request("GET", "/admin/agents", std::nullopt,
                       {{"authorization", std::string("Bearer ") + kAdmin}})
                .status,
            200);
  EXPECT_EQ(h->request("GET", "/status", std::nullopt, {{"x-mesh-token", kAdmin}}).status, 401);
  // Public routes.
  EXPECT_EQ(h->request("GET", "/identity", std::nullopt, {}).status, 200);
  auto runtime = h->request("GET", "/health/runtime", std::nullopt, {});
  EXPECT_EQ(runtime.status, 200);
  EXPECT_EQ(runtime.body["ollama"].value("reachable", true), false);
  // /register without the mesh token and without a registration token.
  auto reg = h->request("POST", "/register", nlohmann::json{{"agentId", "a1"}}, {});
  EXPECT_EQ(reg.status, 401);
  EXPECT_EQ(reg.body.value("error", ""), "mesh_unauthorized");
}

TEST_P(SchedulerTest, ApprovalStatesPendingApprovedDenied) {
  HarnessOptions o;
  o.auto_approve = false;
  auto h = make(o);
  auto reg = h->register_agent("a1");
  EXPECT_EQ(reg.value("accepted", true), false);
  EXPECT_EQ(reg.value("approval", ""), "pending");
  EXPECT_FALSE(reg.contains("meshToken"));
  auto hb = h->post("/heartbeat", {{"agentId", "a1"}});
  EXPECT_EQ(hb.status, 403);
  EXPECT_EQ(hb.body.value("error", ""), "agent_not_approved");
  EXPECT_EQ(h->post("/pull", {{"agentId", "a1"}}).status, 403);
  auto pending = h->admin_get("/admin/agents?approval=pending");
  ASSERT_EQ(pending.body["agents"].size(), 1u);

  EXPECT_EQ(h->admin_post("/admin/agents/a1/approve").status, 200);
  EXPECT_EQ(h->post("/heartbeat", {{"agentId", "a1"}}).status, 200);
  auto again = h->register_agent("a1");
  EXPECT_EQ(again.value("approval", ""), "approved");
  EXPECT_EQ(again.value("meshToken", ""), kMesh);

  EXPECT_EQ(h->admin_post("/admin/agents/a1/deny").status, 200);
  EXPECT_EQ(h->post("/pull", {{"agentId", "a1"}}).status, 403);
  auto denied = h->post("/register", {{"agentId", "a1"}});
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(denied.body.value("error", ""), "agent_denied");
  EXPECT_EQ(h->admin_get("/admin/agents?approval=denied").body["agents"].size(), 1u);
  EXPECT_EQ(h->admin_post("/admin/agents/nobody/approve").status, 404);
  // Re-registration is a refresh: one agent, same registeredAtMs.
  EXPECT_EQ(h->admin_get("/admin/agents").body["agents"].size(), 1u);
}

TEST_P(SchedulerTest, RegistrationTokensApproveAndRevokedOnesDoNot) {
  HarnessOptions o;
  o.auto_approve = false;
  auto h = make(o);
  auto created = h->admin_post("/admin/registration-tokens", {{"label", "laptops"}});
  ASSERT_EQ(created.status, 201) << created.text;
  const std::string token = created.body.value("token", "");
  const std::string id = created.body.value("id", "");
  ASSERT_FALSE(token.empty());
  auto listed = h->admin_get("/admin/registration-tokens");
  ASSERT_EQ(listed.body["tokens"].size(), 1u);
  EXPECT_FALSE(listed.body["tokens"][0].contains("token"));  // shown once only
  EXPECT_EQ(listed.text.find(token), std::string::npos);

  // No mesh token: the registration token is the credential (as the iOS app registers).
  auto reg = h->request("POST", "/register",
                        nlohmann::json{{"agentId", "phone-1"}, {"registrationToken", token}}, {});
  ASSERT_EQ(reg.status, 200) << reg.text;
  EXPECT_EQ(reg.body.value("approval", ""), "approved");
  EXPECT_EQ(reg.body.value("meshToken", ""), kMesh);
  auto bad =
      h->request("POST", "/register",
                 nlohmann::json{{"agentId", "phone-2"}, {"registrationToken", "ecreg_x"}}, {});
  EXPECT_EQ(bad.status, 403);
  EXPECT_EQ(bad.body.value("error", ""), "registration_token_invalid");

  EXPECT_EQ(h->admin_post("/admin/registration-tokens/" + id + "/revoke").status, 200);
  auto revoked =
      h->request("POST", "/register",
                 nlohmann::json{{"agentId", "phone-3"}, {"registrationToken", token}}, {});
  EXPECT_EQ(revoked.status, 403);
  EXPECT_EQ(h->admin_get("/admin/agents").body["agents"].size(), 1u);  // phone-3 not stored
  EXPECT_EQ(h->admin_get("/admin/registration-tokens").body["tokens"][0].value("revoked", false),
            true);
}

TEST_P(SchedulerTest, VanishedHolderLosesLeaseBySweepAloneAndSubtaskCompletesOnceElsewhere) {
  auto h = make();
  h->register_agent("a1");
  h->register_agent("a2");
  std::string task_id;
  h->create_task(one_subtask_task("print(1)"), &task_id);
  auto first = h->pull("a1");
  ASSERT_TRUE(first.is_object());
  EXPECT_EQ(first.value("attempt", 0), 1);
  EXPECT_EQ(first.value("leaseExpiresAtMs", std::int64_t{0}),
            h->clock().now_ms.load() + 1000 + kBudget);
  // a1 vanishes. Only the clock moves; no agent traffic at all.
  h->clock().advance(1000 + kBudget + 1);
  auto t = h->wait_task(task_id, [](const nlohmann::json& x) {
    return x["subtasks"][0].value("state", "") == "queued";
  });
  ASSERT_EQ(t["subtasks"][0].value("state", ""), "queued") << t.dump();
  EXPECT_EQ(t["subtasks"][0].value("lastError", ""), "lease expired");

  auto second = h->pull("a2");
  ASSERT_TRUE(second.is_object());
  EXPECT_EQ(second.value("attempt", 0), 2);
  EXPECT_EQ(h->result("a2", second, "done by a2").status, 200);
  auto stale = h->result("a1", first, "late a1");
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(stale.body.value("error", ""), "stale_lease");
  t = h->task(task_id);
  EXPECT_EQ(t.value("status", ""), "completed");
  EXPECT_EQ(t.value("output", ""), "done by a2");
  EXPECT_EQ(t["subtasks"][0]["result"].value("agentId", ""), "a2");
  EXPECT_EQ(h->get("/status").body.value("results", -1), 1);
}

TEST_P(SchedulerTest, HeartbeatingHolderKeepsLeasePastTimeoutAndNothingRunsTwice) {
  auto h = make();
  h->register_agent("a1");
  h->register_agent("a2");
  std::string task_id;
  h->create_task(one_subtask_task("long job"), &task_id);
  auto lease = h->pull("a1");
  ASSERT_TRUE(lease.is_object());
  for (int i = 0; i < 6; ++i) {
    h->clock().advance(1500);  // < timeoutMs + budget (2000) between heartbeats
    auto hb = h->post("/heartbeat", {{"agentId", "a1"}});
    ASSERT_EQ(hb.status, 200) << hb.text;
    EXPECT_EQ(hb.body.value("renewedLeases", 0), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));  // sweeps run meanwhile
  }
  // 9 s of store time have passed, far beyond timeoutMs.
  auto t = h->task(task_id);
  EXPECT_EQ(t["subtasks"][0].value("state", ""), "leased");
  EXPECT_EQ(t["subtasks"][0].value("holder", ""), "a1");
  EXPECT_EQ(t["subtasks"][0].value("attempt", 0), 1);
  EXPECT_TRUE(h->pull("a2").is_null());
  EXPECT_EQ(h->result("a1", lease, "ok").status, 200);
  EXPECT_EQ(h->task(task_id).value("status", ""), "completed");
}

TEST_P(SchedulerTest, DuplicateResultIsAnIdempotentSuccess) {
  auto h = make();
  h->register_agent("a1");
  h->create_task(one_subtask_task("x"));
  auto lease = h->pull("a1");
  auto first = h->result("a1", lease, "out");
  EXPECT_EQ(first.status, 200);
  EXPECT_FALSE(first.body.contains("duplicate"));
  auto dup = h->result("a1", lease, "out");
  EXPECT_EQ(dup.status, 200);
  EXPECT_EQ(dup.body.value("duplicate", false), true);
  // Without the attempt field (older agents): checked by holder alone, still a duplicate.
  nlohmann::json no_attempt = lease;
  no_attempt.erase("attempt");
  EXPECT_EQ(h->result("a1", no_attempt, "out").body.value("duplicate", false), true);
  EXPECT_EQ(h->result("a1", lease, "different").status, 409);
  EXPECT_EQ(h->get("/status").body.value("results", -1), 1);
}

TEST_P(SchedulerTest, MaxAttemptsEndsInFailedWithReason) {
  auto h = make();
  h->register_agent("a1");
  std::string task_id;
  auto ids = h->create_task(one_subtask_task("doomed", {{"maxAttempts", 2}}), &task_id);
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto lease = h->pull("a1");
    ASSERT_TRUE(lease.is_object()) << attempt;
    EXPECT_EQ(lease.value("attempt", 0), attempt);
    h->clock().advance(1000 + kBudget + 1);
    h->wait_task(task_id, [](const nlohmann::json& x) {
      return x["subtasks"][0].value("state", "") != "leased";
    });
  }
  auto t = h->task(task_id);
  EXPECT_EQ(t.value("status", ""), "failed");
  EXPECT_EQ(t["subtasks"][0].value("state", ""), "failed");
  EXPECT_NE(t["subtasks"][0].value("lastError", "").find("max_attempts"), std::string::npos);
  auto r = h->get("/tasks/" + task_id + "/subtasks/" + ids[0] + "/result");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.value("ok", true), false);
  EXPECT_EQ(r.body.value("status", ""), "failed");
  EXPECT_TRUE(r.body.contains("output"));
  EXPECT_TRUE(h->pull("a1").is_null());
}

TEST_P(SchedulerTest, FairShareAcrossProjectsThenPriorityThenAge) {
  auto h = make();
  h->register_agent("a1", {{"maxConcurrentTasks", 20}});
  nlohmann::json p1 = {
      {"projectId", "p1"},
      {"subtasks", {{{"input", "p1-a"}}, {{"input", "p1-b"}}, {{"input", "p1-c"}}}}};
  nlohmann::json p2 = {{"projectId", "p2"},
                       {"subtasks", {{{"input", "p2-a"}}, {{"input", "p2-b"}}}}};
  h->create_task(p1);
  h->clock().advance(10);
  h->create_task(p2);
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    auto s = h->pull("a1");
    ASSERT_TRUE(s.is_object());
    order.push_back(s["projectMeta"].value("projectId", ""));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"p1", "p2", "p1", "p2", "p1"}));

  // Same project: higher priority first, then older.
  h->clock().advance(10);
  h->create_task({{"projectId", "p3"}, {"priority", 10}, {"subtasks", {{{"input", "low"}}}}});
  h->clock().advance(10);
  h->create_task({{"projectId", "p3"}, {"priority", 90}, {"subtasks", {{{"input", "high"}}}}});
  h->clock().advance(10);
  h->create_task({{"projectId", "p3"}, {"priority", 90}, {"subtasks", {{{"input", "high2"}}}}});
  EXPECT_EQ(h->pull("a1").value("input", ""), "high");
  EXPECT_EQ(h->pull("a1").value("input", ""), "high2");
  EXPECT_EQ(h->pull("a1").value("input", ""), "low");
}

TEST_P(SchedulerTest, LanguageSandboxAndConcurrencyLimitsHold) {
  auto h = make();
  h->register_agent("py", {{"languages", {"python"}}, {"maxConcurrentTasks", 2}});
  h->register_agent("open", {{"sandboxMode", "none"}, {"maxConcurrentTasks", 5}});
  h->register_agent("boxed", {{"sandboxMode", "docker"}, {"languages", {"rust"}}});
  h->create_task({{"subtasks", {{{"input", "r"}, {"language", "rust"}}}}});
  h->create_task(
      {{"sandboxRequired", true}, {"subtasks", {{{"input", "tenant"}, {"language", "rust"}}}}});
  h->create_task({{"subtasks", {{{"input", "p1"}}, {{"input", "p2"}}, {{"input", "p3"}}}}});

  auto a = h->pull("py");
  auto b = h->pull("py");
  ASSERT_TRUE(a.is_object() && b.is_object());
  EXPECT_EQ(a.value("language", ""), "python");
  EXPECT_EQ(b.value("language", ""), "python");
  EXPECT_TRUE(h->pull("py").is_null());  // at maxConcurrentTasks = 2
  ASSERT_EQ(h->result("py", a, "done").status, 200);
  auto c = h->pull("py");
  ASSERT_TRUE(c.is_object());
  EXPECT_EQ(c.value("input", ""), "p3");
  EXPECT_TRUE(h->pull("py").is_null());  // no python left; rust is not its language

  // "open" runs python and javascript by default, and has no sandbox.
  EXPECT_TRUE(h->pull("open").is_null());
  auto r1 = h->pull("boxed");
  auto r2 = h->pull("boxed");
  ASSERT_TRUE(r1.is_object());
  EXPECT_TRUE(r2.is_null());  // maxConcurrentTasks defaults to 1
  ASSERT_EQ(h->result("boxed", r1, "x").status, 200);
  auto r3 = h->pull("boxed");
  ASSERT_TRUE(r3.is_object());
  std::set<std::string> inputs = {r1.value("input", ""), r3.value("input", "")};
  EXPECT_EQ(inputs, (std::set<std::string>{"r", "tenant"}));
}

TEST_P(SchedulerTest, PowerPolicyDefersAndRestrictsOverHttp) {
  auto h = make();
  h->register_agent("hot", {{"powerTelemetry", {{"cpuUsagePct", 95}}}});
  h->register_agent("ios", {{"os", "ios"}, {"powerTelemetry", {{"lowPowerMode", true}}}});
  h->register_agent("low", {{"powerTelemetry", {{"onACPower", false}, {"batteryPct", 30}}}});
  h->create_task(
      {{"subtasks",
        {{{"input", "big"}, {"timeoutMs", 60000}}, {{"input", "small"}, {"timeoutMs", 5000}}}}});
  auto hot = h->post("/pull", {{"agentId", "hot"}});
  EXPECT_EQ(hot.body.value("powerDeferred", false), true);
  EXPECT_EQ(hot.body.value("deferMs", 0), 5000);
  EXPECT_EQ(hot.body.value("reason", ""), "high_cpu_defer");
  auto ios = h->post("/pull", {{"agentId", "ios"}});
  EXPECT_EQ(ios.body.value("reason", ""), "ios_low_power_mode");
  EXPECT_TRUE(ios.body["subtask"].is_null());
  auto low = h->pull("low");  // laptop_battery_low: small tasks only
  ASSERT_TRUE(low.is_object());
  EXPECT_EQ(low.value("input", ""), "small");
  // A heartbeat updates the telemetry the policy reads.
  ASSERT_EQ(
      h->post("/heartbeat", {{"agentId", "hot"}, {"powerTelemetry", {{"deviceType", "server"}}}})
          .status,
      200);
  auto served = h->pull("hot");
  ASSERT_TRUE(served.is_object());
  EXPECT_EQ(served.value("input", ""), "big");
}

TEST_P(SchedulerTest, DependenciesRunInOrderWithTheContextBlock) {
  auto h = make();
  h->register_agent("a1");
  std::string task_id;
  auto ids = h->create_task({{"subtasks",
                              {{{"id", "dep-a"}, {"input", "write A"}},
                               {{"input", "write B"}, {"dependsOn", {0}}},
                               {{"input", "combine"}, {"dependsOn", {1, "dep-a"}}}}}},
                            &task_id);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], "dep-a");
  auto a = h->pull("a1");
  ASSERT_TRUE(a.is_object());
  EXPECT_EQ(a.value("input", ""), "write A");
  EXPECT_TRUE(h->post("/pull", {{"agentId", "a1"}}).body["subtask"].is_null());
  ASSERT_EQ(h->result("a1", a, "A-OUT").status, 200);
  auto b = h->pull("a1");
  ASSERT_TRUE(b.is_object());
  EXPECT_EQ(b.value("input", ""),
            "[Context from previous subtasks]\nSubtask 1 result: A-OUT\n\n[Your task]\nwrite B");
  ASSERT_EQ(h->result("a1", b, "B-OUT").status, 200);
  auto c = h->pull("a1");
  ASSERT_TRUE(c.is_object());
  EXPECT_EQ(c["dependsOn"], nlohmann::json({ids[1], "dep-a"}));
  EXPECT_EQ(c.value("input", ""),
            "[Context from previous subtasks]\nSubtask 1 result: B-OUT\nSubtask 2 result: "
            "A-OUT\n\n[Your task]\ncombine");
  ASSERT_EQ(h->result("a1", c, "C-OUT").status, 200);
  auto t = h->task(task_id);
  EXPECT_EQ(t.value("status", ""), "completed");
  EXPECT_EQ(t.value("output", ""), "A-OUT\nB-OUT\nC-OUT");

  auto cycle = h->post(
      "/tasks",
      {{"subtasks", {{{"input", "x"}, {"dependsOn", {1}}}, {{"input", "y"}, {"dependsOn", {0}}}}}});
  EXPECT_EQ(cycle.status, 400);
  EXPECT_EQ(cycle.body.value("error", ""), "invalid_request");
  EXPECT_EQ(h->post("/tasks", {{"subtasks", {{{"input", "x"}, {"dependsOn", {5}}}}}}).status, 400);
}

std::vector<net::SseEvent> parse_sse(const std::string& text) {
  net::SseParser parser;
  auto events = parser.feed(text);
  return events ? *events : std::vector<net::SseEvent>{};
}

TEST_P(SchedulerTest, EventsStreamLiveAndResumeWithLastEventId) {
  auto h = make();
  h->register_agent("a1");
  std::string task_id;
  h->create_task(one_subtask_task("x"), &task_id);
  // A client follows the task before it completes; the stream ends with task_completed.
  Reply live;
  std::thread follower([&] { live = h->get("/tasks/" + task_id + "/events"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto lease = h->pull("a1");
  ASSERT_EQ(h->result("a1", lease, "out").status, 200);
  follower.join();
  ASSERT_EQ(live.status, 200);
  auto events = parse_sse(live.text);
  std::vector<std::string> kinds;
  for (std::size_t i = 0; i < events.size(); ++i) {
    kinds.push_back(events[i].event);
    EXPECT_EQ(events[i].id, std::to_string(i + 1));
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"task_created", "subtask_leased", "subtask_result",
                                             "task_completed"}));
  auto resumed = h->request("GET", "/tasks/" + task_id + "/events", std::nullopt,
                            {{"x-mesh-token", kMesh}, {"last-event-id", "2"}});
  auto rest = parse_sse(resumed.text);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].id, "3");
  EXPECT_EQ(rest[0].event, "subtask_result");
  EXPECT_EQ(nlohmann::json::parse(rest[0].data).value("ok", false), true);
  EXPECT_EQ(h->get("/tasks/nope/events").status, 404);
}

TEST_P(SchedulerTest, CancelStopsAQueuedTaskAndRevokesLeases) {
  auto h = make();
  h->register_agent("a1");
  std::string queued_id, leased_id;
  h->create_task(one_subtask_task("never"), &queued_id);
  auto c = h->post("/tasks/" + queued_id + "/cancel", nlohmann::json::object());
  EXPECT_EQ(c.status, 200);
  EXPECT_EQ(c.body.value("cancelledSubtasks", 0), 1);
  EXPECT_TRUE(h->pull("a1").is_null());
  EXPECT_EQ(h->task(queued_id).value("status", ""), "cancelled");
  EXPECT_EQ(h->post("/tasks/" + queued_id + "/cancel", nlohmann::json::object()).status, 409);
  EXPECT_EQ(h->post("/tasks/nope/cancel", nlohmann::json::object()).status, 404);

  h->create_task(one_subtask_task("running"), &leased_id);
  auto lease = h->pull("a1");
  ASSERT_TRUE(lease.is_object());
  EXPECT_EQ(h->post("/tasks/" + leased_id + "/cancel", nlohmann::json::object()).status, 200);
  EXPECT_EQ(h->result("a1", lease, "too late").status, 409);
  auto events = parse_sse(h->get("/tasks/" + leased_id + "/events").text);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().event, "task_cancelled");
}

TEST_P(SchedulerTest, ReleaseHandsTheLeaseBackWithoutSpendingAnAttempt) {
  auto h = make();
  h->register_agent("a1");
  h->register_agent("a2");
  std::string task_id;
  h->create_task(one_subtask_task("x", {{"maxAttempts", 1}}), &task_id);
  auto lease = h->pull("a1");
  ASSERT_TRUE(lease.is_object());
  EXPECT_EQ(h->post("/release", {{"agentId", "a2"}, {"subtaskId", lease["id"]}}).status, 409);
  auto rel = h->post("/release", {{"agentId", "a1"},
                                  {"subtaskId", lease["id"]},
                                  {"attempt", lease["attempt"]},
                                  {"reason", "draining"}});
  EXPECT_EQ(rel.status, 200) << rel.text;
  auto again = h->pull("a2");
  ASSERT_TRUE(again.is_object());
  EXPECT_EQ(again.value("attempt", 0), 2);
  EXPECT_EQ(h->result("a1", lease, "stale").status, 409);
  EXPECT_EQ(h->result("a2", again, "fine").status, 200);
  EXPECT_EQ(h->task(task_id).value("status", ""), "completed");
}

TEST_P(SchedulerTest, SubmitDecomposesThroughInferenceAndFailsClearlyWithout) {
  auto h = make();
  h->inference()->response = {{"subtasks",
                               {{{"taskId", "t"},
                                 {"kind", "micro_loop"},
                                 {"input", "step one"},
                                 {"language", "python"},
                                 {"timeoutMs", 6000},
                                 {"snapshotRef", ""}},
                                {{"taskId", "t"},
                                 {"kind", "micro_loop"},
                                 {"input", "step two"},
                                 {"language", "python"},
                                 {"timeoutMs", 6000},
                                 {"dependsOn", {0}}}}}};
  auto r = h->post("/submit", {{"taskId", "sub-1"},
                               {"prompt", "build a thing"},
                               {"snapshotRef", std::string(40, 'a')},
                               {"projectId", "desk"}});
  ASSERT_EQ(r.status, 201) << r.text;
  EXPECT_EQ(r.body.value("taskId", ""), "sub-1");
  ASSERT_EQ(r.body["subtasks"].size(), 2u);
  EXPECT_EQ(h->inference()->last_token, testing::kInference);
  auto sent = nlohmann::json::parse(h->inference()->last_body);
  EXPECT_EQ(sent.value("prompt", ""), "build a thing");
  EXPECT_EQ(sent.value("taskId", ""), "sub-1");
  auto t = h->task("sub-1");
  EXPECT_EQ(t["subtasks"][0].value("state", ""), "queued");
  EXPECT_EQ(t["subtasks"][1].value("state", ""), "held");
  EXPECT_EQ(t.value("prompt", ""), "build a thing");

  EXPECT_EQ(h->post("/submit", {{"prompt", "x"}, {"snapshotRef", "http://insecure"}}).status, 400);
  h->inference()->status = 500;
  h->inference()->response = {{"error", "boom"}};
  auto failed = h->post("/submit", {{"prompt", "x"}});
  EXPECT_EQ(failed.status, 502);
  EXPECT_EQ(failed.body.value("error", ""), "inference_service_unavailable");

  HarnessOptions o;
  o.inference_reachable = false;
  auto down = make(o);
  auto unreachable = down->post("/submit", {{"prompt", "x"}});
  EXPECT_EQ(unreachable.status, 502);
  EXPECT_EQ(unreachable.body.value("error", ""), "inference_service_unavailable");
  EXPECT_NE(unreachable.body.value("detail", "").find("unreachable"), std::string::npos);
  EXPECT_EQ(unreachable.text.find(testing::kInference), std::string::npos);
}

// CREDITS_ENFORCED: a submission holds its cost on the submitter's account; the hold is spent
// when the task completes and given back when it is cancelled or never created.
TEST_P(SchedulerTest, CreditsEnforcedHoldsThenSpendsOrRefunds) {
  HarnessOptions o;
  o.extra_settings = {{"CREDITS_ENFORCED", "true"}};
  auto h = make(o);
  auto balance = [&] { return h->admin_get("/admin/credits/payer").body.value("balance", -1.0); };
  auto wait_balance = [&](double want) {
    for (int i = 0; i < 500 && balance() != want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return balance();
  };
  auto anonymous = h->post("/tasks", one_subtask_task("x"));
  EXPECT_EQ(anonymous.status, 403) << anonymous.text;
  EXPECT_EQ(anonymous.body.value("error", ""), "contribute_first_required");
  auto never_earned = h->post("/tasks", one_subtask_task("x", {{"submitterAccountId", "payer"}}));
  EXPECT_EQ(never_earned.status, 403) << never_earned.text;
  EXPECT_EQ(never_earned.body.value("error", ""), "contribute_first_required");
  ASSERT_EQ(
      h->admin_post("/admin/credits/payer/adjust", {{"credits", 2}, {"reason", "grant"}}).status,
      200);

  h->register_agent("a1");
  auto first = h->post(
      "/tasks", one_subtask_task("one", {{"taskId", "paid-1"}, {"submitterAccountId", "payer"}}));
  ASSERT_EQ(first.status, 201) << first.text;
  auto second = h->post(
      "/tasks", one_subtask_task("two", {{"taskId", "paid-2"}, {"submitterAccountId", "payer"}}));
  ASSERT_EQ(second.status, 201) << second.text;
  EXPECT_EQ(balance(), 0.0);
  auto broke = h->post("/tasks", one_subtask_task("three", {{"submitterAccountId", "payer"}}));
  EXPECT_EQ(broke.status, 402) << broke.text;
  EXPECT_EQ(broke.body.value("error", ""), "insufficient_credits");
  EXPECT_EQ(broke.body.value("requiredCredits", 0.0), 1.0);
  // Repeating a submission does not hold twice.
  EXPECT_EQ(h->post("/tasks", one_subtask_task(
                                  "one", {{"taskId", "paid-1"}, {"submitterAccountId", "payer"}}))
                .status,
            200);

  auto lease = h->pull("a1");
  ASSERT_EQ(lease.value("taskId", ""), "paid-1");
  ASSERT_EQ(h->result("a1", lease, "done").status, 200);
  ASSERT_EQ(h->post("/tasks/paid-2/cancel", nlohmann::json::object()).status, 200);
  EXPECT_EQ(wait_balance(1.0), 1.0);  // paid-1 spent, paid-2 refunded
  auto history = h->admin_get("/admin/credits/payer").body["history"];
  std::set<std::string> tx;
  for (const auto& e : history) tx.insert(e.value("txId", ""));
  EXPECT_TRUE(tx.count("spend:paid-1")) << history.dump();
  EXPECT_TRUE(tx.count("release:paid-2")) << history.dump();
  EXPECT_FALSE(tx.count("spend:paid-2")) << history.dump();

  // A /submit whose decomposition fails gives the hold back at once.
  h->inference()->status = 500;
  h->inference()->response = {{"error", "boom"}};
  auto failed = h->post("/submit", {{"prompt", "x"}, {"submitterAccountId", "payer"}});
  EXPECT_EQ(failed.status, 502) << failed.text;
  EXPECT_EQ(balance(), 1.0);
}

TEST_P(SchedulerTest, BadInputGets400NamingTheField) {
  auto h = make();
  auto missing = h->post("/register", nlohmann::json::object());
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.body.value("error", ""), "invalid_request");
  EXPECT_NE(missing.body.value("detail", "").find("agentId"), std::string::npos);
  auto sandbox = h->post("/register", {{"agentId", "a"}, {"sandboxMode", "chroot"}});
  EXPECT_EQ(sandbox.status, 400);
  EXPECT_NE(sandbox.body.value("detail", "").find("sandboxMode"), std::string::npos);
  EXPECT_EQ(h->request("POST", "/pull", std::nullopt,
                       {{"x-mesh-token", kMesh}, {"content-type", "application/json"}})
                .status,
            400);
  auto raw = h->request("POST", "/tasks", std::nullopt, {{"x-mesh-token", kMesh}});
  EXPECT_EQ(raw.status, 400);
  EXPECT_EQ(h->post("/tasks", {{"subtasks", nlohmann::json::array()}}).status, 400);
  EXPECT_EQ(h->post("/tasks", {{"priority", 101}, {"subtasks", {{{"input", "x"}}}}}).status, 400);
  auto unknown = h->post("/heartbeat", {{"agentId", "ghost"}});
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(unknown.body.value("error", ""), "mesh_unauthorized");
  EXPECT_EQ(unknown.body.value("reason", ""), "agent_not_registered");
}

TEST_P(SchedulerTest, StatusCapacityModelsDiagnosticsAndResultRoutes) {
  auto h = make();
  h->register_agent("a1", {{"activeModel", "qwen2.5-coder:7b"},
                           {"activeModelParamSize", 7},
                           {"publicKeyPem", "-----BEGIN PUBLIC KEY-----secret"}});
  std::string task_id;
  auto ids = h->create_task(one_subtask_task("x"), &task_id);
  auto pending = h->request("POST", "/tasks/" + task_id + "/subtasks/" + ids[0] + "/result",
                            std::nullopt, {{"x-mesh-token", kMesh}});
  EXPECT_EQ(pending.status, 200);
  EXPECT_FALSE(pending.body.contains("output"));
  auto lease = h->pull("a1");
  ASSERT_EQ(h->result("a1", lease, "hello").status, 200);
  auto done = h->get("/tasks/" + task_id + "/subtasks/" + ids[0] + "/result");
  EXPECT_EQ(done.body.value("output", ""), "hello");
  EXPECT_EQ(done.body.value("ok", false), true);
  EXPECT_EQ(h->get("/tasks/" + task_id + "/subtasks/other/result").status, 404);
  EXPECT_EQ(h->get("/tasks/nope").status, 404);

  auto status = h->get("/status");
  EXPECT_EQ(status.body.value("agents", -1), 1);
  EXPECT_EQ(status.body.value("results", -1), 1);
  EXPECT_EQ(status.body.value("queued", -1), 0);
  auto capacity = h->get("/capacity");
  ASSERT_EQ(capacity.status, 200);
  EXPECT_EQ(capacity.body["totals"].value("agentsConnected", 0), 1);
  EXPECT_EQ(capacity.text.find("secret"), std::string::npos);
  EXPECT_EQ(capacity.text.find("c2VjcmV0a2V5"), std::string::npos);
  EXPECT_EQ(capacity.text.find(kMesh), std::string::npos);
  auto models = h->get("/models/available");
  ASSERT_TRUE(models.body.is_array());
  ASSERT_EQ(models.body.size(), 1u);
  EXPECT_EQ(models.body[0].value("model", ""), "qwen2.5-coder:7b");
  EXPECT_EQ(models.body[0].value("agentCount", 0), 1);
  EXPECT_EQ(h->get("/features").body.value("public_mesh", false), true);
  auto identity = h->request("GET", "/identity", std::nullopt, {});
  EXPECT_EQ(identity.body.value("peerId", "").rfind("coord-", 0), 0u);

  auto diag =
      h->post("/agent/diagnostics",
              {{"agentId", "a1"}, {"events", {{{"message", "one"}}, {{"message", "two"}}}}});
  EXPECT_EQ(diag.status, 200);
  EXPECT_EQ(diag.body.value("stored", 0), 2);
  auto listed = h->get("/agent/diagnostics/a1");
  ASSERT_EQ(listed.body["events"].size(), 2u);
  EXPECT_EQ(listed.body["events"][0].value("message", ""), "two");
  EXPECT_EQ(h->post("/agent/diagnostics", {{"agentId", "ghost"}, {"events", {{{"message", "x"}}}}})
                .status,
            401);
}

INSTANTIATE_TEST_SUITE_P(Backends, SchedulerTest,
                         ::testing::Values(store::Backend::sqlite, store::Backend::postgres),
                         backend_param_name);

}  // namespace
}  // namespace edgecoder::coordinator

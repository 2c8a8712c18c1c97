// Signed agent requests, the per-agent rate limit and behaviour auto-blacklisting, over real
// HTTP on loopback on SQLite and PostgreSQL: valid signatures pass; replays, stale timestamps,
// wrong body hashes, wrong keys and agent id mismatches are refused with the failed check;
// REQUIRE_SIGNED_AGENTS refuses unsigned requests; the rate limit answers 429 and recovers in
// the next window; repeated signature failures, forged results and registration storms
// blacklist an agent through the signed chain, while a fast no-op agent with identical outputs
// and an honest late result are never blacklisted; two coordinators on one PostgreSQL share
// the replay window and the rate limit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>

#include "api/coordinator.h"
#include "coordinator/harness.h"
#include "core/crypto.h"

namespace edgecoder::coordinator {
namespace {

using testing::Harness;
using testing::HarnessOptions;
using testing::kMesh;
using testing::Reply;
using json = nlohmann::json;

std::string backend_param_name(const ::testing::TestParamInfo<store::Backend>& info) {
  return std::string(store::backend_name(info.param));
}

// A simulated agent with its own Ed25519 key.
struct SignedAgent {
  std::string id;
  core::crypto::Ed25519KeyPair key = core::crypto::ed25519_generate();
};

// The five signature headers for `body` (as http_call sends it) plus the mesh token.
net::Headers signed_headers(Harness& h, const SignedAgent& a, const std::string& path,
                            const json& body, std::int64_t at_ms = 0,
                            const std::string& header_agent = "") {
  auto hs =
      api::sign_agent_request(header_agent.empty() ? a.id : header_agent, a.key.secret_key, "POST",
                              path, body.dump(), at_ms ? at_ms : h.clock().now_ms.load());
  EXPECT_TRUE(hs);
  net::Headers out = hs ? *hs : net::Headers{};
  out.emplace_back("x-mesh-token", kMesh);
  return out;
}

Reply signed_post(Harness& h, const SignedAgent& a, const std::string& path, const json& body) {
  return h.request("POST", path, body, signed_headers(h, a, path, body));
}

void set_header(net::Headers& hs, const std::string& name, const std::string& value) {
  for (auto& [k, v] : hs) {
    if (k == name) v = value;
  }
}

void register_signed(Harness& h, const SignedAgent& a) {
  h.register_agent(a.id,
                   {{"publicKeyPem", core::crypto::ed25519_public_key_pem(a.key.public_key)}});
}

json blacklist_record(Harness& h, const std::string& agent) {
  auto list = h.get("/security/blacklist");
  EXPECT_EQ(list.status, 200) << list.text;
  for (const auto& r : list.body.value("records", json::array())) {
    if (r.value("agentId", "") == agent) return r;
  }
  return nullptr;
}

std::string header_of(const Reply& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    std::string lower = k;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == name) return v;
  }
  return "";
}

class AgentSecurityTest : public ::testing::TestWithParam<store::Backend> {
 protected:
  void SetUp() override {
    if (testing::pg_missing_should_skip(GetParam())) GTEST_SKIP() << "EDGECODER_TEST_PG_DSN unset";
  }
  std::unique_ptr<Harness> make(std::map<std::string, std::string> settings = {}) {
    HarnessOptions o;
    o.backend = GetParam();
    o.extra_settings = std::move(settings);
    return std::make_unique<Harness>(std::move(o));
  }
};

TEST_P(AgentSecurityTest, ValidSignaturesPassAndEachBadOneIsRefusedWithItsCheck) {
  auto h = make();
  SignedAgent a{"signer"};
  register_signed(*h, a);
  const json beat = {{"agentId", a.id}};
  auto ok = signed_post(*h, a, "/heartbeat", beat);
  EXPECT_EQ(ok.status, 200) << ok.text;
  EXPECT_EQ(ok.body.value("ok", false), true);
  EXPECT_EQ(signed_post(*h, a, "/pull", beat).status, 200);

  // The same headers again: a replay.
  auto headers = signed_headers(*h, a, "/heartbeat", beat);
  EXPECT_EQ(h->request("POST", "/heartbeat", beat, headers).status, 200);
  auto replay = h->request("POST", "/heartbeat", beat, headers);
  EXPECT_EQ(replay.status, 401);
  EXPECT_EQ(replay.body.value("error", ""), "signature_invalid");
  EXPECT_EQ(replay.body.value("detail", ""), "nonce_replayed");

  // A timestamp past the skew, either way.
  const std::int64_t now = h->clock().now_ms.load();
  auto old = h->request("POST", "/heartbeat", beat,
                        signed_headers(*h, a, "/heartbeat", beat, now - 120'001));
  EXPECT_EQ(old.status, 401);
  EXPECT_EQ(old.body.value("detail", ""), "timestamp_skew");
  auto future = h->request("POST", "/heartbeat", beat,
                           signed_headers(*h, a, "/heartbeat", beat, now + 120'001));
  EXPECT_EQ(future.body.value("detail", ""), "timestamp_skew");
  // Within the skew it passes.
  EXPECT_EQ(h->request("POST", "/heartbeat", beat,
                       signed_headers(*h, a, "/heartbeat", beat, now - 119'000))
                .status,
            200);

  // A body other than the one hashed and signed.
  const json other = {{"agentId", a.id}, {"activeModel", "x"}};
  auto swapped = h->request("POST", "/heartbeat", other, signed_headers(*h, a, "/heartbeat", beat));
  EXPECT_EQ(swapped.status, 401);
  EXPECT_EQ(swapped.body.value("detail", ""), "body_hash_mismatch");
  // A correct body hash with a signature by another key.
  SignedAgent impostor{a.id};
  auto forged = signed_post(*h, impostor, "/heartbeat", beat);
  EXPECT_EQ(forged.status, 401);
  EXPECT_EQ(forged.body.value("error", ""), "signature_invalid");
  EXPECT_EQ(forged.body.value("detail", ""), "signature_mismatch");
  // Signed for another path.
  auto moved = h->request("POST", "/pull", beat, signed_headers(*h, a, "/heartbeat", beat));
  EXPECT_EQ(moved.body.value("detail", ""), "signature_mismatch");
  // A garbled signature.
  auto garbled = signed_headers(*h, a, "/heartbeat", beat);
  set_header(garbled, "x-signature", "not base64!");
  EXPECT_EQ(h->request("POST", "/heartbeat", beat, garbled).body.value("detail", ""),
            "signature_mismatch");

  // The header names another agent than the body.
  SignedAgent b{"other-agent"};
  register_signed(*h, b);
  auto mismatch =
      h->request("POST", "/heartbeat", beat, signed_headers(*h, b, "/heartbeat", beat, 0, b.id));
  EXPECT_EQ(mismatch.status, 401);
  EXPECT_EQ(mismatch.body.value("error", ""), "agent_id_mismatch");

  // An agent registered without a key cannot sign; unsigned requests are accepted by default.
  SignedAgent keyless{"keyless"};
  h->register_agent(keyless.id);
  auto nokey = signed_post(*h, keyless, "/heartbeat", {{"agentId", keyless.id}});
  EXPECT_EQ(nokey.status, 401);
  EXPECT_EQ(nokey.body.value("detail", ""), "no_registered_key");
  EXPECT_EQ(h->post("/heartbeat", {{"agentId", keyless.id}}).status, 200);
  EXPECT_EQ(h->post("/heartbeat", beat).status, 200);

  // Signed results and releases: a full lease cycle.
  h->create_task({{"subtasks", {{{"input", "x"}, {"timeoutMs", 1000}}}}});
  auto pulled = signed_post(*h, a, "/pull", beat);
  ASSERT_TRUE(pulled.body["subtask"].is_object()) << pulled.text;
  const json lease = pulled.body["subtask"];
  auto released = signed_post(*h, a, "/release",
                              {{"agentId", a.id},
                               {"subtaskId", lease["id"]},
                               {"attempt", lease["attempt"]},
                               {"reason", "test"}});
  EXPECT_EQ(released.status, 200) << released.text;
  auto again = signed_post(*h, a, "/pull", beat).body["subtask"];
  ASSERT_TRUE(again.is_object());
  auto result = signed_post(*h, a, "/result",
                            {{"subtaskId", again["id"]},
                             {"taskId", again["taskId"]},
                             {"agentId", a.id},
                             {"attempt", again["attempt"]},
                             {"ok", true},
                             {"output", "done"},
                             {"durationMs", 5}});
  EXPECT_EQ(result.status, 200) << result.text;
  // Four pieces of evidence (a replay, three bad signatures) stay under the threshold of 10.
  EXPECT_TRUE(blacklist_record(*h, a.id).is_null());
}

TEST_P(AgentSecurityTest, RequireSignedAgentsRefusesUnsignedAndPartlySignedRequests) {
  auto h = make({{"REQUIRE_SIGNED_AGENTS", "true"}});
  SignedAgent a{"strict"};
  register_signed(*h, a);
  const json beat = {{"agentId", a.id}};
  const json result = {{"subtaskId", "s1"}, {"taskId", "t1"}, {"agentId", a.id},
                       {"ok", true},        {"output", "x"},  {"durationMs", 1}};
  const json release = {{"agentId", a.id}, {"subtaskId", "s1"}, {"attempt", 1}};
  const std::vector<std::pair<std::string, json>> calls = {
      {"/heartbeat", beat}, {"/pull", beat}, {"/result", result}, {"/release", release}};
  for (const auto& [path, body] : calls) {
    auto r = h->post(path, body);
    EXPECT_EQ(r.status, 401) << path << " " << r.text;
    EXPECT_EQ(r.body.value("error", ""), "signature_required") << path;
  }
  auto partial = signed_headers(*h, a, "/heartbeat", beat);
  partial.erase(std::remove_if(partial.begin(), partial.end(),
                               [](const auto& kv) { return kv.first == "x-nonce"; }),
                partial.end());
  EXPECT_EQ(h->request("POST", "/heartbeat", beat, partial).body.value("error", ""),
            "signature_required");
  EXPECT_EQ(signed_post(*h, a, "/heartbeat", beat).status, 200);
  EXPECT_EQ(signed_post(*h, a, "/pull", beat).status, 200);
}

TEST_P(AgentSecurityTest, RateLimitAnswers429ThenRecoversInTheNextWindow) {
  auto h = make({{"AGENT_RATE_LIMIT_MAX", "5"}, {"AGENT_RATE_LIMIT_WINDOW_MS", "60000"}});
  SignedAgent a{"busy"};
  register_signed(*h, a);
  // Start of a window, so that the whole burst falls into it.
  h->clock().now_ms = h->clock().now_ms.load() / 60'000 * 60'000 + 60'000;
  const json beat = {{"agentId", a.id}};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(signed_post(*h, a, "/heartbeat", beat).status, 200) << i;
  auto limited = signed_post(*h, a, "/pull", beat);
  EXPECT_EQ(limited.status, 429) << limited.text;
  EXPECT_EQ(limited.body.value("error", ""), "rate_limited");
  EXPECT_EQ(header_of(limited, "retry-after"), "60");
  EXPECT_EQ(limited.body.value("retryAfterMs", 0), 60'000);
  // Another agent is not limited by this one; unsigned requests are not counted.
  SignedAgent b{"calm"};
  register_signed(*h, b);
  EXPECT_EQ(signed_post(*h, b, "/heartbeat", {{"agentId", b.id}}).status, 200);
  h->clock().advance(30'000);
  EXPECT_EQ(signed_post(*h, a, "/heartbeat", beat).status, 429);
  h->clock().advance(30'000);
  EXPECT_EQ(signed_post(*h, a, "/heartbeat", beat).status, 200);
  // Being rate limited is not misbehaviour.
  EXPECT_TRUE(blacklist_record(*h, a.id).is_null());
}

TEST_P(AgentSecurityTest, RepeatedSignatureFailuresBlacklistTheAgentThroughTheSignedChain) {
  auto h = make();
  SignedAgent a{"attacked"};
  register_signed(*h, a);
  h->create_task({{"subtasks", {{{"input", "x"}, {"timeoutMs", 1000}}}}});
  const json beat = {{"agentId", a.id}};
  SignedAgent wrong{a.id};
  // Five bad signatures and five replays: ten pieces of evidence (the default threshold).
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(signed_post(*h, wrong, "/heartbeat", beat).body.value("detail", ""),
              "signature_mismatch");
    EXPECT_TRUE(blacklist_record(*h, a.id).is_null()) << i;
  }
  auto headers = signed_headers(*h, a, "/heartbeat", beat);
  EXPECT_EQ(h->request("POST", "/heartbeat", beat, headers).status, 200);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(h->request("POST", "/heartbeat", beat, headers).body.value("detail", ""),
              "nonce_replayed");
  }
  auto record = blacklist_record(*h, a.id);
  ASSERT_TRUE(record.is_object());
  EXPECT_EQ(record.value("reasonCode", ""), "credential_abuse");
  EXPECT_EQ(record.value("reporterId", ""), "behavioral_monitoring");
  EXPECT_EQ(record.value("reason", "").rfind("BHV005", 0), 0u) << record.dump();

  // The event is on the signed chain, its evidence hash is the SHA-256 of the evidence.
  auto audit = h->admin_get("/security/blacklist/audit");
  ASSERT_EQ(audit.status, 200);
  EXPECT_EQ(audit.body.value("verified", false), true) << audit.text;
  ASSERT_EQ(audit.body["events"].size(), 1u);
  const json event = audit.body["events"][0]["event"];
  EXPECT_EQ(event.value("reportedBy", ""), "behavioral_monitoring");
  EXPECT_EQ(event["evidence"].value("count", 0), 10);
  EXPECT_EQ(event["evidence"].value("rule", ""), "BHV005");
  EXPECT_EQ(event.value("evidenceHashSha256", ""),
            core::crypto::sha256_hex(event["evidence"].dump()));

  // Every agent route is blocked now, even with valid signatures.
  auto hb = signed_post(*h, a, "/heartbeat", beat);
  EXPECT_EQ(hb.status, 200);
  EXPECT_EQ(hb.body.value("blacklisted", false), true);
  EXPECT_EQ(hb.body.value("ok", true), false);
  auto pull = signed_post(*h, a, "/pull", beat);
  EXPECT_EQ(pull.body.value("blocked", false), true);
  EXPECT_TRUE(pull.body["subtask"].is_null());
  auto result = signed_post(*h, a, "/result",
                            {{"subtaskId", "s"},
                             {"taskId", "t"},
                             {"agentId", a.id},
                             {"ok", true},
                             {"output", "x"},
                             {"durationMs", 1}});
  EXPECT_EQ(result.status, 403);
  EXPECT_EQ(result.body.value("error", ""), "agent_blacklisted");
  auto reg = h->post("/register", {{"agentId", a.id}, {"os", "debian"}, {"version", "1"}});
  EXPECT_EQ(reg.status, 403);
  EXPECT_EQ(reg.body.value("error", ""), "agent_blacklisted");
  for (const auto& [path, body] : std::vector<std::pair<std::string, json>>{
           {"/release", {{"agentId", a.id}, {"subtaskId", "s"}, {"reason", "shutdown"}}},
           {"/agent/diagnostics",
            {{"agentId", a.id}, {"events", json::array({{{"eventAtMs", 1}, {"message", "m"}}})}}},
           {"/escalate",
            {{"taskId", "t"},
             {"agentId", a.id},
             {"task", "x"},
             {"failedCode", "y"},
             {"language", "python"}}}}) {
    auto refused = signed_post(*h, a, path, body);
    EXPECT_EQ(refused.status, 403) << path << " " << refused.text;
    EXPECT_EQ(refused.body.value("error", ""), "agent_blacklisted") << path;
  }
  // Further failures do not add events.
  signed_post(*h, wrong, "/heartbeat", beat);
  EXPECT_EQ(h->admin_get("/security/blacklist/audit").body["events"].size(), 1u);
}

TEST_P(AgentSecurityTest, AutoBlacklistCanBeTurnedOff) {
  auto h = make({{"BEHAVIOR_AUTO_BLACKLIST", "false"}});
  SignedAgent a{"spared"};
  register_signed(*h, a);
  SignedAgent wrong{a.id};
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(signed_post(*h, wrong, "/heartbeat", {{"agentId", a.id}}).status, 401);
  }
  EXPECT_TRUE(blacklist_record(*h, a.id).is_null());
  EXPECT_EQ(signed_post(*h, a, "/heartbeat", {{"agentId", a.id}}).body.value("ok", false), true);
}

// The earlier implementation banned its own no-op worker within seconds for being "fast".
TEST_P(AgentSecurityTest, FastNoOpAgentWithIdenticalOutputsIsNeverBlacklisted) {
  auto h = make();
  SignedAgent a{"noop"};
  register_signed(*h, a);
  constexpr int kSubtasks = 60;
  json subtasks = json::array();
  for (int i = 0; i < kSubtasks; ++i) {
    subtasks.push_back({{"input", "print(1) # " + std::to_string(i)}, {"timeoutMs", 1000}});
  }
  std::string task_id;
  h->create_task({{"subtasks", subtasks}}, &task_id);
  const json ask = {{"agentId", a.id}};
  int done = 0;
  for (int i = 0; i < kSubtasks; ++i) {
    auto pulled = signed_post(*h, a, "/pull", ask);
    ASSERT_EQ(pulled.status, 200) << pulled.text;
    ASSERT_TRUE(pulled.body["subtask"].is_object()) << pulled.text;
    const json s = pulled.body["subtask"];
    // Identical (and every fifth one empty) output, in 0-1 ms.
    auto r = signed_post(*h, a, "/result",
                         {{"subtaskId", s["id"]},
                          {"taskId", s["taskId"]},
                          {"agentId", a.id},
                          {"attempt", s["attempt"]},
                          {"ok", true},
                          {"output", i % 5 == 0 ? "" : "1\n"},
                          {"durationMs", i % 2}});
    ASSERT_EQ(r.status, 200) << r.text;
    done += r.body.value("ok", false);
    if (i % 10 == 0) {
      EXPECT_EQ(signed_post(*h, a, "/heartbeat", ask).status, 200);
    }
  }
  EXPECT_EQ(done, kSubtasks);
  EXPECT_EQ(h->task(task_id).value("status", ""), "completed");
  EXPECT_TRUE(blacklist_record(*h, a.id).is_null());
  EXPECT_EQ(h->admin_get("/security/blacklist/audit").body["events"].size(), 0u);
  // What it did is visible to operators as warnings in its diagnostics.
  auto diag = h->get("/agent/diagnostics/" + a.id);
  ASSERT_EQ(diag.status, 200);
  const std::string events = diag.body["events"].dump();
  EXPECT_NE(events.find("BHV001"), std::string::npos) << events;
  EXPECT_NE(events.find("BHV003"), std::string::npos) << events;
  // And it keeps working.
  EXPECT_EQ(signed_post(*h, a, "/heartbeat", ask).body.value("ok", false), true);
}

json lease_result(const std::string& agent, const json& lease) {
  return {{"subtaskId", lease["id"]},
          {"taskId", lease["taskId"]},
          {"agentId", agent},
          {"attempt", lease["attempt"]},
          {"ok", true},
          {"output", "forged"},
          {"durationMs", 1}};
}

TEST_P(AgentSecurityTest, ResultsForLeasesAnotherAgentHeldBlacklistButLateResultsDoNot) {
  auto h = make();
  // An honest slow agent: its leases expire and go to another agent; its late results are
  // refused (stale) but are not evidence.
  h->register_agent("slow");
  h->register_agent("quick");
  for (int i = 0; i < 4; ++i) {
    h->create_task({{"subtasks", {{{"input", "slow" + std::to_string(i)}, {"timeoutMs", 1000}}}}});
    auto lease = h->pull("slow");
    ASSERT_TRUE(lease.is_object());
    h->clock().advance(1000 + testing::kBudget + 1);
    ASSERT_TRUE(h->store().expire_leases());
    auto again = h->pull("quick");
    ASSERT_TRUE(again.is_object());
    ASSERT_EQ(again.value("id", ""), lease.value("id", ""));
    EXPECT_EQ(h->post("/result", lease_result("slow", lease)).status, 409);
    EXPECT_EQ(h->post("/result", lease_result("quick", again)).status, 200);
    EXPECT_EQ(h->post("/result", lease_result("slow", lease)).status, 409);
  }
  EXPECT_TRUE(blacklist_record(*h, "slow").is_null());

  // A forger reports results for attempts other agents hold or completed.
  h->register_agent("forger");
  h->create_task({{"subtasks", {{{"input", "f0"}, {"timeoutMs", 1000}}}}});
  auto held = h->pull("quick");
  ASSERT_TRUE(held.is_object());
  EXPECT_EQ(h->post("/result", lease_result("forger", held)).status, 409);
  EXPECT_TRUE(blacklist_record(*h, "forger").is_null());
  EXPECT_EQ(h->post("/result", lease_result("quick", held)).status, 200);
  EXPECT_EQ(h->post("/result", lease_result("forger", held)).status, 409);
  EXPECT_TRUE(blacklist_record(*h, "forger").is_null());
  h->create_task({{"subtasks", {{{"input", "f1"}, {"timeoutMs", 1000}}}}});
  auto future = h->pull("quick");
  ASSERT_TRUE(future.is_object());
  future["attempt"] = 7;  // never issued
  EXPECT_EQ(h->post("/result", lease_result("forger", future)).status, 409);
  auto record = blacklist_record(*h, "forger");
  ASSERT_TRUE(record.is_object());
  EXPECT_EQ(record.value("reasonCode", ""), "forged_results");
  EXPECT_EQ(record.value("reporterId", ""), "behavioral_monitoring");
  EXPECT_TRUE(blacklist_record(*h, "quick").is_null());
  EXPECT_TRUE(blacklist_record(*h, "slow").is_null());
}

TEST_P(AgentSecurityTest, RegistrationStormBlacklistsOnlyPastItsThreshold) {
  auto h = make({{"BEHAVIOR_REGISTRATION_THRESHOLD", "6"}, {"BEHAVIOR_WINDOW_MS", "60000"}});
  h->clock().now_ms = h->clock().now_ms.load() / 60'000 * 60'000 + 60'000;
  for (int i = 0; i < 5; ++i) h->register_agent("stormy");
  EXPECT_TRUE(blacklist_record(*h, "stormy").is_null());
  // A new window starts from zero.
  h->clock().advance(60'000);
  for (int i = 0; i < 5; ++i) h->register_agent("stormy");
  EXPECT_TRUE(blacklist_record(*h, "stormy").is_null());
  h->register_agent("stormy");
  auto record = blacklist_record(*h, "stormy");
  ASSERT_TRUE(record.is_object());
  EXPECT_EQ(record.value("reasonCode", ""), "dos_behavior");
  auto refused = h->post("/register", {{"agentId", "stormy"}, {"os", "debian"}, {"version", "1"}});
  EXPECT_EQ(refused.status, 403);
}

INSTANTIATE_TEST_SUITE_P(Backends, AgentSecurityTest,
                         ::testing::Values(store::Backend::sqlite, store::Backend::postgres),
                         backend_param_name);

// Two coordinators on one PostgreSQL schema: a nonce used on one is a replay on the other, and
// the rate limit counts the agent's requests on both.
TEST(AgentSecuritySharedStore, TwoCoordinatorsShareTheReplayWindowAndTheRateLimit) {
  if (testing::pg_missing_should_skip(store::Backend::postgres)) {
    GTEST_SKIP() << "EDGECODER_TEST_PG_DSN unset";
  }
  HarnessOptions o1;
  o1.backend = store::Backend::postgres;
  o1.extra_settings = {{"AGENT_RATE_LIMIT_MAX", "4"}};
  Harness h1(o1);
  HarnessOptions o2 = o1;
  o2.share_store_with = &h1;
  Harness h2(o2);
  h1.clock().now_ms = h1.clock().now_ms.load() / 60'000 * 60'000 + 60'000;
  SignedAgent a{"roamer"};
  register_signed(h1, a);
  const json beat = {{"agentId", a.id}};
  auto headers = signed_headers(h1, a, "/heartbeat", beat);
  EXPECT_EQ(h1.request("POST", "/heartbeat", beat, headers).status, 200);
  auto replay = h2.request("POST", "/heartbeat", beat, headers);
  EXPECT_EQ(replay.status, 401);
  EXPECT_EQ(replay.body.value("detail", ""), "nonce_replayed");
  EXPECT_EQ(signed_post(h2, a, "/heartbeat", beat).status, 200);
  EXPECT_EQ(signed_post(h1, a, "/heartbeat", beat).status, 200);
  EXPECT_EQ(signed_post(h2, a, "/heartbeat", beat).status, 200);
  EXPECT_EQ(signed_post(h1, a, "/heartbeat", beat).status, 429);
  EXPECT_EQ(signed_post(h2, a, "/heartbeat", beat).status, 429);
  h1.clock().advance(60'000);
  EXPECT_EQ(signed_post(h2, a, "/heartbeat", beat).status, 200);
}

}  // namespace
}  // namespace edgecoder::coordinator

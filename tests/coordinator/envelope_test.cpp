// Task envelopes and /escalate over real HTTP on loopback, on SQLite and PostgreSQL. The test
// plays the agent with its own X25519 key and opens and seals with core::crypto directly (not
// with api/envelope.h), so the wire format itself is what is checked: an envelope round trip
// (dependencies' context inside, nothing of the input in clear), a result opened after a
// coordinator restart, tampering refused with 400, a re-claim after expiry that gets a fresh
// envelope while the old holder's late result gets 409, and the /escalate relay with its 400,
// 401 and 502 answers.
#include <gtest/gtest.h>

#include "coordinator/harness.h"
#include "core/crypto.h"

namespace edgecoder::coordinator {
namespace {

namespace crypto = core::crypto;
using testing::Harness;
using testing::HarnessOptions;
using testing::kBudget;
using testing::kInference;
using testing::Reply;
using json = nlohmann::json;

std::string backend_param_name(const ::testing::TestParamInfo<store::Backend>& info) {
  return std::string(store::backend_name(info.param));
}

// An agent with an X25519 key, doing by hand what src/agent does.
struct KeyAgent {
  std::string id;
  crypto::X25519KeyPair key = crypto::x25519_generate();

  json register_extra() const {
    return {{"x25519PublicKey", crypto::base64_encode(key.public_key)}};
  }

  // HKDF-SHA256(X25519(own, ephemeral), salt = subtask id, info "edgecoder-envelope").
  std::string lease_key(const json& envelope) const {
    auto eph = crypto::base64_decode(envelope.value("ephemeralPublicKey", ""));
    EXPECT_TRUE(eph && eph->size() == 32) << envelope.dump();
    if (!eph) return "";
    auto shared = crypto::x25519_shared(key.secret_key, *eph);
    EXPECT_TRUE(shared);
    if (!shared) return "";
    auto k =
        crypto::hkdf_sha256(*shared, envelope.value("subtaskId", ""), "edgecoder-envelope", 32);
    EXPECT_TRUE(k);
    return k ? *k : "";
  }

  // The envelope's plaintext, or null when it does not open with this agent's key.
  json open(const json& envelope) const {
    auto ciphertext = crypto::base64_decode(envelope.value("encryptedPayload", ""));
    auto nonce = crypto::hex_decode(envelope.value("nonce", ""));
    auto tag = crypto::hex_decode(envelope.value("tag", ""));
    EXPECT_TRUE(ciphertext && nonce && tag) << envelope.dump();
    if (!ciphertext || !nonce || !tag) return nullptr;
    EXPECT_EQ(nonce->size(), 12U);
    EXPECT_EQ(tag->size(), 16U);
    auto plain = crypto::aes256gcm_decrypt(lease_key(envelope), *nonce, *ciphertext, *tag);
    if (!plain) return nullptr;
    return json::parse(*plain, nullptr, false);
  }

  // An encrypted /result body for the envelope's lease.
  json sealed_result(const json& envelope, const json& plaintext, bool with_attempt = true) const {
    const std::string nonce = crypto::random_bytes(12);
    auto sealed = crypto::aes256gcm_encrypt(lease_key(envelope), nonce, plaintext.dump());
    EXPECT_TRUE(sealed);
    json body = {{"subtaskId", envelope.value("subtaskId", "")},
                 {"taskId", envelope.value("taskId", "")},
                 {"agentId", id},
                 {"encryptedPayload", crypto::base64_encode(sealed->ciphertext)},
                 {"nonce", crypto::hex_encode(nonce)},
                 {"tag", crypto::hex_encode(sealed->tag)}};
    if (with_attempt) body["attempt"] = envelope.value("attempt", 0);
    return body;
  }
};

json result_plain(const std::string& output, int iterations = 1, bool escalated = false) {
  return {{"ok", true},
          {"output", output},
          {"durationMs", 7},
          {"iterations", iterations},
          {"escalated", escalated}};
}

class EnvelopeTest : public ::testing::TestWithParam<store::Backend> {
 protected:
  void SetUp() override {
    if (testing::pg_missing_should_skip(GetParam())) GTEST_SKIP() << "EDGECODER_TEST_PG_DSN unset";
  }
  std::unique_ptr<Harness> make(HarnessOptions o = {}) {
    o.backend = GetParam();
    return std::make_unique<Harness>(std::move(o));
  }
  // The envelope of a /pull (expects one).
  static json pull_envelope(Harness& h, const std::string& agent, std::string* raw = nullptr) {
    auto r = h.post("/pull", {{"agentId", agent}});
    EXPECT_EQ(r.status, 200) << r.text;
    if (raw) *raw = r.text;
    EXPECT_TRUE(r.body.is_object() && r.body.contains("subtask") && r.body["subtask"].is_null())
        << r.text;
    return r.body.is_object() ? r.body.value("envelope", json()) : json();
  }
};

TEST_P(EnvelopeTest, RoundTripWithContextBlockAndEncryptedResult) {
  auto h = make();
  KeyAgent agent{"enc-agent"};
  h->register_agent(agent.id, agent.register_extra());
  std::string task_id;
  auto ids = h->create_task({{"subtasks",
                              {{{"id", "first"},
                                {"input", "print('confidential-step-one')"},
                                {"language", "python"},
                                {"timeoutMs", 4000}},
                               {{"id", "second"},
                                {"input", "print('confidential-step-two')"},
                                {"language", "python"},
                                {"dependsOn", {"first"}}}}},
                             {"projectId", "secret-project"},
                             {"priority", 70}},
                            &task_id);
  ASSERT_EQ(ids.size(), 2U);

  std::string raw;
  json env = pull_envelope(*h, agent.id, &raw);
  ASSERT_TRUE(env.is_object()) << raw;
  // What stays in clear: ids, the fencing token, lease and timeout, upstream's metadata.
  EXPECT_EQ(env.value("subtaskId", ""), "first");
  EXPECT_EQ(env.value("taskId", ""), task_id);
  EXPECT_EQ(env.value("attempt", 0), 1);
  EXPECT_EQ(env.value("leaseExpiresAtMs", std::int64_t{0}),
            h->clock().now_ms.load() + 4000 + kBudget);
  EXPECT_EQ(env["metadata"].value("language", ""), "python");
  EXPECT_EQ(env["metadata"].value("resourceClass", ""), "cpu");
  EXPECT_EQ(env["metadata"].value("priority", 0), 70);
  EXPECT_EQ(env["metadata"].value("timeoutMs", 0), 4000);
  // Nothing of the work itself.
  EXPECT_EQ(raw.find("confidential"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("secret-project"), std::string::npos) << raw;

  json plain = agent.open(env);
  ASSERT_TRUE(plain.is_object()) << "the envelope does not open with the agent's key";
  EXPECT_EQ(plain.value("input", ""), "print('confidential-step-one')");
  EXPECT_EQ(plain.value("kind", ""), "python");  // upstream: kind holds the language
  EXPECT_EQ(plain.value("language", ""), "python");
  EXPECT_TRUE(plain.contains("snapshotRef"));
  EXPECT_EQ(plain["projectMeta"].value("projectId", ""), "secret-project");
  // Another key cannot open it.
  KeyAgent stranger{"stranger"};
  EXPECT_TRUE(stranger.open(env).is_null());

  auto accepted = h->post("/result", agent.sealed_result(env, result_plain("one-done", 2, true)));
  ASSERT_EQ(accepted.status, 200) << accepted.text;
  EXPECT_FALSE(accepted.body.contains("duplicate"));
  // The same encrypted result again is an idempotent success.
  auto again = h->post("/result", agent.sealed_result(env, result_plain("one-done", 2, true)));
  EXPECT_EQ(again.status, 200) << again.text;
  EXPECT_TRUE(again.body.value("duplicate", false)) << again.text;

  auto got = h->get("/tasks/" + task_id + "/subtasks/first/result");
  ASSERT_EQ(got.status, 200) << got.text;
  EXPECT_EQ(got.body.value("output", ""), "one-done");
  EXPECT_EQ(got.body.value("iterations", 0), 2);
  EXPECT_TRUE(got.body.value("escalated", false));

  // The dependant carries the context block inside its envelope.
  json env2 = pull_envelope(*h, agent.id);
  ASSERT_TRUE(env2.is_object());
  EXPECT_EQ(env2.value("subtaskId", ""), "second");
  EXPECT_NE(env2.value("ephemeralPublicKey", ""), env.value("ephemeralPublicKey", ""));
  json plain2 = agent.open(env2);
  ASSERT_TRUE(plain2.is_object());
  const std::string input = plain2.value("input", "");
  EXPECT_NE(input.find("[Context from previous subtasks]\nSubtask 1 result: one-done"),
            std::string::npos)
      << input;
  EXPECT_NE(input.find("[Your task]\nprint('confidential-step-two')"), std::string::npos) << input;
  ASSERT_EQ(h->post("/result", agent.sealed_result(env2, result_plain("two-done"))).status, 200);
  auto t = h->task(task_id);
  EXPECT_EQ(t.value("status", ""), "completed") << t.dump();
  EXPECT_EQ(t.value("output", ""), "one-done\ntwo-done") << t.dump();

  // An agent without a key keeps getting subtasks in clear.
  h->register_agent("plain-agent");
  h->create_task({{"subtasks", {{{"input", "print(3)"}}}}});
  auto clear = h->pull("plain-agent");
  ASSERT_TRUE(clear.is_object());
  EXPECT_EQ(clear.value("input", ""), "print(3)");
  EXPECT_EQ(h->result("plain-agent", clear, "3").status, 200);
}

TEST_P(EnvelopeTest, ResultOpensAfterTheCoordinatorRestarts) {
  KeyAgent agent{"restart-agent"};
  json env;
  std::string task_id;
  testing::SharedStore kept;
  {
    auto first = make();
    first->register_agent(agent.id, agent.register_extra());
    first->create_task({{"subtasks", {{{"input", "print('x')"}, {"timeoutMs", 60000}}}}}, &task_id);
    env = pull_envelope(*first, agent.id);
    ASSERT_TRUE(env.is_object());
    kept = first->shared_store();
  }  // the coordinator that sealed the envelope is gone, with whatever it had in memory
  HarnessOptions o;
  o.reuse = kept;
  auto second = std::make_unique<Harness>(std::move(o));
  auto r = second->post("/result", agent.sealed_result(env, result_plain("after-restart")));
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(second->task(task_id).value("output", ""), "after-restart");
}

TEST_P(EnvelopeTest, TamperedOrMisdirectedEncryptedResultsGet400) {
  auto h = make();
  KeyAgent agent{"tamper-agent"};
  h->register_agent(agent.id, agent.register_extra());
  std::string task_id;
  h->create_task({{"subtasks", {{{"input", "print('t')"}}}}}, &task_id);
  json env = pull_envelope(*h, agent.id);
  ASSERT_TRUE(env.is_object());

  json good = agent.sealed_result(env, result_plain("genuine"));
  json flipped = good;
  auto bytes = *crypto::base64_decode(good["encryptedPayload"].get<std::string>());
  bytes[0] = static_cast<char>(bytes[0] ^ 0x01);
  flipped["encryptedPayload"] = crypto::base64_encode(bytes);
  auto r = h->post("/result", flipped);
  EXPECT_EQ(r.status, 400) << r.text;
  EXPECT_EQ(r.body.value("error", ""), "envelope_decrypt_failed") << r.text;

  json bad_tag = good;
  std::string tag = good["tag"].get<std::string>();
  tag[0] = tag[0] == '0' ? '1' : '0';
  bad_tag["tag"] = tag;
  r = h->post("/result", bad_tag);
  EXPECT_EQ(r.status, 400) << r.text;
  EXPECT_EQ(r.body.value("error", ""), "envelope_decrypt_failed");

  // Sealed with a key of another lease (a stranger's key material).
  KeyAgent stranger{agent.id};
  r = h->post("/result", stranger.sealed_result(env, result_plain("forged")));
  EXPECT_EQ(r.status, 400) << r.text;
  EXPECT_EQ(r.body.value("error", ""), "envelope_decrypt_failed");

  json short_nonce = good;
  short_nonce["nonce"] = "abcd";
  r = h->post("/result", short_nonce);
  EXPECT_EQ(r.status, 400) << r.text;
  EXPECT_EQ(r.body.value("error", ""), "invalid_request");
  EXPECT_NE(r.body.value("detail", "").find("nonce"), std::string::npos) << r.text;

  json not_base64 = good;
  not_base64["encryptedPayload"] = "***";
  EXPECT_EQ(h->post("/result", not_base64).status, 400);

  // None of that touched the lease: the genuine result is accepted.
  r = h->post("/result", good);
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(h->task(task_id).value("output", ""), "genuine");

  // An encrypted result for a lease given in clear is refused too.
  h->register_agent("clear-agent");
  h->create_task({{"subtasks", {{{"input", "print('c')"}}}}});
  auto clear = h->pull("clear-agent");
  ASSERT_TRUE(clear.is_object());
  json fake_env = {
      {"subtaskId", clear.value("id", "")},
      {"taskId", clear.value("taskId", "")},
      {"attempt", clear.value("attempt", 0)},
      {"ephemeralPublicKey", crypto::base64_encode(crypto::x25519_generate().public_key)}};
  KeyAgent clear_agent{"clear-agent"};
  r = h->post("/result", clear_agent.sealed_result(fake_env, result_plain("x")));
  EXPECT_EQ(r.status, 400) << r.text;
  EXPECT_EQ(r.body.value("error", ""), "envelope_decrypt_failed");
  // A malformed key is refused at registration, not at the first pull.
  auto bad_key = h->post("/register", {{"agentId", "bad-key"},
                                       {"os", "debian"},
                                       {"sandboxMode", "bwrap"},
                                       {"x25519PublicKey", crypto::base64_encode("short")}});
  EXPECT_EQ(bad_key.status, 400) << bad_key.text;
  auto zero_key =
      h->post("/register", {{"agentId", "zero-key"},
                            {"os", "debian"},
                            {"sandboxMode", "bwrap"},
                            {"x25519PublicKey", crypto::base64_encode(std::string(32, '\0'))}});
  EXPECT_EQ(zero_key.status, 400) << zero_key.text;
}

TEST_P(EnvelopeTest, ReclaimAfterExpiryGetsAFreshEnvelopeAndTheOldHolderIsRefused) {
  auto h = make();
  KeyAgent a{"holder-a"};
  KeyAgent b{"holder-b"};
  h->register_agent(a.id, a.register_extra());
  h->register_agent(b.id, b.register_extra());
  std::string task_id;
  h->create_task({{"subtasks", {{{"input", "print('r')"}, {"timeoutMs", 1000}}}}}, &task_id);
  json first = pull_envelope(*h, a.id);
  ASSERT_TRUE(first.is_object());
  EXPECT_EQ(first.value("attempt", 0), 1);

  h->clock().advance(1000 + kBudget + 1);  // a vanishes; the sweeper requeues
  auto t = h->wait_task(
      task_id, [](const json& x) { return x["subtasks"][0].value("state", "") == "queued"; });
  ASSERT_EQ(t["subtasks"][0].value("state", ""), "queued") << t.dump();

  json second = pull_envelope(*h, b.id);
  ASSERT_TRUE(second.is_object());
  EXPECT_EQ(second.value("attempt", 0), 2);
  EXPECT_NE(second.value("ephemeralPublicKey", ""), first.value("ephemeralPublicKey", ""));
  EXPECT_TRUE(b.open(second).is_object());
  EXPECT_TRUE(a.open(second).is_null());  // sealed for b only

  // a's late result, with or without its attempt, is refused as stale before anything is opened.
  auto late = h->post("/result", a.sealed_result(first, result_plain("late a")));
  EXPECT_EQ(late.status, 409) << late.text;
  EXPECT_EQ(late.body.value("error", ""), "stale_lease");
  late = h->post("/result", a.sealed_result(first, result_plain("late a"), false));
  EXPECT_EQ(late.status, 409) << late.text;

  ASSERT_EQ(h->post("/result", b.sealed_result(second, result_plain("done by b"))).status, 200);
  // After completion, a's result (even without attempt) still cannot take its place.
  late = h->post("/result", a.sealed_result(first, result_plain("late a"), false));
  EXPECT_EQ(late.status, 409) << late.text;
  t = h->task(task_id);
  EXPECT_EQ(t.value("output", ""), "done by b");
  EXPECT_EQ(t["subtasks"][0]["result"].value("agentId", ""), "holder-b");
}

TEST_P(EnvelopeTest, EnvelopesCanBeTurnedOffCoordinatorWide) {
  HarnessOptions o;
  o.extra_settings = {{"COORDINATOR_ENVELOPES", "false"}};
  auto h = make(o);
  KeyAgent agent{"keyed"};
  h->register_agent(agent.id, agent.register_extra());
  h->create_task({{"subtasks", {{{"input", "print('open')"}}}}});
  auto sub = h->pull(agent.id);
  ASSERT_TRUE(sub.is_object());
  EXPECT_EQ(sub.value("input", ""), "print('open')");
}

// ---- POST /escalate ----

TEST_P(EnvelopeTest, EscalateRelaysToInferenceAndAnswersItsCode) {
  auto h = make();
  auto fake = h->inference();
  fake->escalate_response = {{"improvedCode", "print('fixed')"},
                             {"explanation", "Escalated to larger model for improved solution."},
                             {"model", "big-model:70b"}};
  json ask = {{"taskId", "task-9"},
              {"agentId", "a1"},
              {"task", "print the word fixed"},
              {"failedCode", "prnt('fixed')"},
              {"errorHistory", {"NameError: name 'prnt' is not defined"}},
              {"language", "python"},
              {"iterationsAttempted", 2}};
  auto r = h->post("/escalate", ask);
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body.value("taskId", ""), "task-9");
  EXPECT_EQ(r.body.value("status", ""), "completed");
  EXPECT_EQ(r.body.value("improvedCode", ""), "print('fixed')");
  EXPECT_EQ(r.body.value("resolvedByModel", ""), "big-model:70b");
  EXPECT_NE(r.body.value("explanation", "").find("Escalated"), std::string::npos);
  // What the inference service got: its contract, with the inference token.
  EXPECT_EQ(fake->escalate_calls, 1);
  EXPECT_EQ(fake->last_escalate_token, kInference);
  auto sent = json::parse(fake->last_escalate_body, nullptr, false);
  EXPECT_EQ(sent.value("task", ""), "print the word fixed");
  EXPECT_EQ(sent.value("failedCode", ""), "prnt('fixed')");
  EXPECT_EQ(sent.value("language", ""), "python");
  EXPECT_EQ(sent["errorHistory"], json::array({"NameError: name 'prnt' is not defined"}));

  // Without the mesh token: 401, and nothing is relayed.
  auto anon = h->request("POST", "/escalate", ask, {});
  EXPECT_EQ(anon.status, 401);
  EXPECT_EQ(anon.body.value("error", ""), "mesh_unauthorized");
  EXPECT_EQ(fake->escalate_calls, 1);

  // Bad bodies: 400 naming the field, nothing relayed.
  for (const char* drop : {"task", "failedCode", "language"}) {
    json bad = ask;
    bad.erase(drop);
    auto b = h->post("/escalate", bad);
    EXPECT_EQ(b.status, 400) << drop << " " << b.text;
    EXPECT_NE(b.body.value("detail", "").find(drop), std::string::npos) << b.text;
  }
  json bad_lang = ask;
  bad_lang["language"] = "cobol";
  EXPECT_EQ(h->post("/escalate", bad_lang).status, 400);
  json bad_history = ask;
  bad_history["errorHistory"] = {1, 2};
  EXPECT_EQ(h->post("/escalate", bad_history).status, 400);
  EXPECT_EQ(
      h->request("POST", "/escalate", std::nullopt, {{"x-mesh-token", testing::kMesh}}).status,
      400);
  EXPECT_EQ(fake->escalate_calls, 1);

  // The inference service fails: 502 with the upstream failure shape and its explanation.
  fake->escalate_status = 502;
  fake->escalate_response = {{"improvedCode", ""},
                             {"explanation", "Escalation inference failed: model_unavailable"}};
  auto failed = h->post("/escalate", ask);
  EXPECT_EQ(failed.status, 502) << failed.text;
  EXPECT_EQ(failed.body.value("status", ""), "failed");
  EXPECT_EQ(failed.body.value("taskId", ""), "task-9");
  EXPECT_EQ(failed.body.value("error", ""), "escalation_failed");
  EXPECT_NE(failed.body.value("detail", "").find("model_unavailable"), std::string::npos);
  // A success without code is a failure too.
  fake->escalate_status = 200;
  fake->escalate_response = {{"improvedCode", ""}, {"explanation", "nothing"}};
  EXPECT_EQ(h->post("/escalate", ask).status, 502);
}

TEST_P(EnvelopeTest, EscalateWithInferenceUnreachableIs502) {
  HarnessOptions o;
  o.inference_reachable = false;
  auto h = make(o);
  auto r = h->post("/escalate", {{"task", "t"}, {"failedCode", ""}, {"language", "javascript"}});
  EXPECT_EQ(r.status, 502) << r.text;
  EXPECT_EQ(r.body.value("error", ""), "inference_service_unavailable");
  EXPECT_EQ(r.body.value("status", ""), "failed");
  // The detail names where it tried, never a token.
  EXPECT_NE(r.body.value("detail", "").find("unreachable"), std::string::npos) << r.text;
  EXPECT_EQ(r.text.find(kInference), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Backends, EnvelopeTest,
                         ::testing::Values(store::Backend::sqlite, store::Backend::postgres),
                         backend_param_name);

}  // namespace
}  // namespace edgecoder::coordinator

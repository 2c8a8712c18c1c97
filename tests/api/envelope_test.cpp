// Task envelopes (api/envelope.h): an envelope and a result sealed by another implementation
// (vectors made with Python's `cryptography`, the way upstream's Node code does it) open here;
// our own envelopes and results round-trip; the wrong key, altered bytes and malformed fields
// are refused with the documented codes; and the /escalate request parser.
#include "api/envelope.h"

#include <gtest/gtest.h>

#include "core/crypto.h"

namespace edgecoder::api {
namespace {

namespace crypto = core::crypto;
using json = nlohmann::json;

// Upstream-style envelope for subtask "sub-1": ephemeral secret 01..20, agent secret 65..84,
// nonce c8..d3, plaintext {"input":"print(1)","snapshotRef":"","kind":"python"}.
constexpr const char* kAgentSecretHex =
    "65666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f8081828384";
constexpr const char* kKeyHex = "40f5ae55e59939cf80337439844f522a950b0f948ab0476fea8be15063a9ef98";

json upstream_envelope() {
  return {{"subtaskId", "sub-1"},
          {"ephemeralPublicKey", "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw="},
          {"encryptedPayload",
           "pleIsqBx6FqXsu9W6eI6y2qgkuaw8SKBkJhxVm0vZ7827X/sD3izYGGgiY3BO0mQUMxqrCA="},
          {"nonce", "c8c9cacbcccdcecfd0d1d2d3"},
          {"tag", "0b8ae55950a9572341bb911475639375"},
          {"metadata", {{"resourceClass", "gpu"}, {"priority", 80}, {"language", "python"}}}};
}

TEST(ApiEnvelope, OpensAnEnvelopeSealedElsewhere) {
  const std::string secret = *crypto::hex_decode(kAgentSecretHex);
  auto opened = open_task(upstream_envelope(), secret);
  ASSERT_TRUE(opened) << opened.error().detail;
  EXPECT_EQ(crypto::hex_encode(opened->key), kKeyHex);
  const WireSubtask& s = opened->subtask;
  EXPECT_EQ(s.id, "sub-1");
  EXPECT_EQ(s.input, "print(1)");
  EXPECT_EQ(s.language, "python");  // from upstream's "kind"
  EXPECT_EQ(s.kind, "single_step");
  EXPECT_EQ(s.timeout_ms, 60'000);  // upstream sends none: the Node worker's default
  EXPECT_EQ(s.project_meta.resource_class, "gpu");
  EXPECT_EQ(s.project_meta.priority, 80);
  EXPECT_EQ(s.attempt, 0);

  // A result sealed elsewhere with that key: {"ok":true,"output":"1\n","durationMs":40}.
  json body = {{"subtaskId", "sub-1"},
               {"agentId", "node-worker"},
               {"taskId", "t"},
               {"encryptedPayload", "50sO/g2Fz+kgobpeLqoIOR6g9NiKRl/ie5ZsfqP0DNSQCZvPTZHGafKm"},
               {"nonce", "32333435363738393a3b3c3d"},
               {"tag", "62d13729fefa7bdb2d73ad5afdc1f7df"},
               {"reportNonce", "n-1"}};
  auto plain = open_result(body, *crypto::hex_decode(kKeyHex));
  ASSERT_TRUE(plain) << plain.error().detail;
  EXPECT_FALSE(plain->contains("encryptedPayload"));
  EXPECT_EQ(plain->value("reportNonce", ""), "n-1");
  auto parsed = parse_result(*plain);
  ASSERT_TRUE(parsed) << parsed.error().detail;
  EXPECT_FALSE(parsed->encrypted);
  EXPECT_TRUE(parsed->ok);
  EXPECT_EQ(parsed->output, "1\n");
  EXPECT_EQ(parsed->duration_ms, 40);
  EXPECT_EQ(parsed->agent_id, "node-worker");
}

TEST(ApiEnvelope, WrongKeyOrAlteredBytesAreDecryptFailures) {
  auto stranger = crypto::x25519_generate();
  auto wrong = open_task(upstream_envelope(), stranger.secret_key);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().wire(), kEnvelopeDecryptFailed);
  EXPECT_EQ(wrong.error().code, core::Errc::invalid_argument);

  const std::string secret = *crypto::hex_decode(kAgentSecretHex);
  json altered = upstream_envelope();
  altered["tag"] = "1b8ae55950a9572341bb911475639375";
  EXPECT_EQ(open_task(altered, secret).error().wire(), kEnvelopeDecryptFailed);
  json other_subtask = upstream_envelope();  // the subtask id is the HKDF salt
  other_subtask["subtaskId"] = "sub-2";
  EXPECT_EQ(open_task(other_subtask, secret).error().wire(), kEnvelopeDecryptFailed);

  json bad_nonce = upstream_envelope();
  bad_nonce["nonce"] = "zz";
  EXPECT_EQ(open_task(bad_nonce, secret).error().wire(), "invalid_request");
  json bad_eph = upstream_envelope();
  bad_eph["ephemeralPublicKey"] = crypto::base64_encode("short");
  EXPECT_EQ(open_task(bad_eph, secret).error().wire(), "invalid_request");
  EXPECT_FALSE(open_task(json::array(), secret));
}

TEST(ApiEnvelope, OurEnvelopesAndResultsRoundTrip) {
  auto agent = crypto::x25519_generate();
  auto eph = crypto::x25519_generate();
  WireSubtask s;
  s.id = "st-9";
  s.task_id = "task-9";
  s.kind = "micro_loop";
  s.language = "javascript";
  s.input = "console.log('inside')";
  s.timeout_ms = 12'000;
  s.snapshot_ref = "https://example.org/snap.tar.gz";
  s.project_meta = ProjectMeta{"proj", "tenant-7", "cpu", 65};
  s.requested_model = "qwen2.5-coder:7b";
  s.depends_on = {"st-8"};
  s.subtask_index = 3;
  s.attempt = 2;
  s.lease_expires_at_ms = 1'700'000'123'000;
  auto envelope = seal_task(s, eph.secret_key, agent.public_key);
  ASSERT_TRUE(envelope) << envelope.error().detail;
  const std::string text = envelope->dump();
  EXPECT_EQ(text.find("inside"), std::string::npos);
  EXPECT_EQ(text.find("tenant-7"), std::string::npos);
  EXPECT_EQ((*envelope)["metadata"].value("timeoutMs", 0), 12'000);
  EXPECT_EQ(envelope->value("attempt", 0), 2);

  auto opened = open_task(*envelope, agent.secret_key);
  ASSERT_TRUE(opened) << opened.error().detail;
  const WireSubtask& o = opened->subtask;
  EXPECT_EQ(o.id, s.id);
  EXPECT_EQ(o.task_id, s.task_id);
  EXPECT_EQ(o.kind, s.kind);
  EXPECT_EQ(o.language, s.language);
  EXPECT_EQ(o.input, s.input);
  EXPECT_EQ(o.timeout_ms, s.timeout_ms);
  EXPECT_EQ(o.snapshot_ref, s.snapshot_ref);
  EXPECT_EQ(o.project_meta.project_id, "proj");
  EXPECT_EQ(o.project_meta.tenant_id, "tenant-7");
  EXPECT_EQ(o.project_meta.priority, 65);
  EXPECT_EQ(o.requested_model, s.requested_model);
  EXPECT_EQ(o.depends_on, s.depends_on);
  EXPECT_EQ(o.subtask_index, 3);
  EXPECT_EQ(o.attempt, 2);
  EXPECT_EQ(o.lease_expires_at_ms, s.lease_expires_at_ms);
  // Both sides derive the same key.
  EXPECT_EQ(opened->key, *envelope_key(eph.secret_key, agent.public_key, s.id));
  // The plaintext keeps upstream's first three fields, kind being the language.
  auto plain = json::parse(task_plaintext(s));
  EXPECT_EQ(plain.value("kind", ""), "javascript");
  EXPECT_EQ(task_plaintext(s).rfind("{\"input\":", 0), 0U);

  json result = {{"subtaskId", "st-9"}, {"taskId", "task-9"}, {"agentId", "a"},
                 {"attempt", 2},        {"ok", false},        {"output", "partial"},
                 {"error", "boom"},     {"durationMs", 321},  {"iterations", 2},
                 {"escalated", true}};
  auto sealed = seal_result(result, opened->key);
  ASSERT_TRUE(sealed) << sealed.error().detail;
  for (const char* hidden : {"ok", "output", "error", "durationMs", "iterations", "escalated"}) {
    EXPECT_FALSE(sealed->contains(hidden)) << hidden;
  }
  EXPECT_EQ(sealed->value("attempt", 0), 2);
  EXPECT_EQ(sealed->dump().find("partial"), std::string::npos);
  auto back = open_result(*sealed, opened->key);
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(*back, result);
  // Two seals of one result differ (fresh nonce).
  EXPECT_NE(seal_result(result, opened->key)->value("nonce", ""), sealed->value("nonce", ""));
  // The plaintext cannot override the ids checked before it was opened.
  json sneaky = *seal_result({{"subtaskId", "st-9"}, {"agentId", "a"}, {"ok", true}}, opened->key);
  auto sneaky_plain = envelope_seal(opened->key, R"({"ok":true,"agentId":"b","attempt":9})");
  sneaky["encryptedPayload"] = sneaky_plain->encrypted_payload;
  sneaky["nonce"] = sneaky_plain->nonce;
  sneaky["tag"] = sneaky_plain->tag;
  auto opened_sneaky = open_result(sneaky, opened->key);
  ASSERT_TRUE(opened_sneaky);
  EXPECT_EQ(opened_sneaky->value("agentId", ""), "a");
  EXPECT_FALSE(opened_sneaky->contains("attempt"));
  // Another lease's key does not open it.
  EXPECT_EQ(open_result(*sealed, crypto::random_bytes(32)).error().wire(), kEnvelopeDecryptFailed);
  // Not JSON inside.
  auto garbage = envelope_seal(opened->key, "not json");
  json garbage_body = {{"subtaskId", "st-9"},
                       {"agentId", "a"},
                       {"encryptedPayload", garbage->encrypted_payload},
                       {"nonce", garbage->nonce},
                       {"tag", garbage->tag}};
  EXPECT_EQ(open_result(garbage_body, opened->key).error().wire(), "invalid_request");
}

TEST(ApiEscalate, ParsesTheContractAndNamesBadFields) {
  auto ok = parse_escalate({{"taskId", "t"},
                            {"agentId", "a"},
                            {"task", "print hi"},
                            {"failedCode", "prnt('hi')"},
                            {"errorHistory", {"NameError"}},
                            {"language", "python"},
                            {"iterationsAttempted", 2}});
  ASSERT_TRUE(ok) << ok.error().detail;
  EXPECT_EQ(ok->iterations_attempted, 2);
  EXPECT_EQ(to_inference_json(*ok), json({{"task", "print hi"},
                                          {"failedCode", "prnt('hi')"},
                                          {"errorHistory", {"NameError"}},
                                          {"language", "python"}}));
  auto minimal = parse_escalate({{"task", "x"}, {"failedCode", ""}, {"language", "javascript"}});
  ASSERT_TRUE(minimal) << minimal.error().detail;
  EXPECT_TRUE(minimal->error_history.empty());
  auto no_task = parse_escalate({{"failedCode", ""}, {"language", "python"}});
  ASSERT_FALSE(no_task);
  EXPECT_EQ(no_task.error().wire(), "invalid_request");
  EXPECT_NE(no_task.error().detail.find("task"), std::string::npos);
  EXPECT_FALSE(parse_escalate({{"task", ""}, {"failedCode", ""}, {"language", "python"}}));
  EXPECT_FALSE(parse_escalate({{"task", "x"}, {"language", "python"}}));
  EXPECT_FALSE(parse_escalate({{"task", "x"}, {"failedCode", ""}, {"language", "rust"}}));
  EXPECT_FALSE(parse_escalate(
      {{"task", "x"}, {"failedCode", ""}, {"language", "python"}, {"errorHistory", "oops"}}));
  EXPECT_FALSE(parse_escalate(
      {{"task", "x"}, {"failedCode", ""}, {"language", "python"}, {"iterationsAttempted", 0}}));
}

}  // namespace
}  // namespace edgecoder::api

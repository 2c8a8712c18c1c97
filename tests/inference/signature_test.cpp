// Tests for the Ed25519 helpers in src/core/crypto.cpp and for src/inference/auth.cpp: the
// canonical payload, the verifier's checks (valid, replayed, expired, wrong body hash, ...) and
// the same checks through the service's HTTP routes.
#include "inference/auth.h"

#include <chrono>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/crypto.h"
#include "inference/service_fixture.h"
#include "support/child_process.h"

namespace edgecoder::inference {
namespace {

using nlohmann::json;
namespace crypto = core::crypto;

std::string unhex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(CryptoEd25519Test, Rfc8032TestVectors) {
  // RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte).
  auto pair = crypto::ed25519_from_seed(
      unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
  ASSERT_TRUE(pair.has_value());
  EXPECT_EQ(hex(pair->public_key),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  auto sig = crypto::ed25519_sign("", pair->secret_key);
  ASSERT_TRUE(sig.has_value());
  EXPECT_EQ(hex(*sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3"
            "9701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  EXPECT_TRUE(crypto::ed25519_verify("", *sig, pair->public_key));

  auto pair2 = crypto::ed25519_from_seed(
      unhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"));
  ASSERT_TRUE(pair2.has_value());
  EXPECT_EQ(hex(pair2->public_key),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
  auto sig2 = crypto::ed25519_sign(unhex("72"), pair2->secret_key);
  ASSERT_TRUE(sig2.has_value());
  EXPECT_EQ(hex(*sig2),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3"
            "613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
  EXPECT_FALSE(crypto::ed25519_verify(unhex("73"), *sig2, pair2->public_key));
  EXPECT_FALSE(crypto::ed25519_verify(unhex("72"), *sig2, pair->public_key));
  EXPECT_FALSE(crypto::ed25519_verify(unhex("72"), sig2->substr(1), pair2->public_key));
  EXPECT_FALSE(crypto::ed25519_from_seed("short").has_value());
  EXPECT_FALSE(crypto::ed25519_sign("m", "short").has_value());
}

TEST(CryptoEd25519Test, PublicKeyFormats) {
  const auto pair = crypto::ed25519_generate();
  const std::string pem = crypto::ed25519_public_key_pem(pair.public_key);
  EXPECT_EQ(pem.rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0U) << pem;
  auto parsed = crypto::ed25519_public_key_parse(pem);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().detail;
  EXPECT_EQ(*parsed, pair.public_key);
  // One line with literal \n (an env file), base64 of the DER, base64 and hex of the raw key.
  std::string one_line = pem;
  for (auto at = one_line.find('\n'); at != std::string::npos; at = one_line.find('\n', at)) {
    one_line.replace(at, 1, "\\n");
  }
  EXPECT_EQ(crypto::ed25519_public_key_parse(one_line).value_or(""), pair.public_key);
  const std::string der_b64 = pem.substr(27, pem.find("\n-----END") - 27);
  EXPECT_EQ(crypto::ed25519_public_key_parse(der_b64).value_or(""), pair.public_key);
  EXPECT_EQ(crypto::ed25519_public_key_parse(crypto::base64_encode(pair.public_key)).value_or(""),
            pair.public_key);
  EXPECT_EQ(crypto::ed25519_public_key_parse(hex(pair.public_key)).value_or(""), pair.public_key);
  // Node's crypto.generateKeyPairSync('ed25519') export of the RFC 8032 TEST 1 key.
  EXPECT_EQ(hex(crypto::ed25519_public_key_parse(
                    "-----BEGIN PUBLIC KEY-----\n"
                    "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
                    "-----END PUBLIC KEY-----\n")
                    .value_or("")),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  EXPECT_FALSE(crypto::ed25519_public_key_parse("").has_value());
  EXPECT_FALSE(crypto::ed25519_public_key_parse("not a key").has_value());
  // An RSA key is not an Ed25519 key.
  EXPECT_FALSE(crypto::ed25519_public_key_parse(
                   "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKj34GkxFhD90vcNL"
                   "YLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ=="
                   "\n-----END PUBLIC KEY-----\n")
                   .has_value());
}

TEST(CryptoBase64Test, RoundTripsAndRejectsGarbage) {
  for (std::string s : {std::string(""), std::string("f"), std::string("fo"), std::string("foo"),
                        std::string("\x00\xff\x10", 3)}) {
    EXPECT_EQ(crypto::base64_decode(crypto::base64_encode(s)).value_or("x"), s);
  }
  EXPECT_EQ(crypto::base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(crypto::base64_decode("Zm9vYg").value_or(""), "foob");  // padding optional
  EXPECT_FALSE(crypto::base64_decode("Zm9v!g==").has_value());
}

TEST(CanonicalPayloadTest, KeyOrderAndNumbers) {
  EXPECT_EQ(
      canonical_payload("coord-1", "POST", "/decompose", 1700000000000, "n-1", "abc"),
      R"({"peerId":"coord-1","method":"POST","path":"/decompose","timestampMs":1700000000000,"nonce":"n-1","bodySha256":"abc"})");
  EXPECT_EQ(canonical_payload("a\"b", "POST", "/x", 1, "\xC3\xA9", "h"),
            "{\"peerId\":\"a\\\"b\",\"method\":\"POST\",\"path\":\"/x\",\"timestampMs\":1,"
            "\"nonce\":\"\xC3\xA9\",\"bodySha256\":\"h\"}");
}

class VerifierTest : public ::testing::Test {
 protected:
  VerifierTest() : keys_(crypto::ed25519_generate()), verifier_(options()) {}

  SignatureOptions options() const {
    SignatureOptions o;
    o.trusted_keys["coord-1"] = keys_.public_key;
    return o;
  }

  net::Request signed_request(const std::string& body, std::int64_t ts, const std::string& nonce,
                              const std::string& target = "/decompose") {
    net::Request r;
    r.method = "POST";
    net::set_request_target(r, target);
    r.body = body;
    auto headers = sign_request("coord-1", keys_.secret_key, "POST", target, body, ts, nonce);
    EXPECT_TRUE(headers.has_value());
    r.headers = *headers;
    return r;
  }

  static void set_header(net::Request& r, const std::string& name, const std::string& value) {
    for (auto& [k, v] : r.headers) {
      if (k == name) v = value;
    }
  }

  std::string code_of(const net::Request& r) {
    auto result = verifier_.verify(r, now_ms());
    return result ? std::string("ok") : std::string(result.error().wire());
  }

  crypto::Ed25519KeyPair keys_;
  SignatureVerifier verifier_;
};

TEST_F(VerifierTest, ValidOnceThenReplayed) {
  EXPECT_TRUE(verifier_.enabled());
  const auto r = signed_request(R"({"taskId":"t","prompt":"p"})", now_ms(), "nonce-1");
  EXPECT_EQ(code_of(r), "ok");
  EXPECT_EQ(code_of(r), "inference_signature_replay");
  EXPECT_EQ(code_of(signed_request("{}", now_ms(), "nonce-2")), "ok");
  EXPECT_EQ(verifier_.remembered_nonces(), 2U);
}

TEST_F(VerifierTest, ExpiredOrFromTheFuture) {
  EXPECT_EQ(code_of(signed_request("{}", now_ms() - 10 * 60 * 1000, "n1")),
            "inference_signature_expired");
  EXPECT_EQ(code_of(signed_request("{}", now_ms() + 10 * 60 * 1000, "n2")),
            "inference_signature_expired");
  EXPECT_EQ(code_of(signed_request("{}", now_ms() - 60 * 1000, "n3")), "ok");  // within skew
}

TEST_F(VerifierTest, BodyHashIsOverTheRawBytes) {
  auto r = signed_request(R"({"a": 1})", now_ms(), "n1");
  r.body = R"({"a":1})";  // same JSON value, other bytes
  EXPECT_EQ(code_of(r), "inference_signature_body_mismatch");
  auto wrong_header = signed_request("{}", now_ms(), "n2");
  set_header(wrong_header, "x-inference-body-sha256", crypto::sha256_hex("other"));
  EXPECT_EQ(code_of(wrong_header), "inference_signature_body_mismatch");
}

TEST_F(VerifierTest, OtherFailures) {
  auto r = signed_request("{}", now_ms(), "n1");
  set_header(r, "x-inference-signature", crypto::base64_encode(std::string(64, 'x')));
  EXPECT_EQ(code_of(r), "inference_signature_invalid");
  r = signed_request("{}", now_ms(), "n2");
  set_header(r, "x-inference-signature", "%%%");
  EXPECT_EQ(code_of(r), "inference_signature_invalid");
  r = signed_request("{}", now_ms(), "n3");
  set_header(r, "x-coordinator-peer-id", "coord-2");
  EXPECT_EQ(code_of(r), "inference_signature_untrusted_peer");
  r = signed_request("{}", now_ms(), "n4");
  set_header(r, "x-inference-timestamp-ms", "12.5");
  EXPECT_EQ(code_of(r), "inference_signature_invalid_timestamp");
  r = signed_request("{}", now_ms(), "n5");
  r.method = "PUT";  // the method is signed
  EXPECT_EQ(code_of(r), "inference_signature_invalid");
  r = signed_request("{}", now_ms(), "n6");
  net::set_request_target(r, "/escalate");  // so is the path
  EXPECT_EQ(code_of(r), "inference_signature_invalid");
  net::Request bare;
  bare.method = "POST";
  EXPECT_EQ(code_of(bare), "inference_signature_missing");
  // A failed request does not burn its nonce.
  EXPECT_EQ(code_of(signed_request("{}", now_ms(), "n1")), "ok");
}

// Interop: a request signed the way the upstream Node coordinator signs it (JSON.stringify of the
// payload, crypto.sign with an Ed25519 key, base64, PEM public key) verifies here.
TEST_F(VerifierTest, VerifiesASignatureMadeByNode) {
  if (!std::filesystem::exists("/usr/bin/node")) GTEST_SKIP() << "node is not installed";
  const std::string script = R"JS(
const crypto = require('crypto');
const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
const body = JSON.stringify({ taskId: 't-9', prompt: 'héllo', snapshotRef: 's' });
const bodySha256 = crypto.createHash('sha256').update(body).digest('hex');
const payload = { peerId: 'node-coord', method: 'POST', path: '/decompose',
                  timestampMs: Date.now(), nonce: crypto.randomUUID(), bodySha256 };
const signature = crypto.sign(null, Buffer.from(JSON.stringify(payload)), privateKey)
                        .toString('base64');
console.log(JSON.stringify({ pem: publicKey.export({ type: 'spki', format: 'pem' }), body,
                             payload, signature }));
)JS";
  const auto run = testing::run_shell("/usr/bin/node -", script);
  ASSERT_EQ(run.code, 0) << run.out;
  const json out = json::parse(run.out);
  auto key = crypto::ed25519_public_key_parse(out["pem"].get<std::string>());
  ASSERT_TRUE(key.has_value()) << key.error().detail;
  SignatureOptions options;
  options.trusted_keys["node-coord"] = *key;
  SignatureVerifier verifier(options);
  net::Request r;
  r.method = "POST";
  net::set_request_target(r, "/decompose");
  r.body = out["body"].get<std::string>();
  const json& p = out["payload"];
  r.headers = {{"x-coordinator-peer-id", p["peerId"].get<std::string>()},
               {"x-inference-timestamp-ms", std::to_string(p["timestampMs"].get<std::int64_t>())},
               {"x-inference-nonce", p["nonce"].get<std::string>()},
               {"x-inference-body-sha256", p["bodySha256"].get<std::string>()},
               {"x-inference-signature", out["signature"].get<std::string>()}};
  auto ok = verifier.verify(r, now_ms());
  EXPECT_TRUE(ok.has_value()) << (ok ? "" : ok.error().detail);
}

TEST_F(VerifierTest, TheQueryStringIsNotSigned) {
  EXPECT_EQ(code_of(signed_request("{}", now_ms(), "q1", "/decompose?debug=1")), "ok");
}

TEST(SignatureOptionsTest, FromSettings) {
  const auto pair = crypto::ed25519_generate();
  core::LoadOptions load;
  load.default_env_file = "";
  load.environment = {
      {"INFERENCE_COORDINATOR_PEER_ID", "c1"},
      {"INFERENCE_COORDINATOR_PUBLIC_KEY_PEM", crypto::ed25519_public_key_pem(pair.public_key)},
      {"INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON",
       json{{"c2", crypto::base64_encode(pair.public_key)}}.dump()},
      {"INFERENCE_MAX_SIGNATURE_SKEW_MS", "5000"}};
  auto settings = core::Settings::load(load);
  ASSERT_TRUE(settings.has_value());
  auto options = signature_options_from(*settings);
  ASSERT_TRUE(options.has_value()) << options.error().detail;
  EXPECT_EQ(options->trusted_keys.size(), 2U);
  EXPECT_EQ(options->trusted_keys["c1"], pair.public_key);
  EXPECT_EQ(options->max_skew, std::chrono::milliseconds(5000));
  EXPECT_FALSE(options->required);

  load.environment = {{"INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON", R"({"c3":"nope"})"}};
  settings = core::Settings::load(load);
  ASSERT_TRUE(settings.has_value());
  auto bad = signature_options_from(*settings);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().detail.find("c3"), std::string::npos);
}

// Through HTTP: the service enforces signatures on /decompose, /escalate and /chat.
class SignedRoutesTest : public InferenceFixture {
 protected:
  void SetUp() override {
    start(std::nullopt, [this](ServiceOptions& o) {
      o.signatures.trusted_keys["coordinator-a"] = keys_.public_key;
    });
  }

  net::ClientResponse post_signed(const std::string& path, const std::string& body, std::int64_t ts,
                                  const std::string& nonce, const std::string& hash_override = "") {
    auto headers = sign_request("coordinator-a", keys_.secret_key, "POST", path, body, ts, nonce);
    EXPECT_TRUE(headers.has_value());
    net::Headers h = *headers;
    if (!hash_override.empty()) {
      for (auto& [k, v] : h) {
        if (k == "x-inference-body-sha256") v = hash_override;
      }
    }
    h.emplace_back("x-inference-token", kTestToken);
    h.emplace_back("Content-Type", "application/json");
    net::ClientRequest request;
    request.method = "POST";
    request.url = url(path);
    request.headers = std::move(h);
    request.body = body;
    auto r = net::fetch(std::move(request));
    EXPECT_TRUE(r.has_value());
    return r ? *r : net::ClientResponse{};
  }

  crypto::Ed25519KeyPair keys_ = crypto::ed25519_generate();
};

TEST_F(SignedRoutesTest, ValidReplayedExpiredAndWrongBodyHash) {
  const std::string body =
      json{{"taskId", "t"}, {"prompt", "Print hello world"}, {"snapshotRef", "s"}}.dump();
  auto unsigned_call = call("POST", "/decompose", json::parse(body));
  EXPECT_EQ(unsigned_call.status, 401);
  EXPECT_EQ(json_of(unsigned_call)["error"], "inference_signature_missing");

  auto valid = post_signed("/decompose", body, now_ms(), "nonce-a");
  EXPECT_EQ(valid.status, 200) << valid.body;
  auto replayed = post_signed("/decompose", body, now_ms(), "nonce-a");
  EXPECT_EQ(replayed.status, 401);
  EXPECT_EQ(json_of(replayed)["error"], "inference_signature_replay");
  auto expired = post_signed("/decompose", body, now_ms() - 3600 * 1000, "nonce-b");
  EXPECT_EQ(expired.status, 401);
  EXPECT_EQ(json_of(expired)["error"], "inference_signature_expired");
  auto wrong_hash =
      post_signed("/decompose", body, now_ms(), "nonce-c", crypto::sha256_hex(body + " "));
  EXPECT_EQ(wrong_hash.status, 401);
  EXPECT_EQ(json_of(wrong_hash)["error"], "inference_signature_body_mismatch");

  // Chat and escalate are signed routes too; model management needs only the token.
  EXPECT_EQ(json_of(call("POST", "/chat",
                         json{{"messages", {{{"role", "user"}, {"content", "x"}}}}}))["error"],
            "inference_signature_missing");
  EXPECT_EQ(post_signed("/chat", json{{"messages", {{{"role", "user"}, {"content", "x"}}}}}.dump(),
                        now_ms(), "nonce-d")
                .status,
            200);
  EXPECT_EQ(
      call("POST", "/escalate", json{{"task", "t"}, {"failedCode", ""}, {"language", "python"}})
          .status,
      401);
  EXPECT_EQ(call("GET", "/model/status").status, 200);
  // The token is still required on signed routes.
  net::ClientRequest no_token;
  no_token.method = "POST";
  no_token.url = url("/decompose");
  no_token.body = body;
  auto headers = sign_request("coordinator-a", keys_.secret_key, "POST", "/decompose", body,
                              now_ms(), "nonce-e");
  no_token.headers = *headers;
  auto r = net::fetch(std::move(no_token));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json_of(*r)["error"], "inference_unauthorized");
}

}  // namespace
}  // namespace edgecoder::inference

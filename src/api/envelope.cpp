#include "api/envelope.h"

#include "api/json_reader.h"
#include "core/crypto.h"

namespace edgecoder::api {

namespace {

namespace crypto = core::crypto;
using json = nlohmann::json;
// Key order as the upstream JavaScript writes it (insertion order).
using ordered = nlohmann::ordered_json;

// Base64 of the largest payload accepted: a result's output and error (4 MiB each) plus slack.
constexpr std::size_t kMaxSealedChars = 12 * 1024 * 1024;

core::Error envelope_failed(std::string detail) {
  return core::Error(core::Errc::invalid_argument, std::string(kEnvelopeDecryptFailed),
                     std::move(detail));
}

std::string envelope_str(const json& j, const char* key, std::string fallback = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

template <typename T>
T envelope_int(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<T>() : fallback;
}

// The opened plaintext as a JSON object.
core::Result<json> envelope_plain_object(std::string_view key, const Sealed& sealed) {
  auto plain = envelope_open(key, sealed);
  if (!plain) return plain.error();
  auto j = json::parse(*plain, nullptr, false);
  if (!j.is_object()) {
    return invalid_request("encryptedPayload: the decrypted payload is not a JSON object");
  }
  return j;
}

}  // namespace

core::Result<std::string> envelope_key(std::string_view own_secret, std::string_view peer_public,
                                       std::string_view subtask_id) {
  auto shared = crypto::x25519_shared(own_secret, peer_public);
  if (!shared) return shared.error();
  return crypto::hkdf_sha256(*shared, subtask_id, kEnvelopeInfo, crypto::kAesGcmKeyBytes);
}

core::Result<Sealed> envelope_seal(std::string_view key, std::string_view plaintext) {
  const std::string nonce = crypto::random_bytes(crypto::kAesGcmNonceBytes);
  auto sealed = crypto::aes256gcm_encrypt(key, nonce, plaintext);
  if (!sealed) return sealed.error();
  return Sealed{crypto::base64_encode(sealed->ciphertext), crypto::hex_encode(nonce),
                crypto::hex_encode(sealed->tag)};
}

core::Result<std::string> envelope_open(std::string_view key, const Sealed& sealed) {
  auto ciphertext = crypto::base64_decode(sealed.encrypted_payload);
  auto nonce = crypto::hex_decode(sealed.nonce);
  auto tag = crypto::hex_decode(sealed.tag);
  if (!ciphertext || !nonce || !tag) {
    return envelope_failed("encryptedPayload must be base64, nonce and tag hex");
  }
  auto plain = crypto::aes256gcm_decrypt(key, *nonce, *ciphertext, *tag);
  if (!plain) {
    return envelope_failed(
        "the encrypted payload does not open with this lease's key (altered, or sealed for "
        "another lease)");
  }
  return plain;
}

core::Result<Sealed> read_sealed(const json& body) {
  JsonReader r(body);
  Sealed s;
  s.encrypted_payload = r.str("encryptedPayload", true, 0, kMaxSealedChars);
  s.nonce = r.str("nonce", true, 2 * crypto::kAesGcmNonceBytes, 2 * crypto::kAesGcmNonceBytes);
  s.tag = r.str("tag", true, 2 * crypto::kAesGcmTagBytes, 2 * crypto::kAesGcmTagBytes);
  if (r.ok() && !crypto::base64_decode(s.encrypted_payload)) {
    r.fail("encryptedPayload", "expected base64");
  }
  if (r.ok() && !crypto::hex_decode(s.nonce)) r.fail("nonce", "expected 24 hex digits");
  if (r.ok() && !crypto::hex_decode(s.tag)) r.fail("tag", "expected 32 hex digits");
  if (!r.ok()) return *r.error();
  return s;
}

std::string task_plaintext(const WireSubtask& s) {
  ordered p;
  p["input"] = s.input;
  p["snapshotRef"] = s.snapshot_ref;
  p["kind"] = s.language;  // upstream's name for the language
  p["language"] = s.language;
  p["subtaskKind"] = s.kind;
  ordered meta;
  meta["projectId"] = s.project_meta.project_id;
  if (!s.project_meta.tenant_id.empty()) meta["tenantId"] = s.project_meta.tenant_id;
  meta["resourceClass"] = s.project_meta.resource_class;
  meta["priority"] = s.project_meta.priority;
  p["projectMeta"] = std::move(meta);
  p["subtaskIndex"] = s.subtask_index;
  if (!s.requested_model.empty()) p["requestedModel"] = s.requested_model;
  if (!s.depends_on.empty()) p["dependsOn"] = s.depends_on;
  return p.dump(-1, ' ', false, json::error_handler_t::replace);
}

core::Result<json> seal_task(const WireSubtask& s, std::string_view ephemeral_secret,
                             std::string_view agent_public) {
  auto eph = crypto::x25519_from_secret(ephemeral_secret);
  if (!eph) return eph.error();
  auto key = envelope_key(ephemeral_secret, agent_public, s.id);
  if (!key) return key.error();
  auto sealed = envelope_seal(*key, task_plaintext(s));
  if (!sealed) return sealed.error();
  json envelope = {{"subtaskId", s.id},
                   {"ephemeralPublicKey", crypto::base64_encode(eph->public_key)},
                   {"encryptedPayload", sealed->encrypted_payload},
                   {"nonce", sealed->nonce},
                   {"tag", sealed->tag},
                   {"metadata",
                    {{"resourceClass", s.project_meta.resource_class},
                     {"priority", s.project_meta.priority},
                     {"language", s.language},
                     {"timeoutMs", s.timeout_ms}}},
                   {"taskId", s.task_id}};
  if (s.attempt > 0) {
    envelope["attempt"] = s.attempt;
    envelope["leaseExpiresAtMs"] = s.lease_expires_at_ms;
  }
  return envelope;
}

core::Result<OpenedTask> open_task(const json& envelope, std::string_view agent_secret) {
  if (!envelope.is_object()) return invalid_request("envelope: expected an object");
  JsonReader r(envelope, "envelope");
  const std::string subtask_id = r.str("subtaskId", true, 1, 256);
  const std::string eph_text = r.str("ephemeralPublicKey", true, 1, 256);
  if (!r.ok()) return *r.error();
  auto eph = crypto::base64_decode(eph_text);
  if (!eph || eph->size() != 32) {
    return invalid_request("envelope.ephemeralPublicKey: expected base64 of 32 bytes");
  }
  auto sealed = read_sealed(envelope);
  if (!sealed) return sealed.error();
  auto key = envelope_key(agent_secret, *eph, subtask_id);
  if (!key) return envelope_failed("no key: " + key.error().detail);
  auto plain = envelope_plain_object(*key, *sealed);
  if (!plain) return plain.error();
  const json& p = *plain;
  const json meta = envelope.contains("metadata") && envelope["metadata"].is_object()
                        ? envelope["metadata"]
                        : json::object();
  OpenedTask out;
  WireSubtask& s = out.subtask;
  s.id = subtask_id;
  s.task_id = envelope_str(envelope, "taskId");
  s.attempt = envelope_int(envelope, "attempt", 0);
  s.lease_expires_at_ms = envelope_int<std::int64_t>(envelope, "leaseExpiresAtMs", 0);
  // The upstream worker's default when metadata has none.
  s.timeout_ms = envelope_int<std::int64_t>(meta, "timeoutMs", 60'000);
  s.input = envelope_str(p, "input");
  s.snapshot_ref = envelope_str(p, "snapshotRef");
  s.language = envelope_str(p, "language",
                            envelope_str(p, "kind", envelope_str(meta, "language", "python")));
  s.kind = envelope_str(p, "subtaskKind", "single_step");
  s.project_meta.resource_class = envelope_str(meta, "resourceClass", "cpu");
  s.project_meta.priority = envelope_int(meta, "priority", 50);
  if (auto it = p.find("projectMeta"); it != p.end() && it->is_object()) {
    s.project_meta.project_id = envelope_str(*it, "projectId", "default");
    s.project_meta.tenant_id = envelope_str(*it, "tenantId");
  }
  s.subtask_index = envelope_int(p, "subtaskIndex", 0);
  s.requested_model = envelope_str(p, "requestedModel");
  if (auto it = p.find("dependsOn"); it != p.end() && it->is_array()) {
    for (const auto& d : *it) {
      if (d.is_string()) s.depends_on.push_back(d.get<std::string>());
    }
  }
  out.key = std::move(*key);
  return out;
}

core::Result<json> seal_result(const json& result, std::string_view key) {
  if (!result.is_object()) return invalid_request("result: expected an object");
  ordered p;
  json body = json::object();
  for (const char* k : {"ok", "output", "error", "durationMs", "iterations", "escalated"}) {
    if (auto it = result.find(k); it != result.end() && !it->is_null()) p[k] = *it;
  }
  for (auto it = result.begin(); it != result.end(); ++it) {
    if (!p.contains(it.key())) body[it.key()] = it.value();
  }
  auto sealed = envelope_seal(key, p.dump(-1, ' ', false, json::error_handler_t::replace));
  if (!sealed) return sealed.error();
  body["encryptedPayload"] = sealed->encrypted_payload;
  body["nonce"] = sealed->nonce;
  body["tag"] = sealed->tag;
  return body;
}

core::Result<json> open_result(const json& body, std::string_view key) {
  auto sealed = read_sealed(body);
  if (!sealed) return sealed.error();
  auto plain = envelope_plain_object(key, *sealed);
  if (!plain) return plain.error();
  json out = body;
  for (const char* k : {"encryptedPayload", "nonce", "tag"}) out.erase(k);
  // Only the result's own fields come from the plaintext: ids and the fencing token stay those
  // the coordinator checked before opening it.
  for (const char* k : {"ok", "output", "error", "durationMs", "iterations", "escalated"}) {
    out.erase(k);
    if (auto it = plain->find(k); it != plain->end()) out[k] = *it;
  }
  return out;
}

}  // namespace edgecoder::api

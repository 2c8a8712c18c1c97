// Task envelopes (upstream-coordinator.md §5.5): a subtask sent to an agent that registered an
// X25519 key travels encrypted, and so may the agent's result. Both sides derive one key per
// lease: X25519(own secret, peer public) -> HKDF-SHA256(salt = subtask id in UTF-8,
// info "edgecoder-envelope") -> 32 bytes, used with AES-256-GCM (random 12-byte nonce, no AAD,
// 16-byte tag). The coordinator's side uses a fresh ephemeral key pair per lease; the agent's
// side uses its long-lived X25519 key (agent/identity.h).
//
// Wire shapes (keep them: Node and iOS workers read them):
//   /pull  {subtask:null, envelope:{subtaskId, ephemeralPublicKey (base64, 32 bytes),
//           encryptedPayload (base64), nonce (hex), tag (hex),
//           metadata:{resourceClass, priority, language, timeoutMs},
//           taskId, attempt, leaseExpiresAtMs}}
//          plaintext: JSON {"input", "snapshotRef", "kind" (= the language, as upstream),
//           "language", "subtaskKind", "projectMeta", "subtaskIndex", "requestedModel"?,
//           "dependsOn"?}; `input` already carries the dependencies' context block.
//   /result {subtaskId, taskId, agentId, attempt, encryptedPayload, nonce, tag, reportNonce?,
//           reportSignature?}; plaintext: JSON {ok, output, error?, durationMs, iterations?,
//           escalated?}.
// In clear stays what the coordinator needs for fencing and the agent for its lease before it
// decrypts (ids, attempt, lease expiry, timeout) and the upstream metadata; everything that
// says what the code is or does is encrypted.
//
// Errors: invalid_argument with wire code "invalid_request" for a malformed envelope field, and
// "envelope_decrypt_failed" when the ciphertext does not open (wrong key, altered bytes).
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/coordinator.h"
#include "core/result.h"

namespace edgecoder::api {

inline constexpr std::string_view kEnvelopeInfo = "edgecoder-envelope";
inline constexpr std::string_view kEnvelopeDecryptFailed = "envelope_decrypt_failed";

// The 32-byte AES key of one lease from either side: own X25519 secret, the peer's public key.
core::Result<std::string> envelope_key(std::string_view own_secret, std::string_view peer_public,
                                       std::string_view subtask_id);

// The encrypted part of an envelope or an encrypted result, as it is on the wire.
struct Sealed {
  std::string encrypted_payload;  // base64
  std::string nonce;              // hex, 12 bytes
  std::string tag;                // hex, 16 bytes
};
core::Result<Sealed> envelope_seal(std::string_view key, std::string_view plaintext);
core::Result<std::string> envelope_open(std::string_view key, const Sealed& sealed);
// Reads encryptedPayload, nonce and tag of a body (invalid_request naming a bad field).
core::Result<Sealed> read_sealed(const nlohmann::json& body);

// The subtask's encrypted part (the plaintext above, as JSON text).
std::string task_plaintext(const WireSubtask& s);
// The envelope for `s` (its lease fields set) sealed for the agent's public key with an
// ephemeral secret the caller chose (and keeps to open the result).
core::Result<nlohmann::json> seal_task(const WireSubtask& s, std::string_view ephemeral_secret,
                                       std::string_view agent_public);
// The agent's side: the subtask inside `envelope`, opened with its X25519 secret, and the
// lease's key (to seal the result with).
struct OpenedTask {
  WireSubtask subtask;
  std::string key;  // 32 bytes; never log it
};
core::Result<OpenedTask> open_task(const nlohmann::json& envelope, std::string_view agent_secret);

// The agent's side: `result` (a plain /result body) with ok, output, error, durationMs,
// iterations and escalated moved into the encrypted part, sealed with the lease's key.
core::Result<nlohmann::json> seal_result(const nlohmann::json& result, std::string_view key);
// The coordinator's side: the plain /result body again (cleartext fields plus the opened ones).
core::Result<nlohmann::json> open_result(const nlohmann::json& body, std::string_view key);

}  // namespace edgecoder::api

// The agent's stable identity: its agent id, an Ed25519 signing key pair and an X25519 key pair
// (for task envelopes), created once and kept in one file in the data directory (mode 0600), so
// that a restarted agent presents the same id and public keys to the coordinator.
// Thread-safety: plain values and stateless functions.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "core/crypto.h"
#include "core/result.h"

namespace edgecoder::agent {

struct Identity {
  std::string agent_id;
  core::crypto::Ed25519KeyPair ed25519;
  core::crypto::X25519KeyPair x25519;

  std::string public_key_pem() const;     // Ed25519, SubjectPublicKeyInfo PEM
  std::string x25519_public_key() const;  // base64 of the 32 raw bytes
  // First 16 hex digits of SHA-256 of the raw Ed25519 public key (for logs and tests).
  std::string fingerprint() const;
};

// The identity file's name inside the data directory.
inline constexpr std::string_view kIdentityFile = "agent-identity.json";

// Reads `file`, or creates it with fresh keys. `configured_id` (AGENT_ID; empty = keep the stored
// id, or generate "agent-<16 hex>") replaces the stored id while the keys stay.
core::Result<Identity> load_or_create_identity(const std::filesystem::path& file,
                                               std::string_view configured_id);

}  // namespace edgecoder::agent

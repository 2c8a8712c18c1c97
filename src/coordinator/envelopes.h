// Internal to src/coordinator: task envelopes on the coordinator's side (wire format and key
// derivation: api/envelope.h; docs/coordinator.md "Envelopes").
//
// Upstream kept each envelope key in one process's memory, so a result could not be opened by
// another coordinator on the same store, nor after a restart, and a re-pull overwrote the key of
// a lease still running. Here /pull stores the lease's key material with the claim itself
// (store::ClaimRequest::lease_key, one transaction): the ephemeral X25519 secret and the agent
// key it was sealed for. Any coordinator re-derives the AES key from it; the next claim replaces
// it; fencing (holder + attempt) is checked before anything is decrypted.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/coordinator.h"
#include "core/result.h"
#include "store/types.h"

namespace edgecoder::coordinator {

// The X25519 public key (32 raw bytes) the agent registered, or empty.
std::string agent_x25519_key(const store::Agent& agent);

// Key material for a new lease sealed for `agent_public`: a fresh ephemeral secret and that key.
std::string new_lease_key(std::string_view agent_public);

// The /pull envelope of the leased subtask, sealed with the lease's key material.
core::Result<nlohmann::json> seal_for_lease(const api::WireSubtask& wire,
                                            std::string_view lease_key);

// An encrypted /result body opened with the key of the lease it claims to answer: conflict
// "stale_lease" when (agent, attempt) is not the lease's holder (nor the accepted one of a
// completed subtask); invalid_argument "envelope_decrypt_failed" when the lease was given in clear
// or the ciphertext does not open; "invalid_request" for malformed fields. The answer is the
// plain body, ready for api::parse_result.
core::Result<nlohmann::json> open_leased_result(const store::LeaseKey& lease,
                                                const api::ResultRequest& claimed,
                                                const nlohmann::json& body);

}  // namespace edgecoder::coordinator

// Who may call the inference service: the `x-inference-token` check (constant time) and the
// optional Ed25519 signature of coordinator requests, wire-compatible with the upstream
// coordinator (upstream-inference-ide-executor.md §1.2):
//
//   headers  x-coordinator-peer-id, x-inference-timestamp-ms, x-inference-nonce,
//            x-inference-body-sha256 (hex SHA-256 of the raw body bytes),
//            x-inference-signature (base64 Ed25519 over the canonical payload)
//   payload  compact JSON {"peerId","method","path","timestampMs","nonce","bodySha256"} in that
//            key order; path is the request target without its query string; timestampMs a
//            JSON integer (milliseconds since the epoch).
//
// Checks, in order, each failing with 401 {"error": "<code>"}: all five headers present
// (inference_signature_missing), trusted peer (…_untrusted_peer), integer timestamp
// (…_invalid_timestamp), |now - timestamp| within the skew (…_expired), body hash
// (…_body_mismatch), signature (…_invalid), nonce not seen within its TTL (…_replay). The nonce is
// remembered only after everything else passed, so nobody without the key can fill the cache,
// and for at least twice the allowed skew (a shorter TTL would let a request whose timestamp is
// still acceptable be replayed).
//
// Thread-safety: SignatureVerifier is safe from any thread (the nonce cache has a mutex).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/config.h"
#include "core/result.h"
#include "net/http.h"

namespace edgecoder::inference {

struct SignatureOptions {
  // INFERENCE_REQUIRE_SIGNED_COORDINATOR_REQUESTS; checking is also on when any key is trusted.
  bool required = false;
  std::map<std::string, std::string> trusted_keys;  // peer id -> raw 32-byte Ed25519 key
  std::chrono::milliseconds max_skew{120'000};
  std::chrono::milliseconds nonce_ttl{300'000};
  std::size_t max_nonces = 200'000;  // memory bound; the oldest are forgotten first
};

// Reads the INFERENCE_* signature settings. Errors name the setting.
core::Result<SignatureOptions> signature_options_from(const core::Settings& settings);

std::string canonical_payload(std::string_view peer_id, std::string_view method,
                              std::string_view path, std::int64_t timestamp_ms,
                              std::string_view nonce, std::string_view body_sha256);

// The five signature headers for a request (what a coordinator sends). `secret_key` is a 64-byte
// Ed25519 secret key; `path` may carry a query string (it is not signed).
core::Result<net::Headers> sign_request(std::string_view peer_id, std::string_view secret_key,
                                        std::string_view method, std::string_view path,
                                        std::string_view body, std::int64_t timestamp_ms,
                                        std::string_view nonce);

class SignatureVerifier {
 public:
  explicit SignatureVerifier(SignatureOptions options);

  bool enabled() const { return options_.required || !options_.trusted_keys.empty(); }
  // Ok, or Errc::unauthenticated with the wire code of the failed check. `now_ms` is
  // milliseconds since the epoch.
  core::Result<void> verify(const net::Request& request, std::int64_t now_ms);
  std::size_t remembered_nonces() const;

 private:
  void forget_expired(std::int64_t now_ms);  // requires mu_

  const SignatureOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::int64_t> nonces_;    // guarded by mu_: nonce -> seen at
  std::deque<std::pair<std::int64_t, std::string>> order_;  // guarded by mu_: oldest first
};

// True when the request carries `x-inference-token` equal to `expected` (constant time).
bool token_matches(const net::Request& request, std::string_view expected);

}  // namespace edgecoder::inference

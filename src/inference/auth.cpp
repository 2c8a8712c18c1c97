#include "inference/auth.h"

#include <charconv>

#include <nlohmann/json.hpp>

#include "core/crypto.h"

namespace edgecoder::inference {

namespace auth_detail {

core::Error auth_signature_error(std::string_view code, std::string detail) {
  return core::Error(core::Errc::unauthenticated, std::string(code), std::move(detail));
}

core::Result<std::string> auth_parse_key(std::string_view setting, std::string_view peer,
                                         std::string_view text) {
  auto key = core::crypto::ed25519_public_key_parse(text);
  if (!key) {
    return core::make_error(core::Errc::invalid_argument,
                            std::string(setting) + ": the key of peer '" + std::string(peer) +
                                "': " + key.error().detail);
  }
  return key;
}

}  // namespace auth_detail

core::Result<SignatureOptions> signature_options_from(const core::Settings& settings) {
  SignatureOptions options;
  auto required = settings.get_bool("INFERENCE_REQUIRE_SIGNED_COORDINATOR_REQUESTS");
  if (!required) return required.error();
  options.required = *required;
  auto skew = settings.get_int("INFERENCE_MAX_SIGNATURE_SKEW_MS", 1, 86'400'000);
  if (!skew) return skew.error();
  options.max_skew = std::chrono::milliseconds(*skew);
  auto ttl = settings.get_int("INFERENCE_NONCE_TTL_MS", 1, 86'400'000);
  if (!ttl) return ttl.error();
  options.nonce_ttl = std::chrono::milliseconds(*ttl);

  const auto peer = settings.get("INFERENCE_COORDINATOR_PEER_ID");
  const auto pem = settings.get("INFERENCE_COORDINATOR_PUBLIC_KEY_PEM");
  if (peer.has_value() != pem.has_value()) {
    return core::make_error(core::Errc::invalid_argument,
                            "INFERENCE_COORDINATOR_PEER_ID and "
                            "INFERENCE_COORDINATOR_PUBLIC_KEY_PEM must be set together");
  }
  if (peer) {
    auto key = auth_detail::auth_parse_key("INFERENCE_COORDINATOR_PUBLIC_KEY_PEM", *peer, *pem);
    if (!key) return key.error();
    options.trusted_keys[*peer] = std::move(*key);
  }
  if (auto text = settings.get("INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON")) {
    const auto json = nlohmann::json::parse(*text, nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
      return core::make_error(core::Errc::invalid_argument,
                              "INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON: expected a JSON object "
                              "{\"<peerId>\": \"<public key>\", ...}");
    }
    for (const auto& [peer_id, value] : json.items()) {
      if (!value.is_string()) {
        return core::make_error(core::Errc::invalid_argument,
                                "INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON: the key of peer '" +
                                    peer_id + "' is not a string");
      }
      auto key = auth_detail::auth_parse_key("INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON", peer_id,
                                             value.get<std::string>());
      if (!key) return key.error();
      options.trusted_keys[peer_id] = std::move(*key);
    }
  }
  return options;
}

std::string canonical_payload(std::string_view peer_id, std::string_view method,
                              std::string_view path, std::int64_t timestamp_ms,
                              std::string_view nonce, std::string_view body_sha256) {
  // Built by hand: the key order is part of the signed bytes. nlohmann's string escaping matches
  // JSON.stringify for the characters these fields can hold.
  using nlohmann::json;
  std::string out = "{\"peerId\":" + json(std::string(peer_id)).dump();
  out += ",\"method\":" + json(std::string(method)).dump();
  out += ",\"path\":" + json(std::string(path)).dump();
  out += ",\"timestampMs\":" + std::to_string(timestamp_ms);
  out += ",\"nonce\":" + json(std::string(nonce)).dump();
  out += ",\"bodySha256\":" + json(std::string(body_sha256)).dump();
  out += "}";
  return out;
}

core::Result<net::Headers> sign_request(std::string_view peer_id, std::string_view secret_key,
                                        std::string_view method, std::string_view path,
                                        std::string_view body, std::int64_t timestamp_ms,
                                        std::string_view nonce) {
  const std::string hash = core::crypto::sha256_hex(body);
  const std::string_view bare_path = path.substr(0, path.find('?'));
  const std::string payload =
      canonical_payload(peer_id, method, bare_path, timestamp_ms, nonce, hash);
  auto signature = core::crypto::ed25519_sign(payload, secret_key);
  if (!signature) return signature.error();
  net::Headers headers;
  headers.emplace_back("x-coordinator-peer-id", std::string(peer_id));
  headers.emplace_back("x-inference-timestamp-ms", std::to_string(timestamp_ms));
  headers.emplace_back("x-inference-nonce", std::string(nonce));
  headers.emplace_back("x-inference-body-sha256", hash);
  headers.emplace_back("x-inference-signature", core::crypto::base64_encode(*signature));
  return headers;
}

SignatureVerifier::SignatureVerifier(SignatureOptions options) : options_(std::move(options)) {}

core::Result<void> SignatureVerifier::verify(const net::Request& request, std::int64_t now_ms) {
  using auth_detail::auth_signature_error;
  const auto peer = request.header("x-coordinator-peer-id");
  const auto ts_text = request.header("x-inference-timestamp-ms");
  const auto nonce = request.header("x-inference-nonce");
  const auto body_hash = request.header("x-inference-body-sha256");
  const auto signature_b64 = request.header("x-inference-signature");
  if (!peer || !ts_text || !nonce || !body_hash || !signature_b64 || peer->empty() ||
      nonce->empty()) {
    return auth_signature_error("inference_signature_missing",
                                "signed coordinator requests are required: send "
                                "x-coordinator-peer-id, x-inference-timestamp-ms, "
                                "x-inference-nonce, x-inference-body-sha256 and "
                                "x-inference-signature");
  }
  const auto key = options_.trusted_keys.find(std::string(*peer));
  if (key == options_.trusted_keys.end()) {
    return auth_signature_error("inference_signature_untrusted_peer",
                                "the coordinator peer id has no trusted key");
  }
  std::int64_t ts = 0;
  {
    const auto [end, ec] = std::from_chars(ts_text->data(), ts_text->data() + ts_text->size(), ts);
    if (ec != std::errc() || end != ts_text->data() + ts_text->size()) {
      return auth_signature_error("inference_signature_invalid_timestamp",
                                  "x-inference-timestamp-ms must be integer milliseconds since "
                                  "the epoch");
    }
  }
  const std::int64_t skew = now_ms > ts ? now_ms - ts : ts - now_ms;
  if (skew > options_.max_skew.count()) {
    return auth_signature_error("inference_signature_expired",
                                "the signature timestamp is " + std::to_string(skew) +
                                    " ms away from now (max " +
                                    std::to_string(options_.max_skew.count()) + ")");
  }
  const std::string actual_hash = core::crypto::sha256_hex(request.body);
  if (!core::crypto::constant_time_equal(*body_hash, actual_hash)) {
    return auth_signature_error("inference_signature_body_mismatch",
                                "x-inference-body-sha256 is not the SHA-256 of the body");
  }
  const std::string_view target = request.target;
  const std::string payload = canonical_payload(
      *peer, request.method, target.substr(0, target.find('?')), ts, *nonce, actual_hash);
  auto signature = core::crypto::base64_decode(*signature_b64);
  if (!signature || !core::crypto::ed25519_verify(payload, *signature, key->second)) {
    return auth_signature_error("inference_signature_invalid",
                                "the Ed25519 signature does not verify");
  }
  std::lock_guard lock(mu_);
  forget_expired(now_ms);
  const std::string nonce_key = std::string(*peer) + '\n' + std::string(*nonce);
  if (nonces_.contains(nonce_key)) {
    return auth_signature_error("inference_signature_replay",
                                "this nonce was already used within the replay window");
  }
  nonces_.emplace(nonce_key, now_ms);
  order_.emplace_back(now_ms, nonce_key);
  while (order_.size() > options_.max_nonces) {
    nonces_.erase(order_.front().second);
    order_.pop_front();
  }
  return {};
}

void SignatureVerifier::forget_expired(std::int64_t now_ms) {
  // A nonce must outlive the skew window as well: a replay is only possible while the timestamp
  // still passes the skew check.
  const std::int64_t keep = std::max(options_.nonce_ttl.count(), 2 * options_.max_skew.count());
  while (!order_.empty() && now_ms - order_.front().first > keep) {
    nonces_.erase(order_.front().second);
    order_.pop_front();
  }
}

std::size_t SignatureVerifier::remembered_nonces() const {
  std::lock_guard lock(mu_);
  return nonces_.size();
}

bool token_matches(const net::Request& request, std::string_view expected) {
  const auto token = request.header("x-inference-token");
  return token.has_value() && core::crypto::constant_time_equal(*token, expected);
}

}  // namespace edgecoder::inference

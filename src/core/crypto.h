// Cryptographic primitives used across EdgeCoder, behind one header so that libsodium and
// OpenSSL stay in crypto.cpp. Later issues add X25519/HKDF/AES-GCM here.
// Thread-safety: every function is safe to call from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/result.h"

namespace edgecoder::core::crypto {

// `bytes` random bytes from the OS CSPRNG, hex-encoded (2*bytes characters).
std::string random_hex(std::size_t bytes);

// Compares two secrets in time independent of where they differ (and of their lengths, by
// comparing fixed-size hashes). Empty `expected` never matches.
bool constant_time_equal(std::string_view presented, std::string_view expected);

// SHA-256 of data, lower-case hex.
std::string sha256_hex(std::string_view data);

// Standard base64 with padding (RFC 4648 section 4).
std::string base64_encode(std::string_view data);
// Accepts standard base64 with or without padding; whitespace is not allowed.
Result<std::string> base64_decode(std::string_view text);

// Ed25519 (RFC 8032). Keys and signatures are raw bytes held in std::string: a public key is 32
// bytes, a secret key 64 bytes (libsodium layout: seed followed by the public key), a signature
// 64 bytes.
struct Ed25519KeyPair {
  std::string public_key;  // 32 bytes
  std::string secret_key;  // 64 bytes; never log it
};
Ed25519KeyPair ed25519_generate();
// The key pair for a 32-byte seed (deterministic; test vectors and persisted keys).
Result<Ed25519KeyPair> ed25519_from_seed(std::string_view seed);
// Detached signature of `message`; secret_key must be 64 bytes (else Errc::invalid_argument).
Result<std::string> ed25519_sign(std::string_view message, std::string_view secret_key);
// False for a wrong-sized key or signature as well as for a bad signature.
bool ed25519_verify(std::string_view message, std::string_view signature,
                    std::string_view public_key);
// Reads an Ed25519 public key given as PEM ("-----BEGIN PUBLIC KEY-----", SubjectPublicKeyInfo
// as Node's crypto and OpenSSL write it), as base64 of that DER, or as base64 or hex of the
// 32 raw bytes. Returns the 32 raw bytes.
Result<std::string> ed25519_public_key_parse(std::string_view text);
// The PEM (SubjectPublicKeyInfo) form of a raw 32-byte public key.
std::string ed25519_public_key_pem(std::string_view public_key);

// X25519 (RFC 7748) key agreement keys, raw bytes: public 32, secret 32 (never log it).
struct X25519KeyPair {
  std::string public_key;
  std::string secret_key;
};
X25519KeyPair x25519_generate();
// The key pair for a 32-byte secret key (persisted keys).
Result<X25519KeyPair> x25519_from_secret(std::string_view secret_key);

}  // namespace edgecoder::core::crypto

// Cryptographic primitives used across EdgeCoder, behind one header so that libsodium and
// OpenSSL stay in crypto.cpp: hashing, randomness, Ed25519 signatures, X25519 key agreement,
// HKDF-SHA256 and AES-256-GCM (the last three make the task envelopes of src/api/envelope.h).
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
// The 32-byte X25519 shared secret of `secret_key` and `peer_public_key` (RFC 7748 section 6.1).
// invalid_argument for wrong sizes, and for a peer key of small order (the result would be all
// zeros and the same for every secret).
Result<std::string> x25519_shared(std::string_view secret_key, std::string_view peer_public_key);

// `count` random bytes from the OS CSPRNG.
std::string random_bytes(std::size_t count);
// Lower-case hex of raw bytes, and back (either case; invalid_argument for anything else).
std::string hex_encode(std::string_view data);
Result<std::string> hex_decode(std::string_view hex);

// HKDF with SHA-256 (RFC 5869): `length` bytes (1..8160) of output keying material.
Result<std::string> hkdf_sha256(std::string_view ikm, std::string_view salt, std::string_view info,
                                std::size_t length);

// AES-256-GCM with a 12-byte nonce and a 16-byte tag. The key is 32 bytes; a nonce must never be
// used twice with one key (callers draw it with random_bytes(12)).
inline constexpr std::size_t kAesGcmKeyBytes = 32;
inline constexpr std::size_t kAesGcmNonceBytes = 12;
inline constexpr std::size_t kAesGcmTagBytes = 16;
struct AesGcmSealed {
  std::string ciphertext;  // as long as the plaintext
  std::string tag;         // 16 bytes
};
Result<AesGcmSealed> aes256gcm_encrypt(std::string_view key, std::string_view nonce,
                                       std::string_view plaintext, std::string_view aad = {});
// The plaintext, or invalid_argument "decrypt_failed" when the tag does not verify (wrong key,
// nonce, AAD, or altered ciphertext) or a size is wrong.
Result<std::string> aes256gcm_decrypt(std::string_view key, std::string_view nonce,
                                      std::string_view ciphertext, std::string_view tag,
                                      std::string_view aad = {});

}  // namespace edgecoder::core::crypto

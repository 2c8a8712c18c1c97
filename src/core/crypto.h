// Cryptographic primitives used across EdgeCoder, behind one header so that libsodium and
// OpenSSL stay in crypto.cpp. Later issues add Ed25519/X25519/HKDF/AES-GCM here.
// Thread-safety: every function is safe to call from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace edgecoder::core::crypto {

// `bytes` random bytes from the OS CSPRNG, hex-encoded (2*bytes characters).
std::string random_hex(std::size_t bytes);

// Compares two secrets in time independent of where they differ (and of their lengths, by
// comparing fixed-size hashes). Empty `expected` never matches.
bool constant_time_equal(std::string_view presented, std::string_view expected);

// SHA-256 of data, lower-case hex.
std::string sha256_hex(std::string_view data);

}  // namespace edgecoder::core::crypto

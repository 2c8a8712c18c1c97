#include "core/crypto.h"

#include <sodium.h>

#include <array>
#include <stdexcept>
#include <string>

namespace edgecoder::core::crypto {
namespace {

// sodium_init() must run before any other libsodium call; a function-local static makes the
// first call thread-safe and later calls free.
void crypto_ensure_sodium() {
  static const bool initialised = [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium initialisation failed");
    return true;
  }();
  (void)initialised;
}

std::string crypto_to_hex(const unsigned char* data, std::size_t size) {
  std::string hex(size * 2 + 1, '\0');  // sodium_bin2hex writes a terminating NUL
  sodium_bin2hex(hex.data(), hex.size(), data, size);
  hex.resize(size * 2);
  return hex;
}

using CryptoDigest = std::array<unsigned char, crypto_generichash_BYTES>;  // 32 bytes

CryptoDigest crypto_generic_hash(std::string_view data) {
  CryptoDigest digest{};
  crypto_generichash(digest.data(), digest.size(),
                     reinterpret_cast<const unsigned char*>(data.data()), data.size(), nullptr, 0);
  return digest;
}

}  // namespace

std::string random_hex(std::size_t bytes) {
  crypto_ensure_sodium();
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  std::string hex = crypto_to_hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  sodium_memzero(raw.data(), raw.size());
  return hex;
}

bool constant_time_equal(std::string_view presented, std::string_view expected) {
  crypto_ensure_sodium();
  // Hashing both sides first makes the comparison fixed-size, so neither the position of the
  // first difference nor the length of the expected secret shows in the timing.
  const CryptoDigest a = crypto_generic_hash(presented);
  const CryptoDigest b = crypto_generic_hash(expected);
  const bool same = sodium_memcmp(a.data(), b.data(), a.size()) == 0;
  // An unset secret must never authenticate anyone, not even an empty presented value.
  return same && !expected.empty();
}

std::string sha256_hex(std::string_view data) {
  crypto_ensure_sodium();
  std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
  crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(data.data()),
                     data.size());
  return crypto_to_hex(digest.data(), digest.size());
}

}  // namespace edgecoder::core::crypto

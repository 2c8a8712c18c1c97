#include "core/crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <memory>
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

// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
// 1.3.101.112 }, BIT STRING (33 bytes: no unused bits, then the 32-byte key) }.
constexpr std::array<unsigned char, 12> kEd25519SpkiPrefix = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                              0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

const unsigned char* crypto_bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string crypto_strip_space(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c)) == 0) out.push_back(c);
  }
  return out;
}

Result<std::string> crypto_hex_decode(std::string_view hex) {
  std::string out(hex.size() / 2, '\0');
  std::size_t written = 0;
  if (hex.size() % 2 != 0 ||
      sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), hex.data(),
                     hex.size(), nullptr, &written, nullptr) != 0 ||
      written != out.size()) {
    return make_error(Errc::invalid_argument, "not valid hex");
  }
  return out;
}

struct CryptoCipherFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CryptoCipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CryptoCipherFree>;
struct CryptoKdfCtxFree {
  void operator()(EVP_KDF_CTX* ctx) const { EVP_KDF_CTX_free(ctx); }
};

unsigned char* crypto_out(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

// The AES-256-GCM context with key and nonce set (encrypt or decrypt), or null.
CryptoCipherCtx crypto_gcm_context(bool encrypt, std::string_view key, std::string_view nonce) {
  CryptoCipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return nullptr;
  const auto init = encrypt ? EVP_EncryptInit_ex : EVP_DecryptInit_ex;
  if (init(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()),
                          nullptr) != 1 ||
      init(ctx.get(), nullptr, nullptr, crypto_bytes(key), crypto_bytes(nonce)) != 1) {
    return nullptr;
  }
  return ctx;
}

Result<void> crypto_gcm_sizes(std::string_view key, std::string_view nonce, std::size_t text) {
  if (key.size() != kAesGcmKeyBytes) {
    return make_error(Errc::invalid_argument, "an AES-256-GCM key is 32 bytes");
  }
  if (nonce.size() != kAesGcmNonceBytes) {
    return make_error(Errc::invalid_argument, "an AES-256-GCM nonce is 12 bytes");
  }
  if (text > static_cast<std::size_t>(INT_MAX)) {
    return make_error(Errc::invalid_argument, "message too large for AES-256-GCM");
  }
  return {};
}

}  // namespace

std::string random_bytes(std::size_t count) {
  crypto_ensure_sodium();
  std::string out(count, '\0');
  if (count > 0) randombytes_buf(out.data(), out.size());
  return out;
}

std::string hex_encode(std::string_view data) {
  crypto_ensure_sodium();
  return crypto_to_hex(crypto_bytes(data), data.size());
}

Result<std::string> hex_decode(std::string_view hex) {
  crypto_ensure_sodium();
  return crypto_hex_decode(hex);
}

Result<std::string> x25519_shared(std::string_view secret_key, std::string_view peer_public_key) {
  crypto_ensure_sodium();
  if (secret_key.size() != crypto_scalarmult_SCALARBYTES) {
    return make_error(Errc::invalid_argument, "an X25519 secret key is 32 bytes");
  }
  if (peer_public_key.size() != crypto_scalarmult_BYTES) {
    return make_error(Errc::invalid_argument, "an X25519 public key is 32 bytes");
  }
  std::string shared(crypto_scalarmult_BYTES, '\0');
  // libsodium refuses (-1) when the result is all zeros: the peer key has small order.
  if (crypto_scalarmult(crypto_out(shared), crypto_bytes(secret_key),
                        crypto_bytes(peer_public_key)) != 0) {
    return make_error(Errc::invalid_argument, "X25519 public key of small order");
  }
  return shared;
}

Result<std::string> hkdf_sha256(std::string_view ikm, std::string_view salt, std::string_view info,
                                std::size_t length) {
  if (length == 0 || length > 255 * 32) {
    return make_error(Errc::invalid_argument, "HKDF-SHA256 output is 1..8160 bytes");
  }
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) return make_error(Errc::internal, "OpenSSL has no HKDF");
  std::unique_ptr<EVP_KDF_CTX, CryptoKdfCtxFree> ctx(EVP_KDF_CTX_new(kdf));
  EVP_KDF_free(kdf);
  if (!ctx) return make_error(Errc::internal, "HKDF context allocation failed");
  char digest[] = "SHA256";
  // OSSL_PARAM takes non-const pointers but only reads through them.
  auto octets = [](std::string_view s) {
    return const_cast<void*>(static_cast<const void*>(s.data()));
  };
  std::array<OSSL_PARAM, 5> params{};
  std::size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, octets(ikm), ikm.size());
  // An absent salt is HashLen zero bytes (RFC 5869 2.2), which is what HMAC makes of an empty key.
  if (!salt.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, octets(salt), salt.size());
  }
  if (!info.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, octets(info), info.size());
  }
  params[n] = OSSL_PARAM_construct_end();
  std::string out(length, '\0');
  if (EVP_KDF_derive(ctx.get(), crypto_out(out), out.size(), params.data()) != 1) {
    return make_error(Errc::invalid_argument, "HKDF-SHA256 failed");
  }
  return out;
}

Result<AesGcmSealed> aes256gcm_encrypt(std::string_view key, std::string_view nonce,
                                       std::string_view plaintext, std::string_view aad) {
  if (auto sizes = crypto_gcm_sizes(key, nonce, std::max(plaintext.size(), aad.size())); !sizes) {
    return sizes.error();
  }
  CryptoCipherCtx ctx = crypto_gcm_context(true, key, nonce);
  if (!ctx) return make_error(Errc::internal, "AES-256-GCM set-up failed");
  AesGcmSealed out;
  out.ciphertext.assign(plaintext.size(), '\0');
  out.tag.assign(kAesGcmTagBytes, '\0');
  int len = 0;
  if (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, crypto_bytes(aad),
                                        static_cast<int>(aad.size())) != 1) {
    return make_error(Errc::internal, "AES-256-GCM failed");
  }
  if (!plaintext.empty() &&
      EVP_EncryptUpdate(ctx.get(), crypto_out(out.ciphertext), &len, crypto_bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1) {
    return make_error(Errc::internal, "AES-256-GCM failed");
  }
  // GCM is a stream mode: Final writes nothing, but it completes the tag.
  unsigned char none[16];
  if (EVP_EncryptFinal_ex(ctx.get(), none, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kAesGcmTagBytes),
                          out.tag.data()) != 1) {
    return make_error(Errc::internal, "AES-256-GCM failed");
  }
  return out;
}

Result<std::string> aes256gcm_decrypt(std::string_view key, std::string_view nonce,
                                      std::string_view ciphertext, std::string_view tag,
                                      std::string_view aad) {
  const auto failed = [] {
    return core::Error(Errc::invalid_argument, "decrypt_failed",
                       "AES-256-GCM authentication failed");
  };
  if (key.size() != kAesGcmKeyBytes || nonce.size() != kAesGcmNonceBytes ||
      tag.size() != kAesGcmTagBytes ||
      std::max(ciphertext.size(), aad.size()) > static_cast<std::size_t>(INT_MAX)) {
    return failed();
  }
  CryptoCipherCtx ctx = crypto_gcm_context(false, key, nonce);
  if (!ctx) return make_error(Errc::internal, "AES-256-GCM set-up failed");
  std::string plaintext(ciphertext.size(), '\0');
  int len = 0;
  if (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, crypto_bytes(aad),
                                        static_cast<int>(aad.size())) != 1) {
    return failed();
  }
  if (!ciphertext.empty() &&
      EVP_DecryptUpdate(ctx.get(), crypto_out(plaintext), &len, crypto_bytes(ciphertext),
                        static_cast<int>(ciphertext.size())) != 1) {
    return failed();
  }
  std::string expected(tag);
  unsigned char none[16];
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(expected.size()),
                          expected.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), none, &len) != 1) {
    sodium_memzero(plaintext.data(), plaintext.size());
    return failed();
  }
  return plaintext;
}

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

std::string base64_encode(std::string_view data) {
  crypto_ensure_sodium();
  constexpr int kVariant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(data.size(), kVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), crypto_bytes(data), data.size(), kVariant);
  out.resize(out.size() - 1);  // sodium_bin2base64 writes a terminating NUL
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  crypto_ensure_sodium();
  // Padding is optional on input: Node's and OpenSSL's encoders add it, some hand-written
  // configurations drop it.
  const bool padded = !text.empty() && text.back() == '=';
  const int variant =
      padded ? sodium_base64_VARIANT_ORIGINAL : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
  std::string out(text.size() / 4 * 3 + 3, '\0');
  std::size_t written = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &written, &end, variant) != 0 ||
      end != text.data() + text.size()) {
    return make_error(Errc::invalid_argument, "not valid base64");
  }
  out.resize(written);
  return out;
}

Ed25519KeyPair ed25519_generate() {
  crypto_ensure_sodium();
  Ed25519KeyPair pair;
  pair.public_key.assign(crypto_sign_PUBLICKEYBYTES, '\0');
  pair.secret_key.assign(crypto_sign_SECRETKEYBYTES, '\0');
  crypto_sign_keypair(reinterpret_cast<unsigned char*>(pair.public_key.data()),
                      reinterpret_cast<unsigned char*>(pair.secret_key.data()));
  return pair;
}

Result<Ed25519KeyPair> ed25519_from_seed(std::string_view seed) {
  crypto_ensure_sodium();
  if (seed.size() != crypto_sign_SEEDBYTES) {
    return make_error(Errc::invalid_argument, "an Ed25519 seed is 32 bytes");
  }
  Ed25519KeyPair pair;
  pair.public_key.assign(crypto_sign_PUBLICKEYBYTES, '\0');
  pair.secret_key.assign(crypto_sign_SECRETKEYBYTES, '\0');
  crypto_sign_seed_keypair(reinterpret_cast<unsigned char*>(pair.public_key.data()),
                           reinterpret_cast<unsigned char*>(pair.secret_key.data()),
                           crypto_bytes(seed));
  return pair;
}

X25519KeyPair x25519_generate() {
  crypto_ensure_sodium();
  X25519KeyPair pair;
  pair.public_key.assign(crypto_box_PUBLICKEYBYTES, '\0');
  pair.secret_key.assign(crypto_box_SECRETKEYBYTES, '\0');
  crypto_box_keypair(reinterpret_cast<unsigned char*>(pair.public_key.data()),
                     reinterpret_cast<unsigned char*>(pair.secret_key.data()));
  return pair;
}

Result<X25519KeyPair> x25519_from_secret(std::string_view secret_key) {
  crypto_ensure_sodium();
  if (secret_key.size() != crypto_scalarmult_SCALARBYTES) {
    return make_error(Errc::invalid_argument, "an X25519 secret key is 32 bytes");
  }
  X25519KeyPair pair;
  pair.secret_key = std::string(secret_key);
  pair.public_key.assign(crypto_scalarmult_BYTES, '\0');
  if (crypto_scalarmult_base(reinterpret_cast<unsigned char*>(pair.public_key.data()),
                             crypto_bytes(secret_key)) != 0) {
    return make_error(Errc::invalid_argument, "bad X25519 secret key");
  }
  return pair;
}

Result<std::string> ed25519_sign(std::string_view message, std::string_view secret_key) {
  crypto_ensure_sodium();
  if (secret_key.size() != crypto_sign_SECRETKEYBYTES) {
    return make_error(Errc::invalid_argument, "an Ed25519 secret key is 64 bytes");
  }
  std::string signature(crypto_sign_BYTES, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(signature.data()), nullptr,
                       crypto_bytes(message), message.size(), crypto_bytes(secret_key));
  return signature;
}

bool ed25519_verify(std::string_view message, std::string_view signature,
                    std::string_view public_key) {
  crypto_ensure_sodium();
  if (signature.size() != crypto_sign_BYTES || public_key.size() != crypto_sign_PUBLICKEYBYTES) {
    return false;
  }
  return crypto_sign_verify_detached(crypto_bytes(signature), crypto_bytes(message), message.size(),
                                     crypto_bytes(public_key)) == 0;
}

Result<std::string> ed25519_public_key_parse(std::string_view text) {
  constexpr std::string_view kBegin = "-----BEGIN PUBLIC KEY-----";
  constexpr std::string_view kEnd = "-----END PUBLIC KEY-----";
  std::string body;
  const auto begin = text.find(kBegin);
  if (begin != std::string_view::npos) {
    const auto end = text.find(kEnd, begin);
    if (end == std::string_view::npos) {
      return make_error(Errc::invalid_argument, "PEM public key without its END line");
    }
    const auto from = begin + kBegin.size();
    // Env files often carry the PEM on one line with literal "\n" sequences for its breaks.
    std::string inner(text.substr(from, end - from));
    for (auto at = inner.find("\\n"); at != std::string::npos; at = inner.find("\\n", at)) {
      inner.replace(at, 2, "\n");
    }
    body = crypto_strip_space(inner);
  } else {
    body = crypto_strip_space(text);
  }
  if (body.empty()) return make_error(Errc::invalid_argument, "empty public key");
  if (begin == std::string_view::npos && body.size() == 2 * crypto_sign_PUBLICKEYBYTES) {
    auto raw = crypto_hex_decode(body);
    if (raw) return raw;
  }
  auto der = base64_decode(body);
  if (!der) return make_error(Errc::invalid_argument, "public key is not PEM, base64 or hex");
  if (der->size() == crypto_sign_PUBLICKEYBYTES && begin == std::string_view::npos) return der;
  if (der->size() == kEd25519SpkiPrefix.size() + crypto_sign_PUBLICKEYBYTES &&
      std::equal(kEd25519SpkiPrefix.begin(), kEd25519SpkiPrefix.end(), crypto_bytes(*der))) {
    return der->substr(kEd25519SpkiPrefix.size());
  }
  return make_error(Errc::invalid_argument, "not an Ed25519 public key");
}

std::string ed25519_public_key_pem(std::string_view public_key) {
  std::string der(reinterpret_cast<const char*>(kEd25519SpkiPrefix.data()),
                  kEd25519SpkiPrefix.size());
  der.append(public_key);
  return "-----BEGIN PUBLIC KEY-----\n" + base64_encode(der) + "\n-----END PUBLIC KEY-----\n";
}

}  // namespace edgecoder::core::crypto

#include "core/crypto.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

namespace edgecoder::core::crypto {
namespace {

TEST(CryptoTest, Sha256KnownVectors) {
  // FIPS 180-2 examples.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string binary("a\0b", 3);
  EXPECT_NE(sha256_hex(binary), sha256_hex("a"));
}

TEST(CryptoTest, RandomHexLengthCharsetUniqueness) {
  EXPECT_EQ(random_hex(0), "");
  for (std::size_t n : {1U, 16U, 32U, 100U}) {
    const std::string h = random_hex(n);
    EXPECT_EQ(h.size(), 2 * n);
    EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos) << h;
  }
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(random_hex(16));
  EXPECT_EQ(seen.size(), 1000U);
  // Every hex digit shows up in a long sample (not stuck on a subset).
  const std::string big = random_hex(4096);
  for (char c : std::string("0123456789abcdef")) EXPECT_NE(big.find(c), std::string::npos) << c;
}

TEST(CryptoTest, RandomHexFromManyThreads) {
  std::vector<std::thread> threads;
  std::vector<std::string> out(8);
  for (std::size_t i = 0; i < out.size(); ++i) {
    threads.emplace_back([&out, i] { out[i] = random_hex(32); });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> unique(out.begin(), out.end());
  EXPECT_EQ(unique.size(), out.size());
}

TEST(CryptoTest, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("s3cret-token", "s3cret-token"));
  EXPECT_FALSE(constant_time_equal("s3cret-tokeN", "s3cret-token"));
  EXPECT_FALSE(constant_time_equal("x3cret-token", "s3cret-token"));
  // Length differences, including prefixes.
  EXPECT_FALSE(constant_time_equal("s3cret", "s3cret-token"));
  EXPECT_FALSE(constant_time_equal("s3cret-token-and-more", "s3cret-token"));
  EXPECT_FALSE(constant_time_equal("", "s3cret-token"));
  // An empty expected secret never matches anything, not even the empty string.
  EXPECT_FALSE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("anything", ""));
  // Embedded NULs are compared, not treated as terminators.
  EXPECT_FALSE(constant_time_equal(std::string("ab\0c", 4), std::string("ab\0d", 4)));
  EXPECT_TRUE(constant_time_equal(std::string("ab\0c", 4), std::string("ab\0c", 4)));
  const std::string long_secret(10000, 'z');
  EXPECT_TRUE(constant_time_equal(long_secret, long_secret));
}

std::string unhex(std::string_view hex) {
  auto raw = hex_decode(hex);
  EXPECT_TRUE(raw) << hex;
  return raw ? *raw : std::string();
}

TEST(CryptoTest, HexRoundTripAndRejects) {
  EXPECT_EQ(hex_encode(std::string("\x00\xff\x10", 3)), "00ff10");
  EXPECT_EQ(unhex("00FF10"), std::string("\x00\xff\x10", 3));
  EXPECT_FALSE(hex_decode("abc"));
  EXPECT_FALSE(hex_decode("zz"));
  EXPECT_EQ(random_bytes(32).size(), 32U);
  EXPECT_NE(random_bytes(16), random_bytes(16));
}

// RFC 7748 section 6.1 (Alice and Bob).
TEST(CryptoTest, X25519SharedSecretRfc7748) {
  const std::string alice =
      unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const std::string bob = unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  auto a = x25519_from_secret(alice);
  auto b = x25519_from_secret(bob);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(hex_encode(a->public_key),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  EXPECT_EQ(hex_encode(b->public_key),
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  auto ab = x25519_shared(alice, b->public_key);
  auto ba = x25519_shared(bob, a->public_key);
  ASSERT_TRUE(ab && ba);
  EXPECT_EQ(hex_encode(*ab), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  EXPECT_EQ(*ab, *ba);
  // Fresh pairs agree too, and differ from each other.
  auto x = x25519_generate();
  auto y = x25519_generate();
  EXPECT_EQ(*x25519_shared(x.secret_key, y.public_key), *x25519_shared(y.secret_key, x.public_key));
  EXPECT_NE(*x25519_shared(x.secret_key, y.public_key), *ab);
  // Wrong sizes and a small-order point (all zeros) are refused.
  EXPECT_FALSE(x25519_shared(alice.substr(1), b->public_key));
  EXPECT_FALSE(x25519_shared(alice, b->public_key.substr(1)));
  EXPECT_FALSE(x25519_shared(alice, std::string(32, '\0')));
}

// RFC 5869 appendix A, test cases 1, 2 and 3 (SHA-256).
TEST(CryptoTest, HkdfSha256Rfc5869) {
  std::string salt1, info1;
  for (int i = 0x00; i <= 0x0c; ++i) salt1.push_back(static_cast<char>(i));
  for (int i = 0xf0; i <= 0xf9; ++i) info1.push_back(static_cast<char>(i));
  auto okm1 = hkdf_sha256(std::string(22, '\x0b'), salt1, info1, 42);
  ASSERT_TRUE(okm1) << okm1.error().detail;
  EXPECT_EQ(hex_encode(*okm1),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");

  std::string ikm2, salt2, info2;
  for (int i = 0x00; i <= 0x4f; ++i) ikm2.push_back(static_cast<char>(i));
  for (int i = 0x60; i <= 0xaf; ++i) salt2.push_back(static_cast<char>(i));
  for (int i = 0xb0; i <= 0xff; ++i) info2.push_back(static_cast<char>(i));
  auto okm2 = hkdf_sha256(ikm2, salt2, info2, 82);
  ASSERT_TRUE(okm2) << okm2.error().detail;
  EXPECT_EQ(hex_encode(*okm2),
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41"
            "c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87");

  auto okm3 = hkdf_sha256(std::string(22, '\x0b'), "", "", 42);
  ASSERT_TRUE(okm3) << okm3.error().detail;
  EXPECT_EQ(hex_encode(*okm3),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");

  EXPECT_FALSE(hkdf_sha256("ikm", "salt", "info", 0));
  EXPECT_FALSE(hkdf_sha256("ikm", "salt", "info", 255 * 32 + 1));
}

// The GCM specification's test cases 13, 14 and 16 (AES-256).
TEST(CryptoTest, Aes256GcmKnownVectors) {
  const std::string zero_key(32, '\0');
  const std::string zero_nonce(12, '\0');
  auto empty = aes256gcm_encrypt(zero_key, zero_nonce, "");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->ciphertext, "");
  EXPECT_EQ(hex_encode(empty->tag), "530f8afbc74536b9a963b4f1c4cb738b");

  auto block = aes256gcm_encrypt(zero_key, zero_nonce, std::string(16, '\0'));
  ASSERT_TRUE(block);
  EXPECT_EQ(hex_encode(block->ciphertext), "cea7403d4d606b6e074ec5d3baf39d18");
  EXPECT_EQ(hex_encode(block->tag), "d0d1c8a799996bf0265b98b5d48ab919");

  const std::string key = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
  const std::string nonce = unhex("cafebabefacedbaddecaf888");
  const std::string plain = unhex(
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6"
      "b525b16aedf5aa0de657ba637b39");
  const std::string aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  auto sealed = aes256gcm_encrypt(key, nonce, plain, aad);
  ASSERT_TRUE(sealed);
  EXPECT_EQ(
      hex_encode(sealed->ciphertext),
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1"
      "056828838c5f61e6393ba7a0abcc9f662");
  EXPECT_EQ(hex_encode(sealed->tag), "76fc6ece0f4e1768cddf8853bb2d551b");
  auto opened = aes256gcm_decrypt(key, nonce, sealed->ciphertext, sealed->tag, aad);
  ASSERT_TRUE(opened);
  EXPECT_EQ(*opened, plain);
}

TEST(CryptoTest, Aes256GcmRejectsEveryAlteration) {
  const std::string key = random_bytes(32);
  const std::string nonce = random_bytes(12);
  auto sealed = aes256gcm_encrypt(key, nonce, "the subtask input");
  ASSERT_TRUE(sealed);
  ASSERT_EQ(*aes256gcm_decrypt(key, nonce, sealed->ciphertext, sealed->tag), "the subtask input");
  std::string flipped = sealed->ciphertext;
  flipped[3] ^= 1;
  std::string bad_tag = sealed->tag;
  bad_tag[0] ^= 0x80;
  std::string other_key = key;
  other_key[31] ^= 1;
  std::string other_nonce = nonce;
  other_nonce[0] ^= 1;
  for (auto r : {aes256gcm_decrypt(key, nonce, flipped, sealed->tag),
                 aes256gcm_decrypt(key, nonce, sealed->ciphertext, bad_tag),
                 aes256gcm_decrypt(other_key, nonce, sealed->ciphertext, sealed->tag),
                 aes256gcm_decrypt(key, other_nonce, sealed->ciphertext, sealed->tag),
                 aes256gcm_decrypt(key, nonce, sealed->ciphertext, sealed->tag, "aad"),
                 aes256gcm_decrypt(key, nonce, sealed->ciphertext, sealed->tag.substr(1)),
                 aes256gcm_decrypt(key.substr(1), nonce, sealed->ciphertext, sealed->tag)}) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_EQ(r.error().wire(), "decrypt_failed");
  }
  EXPECT_FALSE(aes256gcm_encrypt(key.substr(1), nonce, "x"));
  EXPECT_FALSE(aes256gcm_encrypt(key, nonce.substr(1), "x"));
}

}  // namespace
}  // namespace edgecoder::core::crypto

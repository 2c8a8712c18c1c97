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

}  // namespace
}  // namespace edgecoder::core::crypto

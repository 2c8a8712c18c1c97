// `edgecoder release verify`: a manifest signed with the key is accepted; a tampered file, a
// signature by another key and a reformatted manifest (even when re-signed) are rejected.
// Keys are generated here at test time; no private key lives in the repository.
#include "app/release_verify.h"

#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

namespace fs = std::filesystem;
using edgecoder::app::parse_manifest;
using edgecoder::app::parse_public_key;
using edgecoder::app::release_verify;
using edgecoder::app::ReleaseVerifyOptions;

struct KeyPair {
  std::array<unsigned char, crypto_sign_PUBLICKEYBYTES> pk{};
  std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sk{};
};

KeyPair make_keypair() {
  KeyPair kp;
  crypto_sign_keypair(kp.pk.data(), kp.sk.data());
  return kp;
}

std::string base64(const unsigned char* data, std::size_t len) {
  std::string out(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, len, sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

std::string sha256_hex(const std::string& data) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  std::string hex(2 * sizeof digest + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), digest, sizeof digest);
  hex.pop_back();
  return hex;
}

std::string sign(const std::string& message, const KeyPair& kp) {
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size(), kp.sk.data());
  return base64(sig, sizeof sig) + "\n";
}

void write(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  ASSERT_TRUE(out.good()) << path;
}

std::string slurp(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string text;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    text.append(buf, n);
  }
  return text;
}

class ReleaseVerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    char tmpl[] = "/tmp/edgecoder-release-verify-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    key_ = make_keypair();
    other_ = make_keypair();
    write(dir_ / "release.pub", base64(key_.pk.data(), key_.pk.size()) + "\n");
    files_ = {{"EdgeCoder-0.1.0-linux-amd64.deb", std::string(100000, 'd')},
              {"EdgeCoder-0.1.0-macos-universal.pkg", "pkg bytes"},
              {"EdgeCoder-0.1.0-docker-image.txt", "ghcr.io/x/edgecoder@sha256:abc\n"}};
    for (const auto& [name, data] : files_) {
      write(dir_ / name, data);
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // The canonical manifest: sorted by name, `<hash>  <name>\n`.
  std::string canonical_manifest() const {
    std::vector<std::pair<std::string, std::string>> sorted(files_.begin(), files_.end());
    std::sort(sorted.begin(), sorted.end());
    std::string text;
    for (const auto& [name, data] : sorted) {
      text += sha256_hex(data) + "  " + name + "\n";
    }
    return text;
  }

  // Writes the manifest and a signature over `signed_bytes` (default: the manifest itself).
  void publish(const std::string& manifest, const KeyPair& signer) {
    write(dir_ / "SHA256SUMS", manifest);
    write(dir_ / "SHA256SUMS.sig", sign(manifest, signer));
  }

  int verify(bool with_key = true, bool require_all = false) {
    ReleaseVerifyOptions options;
    options.manifest = dir_ / "SHA256SUMS";
    options.signature = dir_ / "SHA256SUMS.sig";
    if (with_key) {
      options.key_file = dir_ / "release.pub";
    }
    options.require_all_files = require_all;
    std::FILE* out = std::tmpfile();
    std::FILE* err = std::tmpfile();
    const int rc = release_verify(options, out, err);
    out_ = slurp(out);
    err_ = slurp(err);
    std::fclose(out);
    std::fclose(err);
    return rc;
  }

  fs::path dir_;
  KeyPair key_;
  KeyPair other_;
  std::vector<std::pair<std::string, std::string>> files_;
  std::string out_;
  std::string err_;
};

TEST_F(ReleaseVerifyTest, AcceptsManifestSignedWithTheKey) {
  publish(canonical_manifest(), key_);
  EXPECT_EQ(verify(), 0) << out_ << err_;
  EXPECT_NE(out_.find("signature: good"), std::string::npos) << out_;
  EXPECT_NE(out_.find("EdgeCoder-0.1.0-linux-amd64.deb: OK"), std::string::npos) << out_;
  EXPECT_NE(out_.find("\nOK\n"), std::string::npos) << out_;
}

TEST_F(ReleaseVerifyTest, AcceptsPemKeyAndSignatureWithoutTrailingNewline) {
  const std::string manifest = canonical_manifest();
  write(dir_ / "SHA256SUMS", manifest);
  std::string sig = sign(manifest, key_);
  sig.pop_back();
  write(dir_ / "SHA256SUMS.sig", sig);
  // SubjectPublicKeyInfo DER for Ed25519 = fixed 12-byte prefix + raw key.
  std::vector<unsigned char> der = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                    0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
  der.insert(der.end(), key_.pk.begin(), key_.pk.end());
  write(dir_ / "release.pub", "-----BEGIN PUBLIC KEY-----\n" + base64(der.data(), der.size()) +
                                  "\n-----END PUBLIC KEY-----\n");
  EXPECT_EQ(verify(), 0) << out_ << err_;
}

TEST_F(ReleaseVerifyTest, RejectsTamperedFile) {
  publish(canonical_manifest(), key_);
  write(dir_ / "EdgeCoder-0.1.0-linux-amd64.deb", std::string(100000, 'e'));
  EXPECT_EQ(verify(), 1);
  EXPECT_NE(err_.find("EdgeCoder-0.1.0-linux-amd64.deb: SHA-256 mismatch"), std::string::npos)
      << err_;
  EXPECT_NE(out_.find("FAILED"), std::string::npos) << out_;
}

TEST_F(ReleaseVerifyTest, RejectsManifestEditedAfterSigning) {
  const std::string manifest = canonical_manifest();
  write(dir_ / "SHA256SUMS.sig", sign(manifest, key_));
  // Point the manifest at the tampered file's hash without re-signing.
  write(dir_ / "EdgeCoder-0.1.0-linux-amd64.deb", "evil");
  std::string edited = manifest;
  const std::string old_hash = sha256_hex(std::string(100000, 'd'));
  edited.replace(edited.find(old_hash), old_hash.size(), sha256_hex("evil"));
  write(dir_ / "SHA256SUMS", edited);
  EXPECT_EQ(verify(), 1);
  EXPECT_NE(err_.find("signature"), std::string::npos) << err_;
}

TEST_F(ReleaseVerifyTest, RejectsSignatureByAnotherKey) {
  publish(canonical_manifest(), other_);
  EXPECT_EQ(verify(), 1);
  EXPECT_NE(err_.find("signature: does not match"), std::string::npos) << err_;
}

TEST_F(ReleaseVerifyTest, BuiltInKeyRejectsAManifestSignedByATestKey) {
  auto key = parse_public_key(std::string(edgecoder::app::release_public_key_base64()));
  ASSERT_TRUE(key.has_value()) << key.error().detail;
  publish(canonical_manifest(), key_);
  EXPECT_EQ(verify(/*with_key=*/false), 1);
  EXPECT_NE(out_.find("FAILED"), std::string::npos);
}

TEST_F(ReleaseVerifyTest, RejectsReformattedManifestWithoutResigning) {
  const std::string manifest = canonical_manifest();
  write(dir_ / "SHA256SUMS.sig", sign(manifest, key_));
  std::string crlf;
  for (char c : manifest) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  write(dir_ / "SHA256SUMS", crlf);
  EXPECT_EQ(verify(), 1);
}

// Every variant is signed with the right key, so only the canonical-form check can catch it.
TEST_F(ReleaseVerifyTest, RejectsNonCanonicalManifestEvenWhenResigned) {
  const std::string canonical = canonical_manifest();
  std::vector<std::string> lines;
  std::istringstream in(canonical);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 3u);
  const auto join = [](const std::vector<std::string>& ls, const std::string& eol) {
    std::string s;
    for (const auto& l : ls) s += l + eol;
    return s;
  };
  const auto with_line0 = [&](std::string l0) {
    auto ls = lines;
    ls[0] = std::move(l0);
    return join(ls, "\n");
  };
  std::string upper = lines[0];
  for (std::size_t i = 0; i < 64; ++i) upper[i] = static_cast<char>(std::toupper(upper[i]));
  const std::string hash0 = lines[0].substr(0, 64);
  const std::string name0 = lines[0].substr(66);

  const std::vector<std::pair<std::string, std::string>> variants = {
      {"CRLF line endings", join(lines, "\r\n")},
      {"one space", with_line0(hash0 + " " + name0)},
      {"three spaces", with_line0(hash0 + "   " + name0)},
      {"binary-mode marker", with_line0(hash0 + " *" + name0)},
      {"trailing space", with_line0(lines[0] + " ")},
      {"leading space", with_line0(" " + lines[0])},
      {"tab separator", with_line0(hash0 + "\t" + name0)},
      {"upper-case hex", with_line0(upper)},
      {"path with ./", with_line0(hash0 + "  ./" + name0)},
      {"path with directory", with_line0(hash0 + "  dist/" + name0)},
      {"reordered", join({lines[1], lines[0], lines[2]}, "\n")},
      {"duplicate line", join({lines[0], lines[0], lines[1], lines[2]}, "\n")},
      {"blank line", join({lines[0], "", lines[1], lines[2]}, "\n")},
      {"trailing blank line", canonical + "\n"},
      {"no final line feed", canonical.substr(0, canonical.size() - 1)},
      {"comment line", "# release 0.1.0\n" + canonical},
      {"byte-order mark", "\xEF\xBB\xBF" + canonical},
      {"empty", ""},
  };
  for (const auto& [what, text] : variants) {
    SCOPED_TRACE(what);
    EXPECT_FALSE(parse_manifest(text).has_value());
    publish(text, key_);
    EXPECT_EQ(verify(), 1) << out_ << err_;
  }
  // And the canonical form itself is accepted by the same path.
  publish(canonical, key_);
  EXPECT_EQ(verify(), 0) << out_ << err_;
}

TEST_F(ReleaseVerifyTest, RejectsMalformedSignatureFiles) {
  const std::string manifest = canonical_manifest();
  write(dir_ / "SHA256SUMS", manifest);
  std::string good = sign(manifest, key_);
  good.pop_back();
  for (const std::string& sig : {good + "\r\n", good + "\n\n", " " + good, good + " ",
                                 good.substr(0, good.size() - 4), std::string("")}) {
    write(dir_ / "SHA256SUMS.sig", sig);
    EXPECT_EQ(verify(), 1) << "signature file: '" << sig << "'";
  }
}

TEST_F(ReleaseVerifyTest, MissingListedFilesAreSkippedUnlessRequired) {
  publish(canonical_manifest(), key_);
  fs::remove(dir_ / "EdgeCoder-0.1.0-macos-universal.pkg");
  EXPECT_EQ(verify(), 0) << err_;
  EXPECT_NE(out_.find("EdgeCoder-0.1.0-macos-universal.pkg: not present, skipped"),
            std::string::npos)
      << out_;
  EXPECT_EQ(verify(/*with_key=*/true, /*require_all=*/true), 1);
}

TEST_F(ReleaseVerifyTest, UsageErrorsExitTwo) {
  publish(canonical_manifest(), key_);
  write(dir_ / "release.pub", "not a key\n");
  EXPECT_EQ(verify(), 2);
  write(dir_ / "release.pub", base64(key_.pk.data(), 16) + "\n");  // too short
  EXPECT_EQ(verify(), 2);
  write(dir_ / "release.pub", base64(key_.pk.data(), key_.pk.size()) + "\n");
  fs::remove(dir_ / "SHA256SUMS");
  EXPECT_EQ(verify(), 2);
}

TEST(ReleasePublicKey, BuiltInKeyIsAnEd25519PublicKey) {
  auto key = parse_public_key(std::string(edgecoder::app::release_public_key_base64()));
  ASSERT_TRUE(key.has_value()) << key.error().detail;
}

// The release workflow signs with OpenSSL (`pkeyutl -sign -rawin`); its output must verify.
TEST_F(ReleaseVerifyTest, AcceptsSignatureMadeByOpenssl) {
  if (std::system("openssl version >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "openssl not installed";
  }
  const std::string manifest = canonical_manifest();
  write(dir_ / "SHA256SUMS", manifest);
  const std::string d = dir_.string();
  const std::string script =
      "set -e; cd '" + d +
      "'; openssl genpkey -algorithm ed25519 -out k.pem 2>/dev/null;"
      " openssl pkey -in k.pem -pubout -out k.pub.pem;"
      " openssl pkeyutl -sign -rawin -inkey k.pem -in SHA256SUMS | base64 -w0 > SHA256SUMS.sig;"
      " cp k.pub.pem release.pub";
  ASSERT_EQ(std::system(("sh -c \"" + script + "\"").c_str()), 0);
  EXPECT_EQ(verify(), 0) << out_ << err_;
  // The raw form of the same key works too.
  ASSERT_EQ(std::system(("sh -c \"cd '" + d +
                         "' && openssl pkey -in k.pem -pubout -outform DER | tail -c 32 | "
                         "base64 -w0 > release.pub\"")
                            .c_str()),
            0);
  EXPECT_EQ(verify(), 0) << out_ << err_;
}

}  // namespace

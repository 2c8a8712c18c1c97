// libsodium is used directly here (Ed25519 verification, streaming SHA-256, base64) because
// core/crypto.h has no Ed25519 yet; move these calls behind core/crypto.h when it gains them.
#include "app/release_verify.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <system_error>

namespace edgecoder::app {

// Named rather than anonymous: unity builds merge anonymous namespaces of src/app files.
namespace release_verify_internal {

using core::Errc;
using core::Error;
using core::Result;

#ifdef EDGECODER_RELEASE_PUBLIC_KEY
constexpr std::string_view kReleasePublicKey = EDGECODER_RELEASE_PUBLIC_KEY;
#else
// The project's release key (Ed25519, raw 32 bytes, base64). Its private half is held only by
// the release workflow (secret RELEASE_SIGNING_KEY); see docs/packaging.md.
constexpr std::string_view kReleasePublicKey = "SKZ49KR5IX41bAKgVMbfrsgO9XgVvYLi+pX1/P02Clw=";
#endif

// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw key follows.
constexpr std::array<std::uint8_t, 12> kEd25519SpkiPrefix = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                             0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

constexpr std::size_t kMaxManifestBytes = 1 << 20;  // far above any real release
constexpr std::size_t kMaxSmallFileBytes = 64 * 1024;

static bool ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

// Decodes canonical padded base64: the text must be exactly what encoding the result gives.
static std::optional<std::vector<std::uint8_t>> decode_base64(std::string_view text) {
  if (text.empty() || !ensure_sodium()) {
    return std::nullopt;
  }
  std::vector<std::uint8_t> out(text.size());
  std::size_t len = 0;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    return std::nullopt;
  }
  out.resize(len);
  std::string again(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(again.data(), again.size(), out.data(), out.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  again.resize(std::strlen(again.c_str()));
  if (again != text) {
    return std::nullopt;
  }
  return out;
}

// Strips exactly one trailing LF, if present.
static std::string_view strip_one_lf(std::string_view text) {
  if (!text.empty() && text.back() == '\n') {
    text.remove_suffix(1);
  }
  return text;
}

static bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '+' || c == '~';
}

static Result<std::string> read_file(const std::filesystem::path& path, std::size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error(Errc::not_found, "cannot read " + path.string());
  }
  std::string data;
  char buffer[8192];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    data.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (data.size() > limit) {
      return Error(Errc::payload_too_large, path.string() + " is larger than expected");
    }
  }
  if (in.bad()) {
    return Error(Errc::internal, "error reading " + path.string());
  }
  return data;
}

static Result<std::string> sha256_file_hex(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error(Errc::not_found, "cannot read " + path.string());
  }
  crypto_hash_sha256_state state;
  crypto_hash_sha256_init(&state);
  std::vector<char> buffer(1 << 16);
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    crypto_hash_sha256_update(&state, reinterpret_cast<const unsigned char*>(buffer.data()),
                              static_cast<unsigned long long>(in.gcount()));
  }
  if (in.bad()) {
    return Error(Errc::internal, "error reading " + path.string());
  }
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&state, digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * sizeof digest);
  for (unsigned char b : digest) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 0x0f]);
  }
  return hex;
}

}  // namespace release_verify_internal

namespace rvi = release_verify_internal;
using core::Errc;
using core::Error;
using core::Result;

std::string_view release_public_key_base64() { return rvi::kReleasePublicKey; }

Result<std::vector<ManifestEntry>> parse_manifest(std::string_view text) {
  if (text.empty()) {
    return Error(Errc::invalid_argument, "manifest is empty");
  }
  if (text.size() > rvi::kMaxManifestBytes) {
    return Error(Errc::invalid_argument, "manifest is too large");
  }
  if (text.back() != '\n') {
    return Error(Errc::invalid_argument, "manifest does not end with a line feed");
  }
  std::vector<ManifestEntry> entries;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    ++line_no;
    const std::size_t end = text.find('\n', pos);  // exists: the text ends with '\n'
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    const auto bad = [&](std::string_view why) {
      return Error(Errc::invalid_argument,
                   "manifest line " + std::to_string(line_no) + ": " + std::string(why));
    };
    if (line.empty()) {
      return bad("blank line");
    }
    if (line.find('\r') != std::string_view::npos) {
      return bad("carriage return (CRLF line endings are not canonical)");
    }
    if (line.size() < 64 + 2 + 1) {
      return bad("expected '<64 lower-case hex digits>  <file name>'");
    }
    const std::string_view hash = line.substr(0, 64);
    if (!std::all_of(hash.begin(), hash.end(), rvi::is_lower_hex)) {
      return bad("the hash must be 64 lower-case hex digits");
    }
    if (line.substr(64, 2) != "  ") {
      return bad("the hash must be followed by exactly two spaces");
    }
    const std::string_view name = line.substr(66);
    if (name.size() > 255 || name.front() == '.' ||
        !std::all_of(name.begin(), name.end(), rvi::is_name_char)) {
      return bad("the file name must be a bare name of [A-Za-z0-9._+~-] not starting with '.'");
    }
    if (!entries.empty() && !(entries.back().filename < name)) {
      return bad(entries.back().filename == name ? "duplicate file name"
                                                 : "lines are not sorted by file name");
    }
    entries.push_back(ManifestEntry{std::string(hash), std::string(name)});
  }
  return entries;
}

Result<PublicKey> parse_public_key(std::string_view text) {
  constexpr std::string_view kBegin = "-----BEGIN PUBLIC KEY-----\n";
  constexpr std::string_view kEnd = "-----END PUBLIC KEY-----";
  std::vector<std::uint8_t> bytes;
  if (text.substr(0, kBegin.size()) == kBegin) {
    const std::string_view rest = rvi::strip_one_lf(text.substr(kBegin.size()));
    if (rest.size() < kEnd.size() || rest.substr(rest.size() - kEnd.size()) != kEnd) {
      return Error(Errc::invalid_argument, "public key: malformed PEM");
    }
    std::string body(rest.substr(0, rest.size() - kEnd.size()));
    body.erase(std::remove(body.begin(), body.end(), '\n'), body.end());
    auto der = rvi::decode_base64(body);
    if (!der || der->size() != rvi::kEd25519SpkiPrefix.size() + 32 ||
        !std::equal(rvi::kEd25519SpkiPrefix.begin(), rvi::kEd25519SpkiPrefix.end(), der->begin())) {
      return Error(Errc::invalid_argument, "public key: the PEM does not hold an Ed25519 key");
    }
    bytes.assign(der->begin() + rvi::kEd25519SpkiPrefix.size(), der->end());
  } else {
    auto raw = rvi::decode_base64(rvi::strip_one_lf(text));
    if (!raw || raw->size() != 32) {
      return Error(Errc::invalid_argument,
                   "public key: expected the base64 of 32 raw Ed25519 key bytes, or a PEM");
    }
    bytes = std::move(*raw);
  }
  PublicKey key{};
  std::copy(bytes.begin(), bytes.end(), key.begin());
  return key;
}

Result<void> verify_signature(std::string_view manifest, std::string_view signature_text,
                              const PublicKey& key) {
  if (!rvi::ensure_sodium()) {
    return Error(Errc::internal, "libsodium failed to initialise");
  }
  auto sig = rvi::decode_base64(rvi::strip_one_lf(signature_text));
  if (!sig || sig->size() != crypto_sign_BYTES) {
    return Error(Errc::invalid_argument,
                 "signature: expected the base64 of a 64-byte Ed25519 signature on one line");
  }
  if (crypto_sign_verify_detached(sig->data(),
                                  reinterpret_cast<const unsigned char*>(manifest.data()),
                                  manifest.size(), key.data()) != 0) {
    return Error(Errc::permission_denied,
                 "signature: does not match the manifest's bytes and this public key");
  }
  return {};
}

int release_verify(const ReleaseVerifyOptions& options, std::FILE* out, std::FILE* err) {
  const auto fail = [&](int code, const std::string& message) {
    std::fprintf(err, "edgecoder release verify: %s\n", message.c_str());
    if (code == 1) {
      std::fprintf(out, "FAILED: do not trust these files\n");
    }
    return code;
  };

  std::string key_text;
  std::string key_origin = "the built-in release key";
  if (options.key_file) {
    auto text = rvi::read_file(*options.key_file, rvi::kMaxSmallFileBytes);
    if (!text) {
      return fail(2, text.error().detail);
    }
    key_text = std::move(*text);
    key_origin = options.key_file->string();
  } else {
    key_text = std::string(rvi::kReleasePublicKey);
  }
  auto key = parse_public_key(key_text);
  if (!key) {
    return fail(2, key.error().detail + " (" + key_origin + ")");
  }
  auto manifest = rvi::read_file(options.manifest, rvi::kMaxManifestBytes);
  if (!manifest) {
    return fail(2, manifest.error().detail);
  }
  auto signature = rvi::read_file(options.signature, rvi::kMaxSmallFileBytes);
  if (!signature) {
    return fail(2, signature.error().detail);
  }

  if (auto ok = verify_signature(*manifest, *signature, *key); !ok) {
    return fail(1, ok.error().detail);
  }
  std::fprintf(out, "signature: good (%s)\n", key_origin.c_str());
  auto entries = parse_manifest(*manifest);
  if (!entries) {
    return fail(1, entries.error().detail);
  }
  std::fprintf(out, "manifest: canonical, %zu file(s)\n", entries->size());

  if (!options.check_files && !options.require_all_files) {
    std::fprintf(out, "OK\n");
    return 0;
  }
  const std::filesystem::path dir = options.manifest.parent_path();
  bool failed = false;
  for (const auto& entry : *entries) {
    const auto path = dir / entry.filename;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      if (options.require_all_files) {
        std::fprintf(err, "edgecoder release verify: %s: missing\n", entry.filename.c_str());
        failed = true;
      } else {
        std::fprintf(out, "%s: not present, skipped\n", entry.filename.c_str());
      }
      continue;
    }
    auto hash = rvi::sha256_file_hex(path);
    if (!hash) {
      std::fprintf(err, "edgecoder release verify: %s\n", hash.error().detail.c_str());
      failed = true;
    } else if (*hash != entry.sha256_hex) {
      std::fprintf(err, "edgecoder release verify: %s: SHA-256 mismatch\n", entry.filename.c_str());
      failed = true;
    } else {
      std::fprintf(out, "%s: OK\n", entry.filename.c_str());
    }
  }
  if (failed) {
    std::fprintf(out, "FAILED: do not trust these files\n");
    return 1;
  }
  std::fprintf(out, "OK\n");
  return 0;
}

}  // namespace edgecoder::app

// `edgecoder release verify`: checks a release's SHA256SUMS manifest against its detached
// Ed25519 signature and, optionally, the listed files' SHA-256 hashes.
//
// Formats (docs/packaging.md, "Release signing"):
//  - Manifest: canonical `sha256sum` output. Each line is 64 lower-case hex digits, two spaces
//    and a bare file name ([A-Za-z0-9._+~-], not starting with '.'), ending in LF. Lines are
//    sorted by file name in byte order, with no duplicates, no blank lines, no CR, no BOM.
//    A manifest in any other form is rejected even when its signature is valid, so there is
//    exactly one byte sequence a given set of files can be signed as.
//  - Signature: the base64 (standard alphabet, padded) of the 64-byte raw Ed25519 signature
//    over the manifest's exact bytes, optionally followed by one LF. This is what
//    `openssl pkeyutl -sign -rawin -inkey key.pem -in SHA256SUMS | base64 -w0` produces.
//  - Public key: the base64 of the 32 raw key bytes (one line), or an OpenSSL
//    "-----BEGIN PUBLIC KEY-----" PEM file holding an Ed25519 key.
//
// The release public key is a constant compiled into the binary; a build may replace it with
// -DEDGECODER_RELEASE_PUBLIC_KEY="<base64>". The private key never enters the repository.
// Thread-safety: free functions without shared state; safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace edgecoder::app {

using PublicKey = std::array<std::uint8_t, 32>;

struct ManifestEntry {
  std::string sha256_hex;  // 64 lower-case hex digits
  std::string filename;    // bare name, in the manifest's directory
};

// Parses a manifest, insisting on the canonical form described above.
core::Result<std::vector<ManifestEntry>> parse_manifest(std::string_view text);

// Parses a public key file (base64 of 32 bytes, or an Ed25519 SubjectPublicKeyInfo PEM).
core::Result<PublicKey> parse_public_key(std::string_view text);

// The release public key compiled into this binary, base64.
std::string_view release_public_key_base64();

// Verifies `signature_text` (see formats) over the exact bytes of `manifest`.
core::Result<void> verify_signature(std::string_view manifest, std::string_view signature_text,
                                    const PublicKey& key);

struct ReleaseVerifyOptions {
  std::filesystem::path manifest;                 // SHA256SUMS
  std::filesystem::path signature;                // SHA256SUMS.sig
  std::optional<std::filesystem::path> key_file;  // unset = the compiled-in release key
  // Hash every listed file found next to the manifest (absent ones are reported, not failed).
  bool check_files = true;
  // Absent listed files fail the verification (implies check_files).
  bool require_all_files = false;
};

// The verb. Prints one line per check to `out`, problems to `err`. Returns 0 when everything
// checked is authentic, 1 when anything fails verification, 2 for usage errors (an input file
// that cannot be read, an unparsable key file).
int release_verify(const ReleaseVerifyOptions& options, std::FILE* out = stdout,
                   std::FILE* err = stderr);

}  // namespace edgecoder::app

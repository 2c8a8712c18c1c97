// Result<T>: expected failures as values. A closed set of error codes (Errc) and one mapping to
// HTTP status (http_status) so every service answers the same way for the same failure.
// Thread-safety: plain values; safe to copy between threads.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace edgecoder::core {

enum class Errc {
  invalid_argument,   // 400: malformed input, invalid field
  unauthenticated,    // 401
  permission_denied,  // 403
  not_found,          // 404
  conflict,           // 409
  payload_too_large,  // 413
  payment_required,   // 402
  unavailable,        // 503: a dependency (store, model server) cannot be reached
  timeout,            // 504
  internal,           // 500: a bug or an unexpected environment failure
};

// The wire name of an error code ("invalid_argument", ...).
std::string_view errc_name(Errc code);
// The HTTP status an error code maps to.
int http_status(Errc code);

struct Error {
  Errc code = Errc::internal;
  // Machine-readable code for the `error` field of the JSON error shape; empty = errc_name(code).
  std::string wire_code;
  // Human-readable detail; never contains a secret.
  std::string detail;

  Error() = default;
  Error(Errc c, std::string d) : code(c), detail(std::move(d)) {}
  Error(Errc c, std::string wire, std::string d)
      : code(c), wire_code(std::move(wire)), detail(std::move(d)) {}

  std::string_view wire() const { return wire_code.empty() ? errc_name(code) : wire_code; }
};

template <typename T>
class [[nodiscard]] Result : public tl::expected<T, Error> {
 public:
  using tl::expected<T, Error>::expected;
  Result(Error e) : tl::expected<T, Error>(tl::unexpected<Error>(std::move(e))) {}  // NOLINT
};

template <>
class [[nodiscard]] Result<void> : public tl::expected<void, Error> {
 public:
  using tl::expected<void, Error>::expected;
  Result(Error e) : tl::expected<void, Error>(tl::unexpected<Error>(std::move(e))) {}  // NOLINT
};

inline Error make_error(Errc code, std::string detail) { return Error(code, std::move(detail)); }

}  // namespace edgecoder::core

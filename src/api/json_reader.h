// Field-by-field validation of JSON request bodies. A JsonReader reads typed fields from one
// object and remembers the first problem, so a parser reads every field and then returns
// error() — an Errc::invalid_argument with wire code "invalid_request" whose detail names the
// field ("subtasks[2].timeoutMs: expected an integer between 1000 and 3600000"). Unknown fields
// are ignored, as the existing clients expect.
// Thread-safety: a reader is used by one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace edgecoder::api {

// The error every wire parser returns: 400 {"error":"invalid_request","detail":...}.
core::Error invalid_request(std::string detail);

class JsonReader {
 public:
  // `where` prefixes field names in messages ("" for the top level, "subtasks[2]").
  explicit JsonReader(const nlohmann::json& object, std::string where = "");

  bool has(std::string_view key) const;
  // A string of min..max bytes. Absent: `fallback` (or an error when required).
  std::string str(std::string_view key, bool required, std::size_t min, std::size_t max,
                  std::string fallback = "");
  // One of `allowed`. Absent: `fallback`.
  std::string one_of(std::string_view key, const std::vector<std::string_view>& allowed,
                     std::string fallback, bool required = false);
  // An integer in [min, max] (a JSON number with no fraction). Absent: fallback.
  std::int64_t integer(std::string_view key, std::int64_t min, std::int64_t max,
                       std::int64_t fallback, bool required = false);
  std::optional<std::int64_t> opt_integer(std::string_view key, std::int64_t min, std::int64_t max);
  // A non-negative number (integers or fractions); stored as an integer (truncated).
  std::int64_t number(std::string_view key, double min, double max, std::int64_t fallback);
  bool boolean(std::string_view key, bool fallback, bool required = false);
  std::optional<bool> opt_boolean(std::string_view key);
  // An object (or absent: nullopt). `null` counts as absent.
  std::optional<nlohmann::json> object(std::string_view key);
  // An array (or absent: empty with present=false).
  const nlohmann::json* array(std::string_view key, std::size_t max_items, bool required = false);
  // Records a problem found by the caller.
  void fail(std::string_view key, std::string_view problem);

  std::string field(std::string_view key) const;  // "where.key" for messages
  bool ok() const { return !error_.has_value(); }
  const std::optional<core::Error>& error() const { return error_; }

 private:
  const nlohmann::json* get(std::string_view key) const;  // null for absent or JSON null

  const nlohmann::json& object_;
  std::string where_;
  std::optional<core::Error> error_;
};

// A simple identifier: 1..max of [A-Za-z0-9._:@+#/-] (agent ids, task ids, languages, models).
bool is_identifier(std::string_view s, std::size_t max = 128);

}  // namespace edgecoder::api

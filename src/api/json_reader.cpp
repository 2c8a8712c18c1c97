#include "api/json_reader.h"

#include <cmath>

namespace edgecoder::api {

core::Error invalid_request(std::string detail) {
  return core::Error(core::Errc::invalid_argument, "invalid_request", std::move(detail));
}

JsonReader::JsonReader(const nlohmann::json& object, std::string where)
    : object_(object), where_(std::move(where)) {
  if (!object_.is_object()) {
    error_ = invalid_request((where_.empty() ? std::string("body") : where_) +
                             ": expected a JSON object");
  }
}

std::string JsonReader::field(std::string_view key) const {
  return where_.empty() ? std::string(key) : where_ + "." + std::string(key);
}

const nlohmann::json* JsonReader::get(std::string_view key) const {
  if (!object_.is_object()) return nullptr;
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool JsonReader::has(std::string_view key) const { return get(key) != nullptr; }

void JsonReader::fail(std::string_view key, std::string_view problem) {
  if (!error_) error_ = invalid_request(field(key) + ": " + std::string(problem));
}

std::string JsonReader::str(std::string_view key, bool required, std::size_t min, std::size_t max,
                            std::string fallback) {
  const auto* v = get(key);
  if (!v) {
    if (required) fail(key, "is required");
    return fallback;
  }
  if (!v->is_string()) {
    fail(key, "expected a string");
    return fallback;
  }
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() < min || s.size() > max) {
    fail(key, "expected a string of " + std::to_string(min) + ".." + std::to_string(max) +
                  " characters");
    return fallback;
  }
  return s;
}

std::string JsonReader::one_of(std::string_view key, const std::vector<std::string_view>& allowed,
                               std::string fallback, bool required) {
  const auto* v = get(key);
  if (!v) {
    if (required) fail(key, "is required");
    return fallback;
  }
  std::string names;
  for (auto a : allowed) names += (names.empty() ? "" : "|") + std::string(a);
  if (v->is_string()) {
    for (auto a : allowed) {
      if (v->get_ref<const std::string&>() == a) return std::string(a);
    }
  }
  fail(key, "expected one of " + names);
  return fallback;
}

std::int64_t JsonReader::integer(std::string_view key, std::int64_t min, std::int64_t max,
                                 std::int64_t fallback, bool required) {
  const auto* v = get(key);
  if (!v) {
    if (required) fail(key, "is required");
    return fallback;
  }
  std::optional<std::int64_t> value;
  if (v->is_number_integer()) {
    value = v->get<std::int64_t>();
  } else if (v->is_number_float()) {
    double d = v->get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e15) {
      value = static_cast<std::int64_t>(d);
    }
  }
  if (!value || *value < min || *value > max) {
    fail(key, "expected an integer between " + std::to_string(min) + " and " + std::to_string(max));
    return fallback;
  }
  return *value;
}

std::optional<std::int64_t> JsonReader::opt_integer(std::string_view key, std::int64_t min,
                                                    std::int64_t max) {
  if (!has(key)) return std::nullopt;
  return integer(key, min, max, 0, true);
}

std::int64_t JsonReader::number(std::string_view key, double min, double max,
                                std::int64_t fallback) {
  const auto* v = get(key);
  if (!v) return fallback;
  if (!v->is_number() || !std::isfinite(v->get<double>()) || v->get<double>() < min ||
      v->get<double>() > max) {
    fail(key, "expected a number between " + std::to_string(static_cast<std::int64_t>(min)) +
                  " and " + std::to_string(static_cast<std::int64_t>(max)));
    return fallback;
  }
  return static_cast<std::int64_t>(v->get<double>());
}

bool JsonReader::boolean(std::string_view key, bool fallback, bool required) {
  const auto* v = get(key);
  if (!v) {
    if (required) fail(key, "is required");
    return fallback;
  }
  if (!v->is_boolean()) {
    fail(key, "expected true or false");
    return fallback;
  }
  return v->get<bool>();
}

std::optional<bool> JsonReader::opt_boolean(std::string_view key) {
  if (!has(key)) return std::nullopt;
  return boolean(key, false, true);
}

std::optional<nlohmann::json> JsonReader::object(std::string_view key) {
  const auto* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_object()) {
    fail(key, "expected an object");
    return std::nullopt;
  }
  return *v;
}

const nlohmann::json* JsonReader::array(std::string_view key, std::size_t max_items,
                                        bool required) {
  const auto* v = get(key);
  if (!v) {
    if (required) fail(key, "is required");
    return nullptr;
  }
  if (!v->is_array()) {
    fail(key, "expected an array");
    return nullptr;
  }
  if (v->size() > max_items) {
    fail(key, "at most " + std::to_string(max_items) + " items");
    return nullptr;
  }
  return v;
}

bool is_identifier(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '@' || c == '+' || c == '#' || c == '/' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace edgecoder::api

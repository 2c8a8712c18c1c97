// HTTP value helpers: header look-up, query/path parameters, response builders, the JSON error
// shape, JSON body parsing and SSE framing. No Beast here: these are plain string functions.
#include "net/http.h"

#include <charconv>

#include <nlohmann/json.hpp>

namespace edgecoder::net {

namespace {

int http_hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

char http_ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Drops CR and LF so that a value cannot end an SSE field early.
std::string http_single_line(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c != '\r' && c != '\n') {
      out.push_back(c);
    }
  }
  return out;
}

// Serialises without throwing on invalid UTF-8 (nlohmann's default throws type_error 316).
std::string http_dump(const nlohmann::json& body) {
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (http_ascii_lower(a[i]) != http_ascii_lower(b[i])) {
      return false;
    }
  }
  return true;
}

std::optional<std::string_view> find_header(const Headers& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) {
      return std::string_view(value);
    }
  }
  return std::nullopt;
}

std::optional<std::string> Request::query_param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    const std::size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    if (percent_decode(key, true) != name) {
      continue;
    }
    if (eq == std::string_view::npos) {
      return std::string();
    }
    return percent_decode(pair.substr(eq + 1), true);
  }
  return std::nullopt;
}

std::string Request::param(std::string_view name) const {
  auto it = params.find(std::string(name));
  return it == params.end() ? std::string() : it->second;
}

void Response::set_header(std::string name, std::string value) {
  for (auto& [key, existing] : headers) {
    if (iequals(key, name)) {
      existing = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

Response Response::json(int status, const nlohmann::json& body) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = http_dump(body);
  return r;
}

Response Response::text(int status, std::string body, std::string content_type) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", std::move(content_type));
  r.body = std::move(body);
  return r;
}

core::Result<std::int64_t> Request::query_int(std::string_view name, std::int64_t min,
                                              std::int64_t max, std::int64_t fallback) const {
  auto text = query_param(name);
  if (!text) return fallback;
  std::int64_t value = 0;
  const char* end = text->data() + text->size();
  auto [at, ec] = std::from_chars(text->data(), end, value);
  if (text->empty() || ec != std::errc() || at != end || value < min || value > max) {
    return core::Error(core::Errc::invalid_argument, "invalid_request",
                       std::string(name) + ": expected an integer from " + std::to_string(min) +
                           " to " + std::to_string(max));
  }
  return value;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string_view bearer_token(const Request& request) {
  auto auth = request.header("authorization");
  constexpr std::string_view kPrefix = "Bearer ";
  if (!auth || auth->size() <= kPrefix.size() ||
      !iequals(auth->substr(0, kPrefix.size()), kPrefix)) {
    return {};
  }
  return auth->substr(kPrefix.size());
}

Response Response::error(int status, std::string_view code, std::string_view detail) {
  nlohmann::json body = {{"error", code}};
  if (!detail.empty()) {
    body["detail"] = detail;
  }
  return json(status, body);
}

Response Response::error(const core::Error& error) {
  return Response::error(core::http_status(error.code), error.wire(), error.detail);
}

Response Response::sse(std::shared_ptr<StreamBody> body) {
  Response r;
  r.headers.emplace_back("Content-Type", "text/event-stream");
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Accel-Buffering", "no");
  r.stream = std::move(body);
  return r;
}

Response Response::ndjson(std::shared_ptr<StreamBody> body) {
  Response r;
  r.headers.emplace_back("Content-Type", "application/x-ndjson");
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Accel-Buffering", "no");
  r.stream = std::move(body);
  return r;
}

Response Response::upgrade(std::shared_ptr<WebSocketSession> session) {
  Response r;
  r.status = 101;
  r.websocket = std::move(session);
  return r;
}

core::Result<nlohmann::json> parse_json_body(const Request& request, bool require_object) {
  if (request.body.empty()) {
    return core::Error(core::Errc::invalid_argument, "invalid_json",
                       require_object ? "the request body is empty; a JSON object is required"
                                      : "the request body is empty; JSON is required");
  }
  nlohmann::json parsed = nlohmann::json::parse(request.body, nullptr, false);
  if (parsed.is_discarded()) {
    return core::Error(core::Errc::invalid_argument, "invalid_json",
                       "the request body is not valid JSON");
  }
  if (require_object && !parsed.is_object()) {
    return core::Error(
        core::Errc::invalid_argument, "invalid_json",
        std::string("the request body must be a JSON object, not ") + parsed.type_name());
  }
  return parsed;
}

std::string sse_frame(std::string_view data, std::string_view event, std::string_view id) {
  std::string out;
  out.reserve(data.size() + event.size() + id.size() + 24);
  if (!id.empty()) {
    out += "id: ";
    out += http_single_line(id);
    out += '\n';
  }
  if (!event.empty()) {
    out += "event: ";
    out += http_single_line(event);
    out += '\n';
  }
  // Each line of `data` becomes its own data: field; the client joins them with '\n'.
  std::string_view rest = data;
  for (;;) {
    const std::size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    out += "data: ";
    out += line;
    out += '\n';
    if (nl == std::string_view::npos) {
      break;
    }
    rest = rest.substr(nl + 1);
  }
  out += '\n';
  return out;
}

std::string sse_comment(std::string_view text) {
  std::string out = ": ";
  out += http_single_line(text);
  out += "\n\n";
  return out;
}

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = http_hex_value(s[i + 1]);
      const int lo = http_hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

void set_request_target(Request& request, std::string_view target) {
  request.target = std::string(target);
  if (!target.empty() && target.front() != '/') {
    // absolute-form ("http://host/path?q") or "*": keep only the path and query.
    const auto scheme = target.find("://");
    const auto slash =
        scheme == std::string_view::npos ? std::string_view::npos : target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  const auto q = target.find('?');
  request.path = percent_decode(target.substr(0, q));
  request.query = q == std::string_view::npos ? std::string() : std::string(target.substr(q + 1));
}

}  // namespace edgecoder::net

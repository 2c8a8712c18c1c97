// HTTP value types shared by the server, the router and service handlers. Services see only
// these types and asio::awaitable; Boost.Beast stays inside src/net/*.cpp.
// Thread-safety: plain values. A BodyWriter / WebSocket is used only by the coroutine handed it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json_fwd.hpp>

#include "core/result.h"

namespace edgecoder::net {

namespace asio = boost::asio;

// Header fields in arrival order; look-ups are case-insensitive.
using Headers = std::vector<std::pair<std::string, std::string>>;
std::optional<std::string_view> find_header(const Headers& headers, std::string_view name);
bool iequals(std::string_view a, std::string_view b);

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as received: path plus query
  std::string path;    // percent-decoded path without the query
  std::string query;   // raw query string without '?'
  Headers headers;
  std::string body;
  std::map<std::string, std::string> params;  // path parameters bound by the router
  std::string route;                          // the matched pattern ("/tasks/:taskId")
  std::string remote_address;                 // peer IP address
  std::string request_id;                     // x-request-id from the client, else generated

  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
  // Percent-decoded value of the first `name=` query parameter.
  std::optional<std::string> query_param(std::string_view name) const;
  // The query parameter as an integer in [min, max]; `fallback` when absent; an error
  // (invalid_argument, naming the parameter and the range) when it is not such an integer.
  core::Result<std::int64_t> query_int(std::string_view name, std::int64_t min, std::int64_t max,
                                       std::int64_t fallback) const;
  // A path parameter bound by the router; empty when absent.
  std::string param(std::string_view name) const;
};

// `text` with every byte but the RFC 3986 unreserved ones percent-encoded: safe as one path
// segment or query value.
std::string percent_encode(std::string_view text);

// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive); empty when
// there is none.
std::string_view bearer_token(const Request& request);

// Sink for a streamed (chunked) response body. Owned by the connection.
class BodyWriter {
 public:
  virtual ~BodyWriter() = default;
  // Sends `data` as one chunk and flushes it. Returns false once the client has gone or the
  // server is stopping; the producer should then return.
  virtual asio::awaitable<bool> write(std::string data) = 0;
  // Sends `data` as the body's last piece: with the end of the body in the same write where the
  // transport allows (one send instead of two at the close of every stream). The producer
  // returns after it.
  virtual asio::awaitable<bool> write_last(std::string data) { return write(std::move(data)); }
};

// Produces a streamed response body (SSE, NDJSON). run() returns when the body is complete.
class StreamBody {
 public:
  virtual ~StreamBody() = default;
  virtual asio::awaitable<void> run(BodyWriter* out) = 0;
  // True when run() writes before it waits for anything else (the first piece is at hand): the
  // server then sends the response head with that piece, in one send. Otherwise the head goes out
  // first, so that a client sees the answer begin while the stream waits.
  virtual bool writes_at_once() const { return false; }
};

struct WsMessage {
  std::string data;
  bool binary = false;
};

// One WebSocket connection (server or client side).
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  // The next message; an error when the peer closed or the connection failed.
  virtual asio::awaitable<core::Result<WsMessage>> read() = 0;
  virtual asio::awaitable<core::Result<void>> write(WsMessage message) = 0;
  virtual asio::awaitable<void> close() = 0;
};

// Runs an accepted WebSocket connection; the connection closes when run() returns.
class WebSocketSession {
 public:
  virtual ~WebSocketSession() = default;
  virtual asio::awaitable<void> run(WebSocket* ws) = 0;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  // When set, `body` is ignored and the body is streamed with chunked encoding.
  std::shared_ptr<StreamBody> stream;
  // When set in answer to a WebSocket upgrade request, the connection is upgraded.
  std::shared_ptr<WebSocketSession> websocket;

  void set_header(std::string name, std::string value);

  static Response json(int status, const nlohmann::json& body);
  static Response text(int status, std::string body,
                       std::string content_type = "text/plain; charset=utf-8");
  // The one error shape: {"error": "<code>", "detail": "..."}.
  static Response error(int status, std::string_view code, std::string_view detail);
  static Response error(const core::Error& error);
  // text/event-stream, no caching, no proxy buffering.
  static Response sse(std::shared_ptr<StreamBody> body);
  static Response ndjson(std::shared_ptr<StreamBody> body);
  static Response upgrade(std::shared_ptr<WebSocketSession> session);
};

// Parses the body as JSON. Malformed JSON -> Errc::invalid_argument with wire code
// "invalid_json"; `require_object` also rejects non-objects.
core::Result<nlohmann::json> parse_json_body(const Request& request, bool require_object = true);

// One SSE frame: optional `id:` and `event:` lines, `data:` lines (one per line of `data`), blank.
std::string sse_frame(std::string_view data, std::string_view event = {}, std::string_view id = {});
// An SSE comment line, used as a keep-alive.
std::string sse_comment(std::string_view text);

// Fills request.target, .path (percent-decoded) and .query from a request target in origin form
// ("/p?q") or absolute form ("http://host/p?q"; only the path and query are kept).
void set_request_target(Request& request, std::string_view target);

std::string percent_decode(std::string_view s, bool plus_is_space = false);

}  // namespace edgecoder::net

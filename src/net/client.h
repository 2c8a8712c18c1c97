// HttpClient: HTTP/1.1 client over TCP or TLS with a keep-alive connection pool, certificate and
// host-name verification with SNI, connect / first-byte / total timeouts, and streamed response
// bodies (for SSE and NDJSON, see stream_parsers.h). Also a WebSocket client.
// Thread-safety: an HttpClient may be used by concurrent coroutines on its executor; the pool is
// guarded by a mutex. A ClientStream is used by one coroutine at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "core/result.h"
#include "net/http.h"

namespace edgecoder::net {

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds first_byte_timeout{30'000};  // request sent -> response head
  std::chrono::milliseconds total_timeout{300'000};      // whole exchange incl. streamed body
  // Extra CA file (PEM) trusted in addition to the system store; tests use a test CA.
  std::optional<std::filesystem::path> ca_file;
  bool verify_peer = true;  // turning this off is for explicit operator opt-in only
  std::size_t max_idle_per_host = 8;
  std::chrono::milliseconds idle_ttl{30'000};  // pooled connections older than this are dropped
  std::size_t max_response_bytes = 64 * 1024 * 1024;  // buffered (non-stream) responses
};

struct ClientRequest {
  std::string method = "GET";
  std::string url;  // http:// or https://, with optional port, path and query
  Headers headers;
  std::string body;
  // Per-request overrides of the client's timeouts.
  std::optional<std::chrono::milliseconds> first_byte_timeout;
  std::optional<std::chrono::milliseconds> total_timeout;
};

struct ClientResponse {
  int status = 0;
  Headers headers;
  std::string body;
  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

// A response whose body is read incrementally.
class ClientStream {
 public:
  virtual ~ClientStream() = default;
  virtual int status() const = 0;
  virtual const Headers& headers() const = 0;
  // The next piece of the body as it arrives; nullopt at the end of the body. Errors:
  // Errc::timeout (total timeout), Errc::unavailable (connection lost).
  virtual asio::awaitable<core::Result<std::optional<std::string>>> next() = 0;
};

// Error codes: Errc::invalid_argument (bad URL), Errc::unavailable (connect/TLS/IO failure,
// detail says which), Errc::timeout (which timeout in detail).
class HttpClient {
 public:
  HttpClient(asio::any_io_executor executor, ClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  asio::awaitable<core::Result<ClientResponse>> request(ClientRequest request);
  asio::awaitable<core::Result<std::unique_ptr<ClientStream>>> stream(ClientRequest request);
  asio::awaitable<core::Result<std::unique_ptr<WebSocket>>> websocket(std::string url,
                                                                      Headers headers);
  // Connections currently idle in the pool (for tests).
  std::size_t idle_connections() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Blocking convenience for CLI verbs and tests: runs the request on a private io_context.
core::Result<ClientResponse> fetch(ClientRequest request, ClientOptions options = {});

}  // namespace edgecoder::net

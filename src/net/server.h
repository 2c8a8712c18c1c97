// HttpServer: HTTP/1.1 (optionally TLS) on one listening socket, serving a Router. Keep-alive,
// a request body limit (413), a header timeout and a body timeout against slow clients, an idle
// timeout for keep-alive connections, a connection limit (503 and close above it), CORS for the
// desktop app origins (preflight answered before any middleware/auth), chunked streaming
// responses, WebSocket upgrade, per-route metrics, and graceful drain on stop.
// Thread-safety: listen()/start()/shutdown() from one thread; connections run on strands of the
// io_context (or of the contexts given to spread_connections()), which may be run by several
// threads — handlers must be thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "core/config.h"
#include "core/metrics.h"
#include "core/result.h"
#include "net/router.h"

namespace edgecoder::net {

// A WebSocket session that sets its own keep-alive: the server pings the peer after
// ping_interval() without a frame from it and drops the connection when nothing came back within
// as long again (other sessions: a ping after 150 s). The peer's pings are always answered.
// Both happen while run() has a read() pending.
class PingingWebSocketSession : public WebSocketSession {
 public:
  virtual std::chrono::milliseconds ping_interval() const = 0;
};

struct TlsFiles {
  std::filesystem::path cert_file;  // PEM chain
  std::filesystem::path key_file;   // PEM private key
};

struct ServerOptions {
  std::string name = "http";  // service name for logs and metrics labels
  std::string bind_address = "127.0.0.1";
  std::uint16_t port = 0;  // 0 = ephemeral (tests)
  core::HttpLimits limits;
  std::optional<TlsFiles> tls;
  // Origins answered with CORS headers (the desktop app's).
  std::vector<std::string> cors_origins = {"tauri://localhost", "https://tauri.localhost",
                                           "http://localhost:1420"};
};

class HttpServer {
 public:
  // `metrics` may be null (no request metrics). Both `io` and `metrics` must outlive the server.
  HttpServer(asio::io_context& io, ServerOptions options, Router router,
             core::metrics::Registry* metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens now, so that a busy port is reported before anything starts. Returns the
  // bound port. Errors: Errc::conflict when the address is in use, Errc::invalid_argument for a
  // bad address or TLS files.
  core::Result<std::uint16_t> listen();
  // Serves accepted connections on these io_contexts, round-robin, instead of the one given to
  // the constructor. Each must be run by exactly one thread: a connection then never changes
  // threads (no strand, no cross-thread wake-up per request). Call before start(); the
  // contexts must outlive the server.
  void spread_connections(std::vector<asio::io_context*> contexts);
  // The routes served. Routes may be added until start(), so a node can bind every port first
  // and only then open the services behind them.
  Router& router();

  // Starts accepting connections on the io_context.
  void start();
  // Stops accepting, closes idle keep-alive connections, and lets requests in flight finish
  // (their responses carry Connection: close). Streams and WebSockets are told to stop.
  void shutdown();
  // Connections still open.
  std::size_t active_connections() const;
  std::uint16_t port() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace edgecoder::net

// HttpServer implementation on Boost.Beast/Asio coroutines.
//
// Shape: one accept loop per listener (on its own strand) spawns one coroutine per connection,
// either on a fresh strand (the io_context may be run by several threads) or, with
// spread_connections(), on one of several single-threaded io_contexts in turn. Each connection
// serves its requests in a loop (keep-alive); its state lives in a ServerConnection object owned
// by that coroutine. shutdown() reaches the connections through a registry (guarded by a mutex)
// and posts to their executors.
//
// Policies worth knowing:
// - Timeouts: the whole request head must arrive within limits.header_timeout (counted from
//   accept for the first request, from the first byte for later ones), the body within
//   body_timeout, and a keep-alive connection may sit idle for idle_timeout. A timed-out
//   connection is closed without a response.
// - Above limits.max_connections a new plain-TCP connection is answered 503
//   {"error":"overloaded"} with Connection: close; a TLS connection is closed at once (answering
//   would cost a handshake).
// - 400 (malformed), 413 (body limit) and 431 (head too large) close the connection after the
//   answer; the close lingers briefly so that the client can read the answer.
// - Normal responses are serialised by hand into a per-connection buffer (one write, no
//   per-header allocations). Streamed responses are chunked by hand: each piece goes out in one
//   gather write, tried first as a non-blocking send (only what the socket cannot take yet
//   waits, under the write timeout); a stream whose first piece is at hand sends the head with
//   it, and its last piece carries the end of the body.
#include "net/server.h"

#include <array>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <mutex>
#include <random>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "core/log.h"
#include "net/detail_io.h"
#include "net/detail_tls.h"

namespace edgecoder::net {

namespace detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

constexpr auto kServerTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kServerReadChunk = 4096;           // bytes per idle read
constexpr std::uint32_t kServerHeaderLimit = 32 * 1024;  // bytes of request head
constexpr std::size_t kServerMetricsCacheSize = 128;     // per-connection metric pointer cache
constexpr std::size_t kServerMaxRejecting = 64;          // concurrent 503 answers in flight
constexpr std::chrono::milliseconds kServerLinger{1000};
constexpr std::chrono::milliseconds kServerTlsShutdown{1000};

class ServerConnectionBase : public std::enable_shared_from_this<ServerConnectionBase> {
 public:
  virtual ~ServerConnectionBase() = default;
  // Runs on the connection's strand: close if idle, tell streams and WebSockets to stop.
  virtual void on_shutdown() = 0;
  virtual const asio::any_io_executor& executor() const = 0;
};

// The shared state of one listener; HttpServer::Impl is this. Connections and the accept loop
// hold it by shared_ptr so it outlives them.
struct ServerCore {
  ServerCore(asio::io_context& io_context, ServerOptions opts, Router r,
             core::metrics::Registry* registry)
      : io(io_context),
        options(std::move(opts)),
        router(std::move(r)),
        metrics(registry),
        acceptor_strand(asio::make_strand(io_context)),
        acceptor(acceptor_strand) {
    if (metrics != nullptr) {
      connections_gauge =
          &metrics->gauge("edgecoder_http_connections_active", "Open HTTP connections per listener",
                          {{"service", options.name}});
    }
    std::random_device rd;
    rid_prefix = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    const std::string body = R"({"error":"overloaded","detail":"too many open connections"})";
    overloaded_response =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  // Constant after construction (tls, port: after listen(), before start(); router: routes
  // may be added until start()).
  asio::io_context& io;
  const ServerOptions options;
  Router router;
  core::metrics::Registry* const metrics;
  core::metrics::Gauge* connections_gauge = nullptr;
  std::shared_ptr<asio::ssl::context> tls;
  std::uint16_t port = 0;
  std::uint64_t rid_prefix = 0;
  std::string overloaded_response;

  asio::any_io_executor acceptor_strand;
  tcp::acceptor acceptor;                 // on acceptor_strand once started
  std::vector<asio::io_context*> spread;  // set before start(); empty = serve on `io`
  std::size_t next_context = 0;           // on acceptor_strand

  // A strand when `io` may be run by several threads; a spread context is run by one thread,
  // so its plain executor already serialises the connection.
  asio::any_io_executor executor_for_next_connection() {
    if (spread.empty()) {
      return asio::make_strand(io);
    }
    return spread[next_context++ % spread.size()]->get_executor();
  }

  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> active{0};     // connections being served (not 503 answers)
  std::atomic<std::size_t> rejecting{0};  // 503 answers in flight
  std::atomic<std::uint64_t> rid_counter{0};

  std::mutex mu;
  std::unordered_set<ServerConnectionBase*> connections;  // guarded by mu

  std::string next_request_id() {
    char buf[40];
    const std::uint64_t n = rid_counter.fetch_add(1, std::memory_order_relaxed);
    const int len =
        std::snprintf(buf, sizeof(buf), "%016llx-%llx", static_cast<unsigned long long>(rid_prefix),
                      static_cast<unsigned long long>(n));
    return std::string(buf, static_cast<std::size_t>(len));
  }
};

void server_spawn_done(std::exception_ptr e) {
  if (!e) {
    return;
  }
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    core::log::error("net", "connection_exception", {{"what", ex.what()}});
  } catch (...) {
    core::log::error("net", "connection_exception", {{"what", "unknown"}});
  }
}

// A client-supplied request id is reused only when short and made of safe characters, so that
// it can go into logs and headers verbatim.
bool server_sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

// Access-Control-Request-Headers is echoed only when it is a plain token list.
bool server_sane_header_list(std::string_view s) {
  if (s.size() > 1024) {
    return false;
  }
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == ',' || c == ' ';
    if (!ok) {
      return false;
    }
  }
  return true;
}

bool server_header_name_ok(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    if (c <= ' ' || c >= 127 || c == ':') {
      return false;
    }
  }
  return true;
}

void server_append_value(std::string& out, std::string_view value) {
  for (char c : value) {
    out.push_back((c == '\r' || c == '\n' || c == '\0') ? ' ' : c);
  }
}

void server_append_number(std::string& out, std::size_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), n);
  out.append(buf, end);
}

template <class Stream>
class ServerConnection;

template <class Stream>
class ServerBodyWriter final : public BodyWriter {
 public:
  ServerBodyWriter(ServerConnection<Stream>* conn, bool chunked) : conn_(conn), chunked_(chunked) {}
  asio::awaitable<bool> write(std::string data) override { return send(std::move(data), false); }
  asio::awaitable<bool> write_last(std::string data) override {
    return send(std::move(data), true);
  }
  // The response head, sent with the first piece instead of on its own.
  void hold_head(std::string head) { head_ = std::move(head); }
  // Sends the held head alone. Like finish(), it goes out while the server is stopping.
  asio::awaitable<bool> flush_head() { return send(std::string(), false, true); }
  // Sends what the producer left unsent: the held head and the end of a chunked body. Unlike
  // write(), this goes out while the server is stopping (the client sees a body that ended).
  asio::awaitable<bool> finish() {
    if (broken_ || ended_) co_return !broken_;
    auto call = send(std::string(), chunked_, true);
    co_return co_await std::move(call);
  }
  bool broken() const { return broken_; }

 private:
  asio::awaitable<bool> send(std::string data, bool last, bool stopping_ok = false);

  ServerConnection<Stream>* conn_;
  const bool chunked_;  // false for HTTP/1.0 clients: raw bytes, then close
  std::string head_;    // held response head, empty once sent
  bool broken_ = false;
  bool ended_ = false;  // the last chunk went out
};

template <class Stream>
class ServerWebSocket final : public WebSocket {
 public:
  explicit ServerWebSocket(ServerConnection<Stream>* conn) : conn_(conn) {}
  asio::awaitable<core::Result<WsMessage>> read() override;
  asio::awaitable<core::Result<void>> write(WsMessage message) override;
  asio::awaitable<void> close() override;

 private:
  ServerConnection<Stream>* conn_;
};

template <class Stream>
class ServerConnection final : public ServerConnectionBase {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  ServerConnection(std::shared_ptr<ServerCore> core, Stream stream, std::string remote)
      : core_(std::move(core)),
        stream_(std::move(stream)),
        executor_(stream_.get_executor()),
        remote_(std::move(remote)) {
    core_->active.fetch_add(1);
    if (core_->connections_gauge != nullptr) {
      core_->connections_gauge->add(1);
    }
    std::lock_guard lock(core_->mu);
    core_->connections.insert(this);
  }

  ~ServerConnection() override {
    {
      std::lock_guard lock(core_->mu);
      core_->connections.erase(this);
    }
    if (core_->connections_gauge != nullptr) {
      core_->connections_gauge->add(-1);
    }
    core_->active.fetch_sub(1);
  }

  static asio::awaitable<void> run(std::shared_ptr<ServerConnection> self) {
    try {
      co_await self->serve();
    } catch (const std::exception& e) {
      core::log::error("net", "connection_exception",
                       {{"service", self->core_->options.name}, {"what", e.what()}});
    }
    self->close_socket();
  }

  void on_shutdown() override {
    if (phase_ == Phase::waiting) {
      beast::error_code ec;
      lowest().socket().cancel(ec);
    } else if (phase_ == Phase::websocket && ws_ && !ws_closing_) {
      ws_closing_ = true;
      ws_->async_close(websocket::close_code::going_away,
                       [self = shared_from_this()](beast::error_code) {});
    }
  }

  const asio::any_io_executor& executor() const override { return executor_; }

 private:
  friend class ServerBodyWriter<Stream>;
  friend class ServerWebSocket<Stream>;

  enum class Phase { starting, waiting, reading, handling, streaming, websocket, closed };

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  std::chrono::milliseconds write_timeout() const {
    return std::max(core_->options.limits.body_timeout, core_->options.limits.idle_timeout);
  }

  void close_socket() {
    if (phase_ == Phase::websocket || phase_ == Phase::closed) {
      phase_ = Phase::closed;
      return;  // the WebSocket owns (and has torn down) the socket
    }
    phase_ = Phase::closed;
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
  }

  asio::awaitable<void> serve() {
    const auto& limits = core_->options.limits;
    // Counted from accept: TLS handshake, then the first request head.
    lowest().expires_after(limits.header_timeout);
    if constexpr (kTls) {
      auto [ec] = co_await stream_.async_handshake(asio::ssl::stream_base::server, kServerTuple);
      if (ec) {
        co_return;
      }
      lowest().expires_after(limits.header_timeout);
    }
    bool first = true;
    for (;;) {
      phase_ = Phase::waiting;
      if (core_->stopping.load()) {
        co_return;
      }
      if (buffer_.size() == 0) {
        if (!first) {
          lowest().expires_after(limits.idle_timeout);
        }
        auto [ec, n] =
            co_await stream_.async_read_some(buffer_.prepare(kServerReadChunk), kServerTuple);
        if (ec) {
          co_return;
        }
        buffer_.commit(n);
      }
      phase_ = Phase::reading;
      if (!first) {
        lowest().expires_after(limits.header_timeout);
      }
      first = false;
      parser_.emplace();
      parser_->header_limit(kServerHeaderLimit);
      parser_->body_limit(limits.max_body_bytes);
      {
        auto [ec, n] = co_await http::async_read_header(stream_, buffer_, *parser_, kServerTuple);
        if (ec) {
          co_await on_read_error(ec);
          co_return;
        }
      }
      if (!parser_->is_done()) {
        auto expect = parser_->get()[http::field::expect];
        if (iequals(expect, "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          auto [ec, n] = co_await asio::async_write(
              stream_, asio::buffer(kContinue.data(), kContinue.size()), kServerTuple);
          if (ec) {
            co_return;
          }
        }
        lowest().expires_after(limits.body_timeout);
        auto [ec, n] = co_await http::async_read(stream_, buffer_, *parser_, kServerTuple);
        if (ec) {
          co_await on_read_error(ec);
          co_return;
        }
      }
      lowest().expires_never();
      phase_ = Phase::handling;
      const bool keep = co_await handle_request();
      if (!keep || core_->stopping.load()) {
        co_await graceful_close();
        co_return;
      }
    }
  }

  // A request that could not be read: answer when it makes sense, then close.
  asio::awaitable<void> on_read_error(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      co_await answer_and_close(413, "payload_too_large",
                                "the request body exceeds " +
                                    std::to_string(core_->options.limits.max_body_bytes) +
                                    " bytes");
    } else if (ec == http::error::header_limit) {
      co_await answer_and_close(431, "headers_too_large", "the request head is too large");
    } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      co_await answer_and_close(400, "bad_request", "malformed HTTP request: " + ec.message());
    }
    // Otherwise: the peer closed, or a timeout closed the socket, or a TLS/IO error.
  }

  asio::awaitable<void> answer_and_close(int status, std::string code, std::string detail) {
    Response r = Response::error(status, code, detail);
    const std::string rid = core_->next_request_id();
    r.headers.emplace_back("x-request-id", rid);
    serialize_head(r, /*keep_alive=*/false, /*http10=*/false);
    lowest().expires_after(kServerLinger);
    std::array<asio::const_buffer, 2> bufs = {asio::buffer(out_), asio::buffer(r.body)};
    auto [ec, n] = co_await asio::async_write(stream_, bufs, kServerTuple);
    record("OTHER", "unmatched", status, std::chrono::steady_clock::now(), rid);
    if (ec) {
      co_return;
    }
    if constexpr (kTls) {
      co_await graceful_close();
    } else {
      // Half-close, then drain what the client still sends, so the kernel does not answer its
      // unread bytes with a reset that would destroy our answer in flight.
      beast::error_code sec;
      lowest().socket().shutdown(tcp::socket::shutdown_send, sec);
      lowest().expires_after(kServerLinger);
      std::array<char, 4096> sink;
      for (;;) {
        auto [rec, rn] = co_await lowest().async_read_some(asio::buffer(sink), kServerTuple);
        if (rec) {
          break;
        }
      }
    }
  }

  asio::awaitable<void> graceful_close() {
    if (ws_) {
      co_return;  // stream_ was moved into the WebSocket, which tears the connection down
    }
    if constexpr (kTls) {
      lowest().expires_after(kServerTlsShutdown);
      auto [ec] = co_await stream_.async_shutdown(kServerTuple);
      (void)ec;
    }
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  // How a response's body is delimited on the wire.
  enum class Framing { content_length, chunked, until_close };

  // Serialises the status line and headers into out_. Content-Length, Transfer-Encoding and
  // Connection are the server's; a handler asking for "Connection: close" gets it.
  void serialize_head(const Response& r, bool keep_alive, bool http10,
                      Framing framing = Framing::content_length) {
    int status = r.status;
    if (status < 100 || status > 999) {
      status = 500;
    }
    out_.clear();
    out_ += "HTTP/1.1 ";
    server_append_number(out_, static_cast<std::size_t>(status));
    out_ += ' ';
    const auto known = http::int_to_status(static_cast<unsigned>(status));
    out_ += known == http::status::unknown ? std::string_view("Unknown")
                                           : std::string_view(http::obsolete_reason(known));
    out_ += "\r\n";
    for (const auto& [name, value] : r.headers) {
      if (!server_header_name_ok(name) || iequals(name, "content-length") ||
          iequals(name, "transfer-encoding") || iequals(name, "connection")) {
        continue;
      }
      out_ += name;
      out_ += ": ";
      server_append_value(out_, value);
      out_ += "\r\n";
    }
    const bool bodyless = status < 200 || status == 204 || status == 304;
    if (framing == Framing::chunked) {
      out_ += "Transfer-Encoding: chunked\r\n";
    } else if (framing == Framing::content_length && !bodyless) {
      out_ += "Content-Length: ";
      server_append_number(out_, r.body.size());
      out_ += "\r\n";
    }
    if (!keep_alive) {
      out_ += "Connection: close\r\n";
    } else if (http10) {
      out_ += "Connection: keep-alive\r\n";
    }
    out_ += "\r\n";
  }

  void record(std::string_view method, std::string_view route, int status,
              std::chrono::steady_clock::time_point started, std::string_view rid) {
    const auto elapsed = std::chrono::steady_clock::now() - started;
    if (core_->metrics != nullptr) {
      const std::string_view method_label =
          http::string_to_verb(method) == http::verb::unknown ? std::string_view("OTHER") : method;
      key_.assign(method_label);
      key_ += '\x1f';
      key_ += route;
      key_ += '\x1f';
      server_append_number(key_, static_cast<std::size_t>(status));
      auto it = counters_.find(key_);
      core::metrics::Counter* counter = nullptr;
      if (it != counters_.end()) {
        counter = it->second;
      } else {
        counter =
            &core_->metrics->counter("edgecoder_http_requests_total", "HTTP requests answered",
                                     {{"service", core_->options.name},
                                      {"method", std::string(method_label)},
                                      {"route", std::string(route)},
                                      {"code", std::to_string(status)}});
        if (counters_.size() < kServerMetricsCacheSize) {
          counters_.emplace(key_, counter);
        }
      }
      counter->inc();
      key_.assign(route);
      auto hit = histograms_.find(key_);
      core::metrics::Histogram* histogram = nullptr;
      if (hit != histograms_.end()) {
        histogram = hit->second;
      } else {
        histogram = &core_->metrics->histogram(
            "edgecoder_http_request_duration_seconds", "HTTP request handling time",
            {{"service", core_->options.name}, {"route", std::string(route)}});
        if (histograms_.size() < kServerMetricsCacheSize) {
          histograms_.emplace(key_, histogram);
        }
      }
      histogram->observe(std::chrono::duration<double>(elapsed).count());
    }
    if (core::log::enabled(core::log::Level::debug)) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
      core::log::debug("net", "http_access",
                       {{"service", core_->options.name},
                        {"method", method},
                        {"route", route},
                        {"status", status},
                        {"ms", static_cast<long long>(ms)},
                        {"rid", rid}});
    }
  }

  bool cors_allowed(std::string_view origin) const {
    for (const auto& o : core_->options.cors_origins) {
      if (o == origin) {
        return true;
      }
    }
    return false;
  }

  // Serves the request in parser_. Returns whether the connection may be kept alive.
  asio::awaitable<bool> handle_request() {
    const auto started = std::chrono::steady_clock::now();
    auto& msg = parser_->get();
    const bool http10 = msg.version() < 11;
    bool keep = msg.keep_alive();
    const bool upgrade = websocket::is_upgrade(msg);

    Request req;
    req.method = std::string(msg.method_string());
    set_request_target(req, msg.target());
    req.headers.reserve(16);
    for (const auto& field : msg) {
      req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    req.body = std::move(msg.body());
    req.remote_address = remote_;
    {
      auto rid = req.header("x-request-id");
      req.request_id =
          rid && server_sane_request_id(*rid) ? std::string(*rid) : core_->next_request_id();
    }
    const std::string method = req.method;
    const std::string rid = req.request_id;
    std::string origin;
    if (auto o = req.header("origin"); o && cors_allowed(*o)) {
      origin = std::string(*o);
    }

    Response resp;
    std::string route = "unmatched";
    if (!origin.empty() && req.method == "OPTIONS" && req.header("access-control-request-method")) {
      // CORS preflight: answered here, before any middleware (authentication) runs.
      route = "cors_preflight";
      resp.status = 204;
      resp.headers.emplace_back("Access-Control-Allow-Methods",
                                "GET, POST, PUT, PATCH, DELETE, OPTIONS");
      if (auto h = req.header("access-control-request-headers"); h && server_sane_header_list(*h)) {
        resp.headers.emplace_back("Access-Control-Allow-Headers", std::string(*h));
      }
      resp.headers.emplace_back("Access-Control-Max-Age", "600");
    } else {
      try {
        resp = co_await core_->router.dispatch(std::move(req), &route);
      } catch (const std::exception& e) {
        core::log::error("net", "dispatch_exception", {{"route", route}, {"what", e.what()}});
        resp = Response::error(500, "internal", "the server failed to handle the request");
      }
    }

    resp.set_header("x-request-id", rid);
    if (!origin.empty()) {
      resp.set_header("Access-Control-Allow-Origin", origin);
      resp.set_header("Vary", "Origin");
      resp.set_header("Access-Control-Allow-Credentials", "true");
      resp.set_header("Access-Control-Expose-Headers", "x-request-id");
    }
    if (auto c = find_header(resp.headers, "connection"); c && iequals(*c, "close")) {
      keep = false;
    }
    if (core_->stopping.load()) {
      keep = false;
    }

    if (resp.websocket) {
      if (upgrade) {
        record(method, route, 101, started, rid);
        co_await run_websocket(std::move(resp.websocket));
        co_return false;
      }
      Response r = Response::error(426, "upgrade_required", "this route needs a WebSocket");
      r.headers = std::move(resp.headers);
      r.set_header("Content-Type", "application/json");
      r.set_header("Upgrade", "websocket");
      resp = std::move(r);
    }
    if (resp.stream && method != "HEAD") {
      const int status = resp.status;
      const bool ok = co_await run_stream(std::move(resp), keep, http10);
      record(method, route, status, started, rid);
      co_return ok&& keep && !http10;
    }

    serialize_head(resp, keep, http10);
    const bool bodyless =
        method == "HEAD" || resp.status < 200 || resp.status == 204 || resp.status == 304;
    lowest().expires_after(write_timeout());
    beast::error_code ec;
    if (bodyless || resp.body.empty()) {
      auto [wec, n] = co_await asio::async_write(stream_, asio::buffer(out_), kServerTuple);
      ec = wec;
    } else {
      std::array<asio::const_buffer, 2> bufs = {asio::buffer(out_), asio::buffer(resp.body)};
      auto [wec, n] = co_await asio::async_write(stream_, bufs, kServerTuple);
      ec = wec;
    }
    lowest().expires_never();
    record(method, route, resp.status, started, rid);
    co_return !ec && keep;
  }

  // Streams resp.stream with chunked encoding (raw until close for HTTP/1.0). Returns false
  // when the connection must close.
  asio::awaitable<bool> run_stream(Response resp, bool keep, bool http10) {
    if (http::int_to_status(static_cast<unsigned>(resp.status)) == http::status::unknown) {
      resp.status = 500;
    }
    const bool chunked = !http10;
    serialize_head(resp, keep && chunked, false, chunked ? Framing::chunked : Framing::until_close);
    ServerBodyWriter<Stream> writer(this, chunked);
    writer.hold_head(out_);
    if (!(chunked && resp.stream->writes_at_once())) {
      // The head goes out now, so that a client sees the answer begin while the stream waits.
      auto head = writer.flush_head();
      if (!co_await std::move(head)) {
        co_return false;
      }
    }
    phase_ = Phase::streaming;
    try {
      co_await resp.stream->run(&writer);
    } catch (const std::exception& e) {
      core::log::error("net", "stream_exception",
                       {{"service", core_->options.name}, {"what", e.what()}});
      co_return false;  // the body cannot be completed; closing tells the client
    }
    auto finish = writer.finish();
    if (!co_await std::move(finish)) {
      co_return false;
    }
    phase_ = Phase::handling;
    co_return chunked;
  }

  asio::awaitable<void> run_websocket(std::shared_ptr<WebSocketSession> session) {
    lowest().expires_never();
    phase_ = Phase::websocket;
    ws_.emplace(std::move(stream_));
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    const auto* pinging = dynamic_cast<const PingingWebSocketSession*>(session.get());
    if (const auto ping = pinging ? pinging->ping_interval() : std::chrono::milliseconds(0);
        ping.count() > 0) {
      timeouts.idle_timeout = 2 * ping;  // Beast pings at half the idle timeout
      timeouts.keep_alive_pings = true;
    }
    ws_->set_option(timeouts);
    ws_->read_message_max(core_->options.limits.max_body_bytes);
    {
      auto [ec] = co_await ws_->async_accept(parser_->get(), kServerTuple);
      if (ec) {
        co_return;
      }
    }
    ServerWebSocket<Stream> adapter(this);
    try {
      co_await session->run(&adapter);
    } catch (const std::exception& e) {
      core::log::error("net", "websocket_exception",
                       {{"service", core_->options.name}, {"what", e.what()}});
    }
    if (!ws_closing_) {
      ws_closing_ = true;
      auto [ec] = co_await ws_->async_close(websocket::close_code::normal, kServerTuple);
      (void)ec;
    }
  }

  const std::shared_ptr<ServerCore> core_;
  // Everything below is used only on the connection's strand.
  Stream stream_;  // moved into ws_ on upgrade
  const asio::any_io_executor executor_;
  Phase phase_ = Phase::starting;
  beast::flat_buffer buffer_;  // reused across requests
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string out_;           // serialised response head, reused
  const std::string remote_;  // the peer's address, from accept
  std::optional<websocket::stream<Stream>> ws_;
  bool ws_closing_ = false;
  std::string key_;  // scratch for the metric caches
  std::unordered_map<std::string, core::metrics::Counter*> counters_;
  std::unordered_map<std::string, core::metrics::Histogram*> histograms_;
};

template <class Stream>
asio::awaitable<bool> ServerBodyWriter<Stream>::send(std::string data, bool last,
                                                     bool stopping_ok) {
  if (broken_ || ended_ || (!stopping_ok && conn_->core_->stopping.load())) {
    co_return false;
  }
  if (data.empty() && !(last && chunked_) && head_.empty()) {
    co_return true;  // an empty chunk would end the body
  }
  // One gather write: [held head] [chunk size, data, CRLF] [last chunk].
  char size_line[24] = {};
  std::array<asio::const_buffer, 5> out;
  out[0] = asio::buffer(head_);
  if (chunked_) {
    if (!data.empty()) {
      const int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
      out[1] = asio::buffer(size_line, static_cast<std::size_t>(n));
      out[2] = asio::buffer(data);
      out[3] = asio::buffer("\r\n", 2);
    }
    if (last) {
      out[4] = asio::buffer("0\r\n\r\n", 5);
      ended_ = true;
    }
  } else {
    out[2] = asio::buffer(data);
  }
  // A plain connection first tries to send it all now: a client that keeps up takes every piece
  // at once, and a streamed token then costs one system call, not a timer and a completion.
  std::size_t sent = 0;
  if constexpr (!ServerConnection<Stream>::kTls) {
    const auto now = send_now(conn_->lowest().socket().native_handle(), out);
    if (!now) {
      broken_ = true;
      co_return false;
    }
    sent = *now;
  }
  beast::buffers_suffix<std::array<asio::const_buffer, 5>> rest(out);
  rest.consume(sent);
  if (beast::buffer_bytes(rest) > 0) {
    conn_->lowest().expires_after(conn_->write_timeout());
    auto [ec, n] = co_await asio::async_write(conn_->stream_, rest, kServerTuple);
    conn_->lowest().expires_never();
    if (ec) {
      broken_ = true;
      co_return false;
    }
  }
  head_.clear();
  co_return true;
}

template <class Stream>
asio::awaitable<core::Result<WsMessage>> ServerWebSocket<Stream>::read() {
  beast::flat_buffer buf;
  auto [ec, n] = co_await conn_->ws_->async_read(buf, kServerTuple);
  if (ec) {
    if (ec == websocket::error::closed) {
      co_return core::Error(core::Errc::unavailable, "websocket_closed",
                            "the WebSocket was closed");
    }
    co_return core::Error(core::Errc::unavailable, "websocket_error",
                          "WebSocket read failed: " + ec.message());
  }
  WsMessage m;
  m.data = beast::buffers_to_string(buf.data());
  m.binary = conn_->ws_->got_binary();
  co_return m;
}

template <class Stream>
asio::awaitable<core::Result<void>> ServerWebSocket<Stream>::write(WsMessage message) {
  if (conn_->ws_closing_) {
    co_return core::Error(core::Errc::unavailable, "websocket_closed", "the WebSocket is closing");
  }
  conn_->ws_->binary(message.binary);
  auto [ec, n] = co_await conn_->ws_->async_write(asio::buffer(message.data), kServerTuple);
  if (ec) {
    co_return core::Error(core::Errc::unavailable, "websocket_error",
                          "WebSocket write failed: " + ec.message());
  }
  co_return core::Result<void>();
}

template <class Stream>
asio::awaitable<void> ServerWebSocket<Stream>::close() {
  if (conn_->ws_closing_) {
    co_return;
  }
  conn_->ws_closing_ = true;
  auto [ec] = co_await conn_->ws_->async_close(websocket::close_code::normal, kServerTuple);
  (void)ec;
}

// Answers 503 to a connection above the limit, then closes it after a short linger.
asio::awaitable<void> server_reject(std::shared_ptr<ServerCore> core, tcp::socket socket) {
  PlainStream stream(std::move(socket));
  stream.expires_after(kServerLinger);
  auto [ec, n] =
      co_await asio::async_write(stream, asio::buffer(core->overloaded_response), kServerTuple);
  if (!ec) {
    beast::error_code sec;
    stream.socket().shutdown(tcp::socket::shutdown_send, sec);
    std::array<char, 4096> sink;
    for (;;) {
      auto [rec, rn] = co_await stream.async_read_some(asio::buffer(sink), kServerTuple);
      if (rec) {
        break;
      }
    }
  }
  beast::error_code cec;
  stream.socket().close(cec);
  core->rejecting.fetch_sub(1);
}

asio::awaitable<void> server_accept_loop(std::shared_ptr<ServerCore> core) {
  for (;;) {
    asio::any_io_executor executor = core->executor_for_next_connection();
    tcp::endpoint peer;
    auto [ec, socket] = co_await core->acceptor.async_accept(executor, peer, kServerTuple);
    if (core->stopping.load() || ec == asio::error::operation_aborted ||
        !core->acceptor.is_open()) {
      co_return;
    }
    if (ec) {
      // EMFILE and friends: back off instead of spinning.
      core::log::warn("net", "accept_failed",
                      {{"service", core->options.name}, {"error", ec.message()}});
      asio::steady_timer timer(core->acceptor_strand, std::chrono::milliseconds(50));
      auto [tec] = co_await timer.async_wait(kServerTuple);
      (void)tec;
      continue;
    }
    beast::error_code oec;
    socket.set_option(tcp::no_delay(true), oec);
    if (core->active.load() >= core->options.limits.max_connections) {
      if (core->tls || core->rejecting.load() >= kServerMaxRejecting) {
        socket.close(oec);
        continue;
      }
      core->rejecting.fetch_add(1);
      auto ex = socket.get_executor();
      asio::co_spawn(ex, server_reject(core, std::move(socket)), server_spawn_done);
      continue;
    }
    if (core->tls) {
      auto conn = std::make_shared<ServerConnection<TlsStream>>(
          core, TlsStream(PlainStream(std::move(socket)), *core->tls), peer.address().to_string());
      auto ex = conn->executor();
      asio::co_spawn(ex, ServerConnection<TlsStream>::run(std::move(conn)), server_spawn_done);
    } else {
      auto conn = std::make_shared<ServerConnection<PlainStream>>(
          core, PlainStream(std::move(socket)), peer.address().to_string());
      auto ex = conn->executor();
      asio::co_spawn(ex, ServerConnection<PlainStream>::run(std::move(conn)), server_spawn_done);
    }
  }
}

}  // namespace detail

struct HttpServer::Impl : detail::ServerCore {
  using detail::ServerCore::ServerCore;
};

HttpServer::HttpServer(asio::io_context& io, ServerOptions options, Router router,
                       core::metrics::Registry* metrics)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(router), metrics)) {}

HttpServer::~HttpServer() { shutdown(); }

core::Result<std::uint16_t> HttpServer::listen() {
  using detail::tcp;
  auto& c = *impl_;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(c.options.bind_address, ec);
  if (ec) {
    return core::Error(core::Errc::invalid_argument,
                       "invalid bind address \"" + c.options.bind_address + "\"");
  }
  const std::string where =
      (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
      std::to_string(c.options.port);
  if (c.options.tls) {
    auto ctx = detail::make_server_tls_context(*c.options.tls);
    if (!ctx) {
      return ctx.error();
    }
    c.tls = std::move(*ctx);
  }
  const tcp::endpoint endpoint(address, c.options.port);
  c.acceptor.open(endpoint.protocol(), ec);
  if (ec) {
    return core::Error(core::Errc::internal,
                       "cannot open a socket for " + where + ": " + ec.message());
  }
  c.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  c.acceptor.bind(endpoint, ec);
  if (ec) {
    boost::system::error_code cec;
    c.acceptor.close(cec);
    if (ec == asio::error::address_in_use) {
      return core::Error(core::Errc::conflict, "address already in use: " + where);
    }
    if (ec == asio::error::access_denied) {
      return core::Error(core::Errc::permission_denied, "permission denied to bind " + where);
    }
    return core::Error(core::Errc::invalid_argument, "cannot bind " + where + ": " + ec.message());
  }
  c.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code cec;
    c.acceptor.close(cec);
    return core::Error(core::Errc::internal, "cannot listen on " + where + ": " + ec.message());
  }
  c.port = c.acceptor.local_endpoint(ec).port();
  return c.port;
}

Router& HttpServer::router() { return impl_->router; }

void HttpServer::spread_connections(std::vector<asio::io_context*> contexts) {
  impl_->spread = std::move(contexts);
}

void HttpServer::start() {
  if (!impl_->acceptor.is_open()) {
    core::log::error("net", "start_without_listen", {{"service", impl_->options.name}});
    return;
  }
  std::shared_ptr<detail::ServerCore> core = impl_;
  asio::co_spawn(impl_->acceptor_strand, detail::server_accept_loop(std::move(core)),
                 detail::server_spawn_done);
}

void HttpServer::shutdown() {
  if (!impl_) {
    return;
  }
  impl_->stopping.store(true);
  std::shared_ptr<detail::ServerCore> core = impl_;
  asio::post(impl_->acceptor_strand, [core] {
    boost::system::error_code ec;
    core->acceptor.close(ec);
  });
  std::vector<std::shared_ptr<detail::ServerConnectionBase>> open;
  {
    std::lock_guard lock(impl_->mu);
    open.reserve(impl_->connections.size());
    for (auto* conn : impl_->connections) {
      if (auto alive = conn->weak_from_this().lock()) {
        open.push_back(std::move(alive));
      }
    }
  }
  for (auto& conn : open) {
    auto ex = conn->executor();
    asio::post(ex, [conn] { conn->on_shutdown(); });
  }
}

std::size_t HttpServer::active_connections() const { return impl_->active.load(); }

std::uint16_t HttpServer::port() const { return impl_->port; }

}  // namespace edgecoder::net

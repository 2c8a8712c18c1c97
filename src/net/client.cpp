#include "net/client.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <deque>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "net/detail_io.h"

namespace edgecoder::net {

// Everything here is in a named namespace (not an anonymous one): these types live in coroutine
// frames, and the unity build merges this file with the server's (see cpp-stack.md A.4.2).
namespace client_detail {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using ResponseParser = http::response_parser<http::buffer_body>;
using IoResult = std::tuple<beast::error_code, std::size_t>;

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kHeaderLimitBytes = 64 * 1024;
constexpr std::size_t kReadPieceBytes = 64 * 1024;  // largest piece ClientStream::next() returns
constexpr std::string_view kUserAgent = "edgecoder/" EDGECODER_VERSION;

// A parsed http(s):// or ws(s):// URL.
struct ClientUrl {
  bool tls = false;
  bool ipv6 = false;
  std::string host;  // lower-case, without IPv6 brackets
  std::uint16_t port = 0;
  std::string host_header;  // Host header value: port only when not the default
  std::string target;       // path plus query, never empty
  std::string authority;    // host:port for error details (never the path: it may hold a token)
  std::string pool_key;     // scheme + host + port
};

core::Error bad_url(std::string_view why) {
  return core::make_error(core::Errc::invalid_argument, "bad URL: " + std::string(why));
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) { return !s.empty() && std::ranges::all_of(s, is_token_char); }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

core::Result<ClientUrl> parse_url(std::string_view url, bool websocket_url) {
  for (char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return bad_url("contains a space or control character");
  }
  const std::size_t sep = url.find("://");
  if (sep == std::string_view::npos) return bad_url("missing scheme");
  const std::string scheme = to_lower(url.substr(0, sep));
  ClientUrl out;
  if (scheme == "https" || (websocket_url && scheme == "wss")) {
    out.tls = true;
  } else if (scheme != "http" && !(websocket_url && scheme == "ws")) {
    return bad_url(websocket_url ? "scheme must be ws, wss, http or https"
                                 : "scheme must be http or https");
  }
  const std::uint16_t default_port = out.tls ? 443 : 80;
  std::string_view rest = url.substr(sep + 3);
  const std::size_t authority_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, authority_end);
  std::string_view path =
      authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) return bad_url("user info is not supported");
  if (authority.empty()) return bad_url("missing host");

  std::string_view host;
  std::string_view port_text;
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad_url("unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad_url("unexpected text after IPv6 address");
      port_text = after.substr(1);
    }
    beast::error_code ec;
    asio::ip::make_address_v6(std::string(host), ec);
    if (ec) return bad_url("invalid IPv6 address");
    out.ipv6 = true;
  } else {
    const std::size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    const bool host_chars_ok = std::ranges::all_of(host, [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '_';
    });
    if (!host_chars_ok) return bad_url("invalid host name");
  }
  if (host.empty()) return bad_url("missing host");
  out.host = to_lower(host);

  out.port = default_port;
  if (!port_text.empty()) {
    if (port_text.size() > 5 ||
        !std::ranges::all_of(port_text, [](char c) { return c >= '0' && c <= '9'; })) {
      return bad_url("invalid port");
    }
    const unsigned long port = std::stoul(std::string(port_text));
    if (port == 0 || port > 65535) return bad_url("port out of range");
    out.port = static_cast<std::uint16_t>(port);
  }

  if (const std::size_t hash = path.find('#'); hash != std::string_view::npos) {
    path = path.substr(0, hash);
  }
  if (path.empty()) {
    out.target = "/";
  } else if (path.front() == '?') {
    out.target = "/" + std::string(path);
  } else {
    out.target = std::string(path);
  }

  const std::string bracketed = out.ipv6 ? "[" + out.host + "]" : out.host;
  out.authority = bracketed + ":" + std::to_string(out.port);
  out.host_header = out.port == default_port ? bracketed : out.authority;
  out.pool_key = std::string(out.tls ? "https://" : "http://") + out.authority;
  return out;
}

bool is_ip_literal(const std::string& host) {
  beast::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// A point in time by which a step must finish, and which option set it (for error details).
struct Deadline {
  Clock::time_point at;
  std::string_view option;  // "connect_timeout", "first_byte_timeout", "total_timeout"
  std::chrono::milliseconds length{0};
};

Deadline make_deadline(std::chrono::milliseconds length, std::string_view option) {
  Deadline d;
  d.at = Clock::now() + length;
  d.option = option;
  d.length = length;
  return d;
}

Deadline earliest(const Deadline& a, const Deadline& b) { return a.at <= b.at ? a : b; }

// Maps a failed step to Errc::timeout or Errc::unavailable. The detail names the step and the
// peer, never a header value or the path (either may carry a token).
core::Error step_error(std::string_view step, const ClientUrl& url, beast::error_code ec,
                       const Deadline& deadline) {
  if (ec == beast::error::timeout) {
    return core::make_error(core::Errc::timeout, std::string(deadline.option) + " (" +
                                                     std::to_string(deadline.length.count()) +
                                                     " ms) expired " + std::string(step) + " " +
                                                     url.authority);
  }
  return core::make_error(core::Errc::unavailable,
                          std::string(step) + " " + url.authority + " failed: " + ec.message());
}

// Records why certificate verification failed, since the handshake error itself only says
// "certificate verify failed".
class VerifyHost {
 public:
  VerifyHost(std::string host, std::shared_ptr<std::string> failure)
      : check_(std::move(host)), failure_(std::move(failure)) {}

  bool operator()(bool preverified, ssl::verify_context& ctx) {
    if (!preverified) {
      if (failure_->empty()) {
        const int err = X509_STORE_CTX_get_error(ctx.native_handle());
        *failure_ = X509_verify_cert_error_string(err);
      }
      return false;
    }
    if (!check_(preverified, ctx)) {
      if (failure_->empty()) *failure_ = "certificate does not match the host name";
      return false;
    }
    return true;
  }

 private:
  ssl::host_name_verification check_;
  std::shared_ptr<std::string> failure_;
};

// One TCP or TLS connection. Used by one coroutine at a time; moved between the pool and the
// exchanges that borrow it.
class ClientConnection {
 public:
  ClientConnection(asio::any_io_executor executor, std::string pool_key)
      : pool_key_(std::move(pool_key)),
        plain_(std::make_unique<beast::tcp_stream>(std::move(executor))) {}

  const std::string& pool_key() const { return pool_key_; }
  beast::tcp_stream& tcp() { return tls_ ? tls_->next_layer() : *plain_; }
  bool is_tls() const { return tls_ != nullptr; }
  beast::flat_buffer& buffer() { return buffer_; }
  const std::string& verify_failure() const { return *verify_failure_; }
  Clock::time_point idle_since() const { return idle_since_; }
  void mark_idle() { idle_since_ = Clock::now(); }

  void start_tls(ssl::context& context, const std::string& host, bool verify_peer) {
    tls_ = std::make_unique<TlsStream>(std::move(*plain_), context);
    plain_.reset();
    SSL* handle = tls_->native_handle();
    if (!is_ip_literal(host)) {
      // SNI (SSL_set_tlsext_host_name is a macro with a C cast; this is what it expands to).
      SSL_ctrl(handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(host.c_str()));
    }
    if (verify_peer) {
      tls_->set_verify_mode(ssl::verify_peer);
      tls_->set_verify_callback(VerifyHost(host, verify_failure_));
    } else {
      tls_->set_verify_mode(ssl::verify_none);
    }
  }

  auto handshake() { return tls_->async_handshake(ssl::stream_base::client, kUseTuple); }

  asio::awaitable<IoResult> write(http::request<http::string_body>& message) {
    if (tls_) {
      auto call = http::async_write(*tls_, message, kUseTuple);
      co_return co_await std::move(call);
    }
    // Plain: the whole request in one send when the socket takes it (it nearly always does);
    // only a remainder waits, under the stream's timeout.
    std::ostringstream serialized;
    serialized << message;
    const std::string bytes = std::move(serialized).str();
    const std::array<asio::const_buffer, 1> all = {asio::buffer(bytes)};
    const auto sent = detail::send_now(plain_->socket().native_handle(), all);
    if (!sent) co_return IoResult{beast::error_code(errno, beast::system_category()), 0};
    if (*sent == bytes.size()) co_return IoResult{beast::error_code(), *sent};
    auto rest = asio::async_write(*plain_, asio::buffer(bytes.data() + *sent, bytes.size() - *sent),
                                  kUseTuple);
    auto [ec, n] = co_await std::move(rest);
    co_return IoResult{ec, *sent + n};
  }
  asio::awaitable<IoResult> read_header(ResponseParser& parser) {
    if (tls_) return http::async_read_header(*tls_, buffer_, parser, kUseTuple);
    return http::async_read_header(*plain_, buffer_, parser, kUseTuple);
  }
  asio::awaitable<IoResult> read_some(ResponseParser& parser) {
    if (tls_) return http::async_read_some(*tls_, buffer_, parser, kUseTuple);
    return http::async_read_some(*plain_, buffer_, parser, kUseTuple);
  }

  // False when the peer closed the idle connection or sent bytes nobody asked for.
  bool usable_after_idle() {
    auto& socket = tcp().socket();
    if (!socket.is_open() || buffer_.size() != 0) return false;
    char byte = 0;
    const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && errno == EAGAIN;  // EWOULDBLOCK is the same value on Linux
  }

  std::unique_ptr<beast::tcp_stream> take_plain() { return std::move(plain_); }
  std::unique_ptr<TlsStream> take_tls() { return std::move(tls_); }

 private:
  const std::string pool_key_;
  std::unique_ptr<beast::tcp_stream> plain_;  // set until start_tls(), or for http://
  std::unique_ptr<TlsStream> tls_;            // set for https:// after start_tls()
  beast::flat_buffer buffer_;                 // bytes read but not yet parsed
  std::shared_ptr<std::string> verify_failure_ = std::make_shared<std::string>();
  Clock::time_point idle_since_{};
};

// Idle keep-alive connections by scheme+host+port. Shared with the streams that will return
// their connection to it; a stream outliving the client simply drops its connection.
class ConnectionPool {
 public:
  ConnectionPool(std::size_t max_idle_per_host, std::chrono::milliseconds idle_ttl)
      : max_idle_per_host_(max_idle_per_host), idle_ttl_(idle_ttl) {}

  // The most recently used live connection for `key`, or null.
  std::unique_ptr<ClientConnection> take(const std::string& key) {
    std::vector<std::unique_ptr<ClientConnection>> dropped;  // closed outside the lock
    std::unique_ptr<ClientConnection> found;
    {
      std::lock_guard lock(mu_);
      auto it = idle_.find(key);
      if (it == idle_.end()) return nullptr;
      auto& list = it->second;
      const auto oldest_allowed = Clock::now() - idle_ttl_;  // idle_ttl 0 = never reuse
      while (!list.empty() && !found) {
        auto conn = std::move(list.back());
        list.pop_back();
        if (conn->idle_since() > oldest_allowed && conn->usable_after_idle()) {
          found = std::move(conn);
        } else {
          dropped.push_back(std::move(conn));
        }
      }
      if (list.empty()) idle_.erase(it);
    }
    return found;
  }

  void put(std::unique_ptr<ClientConnection> conn) {
    if (max_idle_per_host_ == 0) return;
    conn->tcp().expires_never();
    conn->mark_idle();
    std::unique_ptr<ClientConnection> evicted;
    std::lock_guard lock(mu_);
    auto& list = idle_[conn->pool_key()];
    if (list.size() >= max_idle_per_host_) {
      evicted = std::move(list.front());
      list.pop_front();
    }
    list.push_back(std::move(conn));
  }

  std::size_t size() const {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& [key, list] : idle_) n += list.size();
    return n;
  }

  void clear() {
    std::map<std::string, std::deque<std::unique_ptr<ClientConnection>>> dropped;
    std::lock_guard lock(mu_);
    dropped.swap(idle_);
  }

 private:
  const std::size_t max_idle_per_host_;
  const std::chrono::milliseconds idle_ttl_;
  mutable std::mutex mu_;
  // Newest at the back. Guarded by mu_.
  std::map<std::string, std::deque<std::unique_ptr<ClientConnection>>> idle_;
};

// A request whose response head has arrived.
struct ClientExchange {
  std::unique_ptr<ClientConnection> conn;
  std::unique_ptr<ResponseParser> parser;
  ClientUrl url;
  Deadline total;
  std::size_t max_body_bytes = 0;  // 0 = no limit (streams)
};

Headers copy_headers(const ResponseParser& parser) {
  Headers headers;
  for (const auto& field : parser.get()) {
    headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  return headers;
}

core::Error too_large(std::size_t limit) {
  return core::make_error(core::Errc::invalid_argument,
                          "response too large (max_response_bytes " + std::to_string(limit) + ")");
}

class ClientStreamImpl final : public ClientStream {
 public:
  ClientStreamImpl(std::weak_ptr<ConnectionPool> pool, ClientExchange exchange)
      : pool_(std::move(pool)),
        exchange_(std::move(exchange)),
        status_(static_cast<int>(exchange_.parser->get().result_int())),
        headers_(copy_headers(*exchange_.parser)),
        piece_(std::make_unique_for_overwrite<char[]>(kReadPieceBytes)) {
    if (exchange_.parser->is_done()) finish();  // HEAD, 204, 304, empty bodies
  }

  int status() const override { return status_; }
  const Headers& headers() const override { return headers_; }

  asio::awaitable<core::Result<std::optional<std::string>>> next() override {
    if (failed_) co_return *failed_;
    if (finished_) co_return std::nullopt;
    exchange_.conn->tcp().expires_at(exchange_.total.at);
    for (;;) {
      auto& body = exchange_.parser->get().body();
      body.data = piece_.get();
      body.size = kReadPieceBytes;
      body.more = true;
      auto [ec, n] = co_await exchange_.conn->read_some(*exchange_.parser);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        if (ec == http::error::body_limit) {
          failed_ = too_large(exchange_.max_body_bytes);
        } else {
          failed_ = step_error("reading response body from", exchange_.url, ec, exchange_.total);
        }
        exchange_.conn.reset();
        co_return *failed_;
      }
      const std::size_t got = kReadPieceBytes - exchange_.parser->get().body().size;
      if (exchange_.parser->is_done()) finish();
      if (got > 0) co_return std::string(piece_.get(), got);
      if (finished_) co_return std::nullopt;
    }
  }

 private:
  // The body is complete: the connection goes back to the pool when the server keeps it open.
  void finish() {
    finished_ = true;
    auto conn = std::move(exchange_.conn);
    if (!exchange_.parser->keep_alive() || conn->buffer().size() != 0) return;
    if (auto pool = pool_.lock()) pool->put(std::move(conn));
  }

  const std::weak_ptr<ConnectionPool> pool_;
  ClientExchange exchange_;  // conn is null once finished or failed
  const int status_;
  const Headers headers_;
  // Receives each body piece. Not zero-filled: only the bytes a read writes are touched, so a
  // stream of small tokens does not fault in (or memset) 64 KiB per request.
  const std::unique_ptr<char[]> piece_;
  bool finished_ = false;
  std::optional<core::Error> failed_;
};

// Adds the User-Agent and the caller's headers to the WebSocket upgrade request.
struct WsDecorator {
  Headers headers;
  void operator()(websocket::request_type& request) const {
    request.set(http::field::user_agent, kUserAgent);
    for (const auto& [name, value] : headers) request.set(name, value);
  }
};

template <typename NextLayer>
class ClientWebSocket final : public WebSocket {
 public:
  explicit ClientWebSocket(std::unique_ptr<websocket::stream<NextLayer>> ws) : ws_(std::move(ws)) {}

  asio::awaitable<core::Result<WsMessage>> read() override {
    buffer_.clear();
    auto [ec, n] = co_await ws_->async_read(buffer_, kUseTuple);
    if (ec) {
      co_return core::make_error(core::Errc::unavailable,
                                 ec == websocket::error::closed
                                     ? std::string("websocket closed by peer")
                                     : "websocket read failed: " + ec.message());
    }
    WsMessage message;
    message.data = beast::buffers_to_string(buffer_.data());
    message.binary = ws_->got_binary();
    buffer_.consume(n);
    co_return message;
  }

  asio::awaitable<core::Result<void>> write(WsMessage message) override {
    ws_->binary(message.binary);
    auto [ec, n] = co_await ws_->async_write(asio::buffer(message.data), kUseTuple);
    if (ec) {
      co_return core::make_error(core::Errc::unavailable,
                                 "websocket write failed: " + ec.message());
    }
    co_return core::Result<void>{};
  }

  asio::awaitable<void> close() override {
    if (!ws_->is_open()) co_return;
    const websocket::close_reason reason(websocket::close_code::normal);
    auto [ec] = co_await ws_->async_close(reason, kUseTuple);
    (void)ec;  // the peer may already be gone; nothing more to do
  }

 private:
  std::unique_ptr<websocket::stream<NextLayer>> ws_;
  beast::flat_buffer buffer_;
};

bool is_idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS" || method == "TRACE";
}

bool has_crlf(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

core::Result<http::request<http::string_body>> build_request(ClientRequest& request,
                                                             const ClientUrl& url) {
  if (!is_token(request.method)) {
    return core::make_error(core::Errc::invalid_argument, "invalid HTTP method");
  }
  http::request<http::string_body> message;
  const http::verb verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) {
    message.method_string(request.method);
  } else {
    message.method(verb);
  }
  message.target(url.target);
  message.version(11);
  bool has_host = false;
  bool has_agent = false;
  for (const auto& [name, value] : request.headers) {
    if (!is_token(name)) {
      return core::make_error(core::Errc::invalid_argument, "invalid header name");
    }
    if (has_crlf(value) || value.find('\0') != std::string::npos) {
      // The value is not echoed: it may be a token.
      return core::make_error(core::Errc::invalid_argument,
                              "header " + name + " has a line break in its value");
    }
    has_host = has_host || iequals(name, "host");
    has_agent = has_agent || iequals(name, "user-agent");
    message.insert(name, value);
  }
  if (!has_host) message.set(http::field::host, url.host_header);
  if (!has_agent) message.set(http::field::user_agent, kUserAgent);
  if (!request.body.empty() || verb == http::verb::post || verb == http::verb::put ||
      verb == http::verb::patch) {
    message.body() = std::move(request.body);
    message.prepare_payload();
  }
  return message;
}

std::unique_ptr<ResponseParser> make_parser(bool head_request, std::size_t max_body_bytes) {
  auto parser = std::make_unique<ResponseParser>();
  parser->header_limit(kHeaderLimitBytes);
  parser->body_limit(max_body_bytes == 0 ? std::numeric_limits<std::uint64_t>::max()
                                         : static_cast<std::uint64_t>(max_body_bytes));
  if (head_request) parser->skip(true);
  return parser;
}

// co_spawn completion for fetch(): an exception escaping the request is a bug; let it surface.
struct RethrowOnError {
  void operator()(std::exception_ptr error) const {
    if (error) std::rethrow_exception(error);
  }
};

asio::awaitable<void> fetch_into(HttpClient* client, ClientRequest request,
                                 std::optional<core::Result<ClientResponse>>* out) {
  auto result = co_await client->request(std::move(request));
  out->emplace(std::move(result));
}

// TLS settings shared by every client with the same CA file and verification. Loading the
// system's CA bundle costs 15-20 ms of CPU, too much to pay per client (the model provider makes
// one per event loop, the IDE provider one per mesh call); an SSL_CTX may be used by several
// threads once configured. A CA file that cannot be loaded is not cached: the next client tries
// again.
struct ClientTls {
  ssl::context context{ssl::context::tls_client};  // configured once, then only read
  std::optional<core::Error> setup_error;          // set when ca_file cannot be loaded
};

std::shared_ptr<ClientTls> shared_client_tls(const ClientOptions& options) {
  static std::mutex mu;
  static std::map<std::pair<std::string, bool>, std::shared_ptr<ClientTls>> cache;  // guarded
  const auto key = std::make_pair(options.ca_file ? options.ca_file->string() : std::string(),
                                  options.verify_peer);
  std::lock_guard lock(mu);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  auto tls = std::make_shared<ClientTls>();
  SSL_CTX_set_min_proto_version(tls->context.native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  tls->context.set_default_verify_paths(ec);  // an empty system store only limits whom we trust
  if (options.ca_file) {
    tls->context.load_verify_file(options.ca_file->string(), ec);
    if (ec) {
      tls->setup_error = core::make_error(
          core::Errc::invalid_argument,
          "cannot load ca_file " + options.ca_file->string() + ": " + ec.message());
    }
  }
  tls->context.set_verify_mode(options.verify_peer ? ssl::verify_peer : ssl::verify_none);
  if (!tls->setup_error) cache.emplace(key, tls);
  return tls;
}

// The state and logic behind HttpClient (HttpClient::Impl is this, named so the helpers above
// stay unqualified). Shared with running exchanges; thread-safe through the pool's mutex.
class ClientCore {
 public:
  ClientCore(asio::any_io_executor ex, ClientOptions opts)
      : executor(std::move(ex)),
        options(std::move(opts)),
        pool(std::make_shared<ConnectionPool>(options.max_idle_per_host, options.idle_ttl)) {}

  // The TLS settings, fetched on the first https:// or wss:// request: a plain-HTTP client
  // never loads the CA bundle.
  ClientTls& tls() {
    std::call_once(tls_once_, [this] { tls_ = shared_client_tls(options); });
    return *tls_;
  }

  asio::awaitable<core::Result<std::vector<tcp::endpoint>>> resolve(ClientUrl url,
                                                                    Deadline deadline);
  asio::awaitable<core::Result<std::unique_ptr<ClientConnection>>> connect(ClientUrl url,
                                                                           Deadline total);
  asio::awaitable<core::Result<ClientExchange>> exchange(ClientRequest request, bool buffered);
  asio::awaitable<core::Result<std::unique_ptr<WebSocket>>> open_websocket(std::string url,
                                                                           Headers headers);

  const asio::any_io_executor executor;
  const ClientOptions options;
  const std::shared_ptr<ConnectionPool> pool;

 private:
  std::once_flag tls_once_;
  std::shared_ptr<ClientTls> tls_;  // set once, by tls()
};

asio::awaitable<core::Result<std::vector<tcp::endpoint>>> ClientCore::resolve(ClientUrl url,
                                                                              Deadline deadline) {
  std::vector<tcp::endpoint> endpoints;
  beast::error_code ec;
  const auto address = asio::ip::make_address(url.host, ec);
  if (!ec) {
    endpoints.emplace_back(address, url.port);
    co_return endpoints;
  }
  // The resolver has no deadline of its own: a timer cancels it. Both are shared with the
  // timer's handler, which may run after this frame is gone.
  auto resolver = std::make_shared<tcp::resolver>(executor);
  auto timed_out = std::make_shared<std::atomic<bool>>(false);
  asio::steady_timer timer(executor, deadline.at);
  timer.async_wait([resolver, timed_out](beast::error_code wait_ec) {
    if (wait_ec) return;
    timed_out->store(true);
    resolver->cancel();
  });
  auto [rec, results] =
      co_await resolver->async_resolve(url.host, std::to_string(url.port), kUseTuple);
  timer.cancel();
  if (timed_out->load()) rec = beast::error::timeout;
  if (rec) co_return step_error("resolving", url, rec, deadline);
  for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  if (endpoints.empty()) {
    co_return core::make_error(core::Errc::unavailable, "resolving " + url.host + ": no address");
  }
  co_return endpoints;
}

asio::awaitable<core::Result<std::unique_ptr<ClientConnection>>> ClientCore::connect(
    ClientUrl url, Deadline total) {
  const Deadline own = make_deadline(options.connect_timeout, "connect_timeout");
  const Deadline deadline = earliest(own, total);
  auto endpoints = co_await resolve(url, deadline);
  if (!endpoints) co_return endpoints.error();
  auto conn = std::make_unique<ClientConnection>(executor, url.pool_key);
  conn->tcp().expires_at(deadline.at);
  auto [cec, endpoint] = co_await conn->tcp().async_connect(*endpoints, kUseTuple);
  if (cec) co_return step_error("connecting to", url, cec, deadline);
  beast::error_code ignored;
  conn->tcp().socket().set_option(tcp::no_delay(true), ignored);  // streamed requests are small
  if (url.tls) {
    conn->start_tls(tls().context, url.host, options.verify_peer);
    conn->tcp().expires_at(deadline.at);
    auto [hec] = co_await conn->handshake();
    if (hec) {
      if (hec != beast::error::timeout && !conn->verify_failure().empty()) {
        co_return core::make_error(
            core::Errc::unavailable,
            "TLS handshake with " + url.authority +
                " failed: certificate verification failed: " + conn->verify_failure());
      }
      co_return step_error("TLS handshake with", url, hec, deadline);
    }
  }
  co_return std::move(conn);
}

asio::awaitable<core::Result<ClientExchange>> ClientCore::exchange(ClientRequest request,
                                                                   bool buffered) {
  auto url = parse_url(request.url, false);
  if (!url) co_return url.error();
  if (url->tls && tls().setup_error) co_return *tls().setup_error;
  const bool head_request = request.method == "HEAD";
  const bool idempotent = is_idempotent(request.method);
  auto message = build_request(request, *url);
  if (!message) co_return message.error();
  const Deadline total =
      make_deadline(request.total_timeout.value_or(options.total_timeout), "total_timeout");
  const auto first_byte = request.first_byte_timeout.value_or(options.first_byte_timeout);
  const std::size_t max_body = buffered ? options.max_response_bytes : 0;

  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<ClientConnection> conn;
    if (attempt == 0) conn = pool->take(url->pool_key);
    // A reused connection may have been closed by the server just as we picked it; such a
    // failure before any response byte is retried once, on a fresh connection, when repeating
    // the request is harmless.
    const bool may_retry = conn != nullptr && idempotent;
    if (!conn) {
      auto fresh = co_await connect(*url, total);
      if (!fresh) co_return fresh.error();
      conn = std::move(*fresh);
    }
    conn->tcp().expires_at(total.at);
    auto [wec, written] = co_await conn->write(*message);
    if (wec) {
      if (may_retry && wec != beast::error::timeout) continue;
      co_return step_error("sending request to", *url, wec, total);
    }
    const Deadline own = make_deadline(first_byte, "first_byte_timeout");
    const Deadline head_deadline = earliest(own, total);
    auto parser = make_parser(head_request, max_body);
    conn->tcp().expires_at(head_deadline.at);
    auto [rec, head_bytes] = co_await conn->read_header(*parser);
    // 1xx interim responses (100 Continue, 103 Early Hints) precede the real one.
    while (!rec && parser->get().result_int() / 100 == 1) {
      parser = make_parser(head_request, max_body);
      std::tie(rec, head_bytes) = co_await conn->read_header(*parser);
    }
    if (rec) {
      if (may_retry && rec != beast::error::timeout && !parser->got_some() &&
          conn->buffer().size() == 0) {
        continue;
      }
      if (rec == http::error::body_limit) co_return too_large(max_body);
      co_return step_error("waiting for the response from", *url, rec, head_deadline);
    }
    ClientExchange result;
    result.conn = std::move(conn);
    result.parser = std::move(parser);
    result.url = *url;
    result.total = total;
    result.max_body_bytes = max_body;
    co_return std::move(result);
  }
}

asio::awaitable<core::Result<std::unique_ptr<WebSocket>>> ClientCore::open_websocket(
    std::string url_text, Headers headers) {
  auto url = parse_url(url_text, true);
  if (!url) co_return url.error();
  if (url->tls && tls().setup_error) co_return *tls().setup_error;
  for (const auto& [name, value] : headers) {
    if (!is_token(name) || has_crlf(value)) {
      co_return core::make_error(core::Errc::invalid_argument, "invalid header " + name);
    }
  }
  const Deadline total = make_deadline(options.total_timeout, "total_timeout");
  auto conn = co_await connect(*url, total);
  if (!conn) co_return conn.error();
  const Deadline own = make_deadline(options.first_byte_timeout, "first_byte_timeout");
  const Deadline deadline = earliest(own, total);
  WsDecorator decorator{std::move(headers)};
  websocket::response_type response;
  std::unique_ptr<WebSocket> result;
  beast::error_code ec;
  if ((*conn)->is_tls()) {
    auto ws = std::make_unique<websocket::stream<TlsStream>>(std::move(*(*conn)->take_tls()));
    ws->set_option(websocket::stream_base::decorator(decorator));
    ws->read_message_max(options.max_response_bytes);
    beast::get_lowest_layer(*ws).expires_at(deadline.at);
    std::tie(ec) = co_await ws->async_handshake(response, url->host_header, url->target, kUseTuple);
    if (!ec) {
      beast::get_lowest_layer(*ws).expires_never();  // the websocket's own timeouts take over
      ws->set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
      result = std::make_unique<ClientWebSocket<TlsStream>>(std::move(ws));
    }
  } else {
    auto ws =
        std::make_unique<websocket::stream<beast::tcp_stream>>(std::move(*(*conn)->take_plain()));
    ws->set_option(websocket::stream_base::decorator(decorator));
    ws->read_message_max(options.max_response_bytes);
    beast::get_lowest_layer(*ws).expires_at(deadline.at);
    std::tie(ec) = co_await ws->async_handshake(response, url->host_header, url->target, kUseTuple);
    if (!ec) {
      beast::get_lowest_layer(*ws).expires_never();
      ws->set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
      result = std::make_unique<ClientWebSocket<beast::tcp_stream>>(std::move(ws));
    }
  }
  if (ec == websocket::error::upgrade_declined) {
    co_return core::make_error(core::Errc::unavailable, "websocket upgrade to " + url->authority +
                                                            " declined with status " +
                                                            std::to_string(response.result_int()));
  }
  if (ec) co_return step_error("websocket handshake with", *url, ec, deadline);
  co_return std::move(result);
}

}  // namespace client_detail

struct HttpClient::Impl : client_detail::ClientCore {
  using ClientCore::ClientCore;
};

HttpClient::HttpClient(asio::any_io_executor executor, ClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

HttpClient::~HttpClient() { impl_->pool->clear(); }

asio::awaitable<core::Result<ClientResponse>> HttpClient::request(ClientRequest request) {
  const std::shared_ptr<Impl> impl = impl_;  // the exchange keeps the client state alive
  auto exchange = co_await impl->exchange(std::move(request), true);
  if (!exchange) co_return exchange.error();
  client_detail::ClientStreamImpl stream(impl->pool, std::move(*exchange));
  ClientResponse response;
  response.status = stream.status();
  response.headers = stream.headers();
  for (;;) {
    auto piece = co_await stream.next();
    if (!piece) co_return piece.error();
    if (!*piece) break;
    response.body.append(**piece);
  }
  co_return std::move(response);
}

asio::awaitable<core::Result<std::unique_ptr<ClientStream>>> HttpClient::stream(
    ClientRequest request) {
  const std::shared_ptr<Impl> impl = impl_;
  auto exchange = co_await impl->exchange(std::move(request), false);
  if (!exchange) co_return exchange.error();
  std::unique_ptr<ClientStream> stream =
      std::make_unique<client_detail::ClientStreamImpl>(impl->pool, std::move(*exchange));
  co_return std::move(stream);
}

asio::awaitable<core::Result<std::unique_ptr<WebSocket>>> HttpClient::websocket(std::string url,
                                                                                Headers headers) {
  const std::shared_ptr<Impl> impl = impl_;
  co_return co_await impl->open_websocket(std::move(url), std::move(headers));
}

std::size_t HttpClient::idle_connections() const { return impl_->pool->size(); }

core::Result<ClientResponse> fetch(ClientRequest request, ClientOptions options) {
  asio::io_context io;
  std::optional<core::Result<ClientResponse>> out;
  {
    HttpClient client(io.get_executor(), std::move(options));
    asio::co_spawn(io, client_detail::fetch_into(&client, std::move(request), &out),
                   client_detail::RethrowOnError{});
    io.run();
  }
  if (!out) return core::make_error(core::Errc::internal, "fetch did not complete");
  return std::move(*out);
}

}  // namespace edgecoder::net

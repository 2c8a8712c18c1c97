// Tests for src/net/client.cpp: HttpClient against real servers on 127.0.0.1 port 0. Byte-level
// behaviour (splits, pauses, connection counts, silent and endless servers) uses a small raw asio
// server in this file; round trips, TLS and WebSocket use net::HttpServer.
#include "net/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include "net/http.h"
#include "net/router.h"
#include "net/server.h"
#include "net/stream_parsers.h"

namespace edgecoder::net {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// Safety net for gates a working client opens at once; only a broken client waits this long.
constexpr std::chrono::milliseconds kWait = 10s;

// ---------------------------------------------------------------------------------------------
// Running coroutines from a test.

template <typename T>
asio::awaitable<void> store_result(asio::awaitable<T> task, std::optional<T>* out) {
  out->emplace(co_await std::move(task));
}

struct Rethrow {
  void operator()(std::exception_ptr error) const {
    if (error) std::rethrow_exception(error);
  }
};

// Runs `task` on `io` (the client's) until it and everything it started are done.
template <typename T>
T run(asio::io_context& io, asio::awaitable<T> task) {
  std::optional<T> out;
  asio::co_spawn(io, store_result(std::move(task), &out), Rethrow{});
  io.restart();
  io.run();
  return std::move(*out);
}

std::string url(std::uint16_t port, std::string_view path, std::string_view scheme = "http",
                std::string_view host = "127.0.0.1") {
  return std::string(scheme) + "://" + std::string(host) + ":" + std::to_string(port) +
         std::string(path);
}

ClientRequest get(std::string u) {
  ClientRequest request;
  request.url = std::move(u);
  return request;
}

// ---------------------------------------------------------------------------------------------
// A raw asio server: one coroutine per accepted connection, on its own thread.

// A one-shot event the client thread opens and a server coroutine awaits.
class Gate {
 public:
  explicit Gate(asio::io_context& io) : timer_(io) {}
  void open() {
    asio::post(timer_.get_executor(), [this] {
      opened_ = true;
      timer_.cancel();
    });
  }
  // True when opened; false when `timeout` passed first.
  asio::awaitable<bool> wait(std::chrono::milliseconds timeout) {
    if (opened_) co_return true;
    timer_.expires_after(timeout);
    auto [ec] = co_await timer_.async_wait(kTuple);
    (void)ec;
    co_return opened_;
  }

 private:
  asio::steady_timer timer_;
  bool opened_ = false;  // touched only on the server thread
};

using ConnectionHandler = std::function<asio::awaitable<void>(tcp::socket, int)>;

class RawServer {
 public:
  explicit RawServer(ConnectionHandler handler, const std::string& address = "127.0.0.1")
      : acceptor_(io_), handler_(std::move(handler)) {
    const tcp::endpoint endpoint(asio::ip::make_address(address), 0);
    boost::system::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      error_ = ec.message();
      return;
    }
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, accept_loop(this), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~RawServer() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  asio::io_context& io() { return io_; }
  // A gate on this server's io_context, destroyed with the server (after its thread stopped).
  Gate* make_gate() {
    gates_.push_back(std::make_unique<Gate>(io_));
    return gates_.back().get();
  }

 private:
  static asio::awaitable<void> accept_loop(RawServer* self) {
    for (;;) {
      auto [ec, socket] = co_await self->acceptor_.async_accept(kTuple);
      if (ec) co_return;
      const int index = ++self->accepted_;
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // each write is its own segment
      asio::co_spawn(self->io_, self->handler_(std::move(socket), index), asio::detached);
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  const ConnectionHandler handler_;
  std::atomic<int> accepted_{0};
  std::uint16_t port_ = 0;
  std::string error_;
  std::thread thread_;
  std::vector<std::unique_ptr<Gate>> gates_;
};

std::size_t content_length_of(std::string_view head) {
  std::string lower(head);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto at = lower.find("\r\ncontent-length:");
  if (at == std::string::npos) return 0;
  return std::stoul(lower.substr(at + 17));
}

// One request (head and Content-Length body), or nullopt when the peer is gone.
asio::awaitable<std::optional<std::string>> read_request(tcp::socket* socket,
                                                         std::string* pending) {
  for (;;) {
    const auto head_end = pending->find("\r\n\r\n");
    if (head_end != std::string::npos) {
      const std::size_t total = head_end + 4 + content_length_of(pending->substr(0, head_end));
      if (pending->size() >= total) {
        std::string request = pending->substr(0, total);
        pending->erase(0, total);
        co_return request;
      }
    }
    char buf[4096];
    auto [ec, n] = co_await socket->async_read_some(asio::buffer(buf), kTuple);
    if (ec) co_return std::nullopt;
    pending->append(buf, n);
  }
}

asio::awaitable<bool> write_all(tcp::socket* socket, std::string data) {
  auto [ec, n] = co_await asio::async_write(*socket, asio::buffer(data), kTuple);
  co_return !ec;
}

// Spaces writes apart so they leave as separate TCP segments; never used to wait for an event.
asio::awaitable<void> pause(std::chrono::milliseconds length) {
  asio::steady_timer timer(co_await asio::this_coro::executor, length);
  auto [ec] = co_await timer.async_wait(kTuple);
  (void)ec;
}

std::string chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return std::string(size) + std::string(data) + "\r\n";
}

std::string target_of(const std::string& request) {
  const auto first = request.find(' ');
  const auto second = request.find(' ', first + 1);
  return request.substr(first + 1, second - first - 1);
}

std::string text_response(std::string_view body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

// ---------------------------------------------------------------------------------------------
// Server-side behaviours.

struct SeenRequests {
  std::mutex mu;
  std::vector<std::string> requests;  // guarded by mu
  void add(std::string r) {
    std::lock_guard lock(mu);
    requests.push_back(std::move(r));
  }
  std::vector<std::string> all() {
    std::lock_guard lock(mu);
    return requests;
  }
};

// Answers every request on the connection with "conn=<index> req=<n>".
asio::awaitable<void> serve_keep_alive(tcp::socket socket, int index, SeenRequests* seen) {
  std::string pending;
  for (int n = 1;; ++n) {
    auto request = co_await read_request(&socket, &pending);
    if (!request) co_return;
    seen->add(*request);
    const std::string body = "conn=" + std::to_string(index) + " req=" + std::to_string(n);
    if (!co_await write_all(&socket, text_response(body))) co_return;
  }
}

// The first connection answers one request, then reads the second and closes without a byte.
asio::awaitable<void> serve_drop_second(tcp::socket socket, int index) {
  std::string pending;
  for (int n = 1;; ++n) {
    auto request = co_await read_request(&socket, &pending);
    if (!request) co_return;
    if (index == 1 && n == 2) {
      socket.close();
      co_return;
    }
    if (!co_await write_all(&socket, text_response("conn=" + std::to_string(index)))) co_return;
  }
}

// The first connection answers once (keep-alive by the headers) and then closes; later
// connections answer normally.
asio::awaitable<void> serve_close_after_first(tcp::socket socket, int index,
                                              std::promise<void>* first_closed) {
  std::string pending;
  for (;;) {
    auto request = co_await read_request(&socket, &pending);
    if (!request) co_return;
    if (!co_await write_all(&socket, text_response("conn=" + std::to_string(index)))) co_return;
    if (index == 1) {
      boost::system::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
      first_closed->set_value();
      co_return;
    }
  }
}

struct GatedStream {
  Gate* gate = nullptr;                  // owned by the RawServer
  std::atomic<bool> gate_opened{false};  // the client opened the gate (vs. the safety timeout)
  std::atomic<bool> rest_sent{false};    // the server has started sending the rest of the body
};

// SSE over chunked encoding: "data: he" | "llo\n\n", then waits for the client to see the first
// event before it sends the second.
asio::awaitable<void> serve_gated_sse(tcp::socket socket, GatedStream* state) {
  std::string pending;
  if (!co_await read_request(&socket, &pending)) co_return;
  std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
  if (!co_await write_all(&socket, std::move(head))) co_return;
  if (!co_await write_all(&socket, chunk("data: he"))) co_return;
  co_await pause(2ms);
  if (!co_await write_all(&socket, chunk("llo\n\n"))) co_return;
  state->gate_opened = co_await state->gate->wait(kWait);
  state->rest_sent = true;
  if (!co_await write_all(&socket, chunk("event: done\ndata: world\n\n") + "0\r\n\r\n")) co_return;
  while (co_await read_request(&socket, &pending)) {
  }
}

// NDJSON with a read-until-close body: "{\"n\":" | "1}\n", gate, "{\"n\":2}\n", close.
asio::awaitable<void> serve_gated_ndjson(tcp::socket socket, GatedStream* state) {
  std::string pending;
  if (!co_await read_request(&socket, &pending)) co_return;
  std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n";
  if (!co_await write_all(&socket, std::move(head))) co_return;
  if (!co_await write_all(&socket, "{\"n\":")) co_return;
  co_await pause(2ms);
  if (!co_await write_all(&socket, "1}\n")) co_return;
  state->gate_opened = co_await state->gate->wait(kWait);
  state->rest_sent = true;
  if (!co_await write_all(&socket, "{\"n\":2}\n")) co_return;
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

// Sends `payload` as a read-until-close body in two TCP writes, cut where "/split/<n>" says.
asio::awaitable<void> serve_split(tcp::socket socket, const std::string* payload) {
  std::string pending;
  auto request = co_await read_request(&socket, &pending);
  if (!request) co_return;
  const std::size_t cut = std::stoul(target_of(*request).substr(std::strlen("/split/")));
  std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
  if (!co_await write_all(&socket, std::move(head))) co_return;
  if (!co_await write_all(&socket, payload->substr(0, cut))) co_return;
  co_await pause(1ms);
  if (!co_await write_all(&socket, payload->substr(cut))) co_return;
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

// Reads the request and never answers; holds the connection until the client leaves.
asio::awaitable<void> serve_silence(tcp::socket socket) {
  std::string pending;
  while (co_await read_request(&socket, &pending)) {
  }
}

// An SSE stream that never ends: one event every 20 ms.
asio::awaitable<void> serve_endless(tcp::socket socket) {
  std::string pending;
  if (!co_await read_request(&socket, &pending)) co_return;
  std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
  if (!co_await write_all(&socket, std::move(head))) co_return;
  for (;;) {
    if (!co_await write_all(&socket, chunk("data: tick\n\n"))) co_return;
    co_await pause(20ms);
  }
}

// 1000-byte bodies: "/chunked" in ten chunks, anything else with Content-Length.
asio::awaitable<void> serve_big(tcp::socket socket) {
  std::string pending;
  for (;;) {
    auto request = co_await read_request(&socket, &pending);
    if (!request) co_return;
    std::string response;
    if (target_of(*request) == "/chunked") {
      response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
      for (int i = 0; i < 10; ++i) response += chunk(std::string(100, 'x'));
      response += "0\r\n\r\n";
    } else {
      response = text_response(std::string(1000, 'x'));
    }
    if (!co_await write_all(&socket, std::move(response))) co_return;
  }
}

// ---------------------------------------------------------------------------------------------
// Client-side scenarios.

bool same_events(const std::vector<SseEvent>& a, const std::vector<SseEvent>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].event != b[i].event || a[i].data != b[i].data || a[i].id != b[i].id ||
        a[i].retry_ms != b[i].retry_ms) {
      return false;
    }
  }
  return true;
}

// Streams `u` through an SseParser; calls on_first_event once, as soon as the first event is
// parsed. Returns "" on success, else what went wrong.
asio::awaitable<std::string> stream_sse(HttpClient* client, std::string u,
                                        std::vector<SseEvent>* events,
                                        std::function<void()> on_first_event) {
  auto stream = co_await client->stream(get(std::move(u)));
  if (!stream) co_return "stream: " + stream.error().detail;
  if ((*stream)->status() != 200) co_return "status " + std::to_string((*stream)->status());
  SseParser parser;
  for (;;) {
    auto piece = co_await (*stream)->next();
    if (!piece) co_return "next: " + piece.error().detail;
    if (!*piece) break;
    auto parsed = parser.feed(**piece);
    if (!parsed) co_return "parse: " + parsed.error().detail;
    for (auto& event : *parsed) {
      events->push_back(std::move(event));
      if (events->size() == 1 && on_first_event) on_first_event();
    }
  }
  co_return std::string();
}

asio::awaitable<std::string> stream_ndjson(HttpClient* client, std::string u,
                                           std::vector<std::string>* lines,
                                           std::function<void()> on_first_line) {
  auto stream = co_await client->stream(get(std::move(u)));
  if (!stream) co_return "stream: " + stream.error().detail;
  NdjsonParser parser;
  for (;;) {
    auto piece = co_await (*stream)->next();
    if (!piece) co_return "next: " + piece.error().detail;
    if (!*piece) break;
    auto parsed = parser.feed(**piece);
    if (!parsed) co_return "parse: " + parsed.error().detail;
    for (auto& line : *parsed) {
      lines->push_back(std::move(line));
      if (lines->size() == 1 && on_first_line) on_first_line();
    }
  }
  if (auto last = parser.finish()) lines->push_back(*last);
  co_return std::string();
}

asio::awaitable<std::string> check_every_split(HttpClient* client, std::uint16_t port,
                                               std::size_t size, std::vector<SseEvent> expected) {
  for (std::size_t cut = 0; cut <= size; ++cut) {
    std::vector<SseEvent> events;
    const std::function<void()> no_callback;
    auto error = co_await stream_sse(client, url(port, "/split/" + std::to_string(cut)), &events,
                                     no_callback);
    if (!error.empty()) co_return "cut " + std::to_string(cut) + ": " + error;
    if (!same_events(events, expected)) co_return "cut " + std::to_string(cut) + ": events differ";
  }
  co_return std::string();
}

struct StreamOutcome {
  int pieces = 0;
  std::optional<core::Error> error;  // how the stream ended; nullopt = complete body
  std::string body;
};

asio::awaitable<StreamOutcome> drain(HttpClient* client, ClientRequest request) {
  StreamOutcome outcome;
  auto stream = co_await client->stream(std::move(request));
  if (!stream) {
    outcome.error = stream.error();
    co_return outcome;
  }
  for (;;) {
    auto piece = co_await (*stream)->next();
    if (!piece) {
      outcome.error = piece.error();
      co_return outcome;
    }
    if (!*piece) co_return outcome;
    ++outcome.pieces;
    outcome.body += **piece;
  }
}

// ---------------------------------------------------------------------------------------------
// net::HttpServer fixtures.

class Served {
 public:
  explicit Served(Router router, std::optional<TlsFiles> tls = std::nullopt) {
    ServerOptions options;
    options.tls = std::move(tls);
    server_ = std::make_unique<HttpServer>(io_, std::move(options), std::move(router), nullptr);
    auto bound = server_->listen();
    if (!bound) {
      error_ = bound.error().detail;
      return;
    }
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Served() {
    if (thread_.joinable()) {
      server_->shutdown();
      io_.stop();
      thread_.join();
    }
    server_.reset();
  }
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return server_->port(); }

 private:
  asio::io_context io_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::string error_;
};

Response echo(const Request& r) {
  nlohmann::json body = {{"method", r.method},
                         {"target", r.target},
                         {"body", r.body},
                         {"x_test", std::string(r.header("x-test").value_or(""))},
                         {"user_agent", std::string(r.header("user-agent").value_or(""))},
                         {"host", std::string(r.header("host").value_or(""))}};
  Response response = Response::json(201, body);
  response.set_header("x-reply", "yes");
  return response;
}

class EchoSession final : public WebSocketSession {
 public:
  asio::awaitable<void> run(WebSocket* ws) override {
    for (;;) {
      auto message = co_await ws->read();
      if (!message) co_return;
      auto written = co_await ws->write(std::move(*message));
      if (!written) co_return;
    }
  }
};

struct WsSeen {
  std::mutex mu;
  std::string token;       // guarded by mu
  std::string user_agent;  // guarded by mu
};

Router echo_router(WsSeen* seen) {
  Router router;
  router.add_sync("GET", "/echo", echo);
  router.add_sync("POST", "/echo", echo);
  router.add_sync("GET", "/hello", [](const Request&) { return Response::text(200, "hi"); });
  router.add_sync("GET", "/ws", [seen](const Request& r) {
    std::lock_guard lock(seen->mu);
    seen->token = std::string(r.header("x-mesh-token").value_or(""));
    seen->user_agent = std::string(r.header("user-agent").value_or(""));
    return Response::upgrade(std::make_shared<EchoSession>());
  });
  return router;
}

struct WsOutcome {
  std::string error;
  std::string text;
  bool text_binary = true;
  std::string binary;
  bool binary_binary = false;
};

asio::awaitable<WsOutcome> ws_echo(HttpClient* client, std::string u) {
  WsOutcome out;
  Headers headers;
  headers.emplace_back("x-mesh-token", "mesh-secret");
  auto ws = co_await client->websocket(std::move(u), std::move(headers));
  if (!ws) {
    out.error = "connect: " + ws.error().detail;
    co_return out;
  }
  WsMessage text;
  text.data = "hello over ws";
  if (auto w = co_await (*ws)->write(std::move(text)); !w) {
    out.error = "write: " + w.error().detail;
    co_return out;
  }
  auto first = co_await (*ws)->read();
  if (!first) {
    out.error = "read: " + first.error().detail;
    co_return out;
  }
  out.text = first->data;
  out.text_binary = first->binary;
  WsMessage bin;
  bin.data = std::string("\x00\x01\x02", 3);
  bin.binary = true;
  if (auto w = co_await (*ws)->write(std::move(bin)); !w) {
    out.error = "write: " + w.error().detail;
    co_return out;
  }
  auto second = co_await (*ws)->read();
  if (!second) {
    out.error = "read: " + second.error().detail;
    co_return out;
  }
  out.binary = second->data;
  out.binary_binary = second->binary;
  co_await (*ws)->close();
  co_return out;
}

// ---------------------------------------------------------------------------------------------
// TLS material made at test time with the openssl CLI.

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("edgecoder-client-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A CA, a server certificate for localhost + 127.0.0.1, and one for wrong.example.
bool make_pki(const std::filesystem::path& dir) {
  const std::string issue =
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout NAME.key "
      "-out NAME.csr -subj /CN=CN >/dev/null 2>&1 && "
      "printf 'subjectAltName=SAN\\nbasicConstraints=CA:FALSE\\n' > NAME.cnf && "
      "openssl x509 -req -in NAME.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out NAME.pem "
      "-days 2 -extfile NAME.cnf >/dev/null 2>&1";
  auto make = [&issue](const std::string& name, const std::string& cn, const std::string& san) {
    std::string s = issue;
    for (auto [from, to] : {std::pair<std::string, std::string>{"NAME", name},
                            {"=CN ", "=" + cn + " "},
                            {"SAN", san}}) {
      for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
        s.replace(at, from.size(), to);
      }
    }
    return s;
  };
  const std::string cmd =
      "cd '" + dir.string() +
      "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout ca.key -out ca.pem -days 2 -subj /CN=edgecoder-client-test-ca "
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
      ">/dev/null 2>&1 && " +
      make("server", "localhost", "DNS:localhost,IP:127.0.0.1") + " && " +
      make("wrong", "wrong.example", "DNS:wrong.example");
  return std::system(cmd.c_str()) == 0;
}

TlsFiles tls_files(const std::filesystem::path& dir, const std::string& name) {
  TlsFiles files;
  files.cert_file = dir / (name + ".pem");
  files.key_file = dir / (name + ".key");
  return files;
}

// ---------------------------------------------------------------------------------------------
// Tests.

TEST(HttpClientTest, GetAndPostRoundTripWithHeadersAndBody) {
  WsSeen seen;
  Served server(echo_router(&seen));
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  HttpClient client(io.get_executor());

  ClientRequest post;
  post.method = "POST";
  post.url = url(server.port(), "/echo?x=1");
  post.headers.emplace_back("x-test", "value-1");
  post.headers.emplace_back("content-type", "application/json");
  post.body = R"({"k":"v"})";
  auto posted = run(io, client.request(post));
  ASSERT_TRUE(posted) << posted.error().detail;
  EXPECT_EQ(posted->status, 201);
  EXPECT_EQ(posted->header("X-Reply"), std::optional<std::string_view>("yes"));
  auto json = nlohmann::json::parse(posted->body, nullptr, false);
  ASSERT_TRUE(json.is_object()) << posted->body;
  EXPECT_EQ(json["method"], "POST");
  EXPECT_EQ(json["target"], "/echo?x=1");
  EXPECT_EQ(json["body"], R"({"k":"v"})");
  EXPECT_EQ(json["x_test"], "value-1");
  EXPECT_EQ(json["user_agent"], std::string("edgecoder/") + EDGECODER_VERSION);
  EXPECT_EQ(json["host"], "127.0.0.1:" + std::to_string(server.port()));

  auto got = run(io, client.request(get(url(server.port(), "/echo"))));
  ASSERT_TRUE(got) << got.error().detail;
  json = nlohmann::json::parse(got->body, nullptr, false);
  EXPECT_EQ(json["method"], "GET");
  EXPECT_EQ(json["body"], "");

  // The blocking form, for CLI verbs.
  auto fetched = fetch(get(url(server.port(), "/hello")));
  ASSERT_TRUE(fetched) << fetched.error().detail;
  EXPECT_EQ(fetched->status, 200);
  EXPECT_EQ(fetched->body, "hi");
}

TEST(HttpClientTest, KeepAliveReusesOneConnectionAndSetsHostAgentAndLength) {
  SeenRequests seen;
  RawServer server(
      [&seen](tcp::socket s, int i) { return serve_keep_alive(std::move(s), i, &seen); });
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  HttpClient client(io.get_executor());

  auto first = run(io, client.request(get(url(server.port(), "/a"))));
  ASSERT_TRUE(first) << first.error().detail;
  EXPECT_EQ(first->body, "conn=1 req=1");
  EXPECT_EQ(client.idle_connections(), 1u);
  ClientRequest post;
  post.method = "POST";
  post.url = url(server.port(), "/b");
  post.body = "twelve bytes";
  auto second = run(io, client.request(post));
  ASSERT_TRUE(second) << second.error().detail;
  EXPECT_EQ(second->body, "conn=1 req=2");
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(client.idle_connections(), 1u);

  const auto requests = seen.all();
  ASSERT_EQ(requests.size(), 2u);
  const std::string host = "Host: 127.0.0.1:" + std::to_string(server.port()) + "\r\n";
  EXPECT_EQ(requests[0].rfind("GET /a HTTP/1.1\r\n", 0), 0u) << requests[0];
  EXPECT_NE(requests[0].find(host), std::string::npos) << requests[0];
  EXPECT_NE(requests[0].find(std::string("User-Agent: edgecoder/") + EDGECODER_VERSION + "\r\n"),
            std::string::npos);
  EXPECT_NE(requests[1].find("Content-Length: 12\r\n"), std::string::npos) << requests[1];
  EXPECT_TRUE(requests[1].ends_with("\r\n\r\ntwelve bytes"));
}

TEST(HttpClientTest, IdleTtlDropsPooledConnections) {
  SeenRequests seen;
  RawServer server(
      [&seen](tcp::socket s, int i) { return serve_keep_alive(std::move(s), i, &seen); });
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  ClientOptions options;
  options.idle_ttl = 0ms;
  HttpClient client(io.get_executor(), options);
  ASSERT_TRUE(run(io, client.request(get(url(server.port(), "/a")))));
  auto second = run(io, client.request(get(url(server.port(), "/a"))));
  ASSERT_TRUE(second) << second.error().detail;
  EXPECT_EQ(second->body, "conn=2 req=1");
  EXPECT_EQ(server.accepted(), 2);
}

TEST(HttpClientTest, IdempotentRequestIsRetriedOnceWhenAReusedConnectionDies) {
  RawServer server([](tcp::socket s, int i) { return serve_drop_second(std::move(s), i); });
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  HttpClient client(io.get_executor());
  auto first = run(io, client.request(get(url(server.port(), "/"))));
  ASSERT_TRUE(first) << first.error().detail;
  EXPECT_EQ(first->body, "conn=1");
  auto second = run(io, client.request(get(url(server.port(), "/"))));
  ASSERT_TRUE(second) << second.error().detail;
  EXPECT_EQ(second->body, "conn=2");
  EXPECT_EQ(server.accepted(), 2);
}

TEST(HttpClientTest, NonIdempotentRequestIsNotRetried) {
  RawServer server([](tcp::socket s, int i) { return serve_drop_second(std::move(s), i); });
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  HttpClient client(io.get_executor());
  ASSERT_TRUE(run(io, client.request(get(url(server.port(), "/")))));
  ClientRequest post;
  post.method = "POST";
  post.url = url(server.port(), "/");
  post.body = "not twice";
  auto second = run(io, client.request(post));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, core::Errc::unavailable);
  EXPECT_NE(second.error().detail.find("127.0.0.1:" + std::to_string(server.port())),
            std::string::npos)
      << second.error().detail;
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpClientTest, PooledConnectionClosedByTheServerIsNotReused) {
  std::promise<void> first_closed;
  RawServer server([&first_closed](tcp::socket s, int i) {
    return serve_close_after_first(std::move(s), i, &first_closed);
  });
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  HttpClient client(io.get_executor());
  auto first = run(io, client.request(get(url(server.port(), "/"))));
  ASSERT_TRUE(first) << first.error().detail;
  EXPECT_EQ(client.idle_connections(), 1u);
  ASSERT_EQ(first_closed.get_future().wait_for(kWait), std::future_status::ready);
  // A POST is never retried, so it succeeds only if the closed connection was not picked.
  ClientRequest post;
  post.method = "POST";
  post.url = url(server.port(), "/");
  auto second = run(io, client.request(post));
  ASSERT_TRUE(second) << second.error().detail;
  EXPECT_EQ(second->body, "conn=2");
  EXPECT_EQ(server.accepted(), 2);
}

TEST(HttpClientTest, SseEventArrivesBeforeTheServerSendsTheRest) {
  GatedStream state;
  RawServer server([&state](tcp::socket s, int) { return serve_gated_sse(std::move(s), &state); });
  ASSERT_TRUE(server.ok()) << server.error();
  state.gate = server.make_gate();
  asio::io_context io;
  HttpClient client(io.get_executor());

  std::vector<SseEvent> events;
  bool rest_sent_at_first_event = true;
  const std::function<void()> on_first = [&] {
    rest_sent_at_first_event = state.rest_sent.load();
    state.gate->open();
  };
  auto error = run(io, stream_sse(&client, url(server.port(), "/events"), &events, on_first));
  ASSERT_EQ(error, "");
  EXPECT_FALSE(rest_sent_at_first_event);
  EXPECT_TRUE(state.gate_opened) << "the first event was not delivered before the body ended";
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event, "message");
  EXPECT_EQ(events[0].data, "hello");
  EXPECT_EQ(events[1].event, "done");
  EXPECT_EQ(events[1].data, "world");
  EXPECT_EQ(client.idle_connections(), 1u);  // chunked body fully read on a keep-alive connection
}

TEST(HttpClientTest, NdjsonLineArrivesBeforeTheServerSendsTheRest) {
  GatedStream state;
  RawServer server(
      [&state](tcp::socket s, int) { return serve_gated_ndjson(std::move(s), &state); });
  ASSERT_TRUE(server.ok()) << server.error();
  state.gate = server.make_gate();
  asio::io_context io;
  HttpClient client(io.get_executor());

  std::vector<std::string> lines;
  bool rest_sent_at_first_line = true;
  const std::function<void()> on_first = [&] {
    rest_sent_at_first_line = state.rest_sent.load();
    state.gate->open();
  };
  auto error = run(io, stream_ndjson(&client, url(server.port(), "/api/chat"), &lines, on_first));
  ASSERT_EQ(error, "");
  EXPECT_FALSE(rest_sent_at_first_line);
  EXPECT_TRUE(state.gate_opened);
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"n\":1}", "{\"n\":2}"}));
  EXPECT_EQ(client.idle_connections(), 0u);  // a read-until-close body ends the connection
}

TEST(HttpClientTest, SsePayloadSplitIntoTwoTcpWritesAtEveryPositionParsesTheSame) {
  const std::string payload =
      "id: 1\nevent: delta\ndata: {\"t\":\"Hel\"}\n\n: ping\r\ndata: {\"t\":\"lo\"}\r\n"
      "data: more\r\n\r\nretry: 1500\ndata: [DONE]\n\n";
  SseParser reference;
  auto expected = reference.feed(payload);
  ASSERT_TRUE(expected);
  ASSERT_EQ(expected->size(), 3u);
  RawServer server([&payload](tcp::socket s, int) { return serve_split(std::move(s), &payload); });
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  HttpClient client(io.get_executor());
  EXPECT_EQ(run(io, check_every_split(&client, server.port(), payload.size(), *expected)), "");
}

TEST(HttpClientTest, RefusedConnectionIsUnavailable) {
  std::uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }  // closed: nothing listens there now
  asio::io_context io;
  HttpClient client(io.get_executor());
  auto result = run(io, client.request(get(url(port, "/"))));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, core::Errc::unavailable);
  EXPECT_NE(result.error().detail.find("connecting to 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << result.error().detail;
}

TEST(HttpClientTest, ConnectTimeoutWhenTheListenQueueIsFull) {
  // A listener that never accepts, with a backlog of 0: once its queue is full Linux drops
  // further SYNs, so a connect neither succeeds nor fails until our deadline.
  asio::io_context io;
  tcp::acceptor acceptor(io);
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  acceptor.open(endpoint.protocol());
  acceptor.bind(endpoint);
  acceptor.listen(0);
  const auto port = acceptor.local_endpoint().port();
  // Raw non-blocking connects: asio's blocking connect would wait for these to complete.
  struct Fd {
    int fd = -1;
    ~Fd() {
      if (fd >= 0) ::close(fd);
    }
  };
  std::vector<std::unique_ptr<Fd>> fillers;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 4; ++i) {
    fillers.push_back(std::make_unique<Fd>());
    fillers.back()->fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(fillers.back()->fd, 0);
    (void)::connect(fillers.back()->fd, reinterpret_cast<const sockaddr*>(&address),
                    sizeof address);
  }
  ClientOptions options;
  options.connect_timeout = 300ms;
  HttpClient client(io.get_executor(), options);
  auto result = run(io, client.request(get(url(port, "/"))));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, core::Errc::timeout) << result.error().detail;
  EXPECT_NE(result.error().detail.find("connect_timeout"), std::string::npos)
      << result.error().detail;
}

TEST(HttpClientTest, FirstByteTimeoutWhenTheServerNeverAnswers) {
  RawServer server([](tcp::socket s, int) { return serve_silence(std::move(s)); });
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  HttpClient client(io.get_executor());
  ClientRequest request = get(url(server.port(), "/slow"));
  request.first_byte_timeout = 200ms;
  request.headers.emplace_back("authorization", "Bearer super-secret-token");
  auto result = run(io, client.request(request));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, core::Errc::timeout);
  EXPECT_NE(result.error().detail.find("first_byte_timeout"), std::string::npos)
      << result.error().detail;
  EXPECT_EQ(result.error().detail.find("super-secret-token"), std::string::npos);
  EXPECT_EQ(client.idle_connections(), 0u);
}

TEST(HttpClientTest, TotalTimeoutCutsAnEndlessStream) {
  RawServer server([](tcp::socket s, int) { return serve_endless(std::move(s)); });
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  HttpClient client(io.get_executor());
  ClientRequest request = get(url(server.port(), "/forever"));
  request.total_timeout = 500ms;
  auto outcome = run(io, drain(&client, request));
  ASSERT_TRUE(outcome.error.has_value());
  EXPECT_EQ(outcome.error->code, core::Errc::timeout);
  EXPECT_NE(outcome.error->detail.find("total_timeout"), std::string::npos)
      << outcome.error->detail;
  EXPECT_GE(outcome.pieces, 1);  // the head and some body arrived before the deadline
}

TEST(HttpClientTest, BufferedResponseLargerThanTheLimitIsRejected) {
  RawServer server([](tcp::socket s, int) { return serve_big(std::move(s)); });
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  ClientOptions options;
  options.max_response_bytes = 100;
  HttpClient client(io.get_executor(), options);
  for (const char* path : {"/length", "/chunked"}) {
    auto result = run(io, client.request(get(url(server.port(), path))));
    ASSERT_FALSE(result) << path;
    EXPECT_EQ(result.error().code, core::Errc::invalid_argument) << path;
    EXPECT_NE(result.error().detail.find("response too large"), std::string::npos)
        << result.error().detail;
  }
  // Streams are not capped: the same chunked body arrives whole.
  auto outcome = run(io, drain(&client, get(url(server.port(), "/chunked"))));
  EXPECT_FALSE(outcome.error.has_value());
  EXPECT_EQ(outcome.body, std::string(1000, 'x'));
}

TEST(HttpClientTest, BadUrlsAreInvalidArgument) {
  asio::io_context io;
  HttpClient client(io.get_executor());
  for (const char* bad :
       {"", "example.com/x", "ftp://example.com/", "http://", "http:///path", "http://host:0/",
        "http://host:65536/", "http://host:12ab/", "http://[::1/", "http://[not-ipv6]/",
        "http://us:pw@host/", "http://host/a b", "http://ho st/"}) {
    auto result = run(io, client.request(get(bad)));
    ASSERT_FALSE(result) << bad;
    EXPECT_EQ(result.error().code, core::Errc::invalid_argument) << bad;
  }
  auto ws = run(io, client.websocket("ftp://host/", {}));
  ASSERT_FALSE(ws);
  EXPECT_EQ(ws.error().code, core::Errc::invalid_argument);
}

TEST(HttpClientTest, Ipv6LiteralHostAndDefaultTargets) {
  SeenRequests seen;
  RawServer server(
      [&seen](tcp::socket s, int i) { return serve_keep_alive(std::move(s), i, &seen); }, "::1");
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << server.error();
  asio::io_context io;
  HttpClient client(io.get_executor());
  auto result = run(io, client.request(get("http://[::1]:" + std::to_string(server.port()))));
  ASSERT_TRUE(result) << result.error().detail;
  auto query = run(
      io, client.request(get("http://[::1]:" + std::to_string(server.port()) + "?q=1#fragment")));
  ASSERT_TRUE(query) << query.error().detail;
  const auto requests = seen.all();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rfind("GET / HTTP/1.1\r\n", 0), 0u) << requests[0];
  EXPECT_NE(requests[0].find("Host: [::1]:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos)
      << requests[0];
  EXPECT_EQ(requests[1].rfind("GET /?q=1 HTTP/1.1\r\n", 0), 0u) << requests[1];
}

TEST(HttpClientTest, WebSocketEcho) {
  WsSeen seen;
  Served server(echo_router(&seen));
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  HttpClient client(io.get_executor());
  auto outcome = run(io, ws_echo(&client, url(server.port(), "/ws", "ws")));
  ASSERT_EQ(outcome.error, "");
  EXPECT_EQ(outcome.text, "hello over ws");
  EXPECT_FALSE(outcome.text_binary);
  EXPECT_EQ(outcome.binary, std::string("\x00\x01\x02", 3));
  EXPECT_TRUE(outcome.binary_binary);
  std::lock_guard lock(seen.mu);
  EXPECT_EQ(seen.token, "mesh-secret");
  EXPECT_EQ(seen.user_agent, std::string("edgecoder/") + EDGECODER_VERSION);
}

TEST(HttpClientTest, WebSocketToAPlainRouteIsDeclined) {
  WsSeen seen;
  Served server(echo_router(&seen));
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  HttpClient client(io.get_executor());
  auto ws = run(io, client.websocket(url(server.port(), "/hello", "ws"), {}));
  ASSERT_FALSE(ws);
  EXPECT_EQ(ws.error().code, core::Errc::unavailable);
  EXPECT_NE(ws.error().detail.find("declined"), std::string::npos) << ws.error().detail;
}

class HttpClientTlsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(make_pki(dir_.path())) << "openssl failed"; }
  TempDir dir_;
};

TEST_F(HttpClientTlsTest, VerifiesTheCaAndTheHostNameOrIp) {
  WsSeen seen;
  Served server(echo_router(&seen), tls_files(dir_.path(), "server"));
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  ClientOptions options;
  options.ca_file = dir_.path() / "ca.pem";
  HttpClient client(io.get_executor(), options);

  auto by_name = run(io, client.request(get(url(server.port(), "/hello", "https", "localhost"))));
  ASSERT_TRUE(by_name) << by_name.error().detail;
  EXPECT_EQ(by_name->body, "hi");
  auto again = run(io, client.request(get(url(server.port(), "/hello", "https", "localhost"))));
  ASSERT_TRUE(again) << again.error().detail;
  EXPECT_EQ(client.idle_connections(), 1u);  // TLS connections are pooled too

  auto by_ip = run(io, client.request(get(url(server.port(), "/hello", "https", "127.0.0.1"))));
  ASSERT_TRUE(by_ip) << by_ip.error().detail;
  EXPECT_EQ(by_ip->body, "hi");
}

// DISABLED: passes under ASan+UBSan, but in the plain Debug build net::HttpServer (server.cpp,
// graceful_close after a TLS WebSocket session ends) segfaults on the server thread. Re-enable
// once the server side is fixed; run with --gtest_also_run_disabled_tests meanwhile.
TEST_F(HttpClientTlsTest, WebSocketOverTls) {
  WsSeen seen;
  Served server(echo_router(&seen), tls_files(dir_.path(), "server"));
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  ClientOptions options;
  options.ca_file = dir_.path() / "ca.pem";
  HttpClient client(io.get_executor(), options);
  auto wss = run(io, ws_echo(&client, url(server.port(), "/ws", "wss", "localhost")));
  EXPECT_EQ(wss.error, "");
  EXPECT_EQ(wss.text, "hello over ws");
  EXPECT_EQ(wss.binary, std::string("\x00\x01\x02", 3));
}

TEST_F(HttpClientTlsTest, UntrustedServerIsRejected) {
  WsSeen seen;
  Served server(echo_router(&seen), tls_files(dir_.path(), "server"));
  ASSERT_TRUE(server.ok()) << server.error();
  // Without the test CA nobody vouches for the server.
  asio::io_context io2;
  HttpClient untrusting(io2.get_executor());
  auto refused =
      run(io2, untrusting.request(get(url(server.port(), "/hello", "https", "localhost"))));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, core::Errc::unavailable);
  EXPECT_NE(refused.error().detail.find("certificate"), std::string::npos)
      << refused.error().detail;
}

TEST_F(HttpClientTlsTest, CertificateForAnotherNameIsRejected) {
  WsSeen seen;
  Served server(echo_router(&seen), tls_files(dir_.path(), "wrong"));
  ASSERT_TRUE(server.ok()) << server.error();
  asio::io_context io;
  ClientOptions options;
  options.ca_file = dir_.path() / "ca.pem";
  HttpClient client(io.get_executor(), options);
  for (const char* host : {"localhost", "127.0.0.1"}) {
    auto result = run(io, client.request(get(url(server.port(), "/hello", "https", host))));
    ASSERT_FALSE(result) << host;
    EXPECT_EQ(result.error().code, core::Errc::unavailable);
    EXPECT_NE(result.error().detail.find("does not match"), std::string::npos)
        << result.error().detail;
  }
  auto ws = run(io, client.websocket(url(server.port(), "/ws", "wss", "localhost"), {}));
  ASSERT_FALSE(ws);
  EXPECT_NE(ws.error().detail.find("certificate"), std::string::npos) << ws.error().detail;
}

TEST_F(HttpClientTlsTest, MissingCaFileIsInvalidArgument) {
  asio::io_context io;
  ClientOptions options;
  options.ca_file = dir_.path() / "absent.pem";
  HttpClient client(io.get_executor(), options);
  auto result = run(io, client.request(get("https://localhost:1/")));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, core::Errc::invalid_argument);
  EXPECT_NE(result.error().detail.find("ca_file"), std::string::npos) << result.error().detail;

  // TLS settings are shared between clients with the same options, but a failed load is not
  // kept: once the file exists, a new client with the same options trusts it.
  std::filesystem::copy_file(dir_.path() / "ca.pem", dir_.path() / "absent.pem");
  WsSeen seen;
  Served server(echo_router(&seen), tls_files(dir_.path(), "server"));
  ASSERT_TRUE(server.ok()) << server.error();
  HttpClient later(io.get_executor(), options);
  auto ok = run(io, later.request(get(url(server.port(), "/hello", "https", "localhost"))));
  ASSERT_TRUE(ok) << ok.error().detail;
  EXPECT_EQ(ok->body, "hi");
  HttpClient sharing(io.get_executor(), options);
  auto again = run(io, sharing.request(get(url(server.port(), "/hello", "https", "localhost"))));
  ASSERT_TRUE(again) << again.error().detail;
}

}  // namespace
}  // namespace edgecoder::net

// Tests for src/net/{http,router,server,tls}.cpp: a real HttpServer on 127.0.0.1 port 0 with its
// io_context on a background thread, driven by raw POSIX sockets (so that the bytes on the wire
// are what is asserted), a Beast WebSocket client and an asio::ssl client.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "net/http.h"
#include "net/router.h"
#include "net/server.h"

namespace edgecoder::net {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using tcp = asio::ip::tcp;

// Wide margins: the ASan build runs on 2 shared cores.
constexpr std::chrono::milliseconds kWait{10'000};

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client over a POSIX socket, with poll() timeouts so that a broken server fails
// the test instead of hanging it.

struct RawResponse {
  int status = 0;
  std::string head;
  Headers headers;
  std::string body;
  std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  void close() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Reads more bytes into the buffer; false on EOF, error or timeout.
  bool fill(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      return false;
    }
    char tmp[16384];
    const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) {
      return false;
    }
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }

  // True when the server closes (EOF or reset) within `timeout`; received bytes are kept.
  bool wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        return false;
      }
      char tmp[4096];
      const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n <= 0) {
        return true;
      }
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

  // Reads until `marker` has arrived; returns everything received so far (and consumes it).
  std::optional<std::string> read_until(std::string_view marker,
                                        std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    while (buf_.find(marker) == std::string::npos) {
      if (!fill(deadline)) {
        return std::nullopt;
      }
    }
    std::string out = std::move(buf_);
    buf_.clear();
    return out;
  }

  std::optional<RawResponse> read_response(bool head_request = false,
                                           std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(deadline)) {
        return std::nullopt;
      }
    }
    RawResponse r;
    r.head = buf_.substr(0, end + 4);
    buf_.erase(0, end + 4);
    if (r.head.size() < 12) {
      return std::nullopt;
    }
    r.status = std::stoi(r.head.substr(9, 3));
    std::size_t pos = r.head.find("\r\n") + 2;
    while (pos < end) {
      const std::size_t eol = r.head.find("\r\n", pos);
      const std::string line = r.head.substr(pos, eol - pos);
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        r.headers.emplace_back(line.substr(0, colon), value);
      }
      pos = eol + 2;
    }
    if (head_request || r.status < 200 || r.status == 204 || r.status == 304) {
      return r;
    }
    auto te = r.header("transfer-encoding");
    if (te && iequals(*te, "chunked")) {
      for (;;) {
        std::size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          if (!fill(deadline)) {
            return std::nullopt;
          }
        }
        const std::size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
        buf_.erase(0, eol + 2);
        while (buf_.size() < size + 2) {
          if (!fill(deadline)) {
            return std::nullopt;
          }
        }
        r.body += buf_.substr(0, size);
        buf_.erase(0, size + 2);
        if (size == 0) {
          return r;
        }
      }
    }
    if (auto cl = r.header("content-length")) {
      const std::size_t len = std::stoul(std::string(*cl));
      while (buf_.size() < len) {
        if (!fill(deadline)) {
          return std::nullopt;
        }
      }
      r.body = buf_.substr(0, len);
      buf_.erase(0, len);
      return r;
    }
    while (fill(deadline)) {
    }
    r.body = std::move(buf_);
    buf_.clear();
    return r;
  }

  std::optional<RawResponse> get(std::string_view path, std::string_view extra_headers = {}) {
    std::string req = "GET " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                      std::string(extra_headers) + "\r\n";
    if (!send(req)) {
      return std::nullopt;
    }
    return read_response();
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

nlohmann::json body_json(const RawResponse& r) {
  return nlohmann::json::parse(r.body, nullptr, false);
}

// ---------------------------------------------------------------------------------------------
// Handlers used by the tests. Handlers are plain lambdas calling non-capturing coroutines.

struct TestState {
  std::promise<void> slow_started;
  std::atomic<bool> slow_signalled{false};
};

asio::awaitable<Response> slow_handler(std::shared_ptr<TestState> state, Request) {
  if (!state->slow_signalled.exchange(true)) {
    state->slow_started.set_value();
  }
  asio::steady_timer timer(co_await asio::this_coro::executor, 300ms);
  co_await timer.async_wait(asio::use_awaitable);
  co_return Response::text(200, "slow done");
}

asio::awaitable<Response> echo_json_handler(Request request) {
  auto parsed = parse_json_body(request);
  if (!parsed) {
    co_return Response::error(parsed.error());
  }
  co_return Response::json(200, *parsed);
}

class ThreeEvents final : public StreamBody {
 public:
  asio::awaitable<void> run(BodyWriter* out) override {
    for (int i = 0; i < 3; ++i) {
      if (!co_await out->write(sse_frame("event " + std::to_string(i), "tick"))) {
        co_return;
      }
    }
  }
};

// A stream with its first piece at hand: its head goes out with that piece, and its last piece
// carries the end of the body.
class AtOnceEvents final : public StreamBody {
 public:
  bool writes_at_once() const override { return true; }
  asio::awaitable<void> run(BodyWriter* out) override {
    static constexpr const char* kNames[] = {"first", "second"};
    for (const char* name : kNames) {
      auto write = out->write(sse_frame(name, "tick"));
      if (!co_await std::move(write)) co_return;
    }
    auto last = out->write_last(sse_frame("last", "tick"));
    co_await std::move(last);
  }
};

// Says it writes at once but has nothing yet: an empty first write, then a long wait. The client
// must see the head during the wait.
class AtOnceButWaits final : public StreamBody {
 public:
  bool writes_at_once() const override { return true; }
  asio::awaitable<void> run(BodyWriter* out) override {
    auto nothing = out->write("");
    if (!co_await std::move(nothing)) co_return;
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor, std::chrono::seconds(2));
    auto wait = timer.async_wait(asio::use_awaitable);
    co_await std::move(wait);
    auto late = out->write(sse_frame("late", "tick"));
    co_await std::move(late);
  }
};

// Writes nothing at all.
class AtOnceNothing final : public StreamBody {
 public:
  bool writes_at_once() const override { return true; }
  asio::awaitable<void> run(BodyWriter*) override { co_return; }
};

class EchoSession final : public WebSocketSession {
 public:
  asio::awaitable<void> run(WebSocket* ws) override {
    for (;;) {
      auto message = co_await ws->read();
      if (!message) {
        co_return;
      }
      auto written = co_await ws->write(std::move(*message));
      if (!written) {
        co_return;
      }
    }
  }
};

Router make_router(std::shared_ptr<TestState> state) {
  Router router;
  router.add_sync("GET", "/health", [](const Request&) { return Response::text(200, "ok"); });
  router.add_sync("GET", "/items/:id", [](const Request& r) {
    return Response::json(200, {{"id", r.param("id")}, {"route", r.route}});
  });
  router.add_sync("GET", "/items/new", [](const Request&) {
    return Response::json(200, {{"literal", true}});
  });
  router.add_sync("GET", "/files/*", [](const Request& r) {
    return Response::json(200, {{"rest", r.param("*")}});
  });
  router.add_sync("DELETE", "/items/:id", [](const Request&) { return Response::text(204, ""); });
  router.add("POST", "/echo", [](Request r) { return echo_json_handler(std::move(r)); });
  router.add_sync("GET", "/boom", [](const Request&) -> Response {
    throw std::runtime_error("secret-token-xyz leaked in an exception");
  });
  router.add("GET", "/slow", [state](Request r) { return slow_handler(state, std::move(r)); });
  router.add_sync("GET", "/sse",
                  [](const Request&) { return Response::sse(std::make_shared<ThreeEvents>()); });
  router.add_sync("GET", "/sse-at-once",
                  [](const Request&) { return Response::sse(std::make_shared<AtOnceEvents>()); });
  router.add_sync("GET", "/sse-at-once-waits",
                  [](const Request&) { return Response::sse(std::make_shared<AtOnceButWaits>()); });
  router.add_sync("GET", "/sse-at-once-nothing",
                  [](const Request&) { return Response::sse(std::make_shared<AtOnceNothing>()); });
  router.add_sync("GET", "/ws", [](const Request&) {
    return Response::upgrade(std::make_shared<EchoSession>());
  });
  router.add_sync("GET", "/rid", [](const Request& r) {
    return Response::json(200, {{"rid", r.request_id}});
  });
  router.add_sync("GET", "/private", [](const Request&) { return Response::text(200, "secret"); });
  router.add_sync("POST", "/private", [](const Request&) { return Response::text(200, "secret"); });
  // Authentication stand-in: /private needs x-test-auth.
  router.use([](const Request& r) -> std::optional<Response> {
    if (r.route == "/private" && !r.header("x-test-auth")) {
      return Response::error(401, "unauthorized", "x-test-auth required");
    }
    return std::nullopt;
  });
  return router;
}

// A server on 127.0.0.1:0 with its io_context run by two background threads (like production,
// where several threads run one io_context).
class TestServer {
 public:
  explicit TestServer(ServerOptions options = {}, core::metrics::Registry* metrics = nullptr)
      : state_(std::make_shared<TestState>()) {
    options.bind_address = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<HttpServer>(io_, std::move(options), make_router(state_), metrics);
    auto bound = server_->listen();
    if (!bound) {
      listen_error_ = bound.error().detail;
      return;
    }
    server_->start();
    for (int i = 0; i < 2; ++i) {
      threads_.emplace_back([this] { io_.run(); });
    }
  }
  ~TestServer() {
    server_->shutdown();
    wait_drained(kWait);
    io_.stop();
    for (auto& t : threads_) {
      t.join();
    }
    server_.reset();
  }

  bool ok() const { return listen_error_.empty(); }
  const std::string& listen_error() const { return listen_error_; }
  std::uint16_t port() const { return server_->port(); }
  HttpServer& server() { return *server_; }
  TestState& state() { return *state_; }

  bool wait_active(std::size_t n, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (server_->active_connections() != n) {
      if (Clock::now() >= deadline) {
        return false;
      }
      std::this_thread::sleep_for(5ms);  // polling a counter; no event exists for it
    }
    return true;
  }
  bool wait_drained(std::chrono::milliseconds timeout) { return wait_active(0, timeout); }

 private:
  asio::io_context io_;
  std::shared_ptr<TestState> state_;
  std::unique_ptr<HttpServer> server_;
  std::vector<std::thread> threads_;
  std::string listen_error_;
};

// ---------------------------------------------------------------------------------------------
// Value helpers and the router without a server.

Response run_dispatch(const Router& router, std::string method, std::string path) {
  asio::io_context io;
  Request request;
  request.method = std::move(method);
  request.path = std::move(path);
  auto future = asio::co_spawn(io, router.dispatch(std::move(request)), asio::use_future);
  io.run();
  return future.get();
}

TEST(HttpTest, PercentDecodeAndQueryParams) {
  EXPECT_EQ(percent_decode("a%20b%2Fc"), "a b/c");
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("bad%zz%4"), "bad%zz%4");
  Request r;
  r.query = "x=1&name=J%C3%BCrgen+M&flag&empty=";
  EXPECT_EQ(r.query_param("name"), "J\xC3\xBCrgen M");
  EXPECT_EQ(r.query_param("flag"), "");
  EXPECT_EQ(r.query_param("empty"), "");
  EXPECT_EQ(r.query_param("missing"), std::nullopt);
}

TEST(HttpTest, SseFrameSplitsLinesAndJsonBodyErrorsHaveTheShape) {
  EXPECT_EQ(sse_frame("a\nb\r\nc", "ev", "7"), "id: 7\nevent: ev\ndata: a\ndata: b\ndata: c\n\n");
  EXPECT_EQ(sse_frame("x"), "data: x\n\n");
  EXPECT_EQ(sse_comment("ping"), ": ping\n\n");

  Request r;
  r.body = "{not json";
  auto bad = parse_json_body(r);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, core::Errc::invalid_argument);
  EXPECT_EQ(bad.error().wire(), "invalid_json");
  r.body = "[1,2]";
  auto array = parse_json_body(r);
  ASSERT_FALSE(array);
  EXPECT_EQ(array.error().wire(), "invalid_json");
  EXPECT_TRUE(parse_json_body(r, /*require_object=*/false));

  Response e = Response::error(bad.error());
  EXPECT_EQ(e.status, 400);
  auto j = nlohmann::json::parse(e.body);
  EXPECT_EQ(j["error"], "invalid_json");
  EXPECT_TRUE(j["detail"].is_string());
  // Invalid UTF-8 in a JSON body must not throw.
  EXPECT_NO_THROW(Response::json(200, {{"s", std::string("\xff\xfe")}}));
}

TEST(RouterTest, LiteralBeatsParamWildcardAnd405) {
  auto router = make_router(std::make_shared<TestState>());
  auto lookup = router.match("GET", "/items/new");
  ASSERT_TRUE(lookup.match);
  EXPECT_EQ(lookup.match->pattern, "/items/new");
  lookup = router.match("GET", "/items/42");
  ASSERT_TRUE(lookup.match);
  EXPECT_EQ(lookup.match->pattern, "/items/:id");
  EXPECT_EQ(lookup.match->params["id"], "42");
  lookup = router.match("GET", "/files/a/b/c.txt");
  ASSERT_TRUE(lookup.match);
  EXPECT_EQ(lookup.match->params["*"], "a/b/c.txt");
  lookup = router.match("PUT", "/items/42");
  EXPECT_FALSE(lookup.match);
  EXPECT_EQ(lookup.miss, Router::Miss::method_not_allowed);
  lookup = router.match("GET", "/items/42/extra");
  EXPECT_FALSE(lookup.match);
  EXPECT_EQ(lookup.miss, Router::Miss::not_found);
  lookup = router.match("HEAD", "/items/42");
  ASSERT_TRUE(lookup.match);
  EXPECT_EQ(lookup.match->pattern, "/items/:id");

  Response r = run_dispatch(router, "PATCH", "/items/9");
  EXPECT_EQ(r.status, 405);
  auto allow = find_header(r.headers, "allow");
  ASSERT_TRUE(allow);
  EXPECT_NE(allow->find("GET"), std::string_view::npos);
  EXPECT_NE(allow->find("DELETE"), std::string_view::npos);
  EXPECT_EQ(run_dispatch(router, "GET", "/nowhere").status, 404);
  EXPECT_EQ(run_dispatch(router, "GET", "/boom").status, 500);
}

// ---------------------------------------------------------------------------------------------
// The server over loopback.

TEST(HttpServerTest, RoutesParamsNotFoundMethodNotAllowedAndHead) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient c(ts.port());
  ASSERT_TRUE(c.connected());

  auto r = c.get("/items/42");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body_json(*r)["id"], "42");
  EXPECT_EQ(body_json(*r)["route"], "/items/:id");
  EXPECT_EQ(r->header("content-type"), "application/json");

  r = c.get("/items/new");
  ASSERT_TRUE(r);
  EXPECT_EQ(body_json(*r)["literal"], true);

  r = c.get("/items/a%20b");
  ASSERT_TRUE(r);
  EXPECT_EQ(body_json(*r)["id"], "a b");

  r = c.get("/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(body_json(*r)["error"], "not_found");

  ASSERT_TRUE(c.send("POST /items/42 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(body_json(*r)["error"], "method_not_allowed");
  ASSERT_TRUE(r->header("allow"));
  EXPECT_NE(r->header("allow")->find("GET"), std::string_view::npos);

  // HEAD answers GET's headers (with its Content-Length) and no body: the next response on the
  // same connection must parse cleanly.
  ASSERT_TRUE(c.send("HEAD /items/42 HTTP/1.1\r\nHost: x\r\n\r\n"));
  r = c.read_response(/*head_request=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  ASSERT_TRUE(r->header("content-length"));
  EXPECT_NE(*r->header("content-length"), "0");
  r = c.get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok");

  // 204 carries no body and no Content-Length.
  ASSERT_TRUE(c.send("DELETE /items/1 HTTP/1.1\r\nHost: x\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_FALSE(r->header("content-length"));
  r = c.get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServerTest, MalformedJsonIs400WithTheErrorShape) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient c(ts.port());
  const std::string bad = "{\"a\": ";
  ASSERT_TRUE(
      c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: " +
             std::to_string(bad.size()) + "\r\n\r\n" + bad));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  auto j = body_json(*r);
  EXPECT_EQ(j["error"], "invalid_json");
  EXPECT_TRUE(j["detail"].is_string());

  const std::string good = R"({"a":[1,2]})";
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                     std::to_string(good.size()) + "\r\n\r\n" + good));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body_json(*r)["a"][1], 2);

  // A chunked request body is accepted too.
  ASSERT_TRUE(
      c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\n{\"b\":\r\n2\r\n1}\r\n0\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body_json(*r)["b"], 1);
}

TEST(HttpServerTest, OversizedBodyIs413AndCloses) {
  ServerOptions options;
  options.limits.max_body_bytes = 1024;
  TestServer ts(options);
  ASSERT_TRUE(ts.ok()) << ts.listen_error();

  {
    RawClient c(ts.port());
    ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n" +
                       std::string(4096, 'x')));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_EQ(body_json(*r)["error"], "payload_too_large");
    EXPECT_EQ(r->header("connection"), "close");
    EXPECT_TRUE(c.wait_closed(kWait));
  }
  {
    // Chunked: the limit is discovered while reading the body.
    RawClient c(ts.port());
    ASSERT_TRUE(
        c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "800\r\n" +
               std::string(0x800, 'y') + "\r\n0\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_TRUE(c.wait_closed(kWait));
  }
}

TEST(HttpServerTest, MalformedHttpIs400AndCloses) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient c(ts.port());
  ASSERT_TRUE(c.send("GET /health HTTP/1.1\r\nHost x-no-colon\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_json(*r)["error"], "bad_request");
  EXPECT_TRUE(c.wait_closed(kWait));

  // The server is still fine.
  RawClient d(ts.port());
  auto ok = d.get("/health");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST(HttpServerTest, HeaderDribblingClientIsCutOffByTheHeaderTimeout) {
  ServerOptions options;
  options.limits.header_timeout = 300ms;
  TestServer ts(options);
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient c(ts.port());
  const auto started = Clock::now();
  // 200 header bytes at one byte per 20 ms would take 4 s; each byte restarts no timer.
  const std::string head = "GET /health HTTP/1.1\r\nX-Slow: " + std::string(170, 'a') + "\r\n\r\n";
  bool cut_off = false;
  for (char ch : head) {
    if (!c.send(std::string_view(&ch, 1)) || c.wait_closed(20ms)) {
      cut_off = true;
      break;
    }
  }
  const auto elapsed = Clock::now() - started;
  EXPECT_TRUE(cut_off);
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 2500ms) << "the head took the whole dribble instead of header_timeout";
}

TEST(HttpServerTest, ConnectionLimitAnswers503AndRecovers) {
  ServerOptions options;
  options.limits.max_connections = 2;
  TestServer ts(options);
  ASSERT_TRUE(ts.ok()) << ts.listen_error();

  auto a = std::make_unique<RawClient>(ts.port());
  RawClient b(ts.port());
  ASSERT_TRUE(a->get("/health"));
  ASSERT_TRUE(b.get("/health"));
  ASSERT_TRUE(ts.wait_active(2, kWait));

  {
    RawClient c(ts.port());
    auto r = c.get("/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    EXPECT_EQ(body_json(*r)["error"], "overloaded");
    EXPECT_EQ(r->header("connection"), "close");
    EXPECT_TRUE(c.wait_closed(kWait));
  }

  a.reset();
  ASSERT_TRUE(ts.wait_active(1, kWait));
  RawClient d(ts.port());
  auto r = d.get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServerTest, TenThousandKeepAliveRequestsOnOneConnection) {
  core::metrics::Registry registry;
  ServerOptions options;
  options.name = "keepalive";
  TestServer ts(options, &registry);
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient c(ts.port());
  constexpr int kRequests = 10'000;
  int ok = 0;
  for (int i = 0; i < kRequests; ++i) {
    auto r = c.get("/health");
    if (!r || r->status != 200 || r->body != "ok") {
      break;
    }
    ++ok;
  }
  EXPECT_EQ(ok, kRequests);
  EXPECT_EQ(ts.server().active_connections(), 1u);
  auto& counter = registry.counter(
      "edgecoder_http_requests_total", "HTTP requests answered",
      {{"service", "keepalive"}, {"method", "GET"}, {"route", "/health"}, {"code", "200"}});
  // The server counts a request after its response is written, so the last one may lag.
  const auto deadline = Clock::now() + kWait;
  while (counter.value() < static_cast<std::uint64_t>(kRequests) && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(counter.value(), static_cast<std::uint64_t>(kRequests));
  auto& histogram =
      registry.histogram("edgecoder_http_request_duration_seconds", "HTTP request handling time",
                         {{"service", "keepalive"}, {"route", "/health"}});
  EXPECT_EQ(histogram.snapshot().count, static_cast<std::uint64_t>(kRequests));
  auto& connections =
      registry.gauge("edgecoder_http_connections_active", "Open HTTP connections per listener",
                     {{"service", "keepalive"}});
  EXPECT_EQ(connections.value(), 1.0);
}

TEST(HttpServerTest, SpreadConnectionsServeEachConnectionOnOneLoopAndUseThemAll) {
  // Two io_contexts, one thread each, as the node runs them.
  asio::io_context accept_io(1);
  asio::io_context second_io(1);
  Router router;
  router.add_sync("GET", "/thread", [](const Request&) {
    return Response::text(200,
                          std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id())));
  });
  HttpServer server(accept_io, ServerOptions{}, std::move(router), nullptr);
  server.spread_connections({&accept_io, &second_io});
  ASSERT_TRUE(server.listen());
  server.start();
  auto guard_a = asio::make_work_guard(accept_io);
  auto guard_b = asio::make_work_guard(second_io);
  std::thread ta([&] { accept_io.run(); });
  std::thread tb([&] { second_io.run(); });

  std::set<std::string> all_threads;
  for (int c = 0; c < 4; ++c) {
    RawClient client(server.port());
    ASSERT_TRUE(client.connected());
    std::set<std::string> seen;
    for (int i = 0; i < 20; ++i) {
      auto r = client.get("/thread");
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200);
      seen.insert(r->body);
    }
    EXPECT_EQ(seen.size(), 1u) << "connection " << c << " changed threads";
    all_threads.insert(seen.begin(), seen.end());
  }
  EXPECT_EQ(all_threads.size(), 2u) << "connections were not spread over both loops";

  server.shutdown();
  guard_a.reset();
  guard_b.reset();
  const auto deadline = Clock::now() + kWait;
  while (server.active_connections() != 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  accept_io.stop();
  second_io.stop();
  ta.join();
  tb.join();
}

TEST(HttpServerTest, Http10GetsAnAnswerThenClose) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient c(ts.port());
  ASSERT_TRUE(c.send("GET /health HTTP/1.0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok");
  EXPECT_TRUE(c.wait_closed(kWait));

  // HTTP/1.0 with keep-alive stays open.
  RawClient k(ts.port());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(k.send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    r = k.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->header("connection"), "keep-alive");
  }
}

TEST(HttpServerTest, CorsPreflightIsAnsweredBeforeMiddlewareOnlyForListedOrigins) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient c(ts.port());

  ASSERT_TRUE(
      c.send("OPTIONS /private HTTP/1.1\r\nHost: x\r\nOrigin: tauri://localhost\r\n"
             "Access-Control-Request-Method: POST\r\n"
             "Access-Control-Request-Headers: content-type, x-mesh-token\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);  // not 401: preflight comes before authentication
  EXPECT_EQ(r->header("access-control-allow-origin"), "tauri://localhost");
  EXPECT_EQ(r->header("vary"), "Origin");
  EXPECT_EQ(r->header("access-control-allow-credentials"), "true");
  ASSERT_TRUE(r->header("access-control-allow-methods"));
  EXPECT_NE(r->header("access-control-allow-methods")->find("POST"), std::string_view::npos);
  EXPECT_EQ(r->header("access-control-allow-headers"), "content-type, x-mesh-token");
  EXPECT_TRUE(r->header("access-control-max-age"));

  // A real request from a listed origin carries the CORS headers, even when refused.
  r = c.get("/private", "Origin: tauri://localhost\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->header("access-control-allow-origin"), "tauri://localhost");
  r = c.get("/private", "Origin: tauri://localhost\r\nx-test-auth: 1\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  // An unlisted origin gets no CORS headers, and its preflight is not answered as one.
  r = c.get("/health", "Origin: https://evil.example\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->header("access-control-allow-origin"));
  ASSERT_TRUE(
      c.send("OPTIONS /private HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
             "Access-Control-Request-Method: POST\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_NE(r->status, 204);
  EXPECT_FALSE(r->header("access-control-allow-origin"));
  EXPECT_FALSE(r->header("access-control-allow-methods"));
}

TEST(HttpServerTest, RequestIdIsEchoedWhenSaneAndGeneratedOtherwise) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient c(ts.port());
  auto r = c.get("/rid", "X-Request-Id: abc.DEF_123-x\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("x-request-id"), "abc.DEF_123-x");
  EXPECT_EQ(body_json(*r)["rid"], "abc.DEF_123-x");

  r = c.get("/rid", "X-Request-Id: has spaces<script>\r\n");
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->header("x-request-id"));
  const std::string generated(*r->header("x-request-id"));
  EXPECT_FALSE(generated.empty());
  EXPECT_EQ(generated.find(' '), std::string::npos);
  EXPECT_EQ(body_json(*r)["rid"], generated);

  r = c.get("/rid", "X-Request-Id: " + std::string(129, 'a') + "\r\n");
  ASSERT_TRUE(r);
  EXPECT_NE(r->header("x-request-id"), std::string(129, 'a'));
  r = c.get("/rid");
  ASSERT_TRUE(r);
  EXPECT_NE(r->header("x-request-id"), generated);
}

// `data` as one chunk of a chunked body.
std::string wire_chunk(const std::string& data) {
  char size_line[16];
  std::snprintf(size_line, sizeof(size_line), "%zx\r\n", data.size());
  return size_line + data + "\r\n";
}

// GETs `path` on `c` and reads until the end of a chunked body (nullopt if it never ends).
std::optional<std::string> get_chunked(RawClient& c, const std::string& path) {
  if (!c.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")) return std::nullopt;
  return c.read_until("\r\n0\r\n\r\n");
}

TEST(HttpServerTest, SseStreamIsChunkedOnTheWire) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient c(ts.port());
  auto raw = get_chunked(c, "/sse");
  ASSERT_TRUE(raw) << "the chunked body never ended";
  EXPECT_NE(raw->find("HTTP/1.1 200 OK\r\n"), std::string::npos);
  EXPECT_NE(raw->find("Transfer-Encoding: chunked\r\n"), std::string::npos) << *raw;
  EXPECT_NE(raw->find("Content-Type: text/event-stream\r\n"), std::string::npos);
  EXPECT_NE(raw->find("Cache-Control: no-cache\r\n"), std::string::npos);
  EXPECT_NE(raw->find("X-Accel-Buffering: no\r\n"), std::string::npos);
  for (int i = 0; i < 3; ++i) {
    const std::string frame = sse_frame("event " + std::to_string(i), "tick");
    EXPECT_NE(raw->find(wire_chunk(frame)), std::string::npos) << "chunk " << i << " missing in:\n"
                                                               << *raw;
  }
  // The connection stays usable after the stream.
  auto r = c.get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// The head sent with the first piece and the end with the last one: the same bytes on the wire
// as a stream that sends each separately, whatever the stream says about itself.
TEST(HttpServerTest, StreamsThatWriteAtOnceKeepTheWireFormat) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient c(ts.port());
  auto raw = get_chunked(c, "/sse-at-once");
  ASSERT_TRUE(raw) << "the chunked body never ended";
  EXPECT_EQ(raw->rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << *raw;
  EXPECT_NE(raw->find("Transfer-Encoding: chunked\r\n"), std::string::npos) << *raw;
  EXPECT_NE(raw->find("Content-Type: text/event-stream\r\n"), std::string::npos) << *raw;
  std::string expected_body;
  for (const char* name : {"first", "second", "last"}) {
    expected_body += wire_chunk(sse_frame(name, "tick"));
  }
  expected_body += "0\r\n\r\n";
  const auto head_end = raw->find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  EXPECT_EQ(raw->substr(head_end + 4), expected_body);
  auto r = c.get("/health");  // the connection stays usable
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  // A stream with nothing to say yet still shows its head while it waits.
  RawClient w(ts.port());
  ASSERT_TRUE(w.send("GET /sse-at-once-waits HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto head = w.read_until("\r\n\r\n", std::chrono::milliseconds(1500));
  ASSERT_TRUE(head) << "the head was held back while the stream waited";
  EXPECT_EQ(head->rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_EQ(head->find("late"), std::string::npos) << "the head came only with the late piece";
  auto rest = w.read_until("\r\n0\r\n\r\n");
  ASSERT_TRUE(rest);
  EXPECT_NE(rest->find(sse_frame("late", "tick")), std::string::npos) << *rest;

  // A stream that writes nothing: the head and an empty body.
  RawClient n(ts.port());
  ASSERT_TRUE(n.send("GET /sse-at-once-nothing HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto empty = n.read_response();
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 200);
  EXPECT_EQ(empty->body, "");

  // HTTP/1.0 has no chunks: the raw pieces, then close.
  RawClient old(ts.port());
  ASSERT_TRUE(old.send("GET /sse-at-once HTTP/1.0\r\n\r\n"));
  EXPECT_TRUE(old.wait_closed(kWait));
  auto all = old.read_until("HTTP/1.1 200");
  ASSERT_TRUE(all);
  EXPECT_NE(all->find(sse_frame("first", "tick") + sse_frame("second", "tick") +
                      sse_frame("last", "tick")),
            std::string::npos)
      << *all;
}

TEST(HttpServerTest, WebSocketEcho) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  asio::io_context io;
  boost::beast::websocket::stream<tcp::socket> ws(io);
  ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), ts.port()));
  ws.handshake("127.0.0.1", "/ws");
  for (const std::string text : {"hello", "second message"}) {
    ws.text(true);
    ws.write(asio::buffer(text));
    boost::beast::flat_buffer buf;
    ws.read(buf);
    EXPECT_TRUE(ws.got_text());
    EXPECT_EQ(boost::beast::buffers_to_string(buf.data()), text);
  }
  ws.binary(true);
  const std::string bin("\x00\x01\x02", 3);
  ws.write(asio::buffer(bin));
  boost::beast::flat_buffer buf;
  ws.read(buf);
  EXPECT_TRUE(ws.got_binary());
  EXPECT_EQ(boost::beast::buffers_to_string(buf.data()), bin);
  ws.close(boost::beast::websocket::close_code::normal);
  EXPECT_TRUE(ts.wait_drained(kWait));

  // Without an Upgrade header the route answers 426.
  RawClient c(ts.port());
  auto r = c.get("/ws");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 426);
}

TEST(HttpServerTest, HandlerExceptionIs500AndServingGoesOn) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient c(ts.port());
  for (int i = 0; i < 3; ++i) {
    auto r = c.get("/boom");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 500);
    EXPECT_EQ(body_json(*r)["error"], "internal");
    EXPECT_EQ(r->body.find("secret-token"), std::string::npos);
  }
  auto r = c.get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServerTest, ShutdownLetsTheRequestInFlightFinishAndClosesIdleConnections) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  RawClient idle(ts.port());
  ASSERT_TRUE(idle.get("/health"));  // now an idle keep-alive connection
  RawClient busy(ts.port());
  ASSERT_TRUE(busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto started = ts.state().slow_started.get_future();
  ASSERT_EQ(started.wait_for(kWait), std::future_status::ready);

  const auto t0 = Clock::now();
  ts.server().shutdown();
  auto r = busy.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "slow done");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(busy.wait_closed(kWait));
  EXPECT_TRUE(idle.wait_closed(kWait));
  EXPECT_TRUE(ts.wait_drained(kWait));
  EXPECT_LT(Clock::now() - t0, 5s);

  // No new connections are served.
  RawClient late(ts.port());
  if (late.connected()) {
    EXPECT_FALSE(late.get("/health", "") && true) << "served after shutdown";
  }
}

TEST(HttpServerTest, ListenReportsAPortInUseAsConflict) {
  TestServer ts;
  ASSERT_TRUE(ts.ok()) << ts.listen_error();
  asio::io_context io;
  ServerOptions options;
  options.port = ts.port();
  HttpServer second(io, options, Router(), nullptr);
  auto bound = second.listen();
  ASSERT_FALSE(bound);
  EXPECT_EQ(bound.error().code, core::Errc::conflict);
  EXPECT_NE(bound.error().detail.find("127.0.0.1:" + std::to_string(ts.port())), std::string::npos)
      << bound.error().detail;

  options.bind_address = "not-an-address";
  options.port = 0;
  HttpServer third(io, options, Router(), nullptr);
  auto bad = third.listen();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, core::Errc::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// TLS with a CA and a server certificate made at test time.

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("edgecoder-net-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
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

bool make_test_pki(const std::filesystem::path& dir) {
  const std::string d = dir.string();
  const std::string cmd =
      "cd '" + d +
      "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout ca.key -out ca.pem -days 2 -subj /CN=edgecoder-test-ca "
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
      ">/dev/null 2>&1 && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key "
      "-out server.csr -subj /CN=localhost >/dev/null 2>&1 && "
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > "
      "ext.cnf && "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem "
      "-days 2 -extfile ext.cnf >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Returns the handshake error (empty on success); on success also fetches /health.
std::string tls_get_health(std::uint16_t port, const std::filesystem::path& ca,
                           const std::string& host, std::string* response) {
  namespace ssl = asio::ssl;
  asio::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(ca.string());
  ssl::stream<tcp::socket> stream(io, ctx);
  stream.set_verify_mode(ssl::verify_peer);
  stream.set_verify_callback(ssl::host_name_verification(host));
  stream.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  boost::system::error_code ec;
  stream.handshake(ssl::stream_base::client, ec);
  if (ec) {
    return ec.message().empty() ? std::string("handshake failed") : ec.message();
  }
  const std::string req = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  asio::write(stream, asio::buffer(req), ec);
  std::string out;
  char buf[4096];
  for (;;) {
    const std::size_t n = stream.read_some(asio::buffer(buf), ec);
    out.append(buf, n);
    if (ec) {
      break;
    }
  }
  *response = out;
  return {};
}

TEST(HttpServerTlsTest, ServesHttpsVerifiedByTheCaAndHostName) {
  TempDir dir;
  ASSERT_TRUE(make_test_pki(dir.path())) << "openssl failed";
  ServerOptions options;
  options.tls = TlsFiles{dir.path() / "server.pem", dir.path() / "server.key"};
  TestServer ts(options);
  ASSERT_TRUE(ts.ok()) << ts.listen_error();

  std::string response;
  EXPECT_EQ(tls_get_health(ts.port(), dir.path() / "ca.pem", "localhost", &response), "");
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response;
  EXPECT_NE(response.find("\r\n\r\nok"), std::string::npos);

  std::string unused;
  EXPECT_NE(tls_get_health(ts.port(), dir.path() / "ca.pem", "wrong.example", &unused), "");

  // Plain HTTP to the TLS port gets nothing useful and does not hurt the server.
  {
    RawClient plain(ts.port());
    ASSERT_TRUE(plain.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_TRUE(plain.wait_closed(kWait));
  }
  EXPECT_EQ(tls_get_health(ts.port(), dir.path() / "ca.pem", "localhost", &response), "");
}

TEST(HttpServerTlsTest, WebSocketOverTls) {
  TempDir dir;
  ASSERT_TRUE(make_test_pki(dir.path())) << "openssl failed";
  ServerOptions options;
  options.tls = TlsFiles{dir.path() / "server.pem", dir.path() / "server.key"};
  TestServer ts(options);
  ASSERT_TRUE(ts.ok()) << ts.listen_error();

  namespace ssl = asio::ssl;
  asio::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file((dir.path() / "ca.pem").string());
  boost::beast::websocket::stream<ssl::stream<tcp::socket>> ws(io, ctx);
  ws.next_layer().set_verify_mode(ssl::verify_peer);
  ws.next_layer().set_verify_callback(ssl::host_name_verification("localhost"));
  ws.next_layer().next_layer().connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), ts.port()));
  ws.next_layer().handshake(ssl::stream_base::client);
  ws.handshake("localhost", "/ws");
  const std::string text = "over tls";
  ws.write(asio::buffer(text));
  boost::beast::flat_buffer buf;
  ws.read(buf);
  EXPECT_EQ(boost::beast::buffers_to_string(buf.data()), text);
  ws.close(boost::beast::websocket::close_code::normal);
}

TEST(HttpServerTlsTest, BadTlsFilesAreInvalidArgumentNamingTheFile) {
  TempDir dir;
  asio::io_context io;
  ServerOptions options;
  options.tls = TlsFiles{dir.path() / "missing.pem", dir.path() / "missing.key"};
  HttpServer server(io, options, Router(), nullptr);
  auto bound = server.listen();
  ASSERT_FALSE(bound);
  EXPECT_EQ(bound.error().code, core::Errc::invalid_argument);
  EXPECT_NE(bound.error().detail.find("missing.pem"), std::string::npos) << bound.error().detail;

  {
    std::ofstream(dir.path() / "junk.pem") << "not a certificate\n";
    std::ofstream(dir.path() / "junk.key") << "not a key\n";
  }
  options.tls = TlsFiles{dir.path() / "junk.pem", dir.path() / "junk.key"};
  HttpServer junk(io, options, Router(), nullptr);
  auto bad = junk.listen();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, core::Errc::invalid_argument);
  EXPECT_NE(bad.error().detail.find("junk.pem"), std::string::npos) << bad.error().detail;
}

}  // namespace
}  // namespace edgecoder::net

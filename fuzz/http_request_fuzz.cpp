// libFuzzer target: raw bytes -> Beast's HTTP/1.1 request parser with the server's limits ->
// net::Request (target split, percent-decoding, query look-up, JSON body parsing) -> the Router
// (matching and dispatch through middleware to a handler). Built with clang-14 by fuzz/run.sh
// from only the files it needs.
#include <cstddef>
#include <cstdint>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "net/http.h"
#include "net/router.h"

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using edgecoder::net::Request;
using edgecoder::net::Response;
using edgecoder::net::Router;

Router make_fuzz_router() {
  Router router;
  router.use([](const Request& r) -> std::optional<Response> {
    if (r.header("x-deny")) {
      return Response::error(401, "unauthorized", "denied");
    }
    return std::nullopt;
  });
  router.add_sync("GET", "/health", [](const Request&) {
    return Response::json(200, {{"ok", 1}});
  });
  router.add_sync("GET", "/tasks/:taskId", [](const Request& r) {
    return Response::json(200, {{"id", r.param("taskId")}, {"q", r.query_param("a").value_or("")}});
  });
  router.add_sync("POST", "/tasks/:taskId/subtasks/:subtaskId/result", [](const Request& r) {
    auto body = edgecoder::net::parse_json_body(r);
    return body ? Response::json(200, *body) : Response::error(body.error());
  });
  router.add_sync("GET", "/static/*", [](const Request& r) { return Response::text(200, r.path); });
  return router;
}

asio::awaitable<void> fuzz_dispatch(const Router* router, Request request) {
  Response response = co_await router->dispatch(std::move(request));
  (void)response;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Router router = make_fuzz_router();
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  parser.eager(true);
  boost::system::error_code ec;
  std::size_t used = 0;
  while (used < size && !parser.is_done()) {
    std::size_t n = parser.put(asio::buffer(data + used, size - used), ec);
    if (ec || n == 0) {
      break;
    }
    used += n;
  }
  if (!ec && !parser.is_done() && parser.got_some()) {  // put_eof needs some input
    parser.put_eof(ec);
  }
  if (ec || !parser.is_done()) {
    return 0;
  }
  auto& msg = parser.get();
  Request request;
  request.method = std::string(msg.method_string());
  edgecoder::net::set_request_target(request, msg.target());
  for (const auto& field : msg) {
    request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(msg.body());
  (void)request.query_param("a");
  asio::io_context io;
  asio::co_spawn(io, fuzz_dispatch(&router, std::move(request)), asio::detached);
  io.run();
  return 0;
}

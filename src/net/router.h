// Router: maps (method, path pattern) to handlers. Patterns are literal segments and `:name`
// parameters ("/tasks/:taskId/subtasks/:subtaskId/result"); a trailing "*" segment matches the
// rest of the path. Literal segments win over parameters. Middleware runs before handlers in
// the order added and may answer instead of the handler (authentication, IP allow-lists).
// Thread-safety: build on one thread before the server starts; match() is then const and safe
// from any thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/http.h"

namespace edgecoder::net {

// Coroutine handler. Take the Request by value (coroutine parameter rule, ARCHITECTURE.md §3).
using Handler = std::function<asio::awaitable<Response>(Request)>;
using SyncHandler = std::function<Response(const Request&)>;
// Returns a response to answer instead of the handler, or nullopt to continue.
using Middleware = std::function<std::optional<Response>(const Request&)>;

class Router {
 public:
  Router();
  ~Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;

  void add(std::string_view method, std::string_view pattern, Handler handler);
  void add_sync(std::string_view method, std::string_view pattern, SyncHandler handler);
  void use(Middleware middleware);

  struct Match {
    const Handler* handler = nullptr;
    std::string pattern;
    std::map<std::string, std::string> params;
  };
  enum class Miss { not_found, method_not_allowed };
  struct Lookup {
    std::optional<Match> match;
    Miss miss = Miss::not_found;
    std::vector<std::string> allowed_methods;  // for 405 Allow
  };
  Lookup match(std::string_view method, std::string_view path) const;

  // Runs middleware, then the matched handler; 404/405 with the error shape otherwise.
  // Sets request.params and request.route. HEAD falls back to GET. When `matched_route` is
  // given it receives the route pattern before the handler runs (for metrics labels); it must
  // outlive the await.
  asio::awaitable<Response> dispatch(Request request, std::string* matched_route = nullptr) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgecoder::net

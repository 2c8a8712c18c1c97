// Router: a flat list of routes scanned per request. Services register tens of routes, so a scan
// of pre-split patterns is cheaper and simpler than a trie. Ranking: among the routes whose
// pattern matches the path, the one whose segments are "more literal" from the left wins
// (literal > :param > trailing *), so "/tasks/new" beats "/tasks/:id" whatever the add order.
#include "net/router.h"

#include <algorithm>
#include <exception>
#include <typeinfo>

#include "core/log.h"

namespace edgecoder::net {

namespace detail {

// Ranks used to compare candidate routes segment by segment; higher wins.
enum class RouterSegmentKind : int { wildcard = 0, param = 1, literal = 2 };

struct RouterSegment {
  RouterSegmentKind kind = RouterSegmentKind::literal;
  std::string text;  // literal text, or the parameter name (without ':')
};

struct RouterRoute {
  std::string method;
  std::string pattern;
  std::vector<RouterSegment> segments;
  Handler handler;
};

// Non-capturing coroutine that runs a synchronous handler (capturing lambda coroutines are
// miscompiled by GCC 12, so add_sync wraps with a plain lambda calling this).
asio::awaitable<Response> router_run_sync(std::shared_ptr<const SyncHandler> handler,
                                          Request request) {
  co_return (*handler)(request);
}

}  // namespace detail

namespace {

// Splits "/a/b/c" into {"a","b","c"}; empty segments (from "//" or a trailing '/') are kept
// only at the end so that "/tasks/" and "/tasks" stay distinct patterns.
void router_split(std::string_view path, std::vector<std::string_view>& out) {
  out.clear();
  if (!path.empty() && path.front() == '/') {
    path.remove_prefix(1);
  }
  if (path.empty()) {
    return;
  }
  for (;;) {
    const std::size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) {
      break;
    }
    path.remove_prefix(slash + 1);
  }
}

// Whether `route` matches `parts`; on success fills `ranks` with the segment kinds.
bool router_matches(const detail::RouterRoute& route, const std::vector<std::string_view>& parts,
                    std::vector<int>& ranks) {
  ranks.clear();
  const auto& segs = route.segments;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const auto& seg = segs[i];
    if (seg.kind == detail::RouterSegmentKind::wildcard) {
      ranks.push_back(static_cast<int>(seg.kind));
      return true;  // the wildcard is always last and also matches nothing
    }
    if (i >= parts.size()) {
      return false;
    }
    if (seg.kind == detail::RouterSegmentKind::literal) {
      if (seg.text != parts[i]) {
        return false;
      }
    } else if (parts[i].empty()) {
      return false;  // a parameter never binds an empty segment
    }
    ranks.push_back(static_cast<int>(seg.kind));
  }
  return segs.size() == parts.size();
}

}  // namespace

struct Router::Impl {
  std::vector<detail::RouterRoute> routes;
  std::vector<Middleware> middleware;
};

Router::Router() : impl_(std::make_unique<Impl>()) {}
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

void Router::add(std::string_view method, std::string_view pattern, Handler handler) {
  detail::RouterRoute route;
  route.method = std::string(method);
  route.pattern = std::string(pattern);
  route.handler = std::move(handler);
  std::vector<std::string_view> parts;
  router_split(pattern, parts);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    detail::RouterSegment seg;
    if (parts[i] == "*" && i + 1 == parts.size()) {
      seg.kind = detail::RouterSegmentKind::wildcard;
    } else if (parts[i].size() > 1 && parts[i].front() == ':') {
      seg.kind = detail::RouterSegmentKind::param;
      seg.text = std::string(parts[i].substr(1));
    } else {
      seg.text = std::string(parts[i]);
    }
    route.segments.push_back(std::move(seg));
  }
  impl_->routes.push_back(std::move(route));
}

void Router::add_sync(std::string_view method, std::string_view pattern, SyncHandler handler) {
  auto shared = std::make_shared<const SyncHandler>(std::move(handler));
  add(method, pattern,
      [shared](Request request) { return detail::router_run_sync(shared, std::move(request)); });
}

void Router::use(Middleware middleware) { impl_->middleware.push_back(std::move(middleware)); }

Router::Lookup Router::match(std::string_view method, std::string_view path) const {
  Lookup lookup;
  std::vector<std::string_view> parts;
  parts.reserve(8);
  router_split(path, parts);

  std::vector<int> ranks;
  std::vector<int> best_ranks;
  const detail::RouterRoute* best = nullptr;
  const detail::RouterRoute* best_get = nullptr;  // HEAD falls back to GET
  std::vector<int> best_get_ranks;
  bool path_known = false;
  for (const auto& route : impl_->routes) {
    if (!router_matches(route, parts, ranks)) {
      continue;
    }
    path_known = true;
    if (route.method == method) {
      if (best == nullptr || ranks > best_ranks) {
        best = &route;
        best_ranks = ranks;
      }
    } else if (method == "HEAD" && route.method == "GET") {
      if (best_get == nullptr || ranks > best_get_ranks) {
        best_get = &route;
        best_get_ranks = ranks;
      }
    }
    if (std::find(lookup.allowed_methods.begin(), lookup.allowed_methods.end(), route.method) ==
        lookup.allowed_methods.end()) {
      lookup.allowed_methods.push_back(route.method);
    }
  }
  if (best == nullptr) {
    best = best_get;
  }
  if (best == nullptr) {
    lookup.miss = path_known ? Miss::method_not_allowed : Miss::not_found;
    const bool has_get = std::find(lookup.allowed_methods.begin(), lookup.allowed_methods.end(),
                                   "GET") != lookup.allowed_methods.end();
    const bool has_head = std::find(lookup.allowed_methods.begin(), lookup.allowed_methods.end(),
                                    "HEAD") != lookup.allowed_methods.end();
    if (has_get && !has_head) {
      lookup.allowed_methods.emplace_back("HEAD");
    }
    return lookup;
  }
  Match m;
  m.handler = &best->handler;
  m.pattern = best->pattern;
  for (std::size_t i = 0; i < best->segments.size(); ++i) {
    const auto& seg = best->segments[i];
    if (seg.kind == detail::RouterSegmentKind::param) {
      m.params.emplace(seg.text, std::string(parts[i]));
    } else if (seg.kind == detail::RouterSegmentKind::wildcard) {
      // The rest of the path, re-joined, under the name "*".
      std::string rest;
      for (std::size_t j = i; j < parts.size(); ++j) {
        if (j > i) {
          rest += '/';
        }
        rest += parts[j];
      }
      m.params.emplace("*", std::move(rest));
    }
  }
  lookup.allowed_methods.clear();
  lookup.match = std::move(m);
  return lookup;
}

// Middleware runs only for requests that matched a route, after request.route and
// request.params are set, so it can exempt public routes by pattern.
asio::awaitable<Response> Router::dispatch(Request request, std::string* matched_route) const {
  Lookup lookup = match(request.method, request.path);
  if (!lookup.match) {
    if (lookup.miss == Miss::not_found) {
      co_return Response::error(404, "not_found", "no route for " + request.path);
    }
    Response r = Response::error(405, "method_not_allowed",
                                 request.method + " is not allowed on " + request.path);
    std::string allow;
    for (const auto& m : lookup.allowed_methods) {
      if (!allow.empty()) {
        allow += ", ";
      }
      allow += m;
    }
    r.set_header("Allow", std::move(allow));
    co_return r;
  }
  request.route = std::move(lookup.match->pattern);
  request.params = std::move(lookup.match->params);
  if (matched_route != nullptr) {
    *matched_route = request.route;
  }
  const Handler* handler = lookup.match->handler;
  std::string route = request.route;
  try {
    for (const auto& mw : impl_->middleware) {
      if (auto answer = mw(request)) {
        co_return std::move(*answer);
      }
    }
    co_return co_await (*handler)(std::move(request));
  } catch (const std::exception& e) {
    // The text goes to the log only: it may quote input or internals.
    core::log::error("net", "handler_exception",
                     {{"route", route}, {"type", typeid(e).name()}, {"what", e.what()}});
  } catch (...) {
    core::log::error("net", "handler_exception", {{"route", route}, {"type", "unknown"}});
  }
  co_return Response::error(500, "internal", "the server failed to handle the request");
}

}  // namespace edgecoder::net

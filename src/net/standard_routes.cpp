#include "net/standard_routes.h"

#include <nlohmann/json.hpp>

#include "core/crypto.h"

namespace edgecoder::net {

namespace {

constexpr std::string_view kInsecureWarning =
    "EDGECODER_INSECURE_DEV=1: tokens are not enforced; never expose this node";

bool standard_routes_accepts_only_json(const Request& request) {
  auto accept = request.header("accept");
  if (!accept) {
    return false;
  }
  return accept->find("application/json") != std::string_view::npos &&
         accept->find("text/plain") == std::string_view::npos &&
         accept->find("*/*") == std::string_view::npos;
}

}  // namespace

void add_standard_routes(Router& router, StandardRoutes routes) {
  auto shared = std::make_shared<const StandardRoutes>(std::move(routes));

  // Liveness is constant for the life of the process: serialise it once.
  nlohmann::json health = {
      {"ok", true}, {"service", shared->service}, {"version", EDGECODER_VERSION}};
  if (shared->insecure_dev) {
    health["insecureDev"] = true;
    health["warning"] = kInsecureWarning;
  }
  router.add_sync("GET", "/health", [body = health.dump()](const Request&) {
    return Response::text(200, body, "application/json");
  });

  router.add_sync("GET", "/ready", [shared](const Request&) {
    if (shared->draining && shared->draining->load()) {
      Response r = Response::error(503, "draining", "the service is shutting down");
      r.set_header("Retry-After", "5");
      return r;
    }
    if (shared->ready_check) {
      auto ready = shared->ready_check();
      if (!ready) {
        Response r = Response::error(503, ready.error().wire(), ready.error().detail);
        r.set_header("Retry-After", "5");
        return r;
      }
    }
    return Response::json(200, {{"ready", true}, {"service", shared->service}});
  });

  router.add_sync("GET", "/metrics", [shared](const Request& request) {
    if (!shared->metrics_token.empty() &&
        !core::crypto::constant_time_equal(bearer_token(request), shared->metrics_token)) {
      Response r = Response::error(401, "unauthorized",
                                   "/metrics needs Authorization: Bearer "
                                   "<METRICS_TOKEN>");
      r.set_header("WWW-Authenticate", "Bearer");
      return r;
    }
    if (standard_routes_accepts_only_json(request)) {
      return Response::json(200, shared->metrics->render_json());
    }
    return Response::text(200, shared->metrics->render_text(),
                          "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace edgecoder::net

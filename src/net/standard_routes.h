// The routes every service answers: GET /health (liveness), GET /ready (dependencies usable,
// not draining) and GET /metrics (Prometheus text; JSON counters for clients that accept only
// application/json). None needs a token, except /metrics when METRICS_TOKEN is set.
// Thread-safety: the callbacks are called from connection strands and must be thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/metrics.h"
#include "core/result.h"
#include "net/router.h"

namespace edgecoder::net {

struct StandardRoutes {
  std::string service;                         // "coordinator", ...
  core::metrics::Registry* metrics = nullptr;  // required; outlives the router
  std::string metrics_token;                   // empty = /metrics is public
  bool insecure_dev = false;                   // said loudly in /health
  // Whether the service's dependencies are usable; empty = always ready.
  std::function<core::Result<void>()> ready_check;
  // Set while the process drains; /ready then answers 503.
  std::shared_ptr<const std::atomic<bool>> draining;
};

void add_standard_routes(Router& router, StandardRoutes routes);

}  // namespace edgecoder::net

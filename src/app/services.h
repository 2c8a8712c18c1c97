// The seam between the node and the services: mount_service() attaches one service's routes to
// its router and returns what must stay alive while that service serves. Each service adds its
// own case in services.cpp; node.cpp stays the same.
// Thread-safety: called once per service from run_node() before any listener starts.
#pragma once

#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>

#include "core/config.h"
#include "core/metrics.h"
#include "core/mounted.h"
#include "core/result.h"
#include "net/router.h"

namespace edgecoder::app {

using MountedService = core::Mounted;

// Adds the service's own routes (not /health, /ready, /metrics) to `router`. A service that
// cannot start (for example its store cannot be opened) returns an error that names the cause;
// the node then exits 1 before anything serves.
core::Result<MountedService> mount_service(core::Service service, const core::Config& config,
                                           boost::asio::io_context& io, net::Router& router,
                                           core::metrics::Registry& registry);

}  // namespace edgecoder::app

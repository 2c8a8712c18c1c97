// The control plane (:4303): where operators run the mesh. Operator routes (ADMIN_API_TOKEN,
// ALLOWED_ADMIN_IPS, TRUSTED_PROXIES) for agents and their approval, registration tokens, the
// network mode, credit accounts, model rollouts, the admin dashboard and the audit log; the
// public coordinator discovery feed
// (GET /network/coordinators). Routes and settings: docs/control-plane.md; wire contract:
// shared/reference/upstream-control-portal-deploy.md §1.
//
// Ownership (ARCHITECTURE.md §4): the control plane keeps its audit log and rollout policies in
// its own store; it changes mesh state only through the coordinator's operator API
// (/admin/* on COORDINATOR_URL, with the same ADMIN_API_TOKEN), and every change it makes there
// is written to the audit log with who, what, when and from where.
// Thread-safety: handlers run concurrently on the io_context's threads; what they share is
// thread-safe (the store, the HTTP client).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>

#include "core/config.h"
#include "core/metrics.h"
#include "core/mounted.h"
#include "core/result.h"
#include "net/router.h"
#include "store/store.h"

namespace edgecoder::control {

// ready_check: the store answers; on_drain stops the rollout reconciler; on_stopped waits out
// store calls.
using Mounted = core::Mounted;

// For tests: a store opened by the caller and a clock (ms since the epoch).
struct MountOverrides {
  std::unique_ptr<store::Store> store;
  std::function<std::int64_t()> clock;
};

// Adds the control plane's routes and its operator gate to `router`, opens its store (unless
// given) and starts the rollout reconciler on `io`. Errors name the setting or the store problem.
core::Result<Mounted> mount(const core::Config& config, boost::asio::io_context& io,
                            net::Router& router, core::metrics::Registry& registry,
                            MountOverrides overrides = {});

}  // namespace edgecoder::control

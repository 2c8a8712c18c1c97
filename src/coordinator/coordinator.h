// The coordinator (:4301): the mesh scheduler. Agents register, heartbeat, pull subtasks under
// leases and report results; clients submit tasks (decomposed by the inference service, or with
// their own subtasks), follow them over SSE and fetch the assembled output; operators approve
// agents and issue registration tokens. Rules: ARCHITECTURE.md §5 (scheduler) and §6 (roles);
// wire contract: shared/reference/upstream-coordinator.md; routes and settings:
// docs/coordinator.md.
//
// Ownership: all scheduling state lives in the store (SQLite or a PostgreSQL shared by several
// coordinators); the process keeps only caches, so a restart or a second coordinator sees the
// same queue. mount() owns the store, an HTTP client (inference, model probe) and a sweeper
// thread that expires leases and prunes old tasks without needing any request traffic.
// Thread-safety: handlers run concurrently on the io_context's threads; everything they share is
// thread-safe (the store, atomics, the HTTP client).
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

namespace edgecoder::coordinator {

// ready_check: the store answers; on_drain stops the sweeper; on_stopped waits out store calls.
using Mounted = core::Mounted;

// For tests: a store opened by the caller and a clock (ms since the epoch) to move time.
struct MountOverrides {
  std::unique_ptr<store::Store> store;
  std::function<std::int64_t()> clock;
};

// Adds the coordinator's routes and its auth middleware to `router`, opens the store (unless
// given) and starts the lease sweeper. Errors name the setting or the store problem.
core::Result<Mounted> mount(const core::Config& config, boost::asio::io_context& io,
                            net::Router& router, core::metrics::Registry& registry,
                            MountOverrides overrides = {});

}  // namespace edgecoder::coordinator

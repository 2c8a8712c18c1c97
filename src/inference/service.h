// The inference service (:4302): decomposition of tasks into subtasks (/decompose), escalation of
// failed code to the larger model (/escalate), a streaming chat relay (/chat, SSE), model
// management (/model/swap|pull|status|list|pull/progress), a dashboard (/dashboard and its JSON
// API), and the contract's flat JSON counters on /metrics for clients that accept only JSON.
// Wire contract: shared/reference/upstream-inference-ide-executor.md §1; docs/inference.md.
//
// Every route except /health, /ready and /metrics needs `x-inference-token`; /decompose,
// /escalate and /chat also need a coordinator signature when signatures are on (auth.h).
//
// The active model starts as the coordinator model (OLLAMA_COORDINATOR_MODEL, else OLLAMA_MODEL;
// OPENAI_* likewise) and is what decomposition, escalation and chat use; /model/swap changes it
// (and a pull started by a swap activates the model when it finishes). /ready reports whether the
// model server answered its last reachability check (always ready for edgecoder-local).
//
// Ownership: InferenceService is shared (shared_ptr) by the router's handlers, the background
// checks and streams in flight. Thread-safety: handlers run on any connection strand; the state
// is guarded by a mutex and metrics are atomic.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include "core/config.h"
#include "core/metrics.h"
#include "core/mounted.h"
#include "core/result.h"
#include "inference/auth.h"
#include "model/provider.h"
#include "net/router.h"

namespace edgecoder::inference {

namespace asio = boost::asio;

struct ServiceOptions {
  std::string auth_token;     // empty = no token check (EDGECODER_INSECURE_DEV only)
  std::string metrics_token;  // METRICS_TOKEN, for the JSON form of /metrics
  SignatureOptions signatures;
  model::ProviderConfig provider;
  std::chrono::milliseconds health_interval{10'000};  // model server reachability checks
};

// Reads INFERENCE_AUTH_TOKEN, METRICS_TOKEN, the signature, provider and timeout settings.
core::Result<ServiceOptions> service_options_from(const core::Config& config);

class InferenceService {
 public:
  // Builds the provider from options.provider. `metrics` must outlive the service.
  static core::Result<std::shared_ptr<InferenceService>> create(ServiceOptions options,
                                                                asio::any_io_executor executor,
                                                                core::metrics::Registry& metrics);
  // With a ready-made provider (tests).
  static std::shared_ptr<InferenceService> create_with_provider(
      ServiceOptions options, std::unique_ptr<model::Provider> provider,
      asio::any_io_executor executor, core::metrics::Registry& metrics);
  ~InferenceService();
  InferenceService(const InferenceService&) = delete;
  InferenceService& operator=(const InferenceService&) = delete;

  // Adds the routes and the authentication middleware. The node adds /health, /ready and
  // /metrics to the same router afterwards.
  void add_routes(net::Router& router);
  // Starts the background reachability checks.
  void start();
  // Stops background work (checks, pulls). Requests in flight finish.
  void stop();
  // For /ready: ok, or Errc::unavailable "model_unavailable" naming the model server.
  core::Result<void> ready() const;

  std::string active_model() const;
  const model::Provider& provider() const;

  struct Impl;

 private:
  explicit InferenceService(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

using Mounted = core::Mounted;

// What the node calls (app/services.cpp): options from the configuration, the service on `io`,
// its routes on `router`.
core::Result<Mounted> mount(const core::Config& config, asio::io_context& io, net::Router& router,
                            core::metrics::Registry& registry);

}  // namespace edgecoder::inference

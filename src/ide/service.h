// The IDE provider (:4304): how developers' tools reach EdgeCoder. It speaks the OpenAI API
// (/v1/models, /v1/chat/completions) and the Ollama API (/api/tags, /api/chat, /api/generate,
// /api/version, /api/show), so that any client of either works unchanged, and it serves the
// routes the existing EdgeCoder clients call: /status, /run, /run/local, /run/swarm (VS Code
// extension) and /v1/ide/* with the /v1/ide/chat agent loop and its tools (desktop app).
// Wire contract: shared/reference/upstream-inference-ide-executor.md §3; docs/ide.md.
//
// Routing: a request goes to the first route of IDE_ROUTE_ORDER that can take it. `local` is the
// configured model provider (src/model); it passes a model it does not have (model_not_found) or
// cannot reach (model_unavailable) on to the next route. `mesh` submits the request as a
// coordinator task (/tasks with the mesh token) and streams its progress and output back as
// chat chunks. The model `edgecoder/mesh` always goes to the mesh.
//
// Security: binds where the node binds (127.0.0.1 by default). IDE_PROVIDER_API_KEY (env, file or
// credential) is required as a Bearer key whenever the node listens beyond loopback; without it
// the node refuses to start, unless EDGECODER_TRUST_CONTAINER_NETWORK=1 inside a container. Tools
// work only inside the IDE_PROJECT_ROOTS allow-list; writes and shell commands wait for an
// approval that only the session that asked can give; shell commands run in the sandbox.
//
// Ownership: IdeService is shared (shared_ptr) by the router's handlers and streams in flight.
// Thread-safety: handlers run on any event loop; shared state is guarded by a mutex.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include "core/config.h"
#include "core/metrics.h"
#include "core/mounted.h"
#include "core/result.h"
#include "model/provider.h"
#include "net/router.h"
#include "sandbox/sandbox.h"

namespace edgecoder::ide {

namespace asio = boost::asio;

enum class Route { local, mesh };
std::string_view route_name(Route route);

struct IdeOptions {
  std::string api_key;  // empty = no key asked (only allowed while listening on loopback)
  model::ProviderConfig provider;
  std::vector<std::filesystem::path> project_roots;  // IDE_PROJECT_ROOTS; empty = no tools
  std::string coordinator_url;                       // empty = no mesh route
  std::string mesh_token;
  std::vector<Route> route_order = {Route::local, Route::mesh};
  std::string mesh_model = "edgecoder/mesh";
  std::string mesh_language = "python";
  std::chrono::milliseconds mesh_poll{250};
  // With no news from the mesh for this long, a "still running" line goes to the client (it is
  // also how a client that left is noticed, so that its task gets cancelled).
  std::chrono::milliseconds mesh_progress_interval{15'000};
  std::chrono::milliseconds mesh_timeout{300'000};
  std::chrono::milliseconds approval_timeout{300'000};
  int max_agent_steps = 20;
  // Runs /run code and the run_shell tool; nullopt = both disabled.
  std::optional<sandbox::Options> sandbox;
};

// Reads IDE_PROVIDER_API_KEY, IDE_PROJECT_ROOTS, IDE_ROUTE_ORDER, COORDINATOR_URL,
// MESH_AUTH_TOKEN, IDE_MESH_*, IDE_APPROVAL_TIMEOUT_MS, IDE_AGENT_MAX_STEPS, the provider and
// the sandbox settings. Errors name the setting.
core::Result<IdeOptions> ide_options_from(const core::Config& config);

// Refuses to serve beyond loopback without an API key (the error says what to set). Inside a
// container EDGECODER_TRUST_CONTAINER_NETWORK=1 lifts the rule (the port is then published on
// the host's loopback only). `in_container` is detected by the caller.
core::Result<void> check_exposure(std::string_view bind_address, const IdeOptions& options,
                                  bool trust_container_network, bool in_container);

class IdeService {
 public:
  // Builds the provider and the sandbox (a sandbox that cannot be set up disables /run execution
  // and the shell tool, with a warning). `metrics` must outlive the service.
  static core::Result<std::shared_ptr<IdeService>> create(IdeOptions options,
                                                          asio::any_io_executor executor,
                                                          core::metrics::Registry& metrics);
  // With a ready-made provider and sandbox (tests); `sandbox` may be null.
  static std::shared_ptr<IdeService> create_with(IdeOptions options,
                                                 std::unique_ptr<model::Provider> provider,
                                                 std::unique_ptr<sandbox::Sandbox> sandbox,
                                                 asio::any_io_executor executor,
                                                 core::metrics::Registry& metrics);
  ~IdeService();
  IdeService(const IdeService&) = delete;
  IdeService& operator=(const IdeService&) = delete;

  // Adds the routes and the API-key middleware. The node adds /health, /ready, /metrics after.
  void add_routes(net::Router& router);
  // Rejects pending approvals and stops taking new agent steps. Requests in flight finish.
  void stop();

  struct Impl;

 private:
  explicit IdeService(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

using Mounted = core::Mounted;

// What the node calls (app/services.cpp).
core::Result<Mounted> mount(const core::Config& config, asio::io_context& io, net::Router& router,
                            core::metrics::Registry& registry);

}  // namespace edgecoder::ide

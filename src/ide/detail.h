// Internal to src/ide: the service state shared by its route files (service.cpp, chat.cpp,
// mesh.cpp, agent_chat.cpp, run_routes.cpp), the reply router and the wire helpers.
// Thread-safety: Impl's mutable state is guarded by `mu` or atomic; the rest is constant.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "ide/service.h"
#include "net/http.h"

namespace edgecoder::ide {
namespace detail {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// An approval a /v1/ide/chat session waits for. The session's coroutine sleeps on `timer`; the
// approval route records the decision and cancels the timer on the session's executor.
struct PendingApproval {
  std::string session_id;
  asio::any_io_executor executor;
  std::shared_ptr<asio::steady_timer> timer;
  std::shared_ptr<std::atomic<int>> decision;  // 0 waiting, 1 approved, 2 rejected
};

// Latency of local model replies, as the upstream router reported it: an EMA (alpha 0.2, the
// first sample sets it) and a "p95 estimate" of EMA x 1.8, 0 with fewer than 3 samples.
struct LatencyTracker {
  double ema_ms = 0;
  std::int64_t samples = 0;
  void add(double ms) {
    ema_ms = samples == 0 ? ms : 0.2 * ms + 0.8 * ema_ms;
    ++samples;
  }
  std::int64_t p95() const { return samples < 3 ? 0 : static_cast<std::int64_t>(ema_ms * 1.8); }
};

// What /api/show said about a model, kept so that /v1/models (which editors call often) asks
// the model server once per model, not once per model per listing.
struct ModelTraits {
  std::int64_t context_length = 0;
  bool tools = false;
  std::int64_t size_bytes = 0;  // the listing's size when asked: a re-pulled model differs
  Clock::time_point at{};
};

struct RouteCounters {
  std::int64_t requests = 0;   // replies this route started
  std::int64_t failures = 0;   // could not start (passed on, or the request failed)
  std::int64_t fallbacks = 0;  // passed on to the next route
};

}  // namespace detail

struct IdeService::Impl {
  using json = detail::json;

  Impl(IdeOptions o, std::unique_ptr<model::Provider> p, std::unique_ptr<sandbox::Sandbox> s,
       asio::any_io_executor e, core::metrics::Registry& m);

  const IdeOptions options;
  const std::unique_ptr<model::Provider> provider;
  const std::unique_ptr<sandbox::Sandbox> sandbox;  // may be null
  const asio::any_io_executor executor;
  asio::thread_pool blocking{2};  // tool and sandbox runs (they block a thread)
  core::metrics::Registry& metrics;
  core::metrics::Counter& chat_requests;
  core::metrics::Counter& chat_failures;
  core::metrics::Counter& tool_calls;
  core::metrics::Counter& approvals_denied;
  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> active_local{0};

  mutable std::mutex mu;
  std::map<std::string, detail::PendingApproval> approvals;  // guarded by mu; by call id
  std::optional<std::filesystem::path> active_root;          // guarded by mu
  detail::LatencyTracker local_latency;                      // guarded by mu
  std::map<Route, detail::RouteCounters> route_counters;     // guarded by mu
  std::map<std::string, detail::ModelTraits> traits_cache;   // guarded by mu; by model name

  bool mesh_configured() const { return !options.coordinator_url.empty(); }
  json router_status() const;
  void count(Route route, bool started, bool fell_back);
};

namespace detail {

using ImplPtr = std::shared_ptr<IdeService::Impl>;

// Runs `fn` on the service's blocking pool; completes on the caller's executor. Build the
// awaitable in its own statement, then await it (GCC 12 coroutine rule, ARCHITECTURE.md §3).
template <typename F, typename R = std::invoke_result_t<F&>>
asio::awaitable<R> run_blocking(asio::thread_pool& pool, F fn) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(R)>(
      [&pool](auto handler, F f) {
        using Handler = decltype(handler);
        auto work = asio::make_work_guard(asio::get_associated_executor(handler));
        struct State {
          Handler handler;
          F f;
          decltype(work) guard;
        };
        auto state =
            std::make_shared<State>(State{std::move(handler), std::move(f), std::move(work)});
        asio::post(pool, [state] {
          auto result = std::make_shared<R>(state->f());
          auto ex = state->guard.get_executor();
          asio::post(ex, [state, result] {
            std::move(state->handler)(std::move(*result));
            state->guard.reset();
          });
        });
      },
      asio::use_awaitable, std::move(fn));
}

// ---- wire helpers (chat.cpp) ----

// OpenAI's error object: {"error":{"message","type","param","code"}}.
net::Response openai_error(int status, std::string_view message, std::string_view type,
                           std::string_view code, std::string_view param = {});
// Ollama's error body: {"error":"..."}.
net::Response ollama_error(int status, std::string_view message);
// The HTTP status for a model error (404 not found, 504 timeout, 502 otherwise).
int model_error_status(const core::Error& error);
std::int64_t unix_seconds();
std::string random_hex(std::size_t bytes);

// ---- the reply router (chat.cpp) ----

// What a client asked for: a chat, or a single prompt (/api/generate).
struct Ask {
  bool generate = false;
  model::ChatRequest chat;     // when !generate
  model::GenerateRequest gen;  // when generate
  std::string model;           // as the client named it (may be empty)
};

struct Opened {
  std::unique_ptr<model::TokenStream> stream;
  std::vector<std::string> first;  // the first text pieces (already read from `stream`)
  bool finished = false;           // the stream ended after `first`
  Route route = Route::local;
  std::string model;  // the model that answers (for replies)
};

// Tries the routes in IDE_ROUTE_ORDER until one starts answering; reads the first pieces so
// that a failure is still an HTTP error. The error is the last route's.
asio::awaitable<core::Result<Opened>> open_reply(ImplPtr self, Ask ask);

// The route_info frame the desktop app shows, sent only to clients that ask (their Origin is the
// desktop app's, or they send x-edgecoder-route-info: 1).
bool wants_route_info(const net::Request& request);
json route_info(const IdeService::Impl& self, const Opened& opened);

// ---- mesh (mesh.cpp) ----

// Submits `input` as a one-subtask coordinator task and returns a stream of its progress lines
// and then its output. Destroying it unfinished cancels the task.
asio::awaitable<core::Result<std::unique_ptr<model::TokenStream>>> open_mesh(ImplPtr self,
                                                                             std::string input,
                                                                             std::string model,
                                                                             std::string language);

// The outcome of a mesh task run to its end (/run/swarm).
struct MeshOutcome {
  std::string task_id;
  bool ok = false;
  std::string output;
  std::string error;
};
asio::awaitable<core::Result<MeshOutcome>> run_on_mesh(ImplPtr self, std::string input,
                                                       std::string language);

// ---- route registration (one per file) ----
void add_chat_routes(ImplPtr self, net::Router& router);   // chat.cpp
void add_agent_routes(ImplPtr self, net::Router& router);  // agent_chat.cpp
void add_run_routes(ImplPtr self, net::Router& router);    // run_routes.cpp

}  // namespace detail
}  // namespace edgecoder::ide

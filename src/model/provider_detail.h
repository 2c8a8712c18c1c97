// Internal to src/model: the pieces the HTTP providers (ollama.cpp, openai.cpp) share — the
// metrics probe, mapping HTTP client failures and error bodies to model error codes, reading a
// bounded error body, and racing an operation against a deadline.
// Thread-safety: ModelProbe is thread-safe (atomic metrics); the rest are free functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "core/result.h"
#include "model/provider.h"
#include "net/client.h"

namespace edgecoder::model::detail {

using Clock = std::chrono::steady_clock;

// All of the model library's metrics. Label values come from fixed sets (provider kind,
// operation name, error code).
class ModelProbe {
 public:
  ModelProbe(core::metrics::Registry* registry, std::string_view provider);
  // One model request ended: outcome is "ok" or a model error wire code.
  void request_done(std::string_view op, std::string_view outcome);
  void first_token(Clock::duration after_request);

 private:
  core::metrics::Registry* const registry_;  // may be null
  const std::string provider_;
  core::metrics::Histogram* first_token_ = nullptr;
};

// The HTTP clients of a provider, one per event loop. A client's sockets and timers belong to
// the executor it was made with and must be driven from it; handlers run on whichever loop
// accepted their connection (node.cpp runs one single-threaded io_context per thread), so each
// loop gets its own client and connection pool and a request never hops threads.
class LoopClients {
 public:
  LoopClients(asio::any_io_executor home, net::ClientOptions options);
  // The client for the loop `executor` belongs to (made on first use). Callers hold the
  // shared_ptr while they use it, so close() never pulls a client from under a request.
  std::shared_ptr<net::HttpClient> for_executor(const asio::any_io_executor& executor);
  // Drops every pooled idle connection now and pools no more: after this, the event loops may
  // be destroyed in any order (node shutdown) without a pooled socket outliving its loop.
  // Requests in flight keep their own connection, which closes when they end.
  void close();

 private:
  const net::ClientOptions options_;
  std::mutex mu_;
  // guarded by mu_; keyed by the executor's execution context (its io_context)
  std::map<const asio::execution_context*, std::shared_ptr<net::HttpClient>> clients_;
  bool closed_ = false;  // guarded by mu_
};

// The wire code of a model error ("model_unavailable", ...) for metrics and logs.
std::string_view outcome_of(const core::Error& error);

// HTTP client options for a model server: connect, first byte (= first token) and total timeouts.
net::ClientOptions model_client_options(const Timeouts& t);

// A failure of the HTTP client (connect, I/O, timeout) as a model error. `what` says which call.
core::Error from_client_error(const core::Error& error, std::string_view what);

// Reads what is left of a body, at most `limit` bytes (the rest is dropped with the connection).
asio::awaitable<std::string> read_bounded(net::ClientStream* stream, std::size_t limit);

// The text of an error body: Ollama {"error":"..."}, OpenAI {"error":{"message":"..."}},
// vLLM {"message":"..."}, else the raw text (truncated).
std::string error_text(std::string_view body);

// Maps a non-2xx model server answer to a model error. 404 is model_not_found only when the
// body talks about a model (a 404 for the path itself means a wrong base URL).
core::Error from_http_status(int status, std::string_view body, std::string_view what);

// A metadata read (tags, models, version, show): one request, retried once after a short pause
// when the server could not be reached (such reads are safe to repeat). Non-2xx answers and
// bodies that are not JSON are errors.
asio::awaitable<core::Result<nlohmann::json>> fetch_json(std::shared_ptr<net::HttpClient> client,
                                                         net::ClientRequest request,
                                                         std::string what, ModelProbe* probe,
                                                         std::string op);

// A tool call id in the shape Ollama and OpenAI use: "call_" and 8 random lowercase hex digits.
std::string make_tool_call_id();

// Puts together the tool calls of one answer in the OpenAI shape (StreamStats::tool_calls).
// OpenAI streams a call as fragments sharing an `index` (the first with id, type and name, the
// rest with pieces of the arguments text); Ollama sends each call whole, arguments as an object.
class ToolCalls {
 public:
  // One entry of an OpenAI delta.tool_calls or message.tool_calls array; `position` is its place
  // in that array (the index when the entry has none).
  void add_openai(const nlohmann::json& entry, std::size_t position);
  // One entry of an Ollama message.tool_calls array: {"function":{"name","arguments":{..}}}.
  void add_ollama(const nlohmann::json& entry);
  bool empty() const { return calls_.empty(); }
  // The calls so far (null when none); every call has an id.
  const nlohmann::json& json() const { return calls_; }

 private:
  nlohmann::json& slot(std::optional<std::int64_t> index, const std::string& id);

  nlohmann::json calls_;                          // null or an array in the OpenAI shape
  std::map<std::int64_t, std::size_t> by_index_;  // OpenAI fragment index -> position in calls_
};

// A TokenStream over a streamed HTTP body (Ollama NDJSON, OpenAI SSE). The base class owns the
// upstream body, the first-token deadline, the end-of-stream checks and the metrics; a subclass
// turns body bytes into tokens.
class HttpTokenStream : public TokenStream {
 public:
  HttpTokenStream(std::unique_ptr<net::ClientStream> body, std::shared_ptr<ModelProbe> probe,
                  std::string op, std::string what, Clock::time_point started,
                  std::chrono::milliseconds first_token_timeout);
  // An unfinished stream closes its upstream connection here (the body owns the socket).
  ~HttpTokenStream() override;

  asio::awaitable<core::Result<std::optional<std::vector<std::string>>>> next() override;
  const StreamStats& stats() const override { return stats_; }

 protected:
  // Consumes one piece of the body, or the end of the body when `piece` is null (flush partial
  // input then). Appends text to `out`. An error ends the stream (tokens already in `out` are
  // delivered first).
  virtual core::Result<void> consume(const std::string* piece, std::vector<std::string>& out) = 0;
  // A line or event arrived: the model is answering (ends the first-token wait).
  void mark_activity();
  // The model said it has finished; bytes after this are ignored.
  void mark_done() { done_ = true; }
  bool done() const { return done_; }
  const std::string& what() const { return what_; }

  StreamStats stats_;

 private:
  void finish(std::string_view outcome);

  std::unique_ptr<net::ClientStream> body_;
  const std::shared_ptr<ModelProbe> probe_;
  const std::string op_;    // metrics label: "generate", "chat"
  const std::string what_;  // for error details: "ollama /api/chat"
  const Clock::time_point started_;
  const Clock::time_point first_deadline_;
  const std::chrono::milliseconds first_token_timeout_;
  bool active_ = false;    // a line/event has arrived
  bool done_ = false;      // the model said it finished
  bool finished_ = false;  // next() returns nullopt or failed_ from now on
  std::optional<core::Error> failed_;
  std::optional<core::Error> pending_error_;  // to report after delivering tokens
};

// Joins a base URL ("http://h:1/v1") and a path ("/models").
std::string join_url(std::string_view base, std::string_view path);

// Runs `op` unless `deadline` passes first; then `op` is cancelled (terminal cancellation reaches
// the socket read inside it) and nullopt is returned. The object `op` works on must then be
// thrown away: its state after cancellation is unspecified.
template <typename T>
asio::awaitable<std::optional<T>> before_deadline(asio::awaitable<T> op,
                                                  Clock::time_point deadline) {
  using namespace asio::experimental::awaitable_operators;
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, deadline);
  auto wait = timer.async_wait(asio::as_tuple(asio::use_awaitable));
  auto race = std::move(op) || std::move(wait);
  auto result = co_await std::move(race);
  if (result.index() == 0) co_return std::optional<T>(std::move(std::get<0>(result)));
  co_return std::nullopt;
}

}  // namespace edgecoder::model::detail

// Model providers: one streaming-first interface over Ollama, any OpenAI-compatible server
// (llama.cpp server, vLLM, LM Studio, LocalAI) and `edgecoder-local`, a deterministic offline
// stub that is NOT an LLM (it exists so that demos and tests run without a model server).
//
// Streaming first: generate() and chat() return a TokenStream as soon as the model server has
// answered with a success status; the caller pulls text pieces from it. Destroying a stream that
// has not finished closes the upstream connection, which is how a caller that went away cancels
// the model's work. Non-streaming callers use collect().
//
// Failures are core::Error values with one of three wire codes (provider_error.h has the
// helpers): model_unavailable (cannot connect, HTTP 5xx, malformed reply, error line in a
// stream), model_not_found (the server does not have the model), model_timeout (connect, first
// token or total timeout). Generation requests are never retried (a repeat costs a second
// generation); metadata reads (tags, models, version, show) are retried once on
// model_unavailable.
//
// Thread-safety: a Provider may be used by concurrent coroutines on any executor (its HTTP client
// pool is locked). A TokenStream or PullStream is used by one coroutine at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/metrics.h"
#include "core/result.h"

namespace edgecoder::model {

namespace asio = boost::asio;

// Wire codes of model failures (the `error` field of JSON error bodies).
inline constexpr std::string_view kModelUnavailable = "model_unavailable";
inline constexpr std::string_view kModelNotFound = "model_not_found";
inline constexpr std::string_view kModelTimeout = "model_timeout";

core::Error model_unavailable(std::string detail);  // Errc::unavailable
core::Error model_not_found(std::string detail);    // Errc::not_found
core::Error model_timeout(std::string detail);      // Errc::timeout

enum class ProviderKind { edgecoder_local, ollama, openai };
// "edgecoder-local", "ollama-local", "openai" (the names LOCAL_MODEL_PROVIDER takes).
std::string_view provider_kind_name(ProviderKind kind);
// Accepts the names above and the alias "ollama"; case-insensitive.
std::optional<ProviderKind> parse_provider_kind(std::string_view name);

struct Timeouts {
  std::chrono::milliseconds connect{5'000};
  // Request sent -> first line of the model's answer (covers model loading and prompt
  // processing). Thinking output counts: it shows the model is working.
  std::chrono::milliseconds first_token{120'000};
  std::chrono::milliseconds total{600'000};  // whole generation
  // Metadata reads (tags, models, version, show): response head and whole body.
  std::chrono::milliseconds metadata{10'000};
};

struct ProviderConfig {
  ProviderKind kind = ProviderKind::edgecoder_local;
  // ollama: OLLAMA_HOST; openai: OPENAI_BASE_URL. Normalised: scheme present, no trailing "/".
  std::string base_url;
  std::string api_key;  // openai only; sent as Bearer, never logged
  // Code generation and chat model; for openai empty = the first model the server lists.
  std::string model;
  // Decomposition and escalation model; empty = `model`.
  std::string coordinator_model;
  Timeouts timeouts;
};

// Reads LOCAL_MODEL_PROVIDER, OLLAMA_*, OPENAI_* and MODEL_*_TIMEOUT_MS. Errors name the setting.
core::Result<ProviderConfig> provider_config_from(const core::Settings& settings);

// Tool calls use the OpenAI shape whatever the server: the providers translate on the wire.
struct Message {
  std::string role;  // "system", "user", "assistant", "tool"
  std::string content;
  // Assistant messages only; null = none. OpenAI-shaped array:
  // [{"id":"call_x","type":"function","function":{"name":"f","arguments":"<JSON text>"}}].
  nlohmann::json tool_calls;
  std::string tool_call_id;  // role "tool": the id of the call this message answers
};

struct Sampling {
  std::optional<double> temperature;
  std::optional<int> max_tokens;  // Ollama num_predict, OpenAI max_tokens
};

struct GenerateRequest {
  std::string model;  // empty = the provider's configured model
  std::string prompt;
  Sampling sampling;
};

struct ChatRequest {
  std::string model;  // empty = the provider's configured model
  std::vector<Message> messages;
  Sampling sampling;
  // Null = none. OpenAI-shaped array:
  // [{"type":"function","function":{"name":..,"description":..,"parameters":{JSON schema}}}].
  nlohmann::json tools;
};

// What the model server said about the generation, complete once the stream has ended.
struct StreamStats {
  std::string model;                    // the model that answered (as the server names it)
  std::string done_reason;              // "stop", "length", "tool_calls", ... when the server says
  std::int64_t prompt_tokens = -1;      // -1 = not reported
  std::int64_t completion_tokens = -1;  // -1 = not reported
  // The tool calls the model made (then done_reason is "tool_calls"); null = none. OpenAI shape
  // as in Message::tool_calls: every call has an id (made up as "call_<8 hex>" when the server
  // gives none) and its arguments as JSON text. Complete only once the stream has ended.
  nlohmann::json tool_calls;
};

class TokenStream {
 public:
  virtual ~TokenStream() = default;
  // The text pieces that arrived together, in order (never an empty vector); nullopt once the
  // model has finished. Tool calls are not text: they arrive in stats(). After an error the stream
  // is finished too.
  virtual asio::awaitable<core::Result<std::optional<std::vector<std::string>>>> next() = 0;
  virtual const StreamStats& stats() const = 0;
};

struct ModelInfo {
  std::string name;
  double param_size_b = 0;      // billions of parameters; 0 = unknown
  std::string quantization;     // e.g. "Q4_K_M"; empty = unknown
  std::int64_t size_bytes = 0;  // on disk; 0 = unknown
  std::string family;
  // From show_model() (Ollama's /api/show): the context window in tokens (0 = unknown) and the
  // server's capability names ("completion", "tools", "vision", ...; empty = unknown).
  std::int64_t context_length = 0;
  std::vector<std::string> capabilities;
};

struct PullUpdate {
  std::string status;  // the server's words: "pulling manifest", "downloading", "success", ...
  std::int64_t completed = 0;  // bytes
  std::int64_t total = 0;      // bytes; 0 = unknown yet
};

class PullStream {
 public:
  virtual ~PullStream() = default;
  // The next progress report; nullopt when the pull has finished successfully. An error line
  // from the server is an error.
  virtual asio::awaitable<core::Result<std::optional<PullUpdate>>> next() = 0;
};

class Provider {
 public:
  virtual ~Provider() = default;

  virtual ProviderKind kind() const = 0;
  // False only for edgecoder-local, which must be labelled "not an LLM" wherever it shows.
  virtual bool is_llm() const { return true; }
  // Whether a model server must be reachable for the provider to work (/ready).
  virtual bool needs_server() const { return true; }
  virtual const ProviderConfig& config() const = 0;
  // Closes idle pooled connections and stops pooling (on shutdown, before the event loops go
  // away). Requests still running finish on their own connections.
  virtual void release_connections() {}

  virtual asio::awaitable<core::Result<std::unique_ptr<TokenStream>>> generate(
      GenerateRequest request) = 0;
  virtual asio::awaitable<core::Result<std::unique_ptr<TokenStream>>> chat(ChatRequest request) = 0;

  virtual asio::awaitable<core::Result<std::vector<ModelInfo>>> list_models() = 0;
  // model_not_found when the server does not have it.
  virtual asio::awaitable<core::Result<ModelInfo>> show_model(std::string name) = 0;
  // The server's version string; doubles as the reachability check.
  virtual asio::awaitable<core::Result<std::string>> server_version() = 0;
  // Downloads a model (Ollama only; others answer Errc::invalid_argument
  // "model_pull_unsupported").
  virtual asio::awaitable<core::Result<std::unique_ptr<PullStream>>> pull(std::string name) = 0;
};

// `metrics` may be null; it must outlive the provider. The executor runs the HTTP client.
core::Result<std::unique_ptr<Provider>> make_provider(ProviderConfig config,
                                                      asio::any_io_executor executor,
                                                      core::metrics::Registry* metrics = nullptr);

// Reads a stream to its end and returns the whole text.
asio::awaitable<core::Result<std::string>> collect(std::unique_ptr<TokenStream> stream);

// Parses "7.6B", "494.03M", "1.5 b" into billions of parameters (0 when it cannot tell).
double parse_param_size(std::string_view text);

}  // namespace edgecoder::model

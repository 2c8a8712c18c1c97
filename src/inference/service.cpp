// The inference service's routes and state (see service.h).
#include "inference/service.h"

#include <unistd.h>

#include <atomic>
#include <ctime>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "core/crypto.h"
#include "core/log.h"
#include "inference/dashboard.h"
#include "model/decompose.h"
#include "model/extract.h"
#include "model/local.h"
#include "model/prompts.h"

namespace edgecoder::inference {

namespace service_detail {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kSwapHistory = 5;
constexpr double kDecomposeTemperature = 0.2;  // a plan, not prose: keep the model focused
constexpr std::string_view kEscalateExplanation =
    "Escalated to larger model for improved solution.";

struct SwapRecord {
  std::string timestamp;  // ISO-8601 UTC
  std::string from;
  std::string to;
  double param_size = 0;
};

// The one pull slot (upstream's PullTracker), plus what to do when it finishes.
struct PullState {
  std::string model;
  std::string status;  // "pulling", the server's progress words, or "error"
  std::int64_t completed = 0;
  std::int64_t total = 0;
  std::int64_t started_at_ms = 0;
  std::string error;
  bool activate = false;      // started by /model/swap: make it active when done
  std::string active_before;  // the active model when the swap asked; activation only if unchanged
  std::uint64_t generation = 0;
};

std::int64_t service_epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string service_iso8601_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[40];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

long service_memory_mb() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  long resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  const long page = ::sysconf(_SC_PAGESIZE);
  return (resident * page + (1 << 19)) >> 20;
}

bool service_same_model(std::string_view a, std::string_view b) {
  if (a == b) return true;
  auto with_latest = [](std::string_view s) {
    return s.find(':') == std::string_view::npos ? std::string(s) + ":latest" : std::string(s);
  };
  return with_latest(a) == with_latest(b);
}

net::Response service_bad_request(std::string detail) {
  return net::Response::error(400, "invalid_request", detail);
}

int service_model_error_status(const core::Error& e) {
  return e.code == core::Errc::timeout ? 504 : 502;
}

bool service_accepts_only_json(const net::Request& request) {
  auto accept = request.header("accept");
  return accept && accept->find("application/json") != std::string_view::npos &&
         accept->find("text/plain") == std::string_view::npos &&
         accept->find("*/*") == std::string_view::npos;
}

}  // namespace service_detail

struct InferenceService::Impl {
  Impl(ServiceOptions opts, std::unique_ptr<model::Provider> prov, asio::any_io_executor ex,
       core::metrics::Registry& metrics)
      : options(std::move(opts)),
        provider(std::move(prov)),
        executor(ex),
        strand(asio::make_strand(ex)),
        registry(metrics),
        verifier(options.signatures),
        started(service_detail::Clock::now()),
        decompose_requests(counter("decompose_requests", "/decompose requests")),
        decompose_successes(
            counter("decompose_successes", "/decompose answers parsed from the model's reply")),
        decompose_model_calls(counter("decompose_model_calls", "Model calls made by /decompose")),
        decompose_fallbacks(
            counter("decompose_fallbacks", "/decompose answers that fell back to one subtask")),
        escalate_requests(counter("escalate_requests", "/escalate requests")),
        escalate_successes(counter("escalate_successes", "/escalate answers with improved code")),
        escalate_failures(counter("escalate_failures", "/escalate requests that failed (502)")),
        handler_seconds(registry.histogram("edgecoder_inference_handler_seconds",
                                           "Time spent answering /decompose and /escalate")),
        chat_requests(counter("chat_requests", "/chat requests")),
        chat_failures(counter("chat_failures", "/chat requests that failed upstream")),
        chat_cancelled(counter("chat_cancelled", "/chat streams whose client left before the end")),
        model_server_up(registry.gauge("edgecoder_inference_model_server_up",
                                       "1 when the model server answered its last check")),
        health_timer(std::make_shared<asio::steady_timer>(strand)),
        active_model(options.provider.coordinator_model.empty()
                         ? options.provider.model
                         : options.provider.coordinator_model) {
    if (!provider->needs_server()) {
      health.store(1);
      model_server_up.set(1);
    }
  }

  core::metrics::Counter& counter(std::string_view name, std::string_view help) {
    return registry.counter("edgecoder_inference_" + std::string(name) + "_total", help);
  }

  std::string current_model() const {
    std::lock_guard lock(mu);
    return active_model;
  }

  // A model call's outcome tells whether the server is there; the periodic check does the rest.
  void note_health(bool up, const std::string& why) {
    if (!provider->needs_server()) return;
    const int before = health.exchange(up ? 1 : 0);
    model_server_up.set(up ? 1 : 0);
    {
      std::lock_guard lock(mu);
      health_error = up ? std::string() : why;
    }
    if (before != (up ? 1 : 0)) {
      if (up) {
        core::log::info("inference", "model_server_up",
                        {{"provider", model::provider_kind_name(provider->kind())},
                         {"url", options.provider.base_url}});
      } else {
        core::log::warn("inference", "model_server_down",
                        {{"provider", model::provider_kind_name(provider->kind())},
                         {"url", options.provider.base_url},
                         {"error", why}});
      }
    }
  }

  void note_result(const core::Error& e) {
    if (e.code == core::Errc::unavailable && e.wire() == model::kModelUnavailable) {
      note_health(false, e.detail);
    }
  }

  nlohmann::json flat_metrics() const {
    return {{"decomposeRequests", decompose_requests.value()},
            {"decomposeSuccesses", decompose_successes.value()},
            {"decomposeModelCalls", decompose_model_calls.value()},
            {"decomposeFallbacks", decompose_fallbacks.value()},
            {"escalateRequests", escalate_requests.value()},
            {"escalateSuccesses", escalate_successes.value()},
            {"escalateFailures", escalate_failures.value()},
            {"totalLatencyMs", static_cast<std::uint64_t>(handler_seconds.snapshot().sum * 1000.0)},
            {"chatRequests", chat_requests.value()},
            {"chatFailures", chat_failures.value()}};
  }

  bool model_server_healthy() const { return !provider->needs_server() || health.load() == 1; }

  // Constant after construction.
  const ServiceOptions options;
  const std::unique_ptr<model::Provider> provider;
  const asio::any_io_executor executor;
  const asio::strand<asio::any_io_executor> strand;  // runs the background work below
  core::metrics::Registry& registry;
  SignatureVerifier verifier;  // thread-safe
  const service_detail::Clock::time_point started;
  core::metrics::Counter& decompose_requests;
  core::metrics::Counter& decompose_successes;
  core::metrics::Counter& decompose_model_calls;
  core::metrics::Counter& decompose_fallbacks;
  core::metrics::Counter& escalate_requests;
  core::metrics::Counter& escalate_successes;
  core::metrics::Counter& escalate_failures;
  core::metrics::Histogram& handler_seconds;
  core::metrics::Counter& chat_requests;
  core::metrics::Counter& chat_failures;
  core::metrics::Counter& chat_cancelled;
  core::metrics::Gauge& model_server_up;

  // The reachability check's timer, used on `strand`. Shared with the check's coroutine, which
  // holds only a weak_ptr to this object between checks: background work never keeps the
  // service (and its model clients) alive past the node's shutdown.
  const std::shared_ptr<asio::steady_timer> health_timer;

  std::atomic<bool> stopping{false};
  std::atomic<int> health{-1};  // -1 not checked yet, 0 unreachable, 1 reachable

  mutable std::mutex mu;
  std::string active_model;                        // guarded by mu
  double active_param_size = 0;                    // guarded by mu; billions, 0 = unknown
  std::deque<service_detail::SwapRecord> history;  // guarded by mu; newest first
  std::optional<service_detail::PullState> pull;   // guarded by mu
  bool pull_running = false;                       // guarded by mu: a pull coroutine exists
  std::uint64_t pull_generation = 0;               // guarded by mu
  std::string health_error;                        // guarded by mu
};

namespace service_detail {

using Impl = InferenceService::Impl;

// Logs an exception that escaped a background coroutine (a bug) and drops it.
struct BackgroundDone {
  std::string what;
  void operator()(std::exception_ptr error) const {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const boost::system::system_error& e) {
      if (e.code() == asio::error::operation_aborted) return;  // cancelled by stop()
      core::log::error("inference", "background_exception", {{"task", what}, {"what", e.what()}});
    } catch (const std::exception& e) {
      core::log::error("inference", "background_exception", {{"task", what}, {"what", e.what()}});
    }
  }
};

struct PullDone {
  std::weak_ptr<Impl> weak;
  void operator()(std::exception_ptr error) const {
    BackgroundDone{"pull"}(error);
    if (auto self = weak.lock()) {
      std::lock_guard lock(self->mu);
      self->pull_running = false;
    }
  }
};

// Runs a prompt to its end; the whole answer.
asio::awaitable<core::Result<std::string>> service_generate(std::shared_ptr<Impl> self,
                                                            model::GenerateRequest request) {
  auto open = self->provider->generate(std::move(request));
  auto stream = co_await std::move(open);
  if (!stream) {
    self->note_result(stream.error());
    co_return stream.error();
  }
  auto read = model::collect(std::move(*stream));
  auto text = co_await std::move(read);
  if (!text) {
    self->note_result(text.error());
    co_return text.error();
  }
  self->note_health(true, "");
  co_return text;
}

void service_add_latency(Impl& self, Clock::time_point t0) {
  self.handler_seconds.observe(std::chrono::duration<double>(Clock::now() - t0).count());
}

asio::awaitable<net::Response> handle_decompose(std::shared_ptr<Impl> self, net::Request request) {
  const auto t0 = Clock::now();
  self->decompose_requests.inc();
  auto body = net::parse_json_body(request);
  if (!body) co_return net::Response::error(body.error());
  const json& j = *body;
  model::DecomposeRequest dr;
  const auto prompt = j.find("prompt");
  if (prompt == j.end() || !prompt->is_string() || prompt->get_ref<const std::string&>().empty()) {
    co_return service_detail::service_bad_request("prompt: a non-empty string is required");
  }
  const auto task_id = j.find("taskId");
  if (task_id == j.end() || !task_id->is_string()) {
    co_return service_detail::service_bad_request("taskId: a string is required");
  }
  // snapshotRef is only copied into the subtasks: our coordinator sends "" when the client gave
  // none, so it may be empty or absent, but not another type.
  const auto snapshot = j.find("snapshotRef");
  if (snapshot != j.end() && !snapshot->is_null() && !snapshot->is_string()) {
    co_return service_detail::service_bad_request("snapshotRef: a string is expected");
  }
  if (auto lang = j.find("language"); lang != j.end() && !lang->is_null()) {
    const auto normal =
        lang->is_string() ? model::normalise_language(lang->get<std::string>()) : std::nullopt;
    if (!normal) {
      co_return service_detail::service_bad_request(
          "language: \"python\" or \"javascript\" expected");
    }
    dr.language = *normal;
  }
  dr.prompt = prompt->get<std::string>();
  dr.task_id = task_id->get<std::string>();
  if (snapshot != j.end() && snapshot->is_string()) dr.snapshot_ref = snapshot->get<std::string>();

  const std::string model_name = self->current_model();
  model::GenerateRequest gen;
  gen.model = model_name;
  gen.prompt = model::decompose_prompt(dr.prompt, dr.language, model::kMaxSubtasks);
  gen.sampling.temperature = kDecomposeTemperature;
  self->decompose_model_calls.inc();
  auto call = service_generate(self, std::move(gen));
  auto answer = co_await std::move(call);

  model::Decomposition decomposition;
  std::string model_error;
  if (!answer) {
    model_error = std::string(answer.error().wire());
    decomposition = model::fallback_decomposition(
        dr, "the model call failed (" + model_error + "): " + answer.error().detail);
  } else {
    decomposition = model::parse_decomposition(*answer, dr);
  }
  if (decomposition.fallback) {
    self->decompose_fallbacks.inc();
  } else {
    self->decompose_successes.inc();
  }
  service_add_latency(*self, t0);

  json out = model::to_json(decomposition);
  out["model"] = model_name;
  out["provider"] = model::provider_kind_name(self->provider->kind());
  if (!self->provider->is_llm()) out["llm"] = false;
  if (!model_error.empty()) out["modelError"] = model_error;
  core::log::info(
      "inference", "decompose",
      {{"task_id", dr.task_id},
       {"subtasks", decomposition.subtasks.size()},
       {"fallback", decomposition.fallback},
       {"model", model_name},
       {"ms",
        static_cast<long long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count())}});
  co_return net::Response::json(200, out);
}

asio::awaitable<net::Response> handle_escalate(std::shared_ptr<Impl> self, net::Request request) {
  const auto t0 = Clock::now();
  self->escalate_requests.inc();
  auto body = net::parse_json_body(request);
  if (!body) co_return net::Response::error(body.error());
  const json& j = *body;
  const auto task = j.find("task");
  if (task == j.end() || !task->is_string() || task->get_ref<const std::string&>().empty()) {
    co_return service_detail::service_bad_request("task: a non-empty string is required");
  }
  const auto failed = j.find("failedCode");
  if (failed == j.end() || !failed->is_string()) {
    co_return service_detail::service_bad_request("failedCode: a string is required");
  }
  std::string errors;
  if (auto history = j.find("errorHistory"); history != j.end() && !history->is_null()) {
    if (!history->is_array()) {
      co_return service_detail::service_bad_request("errorHistory: an array of strings expected");
    }
    for (const auto& e : *history) {
      if (!e.is_string()) {
        co_return service_detail::service_bad_request("errorHistory: an array of strings expected");
      }
      if (!errors.empty()) errors += '\n';
      errors += e.get<std::string>();
    }
  }
  const auto lang = j.find("language");
  const auto language = lang != j.end() && lang->is_string()
                            ? model::normalise_language(lang->get<std::string>())
                            : std::nullopt;
  if (!language) {
    co_return service_detail::service_bad_request(
        "language: \"python\" or \"javascript\" is required");
  }

  const std::string model_name = self->current_model();
  model::GenerateRequest gen;
  gen.model = model_name;
  gen.prompt = model::reflect_prompt(task->get<std::string>(), failed->get<std::string>(), errors,
                                     *language);
  auto call = service_generate(self, std::move(gen));
  auto answer = co_await std::move(call);
  service_add_latency(*self, t0);
  if (!answer) {
    self->escalate_failures.inc();
    json out = {{"improvedCode", ""},
                {"explanation", "Escalation inference failed: " + answer.error().detail},
                {"error", answer.error().wire()},
                {"model", model_name}};
    co_return net::Response::json(service_detail::service_model_error_status(answer.error()), out);
  }
  std::string code = model::extract_code(*answer, *language);
  if (code.empty()) {
    self->escalate_failures.inc();
    json out = {{"improvedCode", ""},
                {"explanation", "Escalation inference failed: the model returned no code"},
                {"error", "model_empty_reply"},
                {"model", model_name}};
    co_return net::Response::json(502, out);
  }
  self->escalate_successes.inc();
  json out = {{"improvedCode", std::move(code)},
              {"explanation", kEscalateExplanation},
              {"model", model_name}};
  if (!self->provider->is_llm()) out["llm"] = false;
  co_return net::Response::json(200, out);
}

std::string service_token_frames(const std::vector<std::string>& tokens) {
  std::string frames;
  for (const auto& t : tokens) {
    frames += "data: ";
    frames += json{{"content", t}}.dump();
    frames += "\n\n";
  }
  return frames;
}

// Relays the model's tokens as SSE frames. Tokens that arrived in one upstream read go out in one
// write. When the client has gone (a write fails) the upstream stream is dropped at once, which
// closes the model server connection and stops the generation.
class ChatRelay final : public net::StreamBody {
 public:
  ChatRelay(std::shared_ptr<Impl> self, std::unique_ptr<model::TokenStream> stream,
            std::vector<std::string> first, std::string model)
      : self_(std::move(self)),
        stream_(std::move(stream)),
        first_(std::move(first)),
        model_(std::move(model)) {}

  bool writes_at_once() const override { return true; }

  asio::awaitable<void> run(net::BodyWriter* out) override {
    std::string frames = service_token_frames(first_);
    first_.clear();
    for (;;) {
      auto write = out->write(std::move(frames));
      if (!co_await std::move(write)) {
        self_->chat_cancelled.inc();
        stream_.reset();
        core::log::info("inference", "chat_client_gone", {{"model", model_}});
        co_return;
      }
      auto read = stream_->next();
      auto next = co_await std::move(read);
      if (!next) {
        self_->chat_failures.inc();
        self_->note_result(next.error());
        core::log::warn(
            "inference", "chat_upstream_failed",
            {{"model", model_}, {"error", next.error().wire()}, {"detail", next.error().detail}});
        const json error = {{"error", next.error().wire()}, {"detail", next.error().detail}};
        stream_.reset();
        auto last = out->write_last(net::sse_frame(error.dump(), "error"));
        co_await std::move(last);
        co_return;
      }
      if (!*next) {
        stream_.reset();
        auto done = out->write_last("data: [DONE]\n\n");
        co_await std::move(done);
        co_return;
      }
      frames = service_token_frames(**next);
    }
  }

 private:
  const std::shared_ptr<Impl> self_;
  std::unique_ptr<model::TokenStream> stream_;
  std::vector<std::string> first_;
  const std::string model_;
};

// A stream with no tokens: only the end marker.
class EmptyChat final : public net::StreamBody {
 public:
  bool writes_at_once() const override { return true; }

  asio::awaitable<void> run(net::BodyWriter* out) override {
    auto done = out->write_last("data: [DONE]\n\n");
    co_await std::move(done);
  }
};

asio::awaitable<net::Response> handle_chat(std::shared_ptr<Impl> self, net::Request request) {
  self->chat_requests.inc();
  auto body = net::parse_json_body(request);
  if (!body) co_return net::Response::error(body.error());
  const json& j = *body;
  model::ChatRequest chat;
  const auto messages = j.find("messages");
  if (messages == j.end() || !messages->is_array() || messages->empty()) {
    co_return service_detail::service_bad_request("messages: a non-empty array is required");
  }
  for (const auto& m : *messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string()) {
      co_return service_detail::service_bad_request(
          "messages: each message needs string role and content");
    }
    model::Message message;
    message.role = m["role"].get<std::string>();
    message.content = m["content"].get<std::string>();
    chat.messages.push_back(std::move(message));
  }
  if (auto m = j.find("model"); m != j.end() && !m->is_null()) {
    if (!m->is_string()) co_return service_detail::service_bad_request("model: a string expected");
    chat.model = m->get<std::string>();
  }
  if (auto t = j.find("temperature"); t != j.end() && !t->is_null()) {
    if (!t->is_number() || t->get<double>() < 0 || t->get<double>() > 2) {
      co_return service_detail::service_bad_request("temperature: a number from 0 to 2 expected");
    }
    chat.sampling.temperature = t->get<double>();
  }
  if (auto n = j.find("max_tokens"); n != j.end() && !n->is_null()) {
    if (!n->is_number_integer() || n->get<std::int64_t>() < 1 ||
        n->get<std::int64_t>() > 1'000'000) {
      co_return service_detail::service_bad_request("max_tokens: a positive integer expected");
    }
    chat.sampling.max_tokens = static_cast<int>(n->get<std::int64_t>());
  }
  if (chat.model.empty()) chat.model = self->current_model();
  const std::string model_name = chat.model;

  auto open = self->provider->chat(std::move(chat));
  auto stream = co_await std::move(open);
  std::optional<core::Error> failure;
  std::optional<std::vector<std::string>> first;
  if (!stream) {
    failure = stream.error();
  } else {
    // Wait for the first tokens before answering: until then a failure can still be a plain
    // HTTP error instead of an event inside a 200 stream.
    auto read = (*stream)->next();
    auto next = co_await std::move(read);
    if (!next) {
      failure = next.error();
    } else if (*next) {
      first = std::move(**next);
    }
  }
  if (failure) {
    self->chat_failures.inc();
    self->note_result(*failure);
    core::log::warn(
        "inference", "chat_upstream_failed",
        {{"model", model_name}, {"error", failure->wire()}, {"detail", failure->detail}});
    const json out = {
        {"error", failure->wire()}, {"model", model_name}, {"detail", failure->detail}};
    co_return net::Response::json(service_detail::service_model_error_status(*failure), out);
  }
  self->note_health(true, "");
  if (!first) {
    // The model finished without a word: an empty, well-formed stream.
    co_return net::Response::sse(std::make_shared<EmptyChat>());
  }
  co_return net::Response::sse(
      std::make_shared<ChatRelay>(self, std::move(*stream), std::move(*first), model_name));
}

json service_swap_history(const Impl& self) {
  json history = json::array();
  std::lock_guard lock(self.mu);
  for (const auto& r : self.history) {
    history.push_back(
        {{"timestamp", r.timestamp}, {"from", r.from}, {"to", r.to}, {"paramSize", r.param_size}});
  }
  return history;
}

// Makes `model` active (requires mu).
void service_activate_locked(Impl& self, const std::string& model, double param_size) {
  service_detail::SwapRecord record;
  record.timestamp = service_iso8601_now();
  record.from = self.active_model;
  record.to = model;
  record.param_size = param_size;
  self.history.push_front(std::move(record));
  while (self.history.size() > kSwapHistory) self.history.pop_back();
  self.active_model = model;
  self.active_param_size = param_size;
}

// Records a failed pull (if it is still the current one).
void service_pull_failed(Impl& self, std::uint64_t generation, const std::string& error) {
  std::lock_guard lock(self.mu);
  if (!self.pull || self.pull->generation != generation) return;
  self.pull->status = "error";
  self.pull->error = error;
}

void service_pull_progress(Impl& self, std::uint64_t generation, const model::PullUpdate& update) {
  std::lock_guard lock(self.mu);
  if (!self.pull || self.pull->generation != generation) return;
  self.pull->status = update.status.empty() ? "pulling" : update.status;
  self.pull->completed = update.completed;
  self.pull->total = update.total;
}

// No lambdas in here: a coroutine frame holding a closure type breaks the unity build
// (-Werror=subobject-linkage, cpp-stack.md A.4.2). The service is held only while it is used,
// never across the wait for the next progress line (see Impl::health_timer).
asio::awaitable<void> service_run_pull(std::weak_ptr<Impl> weak, std::string model,
                                       std::uint64_t generation) {
  std::unique_ptr<model::PullStream> stream;
  {
    auto self = weak.lock();
    if (!self) co_return;
    auto open = self->provider->pull(model);
    auto opened = co_await std::move(open);
    if (!opened) {
      const std::string error = "pull_failed: " + opened.error().detail;
      service_pull_failed(*self, generation, error);
      core::log::warn("inference", "model_pull_failed", {{"model", model}, {"error", error}});
      co_return;
    }
    stream = std::move(*opened);
  }
  for (;;) {
    auto read = stream->next();
    auto next = co_await std::move(read);
    auto self = weak.lock();
    if (!self || self->stopping.load()) co_return;
    if (!next) {
      const std::string error = "stream_interrupted: " + next.error().detail;
      service_pull_failed(*self, generation, error);
      core::log::warn("inference", "model_pull_failed", {{"model", model}, {"error", error}});
      co_return;
    }
    if (!*next) break;
    service_pull_progress(*self, generation, **next);
  }
  stream.reset();
  auto self = weak.lock();
  if (!self) co_return;
  core::log::info("inference", "model_pulled", {{"model", model}});
  auto show = self->provider->show_model(model);
  auto info = co_await std::move(show);
  const double param_size = info ? info->param_size_b : 0;
  std::lock_guard lock(self->mu);
  if (!self->pull || self->pull->generation != generation) co_return;
  // As upstream: a finished pull leaves the tracker idle. Unlike upstream, a pull that a swap
  // started activates its model, unless another swap happened meanwhile.
  if (self->pull->activate && self->active_model == self->pull->active_before) {
    service_activate_locked(*self, model, param_size);
    core::log::info("inference", "model_swapped", {{"model", model}, {"after", "pull"}});
  }
  self->pull.reset();
}

// Starts a background pull of `model` unless one is running. Errors: conflict when a pull of
// another model is running.
core::Result<void> service_start_pull(const std::shared_ptr<Impl>& self, const std::string& model,
                                      bool activate) {
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(self->mu);
    if (self->pull_running) {
      if (self->pull && self->pull->model == model) {
        if (activate && !self->pull->activate) {
          self->pull->activate = true;
          self->pull->active_before = self->active_model;
        }
        return {};
      }
      return core::Error(core::Errc::conflict, "pull_in_progress",
                         "a pull of '" + (self->pull ? self->pull->model : std::string("?")) +
                             "' is running; wait for it to finish");
    }
    PullState state;
    state.model = model;
    state.status = "pulling";
    state.started_at_ms = service_epoch_ms();
    state.activate = activate;
    state.active_before = self->active_model;
    state.generation = ++self->pull_generation;
    generation = state.generation;
    self->pull = std::move(state);
    self->pull_running = true;
  }
  core::log::info("inference", "model_pull_started", {{"model", model}, {"activate", activate}});
  const std::weak_ptr<Impl> weak = self;
  asio::co_spawn(self->strand, service_run_pull(weak, model, generation), PullDone{weak});
  return {};
}

asio::awaitable<net::Response> handle_swap(std::shared_ptr<Impl> self, net::Request request) {
  auto body = net::parse_json_body(request);
  if (!body) co_return net::Response::error(body.error());
  const auto m = body->find("model");
  if (m == body->end() || !m->is_string() || m->get_ref<const std::string&>().empty()) {
    co_return net::Response::error(400, "model_required", "model: a non-empty string is required");
  }
  const std::string target = m->get<std::string>();
  const std::string current = self->current_model();
  auto list = self->provider->list_models();
  auto models = co_await std::move(list);
  if (!models) {
    self->note_result(models.error());
    const std::string error =
        self->provider->kind() == model::ProviderKind::ollama
            ? "ollama_not_running: Start Ollama with: ollama serve (" + models.error().detail + ")"
            : std::string(models.error().wire()) + ": " + models.error().detail;
    co_return net::Response::json(200, {{"previous", current},
                                        {"active", current},
                                        {"status", "error"},
                                        {"paramSize", 0},
                                        {"error", error}});
  }
  for (const auto& info : *models) {
    if (!service_same_model(info.name, target)) continue;
    {
      std::lock_guard lock(self->mu);
      service_activate_locked(*self, info.name, info.param_size_b);
    }
    core::log::info("inference", "model_swapped", {{"from", current}, {"to", info.name}});
    co_return net::Response::json(200, {{"previous", current},
                                        {"active", info.name},
                                        {"status", "ready"},
                                        {"paramSize", info.param_size_b}});
  }
  if (self->provider->kind() != model::ProviderKind::ollama) {
    co_return net::Response::json(
        200, {{"previous", current},
              {"active", current},
              {"status", "error"},
              {"paramSize", 0},
              {"error", "model_not_found: the model server does not have '" + target + "'"}});
  }
  if (auto started = service_start_pull(self, target, true); !started) {
    co_return net::Response::json(200, {{"previous", current},
                                        {"active", current},
                                        {"status", "error"},
                                        {"paramSize", 0},
                                        {"error", started.error().detail}});
  }
  co_return net::Response::json(200, {{"previous", current},
                                      {"active", current},
                                      {"status", "pulling"},
                                      {"paramSize", 0},
                                      {"progress", 0}});
}

asio::awaitable<net::Response> handle_pull(std::shared_ptr<Impl> self, net::Request request) {
  auto body = net::parse_json_body(request);
  if (!body) co_return net::Response::error(body.error());
  const auto m = body->find("model");
  if (m == body->end() || !m->is_string() || m->get_ref<const std::string&>().empty()) {
    co_return net::Response::error(400, "model_required", "model: a non-empty string is required");
  }
  if (self->provider->kind() != model::ProviderKind::ollama) {
    co_return net::Response::error(400, "model_pull_unsupported",
                                   "only the ollama provider can download models");
  }
  const std::string target = m->get<std::string>();
  if (auto started = service_start_pull(self, target, false); !started) {
    co_return net::Response::error(started.error());
  }
  co_return net::Response::json(202, {{"model", target}, {"status", "pulling"}});
}

json service_pull_json(const Impl& self) {
  std::lock_guard lock(self.mu);
  if (!self.pull) return {{"status", "idle"}};
  const auto& p = *self.pull;
  json out = {
      {"model", p.model},
      {"status", p.status},
      {"progressPct", p.total > 0 ? static_cast<int>((100.0 * static_cast<double>(p.completed) /
                                                      static_cast<double>(p.total)) +
                                                     0.5)
                                  : 0},
      {"completed", p.completed},
      {"total", p.total},
      {"startedAtMs", p.started_at_ms}};
  if (!p.error.empty()) out["error"] = p.error;
  return out;
}

asio::awaitable<net::Response> handle_status(std::shared_ptr<Impl> self, net::Request) {
  const std::string name = self->current_model();
  json out = {{"model", name},
              {"provider", model::provider_kind_name(self->provider->kind())},
              {"llm", self->provider->is_llm()},
              {"promptsVersion", model::kPromptsVersion}};
  if (!self->provider->is_llm()) out["note"] = model::kLocalLabel;
  auto show = self->provider->show_model(name);
  auto info = co_await std::move(show);
  if (info) {
    self->note_health(true, "");
    double size = info->param_size_b;
    {
      std::lock_guard lock(self->mu);
      if (self->active_model == name && size > 0) self->active_param_size = size;
      if (size <= 0) size = self->active_param_size;
    }
    out["status"] = "ready";
    out["paramSize"] = size;
    out["ollamaHealthy"] = true;
  } else if (info.error().wire() == model::kModelNotFound) {
    self->note_health(true, "");
    out["status"] = "no_model";
    out["paramSize"] = 0;
    out["ollamaHealthy"] = true;
  } else {
    self->note_result(info.error());
    out["status"] = "error";
    out["paramSize"] = 0;
    out["ollamaHealthy"] = false;
    out["error"] = info.error().detail;
  }
  out["modelServerHealthy"] = out["ollamaHealthy"];
  const json pull = service_pull_json(*self);
  if (pull.value("status", "") != "idle") out["pullProgress"] = pull;
  co_return net::Response::json(200, out);
}

asio::awaitable<net::Response> handle_list(std::shared_ptr<Impl> self, net::Request) {
  auto list = self->provider->list_models();
  auto models = co_await std::move(list);
  json out = json::array();
  if (!models) {
    self->note_result(models.error());
    co_return net::Response::json(200, out);  // the contract: empty when the server is down
  }
  const std::string active = self->current_model();
  const std::string source(model::provider_kind_name(self->provider->kind()));
  for (const auto& info : *models) {
    json entry = {{"modelId", info.name},
                  {"paramSize", info.param_size_b},
                  {"installed", true},
                  {"active", service_same_model(info.name, active)},
                  {"source", source == "ollama-local" ? "ollama" : source}};
    if (!info.quantization.empty()) entry["quantization"] = info.quantization;
    out.push_back(std::move(entry));
  }
  co_return net::Response::json(200, out);
}

json service_overview(const Impl& self) {
  double size = 0;
  std::string active;
  {
    std::lock_guard lock(self.mu);
    active = self.active_model;
    size = self.active_param_size;
  }
  return {{"activeModel", active},
          {"activeModelParamSize", size},
          {"ollamaHealthy", self.model_server_healthy()},
          {"uptimeSeconds",
           std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - self.started).count()},
          {"memoryMB", service_memory_mb()},
          {"nodeVersion", "v" EDGECODER_VERSION},
          {"provider", model::provider_kind_name(self.provider->kind())},
          {"llm", self.provider->is_llm()},
          {"metrics", self.flat_metrics()}};
}

asio::awaitable<void> service_run_health(std::weak_ptr<Impl> weak,
                                         std::shared_ptr<asio::steady_timer> timer) {
  for (;;) {
    std::chrono::milliseconds interval{0};
    {
      auto self = weak.lock();
      if (!self || self->stopping.load()) co_return;
      auto check = self->provider->server_version();
      auto version = co_await std::move(check);
      if (self->stopping.load()) co_return;
      if (version) {
        self->note_health(true, "");
      } else {
        self->note_health(false, version.error().detail);
      }
      interval = self->options.health_interval;
    }
    timer->expires_after(interval);
    auto wait = timer->async_wait(asio::as_tuple(asio::use_awaitable));
    co_await std::move(wait);
  }
}

}  // namespace service_detail

core::Result<ServiceOptions> service_options_from(const core::Config& config) {
  ServiceOptions options;
  options.auth_token = config.settings.get_or("INFERENCE_AUTH_TOKEN", "");
  options.metrics_token = config.settings.get_or("METRICS_TOKEN", "");
  auto signatures = signature_options_from(config.settings);
  if (!signatures) return signatures.error();
  options.signatures = std::move(*signatures);
  auto provider = model::provider_config_from(config.settings);
  if (!provider) return provider.error();
  options.provider = std::move(*provider);
  auto interval = config.settings.get_int("MODEL_HEALTH_INTERVAL_MS", 1, 86'400'000);
  if (!interval) return interval.error();
  options.health_interval = std::chrono::milliseconds(*interval);
  return options;
}

InferenceService::InferenceService(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

InferenceService::~InferenceService() { stop(); }

core::Result<std::shared_ptr<InferenceService>> InferenceService::create(
    ServiceOptions options, asio::any_io_executor executor, core::metrics::Registry& metrics) {
  auto provider = model::make_provider(options.provider, executor, &metrics);
  if (!provider) return provider.error();
  return create_with_provider(std::move(options), std::move(*provider), std::move(executor),
                              metrics);
}

std::shared_ptr<InferenceService> InferenceService::create_with_provider(
    ServiceOptions options, std::unique_ptr<model::Provider> provider,
    asio::any_io_executor executor, core::metrics::Registry& metrics) {
  auto impl =
      std::make_shared<Impl>(std::move(options), std::move(provider), std::move(executor), metrics);
  return std::shared_ptr<InferenceService>(new InferenceService(std::move(impl)));
}

void InferenceService::add_routes(net::Router& router) {
  const std::shared_ptr<Impl> impl = impl_;
  router.use([impl](const net::Request& request) -> std::optional<net::Response> {
    if (request.route == "/health" || request.route == "/ready" || request.route == "/metrics") {
      return std::nullopt;
    }
    if (!impl->options.auth_token.empty() && !token_matches(request, impl->options.auth_token)) {
      impl->registry
          .counter("edgecoder_inference_auth_failures_total", "Rejected inference requests",
                   {{"reason", "inference_unauthorized"}})
          .inc();
      return net::Response::error(401, "inference_unauthorized",
                                  "missing or wrong x-inference-token");
    }
    const bool signed_route =
        request.route == "/decompose" || request.route == "/escalate" || request.route == "/chat";
    if (signed_route && impl->verifier.enabled()) {
      auto ok = impl->verifier.verify(request, service_detail::service_epoch_ms());
      if (!ok) {
        impl->registry
            .counter("edgecoder_inference_auth_failures_total", "Rejected inference requests",
                     {{"reason", std::string(ok.error().wire())}})
            .inc();
        return net::Response::error(ok.error());
      }
    }
    return std::nullopt;
  });
  // The contract's flat counters for clients that accept only JSON; everyone else (and a request
  // without the right METRICS_TOKEN) gets the standard /metrics handler.
  router.use([impl](const net::Request& request) -> std::optional<net::Response> {
    if (request.route != "/metrics" || !service_detail::service_accepts_only_json(request)) {
      return std::nullopt;
    }
    if (!impl->options.metrics_token.empty() &&
        !core::crypto::constant_time_equal(net::bearer_token(request),
                                           impl->options.metrics_token)) {
      return std::nullopt;
    }
    nlohmann::json out = impl->registry.render_json();
    out.update(impl->flat_metrics());
    return net::Response::json(200, out);
  });

  router.add("POST", "/decompose", [impl](net::Request r) {
    return service_detail::handle_decompose(impl, std::move(r));
  });
  router.add("POST", "/escalate", [impl](net::Request r) {
    return service_detail::handle_escalate(impl, std::move(r));
  });
  router.add("POST", "/chat",
             [impl](net::Request r) { return service_detail::handle_chat(impl, std::move(r)); });
  router.add("POST", "/model/swap",
             [impl](net::Request r) { return service_detail::handle_swap(impl, std::move(r)); });
  router.add("POST", "/model/pull",
             [impl](net::Request r) { return service_detail::handle_pull(impl, std::move(r)); });
  router.add("GET", "/model/status",
             [impl](net::Request r) { return service_detail::handle_status(impl, std::move(r)); });
  router.add("GET", "/model/list",
             [impl](net::Request r) { return service_detail::handle_list(impl, std::move(r)); });
  router.add_sync("GET", "/model/pull/progress", [impl](const net::Request&) {
    return net::Response::json(200, service_detail::service_pull_json(*impl));
  });
  router.add_sync("GET", "/dashboard", [](const net::Request&) {
    net::Response r =
        net::Response::text(200, std::string(dashboard_html()), "text/html; charset=utf-8");
    r.set_header("Cache-Control", "no-store");
    return r;
  });
  router.add_sync("GET", "/dashboard/api/overview", [impl](const net::Request&) {
    return net::Response::json(200, service_detail::service_overview(*impl));
  });
  router.add_sync("GET", "/dashboard/api/swap-history", [impl](const net::Request&) {
    return net::Response::json(200, {{"history", service_detail::service_swap_history(*impl)}});
  });
}

void InferenceService::start() {
  if (!impl_->provider->needs_server()) return;
  const std::weak_ptr<Impl> weak = impl_;
  asio::co_spawn(impl_->strand, service_detail::service_run_health(weak, impl_->health_timer),
                 service_detail::BackgroundDone{"health"});
}

void InferenceService::stop() {
  if (impl_->stopping.exchange(true)) return;
  // Pooled model-server connections go now: each belongs to an event loop that the node may
  // destroy before this service. A running pull stops at its next progress line.
  impl_->provider->release_connections();
  asio::post(impl_->strand, [timer = impl_->health_timer] { timer->cancel(); });
}

core::Result<void> InferenceService::ready() const {
  if (impl_->model_server_healthy()) return {};
  std::lock_guard lock(impl_->mu);
  const std::string where = impl_->options.provider.base_url;
  if (impl_->health.load() < 0) {
    return core::Error(core::Errc::unavailable, std::string(model::kModelUnavailable),
                       "checking the model server at " + where);
  }
  return core::Error(core::Errc::unavailable, std::string(model::kModelUnavailable),
                     "the model server at " + where + " is unreachable: " + impl_->health_error);
}

std::string InferenceService::active_model() const { return impl_->current_model(); }

const model::Provider& InferenceService::provider() const { return *impl_->provider; }

core::Result<Mounted> mount(const core::Config& config, asio::io_context& io, net::Router& router,
                            core::metrics::Registry& registry) {
  auto options = service_options_from(config);
  if (!options) return options.error();
  if (options->auth_token.empty() && !config.insecure_dev) {
    return core::make_error(core::Errc::invalid_argument,
                            "INFERENCE_AUTH_TOKEN is not set (or set EDGECODER_INSECURE_DEV=1)");
  }
  const model::ProviderConfig provider = options->provider;
  auto service = InferenceService::create(std::move(*options), io.get_executor(), registry);
  if (!service) return service.error();
  std::shared_ptr<InferenceService> s = std::move(*service);
  s->add_routes(router);
  s->start();
  if (!s->provider().is_llm()) {
    core::log::warn("inference", "model_provider_offline_stub",
                    {{"provider", model::provider_kind_name(provider.kind)},
                     {"detail", std::string(model::kLocalLabel) +
                                    "; set LOCAL_MODEL_PROVIDER=ollama-local or openai for a "
                                    "real model"}});
  } else {
    core::log::info("inference", "model_provider",
                    {{"provider", model::provider_kind_name(provider.kind)},
                     {"url", provider.base_url},
                     {"model", s->active_model()}});
  }
  Mounted mounted;
  mounted.ready_check = [s] { return s->ready(); };
  mounted.on_drain = [s] { s->stop(); };
  mounted.state = std::move(s);
  return mounted;
}

}  // namespace edgecoder::inference

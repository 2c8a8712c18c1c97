#include "model/fake_model_server.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/metrics.h"
#include "net/http.h"
#include "net/router.h"
#include "net/server.h"

namespace edgecoder::testing {

namespace asio = boost::asio;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct FakeModelServer::State {
  explicit State(Flavor f, FakeBehaviour b) : flavor(f), behaviour(std::move(b)) {}

  FakeBehaviour get() const {
    std::lock_guard lock(mu);
    return behaviour;
  }
  void record(const net::Request& request) {
    FakeRequest r;
    r.method = request.method;
    r.path = request.path;
    r.body = json::parse(request.body, nullptr, false);
    if (r.body.is_discarded()) r.body = nullptr;
    r.authorization = std::string(request.header("authorization").value_or(""));
    std::lock_guard lock(mu);
    requests.push_back(std::move(r));
  }
  void disconnected() {
    {
      std::lock_guard lock(mu);
      ++disconnects;
    }
    cv.notify_all();
  }

  const Flavor flavor;
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  FakeBehaviour behaviour;            // guarded by mu
  std::vector<FakeRequest> requests;  // guarded by mu
  int disconnects = 0;                // guarded by mu
  std::atomic<int> active{0};
};

namespace fake_detail {

using State = FakeModelServer::State;
using Flavor = FakeModelServer::Flavor;

constexpr std::string_view kCreatedAt = "2025-01-01T00:00:00.000000Z";

asio::awaitable<void> fake_sleep(std::chrono::milliseconds d) {
  if (d.count() <= 0) co_return;
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, d);
  auto wait = timer.async_wait(asio::as_tuple(asio::use_awaitable));
  co_await std::move(wait);
}

// Sleeps until `at` (returns at once when it has passed): tokens paced on a fixed schedule, as
// a model generating at a steady rate, so a late wake-up does not delay every later token.
asio::awaitable<void> fake_sleep_until(std::chrono::steady_clock::time_point at) {
  if (at <= std::chrono::steady_clock::now()) co_return;
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, at);
  auto wait = timer.async_wait(asio::as_tuple(asio::use_awaitable));
  co_await std::move(wait);
}

std::string fake_param_size(const std::string& name) {
  if (name.find(":7b") != std::string::npos) return "7.6B";
  if (name.find("llama3") != std::string::npos) return "8.0B";
  if (name.find(":1.5b") != std::string::npos) return "1.5B";
  return "494.03M";
}

bool fake_installed(const FakeBehaviour& b, const std::string& model) {
  return std::any_of(b.installed.begin(), b.installed.end(),
                     [&](const std::string& m) { return m == model || m == model + ":latest"; });
}

// The error body each server really sends.
net::Response fake_error(Flavor flavor, int status, const std::string& model) {
  json body;
  if (flavor == Flavor::ollama) {
    if (status == 404) {
      body = {{"error", "model \"" + model + "\" not found, try pulling it first"}};
    } else {
      body = {{"error", "llama runner process has terminated: exit status 2"}};
    }
  } else if (status == 404) {
    body = {
        {"error",
         {{"message", "The model `" + model + "` does not exist or you do not have access to it."},
          {"type", "invalid_request_error"},
          {"param", nullptr},
          {"code", "model_not_found"}}}};
  } else if (status == 401) {
    body = {{"error",
             {{"message", "Incorrect API key provided."},
              {"type", "invalid_request_error"},
              {"param", nullptr},
              {"code", "invalid_api_key"}}}};
  } else {
    body = {{"error",
             {{"message", "The server had an error while processing your request."},
              {"type", "server_error"},
              {"param", nullptr},
              {"code", nullptr}}}};
  }
  return net::Response::json(status, body);
}

std::string fake_now_ns() {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
          .count());
}

// One framed unit of the stream for `token` (a line or an SSE event).
std::string fake_token_frame(Flavor flavor, bool chat, const std::string& model,
                             const std::string& token, bool first) {
  if (flavor == Flavor::ollama) {
    json line = {{"model", model}, {"created_at", kCreatedAt}};
    if (chat) {
      line["message"] = {{"role", "assistant"}, {"content", token}};
    } else {
      line["response"] = token;
    }
    line["done"] = false;
    return line.dump() + "\n";
  }
  json delta = {{"content", token}};
  if (first) delta["role"] = "assistant";
  json chunk = {{"id", "chatcmpl-fake"},
                {"object", "chat.completion.chunk"},
                {"created", 1735689600},
                {"model", model},
                {"choices", {{{"index", 0}, {"delta", delta}, {"finish_reason", nullptr}}}}};
  return "data: " + chunk.dump() + "\n\n";
}

std::string fake_tool_call_id(std::size_t i) { return "call_fake" + std::to_string(i); }

std::string fake_arguments_text(const json& call) {
  return call.value("arguments", json::object()).dump();
}

// The frames carrying the behaviour's tool calls (chat only), after the tokens. `first` = no
// token frame came before.
std::vector<std::string> fake_tool_frames(Flavor flavor, bool chat, const std::string& model,
                                          const std::vector<json>& calls, bool first) {
  std::vector<std::string> frames;
  if (!chat || calls.empty()) return frames;
  if (flavor == Flavor::ollama) {
    json wire = json::array();
    for (const auto& call : calls) {
      wire.push_back({{"function",
                       {{"name", call.value("name", std::string())},
                        {"arguments", call.value("arguments", json::object())}}}});
    }
    const json line = {
        {"model", model},
        {"created_at", kCreatedAt},
        {"message", {{"role", "assistant"}, {"content", ""}, {"tool_calls", std::move(wire)}}},
        {"done", false}};
    frames.push_back(line.dump() + "\n");
    return frames;
  }
  const auto chunk = [&](json delta) {
    const json c = {{"id", "chatcmpl-fake"},
                    {"object", "chat.completion.chunk"},
                    {"created", 1735689600},
                    {"model", model},
                    {"choices", {{{"index", 0}, {"delta", delta}, {"finish_reason", nullptr}}}}};
    return "data: " + c.dump() + "\n\n";
  };
  for (std::size_t i = 0; i < calls.size(); ++i) {
    // As OpenAI does: id, type and name with empty arguments, then the arguments in pieces.
    json delta = {
        {"tool_calls",
         {{{"index", i},
           {"id", fake_tool_call_id(i)},
           {"type", "function"},
           {"function", {{"name", calls[i].value("name", std::string())}, {"arguments", ""}}}}}}};
    if (first && i == 0) {
      delta["role"] = "assistant";
      delta["content"] = nullptr;
    }
    frames.push_back(chunk(std::move(delta)));
    const std::string text = fake_arguments_text(calls[i]);
    const std::size_t piece = std::max<std::size_t>(1, (text.size() + 2) / 3);
    for (std::size_t at = 0; at < text.size(); at += piece) {
      frames.push_back(
          chunk({{"tool_calls",
                  {{{"index", i}, {"function", {{"arguments", text.substr(at, piece)}}}}}}}));
    }
  }
  return frames;
}

std::string fake_final_frames(Flavor flavor, bool chat, const std::string& model,
                              std::size_t tokens, bool tool_calls) {
  if (flavor == Flavor::ollama) {
    json line = {{"model", model}, {"created_at", kCreatedAt}};
    if (chat) {
      line["message"] = {{"role", "assistant"}, {"content", ""}};
    } else {
      line["response"] = "";
      line["context"] = {1, 2, 3};
    }
    line["done_reason"] = "stop";
    line["done"] = true;
    line["total_duration"] = 123456;
    line["load_duration"] = 1234;
    line["prompt_eval_count"] = 12;
    line["prompt_eval_duration"] = 1000;
    line["eval_count"] = tokens;
    line["eval_duration"] = 5000;
    return line.dump() + "\n";
  }
  json chunk = {{"id", "chatcmpl-fake"},
                {"object", "chat.completion.chunk"},
                {"created", 1735689600},
                {"model", model},
                {"choices",
                 {{{"index", 0},
                   {"delta", json::object()},
                   {"finish_reason", tool_calls ? "tool_calls" : "stop"}}}}};
  return "data: " + chunk.dump() + "\n\ndata: [DONE]\n\n";
}

std::string fake_malformed_frame(Flavor flavor) {
  return flavor == Flavor::ollama ? std::string("{\"model\":\"x\",\"response\":\"oops\n")
                                  : std::string("data: {\"choices\":[{\"delta\":\n\n");
}

class FakeStream final : public net::StreamBody {
 public:
  FakeStream(std::shared_ptr<State> state, FakeBehaviour behaviour, bool chat, std::string model)
      : state_(std::move(state)), b_(std::move(behaviour)), chat_(chat), model_(std::move(model)) {}

  asio::awaitable<void> run(net::BodyWriter* out) override {
    ++state_->active;
    auto body = serve(out);
    const bool complete = co_await std::move(body);
    --state_->active;
    if (!complete) state_->disconnected();
  }

 private:
  // False when a write failed (the client went away).
  asio::awaitable<bool> serve(net::BodyWriter* out) {
    auto stall = fake_sleep(b_.stall_before_first_token);
    co_await std::move(stall);
    const Flavor flavor = state_->flavor;
    if (b_.split_every > 0 || b_.split_at > 0) {
      std::string all;
      for (std::size_t i = 0; i < b_.tokens.size(); ++i) {
        all += fake_token_frame(flavor, chat_, model_, b_.tokens[i], i == 0);
        if (i == 0 && b_.malformed) all += fake_malformed_frame(flavor);
      }
      for (const auto& frame :
           fake_tool_frames(flavor, chat_, model_, b_.tool_calls, b_.tokens.empty())) {
        all += frame;
      }
      if (!b_.truncate) {
        all += fake_final_frames(flavor, chat_, model_, b_.tokens.size(), has_tool_calls());
      }
      std::vector<std::string> pieces;
      if (b_.split_every > 0) {
        for (std::size_t at = 0; at < all.size(); at += b_.split_every) {
          pieces.push_back(all.substr(at, b_.split_every));
        }
      } else {
        const std::size_t at = std::min(b_.split_at, all.size());
        pieces.push_back(all.substr(0, at));
        pieces.push_back(all.substr(at));
      }
      for (std::size_t i = 0; i < pieces.size(); ++i) {
        if (i > 0) {
          auto pause = fake_sleep(b_.split_pause);
          co_await std::move(pause);
        }
        auto write = out->write(std::move(pieces[i]));
        if (!co_await std::move(write)) co_return false;
      }
      co_return true;
    }
    const auto first_at = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < b_.tokens.size(); ++i) {
      if (i > 0) {
        auto pause = fake_sleep_until(first_at + static_cast<long>(i) * b_.token_interval);
        co_await std::move(pause);
      }
      const std::string token = b_.embed_send_time ? fake_now_ns() : b_.tokens[i];
      std::string frame = fake_token_frame(flavor, chat_, model_, token, i == 0);
      if (i == 0 && b_.malformed) frame += fake_malformed_frame(flavor);
      auto write = out->write(std::move(frame));
      if (!co_await std::move(write)) co_return false;
    }
    for (auto& frame : fake_tool_frames(flavor, chat_, model_, b_.tool_calls, b_.tokens.empty())) {
      auto write = out->write(std::move(frame));
      if (!co_await std::move(write)) co_return false;
    }
    if (!b_.truncate) {
      auto write =
          out->write(fake_final_frames(flavor, chat_, model_, b_.tokens.size(), has_tool_calls()));
      if (!co_await std::move(write)) co_return false;
      if (b_.stall_after_final.count() > 0) {
        auto pause = fake_sleep(b_.stall_after_final);
        co_await std::move(pause);
      }
    }
    co_return true;
  }

  bool has_tool_calls() const { return chat_ && !b_.tool_calls.empty(); }

  const std::shared_ptr<State> state_;
  const FakeBehaviour b_;
  const bool chat_;
  const std::string model_;
};

std::string fake_join(const std::vector<std::string>& tokens) {
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

// /api/generate, /api/chat, /v1/chat/completions.
asio::awaitable<net::Response> fake_generation(std::shared_ptr<State> state, net::Request request,
                                               bool chat) {
  state->record(request);
  FakeBehaviour b = state->get();
  auto stall = fake_sleep(b.stall_before_head);
  co_await std::move(stall);
  const json body = json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    co_return net::Response::json(400, {{"error", "invalid JSON body"}});
  }
  if (b.tool_calls_only_when_offered) {
    const bool offered =
        body.contains("tools") && body["tools"].is_array() && !body["tools"].empty();
    const bool answered = body.contains("messages") && body["messages"].is_array() &&
                          !body["messages"].empty() &&
                          body["messages"].back().value("role", std::string()) == "tool";
    if (!offered || answered) b.tool_calls.clear();
  }
  if (state->flavor == Flavor::openai && !b.api_key.empty() &&
      request.header("authorization").value_or("") != "Bearer " + b.api_key) {
    co_return fake_error(state->flavor, 401, "");
  }
  const std::string model = body.value("model", std::string());
  if (b.fail_status != 0) co_return fake_error(state->flavor, b.fail_status, model);
  if (!fake_installed(b, model)) co_return fake_error(state->flavor, 404, model);
  const bool stream = body.value("stream", state->flavor == Flavor::ollama);
  if (!stream) {
    if (b.malformed) co_return net::Response::text(200, "{\"model\":", "application/json");
    const bool tools = chat && !b.tool_calls.empty();
    if (state->flavor == Flavor::ollama) {
      json out = {{"model", model}, {"created_at", kCreatedAt}, {"done", true}};
      if (chat) {
        out["message"] = {{"role", "assistant"}, {"content", fake_join(b.tokens)}};
        if (tools) {
          json calls = json::array();
          for (const auto& call : b.tool_calls) {
            calls.push_back({{"function",
                              {{"name", call.value("name", std::string())},
                               {"arguments", call.value("arguments", json::object())}}}});
          }
          out["message"]["tool_calls"] = std::move(calls);
        }
      } else {
        out["response"] = fake_join(b.tokens);
      }
      co_return net::Response::json(200, out);
    }
    json message = {{"role", "assistant"}, {"content", fake_join(b.tokens)}};
    if (tools) {
      // OpenAI answers content null when the model only called tools.
      if (b.tokens.empty()) message["content"] = nullptr;
      json calls = json::array();
      for (std::size_t i = 0; i < b.tool_calls.size(); ++i) {
        calls.push_back({{"id", fake_detail::fake_tool_call_id(i)},
                         {"type", "function"},
                         {"function",
                          {{"name", b.tool_calls[i].value("name", std::string())},
                           {"arguments", fake_arguments_text(b.tool_calls[i])}}}});
      }
      message["tool_calls"] = std::move(calls);
    }
    json out = {{"id", "chatcmpl-fake"},
                {"object", "chat.completion"},
                {"model", model},
                {"choices",
                 {{{"index", 0},
                   {"message", std::move(message)},
                   {"finish_reason", tools ? "tool_calls" : "stop"}}}}};
    co_return net::Response::json(200, out);
  }
  auto body_stream = std::make_shared<FakeStream>(state, b, chat, model);
  if (state->flavor == Flavor::ollama) co_return net::Response::ndjson(std::move(body_stream));
  co_return net::Response::sse(std::move(body_stream));
}

asio::awaitable<net::Response> fake_metadata(std::shared_ptr<State> state, net::Request request) {
  state->record(request);
  const FakeBehaviour b = state->get();
  auto stall = fake_sleep(b.stall_before_head);
  co_await std::move(stall);
  if (state->flavor == Flavor::openai && !b.api_key.empty() &&
      request.header("authorization").value_or("") != "Bearer " + b.api_key) {
    co_return fake_error(state->flavor, 401, "");
  }
  if (b.fail_metadata && b.fail_status != 0) {
    co_return fake_error(state->flavor, b.fail_status, "");
  }
  if (b.malformed) co_return net::Response::text(200, "{\"models\": [", "application/json");
  if (request.path == "/api/version") co_return net::Response::json(200, {{"version", "0.5.7"}});
  if (request.path == "/api/tags") {
    json models = json::array();
    for (const auto& name : b.installed) {
      models.push_back({{"name", name},
                        {"model", name},
                        {"modified_at", kCreatedAt},
                        {"size", 4683087332LL},
                        {"digest", "a1b2c3"},
                        {"details",
                         {{"parent_model", ""},
                          {"format", "gguf"},
                          {"family", "qwen2"},
                          {"families", {"qwen2"}},
                          {"parameter_size", fake_param_size(name)},
                          {"quantization_level", "Q4_K_M"}}}});
    }
    co_return net::Response::json(200, {{"models", models}});
  }
  if (request.path == "/api/show") {
    const json body = json::parse(request.body, nullptr, false);
    const std::string model =
        body.is_object() ? body.value("model", body.value("name", std::string())) : std::string();
    if (!fake_installed(b, model)) {
      co_return net::Response::json(404, {{"error", "model '" + model + "' not found"}});
    }
    co_return net::Response::json(
        200, {{"modelfile", "FROM " + model},
              {"details",
               {{"format", "gguf"},
                {"family", "qwen2"},
                {"parameter_size", fake_param_size(model)},
                {"quantization_level", "Q4_K_M"}}},
              {"model_info", {{"general.architecture", "qwen2"}, {"qwen2.context_length", 32768}}},
              {"capabilities", json::array({"completion", "tools"})}});
  }
  // /v1/models
  json data = json::array();
  for (const auto& name : b.installed) {
    data.push_back({{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "fake"}});
  }
  co_return net::Response::json(200, {{"object", "list"}, {"data", data}});
}

class FakePull final : public net::StreamBody {
 public:
  FakePull(std::shared_ptr<State> state, FakeBehaviour b, std::string model)
      : state_(std::move(state)), b_(std::move(b)), model_(std::move(model)) {}

  asio::awaitable<void> run(net::BodyWriter* out) override {
    auto first = out->write(json{{"status", "pulling manifest"}}.dump() + "\n");
    if (!co_await std::move(first)) co_return;
    const std::int64_t total = 1000;
    for (int i = 1; i <= b_.pull_steps; ++i) {
      auto pause = fake_sleep(b_.pull_interval);
      co_await std::move(pause);
      if (b_.pull_fail) {
        auto error =
            out->write(json{{"error", "pull model manifest: file does not exist"}}.dump() + "\n");
        co_await std::move(error);
        co_return;
      }
      const json line = {{"status", "pulling a1b2c3"},
                         {"digest", "sha256:a1b2c3"},
                         {"total", total},
                         {"completed", total * i / b_.pull_steps}};
      auto write = out->write(line.dump() + "\n");
      if (!co_await std::move(write)) co_return;
    }
    {
      std::lock_guard lock(state_->mu);
      state_->behaviour.installed.push_back(model_);
    }
    auto done = out->write(json{{"status", "verifying sha256 digest"}}.dump() + "\n" +
                           json{{"status", "writing manifest"}}.dump() + "\n" +
                           json{{"status", "success"}}.dump() + "\n");
    co_await std::move(done);
  }

 private:
  const std::shared_ptr<State> state_;
  const FakeBehaviour b_;
  const std::string model_;
};

asio::awaitable<net::Response> fake_pull(std::shared_ptr<State> state, net::Request request) {
  state->record(request);
  const FakeBehaviour b = state->get();
  const json body = json::parse(request.body, nullptr, false);
  const std::string model =
      body.is_object() ? body.value("model", body.value("name", std::string())) : std::string();
  if (model.empty()) co_return net::Response::json(400, {{"error", "model is required"}});
  co_return net::Response::ndjson(std::make_shared<FakePull>(state, b, model));
}

}  // namespace fake_detail

FakeBehaviour& FakeBehaviour::reply(const std::string& text, std::size_t piece) {
  tokens.clear();
  if (piece == 0) piece = 1;
  for (std::size_t at = 0; at < text.size(); at += piece) tokens.push_back(text.substr(at, piece));
  return *this;
}

struct FakeModelServer::Runner {
  asio::io_context io;
  std::unique_ptr<net::HttpServer> server;
  std::thread thread;
};

FakeModelServer::FakeModelServer(Flavor flavor, FakeBehaviour behaviour, std::uint16_t port)
    : state_(std::make_shared<State>(flavor, std::move(behaviour))),
      runner_(std::make_unique<Runner>()) {
  net::Router router;
  auto st = state_;
  if (flavor == Flavor::ollama) {
    router.add("POST", "/api/generate", [st](net::Request r) {
      return fake_detail::fake_generation(st, std::move(r), false);
    });
    router.add("POST", "/api/chat", [st](net::Request r) {
      return fake_detail::fake_generation(st, std::move(r), true);
    });
    for (const char* path : {"/api/tags", "/api/version"}) {
      router.add("GET", path,
                 [st](net::Request r) { return fake_detail::fake_metadata(st, std::move(r)); });
    }
    router.add("POST", "/api/show",
               [st](net::Request r) { return fake_detail::fake_metadata(st, std::move(r)); });
    router.add("POST", "/api/pull",
               [st](net::Request r) { return fake_detail::fake_pull(st, std::move(r)); });
  } else {
    router.add("POST", "/v1/chat/completions", [st](net::Request r) {
      return fake_detail::fake_generation(st, std::move(r), true);
    });
    router.add("GET", "/v1/models",
               [st](net::Request r) { return fake_detail::fake_metadata(st, std::move(r)); });
  }
  net::ServerOptions options;
  options.name = flavor == Flavor::ollama ? "fake-ollama" : "fake-openai";
  options.port = port;
  runner_->server =
      std::make_unique<net::HttpServer>(runner_->io, options, std::move(router), nullptr);
  auto bound = runner_->server->listen();
  if (!bound) throw std::runtime_error("fake model server: " + bound.error().detail);
  port_ = *bound;
  runner_->server->start();
  runner_->thread = std::thread([this] { runner_->io.run(); });
}

FakeModelServer::~FakeModelServer() {
  runner_->server->shutdown();
  runner_->io.stop();
  if (runner_->thread.joinable()) runner_->thread.join();
  runner_->server.reset();
}

std::string FakeModelServer::base_url() const {
  const std::string base = "http://127.0.0.1:" + std::to_string(port_);
  return state_->flavor == Flavor::ollama ? base : base + "/v1";
}

std::string FakeModelServer::stream_body(bool chat, const std::string& model) const {
  const FakeBehaviour b = state_->get();
  std::string all;
  for (std::size_t i = 0; i < b.tokens.size(); ++i) {
    all += fake_detail::fake_token_frame(state_->flavor, chat, model, b.tokens[i], i == 0);
    if (i == 0 && b.malformed) all += fake_detail::fake_malformed_frame(state_->flavor);
  }
  for (const auto& frame :
       fake_detail::fake_tool_frames(state_->flavor, chat, model, b.tool_calls, b.tokens.empty())) {
    all += frame;
  }
  if (!b.truncate) {
    all += fake_detail::fake_final_frames(state_->flavor, chat, model, b.tokens.size(),
                                          chat && !b.tool_calls.empty());
  }
  return all;
}

void FakeModelServer::set_behaviour(FakeBehaviour behaviour) {
  std::lock_guard lock(state_->mu);
  state_->behaviour = std::move(behaviour);
}

FakeBehaviour FakeModelServer::behaviour() const { return state_->get(); }

std::vector<FakeRequest> FakeModelServer::requests() const {
  std::lock_guard lock(state_->mu);
  return state_->requests;
}

std::vector<FakeRequest> FakeModelServer::requests_to(const std::string& path) const {
  std::vector<FakeRequest> out;
  for (auto& r : requests()) {
    if (r.path == path) out.push_back(std::move(r));
  }
  return out;
}

void FakeModelServer::clear_requests() {
  std::lock_guard lock(state_->mu);
  state_->requests.clear();
}

int FakeModelServer::disconnects() const {
  std::lock_guard lock(state_->mu);
  return state_->disconnects;
}

bool FakeModelServer::wait_for_disconnects(int count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mu);
  return state_->cv.wait_for(lock, timeout, [&] { return state_->disconnects >= count; });
}

int FakeModelServer::active_streams() const { return state_->active.load(); }

std::size_t FakeModelServer::open_connections() const {
  return runner_->server->active_connections();
}

}  // namespace edgecoder::testing

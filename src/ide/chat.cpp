// The IDE provider's model API: OpenAI /v1/chat/completions and Ollama /api/chat and
// /api/generate, streamed and not, over the reply router (local provider, then the mesh).
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>

#include "core/crypto.h"
#include "core/log.h"
#include "ide/detail.h"

namespace edgecoder::ide::detail {

using core::Errc;

// ---- wire helpers ----

net::Response openai_error(int status, std::string_view message, std::string_view type,
                           std::string_view code, std::string_view param) {
  json error = {{"message", message},
                {"type", type},
                {"param", param.empty() ? json(nullptr) : json(param)},
                {"code", code.empty() ? json(nullptr) : json(code)}};
  return net::Response::json(status, {{"error", error}});
}

net::Response ollama_error(int status, std::string_view message) {
  return net::Response::json(status, {{"error", message}});
}

int model_error_status(const core::Error& error) {
  switch (error.code) {
    case Errc::not_found:
      return 404;
    case Errc::timeout:
      return 504;
    case Errc::invalid_argument:
      return 400;
    default:
      return 502;
  }
}

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_hex(std::size_t bytes) { return core::crypto::random_hex(bytes); }

namespace {

std::string iso_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()) %
                  std::chrono::seconds(1);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(ns.count()));
  return buf;
}

// Counts a local reply as active while it streams and records its latency when it ends.
class TrackedStream final : public model::TokenStream {
 public:
  TrackedStream(ImplPtr self, std::unique_ptr<model::TokenStream> inner)
      : self_(std::move(self)), inner_(std::move(inner)), started_(Clock::now()) {
    ++self_->active_local;
  }
  ~TrackedStream() override {
    --self_->active_local;
    if (ended_) {
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
      std::lock_guard lock(self_->mu);
      self_->local_latency.add(ms);
    }
  }
  asio::awaitable<core::Result<std::optional<std::vector<std::string>>>> next() override {
    auto call = inner_->next();
    auto r = co_await std::move(call);
    if (r && !*r) ended_ = true;
    co_return r;
  }
  const model::StreamStats& stats() const override { return inner_->stats(); }

 private:
  const ImplPtr self_;
  std::unique_ptr<model::TokenStream> inner_;
  const Clock::time_point started_;
  bool ended_ = false;
};

// Reads the first pieces of an opened stream.
asio::awaitable<core::Result<Opened>> read_first(std::unique_ptr<model::TokenStream> stream,
                                                 Route route, std::string model) {
  Opened opened;
  opened.route = route;
  opened.model = std::move(model);
  auto call = stream->next();
  auto first = co_await std::move(call);
  if (!first) co_return first.error();
  if (*first) {
    opened.first = std::move(**first);
  } else {
    opened.finished = true;
  }
  opened.stream = std::move(stream);
  co_return opened;
}

asio::awaitable<core::Result<Opened>> open_local(ImplPtr self, Ask ask) {
  std::string model = ask.model.empty() ? self->provider->config().model : ask.model;
  core::Result<std::unique_ptr<model::TokenStream>> stream = core::make_error(Errc::internal, "");
  if (ask.generate) {
    auto call = self->provider->generate(std::move(ask.gen));
    stream = co_await std::move(call);
  } else {
    auto call = self->provider->chat(std::move(ask.chat));
    stream = co_await std::move(call);
  }
  if (!stream) co_return stream.error();
  auto tracked = std::make_unique<TrackedStream>(self, std::move(*stream));
  auto call = read_first(std::move(tracked), Route::local, model);
  co_return co_await std::move(call);
}

std::string mesh_input(const Ask& ask) {
  if (ask.generate) return ask.gen.prompt;
  for (auto it = ask.chat.messages.rbegin(); it != ask.chat.messages.rend(); ++it) {
    if (it->role == "user") return it->content;
  }
  return {};
}

asio::awaitable<core::Result<Opened>> open_mesh_reply(ImplPtr self, Ask ask) {
  const std::string input = mesh_input(ask);
  if (input.empty()) {
    co_return core::Error(Errc::invalid_argument, "invalid_request",
                          "the mesh route needs a user message or prompt");
  }
  const std::string model = ask.model.empty() ? self->options.mesh_model : ask.model;
  auto call = open_mesh(self, input, model == self->options.mesh_model ? "" : model,
                        self->options.mesh_language);
  auto stream = co_await std::move(call);
  if (!stream) co_return stream.error();
  auto first = read_first(std::move(*stream), Route::mesh, model);
  co_return co_await std::move(first);
}

bool passes_on(const core::Error& error) {
  return error.code == Errc::not_found || error.code == Errc::unavailable ||
         error.code == Errc::timeout;
}

}  // namespace

asio::awaitable<core::Result<Opened>> open_reply(ImplPtr self, Ask ask) {
  const bool mesh_only = ask.model == self->options.mesh_model;
  const auto& order = self->options.route_order;
  std::optional<core::Error> last;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const Route route = order[i];
    const bool more =
        i + 1 < order.size() && (order[i + 1] != Route::mesh || self->mesh_configured());
    if (route == Route::local) {
      if (mesh_only) continue;
      auto call = open_local(self, ask);
      auto opened = co_await std::move(call);
      if (opened) {
        self->count(route, true, false);
        co_return opened;
      }
      const bool pass = more && passes_on(opened.error());
      self->count(route, false, pass);
      core::log::info("ide", "route_failed",
                      {{"route", "local"},
                       {"error", opened.error().wire()},
                       {"detail", opened.error().detail},
                       {"next", pass ? "mesh" : "none"}});
      last = opened.error();
      if (!pass) break;
      continue;
    }
    if (!self->mesh_configured()) continue;
    auto call = open_mesh_reply(self, ask);
    auto opened = co_await std::move(call);
    if (opened) {
      self->count(route, true, false);
      co_return opened;
    }
    self->count(route, false, false);
    last = opened.error();
    break;
  }
  if (!last) {
    last = mesh_only || !self->mesh_configured()
               ? model::model_unavailable(
                     "the mesh route is off: set COORDINATOR_URL and MESH_AUTH_TOKEN, and put "
                     "mesh in IDE_ROUTE_ORDER")
               : model::model_unavailable("no route in IDE_ROUTE_ORDER could take the request");
  }
  co_return *last;
}

bool wants_route_info(const net::Request& request) {
  if (auto opt = request.header("x-edgecoder-route-info")) return *opt == "1" || *opt == "true";
  if (auto origin = request.header("origin")) {
    return *origin == "tauri://localhost" || *origin == "https://tauri.localhost" ||
           *origin == "http://localhost:1420";
  }
  return false;
}

json route_info(const IdeService::Impl& self, const Opened& opened) {
  std::string route = "swarm", label = "swarm network";
  if (opened.route == Route::local) {
    route = self.provider->is_llm() ? "ollama-local" : "edgecoder-local";
    label = self.provider->is_llm() ? "local model" : "offline";
  }
  std::int64_t p95 = 0;
  {
    std::lock_guard lock(self.mu);
    p95 = self.local_latency.p95();
  }
  return {{"route_info",
           {{"route", route},
            {"label", label},
            {"model", opened.model},
            {"p95Ms", p95},
            {"concurrent", self.active_local.load()}}}};
}

namespace {

// ---- request parsing ----

core::Result<std::string> content_text(const json& content) {
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {
    std::string text;
    for (const auto& part : content) {
      if (!part.is_object()) {
        return core::make_error(Errc::invalid_argument, "content parts must be objects");
      }
      const auto type = part.value("type", std::string());
      if (type == "text" && part.contains("text") && part["text"].is_string()) {
        if (!text.empty()) text += "\n";
        text += part["text"].get<std::string>();
      } else if (type != "image_url" && type != "input_audio") {
        return core::make_error(Errc::invalid_argument,
                                "unsupported content part type '" + type + "'");
      }
    }
    return text;
  }
  return core::make_error(Errc::invalid_argument, "content must be a string or an array of parts");
}

core::Result<std::vector<model::Message>> parse_messages(const json& body, bool ollama) {
  const auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty()) {
    return core::make_error(Errc::invalid_argument, "messages: a non-empty array is required");
  }
  std::vector<model::Message> out;
  for (std::size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return core::make_error(Errc::invalid_argument, where + ".role: a string is required");
    }
    model::Message message;
    message.role = m["role"].get<std::string>();
    if (message.role == "developer") message.role = "system";
    if (message.role != "system" && message.role != "user" && message.role != "assistant" &&
        message.role != "tool") {
      return core::make_error(Errc::invalid_argument,
                              where + ".role: system, user, assistant or tool expected");
    }
    auto text = content_text(m.value("content", json(nullptr)));
    if (!text)
      return core::make_error(Errc::invalid_argument, where + ".content: " + text.error().detail);
    message.content = std::move(*text);
    if (auto calls = m.find("tool_calls"); calls != m.end() && !calls->is_null()) {
      if (!calls->is_array()) {
        return core::make_error(Errc::invalid_argument, where + ".tool_calls: an array expected");
      }
      json converted = json::array();
      for (const auto& c : *calls) {
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object() ||
            !c["function"].contains("name")) {
          return core::make_error(Errc::invalid_argument,
                                  where + ".tool_calls: each needs function.name");
        }
        json call = c;
        if (ollama) {
          // Ollama: arguments is an object and there is no id.
          json args = c["function"].value("arguments", json::object());
          call = {{"id", "call_" + random_hex(4)},
                  {"type", "function"},
                  {"function",
                   {{"name", c["function"]["name"]},
                    {"arguments", args.is_string() ? args.get<std::string>() : args.dump()}}}};
        }
        converted.push_back(std::move(call));
      }
      message.tool_calls = std::move(converted);
    }
    if (auto id = m.find("tool_call_id"); id != m.end() && id->is_string()) {
      message.tool_call_id = id->get<std::string>();
    }
    out.push_back(std::move(message));
  }
  return out;
}

core::Result<void> parse_sampling(const json& j, model::Sampling& s, bool ollama) {
  const json* src = &j;
  if (ollama) {
    static const json kEmpty = json::object();
    auto o = j.find("options");
    src = (o != j.end() && o->is_object()) ? &*o : &kEmpty;
  }
  if (auto t = src->find("temperature"); t != src->end() && !t->is_null()) {
    if (!t->is_number() || t->get<double>() < 0 || t->get<double>() > 2) {
      return core::make_error(Errc::invalid_argument, "temperature: a number from 0 to 2 expected");
    }
    s.temperature = t->get<double>();
  }
  // The token limit's names: Ollama's, or OpenAI's current and older one.
  static const std::vector<std::string> kOllamaLimit = {"num_predict"};
  static const std::vector<std::string> kOpenAiLimit = {"max_completion_tokens", "max_tokens"};
  for (const std::string& key : ollama ? kOllamaLimit : kOpenAiLimit) {
    auto n = src->find(key);
    if (n == src->end() || n->is_null()) continue;
    if (!n->is_number_integer() || n->get<std::int64_t>() < (ollama ? -2 : 1) ||
        n->get<std::int64_t>() > 1'000'000) {
      return core::make_error(Errc::invalid_argument, key + ": a positive integer expected");
    }
    if (n->get<std::int64_t>() > 0) s.max_tokens = static_cast<int>(n->get<std::int64_t>());
    break;
  }
  return {};
}

core::Result<std::string> optional_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::string();
  if (!it->is_string())
    return core::make_error(Errc::invalid_argument, std::string(key) + ": a string expected");
  return it->get<std::string>();
}

core::Result<bool> optional_bool(const json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    return core::make_error(Errc::invalid_argument, std::string(key) + ": true or false expected");
  return it->get<bool>();
}

std::string finish_reason(const model::StreamStats& stats) {
  if (stats.tool_calls.is_array() && !stats.tool_calls.empty()) return "tool_calls";
  if (stats.done_reason == "length") return "length";
  return "stop";
}

json usage_of(const model::StreamStats& stats) {
  const std::int64_t p = std::max<std::int64_t>(stats.prompt_tokens, 0);
  const std::int64_t c = std::max<std::int64_t>(stats.completion_tokens, 0);
  return {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}};
}

// Ollama's tool call shape: arguments as an object, no id.
json ollama_tool_calls(const json& calls) {
  json out = json::array();
  for (const auto& c : calls) {
    const json& f = c.contains("function") ? c["function"] : json::object();
    json args = json::object();
    if (f.contains("arguments") && f["arguments"].is_string()) {
      args = json::parse(f["arguments"].get<std::string>(), nullptr, false);
      if (args.is_discarded()) args = f["arguments"];
    } else if (f.contains("arguments")) {
      args = f["arguments"];
    }
    out.push_back({{"function", {{"name", f.value("name", std::string())}, {"arguments", args}}}});
  }
  return out;
}

net::Response reply_failed(const IdeService::Impl& self, const core::Error& error, bool ollama) {
  self.chat_failures.inc();
  const int status = model_error_status(error);
  if (ollama) return ollama_error(status, error.detail);
  std::string code(error.wire());
  std::string type = status == 404 || status == 400 ? "invalid_request_error" : "api_error";
  return openai_error(status, error.detail, type, code, status == 404 ? "model" : "");
}

// Reads the rest of a reply into one text.
asio::awaitable<core::Result<std::string>> collect_rest(Opened& opened) {
  std::string text;
  for (const auto& p : opened.first) text += p;
  if (opened.finished) co_return text;
  for (;;) {
    auto call = opened.stream->next();
    auto next = co_await std::move(call);
    if (!next) co_return next.error();
    if (!*next) break;
    for (const auto& p : **next) text += p;
  }
  co_return text;
}

// ---- OpenAI ----

// "chatcmpl-" and 24 hex digits. An answer's id needs to be unique, not secret: a per-thread
// generator instead of a system call per request.
std::string completion_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "chatcmpl-%016llx%08llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng() & 0xffffffffULL));
  return buf;
}

struct OpenAiReply {
  std::string id = completion_id();
  std::int64_t created = unix_seconds();
  std::string model;
  bool include_usage = false;

  json chunk(json delta, json finish = nullptr) const {
    json c = {{"id", id},
              {"object", "chat.completion.chunk"},
              {"created", created},
              {"model", model},
              {"system_fingerprint", nullptr},
              {"choices", json::array({{{"index", 0},
                                        {"delta", std::move(delta)},
                                        {"logprobs", nullptr},
                                        {"finish_reason", std::move(finish)}}})}};
    if (include_usage) c["usage"] = nullptr;
    return c;
  }
};

std::string data_frame(const json& j) { return "data: " + j.dump() + "\n\n"; }

class OpenAiStream final : public net::StreamBody {
 public:
  OpenAiStream(ImplPtr self, Opened opened, OpenAiReply reply, std::optional<json> info)
      : self_(std::move(self)),
        opened_(std::move(opened)),
        reply_(std::move(reply)),
        info_(std::move(info)) {}

  bool writes_at_once() const override { return true; }

  asio::awaitable<void> run(net::BodyWriter* out) override {
    std::string frames;
    if (info_) frames += data_frame(*info_);
    frames += data_frame(reply_.chunk({{"role", "assistant"}, {"content", ""}}));
    append(frames, opened_.first);
    bool more = !opened_.finished;
    while (more) {
      auto write = out->write(std::move(frames));
      if (!co_await std::move(write)) co_return;  // client gone: dropping the stream cancels
      frames.clear();
      auto call = opened_.stream->next();
      auto next = co_await std::move(call);
      if (!next) {
        self_->chat_failures.inc();
        const json error = {{"error",
                             {{"message", next.error().detail},
                              {"type", "api_error"},
                              {"param", nullptr},
                              {"code", next.error().wire()}}}};
        auto last = out->write_last(data_frame(error));
        co_await std::move(last);
        co_return;
      }
      if (!*next) break;
      append(frames, **next);
    }
    const model::StreamStats& stats = opened_.stream->stats();
    if (stats.tool_calls.is_array() && !stats.tool_calls.empty()) {
      json calls = json::array();
      for (std::size_t i = 0; i < stats.tool_calls.size(); ++i) {
        json c = stats.tool_calls[i];
        c["index"] = i;
        calls.push_back(std::move(c));
      }
      frames += data_frame(reply_.chunk({{"tool_calls", calls}}));
    }
    frames += data_frame(reply_.chunk(json::object(), finish_reason(stats)));
    if (reply_.include_usage) {
      json u = reply_.chunk(json::object());
      u["choices"] = json::array();
      u["usage"] = usage_of(stats);
      frames += data_frame(u);
    }
    frames += "data: [DONE]\n\n";
    auto write = out->write_last(std::move(frames));
    co_await std::move(write);
  }

 private:
  // A content chunk is the same JSON every time but for the text: it is rendered once and each
  // piece is spliced in (the per-token cost is escaping the text, not building an object).
  void append(std::string& frames, const std::vector<std::string>& pieces) {
    if (content_prefix_.empty()) {
      const std::string blank = data_frame(reply_.chunk({{"content", ""}}));
      const std::string marker = "\"content\":\"\"";
      const auto at = blank.find(marker);
      content_prefix_ = blank.substr(0, at + marker.size() - 2);
      content_suffix_ = blank.substr(at + marker.size());
    }
    for (const auto& p : pieces) {
      frames += content_prefix_;
      frames += json(p).dump(-1, ' ', false, json::error_handler_t::replace);
      frames += content_suffix_;
    }
  }

  const ImplPtr self_;
  Opened opened_;
  const OpenAiReply reply_;
  const std::optional<json> info_;
  std::string content_prefix_;  // a content chunk's frame up to its text
  std::string content_suffix_;  // and after it
};

asio::awaitable<net::Response> handle_chat_completions(ImplPtr self, net::Request request) {
  self->chat_requests.inc();
  auto body = net::parse_json_body(request);
  if (!body)
    co_return openai_error(400, body.error().detail, "invalid_request_error", "invalid_json");
  const json& j = *body;
  Ask ask;
  auto model = optional_string(j, "model");
  auto messages = parse_messages(j, false);
  auto stream = optional_bool(j, "stream", false);
  for (const core::Result<void>& check :
       {model ? core::Result<void>{} : core::Result<void>(model.error()),
        messages ? core::Result<void>{} : core::Result<void>(messages.error()),
        stream ? core::Result<void>{} : core::Result<void>(stream.error()),
        parse_sampling(j, ask.chat.sampling, false)}) {
    if (!check)
      co_return openai_error(400, check.error().detail, "invalid_request_error", "invalid_request");
  }
  if (auto tools = j.find("tools"); tools != j.end() && !tools->is_null()) {
    if (!tools->is_array())
      co_return openai_error(400, "tools: an array expected", "invalid_request_error",
                             "invalid_request", "tools");
    if (!tools->empty()) ask.chat.tools = *tools;
  }
  OpenAiReply reply;
  if (auto so = j.find("stream_options"); so != j.end() && so->is_object()) {
    reply.include_usage = so->value("include_usage", false);
  }
  ask.model = *model;
  ask.chat.model = *model;
  ask.chat.messages = std::move(*messages);
  const std::string asked_model = ask.model;
  auto call = open_reply(self, std::move(ask));
  auto opened = co_await std::move(call);
  if (!opened) co_return reply_failed(*self, opened.error(), false);
  reply.model = opened->model;
  if (*stream) {
    std::optional<json> info;
    if (wants_route_info(request)) info = route_info(*self, *opened);
    co_return net::Response::sse(
        std::make_shared<OpenAiStream>(self, std::move(*opened), reply, std::move(info)));
  }
  auto rest = collect_rest(*opened);
  auto text = co_await std::move(rest);
  if (!text) co_return reply_failed(*self, text.error(), false);
  const model::StreamStats& stats = opened->stream->stats();
  json message = {{"role", "assistant"}, {"content", *text}};
  if (stats.tool_calls.is_array() && !stats.tool_calls.empty()) {
    message["tool_calls"] = stats.tool_calls;
    if (text->empty()) message["content"] = nullptr;
  }
  co_return net::Response::json(
      200, {{"id", reply.id},
            {"object", "chat.completion"},
            {"created", reply.created},
            {"model", reply.model},
            {"system_fingerprint", nullptr},
            {"choices", json::array({{{"index", 0},
                                      {"message", message},
                                      {"logprobs", nullptr},
                                      {"finish_reason", finish_reason(stats)}}})},
            {"usage", usage_of(stats)}});
}

// ---- Ollama ----

json ollama_final(const Opened& opened, bool generate, Clock::time_point started) {
  const model::StreamStats& stats = opened.stream->stats();
  const auto total =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count();
  json j = {{"model", opened.model}, {"created_at", iso_now()}};
  if (generate) {
    j["response"] = "";
  } else {
    j["message"] = {{"role", "assistant"}, {"content", ""}};
  }
  j["done"] = true;
  j["done_reason"] =
      stats.done_reason.empty() || stats.done_reason == "tool_calls" ? "stop" : stats.done_reason;
  j["total_duration"] = total;
  j["load_duration"] = 0;
  j["prompt_eval_count"] = std::max<std::int64_t>(stats.prompt_tokens, 0);
  j["prompt_eval_duration"] = 0;
  j["eval_count"] = std::max<std::int64_t>(stats.completion_tokens, 0);
  j["eval_duration"] = total;
  return j;
}

json ollama_piece(const Opened& opened, bool generate, const std::string& text) {
  json j = {{"model", opened.model}, {"created_at", iso_now()}};
  if (generate) {
    j["response"] = text;
  } else {
    j["message"] = {{"role", "assistant"}, {"content", text}};
  }
  j["done"] = false;
  return j;
}

class OllamaStream final : public net::StreamBody {
 public:
  OllamaStream(ImplPtr self, Opened opened, bool generate, Clock::time_point started)
      : self_(std::move(self)),
        opened_(std::move(opened)),
        generate_(generate),
        started_(started) {}

  bool writes_at_once() const override { return true; }

  asio::awaitable<void> run(net::BodyWriter* out) override {
    std::string lines;
    append(lines, opened_.first);
    bool more = !opened_.finished;
    while (more) {
      auto write = out->write(std::move(lines));
      if (!co_await std::move(write)) co_return;
      lines.clear();
      auto call = opened_.stream->next();
      auto next = co_await std::move(call);
      if (!next) {
        self_->chat_failures.inc();
        auto last = out->write_last(json({{"error", next.error().detail}}).dump() + "\n");
        co_await std::move(last);
        co_return;
      }
      if (!*next) break;
      append(lines, **next);
    }
    const model::StreamStats& stats = opened_.stream->stats();
    if (!generate_ && stats.tool_calls.is_array() && !stats.tool_calls.empty()) {
      json j = ollama_piece(opened_, false, "");
      j["message"]["tool_calls"] = ollama_tool_calls(stats.tool_calls);
      lines += j.dump() + "\n";
    }
    lines += ollama_final(opened_, generate_, started_).dump() + "\n";
    auto write = out->write_last(std::move(lines));
    co_await std::move(write);
  }

 private:
  void append(std::string& lines, const std::vector<std::string>& pieces) const {
    for (const auto& p : pieces) lines += ollama_piece(opened_, generate_, p).dump() + "\n";
  }

  const ImplPtr self_;
  Opened opened_;
  const bool generate_;
  const Clock::time_point started_;
};

asio::awaitable<net::Response> handle_ollama(ImplPtr self, net::Request request, bool generate) {
  self->chat_requests.inc();
  const auto started = Clock::now();
  auto body = net::parse_json_body(request);
  if (!body) co_return ollama_error(400, body.error().detail);
  const json& j = *body;
  Ask ask;
  ask.generate = generate;
  auto model = optional_string(j, "model");
  if (!model) co_return ollama_error(400, model.error().detail);
  if (model->empty()) co_return ollama_error(400, "model is required");
  auto stream = optional_bool(j, "stream", true);
  if (!stream) co_return ollama_error(400, stream.error().detail);
  model::Sampling sampling;
  if (auto s = parse_sampling(j, sampling, true); !s) co_return ollama_error(400, s.error().detail);
  ask.model = *model;
  if (generate) {
    auto prompt = optional_string(j, "prompt");
    auto system = optional_string(j, "system");
    if (!prompt) co_return ollama_error(400, prompt.error().detail);
    if (!system) co_return ollama_error(400, system.error().detail);
    if (prompt->empty()) {
      // Ollama answers an empty prompt by loading the model: an empty, finished reply.
      co_return net::Response::json(200, {{"model", *model},
                                          {"created_at", iso_now()},
                                          {"response", ""},
                                          {"done", true},
                                          {"done_reason", "load"}});
    }
    ask.gen.model = *model;
    ask.gen.prompt = system->empty() ? *prompt : *system + "\n\n" + *prompt;
    ask.gen.sampling = sampling;
  } else {
    auto messages = parse_messages(j, true);
    if (!messages) co_return ollama_error(400, messages.error().detail);
    ask.chat.model = *model;
    ask.chat.messages = std::move(*messages);
    ask.chat.sampling = sampling;
    if (auto tools = j.find("tools"); tools != j.end() && tools->is_array() && !tools->empty()) {
      ask.chat.tools = *tools;
    }
  }
  auto call = open_reply(self, std::move(ask));
  auto opened = co_await std::move(call);
  if (!opened) {
    if (opened.error().code == Errc::not_found) {
      self->chat_failures.inc();
      co_return ollama_error(404, "model '" + *model + "' not found");
    }
    co_return reply_failed(*self, opened.error(), true);
  }
  if (*stream) {
    co_return net::Response::ndjson(
        std::make_shared<OllamaStream>(self, std::move(*opened), generate, started));
  }
  auto rest = collect_rest(*opened);
  auto text = co_await std::move(rest);
  if (!text) co_return reply_failed(*self, text.error(), true);
  json out = ollama_final(*opened, generate, started);
  if (generate) {
    out["response"] = *text;
  } else {
    out["message"]["content"] = *text;
    const auto& calls = opened->stream->stats().tool_calls;
    if (calls.is_array() && !calls.empty()) out["message"]["tool_calls"] = ollama_tool_calls(calls);
  }
  co_return net::Response::json(200, out);
}

}  // namespace

void add_chat_routes(ImplPtr self, net::Router& router) {
  router.add("POST", "/v1/chat/completions",
             [self](net::Request r) { return handle_chat_completions(self, std::move(r)); });
  router.add("POST", "/api/chat",
             [self](net::Request r) { return handle_ollama(self, std::move(r), false); });
  router.add("POST", "/api/generate",
             [self](net::Request r) { return handle_ollama(self, std::move(r), true); });
}

}  // namespace edgecoder::ide::detail

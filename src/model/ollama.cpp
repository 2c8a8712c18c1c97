// The Ollama provider: /api/generate and /api/chat as NDJSON streams, /api/tags, /api/show,
// /api/version and /api/pull (NDJSON progress). Error bodies are {"error": "..."}; a 404 whose
// text names a model is model_not_found.
#include <deque>
#include <map>

#include <nlohmann/json.hpp>

#include "model/provider.h"
#include "model/provider_detail.h"
#include "net/client.h"
#include "net/stream_parsers.h"

namespace edgecoder::model::detail {

namespace ollama_detail {

using nlohmann::json;

json ollama_options(const Sampling& sampling) {
  json options = json::object();
  if (sampling.temperature) options["temperature"] = *sampling.temperature;
  if (sampling.max_tokens) options["num_predict"] = *sampling.max_tokens;
  return options;
}

// An {"error": "..."} line or body as a model error.
core::Error ollama_error(std::string_view what, const std::string& text) {
  std::string lower = text;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string detail = std::string(what) + ": " + text;
  if (lower.find("not found") != std::string::npos && lower.find("model") != std::string::npos) {
    return model_not_found(detail);
  }
  return model_unavailable(detail);
}

ModelInfo ollama_model_info(const json& entry) {
  ModelInfo info;
  info.name = entry.value("name", entry.value("model", std::string()));
  if (auto size = entry.find("size"); size != entry.end() && size->is_number()) {
    info.size_bytes = size->get<std::int64_t>();
  }
  if (auto details = entry.find("details"); details != entry.end() && details->is_object()) {
    info.param_size_b = parse_param_size(details->value("parameter_size", std::string()));
    info.quantization = details->value("quantization_level", std::string());
    info.family = details->value("family", std::string());
  }
  return info;
}

// Chat history in Ollama's shape: tool calls carry their arguments as an object and no id; a
// tool result names its tool (tool_name) instead of a call id.
json ollama_messages(std::vector<Message> messages) {
  std::map<std::string, std::string> tool_names;  // call id -> function name
  json out = json::array();
  for (auto& m : messages) {
    json message = {{"role", std::move(m.role)}, {"content", std::move(m.content)}};
    if (m.tool_calls.is_array() && !m.tool_calls.empty()) {
      json calls = json::array();
      for (const auto& call : m.tool_calls) {
        if (!call.is_object()) continue;
        const json function = call.value("function", json::object());
        const std::string name =
            function.is_object() ? function.value("name", std::string()) : std::string();
        json arguments = json::object();
        if (function.is_object()) {
          if (auto a = function.find("arguments"); a != function.end() && !a->is_null()) {
            arguments = *a;
            if (a->is_string()) {
              // Not JSON text: sent as the string it is, for the server to judge.
              auto parsed = json::parse(a->get_ref<const std::string&>(), nullptr, false);
              if (!parsed.is_discarded()) arguments = std::move(parsed);
            }
          }
        }
        if (auto id = call.find("id"); id != call.end() && id->is_string()) {
          tool_names[id->get<std::string>()] = name;
        }
        calls.push_back({{"function", {{"name", name}, {"arguments", std::move(arguments)}}}});
      }
      message["tool_calls"] = std::move(calls);
    }
    if (!m.tool_call_id.empty()) {
      if (auto it = tool_names.find(m.tool_call_id); it != tool_names.end()) {
        message["tool_name"] = it->second;
      }
    }
    out.push_back(std::move(message));
  }
  return out;
}

// NDJSON lines of /api/generate ("response") or /api/chat ("message.content").
class OllamaTokenStream final : public HttpTokenStream {
 public:
  OllamaTokenStream(std::unique_ptr<net::ClientStream> body, std::shared_ptr<ModelProbe> probe,
                    bool chat, std::string what, Clock::time_point started,
                    std::chrono::milliseconds first_token_timeout)
      : HttpTokenStream(std::move(body), std::move(probe), chat ? "chat" : "generate",
                        std::move(what), started, first_token_timeout),
        chat_(chat) {}

 protected:
  core::Result<void> consume(const std::string* piece, std::vector<std::string>& out) override {
    if (piece == nullptr) {
      if (auto last = parser_.finish()) return line(*last, out);
      return {};
    }
    auto lines = parser_.feed(*piece);
    if (!lines) return model_unavailable(what() + ": " + lines.error().detail);
    for (const auto& text : *lines) {
      if (auto ok = line(text, out); !ok) return ok;
    }
    return {};
  }

 private:
  core::Result<void> line(const std::string& text, std::vector<std::string>& out) {
    mark_activity();
    if (done()) return {};
    const auto j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return model_unavailable(what() + ": malformed JSON line in the stream");
    }
    if (auto e = j.find("error"); e != j.end()) {
      return ollama_error(what(), e->is_string() ? e->get<std::string>() : e->dump());
    }
    if (stats_.model.empty()) stats_.model = j.value("model", std::string());
    const json* content = nullptr;
    if (chat_) {
      if (auto m = j.find("message"); m != j.end() && m->is_object()) {
        if (auto c = m->find("content"); c != m->end()) content = &*c;
        if (auto t = m->find("tool_calls"); t != m->end() && t->is_array()) {
          for (const auto& call : *t) tool_calls_.add_ollama(call);
        }
      }
    } else if (auto r = j.find("response"); r != j.end()) {
      content = &*r;
    }
    if (content != nullptr && content->is_string()) {
      const auto& s = content->get_ref<const std::string&>();
      if (!s.empty()) out.push_back(s);
    }
    if (j.value("done", false)) {
      stats_.done_reason = j.value("done_reason", std::string("stop"));
      if (!tool_calls_.empty()) {
        stats_.tool_calls = tool_calls_.json();
        // Ollama says "stop" after tool calls; "length" (calls cut short) is kept.
        if (stats_.done_reason == "stop") stats_.done_reason = "tool_calls";
      }
      if (auto n = j.find("prompt_eval_count"); n != j.end() && n->is_number_integer()) {
        stats_.prompt_tokens = n->get<std::int64_t>();
      }
      if (auto n = j.find("eval_count"); n != j.end() && n->is_number_integer()) {
        stats_.completion_tokens = n->get<std::int64_t>();
      }
      mark_done();
    }
    return {};
  }

  const bool chat_;
  net::NdjsonParser parser_;
  ToolCalls tool_calls_;
};

class OllamaPullStream final : public PullStream {
 public:
  explicit OllamaPullStream(std::unique_ptr<net::ClientStream> body) : body_(std::move(body)) {}

  asio::awaitable<core::Result<std::optional<PullUpdate>>> next() override {
    for (;;) {
      if (failed_) co_return *failed_;
      if (!queue_.empty()) {
        PullUpdate update = std::move(queue_.front());
        queue_.pop_front();
        co_return std::optional<PullUpdate>(std::move(update));
      }
      if (ended_) {
        if (succeeded_) co_return std::nullopt;
        failed_ = model_unavailable("ollama /api/pull: the stream ended before the pull finished");
        continue;
      }
      auto read = body_->next();
      auto piece = co_await std::move(read);
      if (!piece) {
        failed_ = from_client_error(piece.error(), "ollama /api/pull");
        continue;
      }
      if (!*piece) {
        ended_ = true;
        if (auto last = parser_.finish()) line(*last);
        body_.reset();
        continue;
      }
      auto lines = parser_.feed(**piece);
      if (!lines) {
        failed_ = model_unavailable("ollama /api/pull: " + lines.error().detail);
        continue;
      }
      for (const auto& text : *lines) line(text);
    }
  }

 private:
  void line(const std::string& text) {
    if (failed_) return;
    const auto j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      failed_ = model_unavailable("ollama /api/pull: malformed JSON line in the stream");
      return;
    }
    if (auto e = j.find("error"); e != j.end()) {
      failed_ =
          ollama_error("ollama /api/pull", e->is_string() ? e->get<std::string>() : e->dump());
      return;
    }
    PullUpdate update;
    update.status = j.value("status", std::string());
    if (auto n = j.find("completed"); n != j.end() && n->is_number()) {
      update.completed = n->get<std::int64_t>();
    }
    if (auto n = j.find("total"); n != j.end() && n->is_number()) {
      update.total = n->get<std::int64_t>();
    }
    if (update.status == "success") succeeded_ = true;
    queue_.push_back(std::move(update));
  }

  std::unique_ptr<net::ClientStream> body_;
  net::NdjsonParser parser_;
  std::deque<PullUpdate> queue_;
  bool ended_ = false;
  bool succeeded_ = false;
  std::optional<core::Error> failed_;
};

class OllamaProvider final : public Provider {
 public:
  OllamaProvider(ProviderConfig config, asio::any_io_executor executor,
                 std::shared_ptr<ModelProbe> probe)
      : config_(std::move(config)),
        probe_(std::move(probe)),
        clients_(std::move(executor), model_client_options(config_.timeouts)) {}

  ProviderKind kind() const override { return ProviderKind::ollama; }
  const ProviderConfig& config() const override { return config_; }
  void release_connections() override { clients_.close(); }

  asio::awaitable<core::Result<std::unique_ptr<TokenStream>>> generate(
      GenerateRequest request) override {
    json body = {{"model", request.model.empty() ? config_.model : request.model},
                 {"prompt", std::move(request.prompt)},
                 {"stream", true}};
    json options = ollama_options(request.sampling);
    if (!options.empty()) body["options"] = std::move(options);
    auto call = open("/api/generate", body.dump(), false);
    co_return co_await std::move(call);
  }

  asio::awaitable<core::Result<std::unique_ptr<TokenStream>>> chat(ChatRequest request) override {
    json body = {{"model", request.model.empty() ? config_.model : request.model},
                 {"messages", ollama_messages(std::move(request.messages))},
                 {"stream", true}};
    if (!request.tools.is_null()) body["tools"] = std::move(request.tools);
    json options = ollama_options(request.sampling);
    if (!options.empty()) body["options"] = std::move(options);
    auto call = open("/api/chat", body.dump(), true);
    co_return co_await std::move(call);
  }

  asio::awaitable<core::Result<std::vector<ModelInfo>>> list_models() override {
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    auto client = clients_.for_executor(executor);
    auto call = fetch_json(client, metadata_request("GET", "/api/tags", ""), "ollama /api/tags",
                           probe_.get(), "tags");
    auto j = co_await std::move(call);
    if (!j) co_return j.error();
    std::vector<ModelInfo> models;
    if (auto list = j->find("models"); list != j->end() && list->is_array()) {
      for (const auto& entry : *list) {
        if (entry.is_object()) models.push_back(ollama_model_info(entry));
      }
    }
    co_return models;
  }

  asio::awaitable<core::Result<ModelInfo>> show_model(std::string name) override {
    const json body = {{"model", name}, {"name", name}};
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    auto client = clients_.for_executor(executor);
    auto call = fetch_json(client, metadata_request("POST", "/api/show", body.dump()),
                           "ollama /api/show", probe_.get(), "show");
    auto j = co_await std::move(call);
    if (!j) co_return j.error();
    ModelInfo info = ollama_model_info(*j);
    info.name = name;
    // model_info holds "<architecture>.context_length"; capabilities is a list of names.
    if (auto mi = j->find("model_info"); mi != j->end() && mi->is_object()) {
      for (const auto& [key, value] : mi->items()) {
        if (key.ends_with(".context_length") && value.is_number_integer()) {
          info.context_length = value.get<std::int64_t>();
        }
      }
    }
    if (auto caps = j->find("capabilities"); caps != j->end() && caps->is_array()) {
      for (const auto& c : *caps) {
        if (c.is_string()) info.capabilities.push_back(c.get<std::string>());
      }
    }
    co_return info;
  }

  asio::awaitable<core::Result<std::string>> server_version() override {
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    auto client = clients_.for_executor(executor);
    auto call = fetch_json(client, metadata_request("GET", "/api/version", ""),
                           "ollama /api/version", probe_.get(), "version");
    auto j = co_await std::move(call);
    if (!j) co_return j.error();
    co_return "ollama " + j->value("version", std::string("unknown"));
  }

  asio::awaitable<core::Result<std::unique_ptr<PullStream>>> pull(std::string name) override {
    const json body = {{"model", name}, {"name", name}, {"stream", true}};
    net::ClientRequest request = metadata_request("POST", "/api/pull", body.dump());
    // A pull of several GB runs for a long time; progress lines keep it alive.
    request.total_timeout = std::chrono::hours(24);
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    auto client = clients_.for_executor(executor);
    auto call = client->stream(std::move(request));
    auto stream = co_await std::move(call);
    if (!stream) {
      probe_->request_done("pull", outcome_of(from_client_error(stream.error(), "")));
      co_return from_client_error(stream.error(), "ollama /api/pull");
    }
    const int status = (*stream)->status();
    if (status < 200 || status > 299) {
      auto read = read_bounded(stream->get(), 64 * 1024);
      const std::string text = co_await std::move(read);
      auto error = from_http_status(status, text, "ollama /api/pull");
      probe_->request_done("pull", outcome_of(error));
      co_return error;
    }
    probe_->request_done("pull", "ok");
    std::unique_ptr<PullStream> out = std::make_unique<OllamaPullStream>(std::move(*stream));
    co_return out;
  }

 private:
  net::ClientRequest metadata_request(std::string method, std::string_view path,
                                      std::string body) const {
    net::ClientRequest request;
    request.method = std::move(method);
    request.url = join_url(config_.base_url, path);
    if (!body.empty()) request.headers.emplace_back("Content-Type", "application/json");
    request.body = std::move(body);
    request.first_byte_timeout = config_.timeouts.metadata;
    request.total_timeout = config_.timeouts.metadata;
    return request;
  }

  asio::awaitable<core::Result<std::unique_ptr<TokenStream>>> open(std::string path,
                                                                   std::string body, bool chat) {
    const std::string what = "ollama " + path;
    const std::string op = chat ? "chat" : "generate";
    const auto started = Clock::now();
    net::ClientRequest request;
    request.method = "POST";
    request.url = join_url(config_.base_url, path);
    request.headers.emplace_back("Content-Type", "application/json");
    request.headers.emplace_back("Accept", "application/x-ndjson");
    request.body = std::move(body);
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    auto client = clients_.for_executor(executor);
    auto call = client->stream(std::move(request));
    auto stream = co_await std::move(call);
    if (!stream) {
      auto error = from_client_error(stream.error(), what);
      probe_->request_done(op, outcome_of(error));
      co_return error;
    }
    const int status = (*stream)->status();
    if (status < 200 || status > 299) {
      auto read = read_bounded(stream->get(), 64 * 1024);
      const std::string text = co_await std::move(read);
      auto error = from_http_status(status, text, what);
      probe_->request_done(op, outcome_of(error));
      co_return error;
    }
    std::unique_ptr<TokenStream> out = std::make_unique<OllamaTokenStream>(
        std::move(*stream), probe_, chat, what, started, config_.timeouts.first_token);
    co_return out;
  }

  const ProviderConfig config_;
  const std::shared_ptr<ModelProbe> probe_;
  LoopClients clients_;  // one HTTP client per event loop
};

}  // namespace ollama_detail

std::unique_ptr<Provider> make_ollama(ProviderConfig config, asio::any_io_executor executor,
                                      std::shared_ptr<ModelProbe> probe) {
  return std::make_unique<ollama_detail::OllamaProvider>(std::move(config), std::move(executor),
                                                         std::move(probe));
}

}  // namespace edgecoder::model::detail

// The OpenAI-compatible provider: POST {base}/chat/completions with SSE streaming (a server that
// answers with one JSON body instead is accepted too) and GET {base}/models. Works with llama.cpp
// server, vLLM, LM Studio, LocalAI and OpenAI itself, over http or https. Error bodies are
// {"error": {"message": ...}} (OpenAI) or {"message": ...} (vLLM).
#include <mutex>

#include <nlohmann/json.hpp>

#include "model/provider.h"
#include "model/provider_detail.h"
#include "net/client.h"
#include "net/stream_parsers.h"

namespace edgecoder::model::detail {

namespace openai_detail {

using nlohmann::json;

// A base URL without a path gets /v1 (the OpenAI convention is a base URL that ends in /v1).
std::string openai_api_base(const std::string& base_url) {
  const auto scheme = base_url.find("://");
  const auto path = base_url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path == std::string::npos) return base_url + "/v1";
  return base_url;
}

// Chat completion chunks from an SSE body (or one completion object from a JSON body).
class OpenAiTokenStream final : public HttpTokenStream {
 public:
  OpenAiTokenStream(std::unique_ptr<net::ClientStream> body, std::shared_ptr<ModelProbe> probe,
                    bool sse, std::string what, Clock::time_point started,
                    std::chrono::milliseconds first_token_timeout)
      : HttpTokenStream(std::move(body), std::move(probe), "chat", std::move(what), started,
                        first_token_timeout),
        sse_(sse) {}

 protected:
  core::Result<void> consume(const std::string* piece, std::vector<std::string>& out) override {
    if (!sse_) {
      // A server that ignored "stream": true: the whole answer is one JSON body.
      if (piece != nullptr) {
        mark_activity();
        whole_ += *piece;
        return {};
      }
      const auto j = json::parse(whole_, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        return model_unavailable(what() + ": malformed JSON in the answer");
      }
      auto ok = object(j, out);
      settle();
      mark_done();
      return ok;
    }
    if (piece == nullptr) {
      // Some servers end the stream after the finishing chunk without "data: [DONE]".
      if (finish_seen_) {
        settle();
        mark_done();
      }
      return {};
    }
    auto events = parser_.feed(*piece);
    if (!events) return model_unavailable(what() + ": " + events.error().detail);
    for (const auto& event : *events) {
      mark_activity();
      if (done()) continue;
      if (event.data == "[DONE]") {
        settle();
        mark_done();
        continue;
      }
      const auto j = json::parse(event.data, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        return model_unavailable(what() + ": malformed JSON event in the stream");
      }
      if (auto ok = object(j, out); !ok) return ok;
    }
    return {};
  }

 private:
  // One completion object or chunk: appends its text, notes the finish reason and usage.
  core::Result<void> object(const json& j, std::vector<std::string>& out) {
    if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
      return from_http_status(500, j.dump(), what());
    }
    if (stats_.model.empty()) stats_.model = j.value("model", std::string());
    if (auto usage = j.find("usage"); usage != j.end() && usage->is_object()) {
      if (auto n = usage->find("prompt_tokens"); n != usage->end() && n->is_number_integer()) {
        stats_.prompt_tokens = n->get<std::int64_t>();
      }
      if (auto n = usage->find("completion_tokens"); n != usage->end() && n->is_number_integer()) {
        stats_.completion_tokens = n->get<std::int64_t>();
      }
    }
    auto choices = j.find("choices");
    if (choices == j.end() || !choices->is_array() || choices->empty()) return {};
    const json& choice = (*choices)[0];
    if (!choice.is_object()) return {};
    for (const char* key : {"delta", "message"}) {
      if (auto d = choice.find(key); d != choice.end() && d->is_object()) {
        if (auto c = d->find("content"); c != d->end() && c->is_string()) {
          const auto& s = c->get_ref<const std::string&>();
          if (!s.empty()) out.push_back(s);
        }
        if (auto t = d->find("tool_calls"); t != d->end() && t->is_array()) {
          for (std::size_t i = 0; i < t->size(); ++i) tool_calls_.add_openai((*t)[i], i);
        }
      }
    }
    if (auto f = choice.find("finish_reason"); f != choice.end() && f->is_string()) {
      stats_.done_reason = f->get<std::string>();
      finish_seen_ = true;
    }
    return {};
  }

  // The answer is complete: publish its tool calls. Some servers finish a tool call answer with
  // "stop"; "length" (calls cut short) is kept.
  void settle() {
    if (tool_calls_.empty()) return;
    stats_.tool_calls = tool_calls_.json();
    if (stats_.done_reason.empty() || stats_.done_reason == "stop") {
      stats_.done_reason = "tool_calls";
    }
  }

  const bool sse_;
  net::SseParser parser_;
  std::string whole_;         // non-SSE answers
  bool finish_seen_ = false;  // a chunk carried finish_reason
  ToolCalls tool_calls_;
};

class OpenAiProvider final : public Provider {
 public:
  OpenAiProvider(ProviderConfig config, asio::any_io_executor executor,
                 std::shared_ptr<ModelProbe> probe)
      : config_(std::move(config)),
        api_base_(openai_api_base(config_.base_url)),
        probe_(std::move(probe)),
        clients_(std::move(executor), model_client_options(config_.timeouts)) {}

  ProviderKind kind() const override { return ProviderKind::openai; }
  const ProviderConfig& config() const override { return config_; }
  void release_connections() override { clients_.close(); }

  asio::awaitable<core::Result<std::unique_ptr<TokenStream>>> generate(
      GenerateRequest request) override {
    ChatRequest chat_request;
    chat_request.model = std::move(request.model);
    chat_request.sampling = request.sampling;
    Message user;
    user.role = "user";
    user.content = std::move(request.prompt);
    chat_request.messages.push_back(std::move(user));
    auto call = chat(std::move(chat_request));
    co_return co_await std::move(call);
  }

  asio::awaitable<core::Result<std::unique_ptr<TokenStream>>> chat(ChatRequest request) override {
    const std::string what = "openai /chat/completions";
    std::string model = request.model.empty() ? config_.model : request.model;
    if (model.empty()) {
      auto call = default_model();
      auto resolved = co_await std::move(call);
      if (!resolved) co_return resolved.error();
      model = std::move(*resolved);
    }
    json messages = json::array();
    for (auto& m : request.messages) {
      json message = {{"role", std::move(m.role)}, {"content", std::move(m.content)}};
      if (!m.tool_calls.is_null()) message["tool_calls"] = std::move(m.tool_calls);
      if (!m.tool_call_id.empty()) message["tool_call_id"] = std::move(m.tool_call_id);
      messages.push_back(std::move(message));
    }
    json body = {{"model", model}, {"messages", std::move(messages)}, {"stream", true}};
    if (!request.tools.is_null()) body["tools"] = std::move(request.tools);
    if (request.sampling.temperature) body["temperature"] = *request.sampling.temperature;
    if (request.sampling.max_tokens) body["max_tokens"] = *request.sampling.max_tokens;

    const auto started = Clock::now();
    net::ClientRequest http;
    http.method = "POST";
    http.url = join_url(api_base_, "/chat/completions");
    http.headers = headers();
    http.headers.emplace_back("Content-Type", "application/json");
    http.headers.emplace_back("Accept", "text/event-stream");
    http.body = body.dump();
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    auto client = clients_.for_executor(executor);
    auto call = client->stream(std::move(http));
    auto stream = co_await std::move(call);
    if (!stream) {
      auto error = from_client_error(stream.error(), what);
      probe_->request_done("chat", outcome_of(error));
      co_return error;
    }
    const int status = (*stream)->status();
    if (status < 200 || status > 299) {
      auto read = read_bounded(stream->get(), 64 * 1024);
      const std::string text = co_await std::move(read);
      auto error = from_http_status(status, text, what);
      probe_->request_done("chat", outcome_of(error));
      co_return error;
    }
    const auto type = net::find_header((*stream)->headers(), "content-type");
    const bool sse = !type || type->find("application/json") == std::string_view::npos;
    std::unique_ptr<TokenStream> out = std::make_unique<OpenAiTokenStream>(
        std::move(*stream), probe_, sse, what, started, config_.timeouts.first_token);
    co_return out;
  }

  asio::awaitable<core::Result<std::vector<ModelInfo>>> list_models() override {
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    auto client = clients_.for_executor(executor);
    auto call = fetch_json(client, models_request(), "openai /models", probe_.get(), "models");
    auto j = co_await std::move(call);
    if (!j) co_return j.error();
    std::vector<ModelInfo> models;
    if (auto data = j->find("data"); data != j->end() && data->is_array()) {
      for (const auto& entry : *data) {
        if (!entry.is_object()) continue;
        ModelInfo info;
        info.name = entry.value("id", std::string());
        if (!info.name.empty()) models.push_back(std::move(info));
      }
    }
    co_return models;
  }

  asio::awaitable<core::Result<ModelInfo>> show_model(std::string name) override {
    auto call = list_models();
    auto models = co_await std::move(call);
    if (!models) co_return models.error();
    for (auto& m : *models) {
      if (m.name == name) co_return std::move(m);
    }
    co_return model_not_found("openai /models: the server does not list model '" + name + "'");
  }

  asio::awaitable<core::Result<std::string>> server_version() override {
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    auto client = clients_.for_executor(executor);
    auto call = fetch_json(client, models_request(), "openai /models", probe_.get(), "models");
    auto j = co_await std::move(call);
    if (!j) co_return j.error();
    co_return std::string("openai-compatible");
  }

  asio::awaitable<core::Result<std::unique_ptr<PullStream>>> pull(std::string name) override {
    co_return core::Error(core::Errc::invalid_argument, "model_pull_unsupported",
                          "an OpenAI-compatible server cannot download models; load '" + name +
                              "' on the server itself");
  }

 private:
  net::Headers headers() const {
    net::Headers h;
    if (!config_.api_key.empty()) h.emplace_back("Authorization", "Bearer " + config_.api_key);
    return h;
  }

  net::ClientRequest models_request() const {
    net::ClientRequest request;
    request.url = join_url(api_base_, "/models");
    request.headers = headers();
    request.first_byte_timeout = config_.timeouts.metadata;
    request.total_timeout = config_.timeouts.metadata;
    return request;
  }

  // OPENAI_MODEL unset: the first model the server lists (llama.cpp serves exactly one).
  asio::awaitable<core::Result<std::string>> default_model() {
    {
      std::lock_guard lock(mu_);
      if (!resolved_model_.empty()) co_return resolved_model_;
    }
    auto call = list_models();
    auto models = co_await std::move(call);
    if (!models) co_return models.error();
    if (models->empty()) {
      co_return model_not_found(
          "openai /models: OPENAI_MODEL is unset and the server lists no "
          "model");
    }
    std::lock_guard lock(mu_);
    resolved_model_ = models->front().name;
    co_return resolved_model_;
  }

  const ProviderConfig config_;
  const std::string api_base_;  // ends in /v1 (or the operator's own path)
  const std::shared_ptr<ModelProbe> probe_;
  LoopClients clients_;  // one HTTP client per event loop
  std::mutex mu_;
  std::string resolved_model_;  // guarded by mu_
};

}  // namespace openai_detail

std::unique_ptr<Provider> make_openai(ProviderConfig config, asio::any_io_executor executor,
                                      std::shared_ptr<ModelProbe> probe) {
  return std::make_unique<openai_detail::OpenAiProvider>(std::move(config), std::move(executor),
                                                         std::move(probe));
}

}  // namespace edgecoder::model::detail

// Tests for src/model/{provider,ollama,openai}.cpp against the protocol-faithful fake servers:
// normal streams, streams split across TCP writes at every position, stalls (first-token
// timeout), 404 model not found in each server's shape, 500, malformed JSON, truncated streams,
// a caller that goes away mid-stream (the upstream request is closed), metadata and pulls.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "model/fake_model_server.h"
#include "model/provider.h"
#include "model/run_coro.h"
#include "support/child_process.h"

namespace edgecoder::model {
namespace {

using namespace std::chrono_literals;
using testing::FakeBehaviour;
using testing::FakeModelServer;
using testing::run_coro;
using Flavor = FakeModelServer::Flavor;
using Clock = std::chrono::steady_clock;

constexpr const char* kModel = "qwen2.5-coder:7b";

struct Collected {
  std::vector<std::string> tokens;
  std::optional<core::Error> error;
  StreamStats stats;
  int batches = 0;
  std::chrono::steady_clock::time_point ended;  // when next() said the answer was over

  std::string text() const {
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }
};

asio::awaitable<Collected> drain(std::unique_ptr<TokenStream> stream) {
  Collected out;
  for (;;) {
    auto read = stream->next();
    auto piece = co_await std::move(read);
    if (!piece) {
      out.error = piece.error();
      break;
    }
    if (!*piece) break;
    ++out.batches;
    for (auto& t : **piece) out.tokens.push_back(t);
  }
  out.ended = std::chrono::steady_clock::now();
  out.stats = stream->stats();
  co_return out;
}

asio::awaitable<Collected> chat_all(Provider* provider, ChatRequest request) {
  auto open = provider->chat(std::move(request));
  auto stream = co_await std::move(open);
  if (!stream) {
    Collected out;
    out.error = stream.error();
    co_return out;
  }
  auto read = drain(std::move(*stream));
  co_return co_await std::move(read);
}

asio::awaitable<Collected> generate_all(Provider* provider, GenerateRequest request) {
  auto open = provider->generate(std::move(request));
  auto stream = co_await std::move(open);
  if (!stream) {
    Collected out;
    out.error = stream.error();
    co_return out;
  }
  auto read = drain(std::move(*stream));
  co_return co_await std::move(read);
}

ChatRequest hello(std::string model = kModel) {
  ChatRequest request;
  request.model = std::move(model);
  Message m;
  m.role = "user";
  m.content = "say hello";
  request.messages.push_back(m);
  return request;
}

class ProviderTest : public ::testing::TestWithParam<Flavor> {
 protected:
  ProviderTest() : fake_(GetParam()) {}

  std::unique_ptr<Provider> provider(Timeouts timeouts = {},
                                     core::metrics::Registry* metrics = nullptr) {
    ProviderConfig config;
    config.kind = GetParam() == Flavor::ollama ? ProviderKind::ollama : ProviderKind::openai;
    config.base_url = fake_.base_url();
    config.model = kModel;
    config.timeouts = timeouts;
    auto p = make_provider(config, io_.get_executor(), metrics);
    EXPECT_TRUE(p.has_value());
    return std::move(*p);
  }

  Collected chat(Provider& p, ChatRequest request = hello()) {
    return run_coro(io_, chat_all(&p, std::move(request)));
  }

  asio::io_context io_;
  FakeModelServer fake_;
};

TEST_P(ProviderTest, ChatStreamsTokensInOrder) {
  auto p = provider();
  const Collected got = chat(*p);
  ASSERT_FALSE(got.error) << got.error->detail;
  EXPECT_EQ(got.tokens, (std::vector<std::string>{"Hello", ", ", "world", "!"}));
  EXPECT_EQ(got.stats.done_reason, "stop");
  EXPECT_EQ(got.stats.model, kModel);
  const auto requests =
      fake_.requests_to(GetParam() == Flavor::ollama ? "/api/chat" : "/v1/chat/completions");
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].body.value("model", ""), kModel);
  EXPECT_EQ(requests[0].body.value("stream", false), true);
  EXPECT_EQ(requests[0].body["messages"][0]["content"], "say hello");
}

TEST_P(ProviderTest, GenerateSendsPromptAndSampling) {
  auto p = provider();
  GenerateRequest request;
  request.prompt = "write code";
  request.sampling.temperature = 0.25;
  request.sampling.max_tokens = 77;
  const Collected got = run_coro(io_, generate_all(p.get(), request));
  ASSERT_FALSE(got.error) << got.error->detail;
  EXPECT_EQ(got.text(), "Hello, world!");
  if (GetParam() == Flavor::ollama) {
    const auto requests = fake_.requests_to("/api/generate");
    ASSERT_EQ(requests.size(), 1U);
    EXPECT_EQ(requests[0].body["prompt"], "write code");
    EXPECT_EQ(requests[0].body["model"], kModel);  // empty model = the configured one
    EXPECT_DOUBLE_EQ(requests[0].body["options"]["temperature"].get<double>(), 0.25);
    EXPECT_EQ(requests[0].body["options"]["num_predict"], 77);
    EXPECT_EQ(got.stats.completion_tokens, 4);
  } else {
    const auto requests = fake_.requests_to("/v1/chat/completions");
    ASSERT_EQ(requests.size(), 1U);
    EXPECT_EQ(requests[0].body["messages"][0]["role"], "user");
    EXPECT_EQ(requests[0].body["messages"][0]["content"], "write code");
    EXPECT_EQ(requests[0].body["max_tokens"], 77);
  }
}

// Tokens with multi-byte UTF-8 and JSON escapes, so splits land inside sequences too.
FakeBehaviour tricky_tokens() {
  FakeBehaviour b;
  b.tokens = {"h\xC3\xA9llo", " \xE4\xB8\x96\xE7\x95\x8C", " \"quoted\"", "\nline\\",
              " \xF0\x9F\x98\x80"};
  b.split_pause = 1ms;
  return b;
}

std::string tricky_text() {
  std::string out;
  for (const auto& t : tricky_tokens().tokens) out += t;
  return out;
}

TEST_P(ProviderTest, StreamSplitAtEveryPosition) {
  auto p = provider();
  FakeBehaviour b = tricky_tokens();
  fake_.set_behaviour(b);
  const std::string body = fake_.stream_body(true, kModel);
  ASSERT_GT(body.size(), 100U);
  for (std::size_t at = 1; at < body.size(); ++at) {
    b.split_at = at;
    fake_.set_behaviour(b);
    const Collected got = chat(*p);
    ASSERT_FALSE(got.error) << "split at " << at << ": " << got.error->detail;
    ASSERT_EQ(got.text(), tricky_text()) << "split at " << at;
    ASSERT_EQ(got.stats.done_reason, "stop") << "split at " << at;
  }
}

TEST_P(ProviderTest, StreamDeliveredByteByByte) {
  auto p = provider();
  FakeBehaviour b = tricky_tokens();
  b.split_every = 1;
  fake_.set_behaviour(b);
  const Collected got = chat(*p);
  ASSERT_FALSE(got.error) << got.error->detail;
  EXPECT_EQ(got.text(), tricky_text());
  EXPECT_EQ(got.stats.done_reason, "stop");
}

TEST_P(ProviderTest, StallBeforeHeadHitsFirstTokenTimeout) {
  Timeouts t;
  t.first_token = 300ms;
  auto p = provider(t);
  FakeBehaviour b;
  b.stall_before_head = 30s;
  fake_.set_behaviour(b);
  const auto t0 = Clock::now();
  const Collected got = chat(*p);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->wire(), kModelTimeout) << got.error->detail;
  EXPECT_EQ(got.error->code, core::Errc::timeout);
  EXPECT_LT(Clock::now() - t0, 15s);  // the timeout fired, not the end of the stall
}

TEST_P(ProviderTest, SilentBodyAfterHeadHitsFirstTokenTimeout) {
  Timeouts t;
  t.first_token = 300ms;
  auto p = provider(t);
  FakeBehaviour b;
  b.stall_before_first_token = 6s;
  b.tokens.assign(50, "late ");
  b.token_interval = 10ms;
  fake_.set_behaviour(b);
  const auto t0 = Clock::now();
  const Collected got = chat(*p);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->wire(), kModelTimeout) << got.error->detail;
  EXPECT_LT(Clock::now() - t0, 5s);  // the timeout fired, not the end of the stall
  // The timed-out request's connection was closed: once the fake starts writing, it notices.
  EXPECT_TRUE(fake_.wait_for_disconnects(1, 30s));
}

TEST_P(ProviderTest, UnknownModelIsModelNotFound) {
  auto p = provider();
  const Collected got = chat(*p, hello("no-such-model:1b"));
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->wire(), kModelNotFound) << got.error->detail;
  EXPECT_EQ(got.error->code, core::Errc::not_found);
  EXPECT_NE(got.error->detail.find("no-such-model:1b"), std::string::npos) << got.error->detail;
}

TEST_P(ProviderTest, ForcedNotFoundStatusUsesTheServersShape) {
  auto p = provider();
  FakeBehaviour b;
  b.fail_status = 404;
  fake_.set_behaviour(b);
  const Collected got = chat(*p);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->wire(), kModelNotFound) << got.error->detail;
}

TEST_P(ProviderTest, WrongBaseUrlIsUnavailableNotModelNotFound) {
  ProviderConfig config;
  config.kind = GetParam() == Flavor::ollama ? ProviderKind::ollama : ProviderKind::openai;
  config.base_url = "http://127.0.0.1:" + std::to_string(fake_.port()) + "/wrong";
  config.model = kModel;
  auto p = make_provider(config, io_.get_executor());
  ASSERT_TRUE(p.has_value());
  const Collected got = chat(**p);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->wire(), kModelUnavailable) << got.error->detail;
  EXPECT_NE(got.error->detail.find("404"), std::string::npos) << got.error->detail;
}

TEST_P(ProviderTest, ServerErrorIsUnavailableWithTheServersText) {
  auto p = provider();
  FakeBehaviour b;
  b.fail_status = 500;
  fake_.set_behaviour(b);
  const Collected got = chat(*p);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->wire(), kModelUnavailable);
  EXPECT_NE(got.error->detail.find("500"), std::string::npos) << got.error->detail;
  const std::string expected =
      GetParam() == Flavor::ollama ? "llama runner process" : "server had an error";
  EXPECT_NE(got.error->detail.find(expected), std::string::npos) << got.error->detail;
}

TEST_P(ProviderTest, MalformedJsonMidStreamIsAnErrorAfterTheGoodTokens) {
  auto p = provider();
  FakeBehaviour b;
  b.malformed = true;
  fake_.set_behaviour(b);
  const Collected got = chat(*p);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->wire(), kModelUnavailable);
  EXPECT_NE(got.error->detail.find("malformed"), std::string::npos) << got.error->detail;
  ASSERT_FALSE(got.tokens.empty());
  EXPECT_EQ(got.tokens.front(), "Hello");
}

TEST_P(ProviderTest, MalformedMetadataIsUnavailable) {
  auto p = provider();
  FakeBehaviour b;
  b.malformed = true;
  fake_.set_behaviour(b);
  auto models = run_coro(io_, p->list_models());
  ASSERT_FALSE(models.has_value());
  EXPECT_EQ(models.error().wire(), kModelUnavailable);
  EXPECT_NE(models.error().detail.find("malformed"), std::string::npos);
}

TEST_P(ProviderTest, TruncatedStreamIsAnError) {
  auto p = provider();
  FakeBehaviour b;
  b.truncate = true;
  fake_.set_behaviour(b);
  const Collected got = chat(*p);
  EXPECT_EQ(got.text(), "Hello, world!");
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->wire(), kModelUnavailable);
  EXPECT_NE(got.error->detail.find("before the answer was complete"), std::string::npos);
}

asio::awaitable<int> read_some_then_drop(Provider* provider, int batches) {
  auto open = provider->chat(hello());
  auto stream = co_await std::move(open);
  if (!stream) co_return -1;
  int got = 0;
  while (got < batches) {
    auto read = (*stream)->next();
    auto piece = co_await std::move(read);
    if (!piece || !*piece) co_return -2;
    ++got;
  }
  co_return got;  // the stream is destroyed here, mid-answer
}

TEST_P(ProviderTest, DroppingAStreamMidAnswerClosesTheUpstreamRequest) {
  auto p = provider();
  FakeBehaviour b;
  b.tokens.assign(500, "tok ");
  b.token_interval = 10ms;
  fake_.set_behaviour(b);
  EXPECT_EQ(run_coro(io_, read_some_then_drop(p.get(), 2)), 2);
  EXPECT_TRUE(fake_.wait_for_disconnects(1, 60s)) << "the fake kept streaming to nobody";
  for (int i = 0; i < 600 && fake_.active_streams() != 0; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_EQ(fake_.active_streams(), 0);
}

// The answer ends when the model says it is done (Ollama's done line, OpenAI's [DONE]), not
// when the server gets round to ending the HTTP body; the connection is still reused.
TEST_P(ProviderTest, AnswerEndsWhenTheModelSaysDoneAndTheConnectionIsReused) {
  auto p = provider();
  FakeBehaviour b;
  b.stall_after_final = 30s;
  fake_.set_behaviour(b);
  const auto started = std::chrono::steady_clock::now();
  const Collected late_end = chat(*p);  // returns once the client gave up on the body's end
  ASSERT_FALSE(late_end.error) << late_end.error->detail;
  EXPECT_EQ(late_end.tokens, (std::vector<std::string>{"Hello", ", ", "world", "!"}));
  EXPECT_EQ(late_end.stats.done_reason, "stop");
  EXPECT_LT(late_end.ended - started, 10s) << "the answer waited for the end of the HTTP body";

  // A body that ends soon after: it is read off the answer's path and the connection pooled.
  FakeBehaviour soon;
  soon.stall_after_final = 50ms;
  FakeModelServer other(GetParam(), soon);
  ProviderConfig config;
  config.kind = GetParam() == Flavor::ollama ? ProviderKind::ollama : ProviderKind::openai;
  config.base_url = other.base_url();
  config.model = kModel;
  auto fresh = make_provider(config, io_.get_executor(), nullptr);
  ASSERT_TRUE(fresh.has_value());
  for (int i = 0; i < 3; ++i) {
    const Collected got = run_coro(io_, chat_all(fresh->get(), hello()));
    ASSERT_FALSE(got.error) << got.error->detail;
    EXPECT_EQ(got.tokens.size(), 4U);
    // Let the end of the body (50 ms later) be read: the client is idle but for that.
    io_.restart();
    io_.run_for(600ms);
    EXPECT_EQ(other.active_streams(), 0);
  }
  EXPECT_EQ(other.open_connections(), 1U) << "each answer opened its own connection";
}

TEST_P(ProviderTest, NothingListeningIsUnavailable) {
  ProviderConfig config;
  config.kind = GetParam() == Flavor::ollama ? ProviderKind::ollama : ProviderKind::openai;
  config.base_url = "http://127.0.0.1:" + std::to_string(testing::free_port());
  config.model = kModel;
  auto p = make_provider(config, io_.get_executor());
  ASSERT_TRUE(p.has_value());
  const Collected got = chat(**p);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->wire(), kModelUnavailable) << got.error->detail;
  auto version = run_coro(io_, (*p)->server_version());
  ASSERT_FALSE(version.has_value());
  EXPECT_EQ(version.error().wire(), kModelUnavailable);
}

TEST(ProviderRestartTest, AServerThatWentAwayIsUnavailableNotATimeout) {
  asio::io_context io;
  auto fake = std::make_unique<FakeModelServer>(Flavor::ollama);
  ProviderConfig config;
  config.kind = ProviderKind::ollama;
  config.base_url = fake->base_url();
  config.model = kModel;
  auto p = make_provider(config, io.get_executor());
  ASSERT_TRUE(p.has_value());
  ASSERT_TRUE(run_coro(io, (*p)->server_version()).has_value());
  EXPECT_FALSE(run_coro(io, chat_all(p->get(), hello())).error);  // leaves a pooled connection
  fake.reset();
  auto version = run_coro(io, (*p)->server_version());
  ASSERT_FALSE(version.has_value());
  EXPECT_EQ(version.error().wire(), kModelUnavailable) << version.error().detail;
}

TEST_P(ProviderTest, ListsAndShowsModels) {
  auto p = provider();
  auto models = run_coro(io_, p->list_models());
  ASSERT_TRUE(models.has_value()) << models.error().detail;
  ASSERT_EQ(models->size(), 2U);
  EXPECT_EQ((*models)[0].name, "qwen2.5-coder:7b");
  EXPECT_EQ((*models)[1].name, "llama3:latest");
  auto shown = run_coro(io_, p->show_model("llama3:latest"));
  ASSERT_TRUE(shown.has_value()) << shown.error().detail;
  auto missing = run_coro(io_, p->show_model("nope"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().wire(), kModelNotFound);
  auto version = run_coro(io_, p->server_version());
  ASSERT_TRUE(version.has_value()) << version.error().detail;
  if (GetParam() == Flavor::ollama) {
    EXPECT_DOUBLE_EQ((*models)[0].param_size_b, 7.6);
    EXPECT_EQ((*models)[0].quantization, "Q4_K_M");
    EXPECT_DOUBLE_EQ(shown->param_size_b, 8.0);
    EXPECT_EQ(*version, "ollama 0.5.7");
  }
}

TEST_P(ProviderTest, MetricsCountOutcomes) {
  core::metrics::Registry registry;
  auto p = provider({}, &registry);
  EXPECT_FALSE(chat(*p).error);
  EXPECT_TRUE(chat(*p, hello("missing")).error);
  const std::string text = registry.render_text();
  EXPECT_NE(text.find("outcome=\"ok\""), std::string::npos) << text;
  EXPECT_NE(text.find("outcome=\"model_not_found\""), std::string::npos) << text;
  EXPECT_NE(text.find("edgecoder_model_first_token_seconds"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Tool calls.

using nlohmann::json;

std::vector<json> weather_calls() {
  return {{{"name", "get_weather"}, {"arguments", {{"city", "Paris"}, {"unit", "celsius"}}}},
          {{"name", "get_time"}, {"arguments", {{"zone", "Europe/Paris"}, {"note", "a \"b\""}}}}};
}

json weather_tools() {
  return json::parse(R"([{"type":"function","function":{"name":"get_weather",
      "description":"Current weather","parameters":{"type":"object",
      "properties":{"city":{"type":"string"}},"required":["city"]}}}])");
}

bool looks_like_call_id(const std::string& id) {
  if (id.size() != 13 || id.rfind("call_", 0) != 0) return false;
  return id.find_first_not_of("0123456789abcdef", 5) == std::string::npos;
}

// The calls as the fake was told to make them, in the OpenAI shape with parsed arguments.
void expect_weather_calls(const Collected& got, Flavor flavor, const std::string& where) {
  EXPECT_EQ(got.stats.done_reason, "tool_calls") << where;
  const auto want = weather_calls();
  ASSERT_TRUE(got.stats.tool_calls.is_array()) << where << ": " << got.stats.tool_calls.dump();
  ASSERT_EQ(got.stats.tool_calls.size(), want.size()) << where;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const json& call = got.stats.tool_calls[i];
    EXPECT_EQ(call["type"], "function") << where;
    EXPECT_EQ(call["function"]["name"], want[i]["name"]) << where;
    ASSERT_TRUE(call["function"]["arguments"].is_string()) << where << ": " << call.dump();
    EXPECT_EQ(json::parse(call["function"]["arguments"].get<std::string>()), want[i]["arguments"])
        << where;
    ASSERT_TRUE(call["id"].is_string()) << where;
    if (flavor == Flavor::openai) {
      EXPECT_EQ(call["id"], "call_fake" + std::to_string(i)) << where;  // the server's ids
    } else {
      EXPECT_TRUE(looks_like_call_id(call["id"].get<std::string>())) << where << ": " << call;
    }
  }
  EXPECT_NE(got.stats.tool_calls[0]["id"], got.stats.tool_calls[1]["id"]) << where;
}

TEST_P(ProviderTest, ToolCallsComeBackInTheOpenAiShape) {
  auto p = provider();
  FakeBehaviour b;
  b.tokens.clear();  // as models usually do: tool calls and no text
  b.tool_calls = weather_calls();
  fake_.set_behaviour(b);
  ChatRequest request = hello();
  request.tools = weather_tools();
  const Collected got = chat(*p, request);
  ASSERT_FALSE(got.error) << got.error->detail;
  EXPECT_TRUE(got.tokens.empty());
  EXPECT_EQ(got.batches, 0);  // next() ended without handing out empty batches
  expect_weather_calls(got, GetParam(), "unsplit");
  const auto requests =
      fake_.requests_to(GetParam() == Flavor::ollama ? "/api/chat" : "/v1/chat/completions");
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].body["tools"], weather_tools());
}

TEST_P(ProviderTest, ToolCallsAfterTextKeepTheText) {
  auto p = provider();
  FakeBehaviour b;
  b.tool_calls = weather_calls();
  fake_.set_behaviour(b);
  const Collected got = chat(*p);
  ASSERT_FALSE(got.error) << got.error->detail;
  EXPECT_EQ(got.text(), "Hello, world!");
  expect_weather_calls(got, GetParam(), "after text");
}

TEST_P(ProviderTest, ToolCallsSplitEveryFewBytes) {
  auto p = provider();
  for (const std::size_t every : {1U, 2U, 3U, 5U, 11U}) {
    FakeBehaviour b;
    b.tokens = {"I'll check", "."};
    b.tool_calls = weather_calls();
    b.split_every = every;
    b.split_pause = 0ms;
    fake_.set_behaviour(b);
    const std::string where = "split every " + std::to_string(every);
    const Collected got = chat(*p);
    ASSERT_FALSE(got.error) << where << ": " << got.error->detail;
    EXPECT_EQ(got.text(), "I'll check.") << where;
    expect_weather_calls(got, GetParam(), where);
  }
}

TEST_P(ProviderTest, TextOnlyAnswerHasNoToolCallsAndSendsNoToolFields) {
  auto p = provider();
  const Collected got = chat(*p);
  ASSERT_FALSE(got.error) << got.error->detail;
  EXPECT_TRUE(got.stats.tool_calls.is_null());
  EXPECT_EQ(got.stats.done_reason, "stop");
  const auto requests =
      fake_.requests_to(GetParam() == Flavor::ollama ? "/api/chat" : "/v1/chat/completions");
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_FALSE(requests[0].body.contains("tools"));
  EXPECT_EQ(requests[0].body["messages"][0], (json{{"role", "user"}, {"content", "say hello"}}));
}

TEST_P(ProviderTest, ToolHistoryIsSentInTheServersShape) {
  auto p = provider();
  ChatRequest request = hello();
  request.tools = weather_tools();
  Message assistant;
  assistant.role = "assistant";
  assistant.tool_calls = json::parse(R"([
      {"id":"call_abc","type":"function",
       "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
      {"id":"call_def","type":"function","function":{"name":"get_time","arguments":"not json"}}])");
  request.messages.push_back(assistant);
  Message result;
  result.role = "tool";
  result.content = "18C, sunny";
  result.tool_call_id = "call_abc";
  request.messages.push_back(result);
  const Collected got = chat(*p, request);
  ASSERT_FALSE(got.error) << got.error->detail;

  const auto requests =
      fake_.requests_to(GetParam() == Flavor::ollama ? "/api/chat" : "/v1/chat/completions");
  ASSERT_EQ(requests.size(), 1U);
  const json& messages = requests[0].body["messages"];
  ASSERT_EQ(messages.size(), 3U) << messages.dump();
  if (GetParam() == Flavor::ollama) {
    // Arguments as an object (or the string when it is not JSON), no ids; the result names its
    // tool.
    EXPECT_EQ(messages[1], json::parse(R"({"role":"assistant","content":"","tool_calls":[
        {"function":{"name":"get_weather","arguments":{"city":"Paris"}}},
        {"function":{"name":"get_time","arguments":"not json"}}]})"))
        << messages[1].dump();
    EXPECT_EQ(messages[2], json::parse(R"({"role":"tool","content":"18C, sunny",
        "tool_name":"get_weather"})"))
        << messages[2].dump();
  } else {
    EXPECT_EQ(messages[1],
              (json{{"role", "assistant"}, {"content", ""}, {"tool_calls", assistant.tool_calls}}))
        << messages[1].dump();
    EXPECT_EQ(messages[2], json::parse(R"({"role":"tool","content":"18C, sunny",
        "tool_call_id":"call_abc"})"))
        << messages[2].dump();
  }
  EXPECT_EQ(requests[0].body["tools"], weather_tools());
}

INSTANTIATE_TEST_SUITE_P(Servers, ProviderTest, ::testing::Values(Flavor::ollama, Flavor::openai),
                         [](const auto& param_info) {
                           return param_info.param == Flavor::ollama ? std::string("Ollama")
                                                                     : std::string("OpenAi");
                         });

// ---------------------------------------------------------------------------------------------
// Provider-specific behaviour.

asio::awaitable<std::vector<PullUpdate>> pull_all(Provider* provider, std::string model,
                                                  std::optional<core::Error>* error) {
  std::vector<PullUpdate> updates;
  auto open = provider->pull(std::move(model));
  auto stream = co_await std::move(open);
  if (!stream) {
    *error = stream.error();
    co_return updates;
  }
  for (;;) {
    auto read = (*stream)->next();
    auto next = co_await std::move(read);
    if (!next) {
      *error = next.error();
      break;
    }
    if (!*next) break;
    updates.push_back(**next);
  }
  co_return updates;
}

TEST(OllamaProviderTest, PullReportsProgressThenSucceeds) {
  asio::io_context io;
  FakeModelServer fake(Flavor::ollama);
  ProviderConfig config;
  config.kind = ProviderKind::ollama;
  config.base_url = fake.base_url();
  auto p = make_provider(config, io.get_executor());
  ASSERT_TRUE(p.has_value());
  std::optional<core::Error> error;
  auto updates = run_coro(io, pull_all(p->get(), "phi3:mini", &error));
  ASSERT_FALSE(error) << error->detail;
  ASSERT_GE(updates.size(), 4U);
  EXPECT_EQ(updates.front().status, "pulling manifest");
  EXPECT_EQ(updates.back().status, "success");
  bool saw_progress = false;
  for (const auto& u : updates) saw_progress = saw_progress || (u.total == 1000 && u.completed > 0);
  EXPECT_TRUE(saw_progress);
  const auto requests = fake.requests_to("/api/pull");
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].body["model"], "phi3:mini");
  EXPECT_EQ(requests[0].body["stream"], true);
  // The pulled model is now installed.
  auto shown = run_coro(io, (*p)->show_model("phi3:mini"));
  EXPECT_TRUE(shown.has_value());
}

TEST(OllamaProviderTest, PullErrorLineIsAnError) {
  asio::io_context io;
  FakeBehaviour b;
  b.pull_fail = true;
  FakeModelServer fake(Flavor::ollama, b);
  ProviderConfig config;
  config.kind = ProviderKind::ollama;
  config.base_url = fake.base_url();
  auto p = make_provider(config, io.get_executor());
  ASSERT_TRUE(p.has_value());
  std::optional<core::Error> error;
  run_coro(io, pull_all(p->get(), "phi3:mini", &error));
  ASSERT_TRUE(error);
  EXPECT_NE(error->detail.find("file does not exist"), std::string::npos) << error->detail;
}

TEST(OpenAiProviderTest, SendsTheApiKeyAndResolvesAnUnsetModel) {
  asio::io_context io;
  FakeBehaviour b;
  b.api_key = "sk-test-123";
  b.installed = {"served-model.gguf"};
  FakeModelServer fake(Flavor::openai, b);
  ProviderConfig config;
  config.kind = ProviderKind::openai;
  config.base_url = "http://127.0.0.1:" + std::to_string(fake.port());  // /v1 is added
  config.api_key = "sk-test-123";
  auto p = make_provider(config, io.get_executor());
  ASSERT_TRUE(p.has_value());
  ChatRequest request = hello("");
  const Collected got = run_coro(io, chat_all(p->get(), request));
  ASSERT_FALSE(got.error) << got.error->detail;
  EXPECT_EQ(got.text(), "Hello, world!");
  const auto chats = fake.requests_to("/v1/chat/completions");
  ASSERT_EQ(chats.size(), 1U);
  EXPECT_EQ(chats[0].body["model"], "served-model.gguf");
  EXPECT_EQ(chats[0].authorization, "Bearer sk-test-123");

  // A wrong key: the server's 401 is reported as unavailable with a hint.
  config.api_key = "wrong";
  auto bad = make_provider(config, io.get_executor());
  ASSERT_TRUE(bad.has_value());
  const Collected refused = run_coro(io, chat_all(bad->get(), hello("served-model.gguf")));
  ASSERT_TRUE(refused.error);
  EXPECT_EQ(refused.error->wire(), kModelUnavailable);
  EXPECT_NE(refused.error->detail.find("API key"), std::string::npos) << refused.error->detail;
}

TEST(OpenAiProviderTest, CannotPull) {
  asio::io_context io;
  ProviderConfig config;
  config.kind = ProviderKind::openai;
  config.base_url = "http://127.0.0.1:9/v1";
  auto p = make_provider(config, io.get_executor());
  ASSERT_TRUE(p.has_value());
  auto pulled = run_coro(io, (*p)->pull("x"));
  ASSERT_FALSE(pulled.has_value());
  EXPECT_EQ(pulled.error().wire(), "model_pull_unsupported");
}

// ---------------------------------------------------------------------------------------------
// Configuration.

core::Settings settings(std::vector<std::pair<std::string, std::string>> env) {
  core::LoadOptions options;
  options.default_env_file = "";
  options.environment = std::move(env);
  auto s = core::Settings::load(options);
  EXPECT_TRUE(s.has_value());
  return *s;
}

TEST(ProviderConfigTest, DefaultsToTheOfflineStub) {
  auto config = provider_config_from(settings({}));
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(config->kind, ProviderKind::edgecoder_local);
  EXPECT_EQ(config->timeouts.first_token, 120'000ms);
}

TEST(ProviderConfigTest, OllamaAliasHostFormsAndCoordinatorModel) {
  auto config = provider_config_from(settings({{"LOCAL_MODEL_PROVIDER", "ollama"},
                                               {"OLLAMA_HOST", "0.0.0.0:11500"},
                                               {"OLLAMA_MODEL", "qwen2.5-coder:7b"}}));
  ASSERT_TRUE(config.has_value()) << config.error().detail;
  EXPECT_EQ(config->kind, ProviderKind::ollama);
  EXPECT_EQ(config->base_url, "http://127.0.0.1:11500");
  EXPECT_EQ(config->coordinator_model, "qwen2.5-coder:7b");
  config = provider_config_from(
      settings({{"LOCAL_MODEL_PROVIDER", "ollama"}, {"OLLAMA_HOST", "gpu-box"}}));
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(config->base_url, "http://gpu-box:11434");  // Ollama's default port

  config = provider_config_from(settings({{"LOCAL_MODEL_PROVIDER", "ollama-local"},
                                          {"OLLAMA_HOST", "https://gpu.example:443/"},
                                          {"OLLAMA_MODEL", "small"},
                                          {"OLLAMA_COORDINATOR_MODEL", "big"}}));
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(config->base_url, "https://gpu.example:443");
  EXPECT_EQ(config->model, "small");
  EXPECT_EQ(config->coordinator_model, "big");
}

TEST(ProviderConfigTest, OpenAiSettings) {
  auto config = provider_config_from(settings({{"LOCAL_MODEL_PROVIDER", "openai"},
                                               {"OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"},
                                               {"OPENAI_API_KEY", "k"},
                                               {"OPENAI_MODEL", "m"},
                                               {"MODEL_FIRST_TOKEN_TIMEOUT_MS", "1500"}}));
  ASSERT_TRUE(config.has_value()) << config.error().detail;
  EXPECT_EQ(config->kind, ProviderKind::openai);
  EXPECT_EQ(config->api_key, "k");
  EXPECT_EQ(config->coordinator_model, "m");
  EXPECT_EQ(config->timeouts.first_token, 1500ms);
}

TEST(ProviderConfigTest, BadValuesNameTheSetting) {
  auto bad_kind = provider_config_from(settings({{"LOCAL_MODEL_PROVIDER", "gpt4all"}}));
  ASSERT_FALSE(bad_kind.has_value());
  EXPECT_NE(bad_kind.error().detail.find("LOCAL_MODEL_PROVIDER"), std::string::npos);
  auto bad_url = provider_config_from(
      settings({{"LOCAL_MODEL_PROVIDER", "openai"}, {"OPENAI_BASE_URL", "ftp://x"}}));
  ASSERT_FALSE(bad_url.has_value());
  EXPECT_NE(bad_url.error().detail.find("OPENAI_BASE_URL"), std::string::npos);
  auto bad_timeout = provider_config_from(settings({{"MODEL_TOTAL_TIMEOUT_MS", "soon"}}));
  ASSERT_FALSE(bad_timeout.has_value());
  EXPECT_NE(bad_timeout.error().detail.find("MODEL_TOTAL_TIMEOUT_MS"), std::string::npos);

  // The same values stop the node at start (core::parse_config -> exit 2).
  auto config = core::parse_config(settings({{"LOCAL_MODEL_PROVIDER", "gpt4all"}}));
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().detail.find("LOCAL_MODEL_PROVIDER"), std::string::npos);
  config = core::parse_config(settings({{"OLLAMA_HOST", "ftp://x:1"}}));
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().detail.find("OLLAMA_HOST"), std::string::npos);
  config = core::parse_config(settings({{"INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON", "[1]"}}));
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().detail.find("INFERENCE_TRUSTED_COORDINATOR_KEYS_JSON"),
            std::string::npos);
  EXPECT_TRUE(core::parse_config(settings({{"LOCAL_MODEL_PROVIDER", "Ollama"}})).has_value());
}

TEST(ProviderConfigTest, ParamSizes) {
  EXPECT_DOUBLE_EQ(parse_param_size("7.6B"), 7.6);
  EXPECT_DOUBLE_EQ(parse_param_size("1.5 b"), 1.5);
  EXPECT_NEAR(parse_param_size("494.03M"), 0.49403, 1e-9);
  EXPECT_DOUBLE_EQ(parse_param_size(""), 0);
  EXPECT_DOUBLE_EQ(parse_param_size("unknown"), 0);
}

}  // namespace
}  // namespace edgecoder::model

// Tests for src/inference/service.cpp over HTTP on loopback, with fake model servers behind it:
// tokens, /decompose (parser cases, fallbacks, timeouts, dependencies), /chat (relay order, [DONE],
// errors before and after the first token, a client that leaves), model swap/pull/status/list,
// /escalate, metrics, /ready and the dashboard.
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <nlohmann/json.hpp>

#include "inference/service_fixture.h"
#include "model/run_coro.h"

namespace edgecoder::inference {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeBehaviour;
using Clock = std::chrono::steady_clock;

json decompose_body(const std::string& prompt = "Build a CLI that adds numbers",
                    const std::string& language = "python") {
  return {{"taskId", "task-1"},
          {"prompt", prompt},
          {"snapshotRef", "0123456789abcdef0123456789abcdef01234567"},
          {"language", language}};
}

json chat_body(const std::string& content = "say hello") {
  return {{"messages", {{{"role", "user"}, {"content", content}}}}};
}

class InferenceServiceTest : public InferenceFixture {};

TEST_F(InferenceServiceTest, TokenIsRequiredEverywhereButHealthReadyMetrics) {
  start(Flavor::ollama);
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"POST", "/decompose"},
      {"POST", "/escalate"},
      {"POST", "/chat"},
      {"POST", "/model/swap"},
      {"POST", "/model/pull"},
      {"GET", "/model/status"},
      {"GET", "/model/list"},
      {"GET", "/model/pull/progress"},
      {"GET", "/dashboard"},
      {"GET", "/dashboard/api/overview"},
      {"GET", "/dashboard/api/swap-history"}};
  for (const auto& [method, path] : routes) {
    auto missing = call(method, path, json::object(), {}, false);
    EXPECT_EQ(missing.status, 401) << method << " " << path;
    EXPECT_EQ(json_of(missing).value("error", ""), "inference_unauthorized") << path;
    auto wrong = call(method, path, json::object(), {{"x-inference-token", "nope"}}, false);
    EXPECT_EQ(wrong.status, 401) << method << " " << path;
    auto almost = call(method, path, json::object(),
                       {{"x-inference-token", std::string(kTestToken) + "x"}}, false);
    EXPECT_EQ(almost.status, 401) << method << " " << path;
  }
  EXPECT_EQ(call("GET", "/health", nullptr, {}, false).status, 200);
  EXPECT_EQ(call("GET", "/metrics", nullptr, {}, false).status, 200);
  const auto ready = call("GET", "/ready", nullptr, {}, false);
  EXPECT_TRUE(ready.status == 200 || ready.status == 503);  // not 401
  // Nothing reached the model server.
  EXPECT_TRUE(fake_->requests_to("/api/generate").empty());
  EXPECT_TRUE(fake_->requests_to("/api/chat").empty());
}

struct DecomposeCase {
  std::string name;
  std::string reply;
  std::size_t subtasks;
  bool fallback;
};

// Readable test names and failure messages instead of the object's bytes.
void PrintTo(const DecomposeCase& c, std::ostream* os) { *os << c.name; }

class DecomposeRouteTest : public InferenceFixture,
                           public ::testing::WithParamInterface<DecomposeCase> {};

std::string items(int n, const std::string& language = "python") {
  json out = json::array();
  for (int i = 0; i < n; ++i) {
    json item = {{"input", "step " + std::to_string(i)}, {"language", language}};
    if (i > 0) item["dependsOn"] = {i - 1};
    out.push_back(item);
  }
  return out.dump();
}

TEST_P(DecomposeRouteTest, ParsesTheModelsAnswer) {
  start(Flavor::ollama);
  FakeBehaviour b;
  b.reply(GetParam().reply);
  fake_->set_behaviour(b);
  const auto r = call("POST", "/decompose", decompose_body());
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json_of(r);
  ASSERT_EQ(j["subtasks"].size(), GetParam().subtasks) << r.body;
  EXPECT_EQ(j["fallback"], GetParam().fallback) << r.body;
  for (const auto& s : j["subtasks"]) {
    EXPECT_EQ(s["taskId"], "task-1");
    EXPECT_EQ(s["kind"], "micro_loop");
    EXPECT_EQ(s["snapshotRef"], "0123456789abcdef0123456789abcdef01234567");
    EXPECT_TRUE(s["language"] == "python" || s["language"] == "javascript") << s;
    EXPECT_TRUE(s["timeoutMs"].is_number_integer());
  }
  if (GetParam().fallback) {
    EXPECT_EQ(j["subtasks"][0]["input"], "Build a CLI that adds numbers");
    EXPECT_EQ(j["subtasks"][0]["timeoutMs"], 30000);
    EXPECT_FALSE(j.value("fallbackReason", "").empty());
  } else if (GetParam().subtasks > 1) {
    // Dependencies by index come through.
    EXPECT_EQ(j["subtasks"][1]["dependsOn"], json::array({0})) << r.body;
    EXPECT_EQ(j["subtasks"][1]["subtaskIndex"], 1);
  }
  // The model got the decomposition prompt for the task, with the active model.
  const auto sent = fake_->requests_to("/api/generate");
  ASSERT_EQ(sent.size(), 1U);
  EXPECT_EQ(sent[0].body["model"], kTestModel);
  EXPECT_NE(sent[0].body["prompt"].get<std::string>().find("Build a CLI that adds numbers"),
            std::string::npos);
  EXPECT_NE(sent[0].body["prompt"].get<std::string>().find("JSON array"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Answers, DecomposeRouteTest,
    ::testing::Values(
        DecomposeCase{"FencedJson", "```json\n" + items(3) + "\n```", 3, false},
        DecomposeCase{"ThinkPreamble",
                      "<think>\nTwo parts? [maybe]. Let me write JSON.\n</think>\n" + items(2), 2,
                      false},
        DecomposeCase{"ProseAround",
                      "Sure, here is the plan:\n\n" + items(2) + "\n\nHope this helps!", 2, false},
        DecomposeCase{"MoreThanTheCap", items(14), 10, false},
        DecomposeCase{"InvalidLanguage", items(2, "cobol"), 2, false},
        DecomposeCase{"EmptyAnswer", "", 1, true},
        DecomposeCase{"Nonsense", "I am not sure what you mean.", 1, true}),
    [](const auto& param_info) { return param_info.param.name; });

TEST_F(InferenceServiceTest, DecomposeInvalidLanguageIsReplacedAndSaid) {
  start(Flavor::ollama);
  FakeBehaviour b;
  b.reply(items(2, "cobol"));
  fake_->set_behaviour(b);
  const json j = json_of(call("POST", "/decompose", decompose_body("x", "javascript")));
  EXPECT_EQ(j["subtasks"][0]["language"], "javascript");
  ASSERT_TRUE(j.contains("warnings"));
  EXPECT_NE(j["warnings"][0].get<std::string>().find("cobol"), std::string::npos);
}

TEST_F(InferenceServiceTest, DecomposeFallsBackWhenTheModelIsDown) {
  start(Flavor::ollama);
  FakeBehaviour b;
  b.fail_status = 500;
  fake_->set_behaviour(b);
  const auto r = call("POST", "/decompose", decompose_body("Do the thing", "javascript"));
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json_of(r);
  EXPECT_EQ(j["fallback"], true);
  EXPECT_EQ(j["modelError"], "model_unavailable");
  ASSERT_EQ(j["subtasks"].size(), 1U);
  EXPECT_EQ(j["subtasks"][0]["input"], "Do the thing");
  EXPECT_EQ(j["subtasks"][0]["language"], "javascript");
  EXPECT_NE(j["fallbackReason"].get<std::string>().find("model"), std::string::npos);
}

TEST_F(InferenceServiceTest, DecomposeFallsBackWithinTheTimeoutWhenTheModelStalls) {
  start(Flavor::ollama, [](ServiceOptions& o) {
    o.provider.timeouts.first_token = std::chrono::milliseconds(500);
  });
  FakeBehaviour b;
  b.stall_before_first_token = 60s;
  fake_->set_behaviour(b);
  const auto t0 = Clock::now();
  const auto r = call("POST", "/decompose", decompose_body());
  EXPECT_LT(Clock::now() - t0, 30s);  // far below the stall: the timeout ended the wait
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json_of(r);
  EXPECT_EQ(j["fallback"], true);
  EXPECT_EQ(j["modelError"], "model_timeout");
}

TEST_F(InferenceServiceTest, DecomposeRejectsBadRequests) {
  start(Flavor::ollama);
  EXPECT_EQ(call("POST", "/decompose", json{{"taskId", "t"}, {"snapshotRef", "s"}}).status, 400);
  EXPECT_EQ(call("POST", "/decompose", json{{"taskId", "t"}, {"prompt", ""}, {"snapshotRef", "s"}})
                .status,
            400);
  EXPECT_EQ(
      call("POST", "/decompose", json{{"taskId", "t"}, {"prompt", "p"}, {"snapshotRef", 7}}).status,
      400);
  auto bad_lang = call("POST", "/decompose", decompose_body("x", "rust"));
  EXPECT_EQ(bad_lang.status, 400);
  EXPECT_NE(bad_lang.body.find("language"), std::string::npos);
  auto broken = call("POST", "/decompose", nullptr, {{"Content-Type", "application/json"}});
  EXPECT_EQ(broken.status, 400);
  EXPECT_TRUE(fake_->requests_to("/api/generate").empty());
}

TEST_F(InferenceServiceTest, ChatRelaysTokensInOrderThenDone) {
  start(Flavor::ollama);
  FakeBehaviour b;
  b.tokens = {"The", " answer", " is", " 42", "."};
  b.token_interval = 5ms;
  fake_->set_behaviour(b);
  const auto r = call("POST", "/chat", chat_body());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.header("content-type").value_or("").find("text/event-stream"), std::string::npos);
  const auto events = events_of(r.body);
  std::vector<std::string> pieces;
  for (const auto& e : events) {
    if (e.data == "[DONE]") continue;
    pieces.push_back(json::parse(e.data)["content"].get<std::string>());
  }
  EXPECT_EQ(pieces, (std::vector<std::string>{"The", " answer", " is", " 42", "."}));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().data, "[DONE]");
  const auto sent = fake_->requests_to("/api/chat");
  ASSERT_EQ(sent.size(), 1U);
  EXPECT_EQ(sent[0].body["model"], kTestModel);
  EXPECT_EQ(sent[0].body["messages"][0]["content"], "say hello");
}

TEST_F(InferenceServiceTest, ChatRelayHandlesUpstreamBytesArrivingOneByOne) {
  start(Flavor::ollama);
  FakeBehaviour b;
  b.tokens = {"\xC3\xA9t\xC3\xA9", " \"quoted\"", "\n", "done"};
  b.split_every = 1;
  fake_->set_behaviour(b);
  const auto r = call("POST", "/chat", chat_body());
  ASSERT_EQ(r.status, 200);
  const auto [text, done] = chat_text(events_of(r.body));
  EXPECT_EQ(text, "\xC3\xA9t\xC3\xA9 \"quoted\"\ndone");
  EXPECT_TRUE(done);
}

TEST_F(InferenceServiceTest, ChatFailureBeforeTheFirstTokenIsA502Json) {
  start(Flavor::ollama);
  FakeBehaviour b;
  b.fail_status = 500;
  fake_->set_behaviour(b);
  auto r = call("POST", "/chat", chat_body());
  EXPECT_EQ(r.status, 502);
  EXPECT_NE(r.header("content-type").value_or("").find("application/json"), std::string::npos);
  EXPECT_EQ(json_of(r)["error"], "model_unavailable") << r.body;
  EXPECT_EQ(json_of(r)["model"], kTestModel);

  fake_->set_behaviour(FakeBehaviour{});
  r = call(
      "POST", "/chat",
      json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"model", "not-installed:3b"}});
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(json_of(r)["error"], "model_not_found") << r.body;
}

TEST_F(InferenceServiceTest, ChatTimeoutBeforeTheFirstTokenIs504) {
  start(Flavor::ollama, [](ServiceOptions& o) {
    o.provider.timeouts.first_token = std::chrono::milliseconds(300);
  });
  FakeBehaviour b;
  b.stall_before_first_token = 60s;
  fake_->set_behaviour(b);
  const auto r = call("POST", "/chat", chat_body());
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(json_of(r)["error"], "model_timeout") << r.body;
}

TEST_F(InferenceServiceTest, ChatFailureAfterTheFirstTokenIsAnSseErrorEvent) {
  start(Flavor::ollama);
  for (const bool truncate : {false, true}) {
    FakeBehaviour b;
    b.malformed = !truncate;
    b.truncate = truncate;
    b.token_interval = 5ms;
    fake_->set_behaviour(b);
    const auto r = call("POST", "/chat", chat_body());
    ASSERT_EQ(r.status, 200) << r.body;
    const auto events = events_of(r.body);
    ASSERT_GE(events.size(), 2U) << r.body;
    EXPECT_EQ(json::parse(events.front().data)["content"], "Hello");
    EXPECT_EQ(events.back().event, "error") << r.body;
    EXPECT_EQ(json::parse(events.back().data)["error"], "model_unavailable");
    for (const auto& e : events) EXPECT_NE(e.data, "[DONE]");
  }
}

asio::awaitable<int> read_then_leave(std::string url, std::string body) {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  net::HttpClient client(executor);
  net::ClientRequest request;
  request.method = "POST";
  request.url = std::move(url);
  request.headers = {{"x-inference-token", kTestToken}, {"Content-Type", "application/json"}};
  request.body = std::move(body);
  auto open = client.stream(std::move(request));
  auto stream = co_await std::move(open);
  if (!stream) co_return -1;
  std::string seen;
  while (seen.find("tok") == std::string::npos) {
    auto read = (*stream)->next();
    auto piece = co_await std::move(read);
    if (!piece || !*piece) co_return -2;
    seen += **piece;
  }
  co_return (*stream)->status();  // the client leaves here, mid-stream
}

TEST_F(InferenceServiceTest, ChatClientLeavingMidStreamCancelsTheUpstreamRequest) {
  start(Flavor::ollama);
  FakeBehaviour b;
  b.tokens.assign(1000, "tok ");
  b.token_interval = 10ms;
  fake_->set_behaviour(b);
  boost::asio::io_context client_io;
  EXPECT_EQ(testing::run_coro(client_io, read_then_leave(url("/chat"), chat_body().dump())), 200);
  EXPECT_TRUE(fake_->wait_for_disconnects(1, 60s)) << "the model kept generating for nobody";
  for (int i = 0; i < 600 && fake_->active_streams() != 0; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_EQ(fake_->active_streams(), 0);
  EXPECT_NE(registry_.render_text().find("edgecoder_inference_chat_cancelled_total 1"),
            std::string::npos);
}

TEST_F(InferenceServiceTest, SwapChangesTheModelUsedByDecomposeChatAndEscalate) {
  start(Flavor::ollama);
  auto r = call("POST", "/model/swap", json{{"model", "llama3"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json_of(r);
  EXPECT_EQ(j["status"], "ready");
  EXPECT_EQ(j["previous"], kTestModel);
  EXPECT_EQ(j["active"], "llama3:latest");
  EXPECT_DOUBLE_EQ(j["paramSize"].get<double>(), 8.0);

  fake_->clear_requests();
  FakeBehaviour b;
  b.reply(items(2));
  fake_->set_behaviour(b);
  ASSERT_EQ(call("POST", "/decompose", decompose_body()).status, 200);
  ASSERT_EQ(call("POST", "/chat", chat_body()).status, 200);
  b.reply("```python\nprint(1)\n```");
  fake_->set_behaviour(b);
  ASSERT_EQ(call("POST", "/escalate",
                 json{{"task", "t"},
                      {"failedCode", "x"},
                      {"errorHistory", json::array()},
                      {"language", "python"}})
                .status,
            200);
  const auto generates = fake_->requests_to("/api/generate");
  ASSERT_EQ(generates.size(), 2U);
  for (const auto& g : generates) EXPECT_EQ(g.body["model"], "llama3:latest");
  const auto chats = fake_->requests_to("/api/chat");
  ASSERT_EQ(chats.size(), 1U);
  EXPECT_EQ(chats[0].body["model"], "llama3:latest");

  j = json_of(call("GET", "/model/status"));
  EXPECT_EQ(j["model"], "llama3:latest");
  EXPECT_EQ(j["status"], "ready");
  EXPECT_EQ(j["ollamaHealthy"], true);
  const json history = json_of(call("GET", "/dashboard/api/swap-history"))["history"];
  ASSERT_EQ(history.size(), 1U);
  EXPECT_EQ(history[0]["from"], kTestModel);
  EXPECT_EQ(history[0]["to"], "llama3:latest");
  const json list = json_of(call("GET", "/model/list"));
  ASSERT_EQ(list.size(), 2U);
  EXPECT_EQ(list[0]["active"], false);
  EXPECT_EQ(list[1]["active"], true);
  EXPECT_EQ(list[1]["source"], "ollama");
  EXPECT_EQ(list[0]["installed"], true);
}

TEST_F(InferenceServiceTest, SwapToAMissingModelPullsItThenActivatesIt) {
  start(Flavor::ollama);
  FakeBehaviour slow_pull;
  slow_pull.pull_interval = 500ms;  // the pull lasts long enough to be seen under load
  fake_->set_behaviour(slow_pull);
  auto r = call("POST", "/model/swap", json{{"model", "phi3:mini"}});
  ASSERT_EQ(r.status, 200);
  json j = json_of(r);
  EXPECT_EQ(j["status"], "pulling");
  EXPECT_EQ(j["active"], kTestModel);
  bool saw_progress = false;
  std::string active;
  for (int i = 0; i < 600; ++i) {
    const json p = json_of(call("GET", "/model/pull/progress"));
    if (p["status"] != "idle") {
      EXPECT_EQ(p["model"], "phi3:mini");
      saw_progress = true;
    }
    active = json_of(call("GET", "/model/status"))["model"];
    if (active == "phi3:mini" && p["status"] == "idle") break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(saw_progress);
  EXPECT_EQ(active, "phi3:mini");
  ASSERT_EQ(fake_->requests_to("/api/pull").size(), 1U);
  fake_->clear_requests();
  ASSERT_EQ(call("POST", "/chat", chat_body()).status, 200);
  EXPECT_EQ(fake_->requests_to("/api/chat").at(0).body["model"], "phi3:mini");
}

TEST_F(InferenceServiceTest, FailedPullLeavesTheModelAndReportsTheError) {
  start(Flavor::ollama);
  FakeBehaviour b;
  b.pull_fail = true;
  fake_->set_behaviour(b);
  ASSERT_EQ(json_of(call("POST", "/model/swap", json{{"model", "phi3:mini"}}))["status"],
            "pulling");
  json p;
  for (int i = 0; i < 600; ++i) {
    p = json_of(call("GET", "/model/pull/progress"));
    if (p["status"] == "error") break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(p["status"], "error") << p;
  EXPECT_NE(p.value("error", "").find("file does not exist"), std::string::npos) << p;
  EXPECT_EQ(json_of(call("GET", "/model/status"))["model"], kTestModel);
}

TEST_F(InferenceServiceTest, SwapAndPullValidation) {
  start(Flavor::ollama);
  auto r = call("POST", "/model/swap", json::object());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json_of(r)["error"], "model_required");
  EXPECT_EQ(call("POST", "/model/pull", json{{"model", 3}}).status, 400);
  r = call("POST", "/model/pull", json{{"model", "tiny:1b"}});
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(json_of(call("GET", "/model/status"))["model"], kTestModel);  // pull != swap
}

TEST_F(InferenceServiceTest, SwapWhenTheServerIsDownSaysSo) {
  start(Flavor::ollama);
  FakeBehaviour b;
  b.fail_status = 500;
  b.fail_metadata = true;
  fake_->set_behaviour(b);
  const json j = json_of(call("POST", "/model/swap", json{{"model", "llama3"}}));
  EXPECT_EQ(j["status"], "error");
  EXPECT_NE(j["error"].get<std::string>().find("ollama_not_running"), std::string::npos);
  EXPECT_EQ(j["active"], kTestModel);
  EXPECT_EQ(json_of(call("GET", "/model/list")), json::array());
  const json status = json_of(call("GET", "/model/status"));
  EXPECT_EQ(status["status"], "error");
  EXPECT_EQ(status["ollamaHealthy"], false);
}

TEST_F(InferenceServiceTest, EscalateReturnsExtractedCode) {
  start(Flavor::ollama);
  FakeBehaviour b;
  b.reply("The bug is a typo.\n```python\nprint('fixed')\n```\nDone.");
  fake_->set_behaviour(b);
  const json body = {{"task", "print fixed"},
                     {"failedCode", "prnt('fixed')"},
                     {"errorHistory", {"NameError: name 'prnt' is not defined"}},
                     {"language", "python"}};
  auto r = call("POST", "/escalate", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json_of(r)["improvedCode"], "print('fixed')");
  EXPECT_NE(json_of(r)["explanation"].get<std::string>().find("Escalated"), std::string::npos);
  const auto sent = fake_->requests_to("/api/generate");
  ASSERT_EQ(sent.size(), 1U);
  const std::string prompt = sent[0].body["prompt"];
  EXPECT_NE(prompt.find("prnt('fixed')"), std::string::npos);
  EXPECT_NE(prompt.find("NameError"), std::string::npos);

  b.fail_status = 500;
  fake_->set_behaviour(b);
  r = call("POST", "/escalate", body);
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(json_of(r)["improvedCode"], "");
  EXPECT_NE(json_of(r)["explanation"].get<std::string>().find("Escalation inference failed"),
            std::string::npos);

  json no_language = body;
  no_language.erase("language");
  EXPECT_EQ(call("POST", "/escalate", no_language).status, 400);
}

TEST_F(InferenceServiceTest, MetricsInBothForms) {
  start(Flavor::ollama);
  FakeBehaviour b;
  b.reply(items(2));
  fake_->set_behaviour(b);
  ASSERT_EQ(call("POST", "/decompose", decompose_body()).status, 200);
  b.fail_status = 500;
  fake_->set_behaviour(b);
  ASSERT_EQ(call("POST", "/decompose", decompose_body()).status, 200);
  const auto r = call("GET", "/metrics", nullptr, {{"Accept", "application/json"}}, false);
  ASSERT_EQ(r.status, 200);
  const json j = json_of(r);
  EXPECT_EQ(j["decomposeRequests"], 2);
  EXPECT_EQ(j["decomposeSuccesses"], 1);
  EXPECT_EQ(j["decomposeModelCalls"], 2);
  EXPECT_EQ(j["decomposeFallbacks"], 1);
  for (const char* key :
       {"escalateRequests", "escalateSuccesses", "escalateFailures", "totalLatencyMs"}) {
    EXPECT_TRUE(j[key].is_number()) << key;
  }
  const auto text = call("GET", "/metrics", nullptr, {}, false);
  EXPECT_NE(text.body.find("edgecoder_inference_decompose_requests_total 2"), std::string::npos)
      << text.body;
  EXPECT_NE(text.body.find("edgecoder_model_requests_total"), std::string::npos);
}

TEST_F(InferenceServiceTest, ReadyFollowsTheModelServer) {
  start(Flavor::ollama);
  int status = 0;
  for (int i = 0; i < 300 && status != 200; ++i) {
    status = call("GET", "/ready", nullptr, {}, false).status;
    if (status != 200) std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(status, 200);
  fake_.reset();  // the model server goes away
  net::ClientResponse r;
  for (int i = 0; i < 300; ++i) {
    r = call("GET", "/ready", nullptr, {}, false);
    if (r.status == 503) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json_of(r)["error"], "model_unavailable") << r.body;
  EXPECT_EQ(json_of(call("GET", "/dashboard/api/overview"))["ollamaHealthy"], false);
}

TEST_F(InferenceServiceTest, DashboardPageAndOverview) {
  start(Flavor::ollama);
  const auto page = call("GET", "/dashboard");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.header("content-type").value_or("").find("text/html"), std::string::npos);
  for (const char* s : {"EdgeCoder Agent Dashboard", "/dashboard/api/overview", "/model/swap",
                        "x-inference-token"}) {
    EXPECT_NE(page.body.find(s), std::string::npos) << s;
  }
  const json o = json_of(call("GET", "/dashboard/api/overview"));
  EXPECT_EQ(o["activeModel"], kTestModel);
  EXPECT_TRUE(o["ollamaHealthy"].is_boolean());
  EXPECT_TRUE(o["uptimeSeconds"].is_number());
  EXPECT_TRUE(o["memoryMB"].is_number());
  EXPECT_GT(o["memoryMB"].get<double>(), 0);
  EXPECT_EQ(o["nodeVersion"].get<std::string>().front(), 'v');
  EXPECT_TRUE(o["metrics"]["decomposeRequests"].is_number());
}

TEST_F(InferenceServiceTest, OpenAiServerBehindTheRelay) {
  start(Flavor::openai);
  auto r = call("POST", "/chat", chat_body());
  ASSERT_EQ(r.status, 200) << r.body;
  auto [text, done] = chat_text(events_of(r.body));
  EXPECT_EQ(text, "Hello, world!");
  EXPECT_TRUE(done);
  const json swap = json_of(call("POST", "/model/swap", json{{"model", "llama3:latest"}}));
  EXPECT_EQ(swap["status"], "ready");
  const json missing = json_of(call("POST", "/model/swap", json{{"model", "gpt-9"}}));
  EXPECT_EQ(missing["status"], "error");
  EXPECT_NE(missing["error"].get<std::string>().find("model_not_found"), std::string::npos);
  fake_->clear_requests();
  ASSERT_EQ(call("POST", "/chat", chat_body()).status, 200);
  EXPECT_EQ(fake_->requests_to("/v1/chat/completions").at(0).body["model"], "llama3:latest");
  EXPECT_EQ(call("POST", "/model/pull", json{{"model", "x"}}).status, 400);
}

TEST_F(InferenceServiceTest, OfflineStubDecomposesDocumentedPromptsAndIsLabelled) {
  start(std::nullopt);
  const auto r = call("POST", "/decompose",
                      decompose_body("Report:\n1. Add 3 and 4\n2. Multiply 6 and 7\n"
                                     "3. javascript: Print hello world"));
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json_of(r);
  EXPECT_EQ(j["fallback"], false);
  EXPECT_EQ(j["llm"], false);
  ASSERT_EQ(j["subtasks"].size(), 3U);
  EXPECT_EQ(j["subtasks"][1]["dependsOn"], json::array({0}));
  EXPECT_EQ(j["subtasks"][2]["dependsOn"], json::array({1}));
  EXPECT_EQ(j["subtasks"][2]["language"], "javascript");
  const json status = json_of(call("GET", "/model/status"));
  EXPECT_EQ(status["llm"], false);
  EXPECT_EQ(status["status"], "ready");
  EXPECT_NE(status["note"].get<std::string>().find("not an LLM"), std::string::npos);
  const auto chat = call("POST", "/chat", chat_body("hi"));
  ASSERT_EQ(chat.status, 200);
  auto [text, done] = chat_text(events_of(chat.body));
  EXPECT_NE(text.find("not an LLM"), std::string::npos);
  EXPECT_TRUE(done);
  EXPECT_EQ(call("GET", "/ready", nullptr, {}, false).status, 200);
  const json escalate =
      json_of(call("POST", "/escalate",
                   json{{"task", "Add 3 and 4"}, {"failedCode", "x"}, {"language", "python"}}));
  EXPECT_NE(escalate["improvedCode"].get<std::string>().find("print(sum(numbers))"),
            std::string::npos)
      << escalate;
}

}  // namespace
}  // namespace edgecoder::inference

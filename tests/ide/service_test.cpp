// The IDE provider over real HTTP on loopback: OpenAI and Ollama wire shapes relayed from fake
// model servers, the API-key gate and the start-up exposure rule, routing to a (fake)
// coordinator, the VS Code /run routes, and the /v1/ide/chat agent loop with its tools,
// approvals and project-root containment (against a scripted Ollama and a real bwrap sandbox).
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "ide/ide_fixture.h"
#include "net/stream_parsers.h"
#include "support/child_process.h"

namespace edgecoder::ide {
namespace {

namespace stdfs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

std::vector<json> sse_data(const std::string& body, bool* done = nullptr) {
  net::SseParser parser;
  auto events = parser.feed(body);
  EXPECT_TRUE(events.has_value());
  std::vector<json> out;
  if (done) *done = false;
  for (const auto& e : events ? *events : std::vector<net::SseEvent>{}) {
    if (e.data == "[DONE]") {
      if (done) *done = true;
      continue;
    }
    out.push_back(json::parse(e.data, nullptr, false));
  }
  return out;
}

std::string fake_text(const testing::FakeBehaviour& b = {}) {
  std::string s;
  for (const auto& t : b.tokens) s += t;
  return s;
}

json chat_body(bool stream, const std::string& model = kIdeModel) {
  return {{"model", model},
          {"stream", stream},
          {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
}

class IdeService : public IdeFixture {};

TEST_F(IdeService, OpenAiStreamIsValidChunksEndingWithDone) {
  testing::FakeBehaviour b;
  b.split_every = 3;  // upstream NDJSON lines arrive cut at every third byte
  start(Flavor::ollama, {}, b);
  auto r = call("POST", "/v1/chat/completions", chat_body(true));
  ASSERT_EQ(r.status, 200) << r.body;
  bool done = false;
  auto frames = sse_data(r.body, &done);
  EXPECT_TRUE(done);
  ASSERT_GE(frames.size(), 3u);
  std::string text;
  for (const auto& f : frames) {
    ASSERT_EQ(f.value("object", ""), "chat.completion.chunk") << f.dump();
    EXPECT_FALSE(f.contains("route_info"));
    text += f["choices"][0]["delta"].value("content", "");
  }
  EXPECT_EQ(text, fake_text());
  EXPECT_EQ(frames.front()["choices"][0]["delta"].value("role", ""), "assistant");
  EXPECT_EQ(frames.back()["choices"][0].value("finish_reason", ""), "stop");
}

TEST_F(IdeService, RouteInfoFrameOnlyForClientsThatAsk) {
  start(Flavor::ollama);
  auto plain = sse_data(call("POST", "/v1/chat/completions", chat_body(true)).body);
  ASSERT_FALSE(plain.empty());
  EXPECT_FALSE(plain.front().contains("route_info"));
  for (const auto& header : std::vector<std::pair<std::string, std::string>>{
           {"x-edgecoder-route-info", "1"}, {"Origin", "tauri://localhost"}}) {
    auto frames = sse_data(call("POST", "/v1/chat/completions", chat_body(true), {header}).body);
    ASSERT_FALSE(frames.empty());
    ASSERT_TRUE(frames.front().contains("route_info")) << frames.front().dump();
    EXPECT_EQ(frames.front()["route_info"].value("route", ""), "ollama-local");
    EXPECT_EQ(frames.front()["route_info"].value("model", ""), kIdeModel);
  }
}

TEST_F(IdeService, OpenAiBackendNonStreamingAndUsage) {
  start(Flavor::openai);
  auto r = call("POST", "/v1/chat/completions", chat_body(false));
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = json_of(r);
  EXPECT_EQ(j.value("object", ""), "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"].value("content", ""), fake_text());
  EXPECT_TRUE(j["usage"].contains("total_tokens"));
}

TEST_F(IdeService, OllamaChatStreamsNdjsonByDefault) {
  start(Flavor::ollama);
  json body = chat_body(true);
  body.erase("stream");  // Ollama streams unless told otherwise
  auto r = call("POST", "/api/chat", body);
  ASSERT_EQ(r.status, 200) << r.body;
  net::NdjsonParser parser;
  auto lines = parser.feed(r.body);
  ASSERT_TRUE(lines.has_value());
  ASSERT_GE(lines->size(), 2u);
  std::string text;
  for (std::size_t i = 0; i < lines->size(); ++i) {
    auto j = json::parse((*lines)[i], nullptr, false);
    ASSERT_TRUE(j.is_object()) << (*lines)[i];
    EXPECT_EQ(j.value("done", false), i + 1 == lines->size());
    text += j["message"].value("content", "");
  }
  EXPECT_EQ(text, fake_text());
  auto last = json::parse(lines->back());
  EXPECT_EQ(last.value("done_reason", ""), "stop");
  EXPECT_TRUE(last.contains("eval_count"));
}

TEST_F(IdeService, BadInputGetsClearErrorsInEachApisShape) {
  start(Flavor::ollama);
  auto r = call("POST", "/v1/chat/completions", json{{"model", kIdeModel}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json_of(r)["error"].value("type", ""), "invalid_request_error") << r.body;
  EXPECT_NE(json_of(r)["error"].value("message", "").find("messages"), std::string::npos);
  net::ClientRequest raw;
  raw.method = "POST";
  raw.url = url("/v1/chat/completions");
  raw.body = "{not json";
  auto bad = net::fetch(raw);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 400);
  EXPECT_TRUE(json_of(*bad)["error"].is_object()) << bad->body;
  auto o = call("POST", "/api/chat", json{{"messages", json::array()}});
  EXPECT_EQ(o.status, 400);
  EXPECT_TRUE(json_of(o)["error"].is_string()) << o.body;
  auto t = call(
      "POST", "/v1/chat/completions",
      json{{"model", kIdeModel}, {"temperature", 9}, {"messages", chat_body(false)["messages"]}});
  EXPECT_EQ(t.status, 400) << t.body;
  // The process keeps serving.
  EXPECT_EQ(call("POST", "/v1/chat/completions", chat_body(false)).status, 200);
}

TEST_F(IdeService, UnknownModelIsOpenAiModelNotFoundWhenNoOtherRoute) {
  start(Flavor::ollama, [](IdeOptions& o) { o.route_order = {Route::local}; });
  auto r = call("POST", "/v1/chat/completions", chat_body(false, "no-such-model:1b"));
  EXPECT_EQ(r.status, 404) << r.body;
  auto e = json_of(r)["error"];
  EXPECT_EQ(e.value("code", ""), "model_not_found");
  EXPECT_EQ(e.value("param", ""), "model");
  auto o = call("POST", "/api/chat", chat_body(false, "no-such-model:1b"));
  EXPECT_EQ(o.status, 404);
  EXPECT_NE(json_of(o).value("error", "").find("not found"), std::string::npos) << o.body;
}

TEST_F(IdeService, ApiKeyGuardsEverythingButHealth) {
  start(Flavor::ollama, [](IdeOptions& o) { o.api_key = "ide-test-key"; });
  EXPECT_EQ(call("GET", "/health").status, 200);
  auto none = call("GET", "/v1/models");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(json_of(none)["error"].value("code", ""), "invalid_api_key") << none.body;
  EXPECT_EQ(call("GET", "/v1/models", nullptr, {{"Authorization", "Bearer wrong"}}).status, 401);
  auto tags = call("GET", "/api/tags");
  EXPECT_EQ(tags.status, 401);
  EXPECT_TRUE(json_of(tags)["error"].is_string());
  EXPECT_EQ(call("POST", "/run", json{{"task", "x"}}).status, 401);
  EXPECT_EQ(call("POST", "/v1/ide/tool-approval", json{{"id", "x"}, {"approved", true}}).status,
            401);
  EXPECT_EQ(call("GET", "/v1/models", nullptr, {{"Authorization", "Bearer ide-test-key"}}).status,
            200);
  EXPECT_EQ(call("GET", "/api/tags", nullptr, {{"x-api-key", "ide-test-key"}}).status, 200);
}

TEST(IdeExposure, PublicBindNeedsAKeyUnlessTrustedContainer) {
  IdeOptions o;
  EXPECT_TRUE(check_exposure("127.0.0.1", o, false, false).has_value());
  auto refused = check_exposure("0.0.0.0", o, false, false);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().detail.find("IDE_PROVIDER_API_KEY"), std::string::npos);
  EXPECT_FALSE(check_exposure("0.0.0.0", o, true, false).has_value());  // not in a container
  EXPECT_TRUE(check_exposure("0.0.0.0", o, true, true).has_value());
  o.api_key = "k";
  EXPECT_TRUE(check_exposure("0.0.0.0", o, false, false).has_value());
}

TEST_F(IdeService, ModelsListAdvertisesContextAndTools) {
  start(Flavor::ollama);
  auto r = call("GET", "/v1/models");
  ASSERT_EQ(r.status, 200) << r.body;
  auto data = json_of(r)["data"];
  ASSERT_FALSE(data.empty());
  for (const auto& m : data) {
    EXPECT_EQ(m.value("object", ""), "model");
    EXPECT_TRUE(m["context_length"].is_number_integer()) << m.dump();
    EXPECT_TRUE(m["supports_tools"].is_boolean()) << m.dump();
  }
  auto status = json_of(call("GET", "/status"));
  EXPECT_EQ(status["routeOrder"], json::array({"local", "mesh"}));
  EXPECT_EQ(status.value("swarmEnabled", true), false);

  // Editors list models often: what /api/show said is reused, not asked again per listing.
  const std::size_t shows = fake_->requests_to("/api/show").size();
  EXPECT_EQ(shows, data.size()) << "one /api/show per local model";
  auto again = call("GET", "/v1/models");
  ASSERT_EQ(again.status, 200) << again.body;
  auto again_data = json_of(again)["data"];
  ASSERT_EQ(again_data.size(), data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    for (const char* field : {"id", "context_length", "supports_tools", "capabilities"}) {
      EXPECT_EQ(again_data[i][field], data[i][field]) << field;
    }
  }
  EXPECT_EQ(fake_->requests_to("/api/show").size(), shows);
}

// A test HTTP server on 127.0.0.1 port 0 with its own event-loop thread.
class LoopbackServer {
 public:
  void start(net::Router router) {
    server_ =
        std::make_unique<net::HttpServer>(io_, net::ServerOptions{}, std::move(router), nullptr);
    port_ = *server_->listen();
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~LoopbackServer() {
    if (!server_) return;
    server_->shutdown();
    io_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  boost::asio::io_context io_;
  std::unique_ptr<net::HttpServer> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

// ---- a fake coordinator: POST /tasks, GET /tasks/:id (done after two polls), cancel ----

class FakeCoordinator {
 public:
  // `finishes`: the task completes at the third poll; otherwise it runs forever.
  explicit FakeCoordinator(bool finishes = true) : finishes_(finishes) {
    net::Router router;
    router.add_sync("POST", "/tasks", [this](const net::Request& r) {
      if (r.header("x-mesh-token").value_or("") != "mesh-secret") {
        return net::Response::error(401, "mesh_unauthorized", "bad token");
      }
      std::lock_guard lock(mu_);
      submitted_.push_back(json::parse(r.body, nullptr, false));
      return net::Response::json(201, {{"taskId", submitted_.back().value("taskId", "")},
                                       {"subtasks", json::array({"s1"})}});
    });
    router.add_sync("GET", "/tasks/:id", [this](const net::Request&) {
      const int n = ++polls_;
      json sub = {{"id", "s1"}, {"state", n < 2 ? "queued" : "leased"}};
      if (n >= 2) sub["holder"] = "agent-7";
      std::string status = n < 2 ? "pending" : "running";
      if (n >= 3 && finishes_) {
        status = "completed";
        sub["state"] = "completed";
        sub["result"] = {{"ok", true}, {"output", "mesh says 42\n"}};
      }
      return net::Response::json(200, {{"status", status}, {"subtasks", json::array({sub})}});
    });
    router.add_sync("POST", "/tasks/:id/cancel", [this](const net::Request& r) {
      std::lock_guard lock(mu_);
      cancelled_.push_back(r.param("id"));
      return net::Response::json(200, {{"ok", true}});
    });
    server_.start(std::move(router));
  }
  std::string url() const { return server_.url(); }
  std::vector<json> submitted() {
    std::lock_guard lock(mu_);
    return submitted_;
  }
  std::vector<std::string> cancelled() {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

 private:
  const bool finishes_;
  std::mutex mu_;
  std::vector<std::string> cancelled_;
  std::vector<json> submitted_;
  std::atomic<int> polls_{0};
  LoopbackServer server_;  // last: stops before the state its handlers use goes
};

TEST_F(IdeService, ModelOnlyTheMeshHasBecomesACoordinatorTask) {
  FakeCoordinator coordinator;
  start(Flavor::ollama, [&](IdeOptions& o) {
    o.coordinator_url = coordinator.url();
    o.mesh_token = "mesh-secret";
  });
  auto r = call("POST", "/v1/chat/completions", chat_body(true, "big-mesh-model:70b"));
  ASSERT_EQ(r.status, 200) << r.body;
  std::string text;
  for (const auto& f : sse_data(r.body)) text += f["choices"][0]["delta"].value("content", "");
  EXPECT_NE(text.find("queued"), std::string::npos) << text;
  EXPECT_NE(text.find("running on agent agent-7"), std::string::npos) << text;
  EXPECT_NE(text.find("mesh says 42"), std::string::npos) << text;
  auto sent = coordinator.submitted();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].value("requestedModel", ""), "big-mesh-model:70b");
  EXPECT_EQ(sent[0]["subtasks"][0].value("input", ""), "hi");
  auto status = json_of(call("GET", "/status"));
  EXPECT_EQ(status["routes"]["local"].value("fallbacks", 0), 1) << status.dump();
  EXPECT_EQ(status["routes"]["mesh"].value("requests", 0), 1) << status.dump();
}

TEST_F(IdeService, AClientThatLeavesCancelsItsMeshTask) {
  FakeCoordinator coordinator(/*finishes=*/false);
  start(Flavor::ollama, [&](IdeOptions& o) {
    o.coordinator_url = coordinator.url();
    o.mesh_token = "mesh-secret";
    o.mesh_progress_interval = 200ms;
  });
  {
    SseReader sse(port_, "/v1/chat/completions", chat_body(true, "edgecoder/mesh").dump());
    ASSERT_EQ(sse.status(), 200);
    auto first = sse.next();
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->value("object", ""), "chat.completion.chunk");
  }  // the client goes away mid-task
  ASSERT_EQ(coordinator.submitted().size(), 1u);
  const std::string task = coordinator.submitted()[0].value("taskId", "");
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (coordinator.cancelled().empty() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(coordinator.cancelled().size(), 1u);
  EXPECT_EQ(coordinator.cancelled()[0], task);
}

// ---- the agent loop against a scripted Ollama ----

// An Ollama /api/chat that answers each request with the next scripted reply (the last one
// repeats), streamed as NDJSON in two pieces like a real model.
class ScriptedOllama {
 public:
  explicit ScriptedOllama(std::vector<std::string> replies) : replies_(std::move(replies)) {
    net::Router router;
    router.add_sync("POST", "/api/chat", [this](const net::Request& r) {
      std::string reply;
      {
        std::lock_guard lock(mu_);
        requests_.push_back(json::parse(r.body, nullptr, false));
        reply = replies_[std::min(next_++, replies_.size() - 1)];
      }
      const auto half = reply.size() / 2;
      std::string body;
      for (const auto& piece : {reply.substr(0, half), reply.substr(half)}) {
        body += json({{"model", kIdeModel},
                      {"created_at", "2026-11-27T00:00:00Z"},
                      {"message", {{"role", "assistant"}, {"content", piece}}},
                      {"done", false}})
                    .dump() +
                "\n";
      }
      body += json({{"model", kIdeModel},
                    {"created_at", "2026-11-27T00:00:00Z"},
                    {"message", {{"role", "assistant"}, {"content", ""}}},
                    {"done", true},
                    {"done_reason", "stop"}})
                  .dump() +
              "\n";
      return net::Response::text(200, body, "application/x-ndjson");
    });
    server_.start(std::move(router));
  }
  std::string url() const { return server_.url(); }
  std::vector<json> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> replies_;
  std::size_t next_ = 0;
  std::vector<json> requests_;
  LoopbackServer server_;  // last: stops before the state its handlers use goes
};

std::string tool_block(const json& call) {
  return "Let me do that.\n```tool_call\n" + call.dump() + "\n```\n";
}

class IdeAgent : public IdeFixture {
 protected:
  void SetUp() override {
    // The sandbox's unprivileged user must reach the project, as it would under /home.
    stdfs::permissions(dir_.path(), stdfs::perms::owner_all | stdfs::perms::group_read |
                                        stdfs::perms::group_exec | stdfs::perms::others_read |
                                        stdfs::perms::others_exec);
    root_ = stdfs::canonical(dir_.path()) / "project";
    outside_ = stdfs::canonical(dir_.path()) / "outside";
    stdfs::create_directories(root_ / "src");
    stdfs::create_directories(outside_);
    std::ofstream(root_ / "hello.txt") << "hello\nworld\n";
    std::ofstream(outside_ / "secret.txt") << "top secret\n";
  }

  void start_agent(std::vector<std::string> replies, bool with_sandbox = false) {
    ollama_ = std::make_unique<ScriptedOllama>(std::move(replies));
    std::unique_ptr<sandbox::Sandbox> box;
    if (with_sandbox) {
      sandbox::Options options;
      options.cgroup = "off";
      auto made = sandbox::make_sandbox(options);
      ASSERT_TRUE(made.has_value()) << made.error().detail;
      box = std::move(*made);
    }
    start_with(
        model::ProviderKind::ollama, ollama_->url(),
        [&](IdeOptions& o) {
          o.project_roots = {root_};
          o.approval_timeout = 60s;
        },
        std::move(box));
  }

  json chat_request(const std::string& root = "") const {
    return {{"messages", json::array({{{"role", "user"}, {"content", "do it"}}})},
            {"projectRoot", root.empty() ? root_.string() : root}};
  }

  net::ClientResponse approve(const std::string& id, bool approved, const std::string& session) {
    json body = {{"id", id}, {"approved", approved}};
    if (!session.empty()) body["sessionId"] = session;
    return call("POST", "/v1/ide/tool-approval", body);
  }

  testing::TempDir dir_;
  stdfs::path root_;
  stdfs::path outside_;
  std::unique_ptr<ScriptedOllama> ollama_;
};

TEST_F(IdeAgent, ReadToolRunsWithoutApprovalAndFeedsTheModel) {
  start_agent(
      {tool_block({{"tool", "read_file"}, {"args", {{"path", "hello.txt"}}}}), "All done."});
  SseReader sse(port_, "/v1/ide/chat", chat_request().dump());
  ASSERT_EQ(sse.status(), 200);
  auto session = sse.next();
  ASSERT_TRUE(session && session->value("type", "") == "session")
      << (session ? session->dump() : "");
  auto call_event = sse.until("tool_call");
  ASSERT_TRUE(call_event);
  EXPECT_EQ(call_event->value("requires_approval", true), false);
  auto result = sse.until("tool_result");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->value("result", ""), "     1  hello\n     2  world\n     3  ")
      << result->dump();
  std::vector<json> rest;
  ASSERT_TRUE(sse.until("done", &rest));
  bool said_done = false;
  for (const auto& e : rest) said_done = said_done || e.value("content", "") == "All done.";
  EXPECT_TRUE(said_done);
  auto requests = ollama_->requests();
  ASSERT_EQ(requests.size(), 2u);
  const auto& history = requests[1]["messages"];
  EXPECT_NE(history.back().value("content", "").find("[Tool read_file result]"), std::string::npos)
      << history.dump();
}

TEST_F(IdeAgent, WriteWaitsForApprovalFromItsOwnSessionOnly) {
  const json write = {{"tool", "write_file"},
                      {"args", {{"path", "src/new.txt"}, {"content", "fresh"}}}};
  start_agent({tool_block(write), "Rejected, fine.", tool_block(write), "Written."});
  const stdfs::path target = root_ / "src" / "new.txt";

  // First session: the write is rejected.
  {
    SseReader sse(port_, "/v1/ide/chat", chat_request().dump());
    auto session = sse.next();
    ASSERT_TRUE(session);
    const std::string sid = session->value("sessionId", "");
    ASSERT_EQ(sid.size(), 32u);
    auto tc = sse.until("tool_call");
    ASSERT_TRUE(tc);
    EXPECT_TRUE(tc->value("requires_approval", false));
    const std::string id = tc->value("id", "");
    EXPECT_FALSE(stdfs::exists(target));
    // Somebody else (no session, or another session's id) cannot answer it.
    EXPECT_EQ(approve(id, true, "").status, 403);
    EXPECT_EQ(approve(id, true, std::string(32, 'a')).status, 403);
    EXPECT_EQ(approve("tc_unknown", true, sid).status, 404);
    EXPECT_FALSE(stdfs::exists(target));
    EXPECT_EQ(approve(id, false, sid).status, 200);
    auto result = sse.until("tool_result");
    ASSERT_TRUE(result);
    EXPECT_NE(result->value("error", "").find("rejected"), std::string::npos) << result->dump();
    ASSERT_TRUE(sse.until("done"));
    EXPECT_FALSE(stdfs::exists(target));
  }
  // Second session: approved by its own session, the file appears.
  SseReader sse(port_, "/v1/ide/chat", chat_request().dump());
  auto session = sse.next();
  ASSERT_TRUE(session);
  auto tc = sse.until("tool_call");
  ASSERT_TRUE(tc);
  EXPECT_FALSE(stdfs::exists(target));
  net::Headers header = {{"x-edgecoder-session", session->value("sessionId", "")}};
  auto ok = call("POST", "/v1/ide/tool-approval",
                 json{{"id", tc->value("id", "")}, {"approved", true}}, header);
  EXPECT_EQ(ok.status, 200) << ok.body;
  auto result = sse.until("tool_result");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->value("error", ""), "") << result->dump();
  ASSERT_TRUE(sse.until("done"));
  std::ifstream in(target);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "fresh");
}

TEST_F(IdeAgent, PathEscapesThroughDotDotAndSymlinkAreRefused) {
  stdfs::create_symlink(outside_ / "secret.txt", root_ / "link.txt");
  stdfs::create_directory_symlink(outside_, root_ / "linkdir");
  start_agent(
      {tool_block({{"tool", "read_file"}, {"args", {{"path", "../outside/secret.txt"}}}}),
       tool_block({{"tool", "read_file"}, {"args", {{"path", "link.txt"}}}}),
       tool_block({{"tool", "read_file"}, {"args", {{"path", outside_.string() + "/secret.txt"}}}}),
       "Done."});
  SseReader sse(port_, "/v1/ide/chat", chat_request().dump());
  for (int i = 0; i < 3; ++i) {
    auto result = sse.until("tool_result");
    ASSERT_TRUE(result) << i;
    EXPECT_NE(result->value("error", "").find("escapes project root"), std::string::npos)
        << result->dump();
    EXPECT_EQ(result->dump().find("top secret"), std::string::npos);
  }
  ASSERT_TRUE(sse.until("done"));
}

TEST_F(IdeAgent, WriteThroughASymlinkedDirectoryIsRefusedEvenAfterApproval) {
  stdfs::create_directory_symlink(outside_, root_ / "linkdir");
  start_agent({tool_block({{"tool", "write_file"},
                           {"args", {{"path", "linkdir/planted.txt"}, {"content", "x"}}}}),
               "Done."});
  SseReader sse(port_, "/v1/ide/chat", chat_request().dump());
  auto session = sse.next();
  ASSERT_TRUE(session);
  auto tc = sse.until("tool_call");
  ASSERT_TRUE(tc);
  EXPECT_EQ(approve(tc->value("id", ""), true, session->value("sessionId", "")).status, 200);
  auto result = sse.until("tool_result");
  ASSERT_TRUE(result);
  EXPECT_NE(result->value("error", "").find("escapes project root"), std::string::npos)
      << result->dump();
  EXPECT_FALSE(stdfs::exists(outside_ / "planted.txt"));
}

TEST_F(IdeAgent, RootOutsideTheAllowListIsRefused) {
  start_agent({"Hello."});
  auto set = call("POST", "/v1/ide/project", json{{"projectRoot", outside_.string()}});
  EXPECT_EQ(set.status, 403) << set.body;
  auto chat = call("POST", "/v1/ide/chat", chat_request(outside_.string()));
  EXPECT_EQ(chat.status, 403) << chat.body;
  auto missing = call("POST", "/v1/ide/project", json{{"projectRoot", (root_ / "nope").string()}});
  EXPECT_EQ(missing.status, 400) << missing.body;
  EXPECT_EQ(json_of(missing).value("error", ""), "Not a valid directory");
  // A subdirectory of an allowed root is fine, and becomes the default.
  auto sub = call("POST", "/v1/ide/project", json{{"projectRoot", (root_ / "src").string()}});
  EXPECT_EQ(sub.status, 200) << sub.body;
  EXPECT_EQ(json_of(call("GET", "/v1/ide/project")).value("projectRoot", ""),
            (root_ / "src").string());
  EXPECT_TRUE(ollama_->requests().empty());  // nothing reached the model
}

TEST_F(IdeAgent, ShellCommandRunsInTheSandboxAfterApproval) {
  start_agent(
      {tool_block(
           {{"tool", "run_shell"},
            {"args",
             {{"command", "cat hello.txt; echo oops >&2; test -e /home/. && echo home; exit 3"}}}}),
       "Ran it."},
      /*with_sandbox=*/true);
  SseReader sse(port_, "/v1/ide/chat", chat_request().dump());
  auto session = sse.next();
  ASSERT_TRUE(session);
  auto tc = sse.until("tool_call");
  ASSERT_TRUE(tc);
  EXPECT_TRUE(tc->value("requires_approval", false));
  EXPECT_EQ(approve(tc->value("id", ""), true, session->value("sessionId", "")).status, 200);
  std::vector<json> seen;
  auto out = sse.until("shell_output", &seen);
  ASSERT_TRUE(out) << json(seen).dump();
  EXPECT_EQ(out->value("stdout", ""), "hello\nworld") << out->dump();  // and no host /home
  // (As root the sandbox also notes that its uid cannot write to this root-owned project.)
  EXPECT_TRUE(out->value("stderr", "").starts_with("oops")) << out->dump();
  EXPECT_EQ(out->value("exit_code", 0), 3);
  ASSERT_TRUE(sse.until("done"));
}

TEST_F(IdeAgent, ClientLeavingRejectsOnlyItsOwnApprovals) {
  const json write = {{"tool", "write_file"}, {"args", {{"path", "a.txt"}, {"content", "a"}}}};
  start_agent({tool_block(write), tool_block(write), "Done."});
  SseReader first(port_, "/v1/ide/chat", chat_request().dump());
  auto s1 = first.next();
  auto tc1 = first.until("tool_call");
  ASSERT_TRUE(s1 && tc1);
  SseReader second(port_, "/v1/ide/chat", chat_request().dump());
  auto s2 = second.next();
  auto tc2 = second.until("tool_call");
  ASSERT_TRUE(s2 && tc2);
  first.close();
  // The first session notices at its next keep-alive at the latest; the second still waits.
  EXPECT_EQ(approve(tc2->value("id", ""), true, s2->value("sessionId", "")).status, 200);
  auto result = second.until("tool_result");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->value("error", ""), "");
  EXPECT_TRUE(stdfs::exists(root_ / "a.txt"));
}

TEST_F(IdeService, RunLocalGeneratesAndRunsCodeInTheSandbox) {
  sandbox::Options options;
  options.cgroup = "off";
  auto box = sandbox::make_sandbox(options);
  ASSERT_TRUE(box.has_value()) << box.error().detail;
  start_with(model::ProviderKind::edgecoder_local, "", {}, std::move(*box));
  auto r =
      call("POST", "/run/local", json{{"task", "print('run-local-ok')"}, {"language", "python"}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = json_of(r);
  EXPECT_EQ(j.value("route", ""), "edgecoder-local");
  EXPECT_EQ(j["runResult"].value("stdout", ""), "run-local-ok\n") << r.body;
  EXPECT_EQ(j["runResult"].value("exitCode", -1), 0);
  EXPECT_TRUE(j["latencyMs"].is_number());
  EXPECT_FALSE(j.value("plan", "").empty());
  // /run/swarm without a mesh says so; bad input is a 400.
  auto swarm = call("POST", "/run/swarm", json{{"task", "x"}});
  EXPECT_EQ(swarm.status, 502) << swarm.body;
  EXPECT_EQ(call("POST", "/run", json{{"task", ""}}).status, 400);
  EXPECT_EQ(call("POST", "/run", json{{"task", "x"}, {"language", "cobol"}}).status, 400);
}

}  // namespace
}  // namespace edgecoder::ide

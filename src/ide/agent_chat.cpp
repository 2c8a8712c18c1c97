// The desktop app's agent: /v1/ide/project, /v1/ide/tool-approval and the /v1/ide/chat loop
// (upstream-inference-ide-executor.md §3.4). Each /v1/ide/chat request is a session with an
// unguessable id, sent first as {"type":"session","sessionId":…}; its tool calls that need
// approval wait for POST /v1/ide/tool-approval carrying that session id (body `sessionId` or
// header x-edgecoder-session) — nobody else can approve them. A session that ends (client gone,
// server stopping) rejects only its own pending approvals.
#include <regex>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>

#include "core/crypto.h"
#include "core/log.h"
#include "ide/detail.h"
#include "ide/tools.h"
#include "model/extract.h"

namespace edgecoder::ide::detail {

using core::Errc;

namespace {

constexpr std::chrono::seconds kKeepAlive{15};

const char* const kAgentPrompt =
    "You are EdgeCoder, a coding agent working inside the user's project. You can use tools. "
    "To call one, answer with a fenced block tagged tool_call holding one JSON object:\n"
    "```tool_call\n{\"tool\": \"read_file\", \"args\": {\"path\": \"src/main.py\"}}\n```\n"
    "Tools: read_file {path, offset?, limit?}; list_directory {path?}; search_files {pattern, "
    "path?, include?}; write_file {path, content}; edit_file {path, old_string, new_string}; "
    "run_shell {command, timeout?}; git_status {}; git_diff {ref?, path?}; git_log {count?, "
    "ref?}; git_commit {message, files?}; git_branch {name?, create?}. Paths are relative to "
    "the project root. Writes, edits, commits and shell commands wait for the user's approval. "
    "You may propose a plan first as a fenced block tagged plan holding a JSON array of step "
    "descriptions. After each tool call you get its result; when you are done, answer in plain "
    "text without a tool_call block.";

model::Message message(std::string role, std::string content) {
  model::Message m;
  m.role = std::move(role);
  m.content = std::move(content);
  return m;
}

struct Block {
  std::size_t start = 0;
  std::size_t end = 0;
  std::string kind;  // tool_call, plan
  std::string body;
};

std::vector<Block> find_blocks(const std::string& text) {
  static const std::regex re("```(tool_call|plan)[ \\t]*\\n([\\s\\S]*?)\\n[ \\t]*```");
  std::vector<Block> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    const auto& m = *it;
    out.push_back(Block{static_cast<std::size_t>(m.position(0)),
                        static_cast<std::size_t>(m.position(0) + m.length(0)), m[1].str(),
                        m[2].str()});
  }
  return out;
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

json plan_event(const std::string& body) {
  auto steps = json::parse(body, nullptr, false);
  if (!steps.is_array()) return nullptr;
  json out = json::array();
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const json& s = steps[i];
    std::string description = s.is_string()   ? s.get<std::string>()
                              : s.is_object() ? s.value("description", s.dump())
                                              : s.dump();
    std::string status = s.is_object() ? s.value("status", std::string("pending")) : "pending";
    out.push_back({{"index", i}, {"description", description}, {"status", status}});
  }
  return {{"type", "plan"}, {"steps", out}, {"status", "proposed"}};
}

core::Result<std::filesystem::path> choose_root(const IdeService::Impl& self,
                                                const std::string& requested) {
  if (self.options.project_roots.empty()) {
    return core::Error(Errc::permission_denied, "project_root_not_allowed",
                       "IDE_PROJECT_ROOTS is not set: the IDE provider allows no project root");
  }
  return resolve_project_root(self.options.project_roots, requested);
}

net::Response root_error(const core::Error& e) {
  if (e.code == Errc::permission_denied) {
    return net::Response::json(403, {{"error", "project_root_not_allowed"}, {"detail", e.detail}});
  }
  return net::Response::json(400, {{"error", "Not a valid directory"}, {"detail", e.detail}});
}

class IdeChatSession final : public net::StreamBody {
 public:
  IdeChatSession(ImplPtr self, std::vector<model::Message> history, std::string model,
                 std::filesystem::path root)
      : self_(std::move(self)),
        history_(std::move(history)),
        model_(std::move(model)),
        tools_(std::make_shared<const ProjectTools>(root, self_->sandbox.get())),
        session_id_(random_hex(16)) {}

  asio::awaitable<void> run(net::BodyWriter* out) override {
    out_ = out;
    executor_ = co_await asio::this_coro::executor;
    auto hello = send({{"type", "session"}, {"sessionId", session_id_}});
    if (!co_await std::move(hello)) co_return;
    auto loop = agent_loop();
    co_await std::move(loop);
    forget_approvals();
    if (!gone_) {
      auto done = send({{"type", "done"}});
      co_await std::move(done);
    }
  }

 private:
  asio::awaitable<bool> send(json event) {
    if (gone_) co_return false;
    auto write = out_->write("data: " + event.dump() + "\n\n");
    if (!co_await std::move(write)) gone_ = true;
    co_return !gone_;
  }

  asio::awaitable<void> agent_loop() {
    for (int step = 0; step < self_->options.max_agent_steps; ++step) {
      if (self_->stopping.load() || gone_) co_return;
      model::ChatRequest chat;
      chat.model = model_;
      chat.messages = history_;
      auto open = self_->provider->chat(std::move(chat));
      auto stream = co_await std::move(open);
      core::Result<std::string> reply = stream ? core::Result<std::string>(std::string())
                                               : core::Result<std::string>(stream.error());
      if (stream) {
        auto all = model::collect(std::move(*stream));
        reply = co_await std::move(all);
      }
      if (!reply) {
        auto e = send(
            {{"type", "text"}, {"content", "Error contacting model: " + reply.error().detail}});
        co_await std::move(e);
        co_return;
      }
      const std::string content = model::strip_think(*reply);
      if (trim(content).empty()) co_return;
      auto turn = run_turn(content);
      const bool tool_called = co_await std::move(turn);
      if (!tool_called || gone_) co_return;
    }
    auto e =
        send({{"type", "text"},
              {"content", "\n(stopped after " + std::to_string(self_->options.max_agent_steps) +
                              " steps; IDE_AGENT_MAX_STEPS sets the limit)"}});
    co_await std::move(e);
  }

  // One model answer: its text, plans and tool calls, in order. True when a tool ran (or was
  // refused), so the model gets another turn with the results.
  asio::awaitable<bool> run_turn(const std::string& content) {
    const auto blocks = find_blocks(content);
    if (blocks.empty()) {
      auto e = send({{"type", "text"}, {"content", content}});
      co_await std::move(e);
      history_.push_back(message("assistant", content));
      co_return false;
    }
    bool tool_called = false;
    std::vector<std::string> records;
    std::size_t pos = 0;
    for (const auto& b : blocks) {
      const std::string before = trim(std::string_view(content).substr(pos, b.start - pos));
      pos = b.end;
      if (!before.empty()) {
        auto e = send({{"type", "text"}, {"content", before}});
        co_await std::move(e);
      }
      if (b.kind == "plan") {
        json plan = plan_event(b.body);
        auto e = send(plan.is_null() ? json{{"type", "text"}, {"content", b.body}} : plan);
        co_await std::move(e);
        continue;
      }
      auto call = json::parse(b.body, nullptr, false);
      if (!call.is_object() || !call.contains("tool") || !call["tool"].is_string()) {
        auto e = send({{"type", "text"}, {"content", "(malformed tool call: " + b.body + ")"}});
        co_await std::move(e);
        records.push_back("[Malformed tool call]: expected {\"tool\": name, \"args\": {...}}");
        continue;
      }
      tool_called = true;
      auto one = tool_call(call["tool"].get<std::string>(), call.value("args", json::object()));
      records.push_back(co_await std::move(one));
      if (gone_) co_return false;
    }
    const std::string after = trim(std::string_view(content).substr(pos));
    if (!after.empty()) {
      auto e = send({{"type", "text"}, {"content", after}});
      co_await std::move(e);
    }
    history_.push_back(message("assistant", content));
    if (!records.empty()) {
      std::string joined;
      for (const auto& r : records) joined += (joined.empty() ? "" : "\n\n") + r;
      history_.push_back(message("user", joined));
    }
    co_return tool_called;
  }

  asio::awaitable<std::string> tool_call(std::string tool, json args) {
    const std::string id = "tc_" + random_hex(16);
    const bool needs_approval = !is_read_tool(tool);
    auto e = send({{"type", "tool_call"},
                   {"id", id},
                   {"tool", tool},
                   {"args", args},
                   {"requires_approval", needs_approval}});
    if (!co_await std::move(e)) co_return std::string();
    if (needs_approval) {
      auto wait = wait_for_approval(id);
      const bool approved = co_await std::move(wait);
      if (!approved) {
        self_->approvals_denied.inc();
        const std::string msg = "Tool call " + tool + " was rejected by the user.";
        auto r = send({{"type", "tool_result"}, {"id", id}, {"error", msg}});
        co_await std::move(r);
        co_return "[Tool " + tool + " rejected]: " + msg;
      }
    }
    self_->tool_calls.inc();
    // The tool keeps its own reference: a stopping server may drop this session while it runs.
    auto run = run_blocking(self_->blocking,
                            [tools = tools_, tool, args] { return tools->run(tool, args); });
    ToolResult result = co_await std::move(run);
    std::string record;
    if (result.shell) {
      auto r = send({{"type", "shell_output"},
                     {"id", id},
                     {"stdout", result.shell->stdout_text},
                     {"stderr", result.shell->stderr_text},
                     {"exit_code", result.shell->exit_code}});
      co_await std::move(r);
    } else {
      json event = {{"type", "tool_result"}, {"id", id}};
      if (result.result) event["result"] = *result.result;
      if (result.error) event["error"] = *result.error;
      auto r = send(std::move(event));
      co_await std::move(r);
    }
    if (result.error) {
      record = "[Error]: " + *result.error;
    } else if (result.result && !result.result->empty()) {
      record = *result.result;
    } else {
      record = "(no output)";
    }
    co_return "[Tool " + tool + " result]: " + record;
  }

  // Waits until the call is approved or rejected, the approval times out, the client goes away
  // or the service stops. Keep-alive comments go out meanwhile (a failed write means the client
  // is gone).
  asio::awaitable<bool> wait_for_approval(std::string id) {
    auto timer = std::make_shared<asio::steady_timer>(executor_);
    auto decision = std::make_shared<std::atomic<int>>(0);
    {
      std::lock_guard lock(self_->mu);
      if (self_->stopping.load()) co_return false;
      self_->approvals[id] = PendingApproval{session_id_, executor_, timer, decision};
      mine_.push_back(id);
    }
    const auto deadline = Clock::now() + self_->options.approval_timeout;
    for (;;) {
      if (decision->load() != 0) break;
      const auto now = Clock::now();
      if (now >= deadline) break;
      timer->expires_after(std::min<Clock::duration>(deadline - now, kKeepAlive));
      boost::system::error_code ec;
      co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (decision->load() != 0) break;
      if (!ec && Clock::now() < deadline) {
        auto ping = out_->write(net::sse_comment("waiting for approval"));
        if (!co_await std::move(ping)) {
          gone_ = true;
          break;
        }
      }
    }
    {
      std::lock_guard lock(self_->mu);
      self_->approvals.erase(id);
    }
    co_return decision->load() == 1;
  }

  void forget_approvals() {
    std::lock_guard lock(self_->mu);
    for (const auto& id : mine_) self_->approvals.erase(id);
    mine_.clear();
  }

  const ImplPtr self_;
  std::vector<model::Message> history_;
  const std::string model_;
  const std::shared_ptr<const ProjectTools> tools_;
  const std::string session_id_;
  net::BodyWriter* out_ = nullptr;
  asio::any_io_executor executor_;
  std::vector<std::string> mine_;  // call ids this session registered
  bool gone_ = false;
};

asio::awaitable<net::Response> handle_ide_chat(ImplPtr self, net::Request request) {
  auto body = net::parse_json_body(request);
  if (!body) co_return net::Response::error(body.error());
  const json& j = *body;
  auto messages = j.find("messages");
  if (messages == j.end() || !messages->is_array() || messages->empty()) {
    co_return net::Response::error(400, "invalid_request",
                                   "messages: a non-empty array is required");
  }
  std::vector<model::Message> history = {message("system", kAgentPrompt)};
  for (const auto& m : *messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string()) {
      co_return net::Response::error(400, "invalid_request",
                                     "messages: each message needs string role and content");
    }
    const std::string role = m["role"].get<std::string>();
    if (role != "user" && role != "assistant" && role != "system") {
      co_return net::Response::error(400, "invalid_request",
                                     "messages: role must be user, assistant or system");
    }
    history.push_back(message(role, m["content"].get<std::string>()));
  }
  std::string requested;
  if (auto r = j.find("projectRoot"); r != j.end() && r->is_string())
    requested = r->get<std::string>();
  if (requested.empty()) {
    std::lock_guard lock(self->mu);
    if (self->active_root) requested = self->active_root->string();
  }
  if (requested.empty()) {
    co_return net::Response::json(
        400, {{"error",
               "No project root set. POST /v1/ide/project first or include projectRoot in body."}});
  }
  auto root = choose_root(*self, requested);
  if (!root) co_return root_error(root.error());
  std::string model;
  if (auto m = j.find("model"); m != j.end() && m->is_string()) model = m->get<std::string>();
  co_return net::Response::sse(std::make_shared<IdeChatSession>(
      self, std::move(history), std::move(model), std::move(*root)));
}

net::Response handle_set_project(ImplPtr self, const net::Request& request) {
  auto body = net::parse_json_body(request);
  if (!body) return net::Response::error(body.error());
  auto r = body->find("projectRoot");
  if (r == body->end() || !r->is_string() || r->get<std::string>().empty()) {
    return net::Response::json(400, {{"error", "projectRoot: a non-empty string is required"}});
  }
  auto root = choose_root(*self, r->get<std::string>());
  if (!root) return root_error(root.error());
  {
    std::lock_guard lock(self->mu);
    self->active_root = *root;
  }
  return net::Response::json(200, {{"ok", true}, {"projectRoot", root->string()}});
}

net::Response handle_approval(ImplPtr self, const net::Request& request) {
  auto body = net::parse_json_body(request);
  if (!body) return net::Response::error(body.error());
  const json& j = *body;
  if (!j.contains("id") || !j["id"].is_string() || j["id"].get<std::string>().empty() ||
      !j.contains("approved") || !j["approved"].is_boolean()) {
    return net::Response::error(400, "invalid_request",
                                "id (string) and approved (boolean) are required");
  }
  std::string session;
  if (auto s = j.find("sessionId"); s != j.end() && s->is_string()) session = s->get<std::string>();
  if (session.empty()) {
    if (auto h = request.header("x-edgecoder-session")) session = std::string(*h);
  }
  std::lock_guard lock(self->mu);
  auto it = self->approvals.find(j["id"].get<std::string>());
  if (it == self->approvals.end()) {
    return net::Response::json(404, {{"error", "No pending approval with that id"}});
  }
  if (session.empty() || !core::crypto::constant_time_equal(session, it->second.session_id)) {
    core::log::warn("ide", "approval_refused",
                    {{"reason", session.empty() ? "no session" : "other session"}});
    return net::Response::json(
        403,
        {{"error", "approval_denied"},
         {"detail", "only the session that asked can answer this tool call: send its sessionId"}});
  }
  it->second.decision->store(j["approved"].get<bool>() ? 1 : 2);
  asio::post(it->second.executor, [timer = it->second.timer] { timer->cancel(); });
  self->approvals.erase(it);
  return net::Response::json(200, {{"ok", true}});
}

}  // namespace

void add_agent_routes(ImplPtr self, net::Router& router) {
  router.add_sync("POST", "/v1/ide/project",
                  [self](const net::Request& r) { return handle_set_project(self, r); });
  router.add_sync("GET", "/v1/ide/project", [self](const net::Request&) {
    std::lock_guard lock(self->mu);
    return net::Response::json(
        200,
        {{"projectRoot", self->active_root ? json(self->active_root->string()) : json(nullptr)}});
  });
  router.add_sync("POST", "/v1/ide/tool-approval",
                  [self](const net::Request& r) { return handle_approval(self, r); });
  router.add("POST", "/v1/ide/chat",
             [self](net::Request r) { return handle_ide_chat(self, std::move(r)); });
}

}  // namespace edgecoder::ide::detail

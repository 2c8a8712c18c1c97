// The mesh route: a request becomes a one-subtask coordinator task (POST /tasks with the mesh
// token); its progress ("queued", "running on agent …") and then its output come back as text
// pieces of a TokenStream, so every chat route can stream them as chunks.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>

#include "core/log.h"
#include "ide/detail.h"
#include "net/client.h"

namespace edgecoder::ide::detail {

using core::Errc;

namespace {

struct MeshCall {
  asio::any_io_executor executor;  // the client's (the request's event loop)
  std::shared_ptr<net::HttpClient> client;
  std::string base;
  std::string token;

  net::ClientRequest request(std::string method, const std::string& path,
                             std::string body = {}) const {
    net::ClientRequest r;
    r.method = std::move(method);
    r.url = base + path;
    r.headers.emplace_back("x-mesh-token", token);
    if (!body.empty()) {
      r.headers.emplace_back("content-type", "application/json");
      r.body = std::move(body);
    }
    return r;
  }
};

core::Error mesh_error(const net::ClientResponse& r, std::string_view what) {
  auto body = json::parse(r.body, nullptr, false);
  std::string detail = std::string(what) + ": coordinator answered " + std::to_string(r.status);
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    detail += " " + body["error"].get<std::string>();
    if (body.contains("detail") && body["detail"].is_string()) {
      detail += " (" + body["detail"].get<std::string>() + ")";
    }
  }
  if (r.status == 401 || r.status == 403) {
    detail += "; check MESH_AUTH_TOKEN";
  }
  return model::model_unavailable(detail);
}

asio::awaitable<void> cancel_task(MeshCall call, std::string task_id) {
  auto req = call.client->request(call.request("POST", "/tasks/" + task_id + "/cancel", "{}"));
  auto r = co_await std::move(req);
  if (!r || r->status >= 300) {
    core::log::warn("ide", "mesh_cancel_failed", {{"task", task_id}});
  }
}

// What a poll of GET /tasks/:id found.
struct TaskView {
  std::string status;  // pending, running, completed, failed, cancelled
  std::string holder;
  bool has_result = false;
  bool ok = false;
  std::string output;
  std::string error;
  std::string last_error;
};

TaskView view_of(const json& j) {
  TaskView v;
  v.status = j.value("status", std::string());
  if (j.contains("subtasks") && j["subtasks"].is_array()) {
    for (const auto& s : j["subtasks"]) {
      if (v.holder.empty()) v.holder = s.value("holder", std::string());
      if (v.last_error.empty()) v.last_error = s.value("lastError", std::string());
      if (s.contains("result") && s["result"].is_object()) {
        const json& r = s["result"];
        v.has_result = true;
        v.ok = r.value("ok", false);
        if (!v.output.empty()) v.output += "\n";
        v.output += r.value("output", std::string());
        const std::string e = r.value("error", std::string());
        if (!e.empty()) v.error += (v.error.empty() ? "" : "\n") + e;
      }
    }
  }
  return v;
}

asio::awaitable<core::Result<std::string>> submit(const MeshCall& call, std::string input,
                                                  std::string model, std::string language) {
  json subtask = {{"input", input}, {"language", language}};
  json body = {{"taskId", "ide-" + random_hex(8)},
               {"prompt", input},
               {"language", language},
               {"projectId", "ide-requests"},
               {"submitterAccountId", "ide-provider"},
               {"resourceClass", "cpu"},
               {"priority", 60},
               {"subtasks", json::array({subtask})}};
  if (!model.empty()) {
    body["requestedModel"] = model;
    body["subtasks"][0]["requestedModel"] = model;
  }
  auto req = call.client->request(call.request("POST", "/tasks", body.dump()));
  auto r = co_await std::move(req);
  if (!r)
    co_return model::model_unavailable("mesh: coordinator at " + call.base +
                                       " unreachable: " + r.error().detail);
  if (r->status != 200 && r->status != 201) co_return mesh_error(*r, "mesh: POST /tasks");
  auto out = json::parse(r->body, nullptr, false);
  if (!out.is_object() || !out.contains("taskId") || !out["taskId"].is_string()) {
    co_return model::model_unavailable("mesh: POST /tasks answered without a taskId");
  }
  co_return out["taskId"].get<std::string>();
}

asio::awaitable<core::Result<TaskView>> poll(const MeshCall& call, const std::string& task_id) {
  auto req = call.client->request(call.request("GET", "/tasks/" + task_id));
  auto r = co_await std::move(req);
  if (!r) co_return model::model_unavailable("mesh: coordinator unreachable: " + r.error().detail);
  if (r->status != 200) co_return mesh_error(*r, "mesh: GET /tasks/" + task_id);
  auto j = json::parse(r->body, nullptr, false);
  if (!j.is_object()) co_return model::model_unavailable("mesh: task status is not JSON");
  co_return view_of(j);
}

asio::awaitable<void> pause(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

MeshCall make_call(const IdeService::Impl& self, const asio::any_io_executor& executor) {
  net::ClientOptions options;
  options.connect_timeout = std::chrono::seconds(5);
  options.first_byte_timeout = std::chrono::seconds(15);
  options.total_timeout = std::chrono::seconds(30);
  return MeshCall{executor, std::make_shared<net::HttpClient>(executor, options),
                  self.options.coordinator_url, self.options.mesh_token};
}

class MeshStream final : public model::TokenStream {
 public:
  MeshStream(ImplPtr self, MeshCall call, std::string task_id, std::string model)
      : self_(std::move(self)),
        call_(std::move(call)),
        task_id_(std::move(task_id)),
        deadline_(Clock::now() + self_->options.mesh_timeout) {
    stats_.model = std::move(model);
  }

  ~MeshStream() override {
    if (finished_) return;
    // The client went away (or the request was dropped): the task is not wanted any more.
    asio::co_spawn(call_.executor, cancel_task(call_, task_id_), asio::detached);
  }

  asio::awaitable<core::Result<std::optional<std::vector<std::string>>>> next() override {
    using Out = std::optional<std::vector<std::string>>;
    if (finished_) co_return Out();
    if (!announced_) {
      announced_ = true;
      co_return Out(std::vector<std::string>{"[edgecoder mesh] task " + task_id_ + " queued\n"});
    }
    for (;;) {
      if (Clock::now() > deadline_) {
        finished_ = true;
        asio::co_spawn(call_.executor, cancel_task(call_, task_id_), asio::detached);
        co_return model::model_timeout("mesh: task " + task_id_ +
                                       " did not finish in time (IDE_MESH_TIMEOUT_MS)");
      }
      auto call = poll(call_, task_id_);
      auto view = co_await std::move(call);
      if (!view) {
        finished_ = true;
        co_return view.error();
      }
      if (view->has_result && (view->status == "completed" || view->status == "failed")) {
        finished_ = true;
        stats_.done_reason = "stop";
        std::string text = view->output;
        if (!view->ok) {
          text += (text.empty() ? "" : "\n") + std::string("[edgecoder mesh] the run failed") +
                  (view->error.empty() ? "" : ": " + view->error);
        }
        if (text.empty()) co_return Out();
        co_return Out(std::vector<std::string>{text});
      }
      if (view->status == "cancelled" || view->status == "failed") {
        finished_ = true;
        co_return model::model_unavailable(
            "mesh: task " + task_id_ + " " + view->status +
            (view->last_error.empty() ? "" : ": " + view->last_error));
      }
      if (!view->holder.empty() && view->holder != holder_) {
        holder_ = view->holder;
        last_news_ = Clock::now();
        co_return Out(
            std::vector<std::string>{"[edgecoder mesh] running on agent " + holder_ + "\n"});
      }
      if (Clock::now() - last_news_ >= self_->options.mesh_progress_interval) {
        last_news_ = Clock::now();
        co_return Out(std::vector<std::string>{"[edgecoder mesh] task " + task_id_ + " " +
                                               view->status + "\n"});
      }
      auto wait = pause(self_->options.mesh_poll);
      co_await std::move(wait);
    }
  }

  const model::StreamStats& stats() const override { return stats_; }

 private:
  const ImplPtr self_;
  const MeshCall call_;
  const std::string task_id_;
  const Clock::time_point deadline_;
  model::StreamStats stats_;
  std::string holder_;
  Clock::time_point last_news_ = Clock::now();  // the last progress line sent
  bool announced_ = false;
  bool finished_ = false;
};

}  // namespace

asio::awaitable<core::Result<std::unique_ptr<model::TokenStream>>> open_mesh(ImplPtr self,
                                                                             std::string input,
                                                                             std::string model,
                                                                             std::string language) {
  MeshCall call = make_call(*self, co_await asio::this_coro::executor);
  auto sub = submit(call, input, model, language);
  auto task_id = co_await std::move(sub);
  if (!task_id) co_return task_id.error();
  core::log::info("ide", "mesh_task_submitted", {{"task", *task_id}});
  std::unique_ptr<model::TokenStream> stream = std::make_unique<MeshStream>(
      self, std::move(call), std::move(*task_id), model.empty() ? self->options.mesh_model : model);
  co_return stream;
}

asio::awaitable<core::Result<MeshOutcome>> run_on_mesh(ImplPtr self, std::string input,
                                                       std::string language) {
  if (!self->mesh_configured()) {
    co_return model::model_unavailable(
        "the mesh route is off: set COORDINATOR_URL and MESH_AUTH_TOKEN");
  }
  MeshCall call = make_call(*self, co_await asio::this_coro::executor);
  auto sub = submit(call, input, "", language);
  auto task_id = co_await std::move(sub);
  if (!task_id) co_return task_id.error();
  const auto deadline = Clock::now() + self->options.mesh_timeout;
  for (;;) {
    auto p = poll(call, *task_id);
    auto view = co_await std::move(p);
    if (!view) co_return view.error();
    if (view->has_result && (view->status == "completed" || view->status == "failed")) {
      co_return MeshOutcome{*task_id, view->ok, view->output, view->error};
    }
    if (view->status == "cancelled" || view->status == "failed") {
      co_return model::model_unavailable("mesh: task " + *task_id + " " + view->status);
    }
    if (Clock::now() > deadline) {
      auto c = cancel_task(call, *task_id);
      co_await std::move(c);
      co_return model::model_timeout("mesh: task " + *task_id + " did not finish in time");
    }
    auto wait = pause(self->options.mesh_poll);
    co_await std::move(wait);
  }
}

}  // namespace edgecoder::ide::detail

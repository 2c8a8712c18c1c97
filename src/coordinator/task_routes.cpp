// Tasks: POST /submit (decomposed by the inference service), POST /tasks (subtasks given by the
// client), GET /tasks/:taskId, GET|POST /tasks/:taskId/subtasks/:subtaskId/result,
// GET /tasks/:taskId/events (SSE, Last-Event-ID), POST /tasks/:taskId/cancel.
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <map>
#include <set>

#include "api/coordinator.h"
#include "api/json_reader.h"
#include "coordinator/service.h"
#include "core/log.h"

namespace edgecoder::coordinator {

namespace detail {

// A subtask before ids are resolved: its wire form plus its dependency references.
struct TaskDraft {
  store::NewSubtask subtask;
  api::WireSubtask wire;
  std::vector<api::DependencyRef> refs;
};

// Resolves dependsOn references (ids of subtasks in the same request, or 0-based positions)
// into subtask ids and checks the graph for cycles. `strict`: unknown references and cycles are
// errors; otherwise they are dropped with a log line (decompositions from a model).
core::Result<void> resolve_dependencies(std::vector<TaskDraft>& drafts, bool strict) {
  std::map<std::string, std::size_t> by_id;
  for (std::size_t i = 0; i < drafts.size(); ++i) by_id[drafts[i].subtask.id] = i;
  std::vector<std::vector<std::size_t>> edges(drafts.size());
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    std::set<std::size_t> seen;
    for (const auto& ref : drafts[i].refs) {
      std::optional<std::size_t> target;
      if (const auto* idx = std::get_if<std::int64_t>(&ref)) {
        if (*idx >= 0 && static_cast<std::size_t>(*idx) < drafts.size()) {
          target = static_cast<std::size_t>(*idx);
        }
      } else if (auto it = by_id.find(std::get<std::string>(ref)); it != by_id.end()) {
        target = it->second;
      }
      if (!target || *target == i) {
        if (strict) {
          return api::invalid_request("subtasks[" + std::to_string(i) +
                                      "].dependsOn: names no other subtask of this task");
        }
        continue;
      }
      if (seen.insert(*target).second) edges[i].push_back(*target);
    }
  }
  // Cycle check (iterative DFS, colours: 0 new, 1 on stack, 2 done).
  std::vector<int> colour(drafts.size(), 0);
  std::set<std::size_t> cyclic;
  for (std::size_t root = 0; root < drafts.size(); ++root) {
    if (colour[root] != 0) continue;
    std::vector<std::pair<std::size_t, std::size_t>> stack = {{root, 0}};
    colour[root] = 1;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < edges[node].size()) {
        std::size_t to = edges[node][next++];
        if (colour[to] == 1) {
          for (const auto& frame : stack) cyclic.insert(frame.first);
        } else if (colour[to] == 0) {
          colour[to] = 1;
          stack.emplace_back(to, 0);
        }
      } else {
        colour[node] = 2;
        stack.pop_back();
      }
    }
  }
  if (!cyclic.empty()) {
    if (strict) return api::invalid_request("subtasks: dependsOn forms a cycle");
    core::log::warn("coordinator", "dependency_cycle_dropped", {{"subtasks", cyclic.size()}});
    for (auto i : cyclic) edges[i].clear();
  }
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    for (auto t : edges[i]) {
      drafts[i].subtask.depends_on.push_back(drafts[t].subtask.id);
      drafts[i].wire.depends_on.push_back(drafts[t].subtask.id);
    }
  }
  return {};
}

nlohmann::json task_payload(const api::TaskOptions& o, const std::string& prompt,
                            std::string_view source) {
  nlohmann::json j = {{"source", source},
                      {"language", o.language},
                      {"submitterAccountId", o.submitter_account_id},
                      {"projectId", o.project_id},
                      {"resourceClass", o.resource_class},
                      {"priority", o.priority},
                      {"sandboxRequired", o.sandbox_required}};
  if (!prompt.empty()) j["prompt"] = prompt;
  if (!o.snapshot_ref.empty()) j["snapshotRef"] = o.snapshot_ref;
  if (!o.tenant_id.empty()) j["tenantId"] = o.tenant_id;
  if (!o.requested_model.empty()) j["requestedModel"] = o.requested_model;
  return j;
}

TaskDraft make_draft(const api::TaskOptions& o, const std::string& task_id, std::string id,
                     std::string input, std::string language, std::string kind,
                     std::int64_t timeout_ms, std::string requested_model, int index) {
  TaskDraft d;
  d.subtask.id = std::move(id);
  d.subtask.kind = std::move(kind);
  d.subtask.language = language.empty() ? o.language : std::move(language);
  d.subtask.input = std::move(input);
  d.subtask.requested_model = std::move(requested_model);
  d.subtask.priority = o.priority;
  d.subtask.timeout_ms = timeout_ms;
  d.subtask.max_attempts = o.max_attempts;
  d.subtask.requires_sandbox = o.sandbox_required || !o.tenant_id.empty();
  d.wire.id = d.subtask.id;
  d.wire.task_id = task_id;
  d.wire.kind = d.subtask.kind;
  d.wire.language = d.subtask.language;
  d.wire.input = d.subtask.input;
  d.wire.timeout_ms = timeout_ms;
  d.wire.snapshot_ref = o.snapshot_ref;
  d.wire.project_meta = api::ProjectMeta{o.project_id, o.tenant_id, o.resource_class, o.priority};
  d.wire.requested_model = d.subtask.requested_model;
  d.wire.subtask_index = index;
  return d;
}

// CREDITS_ENFORCED: what holding a submission's cost on its submitter's account decided.
struct CreditHold {
  std::optional<net::Response> refusal;  // 403 contribute_first_required, 402 insufficient_credits
  bool reserved = false;                 // this request made the hold (a repeat did not)
};

asio::awaitable<CreditHold> hold_credits(ServicePtr svc, std::string account, std::string task_id) {
  CreditHold out;
  if (!svc->options.credits_enforced) co_return out;
  if (account.empty() || account == "anonymous") {
    out.refusal =
        error_response(403, "contribute_first_required",
                       "this coordinator charges credits for tasks (CREDITS_ENFORCED): name the "
                       "submitterAccountId whose account pays");
    co_return out;
  }
  store::LedgerEntry hold;
  hold.tx_id = "hold:" + task_id;
  hold.account_id = account;
  hold.kind = "held";
  hold.amount_millicredits = -svc->options.task_cost_millicredits;
  hold.reason = "held for the task until it ends";
  hold.task_id = task_id;
  store::Store* st = svc->store.get();
  auto call = st->run([st, hold] { return st->reserve_credits(hold); });
  auto reserved = co_await std::move(call);
  if (!reserved) {
    out.refusal = net::Response::error(reserved.error());
    co_return out;
  }
  const double required = static_cast<double>(svc->options.task_cost_millicredits) / 1000.0;
  switch (*reserved) {
    case store::ReserveOutcome::reserved:
      out.reserved = true;
      break;
    case store::ReserveOutcome::duplicate:
      break;
    case store::ReserveOutcome::no_history:
      out.refusal = error_response(
          403, "contribute_first_required",
          "account " + account +
              " has no credits yet: contribute compute first (run an agent whose account it is) "
              "or ask an operator to grant some",
          {{"requiredCredits", required}});
      break;
    case store::ReserveOutcome::insufficient:
      out.refusal = error_response(402, "insufficient_credits",
                                   "account " + account + " cannot cover this task",
                                   {{"requiredCredits", required}});
      break;
  }
  co_return out;
}

// Gives back a hold this request made for a task it then failed to create.
asio::awaitable<void> refund_hold(ServicePtr svc, std::string task_id) {
  store::Store* st = svc->store.get();
  const std::int64_t now = svc->now();
  auto call = st->run([st, task_id, now] { return st->settle_credit_holds(now + 1, 1, task_id); });
  auto settled = co_await std::move(call);
  if (!settled) {
    core::log::warn("coordinator", "credit_refund_failed",
                    {{"task", task_id}, {"detail", settled.error().detail}});
  }
}

asio::awaitable<net::Response> create_from_drafts(ServicePtr svc, api::TaskOptions o,
                                                  std::string task_id, std::string prompt,
                                                  std::string source, std::vector<TaskDraft> drafts,
                                                  bool refund_on_failure) {
  store::NewTask task;
  task.id = task_id;
  task.project_id = o.project_id;
  task.submitter = o.submitter_account_id;
  task.priority = o.priority;
  task.payload_json = task_payload(o, prompt, source).dump();
  for (auto& d : drafts) {
    d.subtask.payload_json = api::to_json(d.wire).dump();
    task.subtasks.push_back(std::move(d.subtask));
  }
  store::Store* st = svc->store.get();
  auto call = st->run([st, task] { return st->create_task(task); });
  auto created = co_await std::move(call);
  if (!created && refund_on_failure) {
    auto refund = refund_hold(svc, task_id);
    co_await std::move(refund);
  }
  if (!created) {
    if (created.error().code == core::Errc::conflict) {
      co_return error_response(409, created.error().wire(), created.error().detail);
    }
    co_return net::Response::error(created.error());
  }
  if (created->created) {
    svc->metrics.tasks_created->inc();
    core::log::info("coordinator", "task_created",
                    {{"task", task_id},
                     {"subtasks", created->subtask_ids.size()},
                     {"project", o.project_id},
                     {"source", source}});
  }
  co_return net::Response::json(
      created->created ? 201 : 200,
      {{"taskId", task_id}, {"subtasks", created->subtask_ids}, {"created", created->created}});
}

asio::awaitable<net::Response> task_post_tasks(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  auto parsed = api::parse_tasks(*body);
  if (!parsed) co_return net::Response::error(parsed.error());
  api::TasksRequest q = std::move(*parsed);
  std::string task_id = q.options.task_id.empty() ? new_uuid() : q.options.task_id;
  std::vector<TaskDraft> drafts;
  std::set<std::string> ids;
  for (std::size_t i = 0; i < q.subtasks.size(); ++i) {
    auto& s = q.subtasks[i];
    std::string id = s.id.empty() ? new_uuid() : s.id;
    if (!ids.insert(id).second) {
      co_return net::Response::error(
          api::invalid_request("subtasks[" + std::to_string(i) + "].id: duplicate id"));
    }
    drafts.push_back(make_draft(q.options, task_id, id, s.input, s.language, s.kind, s.timeout_ms,
                                s.requested_model, static_cast<int>(i)));
    drafts.back().refs = s.depends_on;
  }
  if (auto r = resolve_dependencies(drafts, true); !r) co_return net::Response::error(r.error());
  auto hold = hold_credits(svc, q.options.submitter_account_id, task_id);
  CreditHold held = co_await std::move(hold);
  if (held.refusal) co_return std::move(*held.refusal);
  auto call = create_from_drafts(svc, q.options, task_id, q.prompt, "tasks", std::move(drafts),
                                 held.reserved);
  co_return co_await std::move(call);
}

asio::awaitable<net::Response> task_submit(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  auto parsed = api::parse_submit(*body);
  if (!parsed) co_return net::Response::error(parsed.error());
  api::SubmitRequest q = std::move(*parsed);
  std::string task_id = q.options.task_id.empty() ? new_uuid() : q.options.task_id;
  // Held before decomposing, so an account that cannot pay costs no inference; given back when
  // the task is not created.
  auto hold = hold_credits(svc, q.options.submitter_account_id, task_id);
  CreditHold held = co_await std::move(hold);
  if (held.refusal) co_return std::move(*held.refusal);

  api::DecomposeRequest dq;
  dq.task_id = task_id;
  dq.prompt = q.prompt;
  dq.snapshot_ref = q.options.snapshot_ref;
  dq.language = q.options.language;
  net::ClientRequest creq = inference_request(*svc, "/decompose", api::to_json(dq).dump(),
                                              svc->options.decompose_timeout_ms);
  auto call = svc->http->request(std::move(creq));
  auto resp = co_await std::move(call);
  std::string failure;
  std::vector<api::DecomposedSubtask> decomposed;
  if (!resp) {
    failure = "inference service at " + svc->options.inference_url +
              " is unreachable: " + resp.error().detail;
  } else if (resp->status < 200 || resp->status >= 300) {
    failure = "inference service at " + svc->options.inference_url + " answered HTTP " +
              std::to_string(resp->status) + " to /decompose";
  } else {
    auto j = nlohmann::json::parse(resp->body, nullptr, false);
    auto subs = api::parse_decompose_response(j);
    if (!subs) {
      failure = "inference service returned an unusable decomposition: " + subs.error().detail;
    } else {
      decomposed = std::move(*subs);
    }
  }
  if (!failure.empty()) {
    if (held.reserved) {
      auto refund = refund_hold(svc, task_id);
      co_await std::move(refund);
    }
    svc->metrics.decompose_failures->inc();
    core::log::warn("coordinator", "decompose_failed", {{"task", task_id}, {"detail", failure}});
    co_return error_response(502, "inference_service_unavailable", failure);
  }
  std::vector<TaskDraft> drafts;
  for (std::size_t i = 0; i < decomposed.size(); ++i) {
    auto& d = decomposed[i];
    drafts.push_back(make_draft(q.options, task_id, new_uuid(), d.input, d.language, d.kind,
                                d.timeout_ms, q.options.requested_model, static_cast<int>(i)));
    drafts.back().refs = d.depends_on;
  }
  if (auto r = resolve_dependencies(drafts, false); !r) {
    if (held.reserved) {
      auto refund = refund_hold(svc, task_id);
      co_await std::move(refund);
    }
    co_return net::Response::error(r.error());
  }
  auto create = create_from_drafts(svc, q.options, task_id, q.prompt, "submit", std::move(drafts),
                                   held.reserved);
  co_return co_await std::move(create);
}

std::string wire_task_status(const store::TaskStatus& t) {
  if (t.state == store::TaskState::cancelled) return "cancelled";
  bool any_failed = false, any_started = false;
  for (const auto& s : t.subtasks) {
    any_failed = any_failed || s.state == store::SubtaskState::failed;
    any_started = any_started ||
                  (s.state != store::SubtaskState::queued && s.state != store::SubtaskState::held);
  }
  if (t.state == store::TaskState::completed) return any_failed ? "failed" : "completed";
  return any_started ? "running" : "pending";
}

nlohmann::json result_json(const store::SubtaskResult& r) {
  nlohmann::json j = {{"ok", r.ok},
                      {"output", r.output},
                      {"durationMs", r.duration_ms},
                      {"agentId", r.agent_id},
                      {"attempt", r.attempt},
                      {"completedAtMs", r.created_at_ms},
                      {"escalated", r.escalated}};
  if (!r.error.empty()) j["error"] = r.error;
  if (r.iterations > 0) j["iterations"] = r.iterations;
  return j;
}

asio::awaitable<net::Response> task_get(ServicePtr svc, net::Request request) {
  const std::string task_id = request.param("taskId");
  store::Store* st = svc->store.get();
  auto get = st->run([st, task_id] { return st->get_task(task_id); });
  auto task = co_await std::move(get);
  if (!task) {
    if (task.error().code == core::Errc::not_found) {
      co_return error_response(404, "task_not_found", task.error().detail);
    }
    co_return net::Response::error(task.error());
  }
  auto list = st->run([st, task_id] { return st->list_results(task_id); });
  auto results = co_await std::move(list);
  if (!results) co_return net::Response::error(results.error());
  std::map<std::string, const store::SubtaskResult*> by_id;
  for (const auto& r : *results) by_id[r.subtask_id] = &r;

  std::map<std::string, int> counts;
  nlohmann::json subtasks = nlohmann::json::array();
  std::string output;
  for (const auto& s : task->subtasks) {
    std::string state(store::subtask_state_name(s.state));
    counts[state]++;
    nlohmann::json j = {{"id", s.id},
                        {"subtaskIndex", s.index},
                        {"state", state},
                        {"kind", s.kind},
                        {"language", s.language},
                        {"attempt", s.attempt},
                        {"maxAttempts", s.max_attempts},
                        {"timeoutMs", s.timeout_ms},
                        {"dependsOn", s.depends_on}};
    if (!s.holder.empty()) {
      j["holder"] = s.holder;
      j["leaseExpiresAtMs"] = s.lease_expires_at_ms;
    }
    if (!s.last_error.empty()) j["lastError"] = s.last_error;
    if (auto it = by_id.find(s.id); it != by_id.end()) {
      j["result"] = result_json(*it->second);
      if (!output.empty()) output += "\n";
      output += it->second->output;
    }
    subtasks.push_back(std::move(j));
  }
  auto payload = nlohmann::json::parse(task->payload_json, nullptr, false);
  nlohmann::json out = {{"taskId", task->id},
                        {"status", wire_task_status(*task)},
                        {"state", store::task_state_name(task->state)},
                        {"projectId", task->project_id},
                        {"submitterAccountId", task->submitter},
                        {"priority", task->priority},
                        {"createdAtMs", task->created_at_ms},
                        {"lastEventId", task->last_event_id},
                        {"counts", counts},
                        {"subtasks", subtasks},
                        {"output", output}};
  if (task->completed_at_ms > 0) out["completedAtMs"] = task->completed_at_ms;
  if (payload.is_object() && payload.contains("prompt")) out["prompt"] = payload["prompt"];
  co_return net::Response::json(200, out);
}

asio::awaitable<net::Response> task_subtask_result(ServicePtr svc, net::Request request) {
  const std::string task_id = request.param("taskId");
  const std::string subtask_id = request.param("subtaskId");
  store::Store* st = svc->store.get();
  auto get = st->run([st, subtask_id] { return st->get_result(subtask_id); });
  auto result = co_await std::move(get);
  if (result && result->task_id == task_id) {
    nlohmann::json j = result_json(*result);
    j["taskId"] = task_id;
    j["subtaskId"] = subtask_id;
    j["status"] = "completed";
    j["creditsSpent"] = 0;
    co_return net::Response::json(200, j);
  }
  if (!result && result.error().code != core::Errc::not_found) {
    co_return net::Response::error(result.error());
  }
  auto task_call = st->run([st, task_id] { return st->get_task(task_id); });
  auto task = co_await std::move(task_call);
  if (!task) {
    if (task.error().code == core::Errc::not_found) {
      co_return error_response(404, "task_not_found", task.error().detail);
    }
    co_return net::Response::error(task.error());
  }
  for (const auto& s : task->subtasks) {
    if (s.id != subtask_id) continue;
    nlohmann::json j = {{"taskId", task_id},
                        {"subtaskId", subtask_id},
                        {"status", store::subtask_state_name(s.state)},
                        {"attempt", s.attempt}};
    if (s.state == store::SubtaskState::failed || s.state == store::SubtaskState::cancelled) {
      // Terminal without a result: clients polling for `output` stop here.
      j["ok"] = false;
      j["output"] = "";
      j["error"] = s.last_error;
      j["creditsSpent"] = 0;
    } else {
      j["pending"] = true;
    }
    co_return net::Response::json(200, j);
  }
  co_return error_response(404, "subtask_not_found",
                           "task " + task_id + " has no subtask " + subtask_id);
}

asio::awaitable<net::Response> task_cancel(ServicePtr svc, net::Request request) {
  const std::string task_id = request.param("taskId");
  std::string reason = "cancelled by client";
  if (!request.body.empty()) {
    auto body = json_body(request);
    if (!body) co_return net::Response::error(body.error());
    if (body->is_object() && body->contains("reason") && (*body)["reason"].is_string()) {
      reason = (*body)["reason"].get<std::string>().substr(0, 500);
    }
  }
  store::Store* st = svc->store.get();
  auto call = st->run([st, task_id, reason] { return st->cancel_task(task_id, reason); });
  auto outcome = co_await std::move(call);
  if (!outcome) {
    if (outcome.error().code == core::Errc::not_found) {
      co_return error_response(404, "task_not_found", outcome.error().detail);
    }
    co_return net::Response::error(outcome.error());
  }
  if (!outcome->cancelled) {
    co_return error_response(409, "task_finished", "task " + task_id + " has already finished");
  }
  core::log::info("coordinator", "task_cancelled",
                  {{"task", task_id}, {"subtasks", outcome->subtasks}});
  co_return net::Response::json(200, {{"ok", true},
                                      {"taskId", task_id},
                                      {"status", "cancelled"},
                                      {"cancelledSubtasks", outcome->subtasks}});
}

// Streams the task's stored events from after `after_id`, polling the store (so events written
// by any coordinator sharing the store appear), until the task has finished.
class TaskEventStream final : public net::StreamBody {
 public:
  TaskEventStream(ServicePtr svc, std::string task_id, std::int64_t after_id)
      : svc_(std::move(svc)), task_id_(std::move(task_id)), after_id_(after_id) {}

  asio::awaitable<void> run(net::BodyWriter* out) override {
    auto executor = co_await asio::this_coro::executor;
    store::Store* st = svc_->store.get();
    const std::string task_id = task_id_;
    auto last_write = std::chrono::steady_clock::now();
    auto hello = out->write(net::sse_comment("task " + task_id));
    if (!co_await std::move(hello)) co_return;
    for (;;) {
      const std::int64_t after = after_id_;
      auto call = st->run([st, task_id, after] { return st->list_events(task_id, after, 200); });
      auto events = co_await std::move(call);
      if (!events) {
        std::string frame = net::sse_frame(
            nlohmann::json({{"error", "store_unavailable"}, {"detail", events.error().detail}})
                .dump(),
            "error");
        auto w = out->write(std::move(frame));
        co_await std::move(w);
        co_return;
      }
      bool finished = false;
      for (const auto& e : *events) {
        std::string frame = net::sse_frame(e.data_json, e.kind, std::to_string(e.id));
        auto w = out->write(std::move(frame));
        if (!co_await std::move(w)) co_return;
        after_id_ = e.id;
        finished = finished || e.kind == "task_completed" || e.kind == "task_cancelled";
        last_write = std::chrono::steady_clock::now();
      }
      if (finished) co_return;
      if (events->size() >= 200) continue;
      if (std::chrono::steady_clock::now() - last_write > std::chrono::seconds(15)) {
        auto w = out->write(net::sse_comment("keep-alive"));
        if (!co_await std::move(w)) co_return;
        last_write = std::chrono::steady_clock::now();
      }
      asio::steady_timer timer(executor, std::chrono::milliseconds(svc_->options.events_poll_ms));
      co_await timer.async_wait(asio::use_awaitable);
    }
  }

 private:
  ServicePtr svc_;
  std::string task_id_;
  std::int64_t after_id_;
};

asio::awaitable<net::Response> task_events(ServicePtr svc, net::Request request) {
  const std::string task_id = request.param("taskId");
  std::int64_t after = 0;
  std::string last;
  if (auto h = request.header("last-event-id")) {
    last = std::string(*h);
  } else if (auto q = request.query_param("lastEventId")) {
    last = *q;
  }
  if (!last.empty()) {
    auto [end, ec] = std::from_chars(last.data(), last.data() + last.size(), after);
    if (ec != std::errc() || end != last.data() + last.size() || after < 0) {
      co_return net::Response::error(
          api::invalid_request("Last-Event-ID: expected an event id number"));
    }
  }
  store::Store* st = svc->store.get();
  auto get = st->run([st, task_id] { return st->get_task(task_id); });
  auto task = co_await std::move(get);
  if (!task) {
    if (task.error().code == core::Errc::not_found) {
      co_return error_response(404, "task_not_found", task.error().detail);
    }
    co_return net::Response::error(task.error());
  }
  co_return net::Response::sse(std::make_shared<TaskEventStream>(svc, task_id, after));
}

}  // namespace detail

void add_task_routes(net::Router& router, ServicePtr svc) {
  router.add("POST", "/submit",
             [svc](net::Request r) { return detail::task_submit(svc, std::move(r)); });
  router.add("POST", "/tasks",
             [svc](net::Request r) { return detail::task_post_tasks(svc, std::move(r)); });
  router.add("GET", "/tasks/:taskId",
             [svc](net::Request r) { return detail::task_get(svc, std::move(r)); });
  for (const char* method : {"GET", "POST"}) {
    router.add(method, "/tasks/:taskId/subtasks/:subtaskId/result",
               [svc](net::Request r) { return detail::task_subtask_result(svc, std::move(r)); });
  }
  router.add("GET", "/tasks/:taskId/events",
             [svc](net::Request r) { return detail::task_events(svc, std::move(r)); });
  router.add("POST", "/tasks/:taskId/cancel",
             [svc](net::Request r) { return detail::task_cancel(svc, std::move(r)); });
}

}  // namespace edgecoder::coordinator

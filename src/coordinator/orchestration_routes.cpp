// Model switches per agent (upstream-coordinator.md §2.9, §7): an operator (the control plane's
// rollouts) asks an agent to run a model; the agent finds the request in its heartbeat, pulls and
// probes the model, and reports its progress (mesh routes). One switch per agent; a new request
// replaces the old one, and a late report for a replaced one gets 409.
#include "api/json_reader.h"
#include "coordinator/service.h"
#include "core/log.h"

namespace edgecoder::coordinator {

nlohmann::json orchestration_json(const store::Orchestration& o) {
  nlohmann::json status = {
      {"phase", o.status}, {"message", o.message}, {"updatedAtMs", o.updated_at_ms}};
  if (o.progress_pct >= 0) status["progressPct"] = o.progress_pct;
  return {{"agentId", o.agent_id},
          {"rolloutId", o.rollout_id},
          {"provider", o.provider},
          {"model", o.model},
          {"autoInstall", true},
          {"pending", o.status == "requested" || o.status == "downloading"},
          {"requestedBy", o.requested_by},
          {"requestedAtMs", o.requested_at_ms},
          {"status", status}};
}

namespace detail {

asio::awaitable<net::Response> admin_request_switch(ServicePtr svc, net::Request request) {
  const std::string agent_id = request.param("agentId");
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  store::Orchestration o;
  o.agent_id = agent_id;
  o.rollout_id = r.str("rolloutId", true, 1, 128);
  o.provider = r.one_of("provider", {"ollama-local", "edgecoder-local", "openai-compatible"},
                        "ollama-local");
  o.model = r.str("model", true, 1, 200);
  o.requested_by = r.str("requestedBy", false, 0, 128, "operator");
  if (!r.ok()) co_return net::Response::error(*r.error());
  store::Store* st = svc->store.get();
  auto get = st->run([st, agent_id] { return st->get_agent(agent_id); });
  auto agent = co_await std::move(get);
  if (!agent) {
    if (agent.error().code == core::Errc::not_found) {
      co_return error_response(404, "agent_not_found", agent.error().detail);
    }
    co_return net::Response::error(agent.error());
  }
  auto put = st->run([st, o] { return st->put_orchestration(o); });
  auto stored = co_await std::move(put);
  if (!stored) co_return net::Response::error(stored.error());
  core::log::info("coordinator", "model_switch_requested",
                  {{"agent", agent_id}, {"rollout", o.rollout_id}, {"model", o.model}});
  co_return net::Response::json(200,
                                {{"ok", true}, {"orchestration", orchestration_json(*stored)}});
}

asio::awaitable<net::Response> admin_list_switches(ServicePtr svc, net::Request request) {
  const std::string rollout = request.query_param("rolloutId").value_or("");
  store::Store* st = svc->store.get();
  auto call = st->run([st, rollout] { return st->list_orchestrations(rollout); });
  auto list = co_await std::move(call);
  if (!list) co_return net::Response::error(list.error());
  nlohmann::json out = nlohmann::json::array();
  for (const auto& o : *list) out.push_back(orchestration_json(o));
  co_return net::Response::json(200, {{"orchestrations", out}});
}

// The agent's report: /status (a phase on the way) or /ack (the outcome).
asio::awaitable<net::Response> agent_report_switch(ServicePtr svc, net::Request request, bool ack) {
  const std::string agent_id = request.param("agentId");
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  const std::string rollout = r.str("rolloutId", false, 0, 128);
  std::string status, message;
  int progress = -1;
  if (ack) {
    const bool ok = r.boolean("ok", false, true);
    message = r.str("error", false, 0, 512);
    status = ok ? "healthy" : "failed";
  } else {
    status = r.one_of("phase", {"downloading", "applied"}, "", true);
    message = r.str("message", false, 0, 512);
    progress = static_cast<int>(r.integer("progressPct", 0, 100, -1));
  }
  if (!r.ok()) co_return net::Response::error(*r.error());
  store::Store* st = svc->store.get();
  auto call = st->run([st, agent_id, rollout, status, message, progress] {
    return st->report_orchestration(agent_id, rollout, status, message, progress);
  });
  auto reported = co_await std::move(call);
  if (!reported) {
    if (reported.error().code == core::Errc::not_found) {
      co_return error_response(404, "orchestration_not_found", reported.error().detail);
    }
    co_return net::Response::error(reported.error());
  }
  if (ack && status == "healthy") {
    // The agent runs the model now: say so at once rather than at its next heartbeat.
    const std::string model = reported->model;
    auto touch = st->run([st, agent_id, model] { return st->touch_agent(agent_id, model); });
    auto touched = co_await std::move(touch);
    if (!touched) co_return net::Response::error(touched.error());
  }
  if (ack) {
    core::log::info("coordinator", "model_switch_reported",
                    {{"agent", agent_id}, {"model", reported->model}, {"status", status}});
  }
  co_return net::Response::json(200, {{"ok", true},
                                      {"pending", false},
                                      {"error", ack && status == "failed" ? message : ""},
                                      {"orchestration", orchestration_json(*reported)}});
}

}  // namespace detail

void add_orchestration_routes(net::Router& router, ServicePtr svc) {
  router.add("POST", "/admin/orchestration/agents/:agentId",
             [svc](net::Request r) { return detail::admin_request_switch(svc, std::move(r)); });
  router.add("GET", "/admin/orchestration",
             [svc](net::Request r) { return detail::admin_list_switches(svc, std::move(r)); });
  router.add("POST", "/orchestration/agents/:agentId/status", [svc](net::Request r) {
    return detail::agent_report_switch(svc, std::move(r), false);
  });
  router.add("POST", "/orchestration/agents/:agentId/ack", [svc](net::Request r) {
    return detail::agent_report_switch(svc, std::move(r), true);
  });
}

}  // namespace edgecoder::coordinator

// POST /escalate: an agent whose own model failed asks for a larger model's code. The
// coordinator relays the request to the inference service's /escalate (INFERENCE_URL,
// x-inference-token, as /submit does for /decompose) and answers with its code. Upstream's
// in-memory escalation store and resolver chain (GET /escalate/:taskId, parent coordinator,
// cloud, human review) are not part of this route.
#include "api/coordinator.h"
#include "coordinator/service.h"
#include "core/log.h"

namespace edgecoder::coordinator {

namespace detail {

// 502 with the upstream failure shape ({taskId, status:"failed"}) plus our {error, detail}.
net::Response escalate_failed(ServicePtr svc, const api::EscalateRequest& q, std::string code,
                              std::string detail) {
  svc->metrics.escalations_failed->inc();
  core::log::warn("coordinator", "escalation_failed",
                  {{"task", q.task_id}, {"agent", q.agent_id}, {"detail", detail}});
  return error_response(502, code, detail, {{"taskId", q.task_id}, {"status", "failed"}});
}

asio::awaitable<net::Response> escalate(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  auto parsed = api::parse_escalate(*body);
  if (!parsed) co_return net::Response::error(parsed.error());
  const api::EscalateRequest q = std::move(*parsed);
  {
    auto check = refuse_blacklisted(svc, q.agent_id);
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }

  net::ClientRequest creq = inference_request(
      *svc, "/escalate",
      api::to_inference_json(q).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
      svc->options.escalate_timeout_ms);
  auto call = svc->http->request(std::move(creq));
  auto resp = co_await std::move(call);
  const std::string where = "inference service at " + svc->options.inference_url;
  if (!resp) {
    co_return escalate_failed(svc, q, "inference_service_unavailable",
                              where + " is unreachable: " + resp.error().detail);
  }
  auto answer = nlohmann::json::parse(resp->body, nullptr, false);
  if (resp->status < 200 || resp->status >= 300) {
    // The inference service explains its failures in `explanation` (upstream shape) and says
    // which in `error`; neither carries a secret.
    std::string why;
    if (answer.is_object()) {
      if (answer.contains("explanation") && answer["explanation"].is_string()) {
        why = ": " + answer["explanation"].get<std::string>();
      } else if (answer.contains("detail") && answer["detail"].is_string()) {
        why = ": " + answer["detail"].get<std::string>();
      }
    }
    co_return escalate_failed(
        svc, q, "escalation_failed",
        where + " answered HTTP " + std::to_string(resp->status) + " to /escalate" + why);
  }
  if (!answer.is_object() || !answer.contains("improvedCode") ||
      !answer["improvedCode"].is_string() ||
      answer["improvedCode"].get_ref<const std::string&>().empty()) {
    co_return escalate_failed(svc, q, "escalation_failed",
                              where + " returned no improvedCode to /escalate");
  }
  nlohmann::json out = {
      {"taskId", q.task_id},
      {"status", "completed"},
      {"improvedCode", answer["improvedCode"]},
      {"explanation", answer.contains("explanation") && answer["explanation"].is_string()
                          ? answer["explanation"]
                          : nlohmann::json("")}};
  if (answer.contains("model") && answer["model"].is_string()) {
    out["resolvedByModel"] = answer["model"];
  }
  if (answer.contains("llm") && answer["llm"].is_boolean()) out["llm"] = answer["llm"];
  svc->metrics.escalations_completed->inc();
  core::log::info("coordinator", "escalation_completed",
                  {{"task", q.task_id},
                   {"agent", q.agent_id},
                   {"iterations_attempted", q.iterations_attempted},
                   {"model", out.value("resolvedByModel", "")}});
  co_return net::Response::json(200, out);
}

}  // namespace detail

void add_escalate_routes(net::Router& router, ServicePtr svc) {
  router.add("POST", "/escalate",
             [svc](net::Request r) { return detail::escalate(svc, std::move(r)); });
}

}  // namespace edgecoder::coordinator

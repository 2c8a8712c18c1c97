// Operator routes: agents and their approval, registration tokens, the network mode and the
// discovery feed, credit accounts, and the audit log. Mesh state lives in the coordinator; these
// handlers call its operator API and audit what they change.
#include <functional>

#include "api/json_reader.h"
#include "control/service.h"
#include "net/http.h"

namespace edgecoder::control {

namespace detail {

// A path parameter checked before it travels into a coordinator URL.
std::optional<net::Response> bad_param(const std::string& value, std::string_view name) {
  if (api::is_identifier(value, 128)) return std::nullopt;
  return net::Response::error(400, "invalid_request",
                              std::string(name) +
                                  ": expected 1-128 characters of letters, "
                                  "digits and . _ : @ + # / -");
}

// Counts of the live agent list for the catalog and the summary.
nlohmann::json agent_totals(const nlohmann::json& agents) {
  int online = 0, approved = 0, pending = 0, denied = 0, served = 0;
  for (const auto& a : agents) {
    if (a.value("online", false)) ++online;
    if (a.value("served", false)) ++served;
    const std::string approval = a.value("approval", "");
    if (approval == "approved") ++approved;
    if (approval == "pending") ++pending;
    if (approval == "denied") ++denied;
  }
  return {{"agents", agents.size()}, {"online", online},   {"offline", agents.size() - online},
          {"approved", approved},    {"pending", pending}, {"denied", denied},
          {"served", served}};
}

// A read the coordinator answers as it is.
asio::awaitable<net::Response> pass_through(ServicePtr svc, std::string path) {
  auto call = call_coordinator(svc, "GET", std::move(path), "");
  auto reply = co_await std::move(call);
  if (!reply) co_return unreachable(reply.error());
  co_return relay(*reply);
}

// A change whose body the coordinator checks: the request's JSON goes on as it is (re-serialised)
// and the audit facts come from the coordinator's answer.
asio::awaitable<net::Response> forward_change(
    ServicePtr svc, net::Request request, std::string path, AuditFacts facts,
    std::function<void(const nlohmann::json&, AuditFacts&)> complete) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  auto change = operator_change(svc, std::move(request), "POST", std::move(path), body->dump(),
                                std::move(facts), std::move(complete));
  co_return co_await std::move(change);
}

asio::awaitable<net::Response> list_agents(ServicePtr svc, net::Request request) {
  std::string path = "/admin/agents";
  if (auto approval = request.query_param("approval")) {
    path += "?approval=" + net::percent_encode(*approval);
  }
  auto call = pass_through(svc, std::move(path));
  co_return co_await std::move(call);
}

asio::awaitable<net::Response> agent_catalog(ServicePtr svc, net::Request) {
  auto call = call_coordinator(svc, "GET", "/admin/agents", "");
  auto reply = co_await std::move(call);
  if (!reply) co_return unreachable(reply.error());
  if (reply->status != 200 || !reply->body.contains("agents")) co_return relay(*reply);
  const nlohmann::json& agents = reply->body["agents"];
  co_return net::Response::json(
      200, {{"generatedAt", svc->now()}, {"totals", agent_totals(agents)}, {"agents", agents}});
}

asio::awaitable<net::Response> set_approval(ServicePtr svc, net::Request request) {
  const std::string agent_id = request.param("agentId");
  if (auto bad = bad_param(agent_id, "agentId")) co_return std::move(*bad);
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  const bool approved = r.boolean("approved", false, true);
  if (!r.ok()) co_return net::Response::error(*r.error());
  AuditFacts facts{approved ? "agent.approve" : "agent.deny", agent_id};
  auto change = operator_change(
      svc, std::move(request), "POST",
      "/admin/agents/" + net::percent_encode(agent_id) + (approved ? "/approve" : "/deny"), "",
      std::move(facts));
  co_return co_await std::move(change);
}

asio::awaitable<net::Response> create_token(ServicePtr svc, net::Request request) {
  // The token itself is shown once, to the caller; the audit keeps only its id and label.
  auto change = forward_change(svc, std::move(request), "/admin/registration-tokens",
                               AuditFacts{"registration_token.create", ""},
                               [](const nlohmann::json& answer, AuditFacts& f) {
                                 f.target = answer.value("id", "");
                                 f.detail["label"] = answer.value("label", "");
                               });
  co_return co_await std::move(change);
}

asio::awaitable<net::Response> revoke_token(ServicePtr svc, net::Request request) {
  const std::string id = request.param("tokenId");
  if (auto bad = bad_param(id, "tokenId")) co_return std::move(*bad);
  AuditFacts facts{"registration_token.revoke", id};
  auto change = operator_change(svc, std::move(request), "POST",
                                "/admin/registration-tokens/" + net::percent_encode(id) + "/revoke",
                                "", std::move(facts));
  co_return co_await std::move(change);
}

asio::awaitable<net::Response> set_network_mode(ServicePtr svc, net::Request request) {
  auto change =
      forward_change(svc, std::move(request), "/admin/network/mode", AuditFacts{"network.mode", ""},
                     [](const nlohmann::json& answer, AuditFacts& f) {
                       f.target = answer.value("networkMode", "");
                     });
  co_return co_await std::move(change);
}

// Scheme, host and port of a URL (path, query and fragment dropped).
std::string url_origin(const std::string& url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  const auto end = url.find_first_of("/?#", scheme_end + 3);
  return url.substr(0, end);
}

// The discovery feed agents read (COORDINATOR_DISCOVERY_URL): the coordinator this control plane
// talks to, as it names itself in /identity; the configured URL when it does not answer.
asio::awaitable<net::Response> discovery(ServicePtr svc, net::Request) {
  std::map<std::string, nlohmann::json> by_url;
  const std::string bootstrap = url_origin(svc->options.coordinator_url);
  by_url[bootstrap] = {
      {"peerId", "bootstrap"}, {"coordinatorUrl", bootstrap}, {"source", "bootstrap"}};
  auto call = call_coordinator(svc, "GET", "/identity", "");
  auto identity = co_await std::move(call);
  if (identity && identity->status == 200 && identity->body.is_object()) {
    const std::string url = url_origin(identity->body.value("coordinatorUrl", ""));
    if (!url.empty()) {
      by_url.erase(bootstrap);
      by_url[url] = {{"peerId", identity->body.value("peerId", "")},
                     {"coordinatorUrl", url},
                     {"source", "mesh"}};
    }
  }
  nlohmann::json list = nlohmann::json::array();
  for (auto& [url, entry] : by_url) list.push_back(std::move(entry));
  co_return net::Response::json(
      200, {{"generatedAt", svc->now()}, {"count", list.size()}, {"coordinators", list}});
}

asio::awaitable<net::Response> network_summary(ServicePtr svc, net::Request) {
  auto mode_call = call_coordinator(svc, "GET", "/admin/network/mode", "");
  auto mode = co_await std::move(mode_call);
  if (!mode) co_return unreachable(mode.error());
  auto runtime_call = call_coordinator(svc, "GET", "/health/runtime", "");
  auto runtime = co_await std::move(runtime_call);
  auto agents_call = call_coordinator(svc, "GET", "/admin/agents", "");
  auto agents = co_await std::move(agents_call);
  nlohmann::json out = {{"generatedAt", svc->now()},
                        {"coordinatorUrl", svc->options.coordinator_url},
                        {"networkMode", mode->body.value("networkMode", "")},
                        {"runtime", nullptr},
                        {"agents", nullptr}};
  if (runtime && runtime->status == 200) out["runtime"] = runtime->body;
  if (agents && agents->status == 200 && agents->body.contains("agents")) {
    out["agents"] = agent_totals(agents->body["agents"]);
  }
  co_return net::Response::json(200, out);
}

asio::awaitable<net::Response> credits(ServicePtr svc, net::Request request, bool history) {
  const std::string account = request.param("accountId");
  if (auto bad = bad_param(account, "accountId")) co_return std::move(*bad);
  std::string path = "/admin/credits/" + net::percent_encode(account);
  if (!history) {
    path += "?limit=1";
  } else if (auto limit = request.query_param("limit")) {
    path += "?limit=" + net::percent_encode(*limit);
  }
  auto call = call_coordinator(svc, "GET", path, "");
  auto reply = co_await std::move(call);
  if (!reply) co_return unreachable(reply.error());
  if (reply->status != 200 || history) co_return relay(*reply);
  co_return net::Response::json(
      200, {{"accountId", account}, {"balance", reply->body.value("balance", 0.0)}});
}

asio::awaitable<net::Response> adjust_credits(ServicePtr svc, net::Request request) {
  const std::string account = request.param("accountId");
  if (auto bad = bad_param(account, "accountId")) co_return std::move(*bad);
  auto change = forward_change(
      svc, std::move(request), "/admin/credits/" + net::percent_encode(account) + "/adjust",
      AuditFacts{"credits.adjust", account}, [](const nlohmann::json& answer, AuditFacts& f) {
        f.detail = {{"credits", answer.value("credits", 0.0)},
                    {"reason", answer.value("reason", "")},
                    {"txId", answer.value("txId", "")}};
      });
  co_return co_await std::move(change);
}

asio::awaitable<net::Response> set_mode(ServicePtr svc, net::Request request) {
  const std::string agent_id = request.param("agentId");
  if (auto bad = bad_param(agent_id, "agentId")) co_return std::move(*bad);
  auto change = forward_change(
      svc, std::move(request), "/admin/agents/" + net::percent_encode(agent_id) + "/mode",
      AuditFacts{"agent.mode", agent_id}, [](const nlohmann::json& answer, AuditFacts& f) {
        const auto& agent = answer.contains("agent") ? answer["agent"] : nlohmann::json::object();
        f.detail = {{"mode", agent.value("mode", "")}};
      });
  co_return co_await std::move(change);
}

asio::awaitable<net::Response> add_to_blacklist(ServicePtr svc, net::Request request) {
  auto change = forward_change(
      svc, std::move(request), "/security/blacklist", AuditFacts{"blacklist.add", ""},
      [](const nlohmann::json& answer, AuditFacts& f) {
        const auto& record =
            answer.contains("record") ? answer["record"] : nlohmann::json::object();
        f.target = record.value("agentId", "");
        f.detail = {{"reasonCode", record.value("reasonCode", "")},
                    {"reason", record.value("reason", "")},
                    {"eventHash", record.value("eventHash", "")}};
      });
  co_return co_await std::move(change);
}

// Removal is an event of the chain too (the coordinator keeps it); here it is also audited.
asio::awaitable<net::Response> remove_from_blacklist(ServicePtr svc, net::Request request) {
  const std::string agent_id = request.param("agentId");
  if (auto bad = bad_param(agent_id, "agentId")) co_return std::move(*bad);
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  AuditFacts facts{"blacklist.remove", agent_id};
  facts.detail = {{"reason", body->value("reason", "")}};
  auto change = operator_change(svc, std::move(request), "DELETE",
                                "/security/blacklist/" + net::percent_encode(agent_id),
                                body->dump(), std::move(facts));
  co_return co_await std::move(change);
}

// Everything known about one agent: its record, recent diagnostics, its model switch, whether
// it is blacklisted, the rollouts it is in, and the operator actions that named it.
asio::awaitable<net::Response> agent_view(ServicePtr svc, net::Request request) {
  const std::string agent_id = request.param("agentId");
  if (auto bad = bad_param(agent_id, "agentId")) co_return std::move(*bad);
  auto agents_call = call_coordinator(svc, "GET", "/admin/agents", "");
  auto agents = co_await std::move(agents_call);
  if (!agents) co_return unreachable(agents.error());
  if (agents->status != 200) co_return relay(*agents);
  nlohmann::json agent;
  for (const auto& a : agents->body.value("agents", nlohmann::json::array())) {
    if (a.value("agentId", "") == agent_id) agent = a;
  }
  if (agent.is_null()) {
    co_return net::Response::error(404, "agent_not_found", "no agent " + agent_id);
  }
  const std::string encoded = net::percent_encode(agent_id);
  auto diag_call = call_coordinator(svc, "GET", "/agent/diagnostics/" + encoded + "?limit=20", "");
  auto diagnostics = co_await std::move(diag_call);
  auto switch_call = call_coordinator(svc, "GET", "/admin/orchestration", "");
  auto switches = co_await std::move(switch_call);
  auto black_call = call_coordinator(svc, "GET", "/security/blacklist", "");
  auto black = co_await std::move(black_call);
  nlohmann::json out = {{"agent", agent},
                        {"diagnostics", nullptr},
                        {"orchestration", nullptr},
                        {"blacklist", nullptr}};
  if (diagnostics && diagnostics->status == 200) out["diagnostics"] = diagnostics->body;
  if (switches && switches->status == 200) {
    for (const auto& o : switches->body.value("orchestrations", nlohmann::json::array())) {
      if (o.value("agentId", "") == agent_id) out["orchestration"] = o;
    }
  }
  if (black && black->status == 200) {
    for (const auto& b : black->body.value("records", nlohmann::json::array())) {
      if (b.value("agentId", "") == agent_id) out["blacklist"] = b;
    }
  }
  store::Store* st = svc->store.get();
  auto local = st->run([st, agent_id]() -> core::Result<nlohmann::json> {
    nlohmann::json rollouts = nlohmann::json::array();
    auto all = st->list_rollouts();
    if (!all) return all.error();
    for (const auto& rec : *all) {
      auto states = st->list_rollout_states(rec.id);
      if (!states) return states.error();
      for (const auto& s : *states) {
        if (s.agent_id != agent_id) continue;
        rollouts.push_back({{"rolloutId", rec.id},
                            {"status", s.status},
                            {"targetModel", s.target_model},
                            {"previousModel", s.previous_model},
                            {"rollback", s.rollback},
                            {"error", s.error}});
      }
    }
    auto audit = st->recent_audit("", agent_id, 100);
    if (!audit) return audit.error();
    nlohmann::json actions = nlohmann::json::array();
    for (auto it = audit->rbegin(); it != audit->rend(); ++it) {  // oldest first
      const auto& a = *it;
      actions.push_back(
          {{"id", a.id}, {"atMs", a.at_ms}, {"actor", a.actor}, {"action", a.action}});
    }
    return nlohmann::json{{"rollouts", rollouts}, {"operatorActions", actions}};
  });
  auto stored = co_await std::move(local);
  if (!stored) co_return net::Response::error(stored.error());
  out.update(*stored);
  co_return net::Response::json(200, out);
}

asio::awaitable<net::Response> list_audit(ServicePtr svc, net::Request request) {
  auto after_id = request.query_int("after", 0, INT64_MAX, 0);
  if (!after_id) co_return net::Response::error(after_id.error());
  auto limit_n = request.query_int("limit", 1, 1000, 100);
  if (!limit_n) co_return net::Response::error(limit_n.error());
  const std::int64_t after = *after_id;
  const int limit = static_cast<int>(*limit_n);
  store::Store* st = svc->store.get();
  auto call = st->run([st, after, limit] { return st->list_audit(after, limit); });
  auto records = co_await std::move(call);
  if (!records) co_return net::Response::error(records.error());
  nlohmann::json list = nlohmann::json::array();
  for (const auto& a : *records) {
    nlohmann::json detail = nlohmann::json::parse(a.detail_json, nullptr, false);
    if (!detail.is_object()) detail = nlohmann::json::object();
    nlohmann::json from = detail.contains("from") ? detail["from"] : nlohmann::json("");
    detail.erase("from");
    list.push_back({{"id", a.id},
                    {"atMs", a.at_ms},
                    {"actor", a.actor},
                    {"action", a.action},
                    {"target", a.target},
                    {"from", from},
                    {"detail", detail}});
  }
  nlohmann::json out = {{"records", list}};
  if (!records->empty()) out["nextAfter"] = records->back().id;
  co_return net::Response::json(200, out);
}

}  // namespace detail

void add_operator_routes(net::Router& router, ServicePtr svc) {
  using H = asio::awaitable<net::Response> (*)(ServicePtr, net::Request);
  auto add = [&](const char* method, const char* path, H handler) {
    router.add(method, path, [svc, handler](net::Request r) { return handler(svc, std::move(r)); });
  };
  add("GET", "/agents", detail::list_agents);
  add("GET", "/agents/catalog", detail::agent_catalog);
  add("GET", "/agents/:agentId", detail::agent_view);
  add("POST", "/agents/:agentId/approval", detail::set_approval);
  add("POST", "/agents/:agentId/mode", detail::set_mode);
  auto read = [&](const char* path, const char* upstream) {
    router.add("GET", path,
               [svc, upstream](net::Request) { return detail::pass_through(svc, upstream); });
  };
  read("/registration-tokens", "/admin/registration-tokens");
  add("POST", "/registration-tokens", detail::create_token);
  add("POST", "/registration-tokens/:tokenId/revoke", detail::revoke_token);
  add("DELETE", "/registration-tokens/:tokenId", detail::revoke_token);
  read("/network/mode", "/admin/network/mode");
  add("POST", "/network/mode", detail::set_network_mode);
  add("GET", "/network/coordinators", detail::discovery);
  add("GET", "/network/summary", detail::network_summary);
  router.add("GET", "/credits/:accountId/balance",
             [svc](net::Request r) { return detail::credits(svc, std::move(r), false); });
  router.add("GET", "/credits/:accountId/history",
             [svc](net::Request r) { return detail::credits(svc, std::move(r), true); });
  add("POST", "/credits/:accountId/adjust", detail::adjust_credits);
  add("GET", "/audit", detail::list_audit);
  read("/security/blacklist", "/security/blacklist");
  read("/security/blacklist/audit", "/security/blacklist/audit");
  add("POST", "/security/blacklist", detail::add_to_blacklist);
  add("DELETE", "/security/blacklist/:agentId", detail::remove_from_blacklist);
}

}  // namespace edgecoder::control

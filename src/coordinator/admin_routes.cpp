// Operator routes (admin token): agent approval and registration tokens. A registration token is
// shown once, when created; the store keeps only its SHA-256.
#include "api/json_reader.h"
#include "coordinator/service.h"
#include "core/crypto.h"
#include "core/log.h"

namespace edgecoder::coordinator {

namespace detail {

nlohmann::json token_json(const store::RegistrationToken& t) {
  nlohmann::json j = {{"id", t.id},
                      {"label", t.label},
                      {"createdBy", t.created_by},
                      {"createdAtMs", t.created_at_ms},
                      {"revoked", t.revoked_at_ms != 0},
                      {"uses", t.uses}};
  if (t.revoked_at_ms) j["revokedAtMs"] = t.revoked_at_ms;
  if (t.last_used_at_ms) j["lastUsedAtMs"] = t.last_used_at_ms;
  return j;
}

asio::awaitable<net::Response> admin_list_agents(ServicePtr svc, net::Request request) {
  std::optional<store::Approval> filter;
  if (auto a = request.query_param("approval")) {
    filter = store::parse_approval(*a);
    if (!filter) {
      co_return net::Response::error(
          api::invalid_request("approval: expected pending, approved or denied"));
    }
  }
  store::Store* st = svc->store.get();
  auto call = st->run([st, filter] { return st->list_agents(filter, 0); });
  auto agents = co_await std::move(call);
  if (!agents) co_return net::Response::error(agents.error());
  nlohmann::json list = nlohmann::json::array();
  for (const auto& a : *agents) list.push_back(agent_json(*svc, a));
  co_return net::Response::json(200, {{"agents", list}});
}

asio::awaitable<net::Response> admin_set_approval(ServicePtr svc, net::Request request,
                                                  store::Approval approval) {
  const std::string agent_id = request.param("agentId");
  store::Store* st = svc->store.get();
  auto call = st->run(
      [st, agent_id, approval] { return st->set_approval(agent_id, approval, "operator"); });
  auto agent = co_await std::move(call);
  if (!agent) {
    if (agent.error().code == core::Errc::not_found) {
      co_return error_response(404, "agent_not_found", agent.error().detail);
    }
    co_return net::Response::error(agent.error());
  }
  core::log::info("coordinator", "agent_approval",
                  {{"agent", agent_id}, {"approval", store::approval_name(approval)}});
  co_return net::Response::json(200, {{"ok", true}, {"agent", agent_json(*svc, *agent)}});
}

asio::awaitable<net::Response> admin_create_token(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  std::string label = r.str("label", false, 0, 200);
  if (!r.ok()) co_return net::Response::error(*r.error());
  const std::string secret = "ecreg_" + core::crypto::random_hex(24);
  store::RegistrationToken tok;
  tok.id = core::crypto::random_hex(8);
  tok.token_hash = core::crypto::sha256_hex(secret);
  tok.label = label;
  tok.created_by = "operator";
  store::Store* st = svc->store.get();
  auto call = st->run([st, tok] { return st->create_registration_token(tok); });
  auto created = co_await std::move(call);
  if (!created) co_return net::Response::error(created.error());
  core::log::info("coordinator", "registration_token_created",
                  {{"id", created->id}, {"label", created->label}});
  nlohmann::json out = token_json(*created);
  out["token"] = secret;  // shown this once
  co_return net::Response::json(201, out);
}

asio::awaitable<net::Response> admin_list_tokens(ServicePtr svc, net::Request) {
  store::Store* st = svc->store.get();
  auto call = st->run([st] { return st->list_registration_tokens(); });
  auto tokens = co_await std::move(call);
  if (!tokens) co_return net::Response::error(tokens.error());
  nlohmann::json list = nlohmann::json::array();
  for (const auto& t : *tokens) list.push_back(token_json(t));
  co_return net::Response::json(200, {{"tokens", list}});
}

asio::awaitable<net::Response> admin_revoke_token(ServicePtr svc, net::Request request) {
  const std::string id = request.param("tokenId");
  store::Store* st = svc->store.get();
  auto call = st->run([st, id] { return st->revoke_registration_token(id); });
  auto tok = co_await std::move(call);
  if (!tok) {
    if (tok.error().code == core::Errc::not_found) {
      co_return error_response(404, "token_not_found", tok.error().detail);
    }
    co_return net::Response::error(tok.error());
  }
  core::log::info("coordinator", "registration_token_revoked", {{"id", id}});
  co_return net::Response::json(200, {{"ok", true}, {"token", token_json(*tok)}});
}

}  // namespace detail

void add_admin_routes(net::Router& router, ServicePtr svc) {
  router.add("GET", "/admin/agents",
             [svc](net::Request r) { return detail::admin_list_agents(svc, std::move(r)); });
  router.add("POST", "/admin/agents/:agentId/approve", [svc](net::Request r) {
    return detail::admin_set_approval(svc, std::move(r), store::Approval::approved);
  });
  router.add("POST", "/admin/agents/:agentId/deny", [svc](net::Request r) {
    return detail::admin_set_approval(svc, std::move(r), store::Approval::denied);
  });
  router.add("POST", "/admin/agents/:agentId/reset", [svc](net::Request r) {
    return detail::admin_set_approval(svc, std::move(r), store::Approval::pending);
  });
  router.add("POST", "/admin/registration-tokens",
             [svc](net::Request r) { return detail::admin_create_token(svc, std::move(r)); });
  router.add("GET", "/admin/registration-tokens",
             [svc](net::Request r) { return detail::admin_list_tokens(svc, std::move(r)); });
  for (const char* method : {"POST", "DELETE"}) {
    std::string path = std::string("/admin/registration-tokens/:tokenId") +
                       (std::string_view(method) == "POST" ? "/revoke" : "");
    router.add(method, path,
               [svc](net::Request r) { return detail::admin_revoke_token(svc, std::move(r)); });
  }
}

}  // namespace edgecoder::coordinator

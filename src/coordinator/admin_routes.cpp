// Operator routes (admin token): agent approval, registration tokens, the network mode and
// credit accounts. A registration token is shown once, when created; the
// store keeps only its SHA-256. The control plane changes mesh state only through these routes.
#include <cmath>

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

// The operator's mode for an agent: it wins over the mode the agent declares (re-registrations
// keep it) and is what /register and /capacity say; "declared" goes back to the agent's own.
asio::awaitable<net::Response> admin_set_mode(ServicePtr svc, net::Request request) {
  const std::string agent_id = request.param("agentId");
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  std::string mode = r.one_of("mode", {"swarm-only", "ide-enabled", "declared"}, "", true);
  if (!r.ok()) co_return net::Response::error(*r.error());
  if (mode == "declared") mode.clear();
  store::Store* st = svc->store.get();
  auto call = st->run([st, agent_id, mode] { return st->set_agent_mode(agent_id, mode); });
  auto agent = co_await std::move(call);
  if (!agent) {
    if (agent.error().code == core::Errc::not_found) {
      co_return error_response(404, "agent_not_found", agent.error().detail);
    }
    co_return net::Response::error(agent.error());
  }
  core::log::info("coordinator", "agent_mode", {{"agent", agent_id}, {"mode", agent->mode()}});
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

asio::awaitable<net::Response> admin_get_network_mode(ServicePtr svc, net::Request) {
  store::Store* st = svc->store.get();
  auto call = st->run([st] { return st->get_mesh_setting(kNetworkModeSetting); });
  auto stored = co_await std::move(call);
  if (!stored) co_return net::Response::error(stored.error());
  nlohmann::json out = {{"networkMode", svc->network_mode()}};
  if (*stored) {
    out["source"] = "operator";
    out["updatedBy"] = (*stored)->updated_by;
    out["updatedAtMs"] = (*stored)->updated_at_ms;
  } else {
    out["source"] = "NETWORK_MODE";
  }
  co_return net::Response::json(200, out);
}

asio::awaitable<net::Response> admin_set_network_mode(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  std::string mode = r.one_of("networkMode", {"public_mesh", "enterprise_overlay"}, "", true);
  if (!r.ok()) co_return net::Response::error(*r.error());
  store::Store* st = svc->store.get();
  auto call =
      st->run([st, mode] { return st->put_mesh_setting(kNetworkModeSetting, mode, "operator"); });
  auto stored = co_await std::move(call);
  if (!stored) co_return net::Response::error(stored.error());
  svc->set_network_mode(mode == "enterprise_overlay");
  core::log::info("coordinator", "network_mode_changed", {{"networkMode", mode}});
  co_return net::Response::json(
      200, {{"ok", true}, {"networkMode", mode}, {"updatedAtMs", stored->updated_at_ms}});
}

double credits_of(std::int64_t millicredits) { return static_cast<double>(millicredits) / 1000.0; }

nlohmann::json ledger_json(const store::LedgerEntry& e) {
  nlohmann::json j = {{"seq", e.seq},       {"txId", e.tx_id},
                      {"kind", e.kind},     {"credits", credits_of(e.amount_millicredits)},
                      {"reason", e.reason}, {"createdAtMs", e.created_at_ms}};
  if (!e.task_id.empty()) j["taskId"] = e.task_id;
  return j;
}

net::Response bad_account(const std::string& id) {
  return error_response(400, "invalid_account_id",
                        "account id '" + id.substr(0, 64) +
                            "': expected 1-128 characters of letters, digits and . _ : @ + # / -");
}

asio::awaitable<net::Response> admin_get_credits(ServicePtr svc, net::Request request) {
  const std::string account = request.param("accountId");
  if (!api::is_identifier(account)) co_return bad_account(account);
  auto limit = request.query_int("limit", 1, 1000, 100);
  if (!limit) co_return net::Response::error(limit.error());
  store::Store* st = svc->store.get();
  auto call = st->run([st, account] { return st->list_ledger(account, 0, 0); });
  auto entries = co_await std::move(call);
  if (!entries) co_return net::Response::error(entries.error());
  std::int64_t balance = 0;
  for (const auto& e : *entries) balance += e.amount_millicredits;
  nlohmann::json history = nlohmann::json::array();
  for (auto it = entries->rbegin();
       it != entries->rend() && history.size() < static_cast<std::size_t>(*limit); ++it) {
    history.push_back(ledger_json(*it));
  }
  co_return net::Response::json(200, {{"accountId", account},
                                      {"balance", credits_of(balance)},
                                      {"entries", entries->size()},
                                      {"history", history}});
}

asio::awaitable<net::Response> admin_adjust_credits(ServicePtr svc, net::Request request) {
  const std::string account = request.param("accountId");
  if (!api::is_identifier(account)) co_return bad_account(account);
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  std::string reason = r.str("reason", true, 3, 500);
  std::string tx_id = r.str("txId", false, 0, 128);
  if (!r.ok()) co_return net::Response::error(*r.error());
  const auto credits = body->find("credits");
  if (credits == body->end() || !credits->is_number()) {
    co_return net::Response::error(api::invalid_request("credits: expected a number"));
  }
  const double amount = credits->get<double>();
  const double millis = std::round(amount * 1000.0);
  if (!std::isfinite(amount) || millis == 0 || std::fabs(millis) > 1e12) {
    co_return net::Response::error(api::invalid_request(
        "credits: expected a non-zero amount of at most 1e9 credits (3 decimals)"));
  }
  store::LedgerEntry entry;
  entry.tx_id = tx_id.empty() ? "adjust-" + new_uuid() : "adjust-" + tx_id;
  entry.account_id = account;
  entry.kind = "adjust";
  entry.amount_millicredits = static_cast<std::int64_t>(millis);
  entry.reason = reason;
  store::Store* st = svc->store.get();
  auto call = st->run([st, entry]() -> core::Result<std::int64_t> {
    auto appended = st->append_ledger(entry);
    if (!appended) return appended.error();
    return st->balance(entry.account_id);
  });
  auto balance = co_await std::move(call);
  if (!balance) co_return net::Response::error(balance.error());
  core::log::info("coordinator", "credits_adjusted",
                  {{"account", account}, {"millicredits", entry.amount_millicredits}});
  co_return net::Response::json(200, {{"ok", true},
                                      {"accountId", account},
                                      {"txId", entry.tx_id},
                                      {"credits", credits_of(entry.amount_millicredits)},
                                      {"reason", entry.reason},
                                      {"balance", credits_of(*balance)}});
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
  router.add("POST", "/admin/agents/:agentId/mode",
             [svc](net::Request r) { return detail::admin_set_mode(svc, std::move(r)); });
  router.add("POST", "/admin/registration-tokens",
             [svc](net::Request r) { return detail::admin_create_token(svc, std::move(r)); });
  router.add("GET", "/admin/registration-tokens",
             [svc](net::Request r) { return detail::admin_list_tokens(svc, std::move(r)); });
  router.add("GET", "/admin/network/mode",
             [svc](net::Request r) { return detail::admin_get_network_mode(svc, std::move(r)); });
  router.add("POST", "/admin/network/mode",
             [svc](net::Request r) { return detail::admin_set_network_mode(svc, std::move(r)); });
  router.add("GET", "/admin/credits/:accountId",
             [svc](net::Request r) { return detail::admin_get_credits(svc, std::move(r)); });
  router.add("POST", "/admin/credits/:accountId/adjust",
             [svc](net::Request r) { return detail::admin_adjust_credits(svc, std::move(r)); });
  for (const char* method : {"POST", "DELETE"}) {
    std::string path = std::string("/admin/registration-tokens/:tokenId") +
                       (std::string_view(method) == "POST" ? "/revoke" : "");
    router.add(method, path,
               [svc](net::Request r) { return detail::admin_revoke_token(svc, std::move(r)); });
  }
}

}  // namespace edgecoder::coordinator

// Agents as mesh peers and peer-direct work (upstream-coordinator.md §2.4, §2.5, §5.3):
// POST /mesh/register-peer, GET /mesh/peers, GET /mesh/ws, and /agent-mesh/* (tunnels — which
// are bookkeeping only, no bytes are relayed — and direct-work offers). Tunnels, offers and the
// relay/offer rate windows are in the store, so coordinators sharing a PostgreSQL agree on them
// and a restart loses none; invites, close notices and offers reach agents in their heartbeat.
// Coordinator federation (role "coordinator", x-federation-token, gossip) is not built: such a
// registration is refused with 403 federation_not_enabled. Peer-direct work earns no credits.
#include <algorithm>
#include <map>
#include <set>

#include "api/json_reader.h"
#include "coordinator/service.h"
#include "core/crypto.h"
#include "core/log.h"
#include "net/server.h"

namespace edgecoder::coordinator {

namespace detail {

constexpr std::size_t kMeshRelayPayloadMax = 16'384;  // characters, as upstream counts them
constexpr std::size_t kMeshOfferInputMax = 65'536;    // bytes
constexpr std::size_t kMeshOutputMax = 1'048'576;     // bytes of a direct-work result
constexpr int kMeshHeartbeatOffers = 20;              // offers per heartbeat, oldest first

// Unicode code points: what a JavaScript client measures, near enough, for the payload limit.
std::size_t mesh_text_length(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool mesh_token_presented(const Service& svc, const net::Request& request) {
  const std::string& expected = svc.options.mesh_token;
  if (expected.empty()) return svc.options.insecure_dev;
  if (auto header = request.header("x-mesh-token")) {
    return core::crypto::constant_time_equal(*header, expected);
  }
  // Upstream agents put the token in the query of their WebSocket URL.
  auto query = request.query_param("token");
  return query && core::crypto::constant_time_equal(*query, expected);
}

nlohmann::json mesh_peer_json(const store::MeshPeer& p, bool connected) {
  return {{"peerId", p.peer_id},
          {"publicKeyPem", p.public_key_pem},
          {"coordinatorUrl", p.coordinator_url},
          {"peerUrl", p.coordinator_url},
          {"networkMode", p.network_mode},
          {"role", p.role},
          {"registeredAtMs", p.registered_at_ms},
          {"lastSeenMs", p.last_seen_ms},
          {"connected", connected}};
}

nlohmann::json mesh_offer_json(const store::DirectWorkOffer& o) {
  nlohmann::json j = {
      {"offerId", o.offer_id},
      {"fromAgentId", o.from_agent},
      {"toAgentId", o.to_agent},
      {"workType", o.work_type},
      {"language", o.language},
      {"input", o.input},
      {"status", o.status},
      {"createdAtMs", o.created_at_ms},
      {"acceptedAtMs", o.accepted_at_ms > 0 ? nlohmann::json(o.accepted_at_ms) : nlohmann::json()},
      {"completedAtMs",
       o.completed_at_ms > 0 ? nlohmann::json(o.completed_at_ms) : nlohmann::json()},
      {"result", nullptr}};
  if (o.status == "completed") {
    j["result"] = {{"ok", o.ok}, {"output", o.output}, {"durationMs", o.duration_ms}};
    if (!o.error.empty()) j["result"]["error"] = o.error;
  }
  return j;
}

// Why an agent named in an agent-mesh request may not act (or be addressed): unknown (404
// agent_not_found), blacklisted (403 agent_blacklisted), or not served (403 agent_not_approved).
// Runs on the store's thread.
std::optional<net::Response> mesh_agent_refusal(const Service& svc, store::Store& st,
                                                const std::string& agent_id) {
  if (auto reason = blacklist_reason(st, agent_id)) {
    return error_response(403, "agent_blacklisted", "agent " + agent_id + " is blacklisted",
                          {{"agentId", agent_id}, {"reason", *reason}});
  }
  auto agent = st.get_agent(agent_id);
  if (!agent) {
    if (agent.error().code == core::Errc::not_found) {
      return error_response(404, "agent_not_found", "agent " + agent_id + " is not registered",
                            {{"agentId", agent_id}});
    }
    return net::Response::error(agent.error());
  }
  if (auto refused = refuse_agent(svc, *agent)) return refused;
  return std::nullopt;
}

asio::awaitable<std::optional<net::Response>> refuse_mesh_agents(ServicePtr svc,
                                                                 std::vector<std::string> ids) {
  store::Store* st = svc->store.get();
  const Service* s = svc.get();
  auto call = st->run([s, st, ids]() -> std::optional<net::Response> {
    for (const auto& id : ids) {
      if (auto refused = mesh_agent_refusal(*s, *st, id)) return refused;
    }
    return std::nullopt;
  });
  co_return co_await std::move(call);
}

// An agent id field: required, an identifier.
std::string mesh_agent_field(api::JsonReader& r, std::string_view key) {
  std::string id = r.str(key, true, 1, 128);
  if (r.ok() && !api::is_identifier(id)) r.fail(key, "expected an agent id ([A-Za-z0-9._:@+#/-])");
  return id;
}

std::set<std::string> mesh_blacklisted_ids(store::Store& st) {
  std::set<std::string> out;
  auto list = st.list_blacklist();
  if (list) {
    for (const auto& e : *list) out.insert(e.agent_id);
  }
  return out;
}

// ---- /mesh/* ----

asio::awaitable<net::Response> mesh_register_peer(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  store::MeshPeer peer;
  peer.peer_id = mesh_agent_field(r, "peerId");
  peer.public_key_pem = r.str("publicKeyPem", true, 1, 4096);
  if (r.ok() && !core::crypto::ed25519_public_key_parse(peer.public_key_pem)) {
    r.fail("publicKeyPem", "expected an Ed25519 public key (SubjectPublicKeyInfo PEM)");
  }
  peer.coordinator_url = r.str("coordinatorUrl", true, 1, 2048);
  if (r.ok()) {
    const auto& u = peer.coordinator_url;
    const bool scheme = u.rfind("http://", 0) == 0 || u.rfind("https://", 0) == 0;
    const bool clean =
        std::none_of(u.begin(), u.end(), [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
    if (!scheme || !clean || u.size() < 9) {
      r.fail("coordinatorUrl", "expected an http:// or https:// URL");
    }
  }
  peer.network_mode =
      r.one_of("networkMode", {"public_mesh", "enterprise_overlay"}, "public_mesh", true);
  // Upstream coordinators register without a role: no role is a coordinator.
  peer.role = r.one_of("role", {"coordinator", "agent", "phone"}, "coordinator");
  if (!r.ok()) co_return net::Response::error(*r.error());
  if (peer.role == "coordinator") {
    co_return error_response(
        403, "federation_not_enabled",
        "coordinator federation is not enabled on this coordinator (it will need "
        "x-federation-token and signed gossip); with the mesh token only agents and phones "
        "register as peers (role agent or phone)");
  }
  store::Store* st = svc->store.get();
  const std::string peer_id = peer.peer_id;
  {
    auto check = st->run([st, peer_id] { return blacklist_reason(*st, peer_id); });
    if (auto reason = co_await std::move(check)) {
      co_return error_response(403, "agent_blacklisted", "peer " + peer_id + " is blacklisted",
                               {{"reason", *reason}});
    }
  }
  auto call = st->run([st, peer] { return st->agent_mesh().put_mesh_peer(peer); });
  auto put = co_await std::move(call);
  if (!put) co_return net::Response::error(put.error());
  if (put->created) {
    core::log::info("coordinator", "mesh_peer_registered",
                    {{"peer", peer.peer_id}, {"role", peer.role}});
  }
  co_return net::Response::json(200, {{"ok", true}, {"peerCount", put->peer_count}});
}

asio::awaitable<net::Response> mesh_list_peers(ServicePtr svc, net::Request) {
  store::Store* st = svc->store.get();
  auto call = st->run(
      [st]() -> core::Result<std::pair<std::vector<store::MeshPeer>, std::set<std::string>>> {
        auto peers = st->agent_mesh().list_mesh_peers();
        if (!peers) return peers.error();
        return std::make_pair(std::move(*peers), mesh_blacklisted_ids(*st));
      });
  auto listed = co_await std::move(call);
  if (!listed) co_return net::Response::error(listed.error());
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& p : listed->first) {
    if (listed->second.count(p.peer_id)) continue;
    peers.push_back(mesh_peer_json(p, svc->mesh_socket_open(p.peer_id)));
  }
  co_return net::Response::json(200, {{"peers", peers}});
}

// One agent's /mesh/ws socket: kept open (the server pings it every MESH_WS_PING_MS of
// silence and answers its pings) until it closes or the coordinator stops. Inbound frames are
// gossip (MeshMessage JSON), which needs federation: they are read and dropped.
class MeshSocket final : public net::PingingWebSocketSession {
 public:
  MeshSocket(ServicePtr svc, std::string peer_id)
      : svc_(std::move(svc)), peer_id_(std::move(peer_id)) {}

  std::chrono::milliseconds ping_interval() const override {
    return std::chrono::milliseconds(svc_->options.mesh_ws_ping_ms);
  }

  asio::awaitable<void> run(net::WebSocket* ws) override {
    ServicePtr svc = svc_;
    const std::string peer_id = peer_id_;
    svc->mesh_socket_opened(peer_id);
    core::log::info("coordinator", "mesh_socket_open", {{"peer", peer_id}});
    if (!peer_id.empty()) {
      store::Store* st = svc->store.get();
      auto touch = st->run([st, peer_id] { return st->agent_mesh().touch_mesh_peer(peer_id); });
      auto touched = co_await std::move(touch);
      (void)touched;  // an unknown peer may still hold a socket; it just is not listed
    }
    std::int64_t frames = 0;
    while (true) {
      auto message = co_await ws->read();
      if (!message) break;
      ++frames;
    }
    svc->mesh_socket_closed(peer_id);
    core::log::info("coordinator", "mesh_socket_closed", {{"peer", peer_id}, {"frames", frames}});
  }

 private:
  const ServicePtr svc_;
  const std::string peer_id_;
};

net::Response mesh_ws(ServicePtr svc, const net::Request& request) {
  if (!mesh_token_presented(*svc, request)) {
    return error_response(401, "mesh_unauthorized",
                          "/mesh/ws needs x-mesh-token or ?token= with MESH_AUTH_TOKEN");
  }
  std::string peer_id = request.query_param("peerId").value_or("");
  if (!peer_id.empty() && !api::is_identifier(peer_id)) {
    return error_response(400, "invalid_request", "peerId: expected a peer id");
  }
  return net::Response::upgrade(std::make_shared<MeshSocket>(svc, std::move(peer_id)));
}

// ---- /agent-mesh/* ----

asio::awaitable<net::Response> agent_mesh_peers(ServicePtr svc, net::Request request) {
  const std::string agent_id = request.param("agentId");
  {
    auto check = refuse_mesh_agents(svc, std::vector<std::string>{agent_id});
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  store::Store* st = svc->store.get();
  auto call =
      st->run([st]() -> core::Result<std::pair<std::vector<store::Agent>, std::set<std::string>>> {
        auto agents = st->list_agents(store::Approval::approved, 0);
        if (!agents) return agents.error();
        return std::make_pair(std::move(*agents), mesh_blacklisted_ids(*st));
      });
  auto listed = co_await std::move(call);
  if (!listed) co_return net::Response::error(listed.error());
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& a : listed->first) {
    if (a.info.id == agent_id || listed->second.count(a.info.id)) continue;
    if (svc->now() - a.last_seen_ms > svc->options.agent_online_ms) continue;
    if (refusal_reason(*svc, a)) continue;
    peers.push_back(a.info.id);
  }
  co_return net::Response::json(200, {{"peers", peers}});
}

// Not a local type of the coroutine below: GCC's -Wsubobject-linkage in unity builds.
struct MeshModelsListing {
  std::vector<store::Agent> agents;
  std::vector<store::AgentTunnel> tunnels;
  std::set<std::string> blacklisted;
};

asio::awaitable<net::Response> agent_mesh_models(ServicePtr svc, net::Request request) {
  const std::string provider = request.query_param("provider").value_or("");
  const bool with_blacklisted = request.query_param("includeBlacklisted").value_or("") == "true";
  using Listed = MeshModelsListing;
  store::Store* st = svc->store.get();
  auto call = st->run([st]() -> core::Result<Listed> {
    auto agents = st->list_agents(store::Approval::approved, 0);
    if (!agents) return agents.error();
    auto tunnels = st->agent_mesh().list_tunnels();
    if (!tunnels) return tunnels.error();
    return Listed{std::move(*agents), std::move(*tunnels), mesh_blacklisted_ids(*st)};
  });
  auto listed = co_await std::move(call);
  if (!listed) co_return net::Response::error(listed.error());
  std::map<std::string, int> connected;
  for (const auto& t : listed->tunnels) {
    if (t.state != "connected") continue;
    connected[t.from_agent]++;
    connected[t.to_agent]++;
  }
  nlohmann::json models = nlohmann::json::array();
  for (const auto& a : listed->agents) {
    if (svc->now() - a.last_seen_ms > svc->options.agent_online_ms) continue;
    if (!with_blacklisted && listed->blacklisted.count(a.info.id)) continue;
    auto meta = nlohmann::json::parse(a.info.metadata_json, nullptr, false);
    const std::string agent_provider =
        meta.is_object() ? meta.value("localModelProvider", "edgecoder-local") : "edgecoder-local";
    if (!provider.empty() && provider != agent_provider) continue;
    nlohmann::json catalog = nlohmann::json::array();
    if (!a.info.active_model.empty()) catalog.push_back(a.info.active_model);
    models.push_back({{"agentId", a.info.id},
                      {"provider", agent_provider},
                      {"modelCatalog", catalog},
                      {"maxConcurrentTasks", a.info.max_concurrent_tasks},
                      {"connectedPeers", connected[a.info.id]}});
  }
  co_return net::Response::json(200, {{"models", models}, {"generatedAtMs", svc->now()}});
}

asio::awaitable<net::Response> agent_mesh_connect(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  const std::string from = mesh_agent_field(r, "fromAgentId");
  const std::string to = mesh_agent_field(r, "toAgentId");
  if (r.ok() && from == to) r.fail("toAgentId", "an agent does not open a tunnel to itself");
  if (!r.ok()) co_return net::Response::error(*r.error());
  {
    auto check = refuse_mesh_agents(svc, std::vector<std::string>{from, to});
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  const std::string token = core::crypto::random_hex(24);
  store::Store* st = svc->store.get();
  auto call =
      st->run([st, from, to, token] { return st->agent_mesh().open_tunnel(from, to, token); });
  auto opened = co_await std::move(call);
  if (!opened) co_return net::Response::error(opened.error());
  nlohmann::json out = {{"ok", true}, {"token", opened->first.token}};
  if (opened->second) out["reused"] = true;
  co_return net::Response::json(200, out);
}

asio::awaitable<net::Response> agent_mesh_accept(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  const std::string agent = mesh_agent_field(r, "agentId");
  const std::string token = r.str("token", true, 1, 128);
  if (!r.ok()) co_return net::Response::error(*r.error());
  {
    auto check = refuse_mesh_agents(svc, std::vector<std::string>{agent});
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  store::Store* st = svc->store.get();
  auto call = st->run([st, token, agent] { return st->agent_mesh().accept_tunnel(token, agent); });
  auto accepted = co_await std::move(call);
  if (!accepted) co_return net::Response::error(accepted.error());
  co_return net::Response::json(200, {{"ok", true}});
}

asio::awaitable<net::Response> agent_mesh_relay(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  const std::string token = r.str("token", true, 1, 128);
  const std::string from = mesh_agent_field(r, "fromAgentId");
  const std::string payload = r.str("payload", true, 0, request.body.size());
  if (!r.ok()) co_return net::Response::error(*r.error());
  if (mesh_text_length(payload) > kMeshRelayPayloadMax) {
    co_return error_response(
        413, "relay_payload_too_large",
        "payload: at most " + std::to_string(kMeshRelayPayloadMax) + " characters");
  }
  {
    auto check = refuse_mesh_agents(svc, std::vector<std::string>{from});
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  const store::RateLimit agent_limit{"relay:" + from, 10'000,
                                     svc->options.relay_rate_limit_per_10s};
  const store::RateLimit tunnel_limit{"tunnel:" + token, 60'000,
                                      svc->options.tunnel_max_relays_per_min};
  store::Store* st = svc->store.get();
  auto call = st->run([st, token, from, agent_limit, tunnel_limit] {
    return st->agent_mesh().relay_tunnel(token, from, agent_limit, tunnel_limit);
  });
  auto relayed = co_await std::move(call);
  if (!relayed) co_return net::Response::error(relayed.error());
  switch (relayed->status) {
    case store::RelayOutcome::Status::agent_rate_limited:
      co_return error_response(429, "relay_rate_limited",
                               "more than RELAY_RATE_LIMIT_PER_10S relays by " + from + " in 10 s");
    case store::RelayOutcome::Status::tunnel_cap_reached:
      co_return error_response(429, "tunnel_relay_cap_reached",
                               "more than TUNNEL_MAX_RELAYS_PER_MIN relays on this tunnel in a "
                               "minute");
    case store::RelayOutcome::Status::relayed:
      break;
  }
  // The payload is discarded: tunnels are bookkeeping, the coordinator relays no bytes.
  co_return net::Response::json(200, {{"ok", true}, {"relayCount", relayed->relay_count}});
}

asio::awaitable<net::Response> agent_mesh_close(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  const std::string from = mesh_agent_field(r, "fromAgentId");
  const std::string token = r.str("token", true, 1, 128);
  const std::string reason = r.str("reason", false, 0, 256, "closed");
  if (!r.ok()) co_return net::Response::error(*r.error());
  store::Store* st = svc->store.get();
  auto call = st->run(
      [st, token, from, reason] { return st->agent_mesh().close_tunnel(token, from, reason); });
  auto closed = co_await std::move(call);
  if (!closed) co_return net::Response::error(closed.error());
  co_return net::Response::json(200, {{"ok", true}});
}

asio::awaitable<net::Response> agent_mesh_close_ack(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  const std::string agent = mesh_agent_field(r, "agentId");
  const std::string token = r.str("token", true, 1, 128);
  if (!r.ok()) co_return net::Response::error(*r.error());
  store::Store* st = svc->store.get();
  auto call =
      st->run([st, agent, token] { return st->agent_mesh().ack_tunnel_close(agent, token); });
  auto acked = co_await std::move(call);
  if (!acked) co_return net::Response::error(acked.error());
  co_return net::Response::json(200, {{"ok", true}, {"acknowledged", *acked}});
}

asio::awaitable<net::Response> direct_work_offer(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  store::DirectWorkOffer offer;
  offer.from_agent = mesh_agent_field(r, "fromAgentId");
  offer.to_agent = mesh_agent_field(r, "toAgentId");
  offer.work_type = r.one_of("workType", {"code_task", "model_inference"}, "code_task");
  offer.language = r.str("language", false, 1, 32, "python");
  offer.input = r.str("input", true, 1, kMeshOfferInputMax);
  if (r.ok() && !api::is_identifier(offer.language, 32)) r.fail("language", "expected a language");
  if (r.ok() && offer.from_agent == offer.to_agent) {
    r.fail("toAgentId", "an agent does not offer work to itself");
  }
  if (!r.ok()) co_return net::Response::error(*r.error());
  {
    auto check =
        refuse_mesh_agents(svc, std::vector<std::string>{offer.from_agent, offer.to_agent});
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  offer.offer_id = new_uuid();
  const store::RateLimit limit{"offer:" + offer.from_agent, 10'000,
                               svc->options.direct_work_offers_per_10s};
  store::Store* st = svc->store.get();
  auto call = st->run([st, offer, limit] { return st->agent_mesh().create_offer(offer, limit); });
  auto created = co_await std::move(call);
  if (!created) co_return net::Response::error(created.error());
  if (*created == store::RateOutcome::limited) {
    co_return error_response(
        429, "direct_work_offer_rate_limited",
        "more than DIRECT_WORK_OFFERS_PER_10S offers by " + offer.from_agent + " in 10 s");
  }
  core::log::info("coordinator", "direct_work_offered",
                  {{"offer", offer.offer_id}, {"from", offer.from_agent}, {"to", offer.to_agent}});
  co_return net::Response::json(200, {{"ok", true}, {"offerId", offer.offer_id}});
}

asio::awaitable<net::Response> direct_work_accept(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  const std::string offer_id = r.str("offerId", true, 1, 128);
  const std::string by = mesh_agent_field(r, "byAgentId");
  if (!r.ok()) co_return net::Response::error(*r.error());
  {
    auto check = refuse_mesh_agents(svc, std::vector<std::string>{by});
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  store::Store* st = svc->store.get();
  // Work from an agent blacklisted since it offered is not handed out.
  auto sender = st->run([st, offer_id]() -> std::optional<std::string> {
    auto offer = st->agent_mesh().get_offer(offer_id);
    if (!offer) return std::nullopt;
    if (blacklist_reason(*st, offer->from_agent)) return offer->from_agent;
    return std::nullopt;
  });
  if (auto blocked = co_await std::move(sender)) {
    co_return error_response(403, "agent_blacklisted",
                             "the offering agent " + *blocked + " is blacklisted",
                             {{"agentId", *blocked}});
  }
  auto call = st->run([st, offer_id, by] { return st->agent_mesh().accept_offer(offer_id, by); });
  auto accepted = co_await std::move(call);
  if (!accepted) co_return net::Response::error(accepted.error());
  co_return net::Response::json(
      200, {{"ok", true}, {"accepted", true}, {"offer", mesh_offer_json(*accepted)}});
}

asio::awaitable<net::Response> direct_work_result(ServicePtr svc, net::Request request) {
  auto body = json_body(request);
  if (!body) co_return net::Response::error(body.error());
  api::JsonReader r(*body);
  const std::string offer_id = r.str("offerId", true, 1, 128);
  const std::string by = mesh_agent_field(r, "byAgentId");
  const bool ok = r.boolean("ok", false, true);
  const std::string output = r.str("output", false, 0, kMeshOutputMax);
  const std::string error = r.str("error", false, 0, kMeshOutputMax);
  const std::int64_t duration = r.number("durationMs", 0, 1e12, 0);
  if (!r.ok()) co_return net::Response::error(*r.error());
  {
    auto check = refuse_mesh_agents(svc, std::vector<std::string>{by});
    if (auto refused = co_await std::move(check)) co_return std::move(*refused);
  }
  store::Store* st = svc->store.get();
  auto call = st->run([st, offer_id, by, ok, output, error, duration] {
    return st->agent_mesh().complete_offer(offer_id, by, ok, output, error, duration);
  });
  auto done = co_await std::move(call);
  if (!done) co_return net::Response::error(done.error());
  core::log::info("coordinator", "direct_work_completed",
                  {{"offer", offer_id}, {"by", by}, {"ok", ok}, {"duration_ms", duration}});
  // Peer-direct work earns no credits: nothing is written to the ledger.
  co_return net::Response::json(200, {{"ok", true}});
}

asio::awaitable<net::Response> direct_work_audit(ServicePtr svc, net::Request request) {
  auto limit = request.query_int("limit", 1, 500, 100);
  if (!limit) co_return net::Response::error(limit.error());
  const int n = static_cast<int>(*limit);
  store::Store* st = svc->store.get();
  auto call = st->run([st, n] { return st->agent_mesh().list_offers(n); });
  auto offers = co_await std::move(call);
  if (!offers) co_return net::Response::error(offers.error());
  nlohmann::json events = nlohmann::json::array();
  for (const auto& o : *offers) events.push_back(mesh_offer_json(o));
  co_return net::Response::json(200, {{"events", events}});
}

asio::awaitable<net::Response> direct_work_get(ServicePtr svc, net::Request request) {
  const std::string offer_id = request.param("offerId");
  store::Store* st = svc->store.get();
  auto call = st->run([st, offer_id] { return st->agent_mesh().get_offer(offer_id); });
  auto offer = co_await std::move(call);
  if (!offer) co_return net::Response::error(offer.error());
  co_return net::Response::json(200, mesh_offer_json(*offer));
}

}  // namespace detail

asio::awaitable<core::Result<nlohmann::json>> agent_mesh_heartbeat(ServicePtr svc,
                                                                   std::string agent_id) {
  store::Store* st = svc->store.get();
  auto call = st->run(
      [st, agent_id]() -> core::Result<std::pair<store::AgentMeshInbox, std::set<std::string>>> {
        auto inbox = st->agent_mesh().agent_mesh_inbox(agent_id, detail::kMeshHeartbeatOffers);
        if (!inbox) return inbox.error();
        std::set<std::string> blocked;
        for (const auto& t : inbox->invites) {
          if (blacklist_reason(*st, t.from_agent)) blocked.insert(t.from_agent);
        }
        for (const auto& o : inbox->offers) {
          if (blacklist_reason(*st, o.from_agent)) blocked.insert(o.from_agent);
        }
        return std::make_pair(std::move(*inbox), std::move(blocked));
      });
  auto got = co_await std::move(call);
  if (!got) co_return got.error();
  const store::AgentMeshInbox& inbox = got->first;
  const std::set<std::string>& blocked = got->second;
  nlohmann::json invites = nlohmann::json::array();
  for (const auto& t : inbox.invites) {
    if (blocked.count(t.from_agent)) continue;
    invites.push_back({{"fromAgentId", t.from_agent}, {"token", t.token}});
  }
  nlohmann::json notices = nlohmann::json::array();
  for (const auto& n : inbox.close_notices) {
    notices.push_back({{"peerAgentId", n.peer_agent_id}, {"token", n.token}, {"reason", n.reason}});
  }
  nlohmann::json offers = nlohmann::json::array();
  for (const auto& o : inbox.offers) {
    if (blocked.count(o.from_agent)) continue;
    offers.push_back(detail::mesh_offer_json(o));
  }
  co_return nlohmann::json{
      {"tunnelInvites", invites}, {"tunnelCloseNotices", notices}, {"directWorkOffers", offers}};
}

void sweep_agent_mesh(Service& svc) {
  const std::int64_t t = svc.now();
  store::AgentMeshSweep s;
  s.tunnel_idle_before_ms = t - svc.options.tunnel_idle_ttl_ms;
  s.agent_seen_before_ms = t - svc.options.agent_online_ms;
  s.offer_before_ms = t - svc.options.direct_work_offer_ttl_ms;
  s.notice_before_ms = t - svc.options.direct_work_offer_ttl_ms;
  s.peer_before_ms = t - svc.options.mesh_peer_ttl_ms;
  auto swept = svc.store->agent_mesh().sweep_agent_mesh(s);
  if (!swept) {
    core::log::warn("coordinator", "agent_mesh_sweep_failed", {{"detail", swept.error().detail}});
    return;
  }
  if (swept->tunnels_closed > 0 || swept->offers_expired > 0 || swept->peers_removed > 0) {
    core::log::info("coordinator", "agent_mesh_swept",
                    {{"tunnels_closed", swept->tunnels_closed},
                     {"offers_expired", swept->offers_expired},
                     {"peers_removed", swept->peers_removed}});
  }
}

void Service::mesh_socket_opened(const std::string& peer_id) {
  std::lock_guard lock(sockets_mu_);
  mesh_sockets_.insert(peer_id);
}

void Service::mesh_socket_closed(const std::string& peer_id) {
  std::lock_guard lock(sockets_mu_);
  if (auto it = mesh_sockets_.find(peer_id); it != mesh_sockets_.end()) mesh_sockets_.erase(it);
}

bool Service::mesh_socket_open(const std::string& peer_id) const {
  std::lock_guard lock(sockets_mu_);
  return mesh_sockets_.count(peer_id) > 0;
}

void add_mesh_routes(net::Router& router, ServicePtr svc) {
  router.add("POST", "/mesh/register-peer",
             [svc](net::Request r) { return detail::mesh_register_peer(svc, std::move(r)); });
  router.add("GET", "/mesh/peers",
             [svc](net::Request r) { return detail::mesh_list_peers(svc, std::move(r)); });
  router.add_sync("GET", "/mesh/ws",
                  [svc](const net::Request& r) { return detail::mesh_ws(svc, r); });
  router.add("GET", "/agent-mesh/peers/:agentId",
             [svc](net::Request r) { return detail::agent_mesh_peers(svc, std::move(r)); });
  router.add("GET", "/agent-mesh/models/available",
             [svc](net::Request r) { return detail::agent_mesh_models(svc, std::move(r)); });
  router.add("POST", "/agent-mesh/connect",
             [svc](net::Request r) { return detail::agent_mesh_connect(svc, std::move(r)); });
  router.add("POST", "/agent-mesh/accept",
             [svc](net::Request r) { return detail::agent_mesh_accept(svc, std::move(r)); });
  router.add("POST", "/agent-mesh/relay",
             [svc](net::Request r) { return detail::agent_mesh_relay(svc, std::move(r)); });
  router.add("POST", "/agent-mesh/close",
             [svc](net::Request r) { return detail::agent_mesh_close(svc, std::move(r)); });
  router.add("POST", "/agent-mesh/close-ack",
             [svc](net::Request r) { return detail::agent_mesh_close_ack(svc, std::move(r)); });
  router.add("POST", "/agent-mesh/direct-work/offer",
             [svc](net::Request r) { return detail::direct_work_offer(svc, std::move(r)); });
  router.add("POST", "/agent-mesh/direct-work/accept",
             [svc](net::Request r) { return detail::direct_work_accept(svc, std::move(r)); });
  router.add("POST", "/agent-mesh/direct-work/result",
             [svc](net::Request r) { return detail::direct_work_result(svc, std::move(r)); });
  router.add("GET", "/agent-mesh/direct-work/audit",
             [svc](net::Request r) { return detail::direct_work_audit(svc, std::move(r)); });
  router.add("GET", "/agent-mesh/direct-work/:offerId",
             [svc](net::Request r) { return detail::direct_work_get(svc, std::move(r)); });
}

}  // namespace edgecoder::coordinator

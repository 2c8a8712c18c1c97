// AgentMeshStore over sql::Db, for both backends (store/agent_mesh.h). Rate limits are fixed
// windows counted by one upsert that refuses at the limit, so concurrent coordinators on one
// PostgreSQL never count past it; a refused take changes nothing.
#include <functional>
#include <memory>
#include <optional>

#include "store/sql.h"

namespace edgecoder::store::sql {

namespace {

constexpr const char* kMeshPeerCols =
    "peer_id, public_key_pem, coordinator_url, network_mode, role, registered_at_ms, last_seen_ms";
constexpr const char* kMeshTunnelCols =
    "token, from_agent, to_agent, state, relay_count, created_at_ms, last_activity_ms";
constexpr const char* kMeshOfferCols =
    "offer_id, from_agent, to_agent, work_type, language, input, status, created_at_ms, "
    "accepted_at_ms, completed_at_ms, ok, output, error, duration_ms";

MeshPeer mesh_peer_from(const Row& r) {
  return MeshPeer{r.s(0), r.s(1), r.s(2), r.s(3), r.s(4), r.i(5), r.i(6)};
}

AgentTunnel mesh_tunnel_from(const Row& r) {
  return AgentTunnel{r.s(0), r.s(1), r.s(2), r.s(3), r.i(4), r.i(5), r.i(6)};
}

DirectWorkOffer mesh_offer_from(const Row& r) {
  DirectWorkOffer o;
  o.offer_id = r.s(0);
  o.from_agent = r.s(1);
  o.to_agent = r.s(2);
  o.work_type = r.s(3);
  o.language = r.s(4);
  o.input = r.s(5);
  o.status = r.s(6);
  o.created_at_ms = r.i(7);
  o.accepted_at_ms = r.i(8);
  o.completed_at_ms = r.i(9);
  o.ok = r.i(10) != 0;
  o.output = r.s(11);
  o.error = r.s(12);
  o.duration_ms = r.i(13);
  return o;
}

// Marks a job's outcome that must roll its transaction back (a refused second rate limit).
constexpr std::string_view kMeshRollback = "agent_mesh_rollback";

class SqlAgentMesh final : public AgentMeshStore {
 public:
  SqlAgentMesh(Db& db, std::function<std::int64_t()> clock)
      : db_(db),
        clock_(std::move(clock)),
        for_update_(db.dialect() == Dialect::postgres ? " FOR UPDATE" : "") {}

  core::Result<MeshPeerPut> put_mesh_peer(const MeshPeer& peer) override {
    if (peer.peer_id.empty()) {
      return core::Error(core::Errc::invalid_argument, "mesh peer id is empty");
    }
    MeshPeerPut out;
    const std::int64_t t = now();
    auto r = db_.write([&](Tx& tx) -> core::Result<void> {
      auto rows = tx.query(
          "INSERT INTO mesh_peers (peer_id, public_key_pem, coordinator_url, network_mode, role, "
          "registered_at_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT "
          "(peer_id) DO UPDATE SET public_key_pem = excluded.public_key_pem, coordinator_url = "
          "excluded.coordinator_url, network_mode = excluded.network_mode, role = excluded.role, "
          "last_seen_ms = excluded.last_seen_ms RETURNING " +
              std::string(kMeshPeerCols),
          {peer.peer_id, peer.public_key_pem, peer.coordinator_url, peer.network_mode, peer.role,
           t});
      if (!rows) return rows.error();
      out.peer = mesh_peer_from(rows->at(0));
      out.created = out.peer.registered_at_ms == t && out.peer.last_seen_ms == t;
      auto count = tx.query("SELECT COUNT(*) FROM mesh_peers", {});
      if (!count) return count.error();
      out.peer_count = count->at(0).i(0);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<std::vector<MeshPeer>> list_mesh_peers() override {
    std::vector<MeshPeer> out;
    auto r = db_.read([&](Tx& tx) -> core::Result<void> {
      auto rows = tx.query(
          std::string("SELECT ") + kMeshPeerCols + " FROM mesh_peers ORDER BY peer_id", {});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) out.push_back(mesh_peer_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<bool> touch_mesh_peer(const std::string& peer_id) override {
    bool found = false;
    auto r = db_.write([&](Tx& tx) -> core::Result<void> {
      auto rows =
          tx.query("UPDATE mesh_peers SET last_seen_ms = $2 WHERE peer_id = $1", {peer_id, now()});
      if (!rows) return rows.error();
      found = tx.changes() > 0;
      return {};
    });
    if (!r) return r.error();
    return found;
  }

  core::Result<std::pair<AgentTunnel, bool>> open_tunnel(const std::string& from_agent,
                                                         const std::string& to_agent,
                                                         const std::string& new_token) override {
    if (from_agent.empty() || to_agent.empty() || new_token.empty()) {
      return core::Error(core::Errc::invalid_argument, "tunnel agent or token is empty");
    }
    std::pair<AgentTunnel, bool> out;
    const std::int64_t t = now();
    auto r = db_.write([&](Tx& tx) -> core::Result<void> {
      auto rows = tx.query(std::string("SELECT ") + kMeshTunnelCols +
                               " FROM agent_tunnels WHERE (from_agent = $1 AND to_agent = $2) OR "
                               "(from_agent = $2 AND to_agent = $1) ORDER BY created_at_ms "
                               "LIMIT 1" +
                               for_update_,
                           {from_agent, to_agent});
      if (!rows) return rows.error();
      if (!rows->empty()) {
        out = {mesh_tunnel_from(rows->at(0)), true};
        return {};
      }
      AgentTunnel tunnel{new_token, from_agent, to_agent, "invited", 0, t, t};
      auto ins = tx.query(
          "INSERT INTO agent_tunnels (token, from_agent, to_agent, state, relay_count, "
          "created_at_ms, last_activity_ms) VALUES ($1, $2, $3, 'invited', 0, $4, $4)",
          {tunnel.token, tunnel.from_agent, tunnel.to_agent, t});
      if (!ins) return ins.error();
      out = {tunnel, false};
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<AgentTunnel> accept_tunnel(const std::string& token,
                                          const std::string& agent) override {
    core::Result<AgentTunnel> out = tunnel_not_found(token);
    auto r = db_.write([&](Tx& tx) -> core::Result<void> {
      auto tunnel = load_tunnel(tx, token);
      if (!tunnel) return tunnel.error();
      if (!*tunnel) return {};
      AgentTunnel tn = **tunnel;
      if (tn.to_agent != agent) {
        out = core::Error(core::Errc::permission_denied, "tunnel_target_mismatch",
                          "the tunnel invites " + tn.to_agent + ", not " + agent);
        return {};
      }
      tn.state = "connected";
      tn.last_activity_ms = now();
      auto upd = tx.query(
          "UPDATE agent_tunnels SET state = 'connected', last_activity_ms = $2 WHERE token = $1",
          {token, tn.last_activity_ms});
      if (!upd) return upd.error();
      out = std::move(tn);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<RelayOutcome> relay_tunnel(const std::string& token, const std::string& from_agent,
                                          const RateLimit& agent_limit,
                                          const RateLimit& tunnel_limit) override {
    core::Result<RelayOutcome> out = tunnel_not_found(token);
    auto r = db_.write([&](Tx& tx) -> core::Result<void> {
      auto tunnel = load_tunnel(tx, token);
      if (!tunnel) return tunnel.error();
      if (!*tunnel) return {};
      const AgentTunnel& tn = **tunnel;
      if (tn.from_agent != from_agent && tn.to_agent != from_agent) {
        out = core::Error(core::Errc::permission_denied, "tunnel_peer_mismatch",
                          from_agent + " is not an end of this tunnel");
        return {};
      }
      auto agent_take = take(tx, agent_limit);
      if (!agent_take) return agent_take.error();
      if (*agent_take == RateOutcome::limited) {
        out = RelayOutcome{RelayOutcome::Status::agent_rate_limited, tn.relay_count};
        return {};
      }
      auto tunnel_take = take(tx, tunnel_limit);
      if (!tunnel_take) return tunnel_take.error();
      if (*tunnel_take == RateOutcome::limited) {
        out = RelayOutcome{RelayOutcome::Status::tunnel_cap_reached, tn.relay_count};
        // Undo the agent's count: a refused relay counts toward nothing.
        return core::Error(core::Errc::conflict, std::string(kMeshRollback), "refused");
      }
      auto upd = tx.query(
          "UPDATE agent_tunnels SET relay_count = relay_count + 1, last_activity_ms = $2 WHERE "
          "token = $1 RETURNING relay_count",
          {token, now()});
      if (!upd) return upd.error();
      out = RelayOutcome{RelayOutcome::Status::relayed, upd->at(0).i(0)};
      return {};
    });
    if (!r && r.error().wire() != kMeshRollback) return r.error();
    return out;
  }

  core::Result<AgentTunnel> close_tunnel(const std::string& token, const std::string& from_agent,
                                         const std::string& reason) override {
    core::Result<AgentTunnel> out = tunnel_not_found(token);
    auto r = db_.write([&](Tx& tx) -> core::Result<void> {
      auto tunnel = load_tunnel(tx, token);
      if (!tunnel) return tunnel.error();
      if (!*tunnel) return {};
      const AgentTunnel tn = **tunnel;
      if (tn.from_agent != from_agent && tn.to_agent != from_agent) {
        out = core::Error(core::Errc::permission_denied, "tunnel_peer_mismatch",
                          from_agent + " is not an end of this tunnel");
        return {};
      }
      const std::string& other = tn.from_agent == from_agent ? tn.to_agent : tn.from_agent;
      if (auto c = close_in(tx, tn, other, from_agent, reason); !c) return c.error();
      out = tn;
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<bool> ack_tunnel_close(const std::string& agent, const std::string& token) override {
    bool removed = false;
    auto r = db_.write([&](Tx& tx) -> core::Result<void> {
      auto rows = tx.query("DELETE FROM tunnel_close_notices WHERE agent_id = $1 AND token = $2",
                           {agent, token});
      if (!rows) return rows.error();
      removed = tx.changes() > 0;
      return {};
    });
    if (!r) return r.error();
    return removed;
  }

  core::Result<std::vector<AgentTunnel>> list_tunnels() override {
    std::vector<AgentTunnel> out;
    auto r = db_.read([&](Tx& tx) -> core::Result<void> {
      auto rows = tx.query(std::string("SELECT ") + kMeshTunnelCols +
                               " FROM agent_tunnels ORDER BY created_at_ms, token",
                           {});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) out.push_back(mesh_tunnel_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<RateOutcome> create_offer(const DirectWorkOffer& offer,
                                         const RateLimit& limit) override {
    if (offer.offer_id.empty() || offer.from_agent.empty() || offer.to_agent.empty() ||
        offer.input.empty()) {
      return core::Error(core::Errc::invalid_argument, "offer id, agents or input is empty");
    }
    RateOutcome out = RateOutcome::limited;
    auto r = db_.write([&](Tx& tx) -> core::Result<void> {
      auto taken = take(tx, limit);
      if (!taken) return taken.error();
      out = *taken;
      if (out == RateOutcome::limited) return {};
      auto ins = tx.query(
          "INSERT INTO direct_work_offers (offer_id, from_agent, to_agent, work_type, language, "
          "input, status, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, 'offered', $7)",
          {offer.offer_id, offer.from_agent, offer.to_agent, offer.work_type, offer.language,
           offer.input, now()});
      if (!ins) return ins.error();
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<DirectWorkOffer> accept_offer(const std::string& offer_id,
                                             const std::string& by_agent) override {
    core::Result<DirectWorkOffer> out = offer_not_found(offer_id);
    auto r = db_.write([&](Tx& tx) -> core::Result<void> {
      auto offer = load_offer(tx, offer_id);
      if (!offer) return offer.error();
      if (!*offer) return {};
      DirectWorkOffer o = **offer;
      if (o.to_agent != by_agent) {
        out = core::Error(core::Errc::permission_denied, "offer_target_mismatch",
                          "the offer is for " + o.to_agent + ", not " + by_agent);
        return {};
      }
      if (o.status != "offered") {
        out = core::Error(core::Errc::conflict, "offer_not_available",
                          "the offer is " + o.status + ", not offered");
        return {};
      }
      o.status = "accepted";
      o.accepted_at_ms = now();
      auto upd = tx.query(
          "UPDATE direct_work_offers SET status = 'accepted', accepted_at_ms = $2 WHERE "
          "offer_id = $1",
          {offer_id, o.accepted_at_ms});
      if (!upd) return upd.error();
      out = std::move(o);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<DirectWorkOffer> complete_offer(const std::string& offer_id,
                                               const std::string& by_agent, bool ok,
                                               const std::string& output, const std::string& error,
                                               std::int64_t duration_ms) override {
    core::Result<DirectWorkOffer> out = offer_not_found(offer_id);
    auto r = db_.write([&](Tx& tx) -> core::Result<void> {
      auto offer = load_offer(tx, offer_id);
      if (!offer) return offer.error();
      if (!*offer) return {};
      DirectWorkOffer o = **offer;
      if (o.to_agent != by_agent) {
        out = core::Error(core::Errc::permission_denied, "offer_target_mismatch",
                          "the offer is for " + o.to_agent + ", not " + by_agent);
        return {};
      }
      if (o.status != "accepted") {
        out = core::Error(core::Errc::conflict, "offer_not_accepted",
                          "the offer is " + o.status + ", not accepted");
        return {};
      }
      o.status = "completed";
      o.completed_at_ms = now();
      o.ok = ok;
      o.output = output;
      o.error = error;
      o.duration_ms = duration_ms;
      auto upd = tx.query(
          "UPDATE direct_work_offers SET status = 'completed', completed_at_ms = $2, ok = $3, "
          "output = $4, error = $5, duration_ms = $6 WHERE offer_id = $1",
          {offer_id, o.completed_at_ms, std::int64_t{ok ? 1 : 0}, output, error, duration_ms});
      if (!upd) return upd.error();
      out = std::move(o);
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<DirectWorkOffer> get_offer(const std::string& offer_id) override {
    core::Result<DirectWorkOffer> out = offer_not_found(offer_id);
    auto r = db_.read([&](Tx& tx) -> core::Result<void> {
      auto offer = load_offer(tx, offer_id, false);
      if (!offer) return offer.error();
      if (*offer) out = **offer;
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<std::vector<DirectWorkOffer>> list_offers(int limit) override {
    std::vector<DirectWorkOffer> out;
    auto r = db_.read([&](Tx& tx) -> core::Result<void> {
      auto rows = tx.query(std::string("SELECT ") + kMeshOfferCols +
                               " FROM direct_work_offers ORDER BY created_at_ms DESC, offer_id "
                               "DESC LIMIT $1",
                           {std::int64_t{limit}});
      if (!rows) return rows.error();
      out.clear();
      for (const auto& row : *rows) out.push_back(mesh_offer_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<AgentMeshInbox> agent_mesh_inbox(const std::string& agent, int max_offers) override {
    AgentMeshInbox out;
    auto r = db_.read([&](Tx& tx) -> core::Result<void> {
      out = AgentMeshInbox{};
      auto invites = tx.query(std::string("SELECT ") + kMeshTunnelCols +
                                  " FROM agent_tunnels WHERE to_agent = $1 AND state = 'invited' "
                                  "ORDER BY created_at_ms, token",
                              {agent});
      if (!invites) return invites.error();
      for (const auto& row : *invites) out.invites.push_back(mesh_tunnel_from(row));
      auto notices = tx.query(
          "SELECT agent_id, token, peer_agent_id, reason, created_at_ms FROM "
          "tunnel_close_notices WHERE agent_id = $1 ORDER BY created_at_ms, token",
          {agent});
      if (!notices) return notices.error();
      for (const auto& row : *notices) {
        out.close_notices.push_back(
            TunnelCloseNotice{row.s(0), row.s(1), row.s(2), row.s(3), row.i(4)});
      }
      auto offers = tx.query(std::string("SELECT ") + kMeshOfferCols +
                                 " FROM direct_work_offers WHERE to_agent = $1 AND status = "
                                 "'offered' ORDER BY created_at_ms, offer_id LIMIT $2",
                             {agent, std::int64_t{max_offers}});
      if (!offers) return offers.error();
      for (const auto& row : *offers) out.offers.push_back(mesh_offer_from(row));
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<AgentMeshSwept> sweep_agent_mesh(const AgentMeshSweep& s) override {
    AgentMeshSwept out;
    auto r = db_.write([&](Tx& tx) -> core::Result<void> {
      out = AgentMeshSwept{};
      // An end is gone when it is unknown or was not seen since agent_seen_before_ms.
      auto stale = tx.query(
          std::string("SELECT ") + kMeshTunnelCols +
              ", CASE WHEN last_activity_ms < $1 THEN 'idle_timeout' ELSE 'peer_offline' END "
              "FROM agent_tunnels WHERE last_activity_ms < $1 OR NOT EXISTS (SELECT 1 FROM "
              "agents a WHERE a.id = from_agent AND a.last_seen_ms >= $2) OR NOT EXISTS (SELECT "
              "1 FROM agents a WHERE a.id = to_agent AND a.last_seen_ms >= $2)",
          {s.tunnel_idle_before_ms, s.agent_seen_before_ms});
      if (!stale) return stale.error();
      for (const auto& row : *stale) {
        AgentTunnel tn = mesh_tunnel_from(row);
        const std::string reason = row.s(7);
        for (const std::string* end : {&tn.from_agent, &tn.to_agent}) {
          auto c = close_in(tx, tn, *end, "", reason);
          if (!c) return c.error();
        }
        ++out.tunnels_closed;
      }
      auto offers = tx.query(
          "UPDATE direct_work_offers SET status = 'expired' WHERE (status = 'offered' AND "
          "created_at_ms < $1) OR (status = 'accepted' AND accepted_at_ms < $1)",
          {s.offer_before_ms});
      if (!offers) return offers.error();
      out.offers_expired = static_cast<int>(tx.changes());
      auto notices = tx.query("DELETE FROM tunnel_close_notices WHERE created_at_ms < $1",
                              {s.notice_before_ms});
      if (!notices) return notices.error();
      auto peers = tx.query("DELETE FROM mesh_peers WHERE last_seen_ms < $1", {s.peer_before_ms});
      if (!peers) return peers.error();
      out.peers_removed = static_cast<int>(tx.changes());
      // Windows are at most a minute long; older ones count for nothing.
      auto windows =
          tx.query("DELETE FROM mesh_rate_windows WHERE window_start_ms < $1", {now() - 120'000});
      if (!windows) return windows.error();
      return {};
    });
    if (!r) return r.error();
    return out;
  }

  core::Result<AgentMeshCounts> agent_mesh_counts() override {
    AgentMeshCounts out;
    auto r = db_.read([&](Tx& tx) -> core::Result<void> {
      auto rows = tx.query(
          "SELECT (SELECT COUNT(*) FROM agent_tunnels), (SELECT COUNT(*) FROM direct_work_offers "
          "WHERE status = 'accepted'), (SELECT COUNT(*) FROM direct_work_offers WHERE status = "
          "'completed')",
          {});
      if (!rows) return rows.error();
      out = AgentMeshCounts{rows->at(0).i(0), rows->at(0).i(1), rows->at(0).i(2)};
      return {};
    });
    if (!r) return r.error();
    return out;
  }

 private:
  std::int64_t now() const { return clock_(); }

  static core::Error tunnel_not_found(const std::string& token) {
    (void)token;  // never echoed: a tunnel token is a capability
    return core::Error(core::Errc::not_found, "tunnel_not_found", "no open tunnel has this token");
  }
  static core::Error offer_not_found(const std::string& offer_id) {
    return core::Error(core::Errc::not_found, "offer_not_found", "no offer " + offer_id);
  }

  core::Result<std::optional<AgentTunnel>> load_tunnel(Tx& tx, const std::string& token) {
    auto rows = tx.query(std::string("SELECT ") + kMeshTunnelCols +
                             " FROM agent_tunnels WHERE token = $1" + for_update_,
                         {token});
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<AgentTunnel>();
    return std::optional<AgentTunnel>(mesh_tunnel_from(rows->at(0)));
  }

  // lock: FOR UPDATE on PostgreSQL (in write jobs only; reads are read-only transactions).
  core::Result<std::optional<DirectWorkOffer>> load_offer(Tx& tx, const std::string& offer_id,
                                                          bool lock = true) {
    auto rows = tx.query(std::string("SELECT ") + kMeshOfferCols +
                             " FROM direct_work_offers WHERE offer_id = $1" +
                             (lock ? for_update_ : std::string()),
                         {offer_id});
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<DirectWorkOffer>();
    return std::optional<DirectWorkOffer>(mesh_offer_from(rows->at(0)));
  }

  // Removes the tunnel and leaves `notify` a close notice naming `closed_by`.
  core::Result<void> close_in(Tx& tx, const AgentTunnel& tn, const std::string& notify,
                              const std::string& closed_by, const std::string& reason) {
    auto del = tx.query("DELETE FROM agent_tunnels WHERE token = $1", {tn.token});
    if (!del) return del.error();
    auto ins = tx.query(
        "INSERT INTO tunnel_close_notices (agent_id, token, peer_agent_id, reason, "
        "created_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (agent_id, token) DO NOTHING",
        {notify, tn.token, closed_by, reason, now()});
    if (!ins) return ins.error();
    return {};
  }

  // One take of a fixed window: the upsert counts only while under the limit.
  core::Result<RateOutcome> take(Tx& tx, const RateLimit& limit) {
    const std::int64_t t = now();
    const std::int64_t window = limit.window_ms > 0 ? limit.window_ms : 1;
    const std::int64_t start = t - (t % window);
    auto rows = tx.query(
        "INSERT INTO mesh_rate_windows (scope, window_start_ms, count) VALUES ($1, $2, 1) ON "
        "CONFLICT (scope, window_start_ms) DO UPDATE SET count = mesh_rate_windows.count + 1 "
        "WHERE mesh_rate_windows.count < $3 RETURNING count",
        {limit.scope, start, limit.limit});
    if (!rows) return rows.error();
    return rows->empty() || limit.limit <= 0 ? RateOutcome::limited : RateOutcome::taken;
  }

  Db& db_;
  const std::function<std::int64_t()> clock_;
  const std::string for_update_;
};

}  // namespace

std::unique_ptr<AgentMeshStore> make_sql_agent_mesh(Db& db, std::function<std::int64_t()> clock) {
  return std::make_unique<SqlAgentMesh>(db, std::move(clock));
}

}  // namespace edgecoder::store::sql

// The coordinator's agent-mesh state (upstream-coordinator.md §2.4, §2.5): agents registered as
// mesh peers, tunnels between agents (bookkeeping only — no bytes are relayed), their close
// notices, peer-direct work offers, and the fixed-window counters behind the relay and offer
// rate limits. It lives in the store so that several coordinators sharing a PostgreSQL see the
// same tunnels and offers, and a restart loses none. All times are Unix epoch milliseconds.
// Thread-safety: like every store interface, any method from any thread; calls block.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace edgecoder::store {

// An agent (or phone) that registered itself with POST /mesh/register-peer. No token is kept.
struct MeshPeer {
  std::string peer_id;
  std::string public_key_pem;
  std::string coordinator_url;
  std::string network_mode;  // public_mesh | enterprise_overlay
  std::string role;          // agent | phone
  std::int64_t registered_at_ms = 0;
  std::int64_t last_seen_ms = 0;
};

struct MeshPeerPut {
  MeshPeer peer;
  bool created = false;
  std::int64_t peer_count = 0;
};

// A tunnel between two agents: invited (delivered to `to_agent` in its heartbeats until it
// accepts) -> connected. A close removes it and leaves a notice for the other end.
struct AgentTunnel {
  std::string token;
  std::string from_agent;
  std::string to_agent;
  std::string state;  // invited | connected
  std::int64_t relay_count = 0;
  std::int64_t created_at_ms = 0;
  std::int64_t last_activity_ms = 0;
};

// Delivered to `agent_id` in its heartbeats until it acknowledges it (close-ack).
struct TunnelCloseNotice {
  std::string agent_id;
  std::string token;
  std::string peer_agent_id;  // the other end, who closed it (or "" when the coordinator did)
  std::string reason;
  std::int64_t created_at_ms = 0;
};

// offered -> accepted -> completed; offered or accepted offers older than the TTL -> expired.
struct DirectWorkOffer {
  std::string offer_id;
  std::string from_agent;
  std::string to_agent;
  std::string work_type;  // code_task | model_inference
  std::string language;
  std::string input;
  std::string status;
  std::int64_t created_at_ms = 0;
  std::int64_t accepted_at_ms = 0;
  std::int64_t completed_at_ms = 0;
  bool ok = false;  // the result (status completed)
  std::string output;
  std::string error;
  std::int64_t duration_ms = 0;
};

// What an agent's heartbeat carries from the agent mesh.
struct AgentMeshInbox {
  std::vector<AgentTunnel> invites;  // tunnels to it still invited, oldest first
  std::vector<TunnelCloseNotice> close_notices;
  std::vector<DirectWorkOffer> offers;  // offered to it, oldest first
};

// A fixed-window counter: at most `limit` takes per `window_ms` for `scope`.
struct RateLimit {
  std::string scope;
  std::int64_t window_ms = 10'000;
  std::int64_t limit = 1;
};

enum class RateOutcome { taken, limited };

struct RelayOutcome {
  // taken; or which limit refused it (nothing was counted then).
  enum class Status { relayed, agent_rate_limited, tunnel_cap_reached } status = Status::relayed;
  std::int64_t relay_count = 0;
};

struct AgentMeshSweep {
  std::int64_t tunnel_idle_before_ms = 0;  // tunnels without activity since then close
  std::int64_t agent_seen_before_ms = 0;   // tunnels with an end not seen since then close
  std::int64_t offer_before_ms = 0;        // offered/accepted offers older than this expire
  std::int64_t notice_before_ms = 0;       // unacknowledged close notices older than this go
  std::int64_t peer_before_ms = 0;         // mesh peers not seen since then go
};

struct AgentMeshSwept {
  int tunnels_closed = 0;
  int offers_expired = 0;
  int peers_removed = 0;
};

struct AgentMeshCounts {
  std::int64_t tunnels_open = 0;
  std::int64_t offers_accepted = 0;  // currently accepted (running)
  std::int64_t offers_completed = 0;
};

class AgentMeshStore {
 public:
  virtual ~AgentMeshStore() = default;

  // ---- mesh peers ----
  // Inserts or refreshes the peer (registered_at_ms kept, last_seen_ms = now). invalid_argument
  // for an empty id.
  virtual core::Result<MeshPeerPut> put_mesh_peer(const MeshPeer& peer) = 0;
  // By peer id.
  virtual core::Result<std::vector<MeshPeer>> list_mesh_peers() = 0;
  // last_seen_ms = now; false when the peer is unknown.
  virtual core::Result<bool> touch_mesh_peer(const std::string& peer_id) = 0;

  // ---- tunnels ----
  // The open tunnel between the two agents (either direction) with reused=true, or a new one
  // with `new_token`, invited. Returns the tunnel and whether it was reused.
  virtual core::Result<std::pair<AgentTunnel, bool>> open_tunnel(const std::string& from_agent,
                                                                 const std::string& to_agent,
                                                                 const std::string& new_token) = 0;
  // The invited agent accepts: connected (idempotent). not_found "tunnel_not_found";
  // permission_denied "tunnel_target_mismatch" when `agent` is not the invited end.
  virtual core::Result<AgentTunnel> accept_tunnel(const std::string& token,
                                                  const std::string& agent) = 0;
  // Counts one relay by `from_agent` (an end of the tunnel) under both limits, all or nothing.
  // not_found "tunnel_not_found"; permission_denied "tunnel_peer_mismatch".
  virtual core::Result<RelayOutcome> relay_tunnel(const std::string& token,
                                                  const std::string& from_agent,
                                                  const RateLimit& agent_limit,
                                                  const RateLimit& tunnel_limit) = 0;
  // An end closes the tunnel: it is removed and the other end gets a close notice. not_found
  // "tunnel_not_found"; permission_denied "tunnel_peer_mismatch".
  virtual core::Result<AgentTunnel> close_tunnel(const std::string& token,
                                                 const std::string& from_agent,
                                                 const std::string& reason) = 0;
  // Removes the agent's close notice for the token; false when there was none.
  virtual core::Result<bool> ack_tunnel_close(const std::string& agent,
                                              const std::string& token) = 0;
  // Every open tunnel, oldest first.
  virtual core::Result<std::vector<AgentTunnel>> list_tunnels() = 0;

  // ---- peer-direct work ----
  // Stores the offer (status offered, created_at_ms = now) if the limit allows it.
  // invalid_argument for an empty id, agent or input.
  virtual core::Result<RateOutcome> create_offer(const DirectWorkOffer& offer,
                                                 const RateLimit& limit) = 0;
  // not_found "offer_not_found"; permission_denied "offer_target_mismatch" (not the target);
  // conflict "offer_not_available" (not offered any more).
  virtual core::Result<DirectWorkOffer> accept_offer(const std::string& offer_id,
                                                     const std::string& by_agent) = 0;
  // Records the result of an accepted offer: completed. not_found, permission_denied
  // "offer_target_mismatch", conflict "offer_not_accepted".
  virtual core::Result<DirectWorkOffer> complete_offer(const std::string& offer_id,
                                                       const std::string& by_agent, bool ok,
                                                       const std::string& output,
                                                       const std::string& error,
                                                       std::int64_t duration_ms) = 0;
  // not_found "offer_not_found".
  virtual core::Result<DirectWorkOffer> get_offer(const std::string& offer_id) = 0;
  // Newest first, at most limit.
  virtual core::Result<std::vector<DirectWorkOffer>> list_offers(int limit) = 0;

  // What the agent's heartbeat delivers (at most max_offers offers).
  virtual core::Result<AgentMeshInbox> agent_mesh_inbox(const std::string& agent,
                                                        int max_offers) = 0;
  // Expiry: idle tunnels and tunnels with a vanished end close (both ends get a notice with
  // reason "idle_timeout" or "peer_offline"), stale offers expire, old notices, peers and
  // rate windows go.
  virtual core::Result<AgentMeshSwept> sweep_agent_mesh(const AgentMeshSweep& sweep) = 0;
  virtual core::Result<AgentMeshCounts> agent_mesh_counts() = 0;
};

}  // namespace edgecoder::store

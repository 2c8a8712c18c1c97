-- EdgeCoder schema 10 (SQLite): the agent mesh. Agents registered as mesh peers (no token
-- is kept), tunnels between agents (bookkeeping only), their close notices, peer-direct work
-- offers, and the fixed-window counters of the relay and offer rate limits. In the store so that
-- coordinators sharing it see the same tunnels and offers, and a restart loses none.

CREATE TABLE mesh_peers (
  peer_id TEXT PRIMARY KEY,
  public_key_pem TEXT NOT NULL,
  coordinator_url TEXT NOT NULL,
  network_mode TEXT NOT NULL,
  role TEXT NOT NULL,
  registered_at_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE agent_tunnels (
  token TEXT PRIMARY KEY,
  from_agent TEXT NOT NULL,
  to_agent TEXT NOT NULL,
  state TEXT NOT NULL,
  relay_count INTEGER NOT NULL DEFAULT 0,
  created_at_ms INTEGER NOT NULL,
  last_activity_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX agent_tunnels_by_from ON agent_tunnels (from_agent);
CREATE INDEX agent_tunnels_by_to ON agent_tunnels (to_agent);

CREATE TABLE tunnel_close_notices (
  agent_id TEXT NOT NULL,
  token TEXT NOT NULL,
  peer_agent_id TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  PRIMARY KEY (agent_id, token)
) STRICT;

CREATE TABLE direct_work_offers (
  offer_id TEXT PRIMARY KEY,
  from_agent TEXT NOT NULL,
  to_agent TEXT NOT NULL,
  work_type TEXT NOT NULL,
  language TEXT NOT NULL,
  input TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  accepted_at_ms INTEGER NOT NULL DEFAULT 0,
  completed_at_ms INTEGER NOT NULL DEFAULT 0,
  ok INTEGER NOT NULL DEFAULT 0,
  output TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  duration_ms INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX direct_work_offers_by_target ON direct_work_offers (to_agent, status);
CREATE INDEX direct_work_offers_by_time ON direct_work_offers (created_at_ms);

CREATE TABLE mesh_rate_windows (
  scope TEXT NOT NULL,
  window_start_ms INTEGER NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (scope, window_start_ms)
) STRICT;

-- EdgeCoder schema 10 (PostgreSQL): the agent mesh. Agents registered as mesh peers (no token
-- is kept), tunnels between agents (bookkeeping only), their close notices, peer-direct work
-- offers, and the fixed-window counters of the relay and offer rate limits. In the store so that
-- coordinators sharing it see the same tunnels and offers, and a restart loses none.

CREATE TABLE mesh_peers (
  peer_id TEXT PRIMARY KEY,
  public_key_pem TEXT NOT NULL,
  coordinator_url TEXT NOT NULL,
  network_mode TEXT NOT NULL,
  role TEXT NOT NULL,
  registered_at_ms BIGINT NOT NULL,
  last_seen_ms BIGINT NOT NULL
);

CREATE TABLE agent_tunnels (
  token TEXT PRIMARY KEY,
  from_agent TEXT NOT NULL,
  to_agent TEXT NOT NULL,
  state TEXT NOT NULL,
  relay_count BIGINT NOT NULL DEFAULT 0,
  created_at_ms BIGINT NOT NULL,
  last_activity_ms BIGINT NOT NULL
);
CREATE INDEX agent_tunnels_by_from ON agent_tunnels (from_agent);
CREATE INDEX agent_tunnels_by_to ON agent_tunnels (to_agent);

CREATE TABLE tunnel_close_notices (
  agent_id TEXT NOT NULL,
  token TEXT NOT NULL,
  peer_agent_id TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  PRIMARY KEY (agent_id, token)
);

CREATE TABLE direct_work_offers (
  offer_id TEXT PRIMARY KEY,
  from_agent TEXT NOT NULL,
  to_agent TEXT NOT NULL,
  work_type TEXT NOT NULL,
  language TEXT NOT NULL,
  input TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  accepted_at_ms BIGINT NOT NULL DEFAULT 0,
  completed_at_ms BIGINT NOT NULL DEFAULT 0,
  ok BIGINT NOT NULL DEFAULT 0,
  output TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  duration_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX direct_work_offers_by_target ON direct_work_offers (to_agent, status);
CREATE INDEX direct_work_offers_by_time ON direct_work_offers (created_at_ms);

CREATE TABLE mesh_rate_windows (
  scope TEXT NOT NULL,
  window_start_ms BIGINT NOT NULL,
  count BIGINT NOT NULL,
  PRIMARY KEY (scope, window_start_ms)
);

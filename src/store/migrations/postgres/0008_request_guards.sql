-- EdgeCoder schema 8 (PostgreSQL): what the coordinator checks signed agent requests against,
-- shared by every coordinator on the store. agent_nonces is the replay window (one row per
-- accepted nonce until it expires; the primary key turns a second use into a conflict).
-- agent_counters holds fixed-window counters per agent and kind: the signed-request rate limit
-- and the behaviour evidence that may auto-blacklist an agent. Both are pruned by the sweeper.

CREATE TABLE agent_nonces (
  agent_id TEXT NOT NULL,
  nonce TEXT NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  PRIMARY KEY (agent_id, nonce)
);
CREATE INDEX agent_nonces_expiry ON agent_nonces (expires_at_ms);

CREATE TABLE agent_counters (
  agent_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  window_start_ms BIGINT NOT NULL,
  window_ms BIGINT NOT NULL,
  hits BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  PRIMARY KEY (agent_id, kind)
);

-- EdgeCoder schema 4 (SQLite): model rollouts. The coordinator owns agent_orchestration (one
-- model switch per agent, delivered in its heartbeat, with the agent's reports); the control
-- plane owns rollout_policies and rollout_agent_states (who was enrolled, with which previous
-- model, and how each agent fares).

CREATE TABLE agent_orchestration (
  agent_id TEXT PRIMARY KEY,
  rollout_id TEXT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  status TEXT NOT NULL,
  message TEXT NOT NULL DEFAULT '',
  progress_pct INTEGER NOT NULL DEFAULT -1,
  requested_by TEXT NOT NULL DEFAULT '',
  requested_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX agent_orchestration_by_rollout ON agent_orchestration (rollout_id);

CREATE TABLE rollout_policies (
  rollout_id TEXT PRIMARY KEY,
  policy_json TEXT NOT NULL,
  version INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE rollout_agent_states (
  rollout_id TEXT NOT NULL REFERENCES rollout_policies (rollout_id),
  agent_id TEXT NOT NULL,
  status TEXT NOT NULL,
  target_model TEXT NOT NULL,
  previous_model TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  rollback INTEGER NOT NULL DEFAULT 0,
  enrolled_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  PRIMARY KEY (rollout_id, agent_id)
) STRICT;

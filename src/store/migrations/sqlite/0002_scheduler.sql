-- EdgeCoder schema 2 (SQLite): the coordinator's scheduler. Agent capabilities and telemetry,
-- fair share per project, dependency order, lease hand-back, cancellation, registration tokens
-- and agent diagnostics.

ALTER TABLE agents ADD COLUMN languages TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN telemetry_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE agents ADD COLUMN runtime_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE agents ADD COLUMN last_claim_ms INTEGER NOT NULL DEFAULT 0;
UPDATE agents SET approval = 'denied' WHERE approval = 'rejected';

ALTER TABLE subtasks ADD COLUMN requires_sandbox INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subtasks ADD COLUMN releases INTEGER NOT NULL DEFAULT 0;
CREATE INDEX subtasks_by_project ON subtasks (project_id, state);

-- Position of the dependency in the subtask's dependsOn (the context block's order).
ALTER TABLE subtask_deps ADD COLUMN pos INTEGER NOT NULL DEFAULT 0;

-- Fair share: leases granted per project. A project that gets new work starts no lower than
-- the least-served project that has work, so it cannot starve the others.
CREATE TABLE projects (
  id TEXT PRIMARY KEY,
  served INTEGER NOT NULL DEFAULT 0
) STRICT;
INSERT INTO projects (id, served) SELECT DISTINCT project_id, 0 FROM tasks;

CREATE TABLE registration_tokens (
  id TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  label TEXT NOT NULL DEFAULT '',
  created_by TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL,
  revoked_at_ms INTEGER NOT NULL DEFAULT 0,
  last_used_at_ms INTEGER NOT NULL DEFAULT 0,
  uses INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE agent_diagnostics (
  agent_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  event_at_ms INTEGER NOT NULL,
  message TEXT NOT NULL,
  source TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (agent_id, seq)
) STRICT;

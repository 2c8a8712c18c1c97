-- EdgeCoder schema 1 (PostgreSQL). Times are Unix epoch milliseconds. Booleans are 0/1.
-- Coordinator tables: agents, tasks, subtasks, subtask_deps, subtask_results, task_events,
-- blacklist, credit_ledger. Control-plane tables: control_audit_log.

CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  os TEXT NOT NULL DEFAULT '',
  version TEXT NOT NULL DEFAULT '',
  mode TEXT NOT NULL DEFAULT '',
  client_type TEXT NOT NULL DEFAULT '',
  max_concurrent_tasks BIGINT NOT NULL DEFAULT 1,
  sandbox_mode TEXT NOT NULL DEFAULT 'none',
  active_model TEXT NOT NULL DEFAULT '',
  public_key TEXT NOT NULL DEFAULT '',
  metadata_json TEXT NOT NULL DEFAULT '{}',
  approval TEXT NOT NULL DEFAULT 'pending',
  approval_actor TEXT NOT NULL DEFAULT '',
  approval_changed_at_ms BIGINT NOT NULL DEFAULT 0,
  registered_at_ms BIGINT NOT NULL,
  last_seen_ms BIGINT NOT NULL
);
CREATE INDEX agents_by_approval ON agents (approval, id);

CREATE TABLE tasks (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL DEFAULT '',
  submitter TEXT NOT NULL DEFAULT '',
  payload_json TEXT NOT NULL DEFAULT '{}',
  priority BIGINT NOT NULL DEFAULT 50,
  state TEXT NOT NULL DEFAULT 'open',
  subtask_count BIGINT NOT NULL DEFAULT 0,
  last_event_id BIGINT NOT NULL DEFAULT 0,
  created_at_ms BIGINT NOT NULL,
  completed_at_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tasks_by_completion ON tasks (state, completed_at_ms);

CREATE TABLE subtasks (
  id TEXT PRIMARY KEY,
  task_id TEXT NOT NULL,
  idx BIGINT NOT NULL,
  kind TEXT NOT NULL DEFAULT '',
  language TEXT NOT NULL DEFAULT '',
  input TEXT NOT NULL DEFAULT '',
  payload_json TEXT NOT NULL DEFAULT '{}',
  project_id TEXT NOT NULL DEFAULT '',
  requested_model TEXT NOT NULL DEFAULT '',
  priority BIGINT NOT NULL DEFAULT 50,
  timeout_ms BIGINT NOT NULL DEFAULT 30000,
  max_attempts BIGINT NOT NULL DEFAULT 3,
  state TEXT NOT NULL,
  attempt BIGINT NOT NULL DEFAULT 0,
  holder TEXT NOT NULL DEFAULT '',
  leased_at_ms BIGINT NOT NULL DEFAULT 0,
  lease_expires_at_ms BIGINT NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  created_at_ms BIGINT NOT NULL,
  finished_at_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX subtasks_by_task ON subtasks (task_id, idx);
CREATE INDEX subtasks_claim ON subtasks (state, priority DESC, created_at_ms, idx);
CREATE INDEX subtasks_claim_model ON subtasks (state, requested_model, priority DESC, created_at_ms, idx);
CREATE INDEX subtasks_by_holder ON subtasks (holder, state);
CREATE INDEX subtasks_by_expiry ON subtasks (state, lease_expires_at_ms);

CREATE TABLE subtask_deps (
  subtask_id TEXT NOT NULL,
  depends_on TEXT NOT NULL,
  task_id TEXT NOT NULL,
  PRIMARY KEY (subtask_id, depends_on)
);
CREATE INDEX subtask_deps_by_task ON subtask_deps (task_id);

CREATE TABLE subtask_results (
  subtask_id TEXT PRIMARY KEY,
  task_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  attempt BIGINT NOT NULL,
  ok BIGINT NOT NULL,
  output TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  duration_ms BIGINT NOT NULL DEFAULT 0,
  created_at_ms BIGINT NOT NULL
);
CREATE INDEX subtask_results_by_task ON subtask_results (task_id);

CREATE TABLE task_events (
  task_id TEXT NOT NULL,
  id BIGINT NOT NULL,
  kind TEXT NOT NULL,
  data_json TEXT NOT NULL DEFAULT '{}',
  created_at_ms BIGINT NOT NULL,
  PRIMARY KEY (task_id, id)
);

CREATE TABLE blacklist (
  agent_id TEXT PRIMARY KEY,
  reason_code TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL DEFAULT '',
  reporter_id TEXT NOT NULL DEFAULT '',
  record_json TEXT NOT NULL DEFAULT '{}',
  created_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE credit_ledger (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tx_id TEXT NOT NULL UNIQUE,
  account_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  amount_millicredits BIGINT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  task_id TEXT NOT NULL DEFAULT '',
  created_at_ms BIGINT NOT NULL
);
CREATE INDEX credit_ledger_by_account ON credit_ledger (account_id, seq);

CREATE TABLE control_audit_log (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at_ms BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL DEFAULT '',
  detail_json TEXT NOT NULL DEFAULT '{}'
);

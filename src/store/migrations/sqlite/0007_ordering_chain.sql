-- EdgeCoder schema 7 (SQLite): the ordering chain (upstream QueueEventRecord): task
-- events (task_enqueue, task_claim, task_requeue, task_complete, earnings_accrual), one
-- hash-chained, Ed25519-signed chain per coordinator id, appended in the transactions that make
-- the events happen. The head row per coordinator is locked by each append, so appends of one
-- coordinator are serialised; the unique keys keep each chain linear regardless.

CREATE TABLE ledger_chain (
  coordinator_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  id TEXT NOT NULL UNIQUE,
  event_type TEXT NOT NULL,
  task_id TEXT NOT NULL,
  subtask_id TEXT NOT NULL DEFAULT '',
  actor_id TEXT NOT NULL,
  issued_at_ms INTEGER NOT NULL,
  prev_hash TEXT NOT NULL,
  payload_json TEXT NOT NULL DEFAULT '',
  hash TEXT NOT NULL,
  signature TEXT NOT NULL,
  PRIMARY KEY (coordinator_id, sequence),
  UNIQUE (coordinator_id, prev_hash)
) STRICT;

CREATE TABLE ledger_chain_heads (
  coordinator_id TEXT PRIMARY KEY,
  sequence INTEGER NOT NULL,
  hash TEXT NOT NULL
) STRICT;

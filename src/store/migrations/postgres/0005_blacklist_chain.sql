-- EdgeCoder schema 5 (PostgreSQL): the coordinator's blacklist as a hash chain of signed events
-- (additions and removals). Each event names the hash of the one before it; the unique
-- prev_event_hash keeps the chain linear when several coordinators append at once. The
-- blacklist table keeps the active entries the events produced.

CREATE TABLE blacklist_events (
  seq BIGSERIAL PRIMARY KEY,
  event_hash TEXT NOT NULL UNIQUE,
  prev_event_hash TEXT NOT NULL UNIQUE,
  agent_id TEXT NOT NULL,
  action TEXT NOT NULL,
  record_json TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL
);

-- EdgeCoder schema 9 (SQLite): task envelopes and how a result was reached.
-- lease_key: what the coordinator needs to re-derive the envelope key of the subtask's current
-- lease (X25519 + HKDF-SHA256; src/coordinator/envelopes.cpp), written by the claim and
-- replaced by the next one, so that any coordinator sharing the store, or one restarted, can open
-- the result. Empty = the lease was given in clear.
ALTER TABLE subtasks ADD COLUMN lease_key TEXT NOT NULL DEFAULT '';

-- iterations: code runs the agent made with its own model (0 = not reported); escalated: it
-- asked the coordinator's /escalate for a larger model's code.
ALTER TABLE subtask_results ADD COLUMN iterations INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subtask_results ADD COLUMN escalated INTEGER NOT NULL DEFAULT 0;

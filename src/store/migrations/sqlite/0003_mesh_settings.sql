-- EdgeCoder schema 3 (SQLite): mesh-wide settings an operator changes at run time (the network
-- mode), owned by the coordinator and read by every coordinator sharing the store.

CREATE TABLE mesh_settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_by TEXT NOT NULL DEFAULT '',
  updated_at_ms INTEGER NOT NULL
) STRICT;

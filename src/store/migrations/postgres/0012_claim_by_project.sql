-- EdgeCoder schema 12 (PostgreSQL): nothing changes here. SQLite's claim moved to per-project
-- index probes in schema 12; PostgreSQL keeps one sorted pick, which FOR UPDATE SKIP LOCKED needs
-- so that concurrent claimers move on to the next row instead of coming back empty.

SELECT 12;

-- EdgeCoder schema 11 (PostgreSQL): credits held for a task in flight (CREDITS_ENFORCED). The hold
-- is a negative ledger entry plus this row; when the task ends the coordinator releases the hold
-- (and spends it if the task completed) in the ledger and deletes the row, in one transaction.

CREATE TABLE credit_holds (
  task_id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL,
  amount_millicredits BIGINT NOT NULL,
  created_at_ms BIGINT NOT NULL
);

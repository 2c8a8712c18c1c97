-- EdgeCoder schema 12 (SQLite): the claim picks each project's next subtask from an index instead
-- of sorting every queued subtask (a claim cost grew with the queue: 3 ms at 20,000 queued).
-- Fair share orders the projects; within one project the index order is the claim order.
-- A result's follow-up (promote the task's held subtasks, is the task done?) finds the task's
-- subtasks by state instead of walking all of them (or every held subtask of every task).

DROP INDEX subtasks_by_project;
DROP INDEX subtasks_claim;
DROP INDEX subtasks_claim_model;
CREATE INDEX subtasks_claim_by_project
  ON subtasks (project_id, state, priority DESC, created_at_ms, idx);
CREATE INDEX subtasks_claim_by_project_model
  ON subtasks (project_id, state, requested_model, priority DESC, created_at_ms, idx);
CREATE INDEX subtasks_by_task_state ON subtasks (task_id, state);

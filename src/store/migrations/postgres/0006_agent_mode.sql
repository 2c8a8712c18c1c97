-- EdgeCoder schema 6 (PostgreSQL): the mode an operator set for an agent. It wins over the mode the
-- agent declares when it registers, and a re-registration does not undo it.

ALTER TABLE agents ADD COLUMN mode_override TEXT NOT NULL DEFAULT '';

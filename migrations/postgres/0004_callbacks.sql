-- Callback tasks made from missed calls: which call made them, so they are
-- made once and closed by the call that reaches the customer.
ALTER TABLE tasks ADD COLUMN kind TEXT NOT NULL DEFAULT 'task';
ALTER TABLE tasks ADD COLUMN call_id TEXT;
CREATE UNIQUE INDEX tasks_call ON tasks(call_id);

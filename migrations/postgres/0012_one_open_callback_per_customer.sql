-- One open callback per customer: a caller who misses us again and again
-- has one callback to return, counting their missed calls and due from the
-- first. Open callbacks made before are folded into the oldest of each
-- contact (or lead), their count kept; the unique indexes then hold it
-- however many misses are logged at once, on one node or several.
ALTER TABLE tasks ADD COLUMN missed_calls BIGINT;

UPDATE tasks SET missed_calls = 1 WHERE kind = 'callback';

UPDATE tasks SET
    missed_calls = (SELECT COUNT(*) FROM tasks o WHERE o.kind = 'callback' AND o.done = 0
                    AND o.contact_id = tasks.contact_id),
    due_at = (SELECT MIN(o.due_at) FROM tasks o WHERE o.kind = 'callback' AND o.done = 0
              AND o.contact_id = tasks.contact_id)
WHERE kind = 'callback' AND done = 0 AND contact_id IS NOT NULL
  AND id = (SELECT MIN(o.id) FROM tasks o WHERE o.kind = 'callback' AND o.done = 0
            AND o.contact_id = tasks.contact_id);
DELETE FROM tasks
WHERE kind = 'callback' AND done = 0 AND contact_id IS NOT NULL
  AND id <> (SELECT MIN(o.id) FROM tasks o WHERE o.kind = 'callback' AND o.done = 0
             AND o.contact_id = tasks.contact_id);

UPDATE tasks SET
    missed_calls = (SELECT COUNT(*) FROM tasks o WHERE o.kind = 'callback' AND o.done = 0
                    AND o.contact_id IS NULL AND o.lead_id = tasks.lead_id),
    due_at = (SELECT MIN(o.due_at) FROM tasks o WHERE o.kind = 'callback' AND o.done = 0
              AND o.contact_id IS NULL AND o.lead_id = tasks.lead_id)
WHERE kind = 'callback' AND done = 0 AND contact_id IS NULL AND lead_id IS NOT NULL
  AND id = (SELECT MIN(o.id) FROM tasks o WHERE o.kind = 'callback' AND o.done = 0
            AND o.contact_id IS NULL AND o.lead_id = tasks.lead_id);
DELETE FROM tasks
WHERE kind = 'callback' AND done = 0 AND contact_id IS NULL AND lead_id IS NOT NULL
  AND id <> (SELECT MIN(o.id) FROM tasks o WHERE o.kind = 'callback' AND o.done = 0
             AND o.contact_id IS NULL AND o.lead_id = tasks.lead_id);

CREATE UNIQUE INDEX tasks_one_open_callback_per_contact ON tasks(contact_id)
    WHERE kind = 'callback' AND done = 0 AND contact_id IS NOT NULL;
CREATE UNIQUE INDEX tasks_one_open_callback_per_lead ON tasks(lead_id)
    WHERE kind = 'callback' AND done = 0 AND contact_id IS NULL AND lead_id IS NOT NULL;

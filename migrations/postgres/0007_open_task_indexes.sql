-- A caller's card lists the open tasks of the contact or lead, soonest due
-- first: these keep that to reading the first few index entries, not
-- every task of the table (leads had no index) or of the card.
CREATE INDEX tasks_lead_open ON tasks(lead_id, done, due_at, id);
CREATE INDEX tasks_contact_open ON tasks(contact_id, done, due_at, id);

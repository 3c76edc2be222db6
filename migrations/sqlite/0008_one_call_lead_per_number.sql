-- A caller's number has at most one open lead made from calls, however many
-- of their calls end at the same moment, on one node or several: the second
-- insert fails and its writer reuses the first lead.
CREATE UNIQUE INDEX leads_one_open_call_lead ON leads(phone_e164)
    WHERE source = 'call' AND status <> 'converted';

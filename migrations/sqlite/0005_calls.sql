-- One row per finished call, keyed by the PBX's id for the whole call
-- (Asterisk: Linkedid). Inserting the row is how a node claims the call:
-- only the writer whose insert wins goes on to make the call's lead,
-- callback task and timeline entry, so replays, reconnects and a second node
-- never double them. Times are unix milliseconds, durations milliseconds.
-- direction: inbound | outbound | internal; disposition (what the PBX says
-- happened): answered | abandoned | no_answer | busy | failed; wrapup_code is
-- the agent's pick from [calls] dispositions. agent is the extension that
-- finally talked to the caller, originator the agent's extension that placed
-- an outbound or internal call; the *_user_id columns are the users who had
-- those extensions when the call was logged.
CREATE TABLE calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL UNIQUE,
    direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    caller TEXT NOT NULL,
    caller_name TEXT,
    callee TEXT,
    did TEXT,
    queue TEXT,
    originator TEXT,
    originator_user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    agent TEXT,
    agent_user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    disposition TEXT NOT NULL,
    cause_code BIGINT,
    cause_text TEXT,
    recording TEXT,
    transfers TEXT NOT NULL DEFAULT '[]',
    started_at BIGINT NOT NULL,
    answered_at BIGINT,
    ended_at BIGINT,
    ring_ms BIGINT NOT NULL DEFAULT 0,
    talk_ms BIGINT NOT NULL DEFAULT 0,
    hold_ms BIGINT NOT NULL DEFAULT 0,
    contact_id BIGINT REFERENCES contacts(id) ON DELETE SET NULL,
    lead_id BIGINT REFERENCES leads(id) ON DELETE SET NULL,
    wrapup_code TEXT,
    wrapup_note TEXT,
    wrapup_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    wrapup_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX calls_started ON calls(started_at, id);
CREATE INDEX calls_contact ON calls(contact_id, started_at);
CREATE INDEX calls_lead ON calls(lead_id, started_at);
CREATE INDEX calls_agent_user ON calls(agent_user_id, started_at);
CREATE INDEX calls_originator_user ON calls(originator_user_id, started_at);

-- The phones a call rang, first ring first: one row per user with the
-- extension (user_id NULL when nobody had it).
CREATE TABLE call_rings (
    call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    extension TEXT NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX call_rings_call ON call_rings(call_id, position);
CREATE INDEX call_rings_user ON call_rings(user_id);

-- Who was connected to the caller when, across transfers, in order.
CREATE TABLE call_segments (
    call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    extension TEXT NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NOT NULL,
    PRIMARY KEY (call_id, position)
);
CREATE INDEX call_segments_user ON call_segments(user_id, started_at);

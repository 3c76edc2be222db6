-- Call and lead routing rules, evaluated in priority order (lower first, then
-- id). kind: sticky | prefix | did | hours | round_robin | least_loaded.
-- A target is written as `user:ID`, `team:ID` or `pbx:RAW` (a dial string or
-- queue such as `Queue/support`). hours: days is a comma list of mon..sun,
-- open_minute/close_minute are minutes after local midnight in `timezone`
-- (close before open: the window runs past midnight); target applies inside
-- the window, outside_target outside it.
CREATE TABLE routing_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    priority BIGINT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('sticky', 'prefix', 'did', 'hours', 'round_robin', 'least_loaded')),
    enabled BIGINT NOT NULL DEFAULT 1,
    match_number TEXT,
    timezone TEXT,
    days TEXT,
    open_minute BIGINT,
    close_minute BIGINT,
    target TEXT,
    outside_target TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX routing_rules_order ON routing_rules(priority, id);

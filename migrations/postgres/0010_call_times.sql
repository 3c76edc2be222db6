-- Where a logged call's times come from: 'live' (seen on the PBX link as it
-- happened), 'recovered' (the call ended, or happened, while the link was
-- down and its end was read from the PBX's own CDR after the reconnect) or
-- 'uncertain' (it ended while the link was down and no record said when:
-- ended_at is the last moment it was known up, durations are lower bounds).
ALTER TABLE calls ADD COLUMN times TEXT NOT NULL DEFAULT 'live'
    CHECK (times IN ('live', 'recovered', 'uncertain'));

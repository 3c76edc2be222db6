-- The devices that ring a user, named as Asterisk names the endpoint
-- (PJSIP/anna-desk, SIP/150010002, PJSIP/101), each optionally with the
-- extension people dial to reach it. Users without a device ring the device
-- [pbx] device makes of their extensions. presented_number is the number a
-- click-to-call shows the customer (user, else team, else [pbx]
-- presented_number).
CREATE TABLE user_devices (
    device TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    extension TEXT
);
CREATE INDEX user_devices_user ON user_devices(user_id);
ALTER TABLE users ADD COLUMN presented_number TEXT;
ALTER TABLE teams ADD COLUMN presented_number TEXT;

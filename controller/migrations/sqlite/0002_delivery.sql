-- Delivery (SQLite): broker credentials and what devices last reported. Keep in step with
-- ../postgres/0002_delivery.sql.

-- SHA-256 (hex) of the device's MQTT password, issued at enrolment and shown once; NULL: none
-- issued (enrolled before this migration). The password is 192 random bits, so a plain hash
-- cannot be brute-forced.
ALTER TABLE devices ADD COLUMN mqtt_password_sha256 TEXT;
-- Highest report counter accepted from the device (`boots << 32 | n`); a report at or below it
-- is a replay. Reset to 0 when the device is re-enrolled with another key.
ALTER TABLE devices ADD COLUMN report_counter BIGINT NOT NULL DEFAULT 0;
-- When the controller last accepted a report from it (unix ms), and what it said.
ALTER TABLE devices ADD COLUMN last_seen_at BIGINT;
ALTER TABLE devices ADD COLUMN last_event TEXT;

-- Issue 12 (operators and approvers).
-- Why a device refused the revert command it was sent after an abort (a refusal reason such as
-- security_counter_downgrade); NULL while it has not refused one.
ALTER TABLE rollout_devices ADD COLUMN revert_refused TEXT;

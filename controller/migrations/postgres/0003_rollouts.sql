-- Rollouts (PostgreSQL): one per signed proposal, delivered in waves. Times are unix milliseconds
-- unless the name says otherwise. Keep in step with ../sqlite.

CREATE TABLE rollouts (
    proposal_id     BIGINT PRIMARY KEY REFERENCES proposals(id),
    revision        INTEGER NOT NULL,        -- the signed revision being rolled out
    manifest_digest TEXT NOT NULL UNIQUE,    -- hex; device reports name it
    state           TEXT NOT NULL,           -- rolling_out | paused | completed | aborted
    wave            INTEGER NOT NULL,        -- current wave, from 0
    waves           INTEGER NOT NULL,        -- number of waves (a resume may add a remainder wave)
    wave_started_at BIGINT NOT NULL,
    started_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    finished_at     BIGINT,                  -- completed or aborted
    rate_at_us      BIGINT NOT NULL,         -- rate limit: the token bucket's clock, unix microseconds
    breach          TEXT                     -- why the last breach happened
);
CREATE INDEX rollouts_state ON rollouts(state);

CREATE TABLE rollout_devices (
    proposal_id  BIGINT NOT NULL REFERENCES rollouts(proposal_id),
    device_id    TEXT NOT NULL,
    wave         INTEGER NOT NULL,
    position     BIGINT NOT NULL,            -- rank in the spread order (SHA-256 of the id)
    state        TEXT NOT NULL,              -- pending | sent | accepted | installed | confirmed | failed | refused | reverted
    sent_at      BIGINT,                     -- set in the transaction that decides to send: never sent twice
    updated_at   BIGINT NOT NULL,            -- last send or report; the device timeout runs from here
    detail       TEXT,                       -- refusal or revert reason, or which timeout
    last_counter BIGINT,                     -- counter of the last report applied (older ones are stale)
    revert_seq   BIGINT,                     -- command sequence of the revert sent after an abort
    revert_at    BIGINT,
    PRIMARY KEY (proposal_id, device_id)
);
CREATE INDEX rollout_devices_wave ON rollout_devices(proposal_id, wave, state, position);
CREATE INDEX rollout_devices_state ON rollout_devices(proposal_id, state, updated_at);

-- Signed device commands (revert on abort): strictly increasing, hence per device too.
INSERT INTO counters (name, value) VALUES ('command_sequence', 0);

-- Airlock controller schema (PostgreSQL). Times are unix milliseconds; keys, digests and signatures
-- are lower-case hex; structured values are JSON text. Keep in step with ../sqlite.

CREATE TABLE users (
    name         TEXT PRIMARY KEY,
    roles        TEXT NOT NULL,              -- JSON array: requester, approver, expert, security, break_glass, admin
    token_sha256 TEXT NOT NULL UNIQUE,       -- the bearer token is never stored
    public_key   TEXT,                       -- Ed25519, hex; approvers sign with it
    created_at   BIGINT NOT NULL
);

CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    hardware    TEXT NOT NULL,
    region      TEXT NOT NULL,
    environment TEXT NOT NULL,
    firmware    TEXT NOT NULL,
    tags        TEXT NOT NULL,               -- JSON array
    enrolled_at BIGINT NOT NULL
);

CREATE TABLE proposals (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             TEXT NOT NULL,
    title            TEXT NOT NULL,
    requester        TEXT NOT NULL REFERENCES users(name),
    revision         INTEGER NOT NULL,       -- current revision
    state            TEXT NOT NULL,
    tier             TEXT NOT NULL,
    break_glass      BOOLEAN NOT NULL,
    escalation_level INTEGER NOT NULL,       -- 0: first pools; n: escalation[n - 1]
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    decided_at       BIGINT
);
CREATE INDEX proposals_state ON proposals(state);

CREATE TABLE revisions (
    proposal_id     BIGINT NOT NULL REFERENCES proposals(id),
    revision        INTEGER NOT NULL,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    spec            TEXT NOT NULL,           -- JSON: what was asked
    cohort          TEXT NOT NULL,           -- JSON array of device ids, sorted
    fleet_size      BIGINT NOT NULL,
    decision        TEXT NOT NULL,           -- JSON: tier, matched rules, policy digest
    manifest        BYTEA NOT NULL,           -- the canonical manifest body approvers sign
    manifest_digest TEXT NOT NULL,
    release_sig     TEXT,                    -- set once signed with the release key
    signed_at       BIGINT,
    PRIMARY KEY (proposal_id, revision)
);

CREATE TABLE approvals (
    proposal_id BIGINT NOT NULL,
    revision    INTEGER NOT NULL,
    approver    TEXT NOT NULL REFERENCES users(name),
    public_key  TEXT NOT NULL,
    decision    TEXT NOT NULL,               -- approve | reject
    signature   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    card_ms     BIGINT,                      -- time spent on the card (web UI)
    diff_opened BOOLEAN,
    at          BIGINT NOT NULL,
    voided      BOOLEAN NOT NULL,            -- a material edit voided it
    PRIMARY KEY (proposal_id, revision, approver)
);

CREATE TABLE timers (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    proposal_id   BIGINT NOT NULL,
    revision      INTEGER NOT NULL,
    level         INTEGER NOT NULL,          -- escalation level it belongs to
    due_at        BIGINT NOT NULL,
    fired         BOOLEAN NOT NULL           -- set in the transaction that acts on it: the claim
);
CREATE INDEX timers_due ON timers(fired, due_at);

CREATE TABLE tasks (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    proposal_id BIGINT NOT NULL,
    kind        TEXT NOT NULL,               -- post_review
    pool        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    done_at     BIGINT,
    done_by     TEXT,
    note        TEXT
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('manifest_sequence', 0), ('audit_seq', 0);

CREATE TABLE audit (
    seq         BIGINT PRIMARY KEY,         -- 1, 2, 3, ... assigned by the writer, never reused
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    proposal_id BIGINT,
    body        TEXT NOT NULL,               -- JSON
    prev        TEXT NOT NULL,               -- hash of seq - 1 (zeros for the first)
    hash        TEXT NOT NULL
);

CREATE INDEX audit_proposal ON audit(proposal_id, seq);

CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT NOT NULL,
    key       TEXT NOT NULL,                 -- the audit public key
    signature TEXT NOT NULL,
    at        BIGINT NOT NULL
);

-- The audit trail is append-only: no UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE FUNCTION airlock_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION airlock_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION airlock_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION airlock_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION airlock_append_only();

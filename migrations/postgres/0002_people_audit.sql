-- People, their sessions and API tokens; the append-only, hash-chained audit log.
CREATE TABLE users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    -- manager: the services (comma-separated) whose calls they may find and hear
    services TEXT NOT NULL DEFAULT '',
    -- a member of staff's extension: they see who listened to the calls they took part in
    extension TEXT,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username),
    api BOOLEAN NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

-- A retrieval someone declared (purpose and reference): audio is served only against one.
CREATE TABLE grants (
    token_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username),
    call_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    reference TEXT NOT NULL,
    audit_seq BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    call_id TEXT,
    purpose TEXT,
    reference TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_call ON audit (call_id);
CREATE INDEX audit_actor ON audit (actor, at_ms);

CREATE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

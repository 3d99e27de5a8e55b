-- Agents, recorded calls and their segments, as shipped by the agents.
CREATE TABLE agents (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE calls (
    call_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL REFERENCES agents(name),
    started_ms BIGINT NOT NULL,
    ended_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    audio_ms BIGINT NOT NULL,
    caller TEXT NOT NULL,
    dialled TEXT,
    service TEXT,
    end_reason TEXT,
    retention_days INTEGER NOT NULL,
    expires_ms BIGINT NOT NULL,
    legal_hold BOOLEAN NOT NULL DEFAULT FALSE,
    restricted BOOLEAN NOT NULL DEFAULT FALSE,
    document TEXT NOT NULL,
    received_ms BIGINT NOT NULL
);
CREATE INDEX calls_started ON calls (started_ms);
CREATE INDEX calls_caller ON calls (caller, started_ms);
CREATE INDEX calls_service ON calls (service, started_ms);
CREATE INDEX calls_expires ON calls (expires_ms);

-- Every number or extension that took part in a call (legs' from/to), for search.
CREATE TABLE call_parties (
    call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    party TEXT NOT NULL,
    PRIMARY KEY (call_id, party)
);
CREATE INDEX call_parties_party ON call_parties (party);

CREATE TABLE call_sip_ids (
    call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    sip_call_id TEXT NOT NULL,
    PRIMARY KEY (call_id, sip_call_id)
);
CREATE INDEX call_sip_ids_sip ON call_sip_ids (sip_call_id);

CREATE TABLE segments (
    segment_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    agent TEXT NOT NULL REFERENCES agents(name),
    sha256 TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    blob TEXT NOT NULL,
    received_ms BIGINT NOT NULL
);
CREATE INDEX segments_call ON segments (call_id);

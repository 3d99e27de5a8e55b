-- Calls erased by the DPO or by the retention purge. Their ids are kept (nothing else of them)
-- so an agent's resend of an erased call, or of one of its segments, is refused, never stored
-- again.
CREATE TABLE erased_calls (
    call_id TEXT PRIMARY KEY,
    erased_ms BIGINT NOT NULL,
    cause TEXT NOT NULL
);

-- Work only one of several catalogue instances may do at a time (the retention purge): the
-- instance holding a lease until `until_ms`; another takes it once it has run out.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);

-- Two people for a listening account: one an admin adds as a manager or DPO waits, disabled,
-- for a DPO's approval.
ALTER TABLE users ADD COLUMN awaiting_approval BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN requested_by TEXT;

-- A web session ends after half an hour unused (API tokens by their date only).
ALTER TABLE sessions ADD COLUMN last_used_ms BIGINT;

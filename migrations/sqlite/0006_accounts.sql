-- The account lifecycle. An admin's password reset: the user sets a new password at their next
-- sign-in.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
-- A deleted user's row stays, without password, services or extension, so that the names in
-- the audit log keep meaning one person and the name is never given to someone else.
ALTER TABLE users ADD COLUMN deleted_ms BIGINT;
-- What a DPO is asked to approve for an account awaiting approval ("account", "enable",
-- "password_reset"), and a manager's services an admin widened, waiting for a DPO: no single
-- person gives anyone access to recordings.
ALTER TABLE users ADD COLUMN approval_for TEXT;
ALTER TABLE users ADD COLUMN requested_services TEXT;
-- When an agent was disabled (its token refused from that moment).
ALTER TABLE agents ADD COLUMN disabled_ms BIGINT;
-- What the catalogue keeps about itself: the country rules its stored numbers were
-- normalised with (`numbers_country`), so a change of `numbers.country` renormalises them.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- A second factor (TOTP, RFC 6238) for accounts that may hear recordings: the secret once
-- confirmed, one being set up, and the last time step used (a code is good once).
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_pending TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

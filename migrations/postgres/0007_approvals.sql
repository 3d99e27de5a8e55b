-- A one-time set-up code a DPO hands to the person whose listening account they approved
-- (new, or second factor cleared): the second factor can be set up only with it, so the
-- admin, who knows the first password, cannot set it up first and keep the account. Only
-- its SHA-256 is kept.
ALTER TABLE users ADD COLUMN setup_code_sha256 TEXT;
-- A person who signs in with the council's directory (OpenID Connect): the provider and
-- their subject there ("<issuer> <sub>"), unique; such an account has no local password.
ALTER TABLE users ADD COLUMN directory_subject TEXT;
CREATE UNIQUE INDEX users_directory_subject ON users (directory_subject);

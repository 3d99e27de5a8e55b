-- Training: a member of staff's recorded agreement that calls they took part in may be used,
-- anonymised, for training. Withdrawn agreements are kept (withdrawn_ms set) for the record.
CREATE TABLE training_consents (
    party TEXT PRIMARY KEY,
    agreed_ms BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    withdrawn_ms BIGINT
);

-- The catalogue key each segment is sealed to (from its header): which keys are still needed.
ALTER TABLE segments ADD COLUMN key_id TEXT;

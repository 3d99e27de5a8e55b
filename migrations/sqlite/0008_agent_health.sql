-- How each agent is (its last health report, JSON: version, outbox, drops, live calls) and
-- when the catalogue last heard from it.
ALTER TABLE agents ADD COLUMN health TEXT;
ALTER TABLE agents ADD COLUMN health_ms BIGINT;
-- How long a call rang before it was answered (NULL: never answered, or stored before this
-- column): search lists talk time and ring time apart.
ALTER TABLE calls ADD COLUMN ring_ms BIGINT;

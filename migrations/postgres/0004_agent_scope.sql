-- What each agent records: its number list as it last reported it (JSON), and when.
ALTER TABLE agents ADD COLUMN scope TEXT;
ALTER TABLE agents ADD COLUMN scope_ms BIGINT;

-- What a pass is reading (a file's size, time and content fingerprint; a SODA query and the
-- dataset's rebuild time): a pass interrupted over a source that has since changed is
-- discarded, never resumed into different data.
ALTER TABLE sync_state ADD COLUMN source_fingerprint TEXT;
-- The process running a sync (`host:pid`): a run left `running` by a process that is gone
-- is closed as abandoned by the next sync on that host, never one of another replica.
ALTER TABLE sync_runs ADD COLUMN owner TEXT;
-- Rows that are not text as received (invalid UTF-8): `raw` keeps them decoded lossily,
-- this the bytes themselves.
ALTER TABLE quarantine ADD COLUMN raw_bytes BYTEA;
-- Rows whose key an earlier row of the same pass had.
ALTER TABLE sync_runs ADD COLUMN rows_duplicate INTEGER NOT NULL DEFAULT 0;

-- The watermark of incremental passes (documents, guarantees): the start of the last
-- complete pass. Unused until now, so every value is NULL and the type can change.
ALTER TABLE sync_state ALTER COLUMN watermark TYPE TIMESTAMPTZ USING watermark::TIMESTAMPTZ;

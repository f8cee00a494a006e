-- Keys a sync pass found unchanged. An unchanged row is no longer rewritten to record that
-- it was seen (`last_seen`, `seen_pass` now say when the row was last stored, new or
-- changed): its key is appended here instead, a few dozen bytes against the whole row.
-- At the end of a complete pass, the rows of the scope that the pass neither stored nor
-- listed here under its number have vanished from the source; the keys are then deleted.
CREATE TABLE sync_seen (
    dataset             TEXT NOT NULL,
    pass                INTEGER NOT NULL,
    key                 TEXT NOT NULL,
    PRIMARY KEY (dataset, pass, key)
) WITHOUT ROWID;

-- What operators did to the outbox (dead items queued again), kept for the audit trail.
CREATE TABLE outbox_audit (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    at                  TEXT NOT NULL,
    actor               TEXT NOT NULL,
    action              TEXT NOT NULL,
    filter              TEXT NOT NULL,
    items               INTEGER NOT NULL
);

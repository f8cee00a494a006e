-- When an item stopped being delivered (sent, or dead): the purge job keeps finished items
-- for `retention.outbox_days` from then.
ALTER TABLE outbox ADD COLUMN finished_at TEXT;
UPDATE outbox SET finished_at = COALESCE(sent_at, next_attempt_at) WHERE status IN ('sent', 'dead');
CREATE INDEX outbox_finished ON outbox (finished_at) WHERE status IN ('sent', 'dead');
-- Listing the outbox by state, newest first (GET /api/outbox?status=…).
CREATE INDEX outbox_status_id ON outbox (status, id);

-- The delivery history: what went (or was given up) to whom, when, with which Message-ID or
-- webhook-id, for the audit trail. A purged outbox item moves here without its payload, and
-- its idempotency key still keeps the same notification from being queued again.
CREATE TABLE deliveries (
    id                  INTEGER PRIMARY KEY,
    idempotency_key     TEXT NOT NULL UNIQUE,
    channel             TEXT NOT NULL,
    target              TEXT NOT NULL,
    subject             TEXT,
    message_id          TEXT,
    status              TEXT NOT NULL,
    attempts            INTEGER NOT NULL,
    last_error          TEXT,
    created_at          TEXT NOT NULL,
    finished_at         TEXT NOT NULL
);
CREATE INDEX deliveries_finished ON deliveries (finished_at);
CREATE INDEX deliveries_target ON deliveries (target, id);

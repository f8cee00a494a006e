-- What operators did to the outbox (dead items queued again), kept for the audit trail.
CREATE TABLE outbox_audit (
    id                  BIGSERIAL PRIMARY KEY,
    at                  TIMESTAMPTZ NOT NULL,
    actor               TEXT NOT NULL,
    action              TEXT NOT NULL,
    filter              TEXT NOT NULL,
    items               BIGINT NOT NULL
);

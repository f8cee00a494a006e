-- The digest slots each recipient was sent: a digest counts what changed since the
-- recipient's previous one.
CREATE TABLE digest_slots (
    recipient           TEXT NOT NULL,
    slot                DATE NOT NULL,
    rows                BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (recipient, slot)
);
-- Findings resolved since a day, for those counts.
CREATE INDEX findings_resolved ON findings (resolved_on, id) WHERE status = 'resolved';

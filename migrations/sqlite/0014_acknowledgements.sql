-- Office heads' answers on findings, never deleted: in progress until a day (en_tramite),
-- does not apply (no_aplica), or the missing document is published under a name the
-- classifier did not recognise (documento_publicado). At most one is in force per finding;
-- it is copied on the finding (ack_*) so the evaluation and the digests read it without a
-- join, and it ends (ended_*: when and why) when the finding reopens, is resolved, or is
-- answered again.
CREATE TABLE acknowledgements (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    finding_id          INTEGER NOT NULL REFERENCES findings (id),
    state               TEXT NOT NULL,
    -- en_tramite: the first day the finding is shown again.
    until               TEXT,
    -- The finding's level and facts (see findings.facts) when it was answered.
    level               TEXT NOT NULL,
    facts               TEXT,
    -- documento_publicado: the document and the kind it is.
    document_id         TEXT,
    document_kind       TEXT,
    author              TEXT NOT NULL,
    reason              TEXT NOT NULL,
    note                TEXT,
    on_date             TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    ended_on            TEXT,
    ended_reason        TEXT,
    ended_at            TEXT
);
CREATE INDEX acknowledgements_finding ON acknowledgements (finding_id);
CREATE UNIQUE INDEX acknowledgements_in_force ON acknowledgements (finding_id) WHERE ended_at IS NULL;

-- A fingerprint of what the finding was concluded from (the contract row as received, the
-- documents and their kinds, the step): a dismissal holds while it is the same.
ALTER TABLE findings ADD COLUMN facts TEXT;
ALTER TABLE findings ADD COLUMN ack_id INTEGER;
ALTER TABLE findings ADD COLUMN ack_state TEXT;
ALTER TABLE findings ADD COLUMN ack_until TEXT;
ALTER TABLE findings ADD COLUMN ack_level TEXT;
ALTER TABLE findings ADD COLUMN ack_facts TEXT;
CREATE INDEX findings_acknowledged ON findings (ack_state) WHERE ack_id IS NOT NULL;

-- Who did it and why, for the answers and reopenings in a finding's history.
ALTER TABLE finding_events ADD COLUMN author TEXT;
ALTER TABLE finding_events ADD COLUMN detail TEXT;

-- Documents an office head said are of a kind: the classifier uses it from then on.
CREATE TABLE document_classifications (
    id_documento        TEXT PRIMARY KEY NOT NULL,
    kind                TEXT NOT NULL,
    author              TEXT NOT NULL,
    reason              TEXT NOT NULL,
    acknowledgement_id  INTEGER,
    created_at          TEXT NOT NULL
);

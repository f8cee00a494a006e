-- Incremental evaluation: what each contract's last evaluation depended on and until when it
-- holds, the contracts whose data changed since (marks), and the last complete evaluation.

-- One row per live contract evaluated: a fingerprint of its inputs, the first date its
-- findings or their levels may change on the same data (NULL: never), and what a report
-- counts of it (data quality, findings as kind:level, unrouted).
CREATE TABLE contract_evaluations (
    contract_id         TEXT PRIMARY KEY NOT NULL,
    inputs              INTEGER NOT NULL,
    next_on             TEXT,
    quality             INTEGER NOT NULL,
    unknown_state       TEXT,
    findings            TEXT NOT NULL,
    unrouted            INTEGER NOT NULL,
    evaluated_on        TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX contract_evaluations_due ON contract_evaluations (next_on)
    WHERE next_on IS NOT NULL;

-- Contracts to evaluate again, written by the triggers below in the transaction of the
-- change; an evaluation deletes the marks it accounted for. A document published on a
-- process marks the process (every contract of it).
CREATE TABLE evaluation_marks (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    contract_id         TEXT,
    process             TEXT
);

-- The last complete evaluation (one row): the fingerprint of the settings, calendar and
-- program it ran with (NULL while a full evaluation is under way) and its date.
CREATE TABLE evaluation_state (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint         TEXT,
    as_of               TEXT,
    updated_at          TEXT NOT NULL
);

-- The contracts of a process whose own documents changed.
CREATE INDEX contracts_process ON contracts (proceso_de_compra);

CREATE TRIGGER contracts_mark_new AFTER INSERT ON contracts
BEGIN
    INSERT INTO evaluation_marks (contract_id) VALUES (NEW.id_contrato);
END;
CREATE TRIGGER contracts_mark_changed AFTER UPDATE ON contracts
WHEN OLD.content_hash IS NOT NEW.content_hash OR OLD.vanished_at IS NOT NEW.vanished_at
    OR OLD.last_changed IS NOT NEW.last_changed
BEGIN
    INSERT INTO evaluation_marks (contract_id) VALUES (NEW.id_contrato);
END;

CREATE TRIGGER documents_mark_new AFTER INSERT ON documents
WHEN NEW.id_contrato IS NOT NULL OR NEW.proceso IS NOT NULL
BEGIN
    INSERT INTO evaluation_marks (contract_id, process)
    VALUES (NEW.id_contrato, CASE WHEN NEW.id_contrato IS NULL THEN NEW.proceso END);
END;
CREATE TRIGGER documents_mark_changed AFTER UPDATE ON documents
WHEN OLD.content_hash IS NOT NEW.content_hash OR OLD.vanished_at IS NOT NEW.vanished_at
BEGIN
    INSERT INTO evaluation_marks (contract_id, process)
    VALUES (OLD.id_contrato, CASE WHEN OLD.id_contrato IS NULL THEN OLD.proceso END);
    INSERT INTO evaluation_marks (contract_id, process)
    SELECT NEW.id_contrato, CASE WHEN NEW.id_contrato IS NULL THEN NEW.proceso END
    WHERE NEW.id_contrato IS NOT OLD.id_contrato OR NEW.proceso IS NOT OLD.proceso;
END;

CREATE TRIGGER guarantees_mark_new AFTER INSERT ON guarantees
WHEN NEW.id_contrato IS NOT NULL
BEGIN
    INSERT INTO evaluation_marks (contract_id) VALUES (NEW.id_contrato);
END;
CREATE TRIGGER guarantees_mark_changed AFTER UPDATE ON guarantees
WHEN OLD.content_hash IS NOT NEW.content_hash OR OLD.vanished_at IS NOT NEW.vanished_at
BEGIN
    INSERT INTO evaluation_marks (contract_id) VALUES (OLD.id_contrato);
    INSERT INTO evaluation_marks (contract_id)
    SELECT NEW.id_contrato WHERE NEW.id_contrato IS NOT OLD.id_contrato;
END;

-- An office head's answer: the evaluation checks whether it holds.
CREATE TRIGGER acknowledgements_mark AFTER INSERT ON acknowledgements
BEGIN
    INSERT INTO evaluation_marks (contract_id)
    SELECT contract_id FROM findings WHERE id = NEW.finding_id;
END;

-- A document classified by hand counts as its kind wherever it counts.
CREATE TRIGGER document_classifications_mark_new AFTER INSERT ON document_classifications
BEGIN
    INSERT INTO evaluation_marks (contract_id, process)
    SELECT id_contrato, CASE WHEN id_contrato IS NULL THEN proceso END
    FROM documents WHERE id_documento = NEW.id_documento;
END;
CREATE TRIGGER document_classifications_mark_changed AFTER UPDATE ON document_classifications
BEGIN
    INSERT INTO evaluation_marks (contract_id, process)
    SELECT id_contrato, CASE WHEN id_contrato IS NULL THEN proceso END
    FROM documents WHERE id_documento = NEW.id_documento;
END;

-- Incremental evaluation: what each contract's last evaluation depended on and until when it
-- holds, the contracts whose data changed since (marks), and the last complete evaluation.

-- One row per live contract evaluated: a fingerprint of its inputs, the first date its
-- findings or their levels may change on the same data (NULL: never), and what a report
-- counts of it (data quality, findings as kind:level, unrouted).
CREATE TABLE contract_evaluations (
    contract_id         TEXT PRIMARY KEY,
    inputs              BIGINT NOT NULL,
    next_on             DATE,
    quality             INTEGER NOT NULL,
    unknown_state       TEXT,
    findings            TEXT NOT NULL,
    unrouted            BOOLEAN NOT NULL,
    evaluated_on        DATE NOT NULL
);
CREATE INDEX contract_evaluations_due ON contract_evaluations (next_on)
    WHERE next_on IS NOT NULL;

-- Contracts to evaluate again, written by the triggers below in the transaction of the
-- change; an evaluation deletes the marks it accounted for (by seq: a mark of a transaction
-- still open when the evaluation looked is not among them). A document published on a
-- process marks the process (every contract of it).
CREATE TABLE evaluation_marks (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contract_id         TEXT,
    process             TEXT
);

-- The last complete evaluation (one row): the fingerprint of the settings, calendar and
-- program it ran with (NULL while a full evaluation is under way) and its date.
CREATE TABLE evaluation_state (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint         TEXT,
    as_of               DATE,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- The contracts of a process whose own documents changed.
CREATE INDEX contracts_process ON contracts (proceso_de_compra);

CREATE FUNCTION evaluation_mark_contract() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evaluation_marks (contract_id) VALUES (NEW.id_contrato);
    RETURN NULL;
END $$;
CREATE TRIGGER contracts_mark_new AFTER INSERT ON contracts
    FOR EACH ROW EXECUTE FUNCTION evaluation_mark_contract();
CREATE TRIGGER contracts_mark_changed AFTER UPDATE ON contracts FOR EACH ROW
    WHEN (OLD.content_hash IS DISTINCT FROM NEW.content_hash
          OR OLD.vanished_at IS DISTINCT FROM NEW.vanished_at
          OR OLD.last_changed IS DISTINCT FROM NEW.last_changed)
    EXECUTE FUNCTION evaluation_mark_contract();

CREATE FUNCTION evaluation_mark_document() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO evaluation_marks (contract_id, process)
        VALUES (OLD.id_contrato, CASE WHEN OLD.id_contrato IS NULL THEN OLD.proceso END);
        IF NEW.id_contrato IS NOT DISTINCT FROM OLD.id_contrato
           AND NEW.proceso IS NOT DISTINCT FROM OLD.proceso THEN
            RETURN NULL;
        END IF;
    END IF;
    IF NEW.id_contrato IS NOT NULL OR NEW.proceso IS NOT NULL THEN
        INSERT INTO evaluation_marks (contract_id, process)
        VALUES (NEW.id_contrato, CASE WHEN NEW.id_contrato IS NULL THEN NEW.proceso END);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER documents_mark_new AFTER INSERT ON documents
    FOR EACH ROW EXECUTE FUNCTION evaluation_mark_document();
CREATE TRIGGER documents_mark_changed AFTER UPDATE ON documents FOR EACH ROW
    WHEN (OLD.content_hash IS DISTINCT FROM NEW.content_hash
          OR OLD.vanished_at IS DISTINCT FROM NEW.vanished_at)
    EXECUTE FUNCTION evaluation_mark_document();

CREATE FUNCTION evaluation_mark_guarantee() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.id_contrato IS NOT NULL THEN
        INSERT INTO evaluation_marks (contract_id) VALUES (OLD.id_contrato);
        IF NEW.id_contrato IS NOT DISTINCT FROM OLD.id_contrato THEN
            RETURN NULL;
        END IF;
    END IF;
    IF NEW.id_contrato IS NOT NULL THEN
        INSERT INTO evaluation_marks (contract_id) VALUES (NEW.id_contrato);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER guarantees_mark_new AFTER INSERT ON guarantees
    FOR EACH ROW EXECUTE FUNCTION evaluation_mark_guarantee();
CREATE TRIGGER guarantees_mark_changed AFTER UPDATE ON guarantees FOR EACH ROW
    WHEN (OLD.content_hash IS DISTINCT FROM NEW.content_hash
          OR OLD.vanished_at IS DISTINCT FROM NEW.vanished_at)
    EXECUTE FUNCTION evaluation_mark_guarantee();

-- An office head's answer: the evaluation checks whether it holds.
CREATE FUNCTION evaluation_mark_answer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evaluation_marks (contract_id)
    SELECT contract_id FROM findings WHERE id = NEW.finding_id;
    RETURN NULL;
END $$;
CREATE TRIGGER acknowledgements_mark AFTER INSERT ON acknowledgements
    FOR EACH ROW EXECUTE FUNCTION evaluation_mark_answer();

-- A document classified by hand counts as its kind wherever it counts.
CREATE FUNCTION evaluation_mark_classification() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evaluation_marks (contract_id, process)
    SELECT id_contrato, CASE WHEN id_contrato IS NULL THEN proceso END
    FROM documents WHERE id_documento = NEW.id_documento;
    RETURN NULL;
END $$;
CREATE TRIGGER document_classifications_mark AFTER INSERT OR UPDATE ON document_classifications
    FOR EACH ROW EXECUTE FUNCTION evaluation_mark_classification();

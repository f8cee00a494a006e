-- cierre schema for SQLite. Timestamps are RFC 3339 UTC text, dates are YYYY-MM-DD text,
-- money is integer centavos. The PostgreSQL schema mirrors this one with native types.

-- Contracts of SECOP II `jbjy-vk9h`: the typed columns the rules and routing need, plus the
-- raw record as received (a zstd frame, see src/source/raw.rs), so nothing the source said
-- is ever lost.
CREATE TABLE contracts (
    id_contrato                 TEXT PRIMARY KEY NOT NULL,
    proceso_de_compra           TEXT,
    referencia_del_contrato     TEXT,
    nit_entidad                 TEXT,
    nombre_entidad              TEXT,
    codigo_entidad              TEXT,
    estado_contrato             TEXT,
    tipo_de_contrato            TEXT,
    modalidad_de_contratacion   TEXT,
    justificacion_modalidad_de  TEXT,
    objeto_del_contrato         TEXT,
    fecha_de_firma              TEXT,
    fecha_de_inicio             TEXT,
    fecha_de_fin                TEXT,
    liquidacion                 TEXT,
    obligacion_ambiental        TEXT,
    obligaciones_postconsumo    TEXT,
    fecha_inicio_liquidacion    TEXT,
    fecha_fin_liquidacion       TEXT,
    valor_del_contrato          INTEGER,
    valor_pagado                INTEGER,
    valor_pendiente_de_pago     INTEGER,
    dias_adicionados            INTEGER,
    ultima_actualizacion        TEXT,
    url_proceso                 TEXT,
    nombre_supervisor           TEXT,
    documento_supervisor        TEXT,
    nombre_ordenador_del_gasto  TEXT,
    documento_ordenador_del_gasto TEXT,
    proveedor_adjudicado        TEXT,
    documento_proveedor         TEXT,
    raw                         BLOB NOT NULL,
    content_hash                TEXT NOT NULL,
    first_seen                  TEXT NOT NULL,
    last_seen                   TEXT NOT NULL,
    last_changed                TEXT NOT NULL,
    -- The sync pass that last saw the row: rows of the scope with an older pass at the end
    -- of a complete pass have vanished from the source.
    seen_pass                   INTEGER NOT NULL DEFAULT 0,
    vanished_at                 TEXT
);
CREATE INDEX contracts_nit ON contracts (nit_entidad);

-- Documents of `dmgg-8hin` (and its yearly predecessors), deduplicated by id_documento.
CREATE TABLE documents (
    id_documento        TEXT PRIMARY KEY NOT NULL,
    id_contrato         TEXT,
    proceso             TEXT,
    nombre_archivo      TEXT,
    extension           TEXT,
    descripcion         TEXT,
    fecha_carga         TEXT,
    nit_entidad         TEXT,
    url_descarga        TEXT,
    raw                 BLOB NOT NULL,
    content_hash        TEXT NOT NULL,
    first_seen          TEXT NOT NULL,
    last_seen           TEXT NOT NULL,
    last_changed        TEXT NOT NULL,
    seen_pass           INTEGER NOT NULL DEFAULT 0,
    vanished_at         TEXT
);
CREATE INDEX documents_contract ON documents (id_contrato);

-- Guarantees of `gjp9-cutm`. The dataset has no row key of its own: guarantee_key is
-- id_contrato|numeropoliza|tipopoliza|subtipopoliza.
CREATE TABLE guarantees (
    guarantee_key       TEXT PRIMARY KEY NOT NULL,
    id_contrato         TEXT,
    numeropoliza        TEXT,
    tipopoliza          TEXT,
    subtipopoliza       TEXT,
    fechafinpoliza      TEXT,
    estado              TEXT,
    aseguradora         TEXT,
    valor               INTEGER,
    raw                 BLOB NOT NULL,
    content_hash        TEXT NOT NULL,
    first_seen          TEXT NOT NULL,
    last_seen           TEXT NOT NULL,
    last_changed        TEXT NOT NULL,
    seen_pass           INTEGER NOT NULL DEFAULT 0,
    vanished_at         TEXT
);
CREATE INDEX guarantees_contract ON guarantees (id_contrato);

-- One row per dataset: where the current pass is, so an interrupted sync resumes from its
-- last committed page instead of starting over.
CREATE TABLE sync_state (
    dataset             TEXT PRIMARY KEY NOT NULL,
    -- Passes are numbered: the current one while pass_started_at is set, else the last.
    pass                INTEGER NOT NULL DEFAULT 0,
    pass_started_at     TEXT,
    cursor              TEXT,
    watermark           TEXT,
    updated_at          TEXT NOT NULL
);

-- Each sync of a dataset, with its counts.
CREATE TABLE sync_runs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset             TEXT NOT NULL,
    source              TEXT NOT NULL,
    started_at          TEXT NOT NULL,
    finished_at         TEXT,
    status              TEXT NOT NULL,
    rows_read           INTEGER NOT NULL DEFAULT 0,
    rows_new            INTEGER NOT NULL DEFAULT 0,
    rows_changed        INTEGER NOT NULL DEFAULT 0,
    rows_unchanged      INTEGER NOT NULL DEFAULT 0,
    rows_vanished       INTEGER NOT NULL DEFAULT 0,
    rows_rejected       INTEGER NOT NULL DEFAULT 0,
    rows_skipped        INTEGER NOT NULL DEFAULT 0,
    pages               INTEGER NOT NULL DEFAULT 0,
    retries             INTEGER NOT NULL DEFAULT 0,
    error               TEXT
);

-- Rows the sync could not accept, with why and the text as received.
CREATE TABLE quarantine (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    sync_run_id         INTEGER,
    dataset             TEXT NOT NULL,
    locator             TEXT NOT NULL,
    reason              TEXT NOT NULL,
    raw                 TEXT NOT NULL,
    created_at          TEXT NOT NULL
);

-- Findings: one open finding per (contract, kind, stage) at most; resolved ones are kept as
-- history. stage is '' when the kind has no stage.
CREATE TABLE findings (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    contract_id         TEXT NOT NULL,
    kind                TEXT NOT NULL,
    stage               TEXT NOT NULL,
    status              TEXT NOT NULL,
    since               TEXT NOT NULL,
    deadline            TEXT NOT NULL,
    business_days_left  INTEGER NOT NULL,
    level               TEXT NOT NULL,
    step                TEXT,
    reasons             TEXT NOT NULL,
    missing             TEXT NOT NULL,
    evaluated_on        TEXT NOT NULL,
    opened_on           TEXT NOT NULL,
    resolved_on         TEXT,
    updated_at          TEXT NOT NULL
);
CREATE UNIQUE INDEX findings_one_open ON findings (contract_id, kind, stage) WHERE status = 'open';
CREATE INDEX findings_status ON findings (status);

-- What happened to each finding and when (the evaluation date).
CREATE TABLE finding_events (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    finding_id          INTEGER NOT NULL REFERENCES findings (id),
    event               TEXT NOT NULL,
    level               TEXT NOT NULL,
    on_date             TEXT NOT NULL,
    created_at          TEXT NOT NULL
);
CREATE INDEX finding_events_finding ON finding_events (finding_id);

-- Every email and webhook is written here, under an idempotency key, before any send.
-- status: pending → sending (claimed until claimed_until) → sent | pending (retry) | dead.
CREATE TABLE outbox (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key     TEXT NOT NULL UNIQUE,
    channel             TEXT NOT NULL,
    target              TEXT NOT NULL,
    subject             TEXT,
    -- Email Message-ID, or webhook-id: the same on every attempt of the item.
    message_id          TEXT,
    payload             TEXT NOT NULL,
    status              TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TEXT NOT NULL,
    claimed_until       TEXT,
    -- Which process holds the claim (host:pid), for operators and takeover diagnostics.
    claimed_by          TEXT,
    last_error          TEXT,
    created_at          TEXT NOT NULL,
    sent_at             TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- Delivery health per target (recipient address or webhook URL): a target failing
-- persistently is suspended, so its items wait instead of burning their attempts.
CREATE TABLE endpoints (
    target               TEXT PRIMARY KEY NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    suspended_until      TEXT,
    last_error           TEXT,
    updated_at           TEXT NOT NULL
);

-- Each job run, keyed so one scheduled slot runs once.
CREATE TABLE job_runs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    job                 TEXT NOT NULL,
    scheduled_for       TEXT NOT NULL,
    started_at          TEXT NOT NULL,
    finished_at         TEXT,
    outcome             TEXT NOT NULL,
    counts              TEXT,
    error               TEXT,
    UNIQUE (job, scheduled_for)
);

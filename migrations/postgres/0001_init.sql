-- cierre schema for PostgreSQL: the SQLite schema with native types (TIMESTAMPTZ, DATE,
-- BIGINT centavos, raw records as zstd frames).

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
    fecha_de_firma              DATE,
    fecha_de_inicio             DATE,
    fecha_de_fin                DATE,
    liquidacion                 TEXT,
    obligacion_ambiental        TEXT,
    obligaciones_postconsumo    TEXT,
    fecha_inicio_liquidacion    DATE,
    fecha_fin_liquidacion       DATE,
    valor_del_contrato          BIGINT,
    valor_pagado                BIGINT,
    valor_pendiente_de_pago     BIGINT,
    dias_adicionados            BIGINT,
    ultima_actualizacion        DATE,
    url_proceso                 TEXT,
    nombre_supervisor           TEXT,
    documento_supervisor        TEXT,
    nombre_ordenador_del_gasto  TEXT,
    documento_ordenador_del_gasto TEXT,
    proveedor_adjudicado        TEXT,
    documento_proveedor         TEXT,
    raw                         BYTEA NOT NULL,
    content_hash                TEXT NOT NULL,
    first_seen                  TIMESTAMPTZ NOT NULL,
    last_seen                   TIMESTAMPTZ NOT NULL,
    last_changed                TIMESTAMPTZ NOT NULL,
    -- The sync pass that last saw the row: rows of the scope with an older pass at the end
    -- of a complete pass have vanished from the source.
    seen_pass                   BIGINT NOT NULL DEFAULT 0,
    vanished_at                 TIMESTAMPTZ
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
    fecha_carga         DATE,
    nit_entidad         TEXT,
    url_descarga        TEXT,
    raw                 BYTEA NOT NULL,
    content_hash        TEXT NOT NULL,
    first_seen          TIMESTAMPTZ NOT NULL,
    last_seen           TIMESTAMPTZ NOT NULL,
    last_changed        TIMESTAMPTZ NOT NULL,
    seen_pass           BIGINT NOT NULL DEFAULT 0,
    vanished_at         TIMESTAMPTZ
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
    fechafinpoliza      DATE,
    estado              TEXT,
    aseguradora         TEXT,
    valor               BIGINT,
    raw                 BYTEA NOT NULL,
    content_hash        TEXT NOT NULL,
    first_seen          TIMESTAMPTZ NOT NULL,
    last_seen           TIMESTAMPTZ NOT NULL,
    last_changed        TIMESTAMPTZ NOT NULL,
    seen_pass           BIGINT NOT NULL DEFAULT 0,
    vanished_at         TIMESTAMPTZ
);
CREATE INDEX guarantees_contract ON guarantees (id_contrato);

-- One row per dataset: where the current pass is, so an interrupted sync resumes from its
-- last committed page instead of starting over.
CREATE TABLE sync_state (
    dataset             TEXT PRIMARY KEY NOT NULL,
    -- Passes are numbered: the current one while pass_started_at is set, else the last.
    pass                BIGINT NOT NULL DEFAULT 0,
    pass_started_at     TIMESTAMPTZ,
    cursor              TEXT,
    watermark           TEXT,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- Each sync of a dataset, with its counts.
CREATE TABLE sync_runs (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset             TEXT NOT NULL,
    source              TEXT NOT NULL,
    started_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ,
    status              TEXT NOT NULL,
    rows_read           BIGINT NOT NULL DEFAULT 0,
    rows_new            BIGINT NOT NULL DEFAULT 0,
    rows_changed        BIGINT NOT NULL DEFAULT 0,
    rows_unchanged      BIGINT NOT NULL DEFAULT 0,
    rows_vanished       BIGINT NOT NULL DEFAULT 0,
    rows_rejected       BIGINT NOT NULL DEFAULT 0,
    rows_skipped        BIGINT NOT NULL DEFAULT 0,
    pages               BIGINT NOT NULL DEFAULT 0,
    retries             BIGINT NOT NULL DEFAULT 0,
    error               TEXT
);

-- Rows the sync could not accept, with why and the text as received.
CREATE TABLE quarantine (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sync_run_id         BIGINT,
    dataset             TEXT NOT NULL,
    locator             TEXT NOT NULL,
    reason              TEXT NOT NULL,
    raw                 TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL
);

-- Findings: one open finding per (contract, kind, stage) at most; resolved ones are kept as
-- history. stage is '' when the kind has no stage.
CREATE TABLE findings (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contract_id         TEXT NOT NULL,
    kind                TEXT NOT NULL,
    stage               TEXT NOT NULL,
    status              TEXT NOT NULL,
    since               DATE NOT NULL,
    deadline            DATE NOT NULL,
    business_days_left  BIGINT NOT NULL,
    level               TEXT NOT NULL,
    step                TEXT,
    reasons             TEXT NOT NULL,
    missing             TEXT NOT NULL,
    evaluated_on        DATE NOT NULL,
    opened_on           DATE NOT NULL,
    resolved_on         DATE,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX findings_one_open ON findings (contract_id, kind, stage) WHERE status = 'open';
CREATE INDEX findings_status ON findings (status);

-- What happened to each finding and when (the evaluation date).
CREATE TABLE finding_events (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    finding_id          BIGINT NOT NULL REFERENCES findings (id),
    event               TEXT NOT NULL,
    level               TEXT NOT NULL,
    on_date             DATE NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX finding_events_finding ON finding_events (finding_id);

-- Every email and webhook is written here, under an idempotency key, before any send.
-- status: pending → sending (claimed until claimed_until) → sent | pending (retry) | dead.
CREATE TABLE outbox (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key     TEXT NOT NULL UNIQUE,
    channel             TEXT NOT NULL,
    target              TEXT NOT NULL,
    subject             TEXT,
    -- Email Message-ID, or webhook-id: the same on every attempt of the item.
    message_id          TEXT,
    payload             TEXT NOT NULL,
    status              TEXT NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    next_attempt_at     TIMESTAMPTZ NOT NULL,
    claimed_until       TIMESTAMPTZ,
    -- Which process holds the claim (host:pid), for operators and takeover diagnostics.
    claimed_by          TEXT,
    last_error          TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    sent_at             TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- Delivery health per target (recipient address or webhook URL): a target failing
-- persistently is suspended, so its items wait instead of burning their attempts.
CREATE TABLE endpoints (
    target               TEXT PRIMARY KEY NOT NULL,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    suspended_until      TIMESTAMPTZ,
    last_error           TEXT,
    updated_at           TIMESTAMPTZ NOT NULL
);

-- Each job run, keyed so one scheduled slot runs once.
CREATE TABLE job_runs (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job                 TEXT NOT NULL,
    scheduled_for       TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ,
    outcome             TEXT NOT NULL,
    counts              TEXT,
    error               TEXT,
    UNIQUE (job, scheduled_for)
);

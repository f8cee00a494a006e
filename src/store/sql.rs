//! Store, the SQL both backends share: one body of queries (parameters `$1`, `$2`… numbered
//! in order of appearance, which SQLite and PostgreSQL read alike), expanded once per
//! backend by [`sql_store!`]. Each backend module defines before the expansion: `d` and
//! `parse_day` (how a date is bound and read back) and `push_raw` (how the raw record is
//! stored).

/// Implements [`super::Store`] for `$store` on the sqlx database `$db` with row type `$row`;
/// `$skip_locked` ends the outbox claim's subquery (`" FOR UPDATE SKIP LOCKED"` where the
/// backend has row locks); `$snapshot` starts a read transaction that sees one snapshot
/// (empty where every transaction does).
macro_rules! sql_store {
    ($store:ident, $db:ident, $row:ident, $skip_locked:literal, $snapshot:literal) => {
/// Binds one column value the way this backend stores it.
fn bind_col(b: &mut sqlx::query_builder::Separated<'_, $db, &'static str>, col: Col<'_>) {
    match col {
        Col::Text(v) => b.push_bind(v.map(str::to_string)),
        Col::Int(v) => b.push_bind(v),
        Col::Date(v) => b.push_bind(d(v)),
    };
}

/// Upserts a page of one table inside `tx`: new rows inserted, changed rows rewritten,
/// unchanged rows left as they are, their keys listed in `sync_seen`. Returns the counts.
async fn upsert<T: TableRow>(
    tx: &mut Transaction<'_, $db>,
    rows: &[Parsed<T>],
    dataset: &str,
    pass: i64,
    seen_at: DateTime<Utc>,
) -> StoreResult<PageCounts> {
    // A key repeated within a page counts once: the last occurrence wins.
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        last.insert(r.value.key(), i);
    }
    let mut unique: Vec<usize> = last.values().copied().collect();
    unique.sort_unstable();

    // What the store holds for these keys: hash and whether they had vanished.
    let mut existing: HashMap<String, (String, bool)> = HashMap::with_capacity(unique.len());
    for chunk in unique.chunks(5_000) {
        let mut q = QueryBuilder::<$db>::new(format!(
            "SELECT {key}, content_hash, vanished_at IS NOT NULL FROM {table} WHERE {key} IN (",
            key = T::KEY,
            table = T::TABLE
        ));
        let mut sep = q.separated(", ");
        for &i in chunk {
            sep.push_bind(rows[i].value.key().to_string());
        }
        q.push(")");
        for row in q.build().fetch_all(&mut **tx).await? {
            existing.insert(row.get(0), (row.get(1), row.get(2)));
        }
    }

    let mut counts = PageCounts::default();
    let mut write = Vec::new();
    let mut seen = Vec::new();
    for &i in &unique {
        let r = &rows[i];
        match existing.get(r.value.key()) {
            None => {
                counts.new += 1;
                write.push(i);
            }
            Some((hash, vanished)) if hash != &r.hash || *vanished => {
                counts.changed += 1;
                write.push(i);
            }
            Some(_) => {
                counts.unchanged += 1;
                seen.push(i);
            }
        }
    }

    let ncols = T::COLUMNS.len() + 7;
    for chunk in write.chunks((MAX_PARAMS / ncols).max(1)) {
        let mut q = QueryBuilder::<$db>::new(format!(
            "INSERT INTO {} ({}, {}, raw, content_hash, first_seen, last_seen, last_changed, seen_pass) ",
            T::TABLE,
            T::KEY,
            T::COLUMNS.join(", ")
        ));
        q.push_values(chunk, |mut b, &i| {
            let r = &rows[i];
            b.push_bind(r.value.key().to_string());
            for col in r.value.values() {
                bind_col(&mut b, col);
            }
            push_raw(&mut b, &r.raw);
            b.push_bind(r.hash.clone())
                .push_bind(seen_at)
                .push_bind(seen_at)
                .push_bind(seen_at)
                .push_bind(pass);
        });
        q.push(format!(" ON CONFLICT ({}) DO UPDATE SET ", T::KEY));
        let mut set = q.separated(", ");
        for c in T::COLUMNS.iter().chain(&[
            "raw",
            "content_hash",
            "last_seen",
            "last_changed",
            "seen_pass",
        ]) {
            set.push(format!("{c} = excluded.{c}"));
        }
        set.push("vanished_at = NULL");
        q.build().execute(&mut **tx).await?;
    }
    for chunk in seen.chunks(MAX_PARAMS / 3) {
        let mut q = QueryBuilder::<$db>::new("INSERT INTO sync_seen (dataset, pass, key) ");
        q.push_values(chunk, |mut b, &i| {
            b.push_bind(dataset.to_string())
                .push_bind(pass)
                .push_bind(rows[i].value.key().to_string());
        });
        q.push(" ON CONFLICT DO NOTHING");
        q.build().execute(&mut **tx).await?;
    }
    Ok(counts)
}

fn key_of(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Contracts => <Contract as TableRow>::KEY,
        Dataset::Documents => <Document as TableRow>::KEY,
        Dataset::Guarantees => <Guarantee as TableRow>::KEY,
    }
}

fn table_of(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Contracts => <Contract as TableRow>::TABLE,
        Dataset::Documents => <Document as TableRow>::TABLE,
        Dataset::Guarantees => <Guarantee as TableRow>::TABLE,
    }
}


fn contract_from_row(r: &$row) -> Contract {
    Contract {
        id: r.get("id_contrato"),
        process_id: r.get("proceso_de_compra"),
        reference: r.get("referencia_del_contrato"),
        entity_nit: r.get("nit_entidad"),
        entity_name: r.get("nombre_entidad"),
        entity_code: r.get("codigo_entidad"),
        state: r.get("estado_contrato"),
        contract_type: r.get("tipo_de_contrato"),
        modality: r.get("modalidad_de_contratacion"),
        modality_justification: r.get("justificacion_modalidad_de"),
        object: r.get("objeto_del_contrato"),
        signed_on: parse_day(r.get("fecha_de_firma")),
        starts_on: parse_day(r.get("fecha_de_inicio")),
        ends_on: parse_day(r.get("fecha_de_fin")),
        requires_liquidation: Flag::from_db(r.get::<Option<String>, _>("liquidacion").as_deref()),
        environmental_obligation: Flag::from_db(
            r.get::<Option<String>, _>("obligacion_ambiental").as_deref(),
        ),
        post_consumption_obligation: Flag::from_db(
            r.get::<Option<String>, _>("obligaciones_postconsumo").as_deref(),
        ),
        liquidation_starts_on: parse_day(r.get("fecha_inicio_liquidacion")),
        liquidation_ends_on: parse_day(r.get("fecha_fin_liquidacion")),
        value: r.get("valor_del_contrato"),
        paid: r.get("valor_pagado"),
        pending_payment: r.get("valor_pendiente_de_pago"),
        days_added: r.get("dias_adicionados"),
        last_update: parse_day(r.get("ultima_actualizacion")),
        url: r.get("url_proceso"),
        supervisor_name: r.get("nombre_supervisor"),
        supervisor_document: r.get("documento_supervisor"),
        spending_officer_name: r.get("nombre_ordenador_del_gasto"),
        spending_officer_document: r.get("documento_ordenador_del_gasto"),
        supplier_name: r.get("proveedor_adjudicado"),
        supplier_document: r.get("documento_proveedor"),
        changed_on: r
            .get::<Option<DateTime<Utc>>, _>("last_changed")
            .map(|t| t.date_naive()),
    }
}


fn finding_from_row(r: &$row) -> StoreResult<StoredFinding> {
    let json_list = |col: &str| -> StoreResult<Vec<String>> {
        serde_json::from_str(&r.get::<String, _>(col))
            .map_err(|e| StoreError::Corrupt(format!("findings.{col}: {e}")))
    };
    let date = |col: &str| -> StoreResult<NaiveDate> {
        parse_day(r.get(col)).ok_or_else(|| StoreError::Corrupt(format!("findings.{col}")))
    };
    let stage: String = r.get("stage");
    let kind: String = r.get("kind");
    Ok(StoredFinding {
        id: r.get("id"),
        opened_on: date("opened_on")?,
        finding: Finding {
            contract_id: r.get("contract_id"),
            kind: kind.parse().map_err(|e| StoreError::Corrupt(format!("findings.kind: {e}")))?,
            stage: (!stage.is_empty())
                .then(|| stage.parse())
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("findings.stage: {e}")))?,
            since: date("since")?,
            deadline: date("deadline")?,
            business_days_left: r.get("business_days_left"),
            level: r.get("level"),
            step: r.get("step"),
            reasons: json_list("reasons")?,
            missing: json_list("missing")?,
        },
    })
}

fn run_from_row(r: &$row) -> JobRun {
    let counts: Option<String> = r.get("counts");
    JobRun {
        job: r.get("job"),
        scheduled_for: r.get("scheduled_for"),
        started_at: r.get("started_at"),
        finished_at: r
            .get::<Option<DateTime<Utc>>, _>("finished_at")
            .unwrap_or_else(|| r.get("started_at")),
        outcome: r.get("outcome"),
        counts: counts
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or(serde_json::Value::Null),
        error: r.get("error"),
    }
}

fn endpoint_from_row(r: &$row) -> EndpointHealth {
    EndpointHealth {
        target: r.get("target"),
        consecutive_failures: r.get("consecutive_failures"),
        suspended_until: r.get("suspended_until"),
        last_error: r.get("last_error"),
    }
}

fn outbox_from_row(r: &$row) -> OutboxItem {
    OutboxItem {
        id: r.get("id"),
        idempotency_key: r.get("idempotency_key"),
        channel: r.get("channel"),
        target: r.get("target"),
        subject: r.get("subject"),
        message_id: r.get("message_id"),
        payload: r.get("payload"),
        status: r.get("status"),
        attempts: r.get("attempts"),
        next_attempt_at: r.get("next_attempt_at"),
        last_error: r.get("last_error"),
        claimed_by: r.get("claimed_by"),
    }
}

/// Applies pages with sqlx, one transaction each (see [`Store::apply_pages`]).
async fn apply_pages_sqlx(
    pool: &sqlx::Pool<$db>,
    mut pages: tokio::sync::mpsc::Receiver<PageWrite>,
    committed: tokio::sync::mpsc::UnboundedSender<Committed>,
) -> StoreResult<()> {
    while let Some(page) = pages.recv().await {
        let counts = apply_page_sqlx(pool, page).await?;
        report_commit(&committed, Committed { pages: 1, counts });
    }
    Ok(())
}

/// Applies a page with sqlx: the PostgreSQL path, and SQLite's when the bulk writer cannot
/// open the database (in memory).
async fn apply_page_sqlx(pool: &sqlx::Pool<$db>, page: PageWrite) -> StoreResult<PageCounts> {
    let mut tx = pool.begin().await?;
    let name = page.dataset.name();
    let counts = match &page.records {
        PageRecords::Contracts(rows) => upsert(&mut tx, rows, name, page.pass, page.seen_at).await?,
        PageRecords::Documents(rows) => upsert(&mut tx, rows, name, page.pass, page.seen_at).await?,
        PageRecords::Guarantees(rows) => upsert(&mut tx, rows, name, page.pass, page.seen_at).await?,
    };
    for r in &page.rejected {
        sqlx::query(
            "INSERT INTO quarantine (sync_run_id, dataset, locator, reason, raw, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(page.sync_run_id)
        .bind(page.dataset.name())
        .bind(&r.locator)
        .bind(&r.reason)
        .bind(&r.raw)
        .bind(page.seen_at)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE sync_state SET cursor = $1, updated_at = $2 WHERE dataset = $3")
        .bind(&page.cursor)
        .bind(Utc::now())
        .bind(page.dataset.name())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(counts)
}

async fn insert_outbox(
    tx: &mut Transaction<'_, $db>,
    item: &NewOutboxItem,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO outbox (idempotency_key, channel, target, subject, message_id, payload, \
         status, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&item.idempotency_key)
    .bind(&item.channel)
    .bind(&item.target)
    .bind(&item.subject)
    .bind(&item.message_id)
    .bind(&item.payload)
    .bind(at)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

// PostgreSQL records findings in batches of its own (`apply_findings_batched`).
#[allow(dead_code)]
async fn insert_event(
    tx: &mut Transaction<'_, $db>,
    finding_id: i64,
    event: &str,
    level: &str,
    on: NaiveDate,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO finding_events (finding_id, event, level, on_date, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(finding_id)
    .bind(event)
    .bind(level)
    .bind(d(Some(on)))
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// The documents and guarantees of the contracts with ids in `(after, up_to]` (no upper
/// bound when `None`).
async fn dossier_facts_sqlx(
    conn: &mut <$db as sqlx::Database>::Connection,
    after: &str,
    up_to: Option<&str>,
) -> StoreResult<DossierFacts> {
    let sql = eval_sql::documents_in_range(up_to.is_some());
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after);
    if let Some(up_to) = up_to {
        q = q.bind(up_to);
    }
    let documents = q
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            let owner: String = r.get("owner");
            let doc = Document {
                id: r.get("id_documento"),
                contract_id: Some(owner.clone()),
                file_name: r.get("nombre_archivo"),
                description: r.get("descripcion"),
                uploaded_on: parse_day(r.get("fecha_carga")),
                ..Default::default()
            };
            (owner, doc)
        })
        .collect();
    let sql = eval_sql::guarantees_in_range(up_to.is_some());
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after);
    if let Some(up_to) = up_to {
        q = q.bind(up_to);
    }
    let guarantees = q
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Guarantee {
            key: r.get("guarantee_key"),
            contract_id: r.get("id_contrato"),
            policy_number: r.get("numeropoliza"),
            policy_type: r.get("tipopoliza"),
            policy_subtype: r.get("subtipopoliza"),
            ends_on: parse_day(r.get("fechafinpoliza")),
            status: r.get("estado"),
            insurer: r.get("aseguradora"),
            value: r.get("valor"),
        })
        .collect();
    Ok(DossierFacts { documents, guarantees })
}

/// The open findings of the contracts with ids in `(after, up_to]`.
async fn open_findings_in_sqlx(
    conn: &mut <$db as sqlx::Database>::Connection,
    after: &str,
    up_to: Option<&str>,
) -> StoreResult<Vec<StoredFinding>> {
    let sql = eval_sql::open_findings_in_range(up_to.is_some());
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after);
    if let Some(up_to) = up_to {
        q = q.bind(up_to);
    }
    q.fetch_all(&mut *conn).await?.iter().map(finding_from_row).collect()
}

/// [`Store::evaluation_page`] through sqlx: the contracts, then the facts and open findings
/// of their id range, in one read transaction that sees one snapshot.
async fn evaluation_page_sqlx(
    pool: &sqlx::Pool<$db>,
    after: &str,
    limit: u32,
) -> StoreResult<EvaluationPage> {
    let mut tx = pool.begin().await?;
    if !$snapshot.is_empty() {
        sqlx::query($snapshot).execute(&mut *tx).await?;
    }
    let contracts: Vec<Contract> = sqlx::query(sqlx::AssertSqlSafe(eval_sql::contracts_page()))
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(contract_from_row)
        .collect();
    let up_to = match contracts.last() {
        Some(last) if contracts.len() == limit as usize => Some(last.id.clone()),
        _ => None,
    };
    let facts = dossier_facts_sqlx(&mut tx, after, up_to.as_deref()).await?;
    let open = open_findings_in_sqlx(&mut tx, after, up_to.as_deref()).await?;
    tx.commit().await?;
    Ok(EvaluationPage { contracts, up_to, facts, open })
}

/// [`Store::apply_findings`] through sqlx, one finding at a time: SQLite in memory uses it.
#[allow(dead_code)]
async fn apply_findings_sqlx(
    pool: &sqlx::Pool<$db>,
    changes: &FindingChanges,
    events: &[NewOutboxItem],
    on: NaiveDate,
    at: DateTime<Utc>,
) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    let mut opened = 0;
    for item in events {
        insert_outbox(&mut tx, item, at).await?;
    }
    for f in &changes.opened {
        let row = sqlx::query(
            "INSERT INTO findings (contract_id, kind, stage, status, since, deadline, \
             business_days_left, level, step, reasons, missing, evaluated_on, opened_on, updated_at) \
             VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (contract_id, kind, stage) WHERE status = 'open' DO NOTHING RETURNING id",
        )
        .bind(&f.contract_id)
        .bind(f.kind.as_str())
        .bind(f.stage_str())
        .bind(d(Some(f.since)))
        .bind(d(Some(f.deadline)))
        .bind(f.business_days_left)
        .bind(&f.level)
        .bind(&f.step)
        .bind(json(&f.reasons))
        .bind(json(&f.missing))
        .bind(d(Some(on)))
        .bind(d(Some(on)))
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        // None: another replica opened it first (the partial unique index holds one open
        // finding per contract, kind and stage).
        if let Some(row) = row {
            opened += 1;
            insert_event(&mut tx, row.get(0), "opened", &f.level, on, at).await?;
        }
    }
    let updates = changes
        .relevelled
        .iter()
        .map(|(id, f, ev)| (*id, f, Some(*ev)))
        .chain(changes.refreshed.iter().map(|(id, f)| (*id, f, None)));
    for (id, f, event) in updates {
        let updated = sqlx::query(
            "UPDATE findings SET since = $1, deadline = $2, business_days_left = $3, level = $4, \
             step = $5, reasons = $6, missing = $7, evaluated_on = $8, updated_at = $9 WHERE id = $10 AND status = 'open'",
        )
        .bind(d(Some(f.since)))
        .bind(d(Some(f.deadline)))
        .bind(f.business_days_left)
        .bind(&f.level)
        .bind(&f.step)
        .bind(json(&f.reasons))
        .bind(json(&f.missing))
        .bind(d(Some(on)))
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // 0: another replica resolved it meanwhile; nothing to record.
        if let (Some(event), 1) = (event, updated) {
            insert_event(&mut tx, id, event, &f.level, on, at).await?;
        }
    }
    for &id in &changes.resolved {
        let level: Option<String> = sqlx::query_scalar(
            "UPDATE findings SET status = 'resolved', resolved_on = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'open' RETURNING level",
        )
        .bind(d(Some(on)))
        .bind(at)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        // None: another replica resolved it first.
        if let Some(level) = level {
            insert_event(&mut tx, id, "resolved", &level, on, at).await?;
        }
    }
    tx.commit().await?;
    Ok(opened)
}

/// [`Store::open_findings_sorted`] through sqlx.
async fn open_findings_sorted_sqlx(
    pool: &sqlx::Pool<$db>,
    after: Option<&FindingCursor>,
    limit: u32,
) -> StoreResult<Vec<StoredFinding>> {
    let sql = sqlx::AssertSqlSafe(eval_sql::open_findings_sorted(after.is_some()));
    let rows = match after {
        None => sqlx::query(sql).bind(limit as i64).fetch_all(pool).await?,
        Some(c) => {
            sqlx::query(sql)
                .bind(d(Some(c.deadline)))
                .bind(&c.contract_id)
                .bind(&c.kind)
                .bind(&c.stage)
                .bind(limit as i64)
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter().map(finding_from_row).collect()
}

impl Store for $store {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn sync_state(&self, dataset: Dataset) -> StoreResult<Option<SyncState>> {
        let row =
            sqlx::query("SELECT pass, pass_started_at, cursor FROM sync_state WHERE dataset = $1")
                .bind(dataset.name())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|r| {
            let started: Option<DateTime<Utc>> = r.get(1);
            started.map(|pass_started_at| SyncState {
                pass: r.get(0),
                pass_started_at,
                cursor: r.get(2),
            })
        }))
    }

    async fn begin_pass(&self, dataset: Dataset, at: DateTime<Utc>) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await?;
        // Keys of earlier passes are garbage: an abandoned pass, or one still running
        // elsewhere, can no longer end (`finish_pass` ends only the open pass).
        sqlx::query("DELETE FROM sync_seen WHERE dataset = $1")
            .bind(dataset.name())
            .execute(&mut *tx)
            .await?;
        let pass: i64 = sqlx::query_scalar(
            "INSERT INTO sync_state (dataset, pass, pass_started_at, cursor, updated_at) VALUES ($1, 1, $2, NULL, $3) \
             ON CONFLICT (dataset) DO UPDATE SET pass = sync_state.pass + 1, \
             pass_started_at = excluded.pass_started_at, cursor = NULL, updated_at = excluded.updated_at \
             RETURNING pass",
        )
        .bind(dataset.name())
        .bind(at)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(pass)
    }

    async fn apply_pages(
        &self,
        pages: tokio::sync::mpsc::Receiver<PageWrite>,
        committed: tokio::sync::mpsc::UnboundedSender<Committed>,
    ) -> StoreResult<()> {
        self.write_pages(pages, committed).await
    }

    async fn finish_pass(
        &self,
        dataset: Dataset,
        pass: i64,
        entities: &[String],
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        // Only the open pass ends: a sync that resumed the same pass, or started the next
        // one, while this one ran may have ended it or deleted its keys, and marking rows
        // vanished without them would take every unchanged row for gone.
        let ended = sqlx::query(
            "UPDATE sync_state SET cursor = NULL, pass_started_at = NULL, updated_at = $1 \
             WHERE dataset = $2 AND pass = $3 AND pass_started_at IS NOT NULL",
        )
        .bind(at)
        .bind(dataset.name())
        .bind(pass)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if ended == 0 {
            tx.rollback().await?;
            tracing::warn!(
                dataset = dataset.name(),
                pass,
                "the pass was ended or replaced by another sync meanwhile; it marks no row vanished"
            );
            return Ok(0);
        }
        let table = table_of(dataset);
        let mut q = QueryBuilder::<$db>::new(format!("UPDATE {table} SET vanished_at = "));
        q.push_bind(at);
        q.push(" WHERE vanished_at IS NULL AND seen_pass < ");
        q.push_bind(pass);
        // Rows the pass found unchanged were not rewritten: their keys are in sync_seen.
        q.push(" AND NOT EXISTS (SELECT 1 FROM sync_seen s WHERE s.dataset = ");
        q.push_bind(dataset.name());
        q.push(" AND s.pass = ");
        q.push_bind(pass);
        q.push(format!(" AND s.key = {table}.{})", key_of(dataset)));
        if !entities.is_empty() && dataset != Dataset::Guarantees {
            q.push(" AND nit_entidad IN (");
            let mut sep = q.separated(", ");
            for e in entities {
                sep.push_bind(e.clone());
            }
            q.push(")");
        }
        let vanished = q.build().execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM sync_seen WHERE dataset = $1 AND pass <= $2")
            .bind(dataset.name())
            .bind(pass)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(vanished)
    }

    async fn start_sync_run(
        &self,
        dataset: Dataset,
        source: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let row = sqlx::query(
            "INSERT INTO sync_runs (dataset, source, started_at, status) VALUES ($1, $2, $3, 'running') RETURNING id",
        )
        .bind(dataset.name())
        .bind(source)
        .bind(at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }

    async fn finish_sync_run(
        &self,
        id: i64,
        status: &str,
        c: &SyncCounts,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sync_runs SET finished_at = $1, status = $2, rows_read = $3, rows_new = $4, \
             rows_changed = $5, rows_unchanged = $6, rows_vanished = $7, rows_rejected = $8, \
             rows_skipped = $9, pages = $10, retries = $11, error = $12 WHERE id = $13",
        )
        .bind(at)
        .bind(status)
        .bind(c.read as i64)
        .bind(c.new as i64)
        .bind(c.changed as i64)
        .bind(c.unchanged as i64)
        .bind(c.vanished as i64)
        .bind(c.rejected as i64)
        .bind(c.skipped as i64)
        .bind(c.pages as i64)
        .bind(c.retries as i64)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn quarantined(&self, dataset: Dataset) -> StoreResult<Vec<QuarantinedRow>> {
        let rows = sqlx::query(
            "SELECT dataset, locator, reason, raw FROM quarantine WHERE dataset = $1 ORDER BY id",
        )
        .bind(dataset.name())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| QuarantinedRow {
                dataset: r.get(0),
                locator: r.get(1),
                reason: r.get(2),
                raw: r.get(3),
            })
            .collect())
    }

    async fn count_rows(&self, dataset: Dataset, include_vanished: bool) -> StoreResult<u64> {
        let sql = format!(
            "SELECT COUNT(*) FROM {}{}",
            table_of(dataset),
            if include_vanished { "" } else { " WHERE vanished_at IS NULL" }
        );
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    async fn contract(&self, id: &str) -> StoreResult<Option<Contract>> {
        let sql = format!("SELECT {} FROM contracts WHERE id_contrato = $1", eval_sql::CONTRACT_COLUMNS);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(contract_from_row))
    }

    async fn raw_record(&self, dataset: Dataset, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let sql = format!("SELECT raw FROM {} WHERE {} = $1", table_of(dataset), key_of(dataset));
        let raw: Option<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(raw)
    }

    async fn evaluation_page(&self, after: &str, limit: u32) -> StoreResult<EvaluationPage> {
        self.read_evaluation_page(after, limit).await
    }

    async fn open_findings_sorted(
        &self,
        after: Option<&FindingCursor>,
        limit: u32,
    ) -> StoreResult<Vec<StoredFinding>> {
        self.read_open_findings_sorted(after, limit).await
    }

    async fn open_findings(&self) -> StoreResult<Vec<StoredFinding>> {
        let rows = sqlx::query("SELECT * FROM findings WHERE status = 'open' ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(finding_from_row).collect()
    }

    async fn apply_findings(
        &self,
        changes: &FindingChanges,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.write_findings(changes, events, on, at).await
    }

    async fn finding_history(
        &self,
        finding_id: i64,
    ) -> StoreResult<Vec<(String, String, NaiveDate)>> {
        let rows = sqlx::query(
            "SELECT event, level, on_date FROM finding_events WHERE finding_id = $1 ORDER BY id",
        )
        .bind(finding_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let on = parse_day(r.get(2))
                    .ok_or_else(|| StoreError::Corrupt("finding_events.on_date".into()))?;
                Ok((r.get(0), r.get(1), on))
            })
            .collect()
    }

    async fn enqueue(&self, item: &NewOutboxItem, at: DateTime<Utc>) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let inserted = insert_outbox(&mut tx, item, at).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        claimer: &str,
    ) -> StoreResult<Vec<OutboxItem>> {
        // One UPDATE … RETURNING. SQLite serialises writers; on PostgreSQL, SKIP LOCKED
        // gives replicas claiming at once different items. An expired lease (a claimer
        // that died) makes the item claimable again.
        let rows = sqlx::query(concat!(
            "UPDATE outbox SET status = 'sending', claimed_until = $1, claimed_by = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox WHERE \
               ((status = 'pending' AND next_attempt_at <= $3) OR \
                (status = 'sending' AND claimed_until <= $3)) \
               AND target NOT IN (SELECT target FROM endpoints WHERE suspended_until > $3) \
             ORDER BY id LIMIT $4", $skip_locked, ") RETURNING *"),
        )
        .bind(lease_until)
        .bind(claimer)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut items: Vec<OutboxItem> = rows.iter().map(outbox_from_row).collect();
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    async fn mark_sent(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_at = $1, claimed_until = NULL, last_error = NULL WHERE id = $2",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
             claimed_until = NULL, next_attempt_at = $1 WHERE id = $2 AND status = 'sending'",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let status = if retry_at.is_some() { "pending" } else { "dead" };
        sqlx::query(
            "UPDATE outbox SET status = $1, last_error = $2, claimed_until = NULL, \
             next_attempt_at = COALESCE($3, next_attempt_at) WHERE id = $4",
        )
        .bind(status)
        .bind(error)
        .bind(retry_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_endpoint(
        &self,
        target: &str,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> StoreResult<EndpointHealth> {
        let row = match error {
            None => sqlx::query(
                "INSERT INTO endpoints (target, consecutive_failures, updated_at) VALUES ($1, 0, $2) \
                 ON CONFLICT (target) DO UPDATE SET consecutive_failures = 0, suspended_until = NULL, \
                 last_error = NULL, updated_at = excluded.updated_at RETURNING *",
            )
            .bind(target)
            .bind(at)
            .fetch_one(&self.pool)
            .await?,
            Some(error) => sqlx::query(
                "INSERT INTO endpoints (target, consecutive_failures, last_error, updated_at) \
                 VALUES ($1, 1, $2, $3) ON CONFLICT (target) DO UPDATE SET \
                 consecutive_failures = endpoints.consecutive_failures + 1, \
                 last_error = excluded.last_error, updated_at = excluded.updated_at RETURNING *",
            )
            .bind(target)
            .bind(error)
            .bind(at)
            .fetch_one(&self.pool)
            .await?,
        };
        Ok(endpoint_from_row(&row))
    }

    async fn suspend_endpoint(&self, target: &str, until: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE endpoints SET suspended_until = $1 WHERE target = $2")
            .bind(until)
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn endpoints(&self) -> StoreResult<Vec<EndpointHealth>> {
        let rows =
            sqlx::query("SELECT * FROM endpoints ORDER BY target").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(endpoint_from_row).collect())
    }

    async fn outbox_counts(&self) -> StoreResult<OutboxCounts> {
        // A pending item that has failed before is waiting for a retry.
        let rows = sqlx::query(
            "SELECT CASE WHEN status = 'pending' AND attempts > 0 THEN 'retrying' ELSE status END AS s, \
             COUNT(*) FROM outbox GROUP BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut c = OutboxCounts::default();
        for r in rows {
            let n = r.get::<i64, _>(1) as u64;
            match r.get::<String, _>(0).as_str() {
                "pending" => c.pending = n,
                "retrying" => c.retrying = n,
                "sending" => c.sending = n,
                "sent" => c.sent = n,
                "dead" => c.dead = n,
                _ => {}
            }
        }
        Ok(c)
    }

    async fn outbox_items(&self) -> StoreResult<Vec<OutboxItem>> {
        let rows = sqlx::query("SELECT * FROM outbox ORDER BY id").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(outbox_from_row).collect())
    }

    async fn claim_run(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO job_runs (job, scheduled_for, started_at, outcome) VALUES ($1, $2, $3, 'running') \
             ON CONFLICT (job, scheduled_for) DO NOTHING",
        )
        .bind(job)
        .bind(slot)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn abandon_running(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE job_runs SET outcome = 'abandoned', finished_at = $1, \
             error = 'the process stopped before the run finished' WHERE outcome = 'running'",
        )
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn last_slot(&self, job: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let slot: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT MAX(scheduled_for) FROM job_runs WHERE job = $1")
                .bind(job)
                .fetch_one(&self.pool)
                .await?;
        Ok(slot)
    }

    async fn last_runs(&self) -> StoreResult<Vec<JobRun>> {
        let rows = sqlx::query(
            "SELECT r.* FROM job_runs r JOIN (SELECT job, MAX(started_at) AS s FROM job_runs GROUP BY job) l \
             ON r.job = l.job AND r.started_at = l.s ORDER BY r.job",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(run_from_row).collect())
    }

    async fn runs(&self, limit: u32) -> StoreResult<Vec<JobRun>> {
        let rows = sqlx::query("SELECT * FROM job_runs ORDER BY started_at DESC, id DESC LIMIT $1")
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(run_from_row).collect())
    }

    async fn last_sync_success(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT MAX(finished_at) FROM sync_runs WHERE dataset = 'contracts' AND status IN ('ok', 'degraded')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(at)
    }

    async fn findings_summary(&self) -> StoreResult<Vec<(String, String, u64)>> {
        let rows = sqlx::query(
            "SELECT kind, level, COUNT(*) FROM findings WHERE status = 'open' GROUP BY kind, level ORDER BY kind, level",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get::<i64, _>(2) as u64)).collect())
    }

    async fn record_run(&self, run: &JobRun) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO job_runs (job, scheduled_for, started_at, finished_at, outcome, counts, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job, scheduled_for) DO UPDATE SET \
             started_at = excluded.started_at, finished_at = excluded.finished_at, \
             outcome = excluded.outcome, counts = excluded.counts, error = excluded.error",
        )
        .bind(&run.job)
        .bind(run.scheduled_for)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(&run.outcome)
        .bind(run.counts.to_string())
        .bind(&run.error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

    };
}

pub(crate) use sql_store;

//! Store, SQLite migrations: the files of `migrations/sqlite/`, embedded and applied in
//! order, each in its own transaction. Applied versions are recorded in the table sqlx's
//! migrator kept (same columns, SHA-384 checksums), so stores created by earlier versions
//! carry on where they were.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha384};

use crate::error::{StoreError, StoreResult};

/// (version, description, SQL) of every migration, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../../migrations/sqlite/0001_init.sql")),
    (
        2,
        "evaluation indexes",
        include_str!("../../../migrations/sqlite/0002_evaluation_indexes.sql"),
    ),
    (3, "sync seen", include_str!("../../../migrations/sqlite/0003_sync_seen.sql")),
    (
        4,
        "findings by deadline",
        include_str!("../../../migrations/sqlite/0004_findings_by_deadline.sql"),
    ),
    (
        5,
        "drop contracts nit",
        include_str!("../../../migrations/sqlite/0005_drop_contracts_nit.sql"),
    ),
    (
        6,
        "process documents index",
        include_str!("../../../migrations/sqlite/0006_process_documents_index.sql"),
    ),
    (7, "sync guards", include_str!("../../../migrations/sqlite/0007_sync_guards.sql")),
    (8, "run owners", include_str!("../../../migrations/sqlite/0008_run_owners.sql")),
    (9, "outbox claims", include_str!("../../../migrations/sqlite/0009_outbox_claims.sql")),
    (10, "outbox audit", include_str!("../../../migrations/sqlite/0010_outbox_audit.sql")),
    (11, "retention", include_str!("../../../migrations/sqlite/0011_retention.sql")),
    (12, "digests", include_str!("../../../migrations/sqlite/0012_digests.sql")),
    (13, "silences", include_str!("../../../migrations/sqlite/0013_silences.sql")),
    (14, "acknowledgements", include_str!("../../../migrations/sqlite/0014_acknowledgements.sql")),
    (
        15,
        "incremental evaluation",
        include_str!("../../../migrations/sqlite/0015_incremental_evaluation.sql"),
    ),
];

/// Applies the migrations not yet applied. A migration applied with other text than this
/// version's is refused: the store was made by another build.
pub(super) fn run(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
             version BIGINT PRIMARY KEY,
             description TEXT NOT NULL,
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
             success BOOLEAN NOT NULL,
             checksum BLOB NOT NULL,
             execution_time BIGINT NOT NULL
         );",
    )?;
    // A store migrated by a newer build, or left by a migration that failed partway, is not
    // one this build may write to.
    let known: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
    let applied: Vec<(i64, bool)> = conn
        .prepare("SELECT version, success FROM _sqlx_migrations ORDER BY version")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (version, success) in applied {
        if !known.contains(&version) {
            return Err(StoreError::Corrupt(format!(
                "the store has migration {version}, which this version does not know: it was \
                 made by a newer version of cierre"
            )));
        }
        if !success {
            return Err(StoreError::Corrupt(format!(
                "migration {version} failed partway earlier; restore a backup"
            )));
        }
    }
    for &(version, description, sql) in MIGRATIONS {
        let checksum = Sha384::digest(sql.as_bytes()).to_vec();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let stored: Option<Vec<u8>> = tx
            .query_row("SELECT checksum FROM _sqlx_migrations WHERE version = ?1", [version], |r| {
                r.get(0)
            })
            .optional()?;
        match stored {
            Some(stored) if stored == checksum => continue,
            Some(_) => {
                return Err(StoreError::Corrupt(format!(
                    "migration {version} ({description}) was applied with other text than this \
                     version's"
                )));
            }
            None => {}
        }
        let started = std::time::Instant::now();
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?1, ?2, TRUE, ?3, ?4)",
            params![version, description, checksum, started.elapsed().as_nanos() as i64],
        )?;
        tx.commit()?;
        tracing::info!(version, description, "migration applied");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files.len(), MIGRATIONS.len(), "{files:?}");
        for (file, &(version, description, _)) in files.iter().zip(MIGRATIONS) {
            let expected = format!("{version:04}_{}.sql", description.replace(' ', "_"));
            assert_eq!(file, &expected);
        }
    }

    #[test]
    fn a_store_migrated_by_a_newer_version_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'future', TRUE, x'00', 0)",
            [],
        )
        .unwrap();
        let e = run(&mut conn).unwrap_err().to_string();
        assert!(e.contains("migration 99") && e.contains("newer version"), "{e}");
    }

    #[test]
    fn migrating_twice_applies_each_migration_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        run(&mut conn).unwrap();
        let n: i64 =
            conn.query_row("SELECT COUNT(*) FROM _sqlx_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(n as usize, MIGRATIONS.len());
    }
}

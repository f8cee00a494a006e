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
    for &(version, description, sql) in MIGRATIONS {
        let checksum = Sha384::digest(sql.as_bytes()).to_vec();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied: Option<(bool, Vec<u8>)> = tx
            .query_row(
                "SELECT success, checksum FROM _sqlx_migrations WHERE version = ?1",
                [version],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match applied {
            Some((true, stored)) if stored == checksum => continue,
            Some((true, _)) => {
                return Err(StoreError::Corrupt(format!(
                    "migration {version} ({description}) was applied with other text than this \
                     version's"
                )));
            }
            Some((false, _)) => {
                return Err(StoreError::Corrupt(format!(
                    "migration {version} ({description}) failed partway earlier; restore a backup"
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
    fn migrating_twice_applies_each_migration_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        run(&mut conn).unwrap();
        let n: i64 =
            conn.query_row("SELECT COUNT(*) FROM _sqlx_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(n as usize, MIGRATIONS.len());
    }
}

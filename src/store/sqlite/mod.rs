//! Store, SQLite backend: the embedded default — one file in WAL mode, created if missing,
//! reached through rusqlite only. Ordinary queries run on a small pool of connections; the
//! bulk work (sync pages, evaluation pages, listings) on one connection of its own with a
//! big page cache and the file mapped. Every statement of this backend is in this folder:
//! `sync.rs`, `findings.rs`, `outbox.rs`, `runs.rs`, one per stage trait; rows are mapped
//! by column name in `rows.rs`.

mod acks;
mod digests;
mod findings;
mod migrate;
mod outbox;
mod rows;
mod runs;
mod silences;
mod sync;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::config::MAX_MMAP_MIB;
use crate::error::{StoreError, StoreResult};

/// What the bulk connection maps of the file unless `store.sqlite_mmap_mib` says otherwise:
/// as much as SQLite allows ([`MAX_MMAP_MIB`]).
pub const DEFAULT_MMAP_BYTES: u64 = MAX_MMAP_MIB * 1024 * 1024;

/// Connections of the pool: the daemon's jobs and its HTTP views query at once.
const POOL_SIZE: u32 = 4;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: r2d2::Pool<Connector>,
    /// One per connection of the pool: a query waits for its turn here, not on a blocking
    /// thread of its own (hundreds of requests at once would each hold a thread, and the
    /// memory its allocations leave behind).
    turns: Arc<Turns>,
    location: Location,
    /// The bulk connection, opened at its first job (after migrations). A std Mutex: it is
    /// only locked on blocking threads, never across an await.
    bulk: Arc<Mutex<Option<Connection>>>,
    /// Its one turn, waited for before taking a blocking thread (as `turns`).
    bulk_turn: Arc<Turns>,
    /// How much of the file the bulk connection maps into memory (`PRAGMA mmap_size`,
    /// `store.sqlite_mmap_mib`; 0: none). Takes effect when that connection opens.
    mmap_bytes: u64,
}

/// Turns at connections, taken without a queue: a turn freed goes to whichever waiter runs
/// next, never to one its owner is not polling. (A fair queue hands it to the first waiter
/// even unpolled — say one of several sends a delivery drain holds in a `FuturesUnordered`
/// while it awaits a claim — and the drain's own query then waits for ever.)
#[derive(Debug)]
struct Turns {
    free: tokio::sync::Semaphore,
    freed: tokio::sync::Notify,
}

impl Turns {
    fn new(n: usize) -> Arc<Turns> {
        Arc::new(Turns { free: tokio::sync::Semaphore::new(n), freed: tokio::sync::Notify::new() })
    }

    /// Waits until a turn is free and takes it; it is given back when the [`Turn`] drops.
    async fn take(self: &Arc<Self>) -> Turn {
        loop {
            // Registered before trying, so a turn given back in between wakes this waiter.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Ok(permit) = self.free.try_acquire() {
                permit.forget();
                return Turn(self.clone());
            }
            freed.await;
        }
    }
}

/// A turn taken from [`Turns`]: given back (and every waiter woken to try) when dropped.
#[derive(Debug)]
struct Turn(Arc<Turns>);

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.free.add_permits(1);
        self.0.freed.notify_waiters();
    }
}

/// Where the database is: a file, or a named in-memory database shared by this store's
/// connections (`sqlite::memory:`), which lives as long as one of them is open.
#[derive(Debug, Clone, PartialEq)]
enum Location {
    /// `mode=ro` opens the file read-only, `mode=rw` only if it exists; by default it is
    /// created if missing.
    File { path: PathBuf, mode: Mode },
    /// A `memdb` database: its connections lock it as they would a file, so they wait for
    /// each other (`busy_timeout`) instead of failing as shared-cache ones do.
    Memory(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
/// The URL's `mode`, as SQLite's URI filenames and sqlx name it.
enum Mode {
    /// Read-only.
    Ro,
    /// Read and write an existing file.
    Rw,
    /// Read and write, creating the file if missing (the default).
    Rwc,
}

/// Opens the pool's connections.
#[derive(Debug)]
struct Connector {
    location: Location,
}

impl r2d2::ManageConnection for Connector {
    type Connection = Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        let conn = connect(&self.location)?;
        // 4 MB of page cache per connection (the default is 2 MB): the bulk work runs on the
        // bulk connection with a cache of its own; these serve small queries and full scans,
        // which a bigger cache would not speed up but would add to the peak memory.
        conn.execute_batch("PRAGMA cache_size = -4096;")?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), rusqlite::Error> {
        conn.execute_batch("")
    }

    fn has_broken(&self, _: &mut Connection) -> bool {
        false
    }
}

/// A connection with the settings every connection of the store has.
fn connect(location: &Location) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let rw = OpenFlags::SQLITE_OPEN_READ_WRITE;
    let create = OpenFlags::SQLITE_OPEN_CREATE;
    let conn = match location {
        Location::File { path, mode: Mode::Ro } => {
            let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            conn.busy_timeout(Duration::from_secs(30))?;
            return Ok(conn);
        }
        Location::File { path, mode: Mode::Rw } => Connection::open_with_flags(path, flags | rw)?,
        Location::File { path, mode: Mode::Rwc } => {
            Connection::open_with_flags(path, flags | rw | create)?
        }
        Location::Memory(uri) => Connection::open_with_flags(uri, flags | rw | create)?,
    };
    conn.busy_timeout(Duration::from_secs(30))?;
    // Pages of 16 KB (for a new database; set before WAL, which fixes it): contract rows
    // are ~1 KB, and bigger pages mean fewer b-tree splits and WAL frames per row written.
    // NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the
    // last transactions, which the next sync re-reads anyway.
    conn.execute_batch(
        "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON;",
    )?;
    // Closing the last connection does not checkpoint the WAL into the file: a CLI run
    // would spend its last moments on housekeeping the next run's automatic checkpoints do
    // anyway (the WAL stays consistent either way).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Names in-memory databases apart: each store opened in memory is a database of its own.
static MEMORY_DATABASES: AtomicU64 = AtomicU64::new(0);

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite://path` (or `sqlite:path`) URL;
    /// `sqlite::memory:` is a database in memory.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let location = location(url);
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open {
            url: url.into(),
            message: e.to_string(),
        };
        let connector = Connector { location: location.clone() };
        // One connection now, so that a path that cannot be opened fails here with its
        // reason rather than as a pool timeout later.
        let first = {
            let location = connector.location.clone();
            tokio::task::spawn_blocking(move || connect(&location))
                .await
                .map_err(|e| open_err(&e))?
                .map_err(|e| open_err(&e))?
        };
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            // Connections are kept: an in-memory database lives only while one is open.
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(Duration::from_secs(30))
            .build_unchecked(connector);
        Ok(SqliteStore {
            pool,
            turns: Turns::new(POOL_SIZE as usize),
            location,
            bulk: Arc::default(),
            bulk_turn: Turns::new(1),
            mmap_bytes: DEFAULT_MMAP_BYTES,
        })
    }

    /// Runs `job` on a connection of the pool, on a blocking thread.
    async fn with_conn<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let pool = self.pool.clone();
        let turn = self.turns.take().await;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let mut conn = pool.get().map_err(|e| StoreError::Pool(e.to_string()))?;
            job(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("a store task stopped: {e}")))?
    }

    /// Runs `job` on the bulk connection (opened on first use), on a blocking thread.
    async fn with_bulk<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (bulk, mmap_bytes) = (self.bulk.clone(), self.mmap_bytes);
        let location = self.location.clone();
        let turn = self.bulk_turn.take().await;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            // A panic mid-job rolled its transaction back: the connection is still usable.
            let mut guard = bulk.lock().unwrap_or_else(|p| p.into_inner());
            let conn = match guard.as_mut() {
                Some(c) => c,
                None => guard.insert(open_bulk(&location, mmap_bytes)?),
            };
            job(conn)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("the bulk connection stopped: {e}")))?
    }
}

/// The bulk connection: the store's settings, a 32 MB page cache and the file mapped.
fn open_bulk(location: &Location, mmap_bytes: u64) -> StoreResult<Connection> {
    let conn = connect(location)?;
    // The writer looks up and inserts every key of a page at a random place of the key
    // index: a cache that holds the index of a million contracts (~28 MB) keeps those
    // lookups off the disk.
    conn.execute_batch(
        "PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 4096; \
         PRAGMA journal_size_limit = 67108864;",
    )?;
    // An evaluation reads contracts, documents, guarantees and findings in contract order,
    // not the order they were stored in: mapped, those pages are read where the kernel's
    // cache has them instead of being copied one by one. Mapped pages count in the process's
    // resident memory but are the kernel's file cache, shared and reclaimable.
    conn.execute_batch(&format!("PRAGMA mmap_size = {mmap_bytes};"))?;
    Ok(conn)
}

/// The database a `sqlite:` URL names: `sqlite://path`, `sqlite:path`, `sqlite::memory:`,
/// with sqlx's `mode` parameter (`ro`, `rw`, `rwc`, `memory`); other parameters are ignored.
fn location(url: &str) -> Location {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mode = query.split('&').find_map(|p| p.strip_prefix("mode="));
    if path == ":memory:" || path.is_empty() || mode == Some("memory") {
        let n = MEMORY_DATABASES.fetch_add(1, Ordering::Relaxed);
        return Location::Memory(format!(
            "file:/cierre-memory-{}-{n}?vfs=memdb",
            std::process::id()
        ));
    }
    let mode = match mode {
        Some("ro") => Mode::Ro,
        Some("rw") => Mode::Rw,
        _ => Mode::Rwc,
    };
    Location::File { path: PathBuf::from(path), mode }
}

impl crate::store::Store for SqliteStore {
    async fn open(url: &str) -> StoreResult<Self> {
        SqliteStore::open(url).await
    }

    fn tune(&mut self, settings: &crate::config::Settings) {
        self.mmap_bytes = settings.sqlite_mmap_bytes;
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.with_conn(migrate::run).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file_or_memory() {
        let file = |path: &str, mode| Location::File { path: PathBuf::from(path), mode };
        for (url, expected) in [
            ("sqlite://cierre.db", file("cierre.db", Mode::Rwc)),
            ("sqlite:cierre.db", file("cierre.db", Mode::Rwc)),
            ("sqlite:///var/lib/cierre.db", file("/var/lib/cierre.db", Mode::Rwc)),
            ("sqlite://cierre.db?mode=rwc", file("cierre.db", Mode::Rwc)),
            ("sqlite://cierre.db?mode=rw", file("cierre.db", Mode::Rw)),
            ("sqlite://cierre.db?cache=private&mode=ro", file("cierre.db", Mode::Ro)),
        ] {
            assert_eq!(location(url), expected, "{url}");
        }
        let (Location::Memory(a), Location::Memory(b)) =
            (location("sqlite::memory:"), location("sqlite://x.db?mode=memory"))
        else {
            panic!("in memory")
        };
        assert_ne!(a, b, "each store in memory is a database of its own");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_in_memory_is_one_database_for_all_its_connections_which_wait_for_each_other() {
        use crate::domain::Dataset;
        use crate::store::{OutboxStore, Store};
        use crate::sync::SyncStore;
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let other = SqliteStore::open("sqlite::memory:").await.unwrap();
        other.migrate().await.unwrap();
        let now = chrono::Utc::now();
        // A write transaction held on the bulk connection while the pool writes: the pool
        // waits for it instead of failing.
        let hold = store.with_bulk(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            std::thread::sleep(Duration::from_millis(300));
            tx.commit()?;
            Ok(())
        });
        let item = crate::store::NewOutboxItem {
            idempotency_key: "k".into(),
            channel: "email".into(),
            target: "a@b.example".into(),
            subject: None,
            message_id: None,
            payload: "x".into(),
        };
        let (held, queued) = tokio::join!(hold, async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store.enqueue(&item, now).await
        });
        held.unwrap();
        assert!(queued.unwrap());
        // The bulk connection sees what the pool wrote; another store in memory does not.
        let seen = store
            .with_bulk(|c| {
                Ok(c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))?)
            })
            .await
            .unwrap();
        assert_eq!(seen, 1);
        assert_eq!(other.outbox_counts().await.unwrap().pending, 0);
        assert_eq!(store.count_rows(Dataset::Contracts, true).await.unwrap(), 0);
    }

    #[test]
    fn the_bulk_connection_maps_what_it_is_told_up_to_sqlites_limit() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::File { path: dir.path().join("map.db"), mode: Mode::Rwc };
        let mapped = |bytes| {
            let c = open_bulk(&location, bytes).unwrap();
            c.query_row("PRAGMA mmap_size", [], |r| r.get::<_, i64>(0)).unwrap()
        };
        assert_eq!(mapped(0), 0);
        assert_eq!(mapped(64 << 20), 64 << 20);
        assert_eq!(mapped(DEFAULT_MMAP_BYTES), 0x7fff_0000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_is_not_held_up_by_waiting_queries_nobody_polls() {
        use futures_util::StreamExt;
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        // Twice as many queries as turns, each slow, held in a FuturesUnordered and polled
        // only until all have started or queued, as a delivery drain holds its sends while
        // it awaits its next claim.
        let slow = |_| {
            store.with_conn(|conn| {
                std::thread::sleep(Duration::from_millis(50));
                Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?)
            })
        };
        let mut unpolled: futures_util::stream::FuturesUnordered<_> =
            (0..2 * POOL_SIZE).map(slow).collect();
        assert!(
            tokio::time::timeout(Duration::from_millis(10), unpolled.next()).await.is_err(),
            "none is done yet"
        );
        // The owner's own query, while those wait unpolled: the turns the first ones give
        // back must not be kept for the others.
        let own =
            store.with_conn(|conn| Ok(conn.query_row("SELECT 2", [], |r| r.get::<_, i64>(0))?));
        let got = tokio::time::timeout(Duration::from_secs(10), own).await;
        assert_eq!(got.expect("the query got a turn").unwrap(), 2);
        // The others then all finish.
        let mut done = 0;
        while let Some(r) = unpolled.next().await {
            assert_eq!(r.unwrap(), 1);
            done += 1;
        }
        assert_eq!(done, 2 * POOL_SIZE);
    }
}

//! The embedded state database in `state_dir`: it stores and loads, and decides nothing.
//! Opened with full fsync, because the audit invariant rests on an intent being on disk
//! before the target database commits. One submodule per thing it keeps: [`runs`] (the
//! run history), [`intents`] (batches in flight), [`trail`] (the audit entries' storage),
//! [`holds`] (holds as last seen), [`rules`] (rules as last seen, their versions and
//! unlocks), [`outbox`] (reports waiting to be mailed), [`requests`]
//! (the register of data-subject requests).

mod error;
pub mod holds;
pub mod intents;
mod layout;
pub mod migrate;
pub mod outbox;
mod postgres;
pub mod requests;
pub mod rules;
pub mod runs;
pub mod trail;
mod version;
mod writer;

pub use error::StateError;
pub use holds::HoldSeen;
pub use intents::{ChildKeys, Intent};
pub use postgres::{Lease, LEASE_POLL, TAKEOVER_BOUND};
pub use rules::{RuleChange, RuleEntry, RuleSeen, RuleUnlock, RuleVersion};
pub use runs::RunRow;
pub use trail::{Chain, Entries, EntryGroup, Head, Settles, GENESIS};
pub use version::SCHEMA_VERSION;

/// Runs `$body` with `$pool` bound to the pool of whichever store holds the state. The SQL
/// in the body is written once, in what both SQLite and PostgreSQL accept (`$N`
/// placeholders, `ON CONFLICT`, times as fixed-width text, integers as 64 bits), and is
/// type-checked for each driver; where the two must differ, the caller matches on
/// [`State::is_postgres`] instead.
macro_rules! on_pool {
    ($state:expr, $pool:ident => $body:expr) => {
        match $state.store() {
            $crate::state::Store::Sqlite { pool: $pool, .. } => $body,
            $crate::state::Store::Postgres(pg) => {
                let $pool = &pg.pool;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The open state: run history, intents, audit trail, holds, rules and requests, in one of
/// two stores. Everything outside this module sees only `State`'s methods.
#[derive(Clone)]
pub struct State {
    store: Store,
    /// `state_dir`: reports and `anonymize.key` live here whatever the store.
    dir: PathBuf,
}

/// Where the state is kept.
#[derive(Clone)]
pub(crate) enum Store {
    /// `state_dir/state.db`, one host.
    Sqlite {
        /// Reads and the writes off the hot path.
        pool: SqlitePool,
        /// The thread that writes intents and appends (`writer`): appends take turns on
        /// it, so databases purged side by side confirm their batches one after the other.
        writer: std::sync::Arc<writer::Writer>,
    },
    /// `[daemon] state_url`: PostgreSQL, shared by instances on several hosts.
    Postgres(std::sync::Arc<postgres::PgStore>),
}

/// Which trail `audit verify` reads, where: it reads the store directly, in two halves at
/// once, for speed.
pub enum TrailSource<'a> {
    /// A `state.db` file.
    File(PathBuf),
    /// The PostgreSQL state database.
    Postgres(&'a sqlx::PgPool),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS audit_batch (
    id INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    run_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    database TEXT NOT NULL,
    tbl TEXT NOT NULL,
    action TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    request TEXT
);
CREATE INDEX IF NOT EXISTS audit_batch_at ON audit_batch (at);
CREATE INDEX IF NOT EXISTS audit_batch_request ON audit_batch (request) WHERE request IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit_entry (
    seq INTEGER PRIMARY KEY,
    batch INTEGER NOT NULL,
    key TEXT NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rule_runs (
    rule TEXT PRIMARY KEY,
    last_started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS holds_seen (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    database TEXT NOT NULL,
    tbl TEXT NOT NULL,
    active INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rules_seen (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    database TEXT NOT NULL,
    tbl TEXT NOT NULL,
    active INTEGER NOT NULL,
    locked INTEGER NOT NULL,
    line INTEGER NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rule_versions (
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    definition TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    PRIMARY KEY (name, fingerprint)
);
CREATE TABLE IF NOT EXISTS rule_unlocks (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    reason TEXT NOT NULL,
    unlocked_at TEXT NOT NULL,
    run_id TEXT NOT NULL,
    used_at TEXT,
    used_by TEXT
);
CREATE TABLE IF NOT EXISTS mail_outbox (
    run_id TEXT PRIMARY KEY,
    queued_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    received TEXT NOT NULL,
    due TEXT NOT NULL,
    reference TEXT,
    identity TEXT,
    extension_reason TEXT,
    created_at TEXT NOT NULL,
    closed_at TEXT
);
CREATE TABLE IF NOT EXISTS pending (
    batch_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    database TEXT NOT NULL,
    tbl TEXT NOT NULL,
    action TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    keys TEXT NOT NULL,
    created_at TEXT NOT NULL,
    request TEXT,
    children TEXT
);
CREATE TABLE IF NOT EXISTS request_outcomes (
    request TEXT NOT NULL,
    subject TEXT NOT NULL,
    step TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    count INTEGER NOT NULL,
    until TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (request, subject, step, reason)
);
";

/// Columns later schema versions added to tables that existed before them: (version,
/// table, column, declaration). [`State::migrate`] adds the ones an older database lacks,
/// so that an upgraded retentiond reads and extends the trail it already has.
const ADDED_COLUMNS: [(i64, &str, &str, &str); 3] = [
    (2, "audit", "request", "TEXT"),
    (2, "pending", "request", "TEXT"),
    (2, "pending", "children", "TEXT"),
];

/// Whether a query runs on `pool` (a read-only WAL database may open and fail at the first
/// read).
async fn readable(pool: &SqlitePool) -> bool {
    sqlx::query("SELECT COUNT(*) FROM sqlite_master")
        .fetch_one(pool)
        .await
        .is_ok()
}

/// Creates `dir` (and its parents) with mode 0750 where missing.
fn create_private_dir(dir: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|e| {
            StateError::Io(format!(
                "cannot create {}: {e}; create it or set [daemon] state_dir",
                dir.display()
            ))
        })
}

/// How the state database is opened for a pass: WAL, full fsync (an intent must be on disk
/// before the target commits), a generous busy timeout.
fn options(file: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        // Checkpoints copy the WAL into the database file and fsync it; at SQLite's
        // default (every 4 MB) a large pass did one every ~10 batches, and each stalled
        // the disk under the application's own commits. Every 64 MB instead.
        .pragma("wal_autocheckpoint", "16384")
}

/// Creates a new state database at `file` whole: built under a temporary name (0600) and
/// renamed into place, so a reader never finds a `state.db` without its schema.
async fn create_initialized(file: &Path) -> Result<(), StateError> {
    let fresh = file.with_extension("db.new");
    let _ = std::fs::remove_file(&fresh);
    create_private_file(&fresh)?;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(&fresh))
        .await?;
    let built = async {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        sqlx::raw_sql(&State::audit_view()).execute(&pool).await?;
        sqlx::raw_sql(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .execute(&pool)
            .await?;
        sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await
    }
    .await;
    pool.close().await;
    built?;
    std::fs::rename(&fresh, file)
        .map_err(|e| StateError::Io(format!("cannot create {}: {e}", file.display())))
}

/// Creates `file` empty with mode 0600 if it does not exist (SQLite gives its -wal and -shm
/// files the same mode).
fn create_private_file(file: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StateError::Io(format!(
            "cannot create {}: {e}",
            file.display()
        ))),
    }
}

/// The current time as stored everywhere in the state database: fixed-width RFC 3339 UTC,
/// so that text order is time order.
pub fn now_text() -> String {
    time_text(chrono::Utc::now())
}

/// Formats an instant the way the state database stores it.
pub fn time_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Held while a pass runs, so that two processes never interleave batches on one trail:
/// `state_dir/retentiond.lock` for `state.db`; a session lock on its own connection for
/// the PostgreSQL state, which every intent and append of the pass is written through.
/// Released when dropped (or when the process dies).
pub struct PassLock {
    _held: PassHeld,
}

/// What a held pass lock keeps alive (its `Drop` releases it).
enum PassHeld {
    File { _file: std::fs::File },
    Postgres { _session: postgres::PassSession },
}

impl State {
    /// Opens (creating if needed) the state the config names: PostgreSQL at `state_url`,
    /// else `state_dir/state.db`.
    pub async fn open_for(daemon: &crate::config::Daemon) -> Result<State, StateError> {
        match &daemon.state_url {
            Some(url) => {
                create_private_dir(&daemon.state_dir)?;
                let pg = postgres::PgStore::open(url, true).await?;
                Ok(State {
                    store: Store::Postgres(std::sync::Arc::new(pg)),
                    dir: daemon.state_dir.clone(),
                })
            }
            None => State::open(&daemon.state_dir).await,
        }
    }

    /// Opens the state the config names read-only, if it exists ([`State::open_read_only`]).
    pub async fn open_read_only_for(
        daemon: &crate::config::Daemon,
    ) -> Result<Option<State>, StateError> {
        match &daemon.state_url {
            Some(url) => {
                let pg = postgres::PgStore::open(url, false).await?;
                if !pg.has_state().await? {
                    pg.pool.close().await;
                    return Ok(None);
                }
                if let Err(e) = pg.check_version().await {
                    pg.pool.close().await;
                    return Err(e);
                }
                Ok(Some(State {
                    store: Store::Postgres(std::sync::Arc::new(pg)),
                    dir: daemon.state_dir.clone(),
                }))
            }
            None => State::open_read_only(&daemon.state_dir).await,
        }
    }

    /// The store, for [`on_pool`].
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Whether the state is kept in PostgreSQL (where the SQL of the two stores differs).
    pub fn is_postgres(&self) -> bool {
        matches!(self.store, Store::Postgres(_))
    }

    /// How a transaction that writes begins: SQLite takes its write lock up front (a
    /// read-then-write transaction could otherwise fail half-way with "database is locked").
    pub(crate) fn write_transaction(&self) -> &'static str {
        if self.is_postgres() {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        }
    }

    /// Where the state is kept, for messages: the `state.db` path, or the masked URL.
    pub fn location(&self) -> String {
        match &self.store {
            Store::Sqlite { .. } => self.dir.join("state.db").display().to_string(),
            Store::Postgres(pg) => pg.masked_url.clone(),
        }
    }

    /// The trail for `audit verify` to read directly.
    pub fn trail_source(&self) -> TrailSource<'_> {
        match &self.store {
            Store::Sqlite { .. } => TrailSource::File(self.dir.join("state.db")),
            Store::Postgres(pg) => TrailSource::Postgres(&pg.pool),
        }
    }

    /// The `state.db` pool, for tests and tools that query it by hand; `None` for the
    /// PostgreSQL state.
    pub fn pool(&self) -> Option<&SqlitePool> {
        match &self.store {
            Store::Sqlite { pool, .. } => Some(pool),
            Store::Postgres(_) => None,
        }
    }

    /// The SQLite pool (`state.db`), for what only exists there (its migrations).
    fn sqlite(&self) -> Result<&SqlitePool, StateError> {
        match &self.store {
            Store::Sqlite { pool, .. } => Ok(pool),
            Store::Postgres(_) => Err(StateError::Io(
                "internal: a state.db operation on the PostgreSQL state".into(),
            )),
        }
    }

    /// Waits for the lease that makes this instance the one that acts among those sharing
    /// the PostgreSQL state; `None` right away when it is held elsewhere. The `state.db`
    /// store is on one host: its lease is always granted (passes still take turns on the
    /// pass lock).
    pub async fn try_lease(&self) -> Result<Option<Lease>, StateError> {
        match &self.store {
            Store::Sqlite { .. } => Ok(Some(Lease::local())),
            Store::Postgres(pg) => pg.try_lease().await,
        }
    }

    /// Opens (creating if needed) the state database in `dir`, for a pass. The directory
    /// is created 0750 and `state.db` 0600: the trail holds no personal data, but its keys
    /// and rule names are nobody else's business.
    pub async fn open(dir: &Path) -> Result<State, StateError> {
        create_private_dir(dir)?;
        let file = dir.join("state.db");
        if !file.exists() {
            create_initialized(&file).await?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options(&file))
            .await?;
        let writer = match writer::Writer::start(file.clone()) {
            Ok(w) => std::sync::Arc::new(w),
            Err(e) => {
                pool.close().await;
                return Err(StateError::Io(e));
            }
        };
        let state = State {
            store: Store::Sqlite { pool, writer },
            dir: dir.to_owned(),
        };
        if let Err(e) = state.migrate().await {
            state.close().await;
            return Err(e);
        }
        Ok(state)
    }

    /// Opens the state database read-only, if it exists: what `audit verify`, `audit export`
    /// and `report` use, so that an auditor can run them on a copy they cannot (or must not)
    /// write — a read-only mount, another user's files. Never creates or changes anything.
    pub async fn open_read_only(dir: &Path) -> Result<Option<State>, StateError> {
        let file = dir.join("state.db");
        if !file.exists() {
            return Ok(None);
        }
        let opts = SqliteConnectOptions::new()
            .filename(&file)
            .read_only(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = match SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts.clone())
            .await
        {
            Ok(p) if readable(&p).await => p,
            _ => {
                // A WAL database on read-only media without its -shm file cannot be opened
                // for shared reading; nobody can be writing it there, so read it as is.
                SqlitePoolOptions::new()
                    .max_connections(2)
                    .connect_with(opts.immutable(true))
                    .await?
            }
        };
        let state = State {
            store: Store::Sqlite {
                // Nothing is written to a state database opened read-only.
                writer: std::sync::Arc::new(writer::Writer::read_only()),
                pool,
            },
            dir: dir.to_owned(),
        };
        match state.check_version().await {
            Ok(true) => Ok(Some(state)),
            Ok(false) => {
                state.close().await;
                Err(StateError::Io(format!(
                    "{} holds no audit trail: it is empty or not retentiond's state database",
                    file.display()
                )))
            }
            Err(e) => {
                state.close().await;
                Err(e)
            }
        }
    }

    /// Creates the schema where missing and records its version; refuses a state database
    /// written by a newer retentiond (it may hold what this one would misread or drop).
    async fn migrate(&self) -> Result<(), StateError> {
        self.check_version().await?;
        let pool = self.sqlite()?;
        sqlx::raw_sql(SCHEMA).execute(pool).await?;
        let old_layout = self.has_old_audit_table().await?;
        if !old_layout {
            sqlx::raw_sql(&Self::audit_view()).execute(pool).await?;
        }
        for (_, table, column, declaration) in ADDED_COLUMNS {
            if !self.has_column(table, column).await? {
                sqlx::raw_sql(&format!(
                    "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
                ))
                .execute(pool)
                .await?;
            }
        }
        // After the columns: a schema 1 trail gets its `request` column just above.
        if old_layout {
            self.convert_trail().await?;
        }
        sqlx::raw_sql(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .execute(pool)
            .await?;
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut id)
            .map_err(|e| StateError::Io(format!("no randomness for the installation id: {e}")))?;
        sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('installation', ?1)")
            .bind(hex::encode(id))
            .execute(pool)
            .await?;
        Ok(())
    }

    /// This installation's id: random, made with the state database, written beside every
    /// head it anchors in a target database, so that `audit verify` holds a trail only
    /// against its own anchors (another installation may share a database). `None` for a
    /// state database from before ids existed, opened read-only.
    pub async fn installation(&self) -> Result<Option<String>, StateError> {
        if let Store::Sqlite { pool, .. } = &self.store {
            let has_meta: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            )
            .fetch_one(pool)
            .await?;
            if has_meta == 0 {
                return Ok(None);
            }
        }
        Ok(
            on_pool!(self, pool => sqlx::query_scalar("SELECT value FROM meta WHERE key = 'installation'")
            .fetch_optional(pool)
            .await?),
        )
    }

    /// Whether `table` has `column` (a state database from before schema 2 has no
    /// `request` columns; read-only, it is read as it is).
    pub async fn has_column(&self, table: &str, column: &str) -> Result<bool, StateError> {
        let n: i64 = match &self.store {
            Store::Sqlite { pool, .. } => {
                sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info($1) WHERE name = $2")
                    .bind(table)
                    .bind(column)
                    .fetch_one(pool)
                    .await?
            }
            Store::Postgres(pg) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
            )
            .bind(table)
            .bind(column)
            .fetch_one(&pg.pool)
            .await?,
        };
        Ok(n > 0)
    }

    /// Whether the trail's tables are there; an error if the schema is newer than ours.
    async fn check_version(&self) -> Result<bool, StateError> {
        let pool = self.sqlite()?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(pool)
            .await?;
        if version > SCHEMA_VERSION {
            return Err(StateError::Io(format!(
                "{} was written by a newer retentiond (state schema {version}; this one knows up to {SCHEMA_VERSION}); run that version, or upgrade this one",
                self.dir.join("state.db").display()
            )));
        }
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name IN ('audit', 'chain_head', 'runs')",
        )
        .fetch_one(pool)
        .await?;
        Ok(tables == 3)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes this process may still write in the state directory (what `df` shows as
    /// available), so a pass can refuse to act on what it could not audit.
    pub fn free_space(&self) -> Result<u64, StateError> {
        let s = rustix::fs::statvfs(&self.dir).map_err(|e| {
            StateError::Io(format!(
                "cannot read the free space of {}: {e}",
                self.dir.display()
            ))
        })?;
        Ok(s.f_bavail.saturating_mul(s.f_frsize))
    }

    /// Takes the pass lock, or fails at once if another process holds it.
    pub async fn lock_pass(&self) -> Result<PassLock, StateError> {
        if let Store::Postgres(pg) = &self.store {
            return Ok(PassLock {
                _held: PassHeld::Postgres {
                    _session: pg.lock_pass().await?,
                },
            });
        }
        let path = self.dir.join("retentiond.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StateError::io)?;
        match file.try_lock() {
            Ok(()) => Ok(PassLock {
                _held: PassHeld::File { _file: file },
            }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Busy(self.dir.clone())),
            Err(std::fs::TryLockError::Error(e)) => Err(StateError::io(e)),
        }
    }

    /// Closes the pools cleanly (checkpoints the WAL).
    pub async fn close(&self) {
        match &self.store {
            Store::Sqlite { pool, writer } => {
                writer.close().await;
                pool.close().await;
            }
            Store::Postgres(pg) => pg.close().await,
        }
    }
}

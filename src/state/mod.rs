//! The embedded state database in `state_dir`: it stores and loads, and decides nothing.
//! Opened with full fsync, because the audit invariant rests on an intent being on disk
//! before the target database commits. One submodule per thing it keeps: [`runs`] (the
//! run history), [`intents`] (batches in flight), [`trail`] (the audit entries' storage),
//! [`holds`] (holds as last seen), [`outbox`] (reports waiting to be mailed).

pub mod holds;
pub mod intents;
pub mod outbox;
pub mod runs;
pub mod trail;

pub use holds::HoldSeen;
pub use intents::Intent;
pub use runs::RunRow;
pub use trail::{Chained, Head, Settles};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A state database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state database itself.
    #[error("state database: {0}")]
    Db(#[from] sqlx::Error),
    /// Files around it.
    #[error("state directory: {0}")]
    Io(String),
    /// Writing the output (stdout) failed, e.g. the reader went away.
    #[error("cannot write the output: {0}")]
    Output(String),
    /// Another pass holds the lock.
    #[error("another retentiond pass is running on state directory {0} (it holds retentiond.lock); wait for it to finish")]
    Busy(PathBuf),
}

impl StateError {
    /// Wraps an output error.
    pub fn output(e: impl std::fmt::Display) -> Self {
        StateError::Output(e.to_string())
    }

    /// Wraps an I/O-like error.
    pub fn io(e: impl std::fmt::Display) -> Self {
        StateError::Io(e.to_string())
    }
}

/// The open state database.
#[derive(Clone)]
pub struct State {
    pool: SqlitePool,
    dir: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    run_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    database TEXT NOT NULL,
    tbl TEXT NOT NULL,
    action TEXT NOT NULL,
    key TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
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
CREATE TABLE IF NOT EXISTS mail_outbox (
    run_id TEXT PRIMARY KEY,
    queued_at TEXT NOT NULL
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
    created_at TEXT NOT NULL
);
";

/// The current time as stored everywhere in the state database: fixed-width RFC 3339 UTC,
/// so that text order is time order.
pub fn now_text() -> String {
    time_text(chrono::Utc::now())
}

/// Formats an instant the way the state database stores it.
pub fn time_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Holds `state_dir/retentiond.lock` while a pass runs, so that two processes never
/// interleave batches on one trail. Released when dropped (or when the process dies).
pub struct PassLock {
    _file: std::fs::File,
}

impl State {
    /// Opens (creating if needed) the state database in `dir`.
    pub async fn open(dir: &Path) -> Result<State, StateError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StateError::Io(format!(
                "cannot create {}: {e}; create it or set [daemon] state_dir",
                dir.display()
            ))
        })?;
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("state.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            // Checkpoints copy the WAL into the database file and fsync it; at SQLite's
            // default (every 4 MB) a large pass did one every ~10 batches, and each stalled
            // the disk under the application's own commits. Every 64 MB instead.
            .pragma("wal_autocheckpoint", "16384");
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(State {
            pool,
            dir: dir.to_owned(),
        })
    }

    /// Opens the state database only if it exists (read-only commands must not create one).
    pub async fn open_existing(dir: &Path) -> Result<Option<State>, StateError> {
        if !dir.join("state.db").exists() {
            return Ok(None);
        }
        State::open(dir).await.map(Some)
    }

    /// The pool, for reading the trail (`audit export`).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the pass lock, or fails at once if another process holds it.
    pub fn lock_pass(&self) -> Result<PassLock, StateError> {
        let path = self.dir.join("retentiond.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StateError::io)?;
        match file.try_lock() {
            Ok(()) => Ok(PassLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Busy(self.dir.clone())),
            Err(std::fs::TryLockError::Error(e)) => Err(StateError::io(e)),
        }
    }

    /// Closes the pool cleanly (checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

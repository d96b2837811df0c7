//! The embedded state database in `state_dir`: run history, the audit trail, and the
//! intents of batches in flight. Opened with full fsync, because the audit invariant rests
//! on an intent being on disk before the target database commits.

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
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

/// A batch about to be committed in a target database: written before that commit, turned
/// into audit entries after it, or dropped if the commit never happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// Unique across all runs (`run_id` is random), also the journal row in the target.
    pub batch_id: String,
    /// The pass.
    pub run_id: String,
    /// The rule.
    pub rule: String,
    /// The database's config name.
    pub database: String,
    /// The table.
    pub table: String,
    /// The action verb.
    pub action: String,
    /// The rule's legal basis.
    pub legal_basis: String,
    /// The keys the batch acts on.
    pub keys: Vec<String>,
    /// When the intent was written.
    pub created_at: String,
}

/// One pass in the run history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    /// The pass id.
    pub run_id: String,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, if it ended.
    pub finished_at: Option<String>,
    /// `running`, `ok`, `failed`.
    pub status: String,
    /// The run summary (JSON), when finished.
    pub summary: Option<String>,
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

    /// The pool, for the audit module's queries.
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

    /// Records the start of a pass.
    pub async fn start_run(&self, run_id: &str, started_at: &str) -> Result<(), StateError> {
        sqlx::query("INSERT INTO runs (run_id, started_at, status) VALUES (?1, ?2, 'running')")
            .bind(run_id)
            .bind(started_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that `rules` started in a pass (for catching up missed passes per rule).
    pub async fn mark_rules_started(
        &self,
        rules: &[&str],
        started_at: &str,
    ) -> Result<(), StateError> {
        let mut tx = self.pool.begin().await?;
        for rule in rules {
            sqlx::query("INSERT INTO rule_runs (rule, last_started_at) VALUES (?1, ?2) ON CONFLICT (rule) DO UPDATE SET last_started_at = excluded.last_started_at")
                .bind(rule)
                .bind(started_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// When `rule` last started a pass, if ever.
    pub async fn rule_last_started(&self, rule: &str) -> Result<Option<String>, StateError> {
        let r = sqlx::query("SELECT last_started_at FROM rule_runs WHERE rule = ?1")
            .bind(rule)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.try_get(0)).transpose()?)
    }

    /// When the last pass that ended `ok` finished, if ever.
    pub async fn last_success(&self) -> Result<Option<String>, StateError> {
        let r = sqlx::query("SELECT MAX(finished_at) FROM runs WHERE status = 'ok'")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get(0)?)
    }

    /// Records the end of a pass with its summary.
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: &str,
        summary_json: &str,
    ) -> Result<(), StateError> {
        sqlx::query(
            "UPDATE runs SET finished_at = ?2, status = ?3, summary = ?4 WHERE run_id = ?1",
        )
        .bind(run_id)
        .bind(now_text())
        .bind(status)
        .bind(summary_json)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The last pass that finished with a summary, or a given one.
    pub async fn run(&self, run_id: Option<&str>) -> Result<Option<RunRow>, StateError> {
        let q = match run_id {
            Some(_) => "SELECT run_id, started_at, finished_at, status, summary FROM runs WHERE run_id = ?1",
            None => "SELECT run_id, started_at, finished_at, status, summary FROM runs WHERE summary IS NOT NULL ORDER BY started_at DESC, rowid DESC LIMIT 1",
        };
        let mut query = sqlx::query(q);
        if let Some(id) = run_id {
            query = query.bind(id);
        }
        let row = query.fetch_optional(&self.pool).await?;
        row.map(|r| {
            Ok(RunRow {
                run_id: r.try_get(0)?,
                started_at: r.try_get(1)?,
                finished_at: r.try_get(2)?,
                status: r.try_get(3)?,
                summary: r.try_get(4)?,
            })
        })
        .transpose()
        .map_err(StateError::Db)
    }

    /// Marks passes that never finished (the process died) as interrupted.
    pub async fn close_interrupted_runs(&self) -> Result<u64, StateError> {
        let r = sqlx::query(
            "UPDATE runs SET status = 'interrupted', finished_at = ?1 WHERE finished_at IS NULL",
        )
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Writes an intent durably (fsync) before the target database commits.
    pub async fn write_intent(&self, i: &Intent) -> Result<(), StateError> {
        let keys = serde_json::to_string(&i.keys).map_err(StateError::io)?;
        let mut conn = self.pool.acquire().await?;
        // Whatever a confirm left on this connection: an intent is always fsynced.
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await?;
        sqlx::query("INSERT INTO pending (batch_id, run_id, rule, database, tbl, action, legal_basis, keys, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
            .bind(&i.batch_id)
            .bind(&i.run_id)
            .bind(&i.rule)
            .bind(&i.database)
            .bind(&i.table)
            .bind(&i.action)
            .bind(&i.legal_basis)
            .bind(keys)
            .bind(&i.created_at)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The batch committed: its intent becomes audit entries, atomically. This commit is
    /// not fsynced on its own (the next intent's fsync carries it to disk): if a power cut
    /// loses it, the intent and the batch's journal row survive, and the next start writes
    /// the same entries again (see `engine::reconcile`).
    pub async fn confirm(&self, i: &Intent, at: &str) -> Result<(), StateError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        let what = crate::audit::Action {
            run_id: &i.run_id,
            rule: &i.rule,
            database: &i.database,
            table: &i.table,
            action: &i.action,
            legal_basis: &i.legal_basis,
        };
        crate::audit::append(&mut tx, &what, &i.keys, at).await?;
        sqlx::query("DELETE FROM pending WHERE batch_id = ?1")
            .bind(&i.batch_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The batch did not commit: its intent is dropped, no entry is written.
    pub async fn drop_intent(&self, batch_id: &str) -> Result<(), StateError> {
        sqlx::query("DELETE FROM pending WHERE batch_id = ?1")
            .bind(batch_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Intents whose outcome is not yet known (after a crash or a lost connection).
    pub async fn pending(&self) -> Result<Vec<Intent>, StateError> {
        let rows = sqlx::query("SELECT batch_id, run_id, rule, database, tbl, action, legal_basis, keys, created_at FROM pending ORDER BY created_at, batch_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let keys: String = r.try_get(7)?;
                Ok(Intent {
                    batch_id: r.try_get(0)?,
                    run_id: r.try_get(1)?,
                    rule: r.try_get(2)?,
                    database: r.try_get(3)?,
                    table: r.try_get(4)?,
                    action: r.try_get(5)?,
                    legal_basis: r.try_get(6)?,
                    keys: serde_json::from_str(&keys).map_err(StateError::io)?,
                    created_at: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// Holds as last seen: name → (fingerprint, database, table, active).
    pub async fn holds_seen(
        &self,
    ) -> Result<Vec<(String, String, String, String, bool)>, StateError> {
        let rows = sqlx::query(
            "SELECT name, fingerprint, database, tbl, active FROM holds_seen ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get::<i64, _>(4)? != 0,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StateError::Db)
    }

    /// Records a hold event in the audit trail and the hold's new state, atomically.
    #[allow(clippy::too_many_arguments)]
    pub async fn hold_event(
        &self,
        run_id: &str,
        name: &str,
        event: &str,
        fingerprint: &str,
        database: &str,
        table: &str,
        active: bool,
    ) -> Result<(), StateError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let what = crate::audit::Action {
            run_id,
            rule: name,
            database,
            table,
            action: event,
            legal_basis: "legal hold",
        };
        crate::audit::append(&mut tx, &what, &[fingerprint.to_owned()], &now_text()).await?;
        sqlx::query("INSERT INTO holds_seen (name, fingerprint, database, tbl, active) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint, database = excluded.database, tbl = excluded.tbl, active = excluded.active")
            .bind(name)
            .bind(fingerprint)
            .bind(database)
            .bind(table)
            .bind(i64::from(active))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Summaries of passes that started at or after `from` and before `until` (RFC 3339).
    pub async fn summaries_between(
        &self,
        from: &str,
        until: &str,
    ) -> Result<Vec<String>, StateError> {
        let rows = sqlx::query("SELECT summary FROM runs WHERE started_at >= ?1 AND started_at < ?2 AND summary IS NOT NULL ORDER BY started_at")
            .bind(from)
            .bind(until)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(StateError::Db))
            .collect()
    }

    /// Queues the report of `run_id` for mailing (kept until it is sent).
    pub async fn queue_mail(&self, run_id: &str) -> Result<(), StateError> {
        sqlx::query("INSERT OR IGNORE INTO mail_outbox (run_id, queued_at) VALUES (?1, ?2)")
            .bind(run_id)
            .bind(now_text())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Reports waiting to be mailed, oldest first.
    pub async fn outbox(&self) -> Result<Vec<String>, StateError> {
        let rows = sqlx::query("SELECT run_id FROM mail_outbox ORDER BY queued_at, run_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(StateError::Db))
            .collect()
    }

    /// The report of `run_id` was mailed.
    pub async fn mail_sent(&self, run_id: &str) -> Result<(), StateError> {
        sqlx::query("DELETE FROM mail_outbox WHERE run_id = ?1")
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes the pool cleanly (checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

//! The one thread that writes a pass's hot path into the state database: intents (fsynced)
//! and appends to the trail. It owns a rusqlite connection whose statements are prepared
//! once (`prepare_cached`), so a batch costs two hand-offs between threads (its intent,
//! then its append) instead of two for every statement through sqlx's SQLite worker —
//! measured, those hand-offs were a quarter of the trail's time (BENCHMARKS.md). Writes
//! are serialized by being on one thread: databases purged side by side take turns.
//!
//! The writer runs work it is given and knows nothing of what it writes (`trail` and
//! `intents` hand it their SQL). Everything else the state database keeps stays on the
//! sqlx pool; both are the same bundled SQLite, so their locks see each other.

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// A piece of work for the thread: given the connection (opened on first use), it runs
/// and sends its own result back.
type Job = Box<dyn FnOnce(&mut Option<Connection>, &Path) + Send>;

/// How durable a write must be when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// On disk (`synchronous = FULL`): an intent, before the target database commits.
    Fsynced,
    /// In the WAL, carried to disk by the next fsynced write (`synchronous = NORMAL`): an
    /// append, which the next start writes again if a power cut loses it.
    Logged,
}

/// The handle: sends work to the thread and awaits its result.
pub(crate) struct Writer {
    jobs: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
}

impl Writer {
    /// Starts the thread for the state database at `file` (the connection is opened at the
    /// first write).
    pub fn start(file: PathBuf) -> Result<Writer, String> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || {
                let mut conn: Option<Connection> = None;
                for job in rx {
                    job(&mut conn, &file);
                }
                if let Some(c) = conn.take() {
                    let _ = c.close();
                }
            })
            .map_err(|e| format!("cannot start the state writer thread: {e}"))?;
        Ok(Writer {
            jobs: std::sync::Mutex::new(Some(tx)),
        })
    }

    /// A writer for a state database opened read-only: every write is refused.
    pub fn read_only() -> Writer {
        Writer {
            jobs: std::sync::Mutex::new(None),
        }
    }

    /// Runs `work` on the writer's connection with `durability`, and returns its result. A
    /// failed write drops the connection (a full disk, an I/O error may leave it inside a
    /// transaction); the next write opens a fresh one.
    pub async fn run<T, E>(
        &self,
        durability: Durability,
        work: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<String> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn: &mut Option<Connection>, file: &Path| {
            let result = connection(conn, file)
                .and_then(|c| synchronous(c, durability).map(|()| c))
                .map_err(E::from)
                .and_then(work);
            if result.is_err() {
                *conn = None;
            }
            let _ = reply.send(result);
        });
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok()),
            Err(_) => false,
        };
        if !sent {
            return Err(E::from(
                "the state database is open read-only or closed; nothing can be written to it"
                    .to_owned(),
            ));
        }
        answer
            .await
            .map_err(|_| E::from("the state writer thread stopped".to_owned()))?
    }

    /// Ends the thread after the work already sent, closing its connection.
    pub async fn close(&self) {
        // The last job: once it ran, everything before it has.
        let _ = self.run(Durability::Logged, |_| Ok::<(), String>(())).await;
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
    }
}

/// The writer's connection, opened if there is none: WAL, a generous busy timeout,
/// checkpoints every 64 MB (as the sqlx pool's, see `state::options`).
fn connection<'c>(
    conn: &'c mut Option<Connection>,
    file: &Path,
) -> Result<&'c mut Connection, String> {
    if conn.is_none() {
        let c = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
        c.busy_timeout(Duration::from_secs(30))
            .and_then(|()| {
                c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 16384;")
            })
            .map_err(|e| format!("cannot set up {}: {e}", file.display()))?;
        *conn = Some(c);
    }
    conn.as_mut()
        .ok_or_else(|| "the state writer has no connection".to_owned())
}

fn synchronous(conn: &Connection, durability: Durability) -> Result<(), String> {
    let level = match durability {
        Durability::Fsynced => "FULL",
        Durability::Logged => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", level)
        .map_err(|e| format!("writing the state database: {e}"))
}

//! `audit verify`: walks the whole trail and finds the first entry that was altered,
//! removed or reordered.
//!
//! Auditors run it over years of entries, so it is built for throughput: the trail is read
//! with rusqlite in two halves at once, each in chunks on one thread while another thread
//! re-hashes the chunks already read. Memory stays flat: at most a few chunks are in
//! flight per half.

use super::chain::GENESIS;
pub use super::check::Verdict;
use super::check::{judge, segment, Chunk, Segment, CHUNK, TEXTS};
use crate::progress::{Progress, Reporter};
use crate::state::{State, StateError, TrailSource};
use std::path::Path;
use std::sync::mpsc;

/// Walks the whole trail of `state` in order (memory stays flat) and returns the first
/// entry that was altered, removed or reordered, or the head of an intact trail.
pub async fn verify(state: &State) -> Result<Verdict, StateError> {
    verify_with(state, Reporter::default()).await
}

/// [`verify`], telling `progress` how many entries are checked of how many.
pub async fn verify_with(state: &State, progress: Reporter) -> Result<Verdict, StateError> {
    let work: Box<dyn FnOnce() -> Result<Verdict, StateError> + Send> = match state.trail_source() {
        TrailSource::File(path) => Box::new(move || verify_file_with(&path, progress.get())),
        TrailSource::Postgres(pool) => {
            let pool = pool.clone();
            let handle = tokio::runtime::Handle::current();
            Box::new(move || super::verify_postgres::verify(&pool, &handle, progress.get()))
        }
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StateError::Io(format!("audit verify stopped: {e}")))?
}

/// Verifies the trail in the state database at `path` (blocking: run it off the async
/// runtime).
///
/// The trail up to the recorded head is checked in two halves at once, each on its own
/// connection (a reader and a checker thread per half); the seam between them is checked
/// at the end. Entries up to the head never change once written, so the second half's
/// snapshot holds the same ones as the first's even while a pass appends; entries past
/// the head are counted in the first snapshot.
pub fn verify_file(path: &Path) -> Result<Verdict, StateError> {
    verify_file_with(path, &crate::progress::Silent)
}

/// [`verify_file`], telling `progress` how many entries are checked of how many.
pub fn verify_file_with(path: &Path, progress: &dyn Progress) -> Result<Verdict, StateError> {
    let conn = open(path)?;
    // One read transaction: the head, the first half and the count past the head are one
    // snapshot.
    conn.execute_batch("BEGIN").map_err(fail)?;
    let head: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM chain_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(fail)?;
    let (head_seq, head_hash) = head.unwrap_or((0, GENESIS.to_owned()));
    let past_head: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE seq > ?1",
            [head_seq],
            |r| r.get(0),
        )
        .map_err(fail)?;
    let mid = head_seq / 2;
    progress.begin("audit trail", u64::try_from(head_seq + past_head).ok());

    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| -> Result<Segment, StateError> {
            let conn = open(path)?;
            conn.execute_batch("BEGIN").map_err(fail)?;
            segment(
                |tx| read_chunks(&conn, mid + 1, head_seq, tx).map_err(fail),
                mid + 1,
                None,
                progress,
            )
        });
        let first = segment(
            |tx| read_chunks(&conn, 1, mid, tx).map_err(fail),
            1,
            Some(GENESIS.as_bytes().to_vec()),
            progress,
        );
        let second = second
            .join()
            .map_err(|_| StateError::Io("an audit verify thread panicked".into()))
            .and_then(|r| r);
        (first, second)
    });
    progress.finish();
    judge(first, second, head_seq, &head_hash, past_head)
}

/// Opens the state database read-only. A WAL database in a directory this process may not
/// write (a read-only mount, an auditor's copy owned by someone else) cannot be opened for
/// shared reading; nobody can be writing it there either, so it is then read as immutable.
fn open(path: &Path) -> Result<rusqlite::Connection, StateError> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let cannot =
        |e: rusqlite::Error| StateError::Io(format!("cannot open {}: {e}", path.display()));
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(cannot)?;
    if conn
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok()
    {
        return Ok(conn);
    }
    drop(conn);
    let uri = format!("file:{}?immutable=1", uri_path(path));
    rusqlite::Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI).map_err(cannot)
}

/// `path` escaped for a SQLite `file:` URI.
fn uri_path(path: &Path) -> String {
    path.to_string_lossy()
        .replace('%', "%25")
        .replace('?', "%3f")
        .replace('#', "%23")
}

fn fail(e: rusqlite::Error) -> StateError {
    StateError::Io(format!("reading the audit trail: {e}"))
}

/// Reads the entries with `from <= seq <= to` in order and sends them in chunks; stops
/// when the checker hangs up.
fn read_chunks(
    conn: &rusqlite::Connection,
    from: i64,
    to: i64,
    tx: mpsc::SyncSender<Chunk>,
) -> Result<(), rusqlite::Error> {
    // Schema 3 shows the trail through a view `audit`; before, `audit` was the table.
    let compact: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'view' AND name = 'audit'",
        [],
        |r| r.get(0),
    )?;
    if compact > 0 {
        read_compact(conn, from, to, tx)
    } else {
        read_stored(conn, from, to, tx)
    }
}

/// [`read_chunks`] for a trail as schema 3 stores it (`state::layout`): the shared fields
/// once per batch, the hash as 32 bytes, no `prev_hash`. Each entry is handed to the
/// checker exactly as the `audit` view shows it — the hash in hex, and as `prev_hash` the
/// hash of entry `seq - 1` (the genesis hash for entry 1, empty if there is none) — so
/// the checker and the hash definition are the same for both layouts.
fn read_compact(
    conn: &rusqlite::Connection,
    from: i64,
    to: i64,
    tx: mpsc::SyncSender<Chunk>,
) -> Result<(), rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT e.seq, b.at, b.run_id, b.rule, b.database, b.tbl, b.action, e.key, b.legal_basis, e.hash, b.request FROM audit_entry e JOIN audit_batch b ON b.id = e.batch WHERE e.seq BETWEEN ?1 AND ?2 ORDER BY e.seq",
    )?;
    let mut before = conn.prepare("SELECT hash FROM audit_entry WHERE seq = ?1")?;
    let mut rows = stmt.query([from, to])?;
    let mut chunk = Chunk::new(true);
    // The previous entry read: its seq and its hash in hex.
    let mut previous: Option<(i64, [u8; 64])> = None;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let mut ends = [0; TEXTS];
        for (n, end) in ends.iter_mut().enumerate().take(8) {
            let v = r.get_ref(n + 1)?;
            let bytes = v.as_bytes().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(n + 1, v.data_type(), Box::new(e))
            })?;
            chunk.bytes.extend_from_slice(bytes);
            *end = chunk.bytes.len();
        }
        let hash = r.get_ref(9)?;
        let hash = match hash {
            rusqlite::types::ValueRef::Blob(b) => b,
            other => other.as_bytes().unwrap_or_default(),
        };
        let hash_start = chunk.bytes.len();
        hex_of(hash, &mut chunk.bytes);
        ends[8] = chunk.bytes.len();
        match previous {
            _ if seq == 1 => chunk.bytes.extend_from_slice(GENESIS.as_bytes()),
            Some((p, link)) if p == seq - 1 => chunk.bytes.extend_from_slice(&link),
            _ => {
                let stored: Option<Vec<u8>> = before
                    .query_row([seq - 1], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?;
                if let Some(stored) = stored {
                    hex_of(&stored, &mut chunk.bytes);
                }
            }
        }
        ends[9] = chunk.bytes.len();
        let mut link = [0u8; 64];
        let own = &chunk.bytes[hash_start..ends[8]];
        previous = (own.len() == 64).then(|| {
            link.copy_from_slice(own);
            (seq, link)
        });
        let request = r.get_ref(10)?;
        let has_request = request != rusqlite::types::ValueRef::Null;
        if has_request {
            let bytes = request.as_bytes().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(10, request.data_type(), Box::new(e))
            })?;
            chunk.bytes.extend_from_slice(bytes);
        }
        ends[10] = chunk.bytes.len();
        chunk.entries.push((seq, ends, has_request));
        if chunk.entries.len() == CHUNK
            && tx
                .send(std::mem::replace(&mut chunk, Chunk::new(true)))
                .is_err()
        {
            return Ok(());
        }
    }
    if !chunk.entries.is_empty() {
        let _ = tx.send(chunk);
    }
    Ok(())
}

/// Appends `bytes` to `out` in lowercase hex.
fn hex_of(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + bytes.len() * 2, 0);
    // The output was sized for exactly this input.
    let _ = hex::encode_to_slice(bytes, &mut out[start..]);
}

/// [`read_chunks`] for a trail as schemas 1 and 2 stored it, one row per entry with every
/// field (a state database opened read-only, as it is, is never converted).
fn read_stored(
    conn: &rusqlite::Connection,
    from: i64,
    to: i64,
    tx: mpsc::SyncSender<Chunk>,
) -> Result<(), rusqlite::Error> {
    // A state database from before schema 2, read as it is, has no `request` column.
    let has_column: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('audit') WHERE name = 'request'",
        [],
        |r| r.get(0),
    )?;
    let request = if has_column > 0 { "request" } else { "NULL" };
    let mut stmt = conn.prepare(&format!(
        "SELECT seq, at, run_id, rule, database, tbl, action, key, legal_basis, hash, prev_hash, {request} FROM audit WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
    ))?;
    let mut rows = stmt.query([from, to])?;
    let mut chunk = Chunk::new(false);
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let mut ends = [0; TEXTS];
        let mut has_request = false;
        for (n, end) in ends.iter_mut().enumerate() {
            let v = r.get_ref(n + 1)?;
            if n == TEXTS - 1 && v == rusqlite::types::ValueRef::Null {
                *end = chunk.bytes.len();
                continue;
            }
            let bytes = v.as_bytes().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(n + 1, v.data_type(), Box::new(e))
            })?;
            chunk.bytes.extend_from_slice(bytes);
            *end = chunk.bytes.len();
            has_request = n == TEXTS - 1;
        }
        chunk.entries.push((seq, ends, has_request));
        if chunk.entries.len() == CHUNK
            && tx
                .send(std::mem::replace(&mut chunk, Chunk::new(false)))
                .is_err()
        {
            return Ok(());
        }
    }
    if !chunk.entries.is_empty() {
        let _ = tx.send(chunk);
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    /// A trail of `n` entries in a fresh state directory.
    async fn trail(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).await.unwrap();
        let keys: Vec<String> = (1..=n).map(|k| k.to_string()).collect();
        let at = "2026-11-23T02:30:00.000000Z";
        let intent = crate::state::Intent {
            batch_id: "b".into(),
            run_id: "r".into(),
            rule: "rule".into(),
            database: "db".into(),
            table: "t".into(),
            action: "delete".into(),
            legal_basis: "test".into(),
            keys,
            created_at: at.into(),
            request: None,
            children: Vec::new(),
        };
        state.write_intent(&intent).await.unwrap();
        crate::engine::journal::confirm(&state, &intent)
            .await
            .unwrap();
        state.close().await;
        let path = dir.path().join("state.db");
        (dir, path)
    }

    fn tamper(path: &Path, sql: &str) {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }

    fn broken_at(path: &Path) -> (i64, String) {
        match verify_file(path).unwrap() {
            Verdict::Broken { seq, reason } => (seq, reason),
            v => panic!("expected a broken trail, got {v:?}"),
        }
    }

    // 100 entries: the halves are 1–50 and 51–100, so these cases sit on the seam.

    #[tokio::test]
    async fn an_intact_trail_verifies_across_the_seam() {
        let (_dir, path) = trail(100).await;
        let Verdict::Intact { entries, .. } = verify_file(&path).unwrap() else {
            panic!("intact trail reported broken");
        };
        assert_eq!(entries, 100);
    }

    #[tokio::test]
    async fn the_first_entry_of_the_second_half_removed_is_named() {
        let (_dir, path) = trail(100).await;
        tamper(&path, "DELETE FROM audit WHERE seq = 51");
        let (seq, reason) = broken_at(&path);
        assert_eq!(seq, 52);
        assert!(reason.contains("expected entry 51"), "{reason}");
    }

    #[tokio::test]
    async fn the_last_entry_of_the_first_half_removed_is_named() {
        let (_dir, path) = trail(100).await;
        tamper(&path, "DELETE FROM audit WHERE seq = 50");
        let (seq, reason) = broken_at(&path);
        assert_eq!(seq, 51);
        assert!(reason.contains("expected entry 50"), "{reason}");
    }

    /// Rewrites the trail at `path` as schema 2 stored it: one row per entry, every field,
    /// `prev_hash` included (what a state database written before schema 3 holds).
    pub(crate) fn to_schema_2(path: &Path) {
        tamper(
            path,
            "CREATE TABLE audit2 (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, run_id TEXT NOT NULL, rule TEXT NOT NULL, database TEXT NOT NULL, tbl TEXT NOT NULL, action TEXT NOT NULL, key TEXT NOT NULL, legal_basis TEXT NOT NULL, hash TEXT NOT NULL, prev_hash TEXT NOT NULL, request TEXT);
             INSERT INTO audit2 SELECT seq, at, run_id, rule, database, tbl, action, key, legal_basis, hash, prev_hash, request FROM audit;
             DROP VIEW audit; DROP TABLE audit_entry; DROP TABLE audit_batch;
             ALTER TABLE audit2 RENAME TO audit;
             CREATE INDEX audit_at ON audit (at);
             CREATE INDEX audit_request ON audit (request) WHERE request IS NOT NULL;
             PRAGMA user_version = 2;",
        );
    }

    #[tokio::test]
    async fn a_broken_link_on_the_seam_is_named_in_a_trail_stored_before_schema_3() {
        let (_dir, path) = trail(100).await;
        to_schema_2(&path);
        assert!(matches!(
            verify_file(&path).unwrap(),
            Verdict::Intact { entries: 100, .. }
        ));
        tamper(
            &path,
            &format!(
                "UPDATE audit SET prev_hash = '{}' WHERE seq = 51",
                "1".repeat(64)
            ),
        );
        let (seq, reason) = broken_at(&path);
        assert_eq!(seq, 51);
        assert!(reason.contains("prev_hash"), "{reason}");
    }

    #[tokio::test]
    async fn a_replaced_hash_on_the_seam_is_named() {
        // Schema 3 stores no prev_hash: the link is the stored hash of the entry before,
        // so replacing a hash breaks that entry, and a forged entry with a fitting hash of
        // its own breaks the next one.
        let (_dir, path) = trail(100).await;
        tamper(
            &path,
            &format!(
                "UPDATE audit SET hash = '{}' WHERE seq = 50",
                "1".repeat(64)
            ),
        );
        let (seq, reason) = broken_at(&path);
        assert_eq!(seq, 50);
        assert!(reason.contains("altered"), "{reason}");

        let (_dir, path) = trail(100).await;
        let conn = rusqlite::Connection::open(&path).unwrap();
        let prev: String = conn
            .query_row("SELECT prev_hash FROM audit WHERE seq = 50", [], |r| {
                r.get(0)
            })
            .unwrap();
        let forged = crate::audit::chain::hash_of(&crate::audit::chain::Fields {
            seq: 50,
            at: "2026-11-23T02:30:00.000000Z",
            run_id: "r",
            rule: "rule",
            database: "db",
            table: "t",
            action: "delete",
            key: "4711",
            legal_basis: "test",
            prev_hash: &prev,
            request: None,
        });
        tamper(
            &path,
            &format!("UPDATE audit SET key = '4711', hash = '{forged}' WHERE seq = 50"),
        );
        let (seq, reason) = broken_at(&path);
        assert_eq!(seq, 51, "{reason}");
    }

    #[tokio::test]
    async fn a_prev_hash_edited_through_the_view_is_refused_not_dropped() {
        let (_dir, path) = trail(10).await;
        let conn = rusqlite::Connection::open(&path).unwrap();
        let e = conn
            .execute_batch(&format!(
                "UPDATE audit SET prev_hash = '{}' WHERE seq = 5",
                "1".repeat(64)
            ))
            .unwrap_err();
        assert!(e.to_string().contains("prev_hash is not stored"), "{e}");
        // A forged entry inserted with a link that is not the hash before it: refused too.
        conn.execute_batch("DELETE FROM audit WHERE seq = 10")
            .unwrap();
        let e = conn
            .execute_batch(&format!(
                "INSERT INTO audit (seq, at, run_id, rule, database, tbl, action, key, legal_basis, hash, prev_hash) VALUES (10, 'x', 'r', 'rule', 'db', 't', 'delete', '10', 'test', '{0}', '{0}')",
                "2".repeat(64)
            ))
            .unwrap_err();
        assert!(e.to_string().contains("prev_hash is not stored"), "{e}");
        // Edits that are stored still reach the tables, so verify sees them.
        tamper(&path, "UPDATE audit SET key = 'x' WHERE seq = 5");
        assert_eq!(broken_at(&path).0, 5);
    }

    #[tokio::test]
    async fn the_earliest_damage_wins_over_later_damage() {
        let (_dir, path) = trail(100).await;
        tamper(
            &path,
            "UPDATE audit SET key = 'x' WHERE seq = 80; UPDATE audit SET key = 'y' WHERE seq = 20",
        );
        assert_eq!(broken_at(&path).0, 20);
    }

    #[tokio::test]
    async fn entries_past_the_head_are_named() {
        let (_dir, path) = trail(100).await;
        tamper(
            &path,
            "UPDATE chain_head SET seq = 99, hash = (SELECT hash FROM audit WHERE seq = 99)",
        );
        let (seq, reason) = broken_at(&path);
        assert_eq!(seq, 100);
        assert!(reason.contains("follow the recorded head"), "{reason}");
    }

    #[tokio::test]
    async fn a_request_on_an_entry_is_hashed_and_its_removal_is_found() {
        let (_dir, path) = trail(10).await;
        // Give entry 10 (the head) a request and re-hash it as retentiond would.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let (at, prev): (String, String) = conn
            .query_row("SELECT at, prev_hash FROM audit WHERE seq = 10", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let hash = crate::audit::chain::hash_of(&crate::audit::chain::Fields {
            seq: 10,
            at: &at,
            run_id: "r",
            rule: "rule",
            database: "db",
            table: "t",
            action: "delete",
            key: "10",
            legal_basis: "test",
            prev_hash: &prev,
            request: Some("REQ-2026-0001"),
        });
        conn.execute_batch(&format!(
            "UPDATE audit SET request = 'REQ-2026-0001', hash = '{hash}' WHERE seq = 10; UPDATE chain_head SET hash = '{hash}'"
        ))
        .unwrap();
        assert!(matches!(
            verify_file(&path).unwrap(),
            Verdict::Intact { entries: 10, .. }
        ));
        tamper(&path, "UPDATE audit SET request = NULL WHERE seq = 10");
        assert_eq!(broken_at(&path).0, 10, "the request is part of the hash");
        tamper(
            &path,
            "UPDATE audit SET request = 'REQ-2026-0002' WHERE seq = 10",
        );
        assert_eq!(broken_at(&path).0, 10);
    }

    #[tokio::test]
    async fn a_trail_written_before_requests_existed_verifies_read_only_and_after_the_upgrade() {
        let (dir, path) = trail(20).await;
        // Back to schema 1: no `request` columns, user_version 1.
        to_schema_2(&path);
        tamper(
            &path,
            "DROP INDEX audit_request; ALTER TABLE audit DROP COLUMN request; ALTER TABLE pending DROP COLUMN request; PRAGMA user_version = 1",
        );
        assert!(matches!(
            verify_file(&path).unwrap(),
            Verdict::Intact { entries: 20, .. }
        ));
        let state = State::open(dir.path()).await.unwrap();
        assert!(state.has_column("audit", "request").await.unwrap());
        assert!(state.has_column("pending", "request").await.unwrap());
        state.close().await;
        assert!(matches!(
            verify_file(&path).unwrap(),
            Verdict::Intact { entries: 20, .. }
        ));
        let compact: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM audit_entry", [], |r| r.get(0))
            .unwrap();
        assert_eq!(compact, 20, "converted to schema 3 on opening");
    }

    #[tokio::test]
    async fn a_schema_2_trail_that_is_not_intact_is_not_converted() {
        let (dir, path) = trail(20).await;
        to_schema_2(&path);
        tamper(&path, "UPDATE audit SET prev_hash = 'x' WHERE seq = 7");
        let Err(e) = State::open(dir.path()).await else {
            panic!("a broken schema 2 trail was converted");
        };
        assert!(e.to_string().contains("not intact at entry 7"), "{e}");
        // Left exactly as it was: still schema 2, still broken at 7.
        assert_eq!(broken_at(&path).0, 7);
    }
}

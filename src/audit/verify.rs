//! `audit verify`: walks the whole trail and finds the first entry that was altered,
//! removed or reordered.
//!
//! Auditors run it over years of entries, so it is built for throughput: the trail is read
//! with rusqlite in one read transaction (a consistent snapshot, even while a pass is
//! appending), in chunks, on one thread, while a second thread re-hashes the chunks
//! already read. Memory stays flat: at most a few chunks are in flight.

use super::chain::{digest_of_parts, matches, GENESIS};
use super::Verdict;
use crate::state::StateError;
use std::path::Path;
use std::sync::mpsc;

/// Entries per chunk handed from the reader to the checker.
const CHUNK: usize = 8192;

/// Chunks the reader may run ahead of the checker.
const IN_FLIGHT: usize = 4;

/// Text columns of an entry, in the order they are read.
const TEXTS: usize = 10;

/// A chunk of stored entries, read into one buffer: per-field strings would make the
/// allocator, not SQLite or SHA-256, the bottleneck. Fields stay bytes as stored: they are
/// hashed as they are on disk, so nothing needs decoding.
struct Chunk {
    bytes: Vec<u8>,
    /// Per entry: `seq`, and where each text field ends in `bytes`.
    entries: Vec<(i64, [usize; TEXTS])>,
}

/// One entry of a chunk: `seq`, the hashed fields after it (in hash order, ending with
/// `prev_hash`), and the stored hash.
struct View<'a> {
    seq: i64,
    parts: [&'a [u8]; TEXTS - 1],
    hash: &'a [u8],
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            bytes: Vec::with_capacity(CHUNK * 320),
            entries: Vec::with_capacity(CHUNK),
        }
    }

    /// Entry `i`. Columns are read as `at, run_id, rule, database, tbl, action, key,
    /// legal_basis, hash, prev_hash`.
    fn entry(&self, i: usize) -> View<'_> {
        let (seq, ends) = self.entries[i];
        let start = if i == 0 {
            0
        } else {
            self.entries[i - 1].1[TEXTS - 1]
        };
        let field = |n: usize| {
            let from = if n == 0 { start } else { ends[n - 1] };
            &self.bytes[from..ends[n]]
        };
        View {
            seq,
            parts: [
                field(0),
                field(1),
                field(2),
                field(3),
                field(4),
                field(5),
                field(6),
                field(7),
                field(9),
            ],
            hash: field(8),
        }
    }
}

/// Verifies the trail in the state database at `path` (blocking: run it off the async
/// runtime).
pub fn verify_file(path: &Path) -> Result<Verdict, StateError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StateError::Io(format!("cannot open {}: {e}", path.display())))?;
    let fail = |e: rusqlite::Error| StateError::Io(format!("reading the audit trail: {e}"));
    // One read transaction: the head and the entries are one snapshot.
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

    let (tx, rx) = mpsc::sync_channel::<Chunk>(IN_FLIGHT);
    std::thread::scope(|scope| {
        let checker = scope.spawn(move || check(rx));
        let read = read_chunks(&conn, tx);
        let outcome = checker
            .join()
            .map_err(|_| StateError::Io("the audit checker thread panicked".into()))?;
        match outcome {
            // The checker stopped early; the reader's error (if any) is only the closed
            // channel.
            Checked::Broken { seq, reason } => Ok(Verdict::Broken { seq, reason }),
            Checked::Intact { count, last } => {
                read.map_err(fail)?;
                if head_seq != count || head_hash != last {
                    return Ok(Verdict::Broken {
                        seq: count + 1,
                        reason: format!(
                            "the trail ends at entry {count} but its recorded head is entry {head_seq}: entries were removed from the end"
                        ),
                    });
                }
                Ok(Verdict::Intact {
                    entries: count,
                    head: last,
                })
            }
        }
    })
}

/// Reads the trail in order and sends it in chunks; stops when the checker hangs up.
fn read_chunks(
    conn: &rusqlite::Connection,
    tx: mpsc::SyncSender<Chunk>,
) -> Result<(), rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, run_id, rule, database, tbl, action, key, legal_basis, hash, prev_hash FROM audit ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut chunk = Chunk::new();
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let mut ends = [0; TEXTS];
        for (n, end) in ends.iter_mut().enumerate() {
            let v = r.get_ref(n + 1)?;
            let bytes = v.as_bytes().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(n + 1, v.data_type(), Box::new(e))
            })?;
            chunk.bytes.extend_from_slice(bytes);
            *end = chunk.bytes.len();
        }
        chunk.entries.push((seq, ends));
        if chunk.entries.len() == CHUNK
            && tx
                .send(std::mem::replace(&mut chunk, Chunk::new()))
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

/// What the checker found.
enum Checked {
    Intact { count: i64, last: String },
    Broken { seq: i64, reason: String },
}

/// Checks chunks in order: numbering, links, and each entry's own hash.
fn check(rx: mpsc::Receiver<Chunk>) -> Checked {
    let mut expected_seq = 1i64;
    let mut prev: Vec<u8> = GENESIS.as_bytes().to_vec();
    for chunk in rx {
        for i in 0..chunk.entries.len() {
            let e = chunk.entry(i);
            let broken = |reason: String| Checked::Broken { seq: e.seq, reason };
            if e.seq != expected_seq {
                return broken(format!(
                    "expected entry {expected_seq} but found entry {}: entries before it were removed or reordered",
                    e.seq
                ));
            }
            if e.parts[TEXTS - 2] != prev.as_slice() {
                return broken("its prev_hash does not match the hash of the entry before it: an entry was removed, inserted or reordered".into());
            }
            if !matches(e.hash, &digest_of_parts(e.seq, e.parts)) {
                return broken("its contents do not match its hash: the entry was altered".into());
            }
            prev.clear();
            prev.extend_from_slice(e.hash);
            expected_seq += 1;
        }
    }
    Checked::Intact {
        count: expected_seq - 1,
        // A hash that matched its digest is lowercase hex, so this never replaces anything.
        last: String::from_utf8_lossy(&prev).into_owned(),
    }
}

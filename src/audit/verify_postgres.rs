//! `audit verify` on the PostgreSQL state (`[daemon] state_url`): the same checker as for
//! `state.db` (`verify`), fed by `COPY … TO STDOUT (FORMAT binary)` in two halves on two
//! sessions at once. COPY streams rows without a round trip per row, and its binary format
//! costs the server least and needs no unescaping here; each entry reaches the checker
//! exactly as the view `audit` shows it (the hash in hex, `prev_hash` the hash of the entry
//! before), so the hash definition and every verdict are the same as for `state.db`.

use super::chain::GENESIS;
use super::check::{judge, segment, Chunk, Verdict, CHUNK, TEXTS};
use crate::progress::Progress;
use crate::state::StateError;
use futures_util::TryStreamExt;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::mpsc::SyncSender;
use tokio::runtime::Handle;

/// How each half reads: one consistent snapshot, nothing written.
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Verifies the trail in the PostgreSQL state (blocking: run it off the async runtime;
/// `handle` drives the sessions).
pub(super) fn verify(
    pool: &PgPool,
    handle: &Handle,
    progress: &dyn Progress,
) -> Result<Verdict, StateError> {
    // One snapshot for the head, the first half and the count past the head; rolled back
    // (it wrote nothing) when dropped.
    let mut first_conn = handle.block_on(pool.begin_with(SNAPSHOT))?;
    let head: Option<(i64, String)> = handle.block_on(
        sqlx::query_as("SELECT seq, hash FROM chain_head WHERE id = 1")
            .fetch_optional(&mut *first_conn),
    )?;
    let (head_seq, head_hash) = head.unwrap_or((0, GENESIS.to_owned()));
    let past_head: i64 = handle.block_on(
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_entry WHERE seq > $1")
            .bind(head_seq)
            .fetch_one(&mut *first_conn),
    )?;
    let mid = head_seq / 2;
    progress.begin("audit trail", u64::try_from(head_seq + past_head).ok());
    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| -> Result<_, StateError> {
            // The pool hands connections back on a task of the runtime.
            let _runtime = handle.enter();
            let mut conn = handle.block_on(pool.begin_with(SNAPSHOT))?;
            segment(
                |tx| handle.block_on(copy_range(&mut conn, pool, mid + 1, head_seq, tx)),
                mid + 1,
                None,
                progress,
            )
        });
        let first = segment(
            |tx| handle.block_on(copy_range(&mut first_conn, pool, 1, mid, tx)),
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

/// Streams the entries with `from <= seq <= to` in order and sends them in chunks; stops
/// when the checker hangs up. `from` and `to` are integers this module computed (COPY takes
/// no bound parameters).
///
/// Only `audit_entry` is streamed (a join with `audit_batch` and a window for `prev_hash`
/// in the server took six times as long): each chunk's batches are read with one query on
/// another session of `pool`, and `prev_hash` is the hash of the entry read before, looked
/// up only where the numbering has a gap — exactly what the view `audit` shows.
async fn copy_range(
    conn: &mut sqlx::PgConnection,
    pool: &PgPool,
    from: i64,
    to: i64,
    tx: SyncSender<Chunk>,
) -> Result<(), StateError> {
    let sql = format!(
        "COPY (SELECT seq, batch, key, hash FROM audit_entry WHERE seq BETWEEN {from} AND {to} ORDER BY seq) TO STDOUT WITH (FORMAT binary)"
    );
    let mut stream = conn.copy_out_raw(&sql).await?;
    let mut reader = Reader::default();
    // A row may be split across the messages COPY sends: the unfinished tail waits here.
    let mut pending: Vec<u8> = Vec::new();
    let mut header = false;
    let mut ended = false;
    while let Some(bytes) = stream.try_next().await? {
        pending.extend_from_slice(&bytes);
        let mut start = 0;
        if !header {
            if pending.len() < BINARY_HEADER.len() + 8 {
                continue;
            }
            if !pending.starts_with(BINARY_HEADER) {
                return Err(malformed());
            }
            let extension = u32::from_be_bytes(
                pending[BINARY_HEADER.len() + 4..BINARY_HEADER.len() + 8]
                    .try_into()
                    .map_err(|_| malformed())?,
            ) as usize;
            if pending.len() < BINARY_HEADER.len() + 8 + extension {
                continue;
            }
            start = BINARY_HEADER.len() + 8 + extension;
            header = true;
        }
        while !ended {
            match parse_tuple(&pending[start..])? {
                Tuple::Row(row, used) => {
                    let row = reader.keep(row);
                    reader.rows.push(row);
                    start += used;
                    if reader.rows.len() == CHUNK {
                        let chunk = reader.chunk(pool).await?;
                        if tx.send(chunk).is_err() {
                            // The checker found what it looked for. Read COPY to its end,
                            // so the session goes back to its pool usable.
                            while stream.try_next().await?.is_some() {}
                            return Ok(());
                        }
                    }
                }
                Tuple::End => ended = true,
                Tuple::Incomplete => break,
            }
        }
        pending.drain(..start);
    }
    if !ended {
        return Err(StateError::Io(
            "reading the audit trail: COPY ended before its trailer".into(),
        ));
    }
    if !reader.rows.is_empty() {
        let chunk = reader.chunk(pool).await?;
        let _ = tx.send(chunk);
    }
    Ok(())
}

/// One stored entry as COPY sent it; its key and hash (in lowercase hex) are ranges of
/// the reader's buffer, so that a row costs no allocation of its own.
struct Row {
    seq: i64,
    batch: i64,
    key: std::ops::Range<usize>,
    hash: std::ops::Range<usize>,
}

/// The fields an entry takes from its batch, as stored.
struct Batch {
    at: Vec<u8>,
    run_id: Vec<u8>,
    rule: Vec<u8>,
    database: Vec<u8>,
    tbl: Vec<u8>,
    action: Vec<u8>,
    legal_basis: Vec<u8>,
    request: Option<Vec<u8>>,
}

/// Turns rows into the checker's chunks: the batches of the rows read so far (only those
/// still needed are kept, so memory stays flat) and the entry read last.
#[derive(Default)]
struct Reader {
    rows: Vec<Row>,
    /// The keys and hashes of `rows`.
    bytes: Vec<u8>,
    batches: HashMap<i64, Batch>,
    /// The entry read last: its `seq` and hash.
    previous: Option<(i64, Vec<u8>)>,
}

impl Reader {
    /// The rows read so far as a chunk, with their batches' fields and `prev_hash`.
    async fn chunk(&mut self, pool: &PgPool) -> Result<Chunk, StateError> {
        let mut missing: Vec<i64> = self
            .rows
            .iter()
            .map(|r| r.batch)
            .filter(|b| !self.batches.contains_key(b))
            .collect();
        missing.dedup();
        if !missing.is_empty() {
            let found = sqlx::query_as::<_, (i64, String, String, String, String, String, String, String, Option<String>)>(
                "SELECT id, at, run_id, rule, database, tbl, action, legal_basis, request FROM audit_batch WHERE id = ANY($1)",
            )
            .bind(&missing)
            .fetch_all(pool)
            .await?;
            for (id, at, run_id, rule, database, tbl, action, legal_basis, request) in found {
                self.batches.insert(
                    id,
                    Batch {
                        at: at.into_bytes(),
                        run_id: run_id.into_bytes(),
                        rule: rule.into_bytes(),
                        database: database.into_bytes(),
                        tbl: tbl.into_bytes(),
                        action: action.into_bytes(),
                        legal_basis: legal_basis.into_bytes(),
                        request: request.map(String::into_bytes),
                    },
                );
            }
        }
        let mut chunk = Chunk::new(true);
        let rows = std::mem::take(&mut self.rows);
        for row in &rows {
            // An entry whose batch is gone is not in the view either: the checker then
            // finds the gap it leaves.
            let Some(b) = self.batches.get(&row.batch) else {
                continue;
            };
            let mut ends = [0usize; TEXTS];
            let hash = &self.bytes[row.hash.clone()];
            let fields: [&[u8]; 9] = [
                &b.at,
                &b.run_id,
                &b.rule,
                &b.database,
                &b.tbl,
                &b.action,
                &self.bytes[row.key.clone()],
                &b.legal_basis,
                hash,
            ];
            for (end, field) in ends.iter_mut().zip(fields) {
                chunk.bytes.extend_from_slice(field);
                *end = chunk.bytes.len();
            }
            match &self.previous {
                _ if row.seq == 1 => chunk.bytes.extend_from_slice(GENESIS.as_bytes()),
                Some((seq, hash)) if *seq == row.seq - 1 => chunk.bytes.extend_from_slice(hash),
                _ => {
                    let stored: Option<String> = sqlx::query_scalar(
                        "SELECT encode(hash, 'hex') FROM audit_entry WHERE seq = $1",
                    )
                    .bind(row.seq - 1)
                    .fetch_optional(pool)
                    .await?;
                    if let Some(stored) = stored {
                        chunk.bytes.extend_from_slice(stored.as_bytes());
                    }
                }
            }
            ends[9] = chunk.bytes.len();
            if let Some(request) = &b.request {
                chunk.bytes.extend_from_slice(request);
            }
            ends[10] = chunk.bytes.len();
            chunk.entries.push((row.seq, ends, b.request.is_some()));
            let previous = self.previous.get_or_insert_with(|| (0, Vec::new()));
            previous.0 = row.seq;
            previous.1.clear();
            previous.1.extend_from_slice(hash);
        }
        self.bytes.clear();
        // Entries come in order of their batches: only the last one may go on.
        if let Some(last) = rows.last() {
            self.batches.retain(|id, _| *id == last.batch);
        }
        Ok(chunk)
    }
}

/// What COPY's binary format starts with.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0";

fn malformed() -> StateError {
    StateError::Io("reading the audit trail: COPY sent what is not an entry".into())
}

/// What the next bytes of a binary COPY hold.
enum Tuple<'a> {
    /// An entry, and how many bytes it took.
    Row(RawRow<'a>, usize),
    /// The trailer: no more entries.
    End,
    /// Not all of the next entry has arrived yet.
    Incomplete,
}

/// Reads one tuple of COPY's binary format: a field count (4: `seq`, `batch`, `key`,
/// `hash`), then each field's length and bytes. The hash is turned into lowercase hex,
/// as the view shows it and as it is hashed.
fn parse_tuple(buf: &[u8]) -> Result<Tuple<'_>, StateError> {
    let Some(count) = buf.get(..2) else {
        return Ok(Tuple::Incomplete);
    };
    match i16::from_be_bytes([count[0], count[1]]) {
        -1 => return Ok(Tuple::End),
        4 => {}
        _ => return Err(malformed()),
    }
    let mut at = 2;
    let mut fields: [&[u8]; 4] = [&[]; 4];
    for field in &mut fields {
        let Some(len) = buf.get(at..at + 4) else {
            return Ok(Tuple::Incomplete);
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        // No column read here is ever NULL.
        let len = usize::try_from(len).map_err(|_| malformed())?;
        at += 4;
        let Some(bytes) = buf.get(at..at + len) else {
            return Ok(Tuple::Incomplete);
        };
        *field = bytes;
        at += len;
    }
    let int = |b: &[u8]| -> Result<i64, StateError> {
        Ok(i64::from_be_bytes(b.try_into().map_err(|_| malformed())?))
    };
    Ok(Tuple::Row(
        RawRow {
            seq: int(fields[0])?,
            batch: int(fields[1])?,
            key: fields[2],
            hash: fields[3],
        },
        at,
    ))
}

/// An entry as it lies in COPY's buffer: the hash still 32 raw bytes.
struct RawRow<'a> {
    seq: i64,
    batch: i64,
    key: &'a [u8],
    hash: &'a [u8],
}

impl Reader {
    /// Copies `raw`'s key and hash (as hex) into the reader's buffer.
    fn keep(&mut self, raw: RawRow<'_>) -> Row {
        let key_start = self.bytes.len();
        self.bytes.extend_from_slice(raw.key);
        let hash_start = self.bytes.len();
        self.bytes.resize(hash_start + raw.hash.len() * 2, 0);
        // The buffer was sized for exactly this input.
        let _ = hex::encode_to_slice(raw.hash, &mut self.bytes[hash_start..]);
        Row {
            seq: raw.seq,
            batch: raw.batch,
            key: key_start..hash_start,
            hash: hash_start..self.bytes.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(seq: i64, batch: i64, key: &[u8], hash: &[u8]) -> Vec<u8> {
        let mut out = 4i16.to_be_bytes().to_vec();
        for field in [&seq.to_be_bytes()[..], &batch.to_be_bytes()[..], key, hash] {
            out.extend_from_slice(&(field.len() as i32).to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }

    #[test]
    fn a_binary_tuple_is_read_whole_or_waited_for() {
        let bytes = tuple(7, 3, b"k\t1", &[0xab, 0x01]);
        let Tuple::Row(raw, used) = parse_tuple(&bytes).unwrap() else {
            panic!("a whole tuple");
        };
        assert_eq!((raw.seq, raw.batch, used), (7, 3, bytes.len()));
        let mut reader = Reader::default();
        let row = reader.keep(raw);
        assert_eq!(&reader.bytes[row.key], b"k\t1");
        assert_eq!(&reader.bytes[row.hash], b"ab01");
        for cut in 0..bytes.len() {
            assert!(matches!(
                parse_tuple(&bytes[..cut]).unwrap(),
                Tuple::Incomplete
            ));
        }
        assert!(matches!(
            parse_tuple(&(-1i16).to_be_bytes()).unwrap(),
            Tuple::End
        ));
        assert!(parse_tuple(&3i16.to_be_bytes()).is_err());
    }
}

//! `audit verify` on the PostgreSQL state (`[daemon] state_url`): the same checker as for
//! `state.db` (`verify`), fed by `COPY … TO STDOUT` in two halves on two sessions at once.
//! COPY streams rows as text without a round trip per row; each entry reaches the checker
//! exactly as the view `audit` shows it (the hash in hex, `prev_hash` the hash of the entry
//! before), so the hash definition and every verdict are the same as for `state.db`.

use super::chain::GENESIS;
use super::check::{judge, segment, Chunk, Verdict, CHUNK, TEXTS};
use crate::progress::Progress;
use crate::state::StateError;
use futures_util::TryStreamExt;
use sqlx::PgPool;
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
                |tx| handle.block_on(copy_range(&mut conn, mid + 1, head_seq, tx)),
                mid + 1,
                None,
                progress,
            )
        });
        let first = segment(
            |tx| handle.block_on(copy_range(&mut first_conn, 1, mid, tx)),
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
async fn copy_range(
    conn: &mut sqlx::PgConnection,
    from: i64,
    to: i64,
    tx: SyncSender<Chunk>,
) -> Result<(), StateError> {
    let sql = format!(
        "COPY (SELECT e.seq, b.at, b.run_id, b.rule, b.database, b.tbl, b.action, e.key, b.legal_basis, encode(e.hash, 'hex'),
                CASE WHEN e.seq = 1 THEN '{GENESIS}'
                     WHEN lag(e.seq) OVER w = e.seq - 1 THEN encode(lag(e.hash) OVER w, 'hex')
                     ELSE COALESCE((SELECT encode(p.hash, 'hex') FROM audit_entry p WHERE p.seq = e.seq - 1), '')
                END,
                b.request
         FROM audit_entry e JOIN audit_batch b ON b.id = e.batch
         WHERE e.seq BETWEEN {from} AND {to}
         WINDOW w AS (ORDER BY e.seq)
         ORDER BY e.seq) TO STDOUT"
    );
    let mut stream = conn.copy_out_raw(&sql).await?;
    let mut chunk = Chunk::new(true);
    // A row may be split across the messages COPY sends: the unfinished tail waits here.
    let mut pending: Vec<u8> = Vec::new();
    while let Some(bytes) = stream.try_next().await? {
        pending.extend_from_slice(&bytes);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
            push_row(&mut chunk, &pending[start..start + end])?;
            start += end + 1;
            if chunk.entries.len() == CHUNK
                && tx
                    .send(std::mem::replace(&mut chunk, Chunk::new(true)))
                    .is_err()
            {
                return Ok(());
            }
        }
        pending.drain(..start);
    }
    if !pending.is_empty() {
        return Err(StateError::Io(
            "reading the audit trail: COPY ended inside a row".into(),
        ));
    }
    if !chunk.entries.is_empty() {
        let _ = tx.send(chunk);
    }
    Ok(())
}

/// Adds one row of COPY's text format (tab-separated, `\N` for NULL, backslash escapes) to
/// `chunk`: `seq`, then the [`TEXTS`] fields in the checker's order.
fn push_row(chunk: &mut Chunk, row: &[u8]) -> Result<(), StateError> {
    let bad = || StateError::Io("reading the audit trail: a row COPY sent is malformed".into());
    let mut fields = row.split(|b| *b == b'\t');
    let seq: i64 = fields
        .next()
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| f.parse().ok())
        .ok_or_else(bad)?;
    let mut ends = [0usize; TEXTS];
    let mut has_request = false;
    for (n, end) in ends.iter_mut().enumerate() {
        let field = fields.next().ok_or_else(bad)?;
        if field == b"\\N" {
            if n != TEXTS - 1 {
                return Err(bad());
            }
        } else {
            unescape(field, &mut chunk.bytes).ok_or_else(bad)?;
            has_request = n == TEXTS - 1;
        }
        *end = chunk.bytes.len();
    }
    if fields.next().is_some() {
        return Err(bad());
    }
    chunk.entries.push((seq, ends, has_request));
    Ok(())
}

/// Appends a COPY text field to `out` with its escapes undone; `None` if one is unknown.
fn unescape(field: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if !field.contains(&b'\\') {
        out.extend_from_slice(field);
        return Some(());
    }
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let next = *field.get(i + 1)?;
        i += 2;
        out.push(match next {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            b'0'..=b'7' => {
                // Up to three octal digits.
                let mut v = u32::from(next - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                u8::try_from(v).ok()?
            }
            b'x' => {
                let mut v = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    return None;
                }
                u8::try_from(v).ok()?
            }
            other => other,
        });
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        unescape(s, &mut out).unwrap();
        out
    }

    #[test]
    fn copy_escapes_are_undone() {
        assert_eq!(un(b"plain"), b"plain");
        assert_eq!(un(b"a\\tb\\nc\\\\d"), b"a\tb\nc\\d");
        assert_eq!(un(b"\\r\\b\\f\\v"), b"\r\x08\x0c\x0b");
        assert_eq!(un(b"\\101\\x41"), b"AA");
        assert_eq!(un("é\\t".as_bytes()), "é\t".as_bytes());
    }

    #[test]
    fn a_row_becomes_one_entry_with_its_request_or_none() {
        let mut chunk = Chunk::new(true);
        push_row(
            &mut chunk,
            b"7\tat\trun\trule\tdb\ttbl\tdelete\tk\\t1\tbasis\taa\tbb\t\\N",
        )
        .unwrap();
        push_row(
            &mut chunk,
            b"8\tat\trun\trule\tdb\ttbl\tdelete\tk2\tbasis\tcc\taa\tREQ-1",
        )
        .unwrap();
        assert_eq!(chunk.entries.len(), 2);
        assert_eq!(chunk.entries[0].0, 7);
        assert!(!chunk.entries[0].2);
        assert!(chunk.entries[1].2);
        assert!(push_row(&mut chunk, b"9\tonly\ttwo").is_err());
        assert!(push_row(&mut chunk, b"x\ta\tb\tc\td\te\tf\tg\th\ti\tj\tk").is_err());
    }
}

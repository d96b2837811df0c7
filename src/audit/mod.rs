//! The audit trail for auditors: append-only, hash-chained, free of personal data.
//! [`chain`] defines entries and hashing; this module appends, verifies and exports them
//! from the state database.

pub mod chain;
pub mod export;
pub mod verify;

pub use chain::{Entry, GENESIS};

use crate::state::{State, StateError};
use sqlx::Row;

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry is intact and in order.
    Intact {
        /// Number of entries.
        entries: i64,
        /// The head hash (anchor it in reports).
        head: String,
    },
    /// The first bad entry, and what is wrong with it.
    Broken {
        /// The entry's position (as stored).
        seq: i64,
        /// Plain explanation.
        reason: String,
    },
}

/// A record acted on, ready to be written to the trail.
#[derive(Debug, Clone)]
pub struct Action<'a> {
    /// The pass.
    pub run_id: &'a str,
    /// The rule.
    pub rule: &'a str,
    /// The database's config name.
    pub database: &'a str,
    /// The table.
    pub table: &'a str,
    /// `delete`, `anonymize`, `flag`.
    pub action: &'a str,
    /// The rule's legal basis.
    pub legal_basis: &'a str,
}

/// Entries per INSERT statement when appending: 4 bound values each, plus 7 shared
/// (SQLite allows 32,766).
const INSERT_CHUNK: usize = 2000;

/// Appends one entry per key, chained to the current head, inside `tx` (the caller commits,
/// together with whatever else makes the batch final).
///
/// The fields every entry of a batch shares are bound once per statement; each row binds
/// only its `seq`, `key`, `hash` and `prev_hash`.
pub async fn append(
    tx: &mut sqlx::SqliteConnection,
    what: &Action<'_>,
    keys: &[String],
    at: &str,
) -> Result<(), sqlx::Error> {
    let head = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1")
        .fetch_optional(&mut *tx)
        .await?;
    let (mut seq, mut prev) = match head {
        Some(r) => (r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?),
        None => (0, GENESIS.to_owned()),
    };
    for chunk in keys.chunks(INSERT_CHUNK) {
        let first = seq + 1;
        let mut hashes = Vec::with_capacity(chunk.len());
        for key in chunk {
            seq += 1;
            let hash = chain::hash_of(&chain::Fields {
                seq,
                at,
                run_id: what.run_id,
                rule: what.rule,
                database: what.database,
                table: what.table,
                action: what.action,
                key,
                legal_basis: what.legal_basis,
                prev_hash: hashes.last().map_or(prev.as_str(), String::as_str),
            });
            hashes.push(hash);
        }
        // Anonymous placeholders only: sqlx looks each numbered one up by name, which is
        // quadratic in their number.
        let mut q = String::with_capacity(256 + chunk.len() * 14);
        q.push_str("WITH shared (at, run_id, rule, database, tbl, action, legal_basis) AS (VALUES (?, ?, ?, ?, ?, ?, ?)) INSERT INTO audit (seq, at, run_id, rule, database, tbl, action, key, legal_basis, hash, prev_hash) SELECT rows.column1, at, run_id, rule, database, tbl, action, rows.column2, legal_basis, rows.column3, rows.column4 FROM shared, (VALUES ");
        for i in 0..chunk.len() {
            q.push_str(if i == 0 {
                "(?, ?, ?, ?)"
            } else {
                ", (?, ?, ?, ?)"
            });
        }
        q.push_str(") AS rows");
        let mut query = sqlx::query(&q)
            .bind(at)
            .bind(what.run_id)
            .bind(what.rule)
            .bind(what.database)
            .bind(what.table)
            .bind(what.action)
            .bind(what.legal_basis);
        let mut link = prev.as_str();
        for (i, (key, hash)) in chunk.iter().zip(&hashes).enumerate() {
            query = query
                .bind(first + i as i64)
                .bind(key.as_str())
                .bind(hash.as_str())
                .bind(link);
            link = hash.as_str();
        }
        query.execute(&mut *tx).await?;
        if let Some(last) = hashes.pop() {
            prev = last;
        }
    }
    sqlx::query("INSERT INTO chain_head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash")
        .bind(seq)
        .bind(&prev)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

fn entry_of(r: &sqlx::sqlite::SqliteRow) -> Result<Entry, sqlx::Error> {
    Ok(Entry {
        seq: r.try_get(0)?,
        at: r.try_get(1)?,
        run_id: r.try_get(2)?,
        rule: r.try_get(3)?,
        database: r.try_get(4)?,
        table: r.try_get(5)?,
        action: r.try_get(6)?,
        key: r.try_get(7)?,
        legal_basis: r.try_get(8)?,
        hash: r.try_get(9)?,
        prev_hash: r.try_get(10)?,
    })
}

const SELECT_ENTRIES: &str = "SELECT seq, at, run_id, rule, database, tbl, action, key, legal_basis, hash, prev_hash FROM audit";

/// Walks the whole trail in order (streaming: memory stays flat) and returns the first
/// entry that was altered, removed or reordered, or the head of an intact trail.
pub async fn verify(state: &State) -> Result<Verdict, StateError> {
    let path = state.dir().join("state.db");
    tokio::task::spawn_blocking(move || verify::verify_file(&path))
        .await
        .map_err(|e| StateError::Io(format!("audit verify stopped: {e}")))?
}

/// The trail's current length and head hash (for anchoring in reports).
pub async fn head(state: &State) -> Result<(i64, String), StateError> {
    let r = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1")
        .fetch_optional(state.pool())
        .await?;
    Ok(match r {
        Some(r) => (r.try_get(0)?, r.try_get(1)?),
        None => (0, GENESIS.to_owned()),
    })
}

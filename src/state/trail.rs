//! The audit trail's storage: its head, and appending entries someone else has already
//! chained and hashed (`engine::journal` does that with `audit::chain`). An append is one
//! transaction that also settles what made the entries final — an intent removed, a hold's
//! new state recorded — so the trail and the state never disagree.

use super::{HoldSeen, State, StateError};
use sqlx::Row;

/// The trail's last entry: its position and hash. `None` for an empty trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The last entry's `seq`.
    pub seq: i64,
    /// The last entry's hash.
    pub hash: String,
}

/// Entries to append: the fields a batch shares, and per group (a table and its verb) the
/// entries' keys and hashes. The entries are numbered and linked in order, group after
/// group: entry `i` gets `seq = after.seq + 1 + i` and links to entry `i - 1` (the first to
/// `after`).
#[derive(Debug)]
pub struct Chained<'a> {
    /// The head these entries were chained to; the append fails if the trail moved since.
    pub after: Option<&'a Head>,
    /// `prev_hash` of the first entry (the head's hash, or the genesis hash).
    pub first_link: &'a str,
    /// When the actions were committed.
    pub at: &'a str,
    /// The pass.
    pub run_id: &'a str,
    /// The rule (or hold).
    pub rule: &'a str,
    /// The database's config name.
    pub database: &'a str,
    /// The legal basis.
    pub legal_basis: &'a str,
    /// The data-subject request an erasure acted under; `None` for rules and holds.
    pub request: Option<&'a str>,
    /// The entries, by table and verb (a rule's child rows, then its records).
    pub groups: &'a [Group<'a>],
}

/// Entries of one table and verb.
#[derive(Debug)]
pub struct Group<'a> {
    /// The table.
    pub table: &'a str,
    /// The trail's verb.
    pub action: &'a str,
    /// One key per entry.
    pub keys: &'a [String],
    /// One hash per entry, in the same order.
    pub hashes: Vec<String>,
}

/// What else the append settles, in the same transaction.
#[derive(Debug)]
pub enum Settles<'a> {
    /// A batch's intent: it became these entries.
    Intent(&'a str),
    /// A hold's new state: this event was recorded.
    Hold(&'a HoldSeen),
    /// A rule's new state and version: its start, change or end was recorded.
    Rule(&'a super::RuleChange),
    /// An operator's unlock of a locked rule: its `rule-unlock` entry was recorded.
    RuleUnlock(&'a super::RuleUnlock),
}

/// Entries per INSERT statement: 4 bound values each, plus 8 shared (SQLite allows 32,766).
const INSERT_CHUNK: usize = 2000;

impl State {
    /// The trail's head, or `None` while it is empty.
    pub async fn head(&self) -> Result<Option<Head>, StateError> {
        read_head(&mut *self.pool.acquire().await?).await
    }

    /// The stored hash of entry `seq`, if there is one.
    pub async fn hash_at(&self, seq: i64) -> Result<Option<String>, StateError> {
        Ok(sqlx::query_scalar("SELECT hash FROM audit WHERE seq = ?1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Per subject and action, how many records the erasures under `request` acted on, as
    /// the trail records them (batches settled after a crash included).
    pub async fn erased_under(
        &self,
        request: &str,
    ) -> Result<Vec<(String, String, i64)>, StateError> {
        let rows = sqlx::query(
            "SELECT rule, action, COUNT(*) FROM audit WHERE request = ?1 GROUP BY rule, action ORDER BY rule, action",
        )
        .bind(request)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// The position of the entry whose hash is `hash`, if the trail holds one (a scan:
    /// `audit verify --anchor` asks once).
    pub async fn seq_of(&self, hash: &str) -> Result<Option<i64>, StateError> {
        Ok(
            sqlx::query_scalar("SELECT seq FROM audit WHERE hash = ?1 ORDER BY seq LIMIT 1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Appends `entries` and settles `settles`, atomically. Not fsynced on its own (the
    /// next intent's fsync carries it to disk): if a power cut loses it, the intent and the
    /// batch's journal row survive, and the next start writes the same entries again.
    pub async fn append(
        &self,
        entries: &Chained<'_>,
        settles: Settles<'_>,
    ) -> Result<(), StateError> {
        let mut conn = self.pool.acquire().await?;
        let appended = append_on(&mut conn, entries, settles).await;
        if appended.is_err() {
            // A failed write (disk full, I/O error) may leave the connection inside its
            // transaction; back in the pool it would fail every later write ("non-zero
            // transaction depth"). Closed, the pool opens a fresh one when space returns.
            let _ = conn.close().await;
        }
        appended
    }
}

/// [`State::append`] on one connection, in one transaction.
async fn append_on(
    conn: &mut sqlx::SqliteConnection,
    entries: &Chained<'_>,
    settles: Settles<'_>,
) -> Result<(), StateError> {
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut *conn)
        .await?;
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    let head = read_head(&mut tx).await?;
    if head.as_ref() != entries.after {
        return Err(StateError::Io(format!(
            "the audit trail's head moved while entries were being chained (expected {:?}, found {:?}); another process is writing the trail",
            entries.after.map(|h| h.seq),
            head.map(|h| h.seq)
        )));
    }
    insert(&mut tx, entries).await?;
    match settles {
        Settles::Intent(batch_id) => {
            sqlx::query("DELETE FROM pending WHERE batch_id = ?1")
                .bind(batch_id)
                .execute(&mut *tx)
                .await?;
        }
        Settles::Hold(seen) => super::holds::upsert(&mut tx, seen).await?,
        Settles::Rule(change) => super::rules::record(&mut tx, change, entries.run_id).await?,
        Settles::RuleUnlock(u) => super::rules::unlock(&mut tx, u, entries.run_id).await?,
    }
    tx.commit().await?;
    Ok(())
}

async fn read_head(conn: &mut sqlx::SqliteConnection) -> Result<Option<Head>, StateError> {
    let r = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match r {
        Some(r) => Some(Head {
            seq: r.try_get(0)?,
            hash: r.try_get(1)?,
        }),
        None => None,
    })
}

/// The multi-row INSERTs and the new head. The fields every entry of a batch shares are
/// bound once per statement; each row binds only its `seq`, `key`, `hash` and `prev_hash`.
async fn insert(tx: &mut sqlx::SqliteConnection, e: &Chained<'_>) -> Result<(), StateError> {
    let mut seq = e.after.map_or(0, |h| h.seq);
    let mut link = e.first_link;
    for group in e.groups {
        if group.keys.len() != group.hashes.len() {
            return Err(StateError::Io(format!(
                "internal: {} keys but {} hashes to append",
                group.keys.len(),
                group.hashes.len()
            )));
        }
        for (keys, hashes) in group
            .keys
            .chunks(INSERT_CHUNK)
            .zip(group.hashes.chunks(INSERT_CHUNK))
        {
            // Anonymous placeholders only: sqlx looks each numbered one up by name, which
            // is quadratic in their number.
            let mut q = String::with_capacity(256 + keys.len() * 14);
            q.push_str("WITH shared (at, run_id, rule, database, tbl, action, legal_basis, request) AS (VALUES (?, ?, ?, ?, ?, ?, ?, ?)) INSERT INTO audit (seq, at, run_id, rule, database, tbl, action, key, legal_basis, hash, prev_hash, request) SELECT rows.column1, at, run_id, rule, database, tbl, action, rows.column2, legal_basis, rows.column3, rows.column4, request FROM shared, (VALUES ");
            for i in 0..keys.len() {
                q.push_str(if i == 0 {
                    "(?, ?, ?, ?)"
                } else {
                    ", (?, ?, ?, ?)"
                });
            }
            q.push_str(") AS rows");
            let mut query = sqlx::query(&q)
                .bind(e.at)
                .bind(e.run_id)
                .bind(e.rule)
                .bind(e.database)
                .bind(group.table)
                .bind(group.action)
                .bind(e.legal_basis)
                .bind(e.request);
            for (key, hash) in keys.iter().zip(hashes) {
                seq += 1;
                query = query
                    .bind(seq)
                    .bind(key.as_str())
                    .bind(hash.as_str())
                    .bind(link);
                link = hash.as_str();
            }
            query.execute(&mut *tx).await?;
        }
    }
    sqlx::query("INSERT INTO chain_head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash")
        .bind(seq)
        .bind(link)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

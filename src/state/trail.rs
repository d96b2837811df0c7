//! The audit trail's storage: its head, and appending entries someone else chains and
//! hashes (`engine::journal` does that with `audit::chain`, given the head). An append is one
//! transaction that also settles what made the entries final — an intent removed, a hold's
//! new state recorded — so the trail and the state never disagree.

use super::{HoldSeen, State, StateError};
use sqlx::Row;

/// `prev_hash` of the first entry: what the hash chain starts from (`audit::chain`), and
/// what the `audit` view shows as the first entry's `prev_hash`.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The trail's last entry: its position and hash. `None` for an empty trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The last entry's `seq`.
    pub seq: i64,
    /// The last entry's hash.
    pub hash: String,
}

/// Entries to append: the fields a batch shares, and per group (a table and its verb) the
/// entries' keys and digests. The entries are numbered and linked in order, group after
/// group, after the head they were chained to: entry `i` gets `seq = head.seq + 1 + i`.
#[derive(Debug)]
pub struct Chained<'a> {
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
    pub groups: Vec<Group<'a>>,
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
    /// One SHA-256 digest (32 bytes) per entry, in the same order, back to back: stored as
    /// they are (the `audit` view shows them as hex).
    pub digests: Vec<u8>,
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

    /// Appends the entries `chain` makes for the trail's current head, and settles
    /// `settles`, atomically. `chain` runs inside the transaction, after the head is read
    /// (SQLite's write lock is held), so entries are always chained to the head they
    /// follow, also when several databases' batches are confirmed side by side. Not fsynced
    /// on its own (the next intent's fsync carries it to disk): if a power cut loses it, the
    /// intent and the batch's journal row survive, and the next start writes the same
    /// entries again.
    pub async fn append<'c>(
        &self,
        chain: impl FnOnce(Option<&Head>) -> Result<Chained<'c>, StateError>,
        settles: Settles<'_>,
    ) -> Result<(), StateError> {
        let mut conn = self.appender.acquire().await?;
        let appended = append_on(&mut conn, chain, settles).await;
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
async fn append_on<'c>(
    conn: &mut sqlx::SqliteConnection,
    chain: impl FnOnce(Option<&Head>) -> Result<Chained<'c>, StateError>,
    settles: Settles<'_>,
) -> Result<(), StateError> {
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    let head = read_head(&mut tx).await?;
    let entries = chain(head.as_ref())?;
    insert(&mut tx, head.as_ref(), &entries).await?;
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

/// One `audit_batch` row per group (the fields its entries share) and its entries in one
/// statement: the keys as one JSON array and the digests as one blob, split by SQLite
/// itself (`json_each`), so a batch of thousands of entries is two statements with five
/// and ten bound values, whatever its size. Then the new head.
async fn insert(
    tx: &mut sqlx::SqliteConnection,
    after: Option<&Head>,
    e: &Chained<'_>,
) -> Result<(), StateError> {
    let mut seq = after.map_or(0, |h| h.seq);
    let mut last: Option<&[u8]> = None;
    for group in &e.groups {
        if group.digests.len() != group.keys.len() * 32 {
            return Err(StateError::Io(format!(
                "internal: {} keys but {} bytes of digests to append",
                group.keys.len(),
                group.digests.len()
            )));
        }
        let Some(n) = i64::try_from(group.keys.len()).ok().filter(|n| *n > 0) else {
            continue;
        };
        let keys = serde_json::to_string(group.keys).map_err(StateError::io)?;
        let batch: i64 = sqlx::query_scalar(
            "INSERT INTO audit_batch (first_seq, last_seq, at, run_id, rule, database, tbl, action, legal_basis, request) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
        )
        .bind(seq + 1)
        .bind(seq + n)
        .bind(e.at)
        .bind(e.run_id)
        .bind(e.rule)
        .bind(e.database)
        .bind(group.table)
        .bind(group.action)
        .bind(e.legal_basis)
        .bind(e.request)
        .fetch_one(&mut *tx)
        .await?;
        let written = sqlx::query(
            "INSERT INTO audit_entry (seq, batch, key, hash) SELECT ?1 + j.key, ?2, j.value, substr(?3, j.key * 32 + 1, 32) FROM json_each(?4) AS j",
        )
        .bind(seq + 1)
        .bind(batch)
        .bind(group.digests.as_slice())
        .bind(keys)
        .execute(&mut *tx)
        .await?;
        if written.rows_affected() != group.keys.len() as u64 {
            return Err(StateError::Io(format!(
                "internal: {} audit entries written for {} keys",
                written.rows_affected(),
                group.keys.len()
            )));
        }
        seq += n;
        last = group.digests.get(group.digests.len() - 32..);
    }
    let head_hash = match (last, after) {
        (Some(digest), _) => hex::encode(digest),
        (None, Some(head)) => head.hash.clone(),
        (None, None) => GENESIS.to_owned(),
    };
    sqlx::query("INSERT INTO chain_head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash")
        .bind(seq)
        .bind(head_hash)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

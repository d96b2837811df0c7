//! The audit trail's storage: its head, and appending entries someone else chains and
//! hashes (`engine::journal` does that with `audit::chain`, given the head). An append is one
//! transaction that also settles what made the entries final — an intent removed, a hold's
//! new state recorded — so the trail and the state never disagree.

use super::postgres::PgStore;
use super::{HoldSeen, State, StateError, Store};
use sqlx::Connection;
use sqlx::Row;

pub use super::version::GENESIS;

/// The trail's last entry: its position and hash. `None` for an empty trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The last entry's `seq`.
    pub seq: i64,
    /// The last entry's hash.
    pub hash: String,
}

/// Entries to append: the fields a batch shares, and per group (a table and its verb) the
/// entries' keys. They are numbered and linked in order, group after group, after the head
/// they are chained to (`writer::Chain`): entry `i` gets `seq = head.seq + 1 + i`.
#[derive(Debug, Clone)]
pub struct Entries {
    /// When the actions were committed.
    pub at: String,
    /// The pass.
    pub run_id: String,
    /// The rule (or hold).
    pub rule: String,
    /// The database's config name.
    pub database: String,
    /// The legal basis.
    pub legal_basis: String,
    /// The data-subject request an erasure acted under; `None` for rules and holds.
    pub request: Option<String>,
    /// The entries, by table and verb (a rule's child rows, then its records).
    pub groups: Vec<EntryGroup>,
}

/// Entries of one table and verb.
#[derive(Debug, Clone)]
pub struct EntryGroup {
    /// The table.
    pub table: String,
    /// The trail's verb.
    pub action: String,
    /// One key per entry.
    pub keys: Vec<String>,
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

/// Hashes the entries given the head they follow: one buffer of 32-byte digests per group.
/// Supplied by `engine::journal`, which decides what an entry is; run inside the append's
/// transaction, so the head cannot move in between.
pub type Chain = fn(&Entries, Option<&Head>) -> Result<Vec<Vec<u8>>, StateError>;

/// [`Settles`], owned, to go to the writer thread.
pub(crate) enum OwnedSettles {
    Intent(String),
    Hold(HoldSeen),
    Rule(super::RuleChange),
    RuleUnlock(super::RuleUnlock),
}

impl Settles<'_> {
    fn owned(&self) -> OwnedSettles {
        match self {
            Settles::Intent(id) => OwnedSettles::Intent((*id).to_owned()),
            Settles::Hold(seen) => OwnedSettles::Hold((*seen).clone()),
            Settles::Rule(change) => OwnedSettles::Rule((*change).clone()),
            Settles::RuleUnlock(u) => OwnedSettles::RuleUnlock((*u).clone()),
        }
    }
}

impl State {
    /// The trail's head, or `None` while it is empty.
    pub async fn head(&self) -> Result<Option<Head>, StateError> {
        let r = super::on_pool!(self, pool => sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1")
            .fetch_optional(pool)
            .await?
            .map(|r| -> Result<Head, sqlx::Error> {
                Ok(Head {
                    seq: r.try_get(0)?,
                    hash: r.try_get(1)?,
                })
            })
            .transpose()?);
        Ok(r)
    }

    /// Makes every append so far durable. Appends commit without an fsync of their own (the
    /// next intent's carries them); before the evidence that would let the next start write
    /// them again is removed — the batches' journal rows in the target databases — they
    /// must be on disk, or a power cut in between would leave records acted on unaudited.
    pub async fn flush(&self) -> Result<(), StateError> {
        // PostgreSQL: appends commit durably through the pass session already.
        let Store::Sqlite { writer, .. } = &self.store else {
            return Ok(());
        };
        writer
            .run(super::writer::Durability::Fsynced, |conn| {
                // A real write (a page rewritten), so that the commit fsyncs the WAL with
                // every append before it; a trail with no head has nothing to flush.
                conn.execute_batch(
                    "BEGIN IMMEDIATE; UPDATE chain_head SET seq = seq WHERE id = 1; COMMIT",
                )
                .map_err(|e| StateError::Io(format!("flushing the audit trail to disk: {e}")))
            })
            .await
    }

    /// The stored hash of entry `seq`, if there is one.
    pub async fn hash_at(&self, seq: i64) -> Result<Option<String>, StateError> {
        Ok(
            super::on_pool!(self, pool => sqlx::query_scalar("SELECT hash FROM audit WHERE seq = $1")
            .bind(seq)
            .fetch_optional(pool)
            .await?),
        )
    }

    /// Per subject and action, how many records the erasures under `request` acted on, as
    /// the trail records them (batches settled after a crash included).
    pub async fn erased_under(
        &self,
        request: &str,
    ) -> Result<Vec<(String, String, i64)>, StateError> {
        const SQL: &str = "SELECT rule, action, COUNT(*) FROM audit WHERE request = $1 GROUP BY rule, action ORDER BY rule, action";
        super::on_pool!(self, pool => sqlx::query(SQL)
            .bind(request)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect())
    }

    /// The position of the entry whose hash is `hash`, if the trail holds one (a scan:
    /// `audit verify --anchor` asks once).
    pub async fn seq_of(&self, hash: &str) -> Result<Option<i64>, StateError> {
        Ok(
            super::on_pool!(self, pool => sqlx::query_scalar("SELECT seq FROM audit WHERE hash = $1 ORDER BY seq LIMIT 1")
                .bind(hash)
                .fetch_optional(pool)
                .await?),
        )
    }

    /// Appends `entries`, chained by `chain` to the trail's current head, and settles
    /// `settles`, atomically, on the writer thread (`writer`). `chain` runs inside the
    /// transaction, after the head is read under SQLite's write lock, so entries are always
    /// chained to the head they follow, also when several databases' batches are confirmed
    /// side by side. Not fsynced on its own (the next intent's fsync carries it to disk): if
    /// a power cut loses it, the intent and the batch's journal row survive, and the next
    /// start writes the same entries again.
    pub async fn append(
        &self,
        entries: Entries,
        chain: Chain,
        settles: Settles<'_>,
    ) -> Result<(), StateError> {
        let settles = settles.owned();
        let writer = match &self.store {
            Store::Sqlite { writer, .. } => writer,
            Store::Postgres(pg) => return append_pg(pg, entries, chain, settles).await,
        };
        writer
            .run(super::writer::Durability::Logged, move |conn| {
                append_on(conn, &entries, chain, &settles)
            })
            .await
    }
}

/// [`State::append`] on the writer's connection, in one transaction.
fn append_on(
    conn: &mut rusqlite::Connection,
    e: &Entries,
    chain: Chain,
    settles: &OwnedSettles,
) -> Result<(), StateError> {
    let fail = |e: rusqlite::Error| StateError::Io(format!("appending to the audit trail: {e}"));
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(fail)?;
    let head: Option<Head> = tx
        .prepare_cached("SELECT seq, hash FROM chain_head WHERE id = 1")
        .and_then(|mut s| {
            let mut rows = s.query([])?;
            match rows.next()? {
                Some(r) => Ok(Some(Head {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                })),
                None => Ok(None),
            }
        })
        .map_err(fail)?;
    let digests = chain(e, head.as_ref())?;
    insert(&tx, head.as_ref(), e, &digests)?;
    settle(&tx, settles, &e.run_id)?;
    tx.commit().map_err(fail)
}

/// One `audit_batch` row per group (the fields its entries share) and its entries in one
/// statement: the keys as one JSON array and the digests as one blob, split by SQLite
/// itself (`json_each`), so a batch of thousands of entries is two statements whatever its
/// size. Then the new head. `digests` holds 32 bytes per key, per group.
fn insert(
    tx: &rusqlite::Transaction<'_>,
    after: Option<&Head>,
    e: &Entries,
    digests: &[Vec<u8>],
) -> Result<(), StateError> {
    let fail = |e: rusqlite::Error| StateError::Io(format!("appending to the audit trail: {e}"));
    let mut seq = after.map_or(0, |h| h.seq);
    let mut last: Option<&[u8]> = None;
    check_digests(e, digests)?;
    for (group, digests) in e.groups.iter().zip(digests) {
        let Some(n) = i64::try_from(group.keys.len()).ok().filter(|n| *n > 0) else {
            continue;
        };
        let keys = serde_json::to_string(&group.keys).map_err(StateError::io)?;
        let batch: i64 = tx
            .prepare_cached("INSERT INTO audit_batch (first_seq, last_seq, at, run_id, rule, database, tbl, action, legal_basis, request) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id")
            .and_then(|mut s| {
                s.query_row(
                    rusqlite::params![
                        seq + 1,
                        seq + n,
                        e.at,
                        e.run_id,
                        e.rule,
                        e.database,
                        group.table,
                        group.action,
                        e.legal_basis,
                        e.request
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(fail)?;
        let written = tx
            .prepare_cached("INSERT INTO audit_entry (seq, batch, key, hash) SELECT ?1 + j.key, ?2, j.value, substr(?3, j.key * 32 + 1, 32) FROM json_each(?4) AS j")
            .and_then(|mut s| s.execute(rusqlite::params![seq + 1, batch, digests, keys]))
            .map_err(fail)?;
        if written != group.keys.len() {
            return Err(StateError::Io(format!(
                "internal: {written} audit entries written for {} keys",
                group.keys.len()
            )));
        }
        seq += n;
        last = digests.get(digests.len() - 32..);
    }
    let head_hash = match (last, after) {
        (Some(digest), _) => hex::encode(digest),
        (None, Some(head)) => head.hash.clone(),
        (None, None) => GENESIS.to_owned(),
    };
    tx.prepare_cached("INSERT INTO chain_head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash")
        .and_then(|mut s| s.execute(rusqlite::params![seq, head_hash]))
        .map_err(fail)?;
    Ok(())
}

/// Refuses digests that do not fit the entries: 32 bytes per key, one buffer per group.
pub(super) fn check_digests(e: &Entries, digests: &[Vec<u8>]) -> Result<(), StateError> {
    if digests.len() != e.groups.len() {
        return Err(StateError::Io(format!(
            "internal: {} groups of entries but {} of digests",
            e.groups.len(),
            digests.len()
        )));
    }
    for (group, digests) in e.groups.iter().zip(digests) {
        if digests.len() != group.keys.len() * 32 {
            return Err(StateError::Io(format!(
                "internal: {} keys but {} bytes of digests to append",
                group.keys.len(),
                digests.len()
            )));
        }
    }
    Ok(())
}

/// What made the entries final, in the append's transaction: the intent removed, or a
/// hold's or rule's new state recorded (with the rule's version and the unlock it used),
/// or an unlock recorded.
fn settle(
    tx: &rusqlite::Transaction<'_>,
    settles: &OwnedSettles,
    run_id: &str,
) -> Result<(), StateError> {
    let fail = |e: rusqlite::Error| StateError::Io(format!("appending to the audit trail: {e}"));
    let run = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute(params))
            .map_err(fail)
    };
    match settles {
        OwnedSettles::Intent(batch_id) => {
            run("DELETE FROM pending WHERE batch_id = ?1", &[batch_id])?;
        }
        OwnedSettles::Hold(seen) => {
            run("INSERT INTO holds_seen (name, fingerprint, database, tbl, active) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint, database = excluded.database, tbl = excluded.tbl, active = excluded.active",
                &[&seen.name, &seen.fingerprint, &seen.database, &seen.table, &i64::from(seen.active)])?;
        }
        OwnedSettles::Rule(change) => {
            let s = &change.seen;
            run("INSERT INTO rules_seen (name, fingerprint, database, tbl, active, locked, line, changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint, database = excluded.database, tbl = excluded.tbl, active = excluded.active, locked = excluded.locked, line = excluded.line, changed_at = excluded.changed_at",
                &[&s.name, &s.fingerprint, &s.database, &s.table, &i64::from(s.active), &i64::from(s.locked), &s.line, &s.changed_at])?;
            run("INSERT OR IGNORE INTO rule_versions (name, fingerprint, definition, first_seen_at) VALUES (?1, ?2, ?3, ?4)",
                &[&s.name, &s.fingerprint, &change.definition, &s.changed_at])?;
            if change.uses_unlock {
                run("UPDATE rule_unlocks SET used_at = ?1, used_by = ?2 WHERE name = ?3 AND used_at IS NULL",
                    &[&s.changed_at, &run_id, &s.name])?;
            }
        }
        OwnedSettles::RuleUnlock(u) => {
            run("INSERT INTO rule_unlocks (name, fingerprint, reason, unlocked_at, run_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                &[&u.name, &u.fingerprint, &u.reason, &u.unlocked_at, &run_id])?;
        }
    }
    Ok(())
}

/// [`State::append`] on the PostgreSQL state: `entries` chained to the head, and settles `settles`, in one transaction
/// through the pass session (the head row locked, so appends never interleave).
async fn append_pg(
    pg: &PgStore,
    entries: Entries,
    chain: Chain,
    settles: OwnedSettles,
) -> Result<(), StateError> {
    pg.through_pass("appending to the audit trail", move |conn| {
        Box::pin(async move {
            let mut tx = conn.begin().await?;
            let head = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| -> Result<Head, sqlx::Error> {
                    Ok(Head {
                        seq: r.try_get(0)?,
                        hash: r.try_get(1)?,
                    })
                })
                .transpose()?;
            let digests = chain(&entries, head.as_ref())?;
            check_digests(&entries, &digests)?;
            let mut seq = head.as_ref().map_or(0, |h| h.seq);
            let mut last: Option<&[u8]> = None;
            for (group, digests) in entries.groups.iter().zip(&digests) {
                let Some(n) = i64::try_from(group.keys.len()).ok().filter(|n| *n > 0) else {
                    continue;
                };
                let written = sqlx::query(
                    "WITH b AS (INSERT INTO audit_batch (first_seq, last_seq, at, run_id, rule, database, tbl, action, legal_basis, request) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id)
                     INSERT INTO audit_entry (seq, batch, key, hash)
                     SELECT $1 + k.i - 1, b.id, k.key, substring($11::bytea FROM ((k.i - 1) * 32 + 1)::int FOR 32)
                     FROM b, unnest($12::text[]) WITH ORDINALITY AS k(key, i)",
                )
                .bind(seq + 1)
                .bind(seq + n)
                .bind(&entries.at)
                .bind(&entries.run_id)
                .bind(&entries.rule)
                .bind(&entries.database)
                .bind(&group.table)
                .bind(&group.action)
                .bind(&entries.legal_basis)
                .bind(&entries.request)
                .bind(digests.as_slice())
                .bind(&group.keys)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if written != group.keys.len() as u64 {
                    return Err(StateError::Io(format!(
                        "internal: {written} audit entries written for {} keys",
                        group.keys.len()
                    )));
                }
                seq += n;
                last = digests.get(digests.len() - 32..);
            }
            let head_hash = match (last, &head) {
                (Some(digest), _) => hex::encode(digest),
                (None, Some(head)) => head.hash.clone(),
                (None, None) => GENESIS.to_owned(),
            };
            sqlx::query("INSERT INTO chain_head (id, seq, hash) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash")
                .bind(seq)
                .bind(head_hash)
                .execute(&mut *tx)
                .await?;
            settle_pg(&mut tx, &settles, &entries.run_id).await?;
            tx.commit().await?;
            Ok(())
        })
    })
    .await
}

/// What made the entries final, in the append's transaction (as `trail::settle` for
/// `state.db`). An intent that is no longer pending was settled by another instance that
/// took over: the append is refused, so no batch is ever entered twice.
async fn settle_pg(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    settles: &OwnedSettles,
    run_id: &str,
) -> Result<(), StateError> {
    match settles {
        OwnedSettles::Intent(batch_id) => {
            let gone = sqlx::query("DELETE FROM pending WHERE batch_id = $1")
                .bind(batch_id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            if gone != 1 {
                return Err(StateError::Io(format!(
                    "batch {batch_id} is no longer pending: another instance settled it after taking over; this one appends nothing for it"
                )));
            }
        }
        OwnedSettles::Hold(seen) => {
            sqlx::query("INSERT INTO holds_seen (name, fingerprint, database, tbl, active) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint, database = excluded.database, tbl = excluded.tbl, active = excluded.active")
                .bind(&seen.name)
                .bind(&seen.fingerprint)
                .bind(&seen.database)
                .bind(&seen.table)
                .bind(i64::from(seen.active))
                .execute(&mut **tx)
                .await?;
        }
        OwnedSettles::Rule(change) => {
            let s = &change.seen;
            sqlx::query("INSERT INTO rules_seen (name, fingerprint, database, tbl, active, locked, line, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint, database = excluded.database, tbl = excluded.tbl, active = excluded.active, locked = excluded.locked, line = excluded.line, changed_at = excluded.changed_at")
                .bind(&s.name)
                .bind(&s.fingerprint)
                .bind(&s.database)
                .bind(&s.table)
                .bind(i64::from(s.active))
                .bind(i64::from(s.locked))
                .bind(s.line)
                .bind(&s.changed_at)
                .execute(&mut **tx)
                .await?;
            sqlx::query("INSERT INTO rule_versions (name, fingerprint, definition, first_seen_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                .bind(&s.name)
                .bind(&s.fingerprint)
                .bind(&change.definition)
                .bind(&s.changed_at)
                .execute(&mut **tx)
                .await?;
            if change.uses_unlock {
                sqlx::query("UPDATE rule_unlocks SET used_at = $1, used_by = $2 WHERE name = $3 AND used_at IS NULL")
                    .bind(&s.changed_at)
                    .bind(run_id)
                    .bind(&s.name)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        OwnedSettles::RuleUnlock(u) => {
            sqlx::query("INSERT INTO rule_unlocks (name, fingerprint, reason, unlocked_at, run_id) VALUES ($1, $2, $3, $4, $5)")
                .bind(&u.name)
                .bind(&u.fingerprint)
                .bind(&u.reason)
                .bind(&u.unlocked_at)
                .bind(run_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

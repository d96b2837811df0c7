//! `retentiond_journal`, the small table retentiond keeps in each target database: one row
//! per committed batch, written in the batch's own transaction, so that after a crash the
//! state database can tell for certain whether a batch happened. Its DDL, the row a batch
//! writes, the settling of a batch in doubt and the cleanup all live here.

use super::{Db, DbError, Dialect, Sql, Tx, Value};

/// The table's DDL for `dialect` (created if missing before a rule's first batch).
fn ddl(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "CREATE TABLE IF NOT EXISTS retentiond_journal (batch_id TEXT PRIMARY KEY, rule TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        Dialect::MySql => "CREATE TABLE IF NOT EXISTS retentiond_journal (batch_id VARCHAR(100) PRIMARY KEY, rule VARCHAR(200) NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB",
        Dialect::Sqlite => "CREATE TABLE IF NOT EXISTS retentiond_journal (batch_id TEXT PRIMARY KEY, rule TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    }
}

/// Creates the journal table in `db` if it is not there yet.
///
/// `CREATE TABLE IF NOT EXISTS` is not safe against a concurrent creator: on PostgreSQL
/// the second of two sessions creating it at once fails with 23505 (on
/// `pg_type_typname_nsp_index`) or 42P07 — another retentiond on the same database, or two
/// `[databases.*]` entries for it. So when the statement fails, the table is looked for:
/// if it is there and readable, whoever created it, that is success.
pub async fn ensure(db: &Db) -> Result<(), DbError> {
    let mut sql = Sql::new(db.dialect);
    sql.push(ddl(db.dialect));
    let Err(e) = db.execute(&sql).await else {
        return Ok(());
    };
    let mut probe = Sql::new(db.dialect);
    probe.push("SELECT COUNT(*) FROM retentiond_journal WHERE 1 = 0");
    match db.fetch_i64(&probe).await {
        Ok(_) => Ok(()),
        Err(_) => Err(e),
    }
}

/// The statement that records `batch_id` (of `rule`) inside the batch's own transaction.
fn mark(dialect: Dialect, batch_id: &str, rule: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO retentiond_journal (batch_id, rule) VALUES (")
        .bind(Value::Text(batch_id.to_owned()))
        .push(", ")
        .bind(Value::Text(rule.to_owned()))
        .push(")");
    sql
}

/// Writes the batch's journal row in `tx` (step 3 of the batch protocol).
pub async fn record(
    tx: &mut Tx,
    dialect: Dialect,
    batch_id: &str,
    rule: &str,
) -> Result<(), DbError> {
    tx.execute(&mark(dialect, batch_id, rule)).await.map(|_| ())
}

/// What a settled batch's journal row says instead of its rule: it never committed.
const ROLLED_BACK: &str = "(rolled back)";

/// Settles a batch whose commit is in doubt by writing its journal row *now*. If the
/// batch committed, its row is there and the insert fails on the primary key (`true`:
/// it happened). If the batch's transaction is still open somewhere, the insert waits
/// for it to end. If the insert succeeds, the batch never committed — and now never can,
/// because its own journal insert would collide (`false`).
///
/// A collision with a row that an earlier settling wrote (its intent could not be dropped
/// then, e.g. on a full disk; or the earlier insert committed but its answer was lost)
/// means the batch did *not* commit: the row's rule says which it is.
pub async fn settle(db: &Db, batch_id: &str) -> Result<bool, DbError> {
    match db.execute(&mark(db.dialect, batch_id, ROLLED_BACK)).await {
        Ok(_) => Ok(false),
        Err(DbError::Query {
            unique_violation: true,
            ..
        }) => {
            let mut sql = Sql::new(db.dialect);
            sql.push("SELECT rule FROM retentiond_journal WHERE batch_id = ")
                .bind(Value::Text(batch_id.to_owned()));
            let rows = db.fetch_texts(&sql).await?;
            let rule = rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next().flatten());
            Ok(rule.as_deref() != Some(ROLLED_BACK))
        }
        Err(e) => Err(e),
    }
}

/// Removes the journal rows whose batch ids start with `prefix` (one rule's batches in one
/// pass) once all of them are confirmed: they only matter while an outcome is in doubt.
pub async fn clean(db: &Db, prefix: &str) -> Result<u64, DbError> {
    let mut sql = Sql::new(db.dialect);
    sql.push("DELETE FROM retentiond_journal WHERE batch_id LIKE ")
        .bind(Value::Text(format!("{prefix}%")));
    db.execute(&sql).await
}

/// Whether retentiond's own table `name` exists in `db` (asked of the catalog: reading a
/// table that is not there would be an error, and creating it is a write).
async fn exists(db: &Db, name: &str) -> Result<bool, DbError> {
    match crate::config::TableName::parse(name) {
        Ok(table) => Ok(super::schema::describe(db, &table).await?.is_some()),
        // Only ever called with the two constant names above, which parse.
        Err(reason) => unreachable!("retentiond's own table name {name} is invalid: {reason}"),
    }
}

/// The passes that still have rows in the journal table of `db`: batch ids start with
/// their pass id (`YYYYMMDDTHHMMSSZ-xxxxxx`, 23 characters).
pub async fn passes_with_rows(db: &Db) -> Result<Vec<String>, DbError> {
    if !exists(db, "retentiond_journal").await? {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(db.dialect);
    sql.push("SELECT DISTINCT substr(batch_id, 1, 23) FROM retentiond_journal");
    Ok(db
        .fetch_texts(&sql)
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}

/// `retentiond_anchor`: after every pass, the trail's length and head hash are written to
/// each database the pass used, beside the journal. Someone who can rewrite the state
/// directory cannot also rewrite these without credentials to every target database, so
/// `audit verify` can prove the trail was not cut or rebuilt below an anchored head.
fn anchor_ddl(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "CREATE TABLE IF NOT EXISTS retentiond_anchor (run_id TEXT PRIMARY KEY, installation TEXT NOT NULL, seq BIGINT NOT NULL, head TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        Dialect::MySql => "CREATE TABLE IF NOT EXISTS retentiond_anchor (run_id VARCHAR(100) PRIMARY KEY, installation VARCHAR(32) NOT NULL, seq BIGINT NOT NULL, head CHAR(64) NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB",
        Dialect::Sqlite => "CREATE TABLE IF NOT EXISTS retentiond_anchor (run_id TEXT PRIMARY KEY, installation TEXT NOT NULL, seq INTEGER NOT NULL, head TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    }
}

/// One anchored head: after pass `run_id`, the trail had `seq` entries, the last with hash
/// `head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The pass.
    pub run_id: String,
    /// The installation (state database) whose pass it was.
    pub installation: String,
    /// The trail's length then.
    pub seq: i64,
    /// The hash of entry `seq` (the genesis hash for an empty trail).
    pub head: String,
}

/// Writes `anchor` to `db` (creating the table where missing).
pub async fn write_anchor(db: &Db, anchor: &Anchor) -> Result<(), DbError> {
    let mut ddl = Sql::new(db.dialect);
    ddl.push(anchor_ddl(db.dialect));
    db.execute(&ddl).await?;
    let mut sql = Sql::new(db.dialect);
    sql.push("INSERT INTO retentiond_anchor (run_id, installation, seq, head) VALUES (")
        .bind(Value::Text(anchor.run_id.clone()))
        .push(", ")
        .bind(Value::Text(anchor.installation.clone()))
        .push(", ")
        .bind(Value::Int(anchor.seq))
        .push(", ")
        .bind(Value::Text(anchor.head.clone()))
        .push(")");
    db.execute(&sql).await.map(|_| ())
}

/// Every anchor in `db`, oldest pass first; none where the table does not exist (no pass
/// has anchored there yet). Changes nothing.
pub async fn anchors(db: &Db) -> Result<Vec<Anchor>, DbError> {
    if !exists(db, "retentiond_anchor").await? {
        return Ok(Vec::new());
    }
    let seq = match db.dialect {
        Dialect::MySql => "CAST(seq AS CHAR)",
        Dialect::Postgres | Dialect::Sqlite => "CAST(seq AS TEXT)",
    };
    let mut sql = Sql::new(db.dialect);
    sql.push("SELECT run_id, installation, ")
        .push(seq)
        .push(", head FROM retentiond_anchor ORDER BY seq, run_id");
    let rows = db.fetch_texts(&sql).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [Some(run_id), Some(installation), Some(seq), Some(head)] => Some(Anchor {
                run_id: run_id.clone(),
                installation: installation.clone(),
                seq: seq.parse().ok()?,
                head: head.clone(),
            }),
            _ => None,
        })
        .collect())
}

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
pub async fn ensure(db: &Db) -> Result<(), DbError> {
    let mut sql = Sql::new(db.dialect);
    sql.push(ddl(db.dialect));
    db.execute(&sql).await.map(|_| ())
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

/// Settles a batch whose commit is in doubt by writing its journal row *now*. If the
/// batch committed, its row is there and the insert fails on the primary key (`true`:
/// it happened). If the batch's transaction is still open somewhere, the insert waits
/// for it to end. If the insert succeeds, the batch never committed — and now never can,
/// because its own journal insert would collide (`false`).
pub async fn settle(db: &Db, batch_id: &str) -> Result<bool, DbError> {
    match db
        .execute(&mark(db.dialect, batch_id, "(rolled back)"))
        .await
    {
        Ok(_) => Ok(false),
        Err(DbError::Query {
            unique_violation: true,
            ..
        }) => Ok(true),
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

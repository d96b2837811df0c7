//! Connections to the organisation's databases, behind one [`Db`] whatever the engine.
//! Dialect differences live in [`dialect`]; catalog lookups in [`schema`]; the journal
//! table that makes every batch verifiable in [`journal`]. The three drivers are matched
//! in one place only: the [`on_driver!`] macro below.

pub mod dialect;
pub mod journal;
pub mod schema;
pub mod value;

pub use dialect::{Dialect, KeyKind, SinceKind, Sql};
pub use value::{Key, Value};

use crate::config::{DatabaseSpec, Secret};
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Pool, Row, Transaction};
use std::str::FromStr;

/// A database operation that failed. The message never holds a password or a row's values.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The password could not be read.
    #[error("database '{database}': cannot read its password from {source_desc}: {reason}")]
    Secret {
        /// Config name.
        database: String,
        /// Where it was looked for.
        source_desc: String,
        /// Why it failed.
        reason: String,
    },
    /// Connecting failed.
    #[error("database '{database}' ({url}) is unreachable: {reason}")]
    Connect {
        /// Config name.
        database: String,
        /// Masked URL.
        url: String,
        /// The driver's reason.
        reason: String,
    },
    /// A statement failed.
    #[error("database '{database}': {reason}")]
    Query {
        /// Config name.
        database: String,
        /// The driver's reason.
        reason: String,
        /// Whether it was a primary-key/unique collision (see [`Db::settle_batch`]).
        unique_violation: bool,
        /// Whether trying again may succeed: a lost connection, a lock or statement
        /// timeout, a deadlock, a serialization failure.
        transient: bool,
    },
}

impl DbError {
    /// Whether trying again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Connect { .. } => true,
            DbError::Query { transient, .. } => *transient,
            DbError::Secret { .. } => false,
        }
    }
}

enum Pools {
    Postgres(Pool<Postgres>),
    MySql(Pool<MySql>),
    Sqlite(Pool<Sqlite>),
}

/// The one place the three drivers are told apart: runs `$body` with `$q` bound to the
/// statement `$sql` (its text with its values bound for that driver) and `$on` bound to the
/// variant's pool or transaction, for whichever driver `$target` holds. `$kind` names the
/// enum ([`Pools`] or [`Txs`]); both have the same three variants. The body is the same
/// source for every driver, so a new operation is written once.
macro_rules! on_driver {
    ($kind:ident, $target:expr, $sql:expr, |$q:ident, $on:ident| $body:expr) => {
        match $target {
            $kind::Postgres($on) => {
                let $q = bind_all(sqlx::query(&$sql.text), &$sql.binds);
                $body
            }
            $kind::MySql($on) => {
                let $q = bind_all(sqlx::query(&$sql.text), &$sql.binds);
                $body
            }
            $kind::Sqlite($on) => {
                let $q = bind_all(sqlx::query(&$sql.text), &$sql.binds);
                $body
            }
        }
    };
}

/// An open connection pool to one configured database.
pub struct Db {
    /// The config name, for messages and the audit trail.
    pub name: String,
    /// Its dialect.
    pub dialect: Dialect,
    pools: Pools,
}

/// One record as read by a batch: its key and the text columns the action needs.
#[derive(Debug, Clone)]
pub struct Record {
    /// The key.
    pub key: Key,
    /// Text columns, in the order they were selected.
    pub texts: Vec<Option<String>>,
}

fn read_secret(spec: &DatabaseSpec) -> Result<Option<String>, DbError> {
    let fail = |source_desc: String, reason: String| DbError::Secret {
        database: spec.name.clone(),
        source_desc,
        reason,
    };
    match &spec.secret {
        Secret::None => Ok(None),
        Secret::File(p) => std::fs::read_to_string(p)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|e| fail(format!("file {}", p.display()), e.to_string())),
        Secret::Env(v) => std::env::var(v)
            .map(Some)
            .map_err(|e| fail(format!("environment variable {v}"), e.to_string())),
    }
}

impl Db {
    /// Connects to `spec`. The pool is small: retentiond works one batch at a time.
    pub async fn connect(spec: &DatabaseSpec) -> Result<Db, DbError> {
        let password = read_secret(spec)?;
        let connect_err = |e: sqlx::Error| DbError::Connect {
            database: spec.name.clone(),
            url: spec.masked_url(),
            reason: scrub(&e.to_string(), &spec.url),
        };
        let t = spec.timeouts;
        let pools = match spec.dialect {
            Dialect::Postgres => {
                let mut o = PgConnectOptions::from_str(&spec.url).map_err(connect_err)?;
                if let Some(p) = &password {
                    o = o.password(p);
                }
                // A background job: its counts (brake, forecast) must not take every core
                // from the application with parallel workers; one core is enough for them.
                let o = o.application_name("retentiond").options([
                    ("max_parallel_workers_per_gather", "0".to_owned()),
                    ("lock_timeout", format!("{}ms", t.lock.as_millis())),
                    (
                        "statement_timeout",
                        format!("{}ms", t.statement.as_millis()),
                    ),
                ]);
                Pools::Postgres(
                    PgPoolOptions::new()
                        .max_connections(2)
                        .acquire_timeout(t.connect)
                        .connect_with(o)
                        .await
                        .map_err(connect_err)?,
                )
            }
            Dialect::MySql => {
                let mut o = MySqlConnectOptions::from_str(&spec.url).map_err(connect_err)?;
                if let Some(p) = &password {
                    o = o.password(p);
                }
                // Session time zone UTC (sqlx's default, stated here because TIMESTAMP
                // comparisons depend on it).
                let o = o.timezone(Some("+00:00".to_owned()));
                let (lock_s, stmt) = (t.lock.as_secs().max(1), t.statement);
                Pools::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(2)
                        .acquire_timeout(t.connect)
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                use sqlx::Executor;
                                conn.execute(
                                    format!("SET SESSION innodb_lock_wait_timeout = {lock_s}")
                                        .as_str(),
                                )
                                .await?;
                                // MariaDB bounds every statement; MySQL only SELECTs.
                                let mariadb = format!(
                                    "SET SESSION max_statement_time = {}",
                                    stmt.as_secs_f64()
                                );
                                if conn.execute(mariadb.as_str()).await.is_err() {
                                    let mysql = format!(
                                        "SET SESSION max_execution_time = {}",
                                        stmt.as_millis()
                                    );
                                    conn.execute(mysql.as_str()).await?;
                                }
                                Ok(())
                            })
                        })
                        .connect_with(o)
                        .await
                        .map_err(connect_err)?,
                )
            }
            Dialect::Sqlite => {
                let path = spec.url.trim_start_matches("sqlite://");
                let path = path.split('?').next().unwrap_or(path);
                if !std::path::Path::new(path).exists() {
                    return Err(DbError::Connect {
                        database: spec.name.clone(),
                        url: spec.masked_url(),
                        reason: format!("the file {path} does not exist (retentiond never creates a database; check the path, and ReadWritePaths= under systemd)"),
                    });
                }
                let o = SqliteConnectOptions::from_str(&spec.url)
                    .map_err(connect_err)?
                    .create_if_missing(false)
                    .busy_timeout(t.lock);
                Pools::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(2)
                        .acquire_timeout(t.connect)
                        .connect_with(o)
                        .await
                        .map_err(connect_err)?,
                )
            }
        };
        Ok(Db {
            name: spec.name.clone(),
            dialect: spec.dialect,
            pools,
        })
    }

    fn err(&self, e: sqlx::Error) -> DbError {
        query_error(&self.name, e)
    }

    /// Runs a statement outside any explicit transaction.
    pub async fn execute(&self, sql: &Sql) -> Result<u64, DbError> {
        on_driver!(Pools, &self.pools, sql, |q, p| q
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| self.err(e))
    }

    /// Runs a query whose first column is an integer (a count), one row.
    pub async fn fetch_i64(&self, sql: &Sql) -> Result<i64, DbError> {
        on_driver!(Pools, &self.pools, sql, |q, p| q
            .fetch_one(p)
            .await
            .and_then(|r| r.try_get::<i64, _>(0)))
        .map_err(|e| self.err(e))
    }

    /// Runs a query returning rows of text columns (catalog lookups).
    pub async fn fetch_texts(&self, sql: &Sql) -> Result<Vec<Vec<Option<String>>>, DbError> {
        on_driver!(Pools, &self.pools, sql, |q, p| q
            .fetch_all(p)
            .await
            .and_then(|rows| rows.iter().map(texts_of).collect()))
        .map_err(|e| self.err(e))
    }

    /// Reads records (key first, then text columns) outside a transaction.
    pub async fn fetch_records(&self, sql: &Sql, kind: KeyKind) -> Result<Vec<Record>, DbError> {
        on_driver!(Pools, &self.pools, sql, |q, p| q
            .fetch_all(p)
            .await
            .and_then(|rows| rows.iter().map(|r| record_of(r, kind)).collect()))
        .map_err(|e| self.err(e))
    }

    /// Opens a batch transaction (see [`Dialect::begin`]).
    pub async fn begin(&self) -> Result<Tx, DbError> {
        let begin = self.dialect.begin();
        let r = match &self.pools {
            Pools::Postgres(p) => p.begin().await.map(Txs::Postgres),
            Pools::MySql(p) => p.begin().await.map(Txs::MySql),
            Pools::Sqlite(p) => p.begin_with(begin).await.map(Txs::Sqlite),
        };
        Ok(Tx {
            name: self.name.clone(),
            tx: r.map_err(|e| self.err(e))?,
        })
    }

    /// Closes the pool, waiting for connections to finish cleanly.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Postgres(p) => p.close().await,
            Pools::MySql(p) => p.close().await,
            Pools::Sqlite(p) => p.close().await,
        }
    }
}

enum Txs {
    Postgres(Transaction<'static, Postgres>),
    MySql(Transaction<'static, MySql>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// One batch transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    name: String,
    tx: Txs,
}

impl Tx {
    /// Runs a statement in the transaction; returns the rows it affected.
    pub async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError> {
        on_driver!(Txs, &mut self.tx, sql, |q, t| q
            .execute(&mut **t)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| query_error(&self.name, e))
    }

    /// Reads (and, with the dialect's lock suffix in `sql`, locks) records.
    pub async fn fetch_records(
        &mut self,
        sql: &Sql,
        kind: KeyKind,
    ) -> Result<Vec<Record>, DbError> {
        on_driver!(Txs, &mut self.tx, sql, |q, t| q
            .fetch_all(&mut **t)
            .await
            .and_then(|rows| rows.iter().map(|r| record_of(r, kind)).collect()))
        .map_err(|e| query_error(&self.name, e))
    }

    /// Commits. An error here leaves the outcome unknown; the caller must reconcile.
    pub async fn commit(self) -> Result<(), DbError> {
        let name = self.name;
        let r = match self.tx {
            Txs::Postgres(t) => t.commit().await,
            Txs::MySql(t) => t.commit().await,
            Txs::Sqlite(t) => t.commit().await,
        };
        r.map_err(|e| query_error(&name, e))
    }
}

fn texts_of<R: Row>(row: &R) -> Result<Vec<Option<String>>, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    (0..row.len())
        .map(|i| row.try_get::<Option<String>, _>(i))
        .collect()
}

fn record_of<R: Row>(row: &R, kind: KeyKind) -> Result<Record, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let key = match kind {
        KeyKind::Int => Key::Int(row.try_get::<i64, _>(0)?),
        KeyKind::Text => Key::Text(row.try_get::<String, _>(0)?),
    };
    let texts = (1..row.len())
        .map(|i| row.try_get::<Option<String>, _>(i))
        .collect::<Result<_, _>>()?;
    Ok(Record { key, texts })
}

/// How a driver binds the PostgreSQL-only array values (`= ANY($n)`, see
/// [`Sql::in_list`]); the other drivers never receive one and bind their text form.
trait BindArrays: sqlx::Database {
    fn bind_array<'q>(
        q: sqlx::query::Query<'q, Self, <Self as sqlx::Database>::Arguments<'q>>,
        v: &Value,
    ) -> sqlx::query::Query<'q, Self, <Self as sqlx::Database>::Arguments<'q>>;
}

impl BindArrays for Postgres {
    fn bind_array<'q>(
        q: sqlx::query::Query<'q, Self, sqlx::postgres::PgArguments>,
        v: &Value,
    ) -> sqlx::query::Query<'q, Self, sqlx::postgres::PgArguments> {
        match v {
            Value::IntArray(a) => q.bind(a.clone()),
            Value::TextArray(a) => q.bind(a.clone()),
            other => q.bind(other.to_string()),
        }
    }
}

impl BindArrays for MySql {
    fn bind_array<'q>(
        q: sqlx::query::Query<'q, Self, sqlx::mysql::MySqlArguments>,
        v: &Value,
    ) -> sqlx::query::Query<'q, Self, sqlx::mysql::MySqlArguments> {
        q.bind(v.to_string())
    }
}

impl BindArrays for Sqlite {
    fn bind_array<'q>(
        q: sqlx::query::Query<'q, Self, sqlx::sqlite::SqliteArguments<'q>>,
        v: &Value,
    ) -> sqlx::query::Query<'q, Self, sqlx::sqlite::SqliteArguments<'q>> {
        q.bind(v.to_string())
    }
}

/// Binds `binds` to `q` in order, for any of the three drivers.
fn bind_all<'q, DB>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    binds: &[Value],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: BindArrays,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    chrono::NaiveDate: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    chrono::NaiveDateTime: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    chrono::DateTime<chrono::Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for v in binds {
        q = match v {
            Value::Int(i) => q.bind(*i),
            Value::Text(s) => q.bind(s.clone()),
            Value::Date(d) => q.bind(*d),
            Value::Naive(t) => q.bind(*t),
            Value::Instant(t) => q.bind(*t),
            Value::IntArray(_) | Value::TextArray(_) => DB::bind_array(q, v),
        };
    }
    q
}

/// SQLSTATEs worth a retry: serialization failure, deadlock, lock not available, query
/// canceled (statement timeout), MariaDB statement timeout.
const TRANSIENT_SQLSTATES: [&str; 5] = ["40001", "40P01", "55P03", "57014", "70100"];

/// SQLSTATE classes worth a retry: `08` (connection exceptions) and `57P0x` (the server
/// ended the session: `pg_terminate_backend`, a restart or a fail-over — what MariaDB's
/// `KILL` is to MySQL).
fn transient_sqlstate(code: &str) -> bool {
    TRANSIENT_SQLSTATES.contains(&code) || code.starts_with("08") || code.starts_with("57P0")
}
/// MySQL/MariaDB error numbers worth a retry: lock wait timeout, deadlock, query
/// interrupted, statement time exceeded (MariaDB, MySQL).
const TRANSIENT_MYSQL: [u16; 5] = [1205, 1213, 1317, 1969, 3024];

fn query_error(database: &str, e: sqlx::Error) -> DbError {
    let unique_violation = e
        .as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation);
    let transient = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => {
            let mysql = d
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|m| TRANSIENT_MYSQL.contains(&m.number()));
            let sqlstate = d.code().is_some_and(|c| transient_sqlstate(&c));
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with extended codes.
            let sqlite = d
                .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                .and_then(sqlx::error::DatabaseError::code)
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| matches!(c & 0xff, 5 | 6));
            mysql || sqlstate || sqlite
        }
        _ => false,
    };
    DbError::Query {
        database: database.to_owned(),
        reason: e.to_string(),
        unique_violation,
        transient,
    }
}

/// Removes the URL (which may hold a password) from a driver message.
fn scrub(message: &str, url: &str) -> String {
    message.replace(url, &crate::config::mask_url(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ended_by_the_server_or_a_lost_connection_is_retried() {
        for code in [
            "57P01", "57P02", "57P03", "08006", "08003", "40P01", "57014",
        ] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "42P01", "22007", "57000"] {
            assert!(!transient_sqlstate(code), "{code}");
        }
    }
}

//! Connections to the organisation's databases, behind one [`Db`] whatever the engine.
//! Dialect differences live in [`dialect`]; catalog lookups in [`schema`].

pub mod dialect;
pub mod schema;
pub mod value;

pub use dialect::{Dialect, KeyKind, SinceKind, Sql};
pub use value::{Key, Value};

use crate::config::{DatabaseSpec, Engine, Secret};
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
        let pools = match spec.engine {
            Engine::Postgres => {
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
            Engine::MySql => {
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
            Engine::Sqlite => {
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
            dialect: spec.engine.into(),
            pools,
        })
    }

    fn err(&self, e: sqlx::Error) -> DbError {
        query_error(&self.name, e)
    }

    /// Runs a statement outside any explicit transaction.
    pub async fn execute(&self, sql: &Sql) -> Result<u64, DbError> {
        let r = match &self.pools {
            Pools::Postgres(p) => bind_pg(sqlx::query(&sql.text), &sql.binds)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Pools::MySql(p) => bind_my(sqlx::query(&sql.text), &sql.binds)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            Pools::Sqlite(p) => bind_lite(sqlx::query(&sql.text), &sql.binds)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
        };
        r.map_err(|e| self.err(e))
    }

    /// Runs a query whose first column is an integer (a count), one row.
    pub async fn fetch_i64(&self, sql: &Sql) -> Result<i64, DbError> {
        let r = match &self.pools {
            Pools::Postgres(p) => bind_pg(sqlx::query(&sql.text), &sql.binds)
                .fetch_one(p)
                .await
                .and_then(|r| r.try_get::<i64, _>(0)),
            Pools::MySql(p) => bind_my(sqlx::query(&sql.text), &sql.binds)
                .fetch_one(p)
                .await
                .and_then(|r| r.try_get::<i64, _>(0)),
            Pools::Sqlite(p) => bind_lite(sqlx::query(&sql.text), &sql.binds)
                .fetch_one(p)
                .await
                .and_then(|r| r.try_get::<i64, _>(0)),
        };
        r.map_err(|e| self.err(e))
    }

    /// Runs a query returning rows of text columns (catalog lookups).
    pub async fn fetch_texts(&self, sql: &Sql) -> Result<Vec<Vec<Option<String>>>, DbError> {
        let r = match &self.pools {
            Pools::Postgres(p) => bind_pg(sqlx::query(&sql.text), &sql.binds)
                .fetch_all(p)
                .await
                .and_then(|rows| rows.iter().map(texts_of).collect()),
            Pools::MySql(p) => bind_my(sqlx::query(&sql.text), &sql.binds)
                .fetch_all(p)
                .await
                .and_then(|rows| rows.iter().map(texts_of).collect()),
            Pools::Sqlite(p) => bind_lite(sqlx::query(&sql.text), &sql.binds)
                .fetch_all(p)
                .await
                .and_then(|rows| rows.iter().map(texts_of).collect()),
        };
        r.map_err(|e| self.err(e))
    }

    /// Reads records (key first, then text columns) outside a transaction.
    pub async fn fetch_records(&self, sql: &Sql, kind: KeyKind) -> Result<Vec<Record>, DbError> {
        let r = match &self.pools {
            Pools::Postgres(p) => bind_pg(sqlx::query(&sql.text), &sql.binds)
                .fetch_all(p)
                .await
                .and_then(|rows| rows.iter().map(|r| record_of(r, kind)).collect()),
            Pools::MySql(p) => bind_my(sqlx::query(&sql.text), &sql.binds)
                .fetch_all(p)
                .await
                .and_then(|rows| rows.iter().map(|r| record_of(r, kind)).collect()),
            Pools::Sqlite(p) => bind_lite(sqlx::query(&sql.text), &sql.binds)
                .fetch_all(p)
                .await
                .and_then(|rows| rows.iter().map(|r| record_of(r, kind)).collect()),
        };
        r.map_err(|e| self.err(e))
    }

    /// Settles a batch whose commit is in doubt by writing its journal row *now*. If the
    /// batch committed, its row is there and the insert fails on the primary key (`true`:
    /// it happened). If the batch's transaction is still open somewhere, the insert waits
    /// for it to end. If the insert succeeds, the batch never committed — and now never can,
    /// because its own journal insert would collide (`false`).
    pub async fn settle_batch(&self, batch_id: &str) -> Result<bool, DbError> {
        let mut sql = Sql::new(self.dialect);
        sql.push("INSERT INTO retentiond_journal (batch_id, rule) VALUES (")
            .bind(Value::Text(batch_id.to_owned()))
            .push(", '(rolled back)')");
        match self.execute(&sql).await {
            Ok(_) => Ok(false),
            Err(DbError::Query {
                unique_violation: true,
                ..
            }) => Ok(true),
            Err(e) => Err(e),
        }
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
    fn err(&self, e: sqlx::Error) -> DbError {
        query_error(&self.name, e)
    }

    /// Runs a statement in the transaction; returns the rows it affected.
    pub async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError> {
        let r = match &mut self.tx {
            Txs::Postgres(t) => bind_pg(sqlx::query(&sql.text), &sql.binds)
                .execute(&mut **t)
                .await
                .map(|r| r.rows_affected()),
            Txs::MySql(t) => bind_my(sqlx::query(&sql.text), &sql.binds)
                .execute(&mut **t)
                .await
                .map(|r| r.rows_affected()),
            Txs::Sqlite(t) => bind_lite(sqlx::query(&sql.text), &sql.binds)
                .execute(&mut **t)
                .await
                .map(|r| r.rows_affected()),
        };
        r.map_err(|e| self.err(e))
    }

    /// Reads (and, with the dialect's lock suffix in `sql`, locks) records.
    pub async fn fetch_records(
        &mut self,
        sql: &Sql,
        kind: KeyKind,
    ) -> Result<Vec<Record>, DbError> {
        let r = match &mut self.tx {
            Txs::Postgres(t) => bind_pg(sqlx::query(&sql.text), &sql.binds)
                .fetch_all(&mut **t)
                .await
                .and_then(|rows| rows.iter().map(|r| record_of(r, kind)).collect()),
            Txs::MySql(t) => bind_my(sqlx::query(&sql.text), &sql.binds)
                .fetch_all(&mut **t)
                .await
                .and_then(|rows| rows.iter().map(|r| record_of(r, kind)).collect()),
            Txs::Sqlite(t) => bind_lite(sqlx::query(&sql.text), &sql.binds)
                .fetch_all(&mut **t)
                .await
                .and_then(|rows| rows.iter().map(|r| record_of(r, kind)).collect()),
        };
        r.map_err(|e| self.err(e))
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

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;
type MyQuery<'q> = sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments>;
type LiteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

fn bind_pg<'q>(mut q: PgQuery<'q>, binds: &[Value]) -> PgQuery<'q> {
    for v in binds {
        q = match v {
            Value::Int(i) => q.bind(*i),
            Value::Text(s) => q.bind(s.clone()),
            Value::Date(d) => q.bind(*d),
            Value::Naive(t) => q.bind(*t),
            Value::Instant(t) => q.bind(*t),
            Value::IntArray(a) => q.bind(a.clone()),
            Value::TextArray(a) => q.bind(a.clone()),
        };
    }
    q
}

fn bind_my<'q>(mut q: MyQuery<'q>, binds: &[Value]) -> MyQuery<'q> {
    for v in binds {
        q = match v {
            Value::Int(i) => q.bind(*i),
            Value::Text(s) => q.bind(s.clone()),
            Value::Date(d) => q.bind(*d),
            Value::Naive(t) => q.bind(*t),
            Value::Instant(t) => q.bind(*t),
            // Arrays are only ever built for PostgreSQL (see `Sql::in_list`).
            Value::IntArray(_) | Value::TextArray(_) => q.bind(v.to_string()),
        };
    }
    q
}

fn bind_lite<'q>(mut q: LiteQuery<'q>, binds: &[Value]) -> LiteQuery<'q> {
    for v in binds {
        q = match v {
            Value::Int(i) => q.bind(*i),
            Value::Text(s) => q.bind(s.clone()),
            Value::Date(d) => q.bind(*d),
            Value::Naive(t) => q.bind(*t),
            Value::Instant(t) => q.bind(*t),
            Value::IntArray(_) | Value::TextArray(_) => q.bind(v.to_string()),
        };
    }
    q
}

/// SQLSTATEs worth a retry: serialization failure, deadlock, lock not available, query
/// canceled (statement timeout), MariaDB statement timeout.
const TRANSIENT_SQLSTATES: [&str; 5] = ["40001", "40P01", "55P03", "57014", "70100"];
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
            let sqlstate = d
                .code()
                .is_some_and(|c| TRANSIENT_SQLSTATES.contains(&c.as_ref()));
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

//! Connections to the organisation's databases, behind one [`Db`] whatever the engine.
//! Dialect differences live in [`dialect`]; catalog lookups in [`schema`]; the journal
//! table that makes every batch verifiable in [`journal`]. The three drivers are matched
//! in one place only: the [`on_driver!`] macro below.

pub mod dialect;
pub mod journal;
pub mod replicas;
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
use std::sync::Arc;

/// A database operation that failed. The message never holds a password or a row's values:
/// it becomes a rule's `error`, which is stored in the state database, saved in reports and
/// mailed. A statement's failure says only its code, the schema objects the driver names
/// and a class in plain words (see `query_error`); the driver's own text, which can quote
/// a row (a duplicate key's value, a trigger's `RAISE` of a column), goes to the log only.
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
        /// The driver's reason, scrubbed of the URL and every password.
        /// Connecting runs no statement on a table, so it holds no row values.
        reason: String,
    },
    /// A statement failed.
    #[error("database '{database}': {reason}")]
    Query {
        /// Config name.
        database: String,
        /// What went wrong, safe to store and mail: for an error the database returned, a
        /// class in plain words with the code (SQLSTATE, MySQL error number, SQLite result
        /// code) and the schema objects it names; otherwise the driver's text, scrubbed.
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
    /// Removes the URL and the passwords from every error message of this pool and its
    /// transactions.
    scrubber: Arc<Scrubber>,
}

/// One record as read by a batch: its key and the text columns the action needs.
#[derive(Debug, Clone)]
pub struct Record {
    /// The key.
    pub key: Key,
    /// Text columns, in the order they were selected.
    pub texts: Vec<Option<String>>,
}

/// The file a SQLite URL names (`sqlite://path`, `sqlite:path`, with or without options).
fn sqlite_path(url: &str) -> &str {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    path.split('?').next().unwrap_or(path)
}

/// Which physical database `spec` is, however its URL is written: the dialect with the
/// host, port and database name (PostgreSQL, MySQL/MariaDB), or the canonical path of the
/// SQLite file. Two `[databases.*]` entries with the same target are one database to
/// its locks and its load: a pass runs their rules one after the other, never side by
/// side (`[daemon] parallel`). Holds no credentials, but is for comparing, not for
/// showing.
pub fn target_of(spec: &DatabaseSpec) -> String {
    // Read with sqlx's own parser, which is what connects: options override the URL in
    // the order given, MySQL ignores PostgreSQL's, and PG* environment defaults apply.
    let (scheme, host, port, socket, database, user) = match spec.dialect {
        Dialect::Sqlite => {
            let path = sqlite_path(&spec.url);
            let canonical = std::fs::canonicalize(path)
                .map_or_else(|_| path.to_owned(), |p| p.display().to_string());
            return format!("sqlite:{canonical}");
        }
        Dialect::Postgres => match PgConnectOptions::from_str(&spec.url) {
            Ok(o) => (
                "postgres",
                o.get_host().to_owned(),
                o.get_port(),
                o.get_socket().is_some(),
                o.get_database().map(str::to_owned),
                o.get_username().to_owned(),
            ),
            Err(_) => return spec.url.clone(),
        },
        Dialect::MySql => match MySqlConnectOptions::from_str(&spec.url) {
            Ok(o) => (
                "mysql",
                o.get_host().to_owned(),
                o.get_port(),
                o.get_socket().is_some(),
                o.get_database().map(str::to_owned),
                o.get_username().to_owned(),
            ),
            Err(_) => return spec.url.clone(),
        },
    };
    // One machine under its loopback names, or through its local socket, is one server:
    // merging two names of one server is harmless (their rules run one after the other),
    // splitting one is not.
    let host = host.to_lowercase();
    let host = match host.trim_matches(['[', ']']) {
        _ if socket => "loopback".to_owned(),
        "localhost" | "127.0.0.1" | "::1" => "loopback".to_owned(),
        _ => host,
    };
    // PostgreSQL's database defaults to the user's name.
    let name = match (spec.dialect, database) {
        (_, Some(d)) if !d.is_empty() => d,
        (Dialect::Postgres, _) => user,
        _ => String::new(),
    };
    format!("{scheme}://{host}:{port}/{name}")
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
        let scrubber = Arc::new(Scrubber::new(spec, password.as_deref()));
        let connect_err = |e: sqlx::Error| DbError::Connect {
            database: spec.name.clone(),
            url: spec.masked_url(),
            reason: scrubber.scrub(&e.to_string()),
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
                let path = sqlite_path(&spec.url);
                if !std::path::Path::new(path).exists() {
                    return Err(DbError::Connect {
                        database: spec.name.clone(),
                        url: spec.masked_url(),
                        reason: scrubber.scrub(&format!("the file {path} does not exist (retentiond never creates a database; check the path, and ReadWritePaths= under systemd)")),
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
            scrubber,
        })
    }

    fn err(&self, e: sqlx::Error) -> DbError {
        query_error(&self.name, e, &self.scrubber)
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

    /// Runs a statement and reads every row by column name, each value as text whatever
    /// its SQL type: for `SHOW` statements, whose columns and their types the server
    /// chooses and changes between versions (MariaDB's `SHOW REPLICA STATUS`).
    pub async fn fetch_named(
        &self,
        sql: &Sql,
    ) -> Result<Vec<std::collections::BTreeMap<String, Option<String>>>, DbError> {
        on_driver!(Pools, &self.pools, sql, |q, p| q
            .fetch_all(p)
            .await
            .and_then(|rows| rows.iter().map(named_texts_of).collect()))
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
            scrubber: Arc::clone(&self.scrubber),
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
    /// The pool's, so a transaction's errors are scrubbed the same way.
    scrubber: Arc<Scrubber>,
}

impl Tx {
    /// Runs a statement in the transaction; returns the rows it affected.
    pub async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError> {
        on_driver!(Txs, &mut self.tx, sql, |q, t| q
            .execute(&mut **t)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| query_error(&self.name, e, &self.scrubber))
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
        .map_err(|e| query_error(&self.name, e, &self.scrubber))
    }

    /// Commits. An error here leaves the outcome unknown; the caller must reconcile.
    pub async fn commit(self) -> Result<(), DbError> {
        let (name, scrubber) = (self.name, self.scrubber);
        let r = match self.tx {
            Txs::Postgres(t) => t.commit().await,
            Txs::MySql(t) => t.commit().await,
            Txs::Sqlite(t) => t.commit().await,
        };
        r.map_err(|e| query_error(&name, e, &scrubber))
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

/// Reads a column as text whatever its type: text as is, numbers and booleans written
/// out. Each driver's row knows which of these its types decode as.
trait AnyText: Row {
    fn any_text(&self, i: usize) -> Result<Option<String>, sqlx::Error>;
}

/// Tries the decodings in order; the first that fits the column wins.
macro_rules! first_fitting {
    ($row:expr, $i:expr, $first:ty $(, $t:ty)*) => {
        $row.try_get::<Option<$first>, _>($i)
            .map(|v| v.map(|v| v.to_string()))
            $(.or_else(|_| $row.try_get::<Option<$t>, _>($i).map(|v| v.map(|v| v.to_string()))))*
    };
}

impl AnyText for sqlx::postgres::PgRow {
    fn any_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        first_fitting!(self, i, String, i64, i32, f64, bool)
    }
}

impl AnyText for sqlx::mysql::MySqlRow {
    fn any_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        first_fitting!(self, i, String, u64, i64, f64)
    }
}

impl AnyText for sqlx::sqlite::SqliteRow {
    fn any_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        first_fitting!(self, i, String, i64, f64)
    }
}

fn named_texts_of<R: AnyText>(
    row: &R,
) -> Result<std::collections::BTreeMap<String, Option<String>>, sqlx::Error> {
    use sqlx::Column;
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, c)| Ok((c.name().to_owned(), row.any_text(i)?)))
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
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for v in binds {
        q = match v {
            Value::Int(i) => q.bind(*i),
            Value::Text(s) => q.bind(s.clone()),
            Value::Date(d) => q.bind(*d),
            Value::Naive(t) => q.bind(*t),
            Value::Instant(t) => q.bind(*t),
            Value::Bool(b) => q.bind(*b),
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

/// Turns a driver error into a [`DbError::Query`], whose text is safe to store and mail.
///
/// An error the database returned is described by its code, the schema objects the driver
/// names and a class in plain words derived from the code ([`Refusal`]); the database's own
/// message can quote a row — a duplicate key's value, a trigger's `RAISE EXCEPTION 'cannot
/// delete %', OLD.email` — so it is logged here, once, and goes nowhere else. A value that
/// could not be encoded or decoded is treated the same way. Other errors (I/O, pool
/// timeout, protocol) carry no row data and keep their text, scrubbed of the URL and the
/// passwords like every message of this pool.
fn query_error(database: &str, e: sqlx::Error, scrubber: &Scrubber) -> DbError {
    let unique_violation = e
        .as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation);
    let transient = match &e {
        // The driver refuses a statement with more values than its protocol carries
        // ("too many arguments for query"): the same statement fails the same way again.
        sqlx::Error::Protocol(m) if m.contains("too many arguments") => false,
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
    let reason = match &e {
        sqlx::Error::Database(d) => {
            let refusal = Refusal::of(d.as_ref());
            let detail = d
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(sqlx::postgres::PgDatabaseError::detail)
                .map(|detail| scrubber.scrub(detail));
            tracing::warn!(
                database,
                code = %refusal.code,
                error = %scrubber.scrub(d.message()),
                detail = detail.as_deref().unwrap_or(""),
                "the database refused a statement; its own words, which may quote a record, are in this log only"
            );
            refusal.to_string()
        }
        sqlx::Error::Encode(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            tracing::warn!(
                database,
                error = %scrubber.scrub(&e.to_string()),
                "a value could not be converted; the driver's words, which may quote it, are in this log only"
            );
            match &e {
                sqlx::Error::ColumnDecode { index, .. } => {
                    format!("a value in column {index} of a result could not be read")
                }
                sqlx::Error::Encode(_) => "a value could not be sent to the database".to_owned(),
                _ => "a value from the database could not be read".to_owned(),
            }
        }
        other => scrubber.scrub(&other.to_string()),
    };
    DbError::Query {
        database: database.to_owned(),
        reason,
        unique_violation,
        transient,
    }
}

// Classes of database errors, in plain words, for reports read by people who do not know
// SQLSTATEs. Derived from the code only, never from the database's message.
const UNIQUE: &str = "a unique key would be violated";
const FOREIGN_KEY: &str = "a foreign key refers to the row";
const FOREIGN_KEY_MISSING: &str = "a foreign key would refer to a row that does not exist";
const NOT_NULL: &str = "a column that may not be empty would be empty";
const CHECK: &str = "a check constraint would be violated";
const INTEGRITY: &str = "an integrity constraint would be violated";
const ABORTED: &str = "the database aborted the transaction (serialization/deadlock)";
const LOCK_TIMEOUT: &str = "a lock wait timed out";
const STATEMENT_TIMEOUT: &str = "the statement timed out";
const INTERRUPTED: &str = "the statement was interrupted";
const SESSION_ENDED: &str = "the server ended the session";
const CONNECTION: &str = "the connection failed";
const NO_TABLE: &str = "the table does not exist";
const NO_COLUMN: &str = "a column does not exist";
const PERMISSION: &str = "the database user lacks a permission";
const SCHEMA: &str = "the statement was refused (permissions or schema)";
const TRIGGER: &str = "a trigger or function in the database raised an error";
const BAD_VALUE: &str = "a value does not fit the column type";
const READ_ONLY: &str = "the database is read-only";
const FULL: &str = "the database or its disk is full";
const RESOURCES: &str = "the server ran out of resources";
const BUSY: &str = "the database was busy (another connection held its lock)";
const LOCKED: &str = "a table was locked by another statement";
const DISK: &str = "a disk I/O error occurred";
const CORRUPT: &str = "the database file is corrupt";
const REFUSED: &str = "the database refused the statement";

/// What may be said, outside the log, about an error the database returned: a class in
/// plain words, the code, and the schema objects (constraint, table, column) the driver
/// names — never its message, which can quote a record.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    class: &'static str,
    /// `SQLSTATE 23505`, `MySQL error 1451, SQLSTATE 23000`, `SQLite error 1811`.
    code: String,
    /// `constraint orders_customer_fkey`, `table public.orders`, `column email`.
    objects: Vec<String>,
    /// SQLite's own message, when it names only schema objects (`no such table: t`).
    quoted: Option<String>,
}

impl Refusal {
    fn of(d: &dyn sqlx::error::DatabaseError) -> Refusal {
        if let Some(pg) = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            // A PL/pgSQL `RAISE … USING COLUMN = OLD.email` fills the object fields with
            // whatever it likes: only the database's own errors name real objects.
            let raised = pg.routine() == Some("exec_stmt_raise");
            let objects = if raised {
                Vec::new()
            } else {
                let table = match (pg.schema(), pg.table()) {
                    (Some(schema), Some(table)) => Some(format!("{schema}.{table}")),
                    (_, table) => table.map(str::to_owned),
                };
                named_objects(pg.constraint(), table.as_deref(), pg.column())
            };
            return Refusal {
                class: postgres_class(pg.code()),
                code: format!("SQLSTATE {}", pg.code()),
                objects,
                quoted: None,
            };
        }
        if let Some(my) = d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            let sqlstate = my.code().unwrap_or("HY000");
            return Refusal {
                class: mysql_class(my.number(), sqlstate),
                code: format!("MySQL error {}, SQLSTATE {sqlstate}", my.number()),
                objects: named_objects(d.constraint(), d.table(), None),
                quoted: None,
            };
        }
        let code = d.code().map(|c| c.into_owned());
        let extended = code.as_deref().and_then(|c| c.parse::<i32>().ok());
        match extended {
            Some(extended) => {
                let (class, quoted) = sqlite_class(extended, d.message());
                Refusal {
                    class,
                    code: format!("SQLite error {extended}"),
                    objects: named_objects(d.constraint(), d.table(), None),
                    quoted,
                }
            }
            None => Refusal {
                class: REFUSED,
                code: code.map_or_else(|| "no code".to_owned(), |c| format!("code {c}")),
                objects: Vec::new(),
                quoted: None,
            },
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}", self.class, self.code)?;
        if let Some(q) = &self.quoted {
            write!(f, ": {q}")?;
        }
        if !self.objects.is_empty() {
            write!(f, "; {}", self.objects.join(", "))?;
        }
        f.write_str(")")
    }
}

fn named_objects(
    constraint: Option<&str>,
    table: Option<&str>,
    column: Option<&str>,
) -> Vec<String> {
    [
        ("constraint", constraint),
        ("table", table),
        ("column", column),
    ]
    .into_iter()
    .filter_map(|(what, name)| name.map(|n| format!("{what} {n}")))
    .collect()
}

/// The class of a PostgreSQL SQLSTATE (also the standard classes other databases share).
fn postgres_class(code: &str) -> &'static str {
    match code {
        "23505" => UNIQUE,
        "23503" => FOREIGN_KEY,
        "23502" => NOT_NULL,
        "23514" => CHECK,
        "40001" | "40P01" => ABORTED,
        "55P03" => LOCK_TIMEOUT,
        "57014" => STATEMENT_TIMEOUT,
        "42P01" => NO_TABLE,
        "42703" => NO_COLUMN,
        "42501" => PERMISSION,
        "25006" => READ_ONLY,
        "53100" => FULL,
        c if c.starts_with("57P0") => SESSION_ENDED,
        c if c.starts_with("08") => CONNECTION,
        c if c.starts_with("23") => INTEGRITY,
        c if c.starts_with("40") => ABORTED,
        c if c.starts_with("42") => SCHEMA,
        c if c.starts_with("P0") => TRIGGER,
        c if c.starts_with("22") => BAD_VALUE,
        c if c.starts_with("53") => RESOURCES,
        _ => REFUSED,
    }
}

/// The class of a MySQL/MariaDB error: by its number, which says more than the SQLSTATE
/// (23000 is every integrity error, HY000 most others).
fn mysql_class(number: u16, sqlstate: &str) -> &'static str {
    match number {
        1062 | 1586 => UNIQUE,
        1451 | 1217 => FOREIGN_KEY,
        1452 | 1216 => FOREIGN_KEY_MISSING,
        1048 => NOT_NULL,
        3819 | 4025 => CHECK,
        1213 => ABORTED,
        1205 => LOCK_TIMEOUT,
        1969 | 3024 => STATEMENT_TIMEOUT,
        1317 => INTERRUPTED,
        1053 | 1927 => SESSION_ENDED,
        1146 => NO_TABLE,
        1054 => NO_COLUMN,
        1044 | 1045 | 1142 | 1143 | 1227 => PERMISSION,
        1644 => TRIGGER,
        1290 | 1792 | 1836 => READ_ONLY,
        1021 | 1114 => FULL,
        1264 | 1292 | 1366 | 1406 => BAD_VALUE,
        _ if sqlstate.starts_with("45") => TRIGGER,
        _ if sqlstate.starts_with("42") => SCHEMA,
        _ if sqlstate.starts_with("08") => CONNECTION,
        _ if sqlstate.starts_with("23") => INTEGRITY,
        _ if sqlstate.starts_with("40") => ABORTED,
        _ if sqlstate.starts_with("22") => BAD_VALUE,
        _ => REFUSED,
    }
}

/// The class of a SQLite extended result code, and SQLite's message when it may be kept.
/// SQLite quotes a record only through a trigger's `RAISE(ABORT, …)` (1811, dropped with
/// every other constraint message); "no such table/column" names the objects of the
/// statement retentiond sent, so it is kept to say which.
fn sqlite_class(extended: i32, message: &str) -> (&'static str, Option<String>) {
    let class = match extended {
        2067 | 1555 => UNIQUE,
        787 => FOREIGN_KEY,
        1299 => NOT_NULL,
        275 => CHECK,
        1811 => TRIGGER,
        e => match e & 0xff {
            19 => INTEGRITY,
            5 => BUSY,
            6 => LOCKED,
            13 => FULL,
            8 => READ_ONLY,
            9 => INTERRUPTED,
            10 => DISK,
            11 | 26 => CORRUPT,
            3 | 23 => PERMISSION,
            20 => BAD_VALUE,
            1 if message.starts_with("no such table") => NO_TABLE,
            1 if message.starts_with("no such column") => NO_COLUMN,
            _ => REFUSED,
        },
    };
    let quoted = (extended == 1 && matches!(class, NO_TABLE | NO_COLUMN))
        .then(|| message.chars().take(200).collect());
    (class, quoted)
}

/// Removes one database's secrets from driver messages: its URL as written (replaced by
/// the masked URL), and every password in every form a driver could quote — the URL's
/// password and secret query parameters as written, re-encoded and decoded
/// ([`DatabaseSpec::url_secrets`]), and the password read from `password_file` or
/// `password_env`; each also percent-encoded. A message is stored in the state database,
/// saved in reports and mailed: it must hold no password, whatever quoted it. (No `Debug`:
/// it holds the passwords.)
struct Scrubber {
    url: String,
    masked_url: String,
    /// Longest first, so a secret that contains another is removed whole.
    secrets: Vec<String>,
}

impl Scrubber {
    fn new(spec: &DatabaseSpec, password: Option<&str>) -> Scrubber {
        let mut plain = spec.url_secrets();
        plain.extend(password.filter(|p| !p.is_empty()).map(str::to_owned));
        let mut secrets: Vec<String> = Vec::new();
        for form in plain.iter().flat_map(|p| [p.clone(), percent_encode(p)]) {
            if !secrets.contains(&form) {
                secrets.push(form);
            }
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Scrubber {
            url: spec.url.clone(),
            masked_url: spec.masked_url(),
            secrets,
        }
    }

    fn scrub(&self, message: &str) -> String {
        let mut out = if self.url.is_empty() {
            message.to_owned()
        } else {
            message.replace(&self.url, &self.masked_url)
        };
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }
}

/// `s` with every byte outside the URL's unreserved characters written `%XX`, as a
/// password appears inside a URL a driver might quote.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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

    #[test]
    fn one_database_written_two_ways_is_one_target() {
        let target = |dialect, url: &str| {
            let mut s = spec(url);
            s.dialect = dialect;
            target_of(&s)
        };
        let pg = |url| target(Dialect::Postgres, url);
        assert_eq!(
            pg("postgres://a:x@DB.example:5432/hr"),
            pg("postgres://b@db.example/hr?sslmode=require")
        );
        assert_ne!(
            pg("postgres://a@db.example/hr"),
            pg("postgres://a@db.example/crm")
        );
        assert_ne!(
            pg("postgres://a@db.example/hr"),
            pg("postgres://a@db.example:5433/hr")
        );
        // Options override the URL, as they do in sqlx; loopback names are one machine.
        assert_eq!(
            pg("postgres://u@a.example/hr?host=db.example"),
            pg("postgres://u@db.example/hr")
        );
        assert_eq!(
            pg("postgres://u@db.example/other?dbname=hr"),
            pg("postgres://u@db.example/hr")
        );
        assert_eq!(
            pg("postgres://u@localhost/hr"),
            pg("postgres://u@127.0.0.1:5432/hr")
        );
        // The last of repeated options wins, as in sqlx; a socket is the local server.
        assert_eq!(
            pg("postgres://u@x.example/hr?host=a.example&host=db.example"),
            pg("postgres://u@db.example/hr")
        );
        assert_eq!(
            pg("postgres:///hr?host=/var/run/postgresql"),
            pg("postgres://u@localhost/hr")
        );
        assert_eq!(
            pg("postgres://hr@db.example"),
            pg("postgres://hr@db.example/hr")
        );
        let my = |url| target(Dialect::MySql, url);
        assert_eq!(my("mysql://a@db:3306/crm"), my("mysql://b:pw@db/crm"));
        // MySQL's URL has no host or dbname options: sqlx connects to db1 for both.
        assert_eq!(my("mysql://u@db1/crm?host=db2"), my("mysql://u@db1/crm"));
        assert_ne!(my("mysql://a@db/crm"), pg("postgres://a@db:3306/crm"));
        let dir = std::env::temp_dir();
        let file = dir.join(format!("retentiond-target-{}.db", std::process::id()));
        std::fs::write(&file, b"").unwrap();
        let lite = |url: String| target(Dialect::Sqlite, &url);
        let via_dot = dir.join(".").join(file.file_name().unwrap());
        assert_eq!(
            lite(format!("sqlite://{}", file.display())),
            lite(format!("sqlite:{}?mode=rw", via_dot.display()))
        );
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn a_statement_with_too_many_arguments_is_not_retried() {
        let s = Scrubber::new(&spec("postgres://u@host/db"), None);
        let e = sqlx::Error::Protocol(
            "PgConnection::run(): too many arguments for query: 80001".into(),
        );
        assert!(!query_error("hr", e, &s).is_transient());
        let lost = sqlx::Error::Protocol("unexpected message".into());
        assert!(query_error("hr", lost, &s).is_transient());
    }

    fn spec(url: &str) -> DatabaseSpec {
        DatabaseSpec {
            name: "hr".into(),
            dialect: Dialect::Postgres,
            url: url.into(),
            secret: Secret::None,
            timeouts: Default::default(),
            line: 1,
        }
    }

    #[test]
    fn a_driver_message_loses_the_url_and_every_password() {
        let url = "postgres://u:S3cret/PW@host/db?sslpassword=K%2By";
        let s = Scrubber::new(&spec(url), Some("from file é"));
        let message = format!(
            "bad {url}; password S3cret/PW, S3cret%2FPW, K%2By, K+y, from file é, from%20file%20%C3%A9"
        );
        let out = s.scrub(&message);
        for secret in ["S3cret", "K%2By", "K+y", "from file", "from%20file"] {
            assert!(!out.contains(secret), "{secret}: {out}");
        }
        assert!(out.contains("postgres://***@host/db"), "{out}");
    }

    #[test]
    fn a_class_is_derived_from_the_code_alone() {
        assert_eq!(postgres_class("23505"), UNIQUE);
        assert_eq!(postgres_class("23503"), FOREIGN_KEY);
        assert_eq!(postgres_class("40P01"), ABORTED);
        assert_eq!(postgres_class("55P03"), LOCK_TIMEOUT);
        assert_eq!(postgres_class("57014"), STATEMENT_TIMEOUT);
        assert_eq!(postgres_class("57P01"), SESSION_ENDED);
        assert_eq!(postgres_class("08006"), CONNECTION);
        assert_eq!(postgres_class("42P01"), NO_TABLE);
        assert_eq!(postgres_class("42601"), SCHEMA);
        assert_eq!(postgres_class("P0001"), TRIGGER);
        assert_eq!(postgres_class("XX000"), REFUSED);
        assert_eq!(mysql_class(1451, "23000"), FOREIGN_KEY);
        assert_eq!(mysql_class(1062, "23000"), UNIQUE);
        assert_eq!(mysql_class(1205, "HY000"), LOCK_TIMEOUT);
        assert_eq!(mysql_class(1969, "70100"), STATEMENT_TIMEOUT);
        assert_eq!(mysql_class(1146, "42S02"), NO_TABLE);
        assert_eq!(mysql_class(1644, "45000"), TRIGGER);
        assert_eq!(mysql_class(9999, "45001"), TRIGGER);
        assert_eq!(mysql_class(9999, "HY000"), REFUSED);
        assert_eq!(sqlite_class(1811, "no: jane@example.org"), (TRIGGER, None));
        assert_eq!(
            sqlite_class(2067, "UNIQUE constraint failed: t.id").0,
            UNIQUE
        );
        assert_eq!(sqlite_class(517, "database is locked").0, BUSY);
        assert_eq!(sqlite_class(13, "database or disk is full").0, FULL);
        assert_eq!(
            sqlite_class(1, "no such table: main.t"),
            (NO_TABLE, Some("no such table: main.t".to_owned()))
        );
        assert_eq!(sqlite_class(1, "near \"x\": syntax error"), (REFUSED, None));
    }

    #[test]
    fn a_refusal_says_its_class_code_and_objects() {
        let r = Refusal {
            class: UNIQUE,
            code: "SQLSTATE 23505".into(),
            objects: named_objects(Some("users_email_key"), Some("public.users"), None),
            quoted: None,
        };
        assert_eq!(
            r.to_string(),
            "a unique key would be violated (SQLSTATE 23505; constraint users_email_key, table public.users)"
        );
        let (class, quoted) = sqlite_class(1, "no such table: t");
        let r = Refusal {
            class,
            code: "SQLite error 1".into(),
            objects: Vec::new(),
            quoted,
        };
        assert_eq!(
            r.to_string(),
            "the table does not exist (SQLite error 1: no such table: t)"
        );
    }
}

//! `state migrate`: copies a `state.db` into an empty PostgreSQL state, table by table, in
//! one PostgreSQL transaction, so that an installation moves to `[daemon] state_url`
//! keeping its whole history and trail (and its installation id, which its anchors name).
//!
//! Tables are read from one SQLite snapshot and written in chunks of [`CHUNK`] rows as
//! arrays (`unnest`), so memory stays flat whatever the size of the trail. Whether the
//! copy verifies is for the caller to check (`audit::verify` is a layer above).

use super::postgres::PgStore;
use super::{State, StateError, Store};
use futures_util::TryStreamExt;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, PgConnection, Row, SqliteConnection};

/// Rows read from SQLite and written to PostgreSQL at a time.
const CHUNK: usize = 10_000;

/// How a column is read from SQLite and typed in PostgreSQL's arrays.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `INTEGER` / `BIGINT`.
    Int,
    /// `TEXT`.
    Text,
    /// `BLOB` / `BYTEA` (the entries' hashes).
    Bytes,
}

/// One table the copy carries over, as both stores declare it (schema 3).
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
}

use Kind::{Bytes, Int, Text};

/// Every table of the state but `meta` (copied on its own: the target keeps its `schema`),
/// in an order where what refers to something comes after it. Identity columns (`id` of
/// `audit_batch` and `rule_unlocks`) are copied with their values, and their sequences
/// advanced after ([`IDENTITIES`]).
const TABLES: [Table; 13] = [
    Table {
        name: "runs",
        columns: &[
            ("run_id", Text),
            ("started_at", Text),
            ("finished_at", Text),
            ("status", Text),
            ("summary", Text),
        ],
    },
    Table {
        name: "rule_runs",
        columns: &[("rule", Text), ("last_started_at", Text)],
    },
    Table {
        name: "holds_seen",
        columns: &[
            ("name", Text),
            ("fingerprint", Text),
            ("database", Text),
            ("tbl", Text),
            ("active", Int),
        ],
    },
    Table {
        name: "rules_seen",
        columns: &[
            ("name", Text),
            ("fingerprint", Text),
            ("database", Text),
            ("tbl", Text),
            ("active", Int),
            ("locked", Int),
            ("line", Int),
            ("changed_at", Text),
        ],
    },
    Table {
        name: "rule_versions",
        columns: &[
            ("name", Text),
            ("fingerprint", Text),
            ("definition", Text),
            ("first_seen_at", Text),
        ],
    },
    Table {
        name: "rule_unlocks",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("fingerprint", Text),
            ("reason", Text),
            ("unlocked_at", Text),
            ("run_id", Text),
            ("used_at", Text),
            ("used_by", Text),
        ],
    },
    Table {
        name: "mail_outbox",
        columns: &[("run_id", Text), ("queued_at", Text)],
    },
    Table {
        name: "requests",
        columns: &[
            ("id", Text),
            ("kind", Text),
            ("received", Text),
            ("due", Text),
            ("reference", Text),
            ("identity", Text),
            ("extension_reason", Text),
            ("created_at", Text),
            ("closed_at", Text),
        ],
    },
    Table {
        name: "request_outcomes",
        columns: &[
            ("request", Text),
            ("subject", Text),
            ("step", Text),
            ("reason", Text),
            ("count", Int),
            ("until", Text),
            ("at", Text),
        ],
    },
    Table {
        name: "pending",
        columns: &[
            ("batch_id", Text),
            ("run_id", Text),
            ("rule", Text),
            ("database", Text),
            ("tbl", Text),
            ("action", Text),
            ("legal_basis", Text),
            ("keys", Text),
            ("created_at", Text),
            ("request", Text),
            ("children", Text),
        ],
    },
    Table {
        name: "audit_batch",
        columns: &[
            ("id", Int),
            ("first_seq", Int),
            ("last_seq", Int),
            ("at", Text),
            ("run_id", Text),
            ("rule", Text),
            ("database", Text),
            ("tbl", Text),
            ("action", Text),
            ("legal_basis", Text),
            ("request", Text),
        ],
    },
    Table {
        name: "audit_entry",
        columns: &[("seq", Int), ("batch", Int), ("key", Text), ("hash", Bytes)],
    },
    Table {
        name: "chain_head",
        columns: &[("id", Int), ("seq", Int), ("hash", Text)],
    },
];

/// Tables whose `id` is an identity column in PostgreSQL: copied ids leave the sequence
/// behind, and the next append or unlock would collide with a copied row without a
/// `setval`.
const IDENTITIES: [&str; 2] = ["audit_batch", "rule_unlocks"];

/// The tables the target is locked on for the whole copy, so that nothing writes into it
/// between the check that it is empty and the commit.
const LOCK_TARGET: &str = "LOCK TABLE meta, runs, rule_runs, holds_seen, rules_seen, rule_versions, rule_unlocks, mail_outbox, requests, request_outcomes, pending, audit_batch, audit_entry, chain_head IN EXCLUSIVE MODE";

/// The key of `meta` each store keeps for itself: PostgreSQL records its schema version
/// there, `state.db` in `PRAGMA user_version`.
const OWN_META_KEY: &str = "schema";

/// Why `state migrate` did not copy.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The target already holds a state: migrating into it would mix two trails (or two
    /// copies of one). Nothing was changed.
    #[error("the state at {target} is not empty: it holds {holds}; `state migrate` only fills an empty state (nothing was changed there); give the URL of a new, empty database, or keep using the state that is there")]
    NotEmpty {
        /// The target's masked URL.
        target: String,
        /// What it holds, e.g. "3 runs, 120 audit entries".
        holds: String,
    },
    /// Reading the source or writing the target failed; the target's transaction was
    /// rolled back.
    #[error("{0}")]
    State(#[from] StateError),
}

impl From<sqlx::Error> for MigrateError {
    /// A failure reading `state.db` (the target's are wrapped with where they happened).
    fn from(e: sqlx::Error) -> Self {
        MigrateError::State(StateError::Db(e))
    }
}

/// How many rows of each table were copied.
#[derive(Debug, Clone, Default)]
pub struct Copied {
    rows: Vec<(&'static str, u64)>,
}

impl Copied {
    /// Rows copied of `table` (0 for a table the copy does not know).
    pub fn rows(&self, table: &str) -> u64 {
        self.rows
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }
}

impl State {
    /// Copies this `state.db` state into `target`, an empty PostgreSQL state, in one
    /// transaction there: every table, and every key of `meta` but the target's own schema
    /// version (the installation id included, so the anchors in target databases keep
    /// naming this trail). Refuses, changing nothing, if the target holds anything. Both
    /// should be held under their pass locks by the caller, so no pass writes meanwhile.
    pub async fn copy_into(&self, target: &State) -> Result<Copied, MigrateError> {
        let Store::Postgres(pg) = &target.store else {
            return Err(StateError::Io(
                "internal: state migrate copies into PostgreSQL only".into(),
            )
            .into());
        };
        let mut src_conn = self.sqlite()?.acquire().await?;
        // One read transaction: every table from the same snapshot of `state.db`.
        let mut src = Connection::begin(&mut *src_conn).await?;
        let mut dst_conn = pg
            .pool
            .acquire()
            .await
            .map_err(|e| at_target(pg, "connecting", e))?;
        let mut dst = Connection::begin(&mut *dst_conn)
            .await
            .map_err(|e| at_target(pg, "beginning the copy", e))?;
        sqlx::raw_sql(LOCK_TARGET)
            .execute(&mut *dst)
            .await
            .map_err(|e| at_target(pg, "locking its tables", e))?;
        let held = holdings(pg, &mut dst).await?;
        if !held.is_empty() {
            return Err(MigrateError::NotEmpty {
                target: pg.masked_url.clone(),
                holds: held.join(", "),
            });
        }
        copy_meta(pg, &mut src, &mut dst).await?;
        let mut copied = Copied::default();
        for table in &TABLES {
            let n = copy_table(pg, table, &mut src, &mut dst).await?;
            tracing::info!(
                table = table.name,
                rows = n,
                "copied into the PostgreSQL state"
            );
            copied.rows.push((table.name, n));
        }
        for table in IDENTITIES {
            // The next id is one past the highest copied (1 for an empty table).
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"
            );
            sqlx::query(&sql)
                .execute(&mut *dst)
                .await
                .map_err(|e| at_target(pg, "advancing the ids", e))?;
        }
        dst.commit()
            .await
            .map_err(|e| at_target(pg, "committing the copy", e))?;
        // The source was only read: its transaction ends (rolled back) when dropped.
        drop(src);
        Ok(copied)
    }
}

/// A failure on the target, with where it happened.
fn at_target(pg: &PgStore, what: &str, e: sqlx::Error) -> MigrateError {
    StateError::Io(format!(
        "state migrate: {what} in the state at {}: {e}; nothing was copied there",
        pg.masked_url
    ))
    .into()
}

/// What the target holds, one "N things" per non-empty table (empty: it may be filled).
async fn holdings(pg: &PgStore, dst: &mut PgConnection) -> Result<Vec<String>, MigrateError> {
    let mut held = Vec::new();
    for table in &TABLES {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name);
        let n: i64 = sqlx::query_scalar(&sql)
            .fetch_one(&mut *dst)
            .await
            .map_err(|e| at_target(pg, "reading what it holds", e))?;
        if n > 0 {
            held.push(format!("{n} rows in {}", table.name));
        }
    }
    Ok(held)
}

/// Copies every key of `meta` but [`OWN_META_KEY`], replacing what the target made when
/// its schema was created (its own random installation id, above all).
async fn copy_meta(
    pg: &PgStore,
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
) -> Result<(), MigrateError> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM meta WHERE key <> $1")
        .bind(OWN_META_KEY)
        .fetch_all(&mut *src)
        .await?;
    for (key, value) in rows {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&mut *dst)
            .await
            .map_err(|e| at_target(pg, "copying meta", e))?;
    }
    Ok(())
}

/// One column of a chunk, as the array it is bound as.
enum Column {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Column {
    fn new(kind: Kind) -> Column {
        match kind {
            Kind::Int => Column::Int(Vec::with_capacity(CHUNK)),
            Kind::Text => Column::Text(Vec::with_capacity(CHUNK)),
            Kind::Bytes => Column::Bytes(Vec::with_capacity(CHUNK)),
        }
    }

    /// Appends column `i` of `row`.
    fn push(&mut self, row: &SqliteRow, i: usize) -> Result<(), sqlx::Error> {
        match self {
            Column::Int(v) => v.push(row.try_get(i)?),
            Column::Text(v) => v.push(row.try_get(i)?),
            Column::Bytes(v) => v.push(row.try_get(i)?),
        }
        Ok(())
    }

    fn clear(&mut self) {
        match self {
            Column::Int(v) => v.clear(),
            Column::Text(v) => v.clear(),
            Column::Bytes(v) => v.clear(),
        }
    }

    /// PostgreSQL's array type for `unnest`.
    fn array_type(kind: Kind) -> &'static str {
        match kind {
            Kind::Int => "bigint[]",
            Kind::Text => "text[]",
            Kind::Bytes => "bytea[]",
        }
    }
}

/// Copies `table` from `src` to `dst` in chunks of [`CHUNK`] rows; returns the rows copied.
async fn copy_table(
    pg: &PgStore,
    table: &Table,
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
) -> Result<u64, MigrateError> {
    let names: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    let select = format!(
        "SELECT {} FROM {} ORDER BY rowid",
        names.join(", "),
        table.name
    );
    let arrays: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| format!("${}::{}", i + 1, Column::array_type(*kind)))
        .collect();
    let insert = format!(
        "INSERT INTO {} ({}) SELECT * FROM unnest({})",
        table.name,
        names.join(", "),
        arrays.join(", ")
    );
    let mut columns: Vec<Column> = table.columns.iter().map(|(_, k)| Column::new(*k)).collect();
    let mut pending = 0usize;
    let mut total = 0u64;
    let mut rows = sqlx::query(&select).fetch(&mut *src);
    while let Some(row) = rows.try_next().await? {
        for (i, column) in columns.iter_mut().enumerate() {
            column.push(&row, i)?;
        }
        pending += 1;
        if pending == CHUNK {
            total += flush(pg, table, &insert, &mut columns, dst).await?;
            pending = 0;
        }
    }
    if pending > 0 {
        total += flush(pg, table, &insert, &mut columns, dst).await?;
    }
    Ok(total)
}

/// Inserts the rows gathered in `columns` and empties them.
async fn flush(
    pg: &PgStore,
    table: &Table,
    insert: &str,
    columns: &mut [Column],
    dst: &mut PgConnection,
) -> Result<u64, MigrateError> {
    let mut query = sqlx::query(insert);
    for column in columns.iter() {
        query = match column {
            Column::Int(v) => query.bind(v),
            Column::Text(v) => query.bind(v),
            Column::Bytes(v) => query.bind(v),
        };
    }
    let n = query
        .execute(&mut *dst)
        .await
        .map_err(|e| at_target(pg, &format!("copying {}", table.name), e))?
        .rows_affected();
    for column in columns.iter_mut() {
        column.clear();
    }
    Ok(n)
}

//! The one place where SQL differs between PostgreSQL, MySQL/MariaDB and SQLite: identifier
//! quoting, placeholders, locking, and how a `since` column is compared with a cutoff.

use super::value::Value;
pub use crate::config::Dialect;
use crate::config::{Cutoff, Ident, TableName};

/// How a `since` column stores time, as found in the database catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinceKind {
    /// A calendar date, no time (local).
    Date,
    /// Wall-clock date and time without zone (local, in the configured timezone).
    Naive,
    /// An instant (`timestamptz`, MySQL `TIMESTAMP`).
    Instant,
    /// Integer seconds since 1970-01-01 UTC.
    UnixSeconds,
    /// SQLite: ISO-8601 text (with or without zone) or integer unix seconds, per row.
    SqliteAny,
}

/// How a key column is read and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Integer keys.
    Int,
    /// Text keys.
    Text,
}

/// SQL text with its bound values, built for one dialect. Values are never spliced.
#[derive(Debug, Clone)]
pub struct Sql {
    dialect: Dialect,
    /// The statement text.
    pub text: String,
    /// The values bound to its placeholders, in order.
    pub binds: Vec<Value>,
}

impl Sql {
    /// An empty statement for `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Sql {
            dialect,
            text: String::new(),
            binds: Vec::new(),
        }
    }

    /// Appends raw SQL text (only ever text retentiond wrote, quoted identifiers, or the
    /// operator's trusted filter).
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Binds `v` and appends its placeholder.
    pub fn bind(&mut self, v: Value) -> &mut Self {
        self.binds.push(v);
        let n = self.binds.len();
        match self.dialect {
            Dialect::Postgres => self.text.push_str(&format!("${n}")),
            Dialect::MySql => self.text.push('?'),
            Dialect::Sqlite => self.text.push_str(&format!("?{n}")),
        }
        self
    }

    /// Appends `col IN (…)` for `keys` (PostgreSQL: `col = ANY($n)` with one array).
    pub fn in_list(&mut self, col: &str, keys: &[Value]) -> &mut Self {
        if self.dialect == Dialect::Postgres {
            let array = Value::array(keys);
            self.push(col).push(" = ANY(").bind(array).push(")");
            return self;
        }
        self.push(col).push(" IN (");
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(k.clone());
        }
        self.push(")")
    }
}

impl Dialect {
    /// Quotes a checked identifier.
    pub fn ident(self, i: &Ident) -> String {
        match self {
            Dialect::MySql => format!("`{}`", i.as_str()),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", i.as_str()),
        }
    }

    /// Quotes a possibly schema-qualified table.
    pub fn table(self, t: &TableName) -> String {
        match &t.schema {
            Some(s) => format!("{}.{}", self.ident(s), self.ident(&t.name)),
            None => self.ident(&t.name),
        }
    }

    /// The key column as selected: widened so it decodes as `i64` or `String`.
    pub fn key_select(self, col: &str, kind: KeyKind) -> String {
        match (self, kind) {
            (Dialect::Postgres, KeyKind::Int) => format!("CAST({col} AS BIGINT)"),
            (Dialect::Postgres, KeyKind::Text) => format!("CAST({col} AS TEXT)"),
            (Dialect::MySql, KeyKind::Int) => format!("CAST({col} AS SIGNED)"),
            (Dialect::MySql, KeyKind::Text) => format!("CAST({col} AS CHAR)"),
            (Dialect::Sqlite, _) => col.to_owned(),
        }
    }

    /// A text column as selected, so that it decodes as `String` whatever its exact type.
    pub fn text_select(self, col: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST({col} AS TEXT)"),
            Dialect::MySql => format!("CAST({col} AS CHAR)"),
            Dialect::Sqlite => col.to_owned(),
        }
    }

    /// The row-locking suffix for the batch SELECT. Rows a foreground transaction holds are
    /// skipped (and retried next pass) rather than waited for; SQLite locks the whole file
    /// with `BEGIN IMMEDIATE` instead.
    pub fn lock_suffix(self) -> &'static str {
        match self {
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }

    /// The prefix that makes the database parse and plan a query without running it.
    pub fn explain(self) -> &'static str {
        match self {
            Dialect::Sqlite => "EXPLAIN QUERY PLAN ",
            Dialect::Postgres | Dialect::MySql => "EXPLAIN ",
        }
    }

    /// What follows `WHERE key IN (…)` in a batch's DELETE or UPDATE. On MySQL/MariaDB the
    /// optimizer may plan a small table's `IN` list as a full scan, which locks every row
    /// it reads, so the batch would wait on rows it does not touch (held by a foreground
    /// transaction); `ORDER BY key LIMIT n` makes it an index range over exactly the keys,
    /// and caps the statement at the batch's size besides.
    pub fn action_suffix(self, key: &str, n: usize) -> String {
        match self {
            Dialect::MySql => format!(" ORDER BY {key} LIMIT {n}"),
            Dialect::Postgres | Dialect::Sqlite => String::new(),
        }
    }

    /// Whether the database has a single writer for the whole file (SQLite): a batch then
    /// holds every writer out, so the engine lets the application in between batches
    /// instead of overlapping its own work with the next lock.
    pub fn single_writer(self) -> bool {
        matches!(self, Dialect::Sqlite)
    }

    /// The statement that opens a batch transaction.
    pub fn begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres | Dialect::MySql => "BEGIN",
        }
    }

    /// Appends "`since` has expired at `cutoff`" for a column of `kind`. NULL never matches.
    pub fn push_expired(self, sql: &mut Sql, col: &str, kind: SinceKind, cutoff: &Cutoff) {
        let unix_local = cutoff.local.and_utc().timestamp();
        let unix_utc = cutoff.utc.timestamp();
        match kind {
            SinceKind::Date => {
                sql.push(col)
                    .push(" <= ")
                    .bind(Value::Date(cutoff.local.date()));
            }
            SinceKind::Naive => {
                sql.push(col).push(" <= ").bind(Value::Naive(cutoff.local));
            }
            SinceKind::Instant => {
                sql.push(col).push(" <= ").bind(Value::Instant(cutoff.utc));
            }
            SinceKind::UnixSeconds => {
                sql.push(col).push(" <= ").bind(Value::Int(unix_utc));
            }
            SinceKind::SqliteAny => {
                // Integers are unix seconds (absolute). Text with a zone is absolute too;
                // text without one is local wall time, compared as-if-UTC on both sides.
                // Text that does not start with an ISO date (`YYYY-MM-DD`) is never read
                // as a time — not even the forms SQLite would take (a bare time of day is
                // 2000-01-01 to it, a number in text a Julian day): such a record is kept,
                // not guessed at. Neither is text SQLite cannot read (NULL never matches).
                //
                // The leading `col < bound` changes nothing about which records match: it
                // lets SQLite use an index on the column. Numbers sort before all text, and
                // every ISO text that can match starts with a date before `bound` (the
                // latest matching wall time, in any zone SQLite accepts, is under 15 hours
                // past the cutoff).
                sql.push("(")
                    .push(col)
                    .push(" < ")
                    .bind(Value::Text(sqlite_text_bound(cutoff)))
                    .push(" AND CASE WHEN typeof(")
                    .push(col)
                    .push(") IN ('integer', 'real') THEN ")
                    .push(col)
                    .push(" <= ")
                    .bind(Value::Int(unix_utc))
                    .push(" WHEN ")
                    .push(col)
                    .push(" NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' THEN 0 WHEN ")
                    .push(col)
                    .push(" GLOB '*[Zz]' OR ")
                    .push(col)
                    .push(" GLOB '*[+-][0-9][0-9]:[0-9][0-9]' THEN unixepoch(")
                    .push(col)
                    .push(") <= ")
                    .bind(Value::Int(unix_utc))
                    .push(" ELSE unixepoch(")
                    .push(col)
                    .push(") <= ")
                    .bind(Value::Int(unix_local))
                    .push(" END)");
            }
        }
    }
}

/// The first date (as `YYYY-MM-DD` text) that no matching SQLite text can start with: the
/// day after the later of the local cutoff and the UTC cutoff plus 15 hours (SQLite reads
/// zone offsets up to ±14:59).
fn sqlite_text_bound(cutoff: &Cutoff) -> String {
    let latest = cutoff
        .local
        .max(cutoff.utc.naive_utc() + chrono::Duration::hours(15));
    let day = latest.date().succ_opt().unwrap_or(latest.date());
    day.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_text_bound_leaves_room_for_every_zone_sqlite_reads() {
        use chrono::{NaiveDate, TimeZone, Utc};
        // Cutoff 2025-06-15 09:01 UTC. '2025-06-16T00:00:00+14:59' is exactly that instant
        // and so matches: its date must sort below the bound.
        let utc = Utc.with_ymd_and_hms(2025, 6, 15, 9, 1, 0).unwrap();
        let cutoff = Cutoff {
            utc,
            local: utc.naive_utc(),
        };
        let bound = sqlite_text_bound(&cutoff);
        assert_eq!(bound, "2025-06-17");
        assert!("2025-06-16T00:00:00+14:59" < bound.as_str());
        // A local cutoff ahead of UTC (e.g. Pacific/Kiritimati) is covered by its own date.
        let local = NaiveDate::from_ymd_opt(2025, 6, 20)
            .unwrap()
            .and_hms_opt(8, 0, 0)
            .unwrap();
        assert_eq!(sqlite_text_bound(&Cutoff { utc, local }), "2025-06-21");
    }

    #[test]
    fn identifiers_are_quoted_per_dialect() {
        let t = TableName::parse("hr.order").unwrap();
        assert_eq!(Dialect::Postgres.table(&t), "\"hr\".\"order\"");
        assert_eq!(Dialect::MySql.table(&t), "`hr`.`order`");
    }

    #[test]
    fn placeholders_follow_the_dialect() {
        let keys = [Value::Int(1), Value::Int(2)];
        let mut s = Sql::new(Dialect::MySql);
        s.in_list("id", &keys);
        assert_eq!(s.text, "id IN (?, ?)");
        let mut s = Sql::new(Dialect::Sqlite);
        s.in_list("id", &keys);
        assert_eq!(s.text, "id IN (?1, ?2)");
        let mut s = Sql::new(Dialect::Postgres);
        s.in_list("id", &keys);
        assert_eq!((s.text.as_str(), s.binds.len()), ("id = ANY($1)", 1));
    }
}

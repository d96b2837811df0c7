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

    /// The dialect the statement is written in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
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
        self.key_list(col, keys, false)
    }

    /// Binds a key as read back from the database. `unsigned` marks a MySQL/MariaDB
    /// `… UNSIGNED` key: it is read as decimal text (values above 2^63 do not fit an `i64`),
    /// and its placeholder is cast back to an unsigned integer, so that the comparison is
    /// integer-exact — MySQL compares an integer column with a text value as floating
    /// point, where 18446744073709551614 and …615 are the same number.
    pub fn bind_key(&mut self, v: Value, unsigned: bool) -> &mut Self {
        if unsigned && self.dialect == Dialect::MySql {
            return self.push("CAST(").bind(v).push(" AS UNSIGNED)");
        }
        self.bind(v)
    }

    /// Appends `col IN (…)` for `keys` that were read back from `col` itself (a batch's
    /// own keys, acted on by key): on SQLite one bound JSON array, split by SQLite —
    /// a numbered placeholder per key is quadratic in sqlx (it looks each up by name: a
    /// statement of 5,000 keys took twice as long per key as one of 1,000). Only for keys
    /// of `col` itself: a value from `json_each` has no affinity, so SQLite compares it
    /// with the column as it is, where a bound value takes the column's affinity — an
    /// integer key would not match a TEXT foreign-key column holding '42'. Elsewhere as
    /// [`Sql::key_list`].
    pub fn own_key_list(&mut self, col: &str, keys: &[Value], unsigned: bool) -> &mut Self {
        if self.dialect == Dialect::Sqlite {
            if let Some(json) = json_keys(keys) {
                self.push(col)
                    .push(" IN (SELECT value FROM json_each(")
                    .bind(Value::Text(json))
                    .push("))");
                return self;
            }
        }
        self.key_list(col, keys, unsigned)
    }

    /// Appends `col IN (…)` for `keys`, each bound as [`Sql::bind_key`] binds it
    /// (PostgreSQL: `col = ANY($n)` with one array; it has no unsigned keys).
    pub fn key_list(&mut self, col: &str, keys: &[Value], unsigned: bool) -> &mut Self {
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
            self.bind_key(k.clone(), unsigned);
        }
        self.push(")")
    }
}

/// `keys` as one JSON array, if every key is an integer or a text (the key types SQLite
/// tables use): integers as JSON numbers and texts as JSON strings, so `json_each` hands
/// each back with the type it was read with, and it compares as the bound value did.
fn json_keys(keys: &[Value]) -> Option<String> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        out.push(match k {
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Text(t) => serde_json::Value::from(t.as_str()),
            _ => return None,
        });
    }
    serde_json::to_string(&out).ok()
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

    /// Any column as text, whatever it stores (SQLite included, which would otherwise hand
    /// an INTEGER back as a number): what an access package shows the person.
    pub fn any_as_text(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST({col} AS TEXT)"),
            Dialect::Postgres | Dialect::MySql => self.text_select(col),
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

    /// Locks the rows a query reads, waiting for rows others hold (bounded by the session's
    /// lock timeout) instead of skipping them: for rows that must be acted on with the rows
    /// already locked (a record's children, a person's records), where skipping one would
    /// leave it unaudited or silently not erased.
    pub fn lock_all_suffix(self) -> &'static str {
        match self {
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
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

    /// Appends "`since` has expired at `cutoff`" for a column of `kind`. NULL never
    /// matches, and neither does a value that is not a real moment: it means "not set" as
    /// much as NULL does, and a record is kept rather than its age guessed at —
    /// PostgreSQL `-infinity`/`infinity`; MySQL/MariaDB zero dates (`0000-00-00`, a zero
    /// month or day as in `2020-00-00`, year 0, and days such as `2020-02-31` that
    /// `ALLOW_INVALID_DATES` lets in), which otherwise compare as long past; SQLite text
    /// whose date is not on the calendar. Each starts with a range on the column, so an
    /// index on it is used.
    pub fn push_expired(self, sql: &mut Sql, col: &str, kind: SinceKind, cutoff: &Cutoff) {
        let unix_local = cutoff.local.and_utc().timestamp();
        let unix_utc = cutoff.utc.timestamp();
        let bound = match kind {
            SinceKind::Date => Value::Date(cutoff.local.date()),
            SinceKind::Naive => Value::Naive(cutoff.local),
            SinceKind::Instant => Value::Instant(cutoff.utc),
            SinceKind::UnixSeconds => {
                // 0 (or less) in a seconds column is how schemas write "not set"
                // (`DEFAULT 0`), like a zero date: never expired.
                sql.push("(")
                    .push(col)
                    .push(" > 0 AND ")
                    .push(col)
                    .push(" <= ")
                    .bind(Value::Int(unix_utc))
                    .push(")");
                return;
            }
            SinceKind::SqliteAny => {
                push_sqlite_expired(sql, col, cutoff, unix_utc, unix_local);
                return;
            }
        };
        match self {
            Dialect::Postgres => {
                sql.push("(")
                    .push(col)
                    .push(" > '-infinity' AND ")
                    .push(col)
                    .push(" <= ")
                    .bind(bound)
                    .push(")");
            }
            Dialect::MySql => {
                // No warnings on zero dates (so none can turn into errors under a strict
                // sql_mode): MONTH and DAY of a zero date are 0, and LAST_DAY of a real
                // month is its real last day.
                sql.push("(")
                    .push(col)
                    .push(" >= '0001-01-01' AND ")
                    .push(col)
                    .push(" <= ")
                    .bind(bound)
                    .push(" AND MONTH(")
                    .push(col)
                    .push(") <> 0 AND DAY(")
                    .push(col)
                    .push(") BETWEEN 1 AND DAY(LAST_DAY(")
                    .push(col)
                    .push(")))");
            }
            // SQLite columns are always `SqliteAny`; a plain comparison is still right.
            Dialect::Sqlite => {
                sql.push(col).push(" <= ").bind(bound);
            }
        }
    }

    /// Appends "`col` holds exactly what the `hash` strategy writes": `prefix` followed by
    /// exactly `digits` lowercase hexadecimal digits, compared case-sensitively and whatever
    /// the column's collation — `anon-jane.doe@example.org` or an upper-case
    /// `ANON-0123…` is personal data still, not a hash. `prefix` holds letters, digits
    /// and `-` only (it is not escaped for the patterns).
    pub fn push_hashed(self, sql: &mut Sql, col: &str, prefix: &str, digits: usize) {
        debug_assert!(prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-'));
        match self {
            Dialect::Postgres => {
                // `COLLATE "C"`: a nondeterministic collation refuses regular expressions,
                // and `citext` would match without case.
                sql.push("CAST(")
                    .push(col)
                    .push(" AS TEXT) COLLATE \"C\" ~ ")
                    .bind(Value::Text(format!("^{prefix}[0-9a-f]{{{digits}}}$")));
            }
            Dialect::MySql => {
                // A binary collation makes REGEXP case-sensitive; the length rules out
                // a trailing newline, which `$` lets through.
                sql.push("(CHAR_LENGTH(")
                    .push(col)
                    .push(&format!(
                        ") = {} AND CONVERT(",
                        prefix.chars().count() + digits
                    ))
                    .push(col)
                    .push(" USING utf8mb4) COLLATE utf8mb4_bin REGEXP ")
                    .bind(Value::Text(format!("^{prefix}[0-9a-f]{{{digits}}}$")))
                    .push(")");
            }
            Dialect::Sqlite => {
                // GLOB is case-sensitive, and each `[…]` matches exactly one character.
                sql.push(col).push(" GLOB ").bind(Value::Text(format!(
                    "{prefix}{}",
                    "[0-9a-f]".repeat(digits)
                )));
            }
        }
    }

    /// Appends "`col` equals `value` exactly": same characters, same case, no padding
    /// ignored — whatever the column's collation (MariaDB's default ones ignore case and
    /// trailing spaces, so `REMOVED` would pass for `removed`).
    pub fn push_equals_exactly(self, sql: &mut Sql, col: &str, value: &str) {
        let v = Value::Text(value.to_owned());
        match self {
            Dialect::Postgres => {
                sql.push("CAST(")
                    .push(col)
                    .push(" AS TEXT) COLLATE \"C\" = ")
                    .bind(v);
            }
            Dialect::MySql => {
                // Both sides as utf8mb4 bytes (the connection's character set), so a
                // latin1 column compares by its characters, not its encoding.
                sql.push("CAST(CONVERT(")
                    .push(col)
                    .push(" USING utf8mb4) AS BINARY) = CAST(")
                    .bind(v)
                    .push(" AS BINARY)");
            }
            Dialect::Sqlite => {
                sql.push(col).push(" COLLATE BINARY = ").bind(v);
            }
        }
    }
}

/// The SQLite form of [`Dialect::push_expired`], where each row may hold text or a number.
fn push_sqlite_expired(sql: &mut Sql, col: &str, cutoff: &Cutoff, unix_utc: i64, unix_local: i64) {
    // Integers are unix seconds (absolute). Text with a zone is absolute too; text without
    // one is local wall time, compared as-if-UTC on both sides. Text that does not start
    // with an ISO date (`YYYY-MM-DD`) is never read as a time — not even the forms SQLite
    // would take (a bare time of day is 2000-01-01 to it, a number in text a Julian day):
    // such a record is kept, not guessed at. Neither is text SQLite cannot read (NULL never
    // matches), nor a date that is not on the calendar: year 0000, or a day SQLite would
    // roll over into the next month (`2020-02-31` is 2020-03-02 to it).
    //
    // The leading `col < bound` changes nothing about which records match: it lets SQLite
    // use an index on the column. Numbers sort before all text, and every ISO text that can
    // match starts with a date before `bound` (the latest matching wall time, in any zone
    // SQLite accepts, is under 15 hours past the cutoff).
    sql.push("(")
        .push(col)
        .push(" < ")
        .bind(Value::Text(sqlite_text_bound(cutoff)))
        .push(" AND CASE WHEN typeof(")
        .push(col)
        .push(") IN ('integer', 'real') THEN ")
        .push(col)
        .push(" > 0 AND ")
        .push(col)
        .push(" <= ")
        .bind(Value::Int(unix_utc))
        .push(" WHEN ")
        .push(col)
        .push(" NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' OR ")
        .push(col)
        .push(" GLOB '0000*' OR date(substr(")
        .push(col)
        .push(", 1, 10), '+0 days') IS NOT substr(")
        .push(col)
        .push(", 1, 10) THEN 0 WHEN ")
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
    fn unsigned_mysql_keys_are_bound_back_as_unsigned_integers() {
        let keys = [Value::Text("18446744073709551615".into())];
        let mut s = Sql::new(Dialect::MySql);
        s.key_list("id", &keys, true);
        assert_eq!(s.text, "id IN (CAST(? AS UNSIGNED))");
        let mut s = Sql::new(Dialect::Sqlite);
        s.key_list("id", &keys, true);
        assert_eq!(s.text, "id IN (?1)", "only MySQL has unsigned keys");
    }

    #[test]
    fn the_hashed_shape_is_tested_exactly_and_case_sensitively() {
        let mut s = Sql::new(Dialect::Sqlite);
        Dialect::Sqlite.push_hashed(&mut s, "c", "anon-", 2);
        assert_eq!(s.text, "c GLOB ?1");
        assert_eq!(s.binds, [Value::Text("anon-[0-9a-f][0-9a-f]".into())]);
        let mut s = Sql::new(Dialect::Postgres);
        Dialect::Postgres.push_hashed(&mut s, "c", "anon-", 16);
        assert_eq!(s.binds, [Value::Text("^anon-[0-9a-f]{16}$".into())]);
        let mut s = Sql::new(Dialect::MySql);
        Dialect::MySql.push_hashed(&mut s, "c", "anon-", 16);
        assert!(
            s.text.starts_with("(CHAR_LENGTH(c) = 21 AND "),
            "{}",
            s.text
        );
        assert!(
            s.text.contains("COLLATE utf8mb4_bin REGEXP ?"),
            "{}",
            s.text
        );
    }

    #[test]
    fn sqlite_key_lists_keep_each_keys_type_and_text_exactly() {
        let keys = [
            Value::Int(-7),
            Value::Text("42".into()),
            Value::Text("o'brien \"x\" \u{1F600}".into()),
        ];
        let mut s = Sql::new(Dialect::Sqlite);
        s.own_key_list("k", &keys, false);
        let Value::Text(json) = &s.binds[0] else {
            panic!("not one JSON text: {:?}", s.binds);
        };
        let back: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
        assert_eq!(back[0], serde_json::json!(-7), "an integer stays a number");
        assert_eq!(back[1], serde_json::json!("42"), "a text stays a text");
        assert_eq!(back[2], serde_json::json!("o'brien \"x\" \u{1F600}"));
        // Other key types are bound one by one, as before.
        let mut s = Sql::new(Dialect::Sqlite);
        s.own_key_list("k", &[Value::Bool(true)], false);
        assert_eq!(s.text, "k IN (?1)");
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
        // A batch's own keys: one JSON array (numbered placeholders are quadratic in sqlx).
        let mut s = Sql::new(Dialect::Sqlite);
        s.own_key_list("id", &keys, false);
        assert_eq!(s.text, "id IN (SELECT value FROM json_each(?1))");
        assert_eq!(s.binds, [Value::Text("[1,2]".into())]);
        let mut s = Sql::new(Dialect::Postgres);
        s.in_list("id", &keys);
        assert_eq!((s.text.as_str(), s.binds.len()), ("id = ANY($1)", 1));
    }
}

//! What the database says about a rule's or a subject's table: which columns exist, their
//! types, which are unique. Rules and `[[subject]]`s are checked against it before anything
//! runs, by the same helpers (a key, a column, an anonymized column are judged alike); a
//! mismatch is a config error pinned to the line of the offending key.

use super::{Db, DbError, Dialect, KeyKind, SinceKind, Sql, Value};
use crate::config::{Action, Erase, Find, FlagValue, Ident, Rule, Strategy, Subject, TableName};
use std::collections::HashMap;

/// A column type, reduced to what retentiond cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColClass {
    /// Integer types.
    Int,
    /// Character types.
    Text,
    /// `DATE`.
    Date,
    /// `TIMESTAMP WITHOUT TIME ZONE`, MySQL `DATETIME`.
    Naive,
    /// `TIMESTAMPTZ`, MySQL `TIMESTAMP`.
    Instant,
    /// PostgreSQL `boolean`, SQLite a declared `BOOLEAN` (MySQL's `BOOLEAN` is `TINYINT`,
    /// an integer).
    Bool,
    /// Anything else (SQLite: no declared type, or one without a known affinity).
    Other,
}

/// One column of a table.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its name as the catalog spells it.
    pub name: String,
    /// Its declared type, for messages.
    pub data_type: String,
    /// Its class.
    pub class: ColClass,
    /// Whether NULL may be stored.
    pub nullable: bool,
    /// MySQL/MariaDB: an `… UNSIGNED` integer, whose values may not fit an `i64`.
    pub unsigned: bool,
    /// SQLite: part of the primary key. SQLite lets NULL into such a column unless it is
    /// declared NOT NULL (a legacy of its early versions), so `nullable` is true for it;
    /// whether a key column really holds NULL is read from its data (see
    /// [`sqlite_key_types`]).
    pub sqlite_primary_key: bool,
}

/// A table's columns and its single-column unique keys.
#[derive(Debug, Clone)]
pub struct TableShape {
    /// The columns.
    pub columns: Vec<Column>,
    /// Columns that alone form a primary key or unique index (without a predicate).
    pub unique: Vec<String>,
}

/// How a rule maps onto its table, as established by [`check_rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleShape {
    /// How keys are read and bound.
    pub key: KeyKind,
    /// How `since` is compared.
    pub since: SinceKind,
    /// The key is a MySQL/MariaDB `… UNSIGNED` integer: read as decimal text (`key` is
    /// [`KeyKind::Text`]) and bound back with [`Sql::bind_key`], so values above 2^63 are
    /// read, audited and matched exactly.
    pub key_unsigned: bool,
    /// For a `flag` on a boolean column: the value as a boolean, bound as one (PostgreSQL
    /// compares and stores neither an integer nor a text in a `boolean` column).
    pub flag_bool: Option<bool>,
}

/// A mismatch between a rule and its table: which rule key, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    /// The rule's config key (`table`, `key`, `expires.since`, …).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
    /// The config line, when it is not the rule's own (a hold's filter, say).
    pub line: Option<usize>,
}

/// How a time column of `shape` compares, or why it cannot be used as one.
pub fn since_kind(
    shape: &TableShape,
    dialect: Dialect,
    col: &Ident,
    table: &TableName,
) -> Result<SinceKind, String> {
    let Some(c) = shape.column(dialect, col) else {
        return Err(format!("column '{col}' does not exist in table '{table}'"));
    };
    match (dialect, c.class) {
        (Dialect::Sqlite, _) => Ok(SinceKind::SqliteAny),
        (_, ColClass::Date) => Ok(SinceKind::Date),
        (_, ColClass::Naive) => Ok(SinceKind::Naive),
        (_, ColClass::Instant) => Ok(SinceKind::Instant),
        (_, ColClass::Int) => Ok(SinceKind::UnixSeconds),
        _ => Err(format!(
            "column '{col}' has type {}, not a date or time; name a DATE/TIMESTAMP column (or integer unix seconds)",
            c.data_type
        )),
    }
}

/// Whether `shape` has a column named `col`.
pub fn has_column(shape: &TableShape, dialect: Dialect, col: &Ident) -> bool {
    shape.column(dialect, col).is_some()
}

impl TableShape {
    fn column(&self, dialect: Dialect, name: &Ident) -> Option<&Column> {
        self.columns.iter().find(|c| match dialect {
            Dialect::Postgres => c.name == name.as_str(),
            Dialect::MySql | Dialect::Sqlite => c.name.eq_ignore_ascii_case(name.as_str()),
        })
    }

    fn is_unique(&self, dialect: Dialect, name: &Ident) -> bool {
        self.unique.iter().any(|u| match dialect {
            Dialect::Postgres => u == name.as_str(),
            Dialect::MySql | Dialect::Sqlite => u.eq_ignore_ascii_case(name.as_str()),
        })
    }
}

fn classify(dialect: Dialect, data_type: &str) -> ColClass {
    let t = data_type.to_ascii_lowercase();
    match dialect {
        Dialect::Postgres => match t.as_str() {
            "smallint" | "integer" | "bigint" => ColClass::Int,
            "boolean" => ColClass::Bool,
            "text" | "character varying" | "character" | "citext" => ColClass::Text,
            "date" => ColClass::Date,
            "timestamp without time zone" => ColClass::Naive,
            "timestamp with time zone" => ColClass::Instant,
            _ => ColClass::Other,
        },
        Dialect::MySql => match t.trim_end_matches(" unsigned") {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => ColClass::Int,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => ColClass::Text,
            "date" => ColClass::Date,
            "datetime" => ColClass::Naive,
            "timestamp" => ColClass::Instant,
            _ => ColClass::Other,
        },
        // SQLite's affinity rules (https://sqlite.org/datatype3.html, 3.1).
        Dialect::Sqlite if t.contains("int") => ColClass::Int,
        // NUMERIC affinity to SQLite; a boolean to whoever declared it.
        Dialect::Sqlite if t.contains("bool") => ColClass::Bool,
        Dialect::Sqlite if t.contains("char") || t.contains("clob") || t.contains("text") => {
            ColClass::Text
        }
        Dialect::Sqlite => ColClass::Other,
    }
}

/// Reads the shape of `table`, or `None` if it does not exist (or is not visible to the
/// connection's user).
pub async fn describe(db: &Db, table: &TableName) -> Result<Option<TableShape>, DbError> {
    let d = db.dialect;
    let mut cols = Sql::new(d);
    let mut uniq = Sql::new(d);
    let name = Value::Text(table.name.as_str().to_owned());
    match d {
        Dialect::Postgres => {
            cols.push("SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns WHERE table_name = ")
                .bind(name)
                .push(" AND table_schema = ");
            match &table.schema {
                Some(s) => cols.bind(Value::Text(s.as_str().to_owned())),
                None => cols.push("current_schema()"),
            };
            uniq.push("SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass(")
                .bind(Value::Text(d.table(table)))
                .push(") AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL");
        }
        Dialect::MySql => {
            let schema = |s: &mut Sql| match &table.schema {
                Some(x) => {
                    s.bind(Value::Text(x.as_str().to_owned()));
                }
                None => {
                    s.push("DATABASE()");
                }
            };
            // `data_type` says `bigint` for `BIGINT UNSIGNED` too; `column_type` tells.
            cols.push("SELECT CAST(column_name AS CHAR), CAST(CONCAT(data_type, IF(column_type LIKE '%unsigned%', ' unsigned', '')) AS CHAR), CAST(is_nullable AS CHAR) FROM information_schema.columns WHERE table_name = ")
                .bind(name.clone())
                .push(" AND table_schema = ");
            schema(&mut cols);
            uniq.push("SELECT CAST(MAX(column_name) AS CHAR) FROM information_schema.statistics WHERE non_unique = 0 AND table_name = ")
                .bind(name)
                .push(" AND table_schema = ");
            schema(&mut uniq);
            uniq.push(" GROUP BY index_name HAVING COUNT(*) = 1");
        }
        Dialect::Sqlite => {
            let schema = Value::Text(
                table
                    .schema
                    .as_ref()
                    .map_or("main", |s| s.as_str())
                    .to_owned(),
            );
            cols.push("SELECT name, type, CASE WHEN \"notnull\" = 1 THEN 'NO' ELSE 'YES' END, CASE WHEN pk > 0 THEN 'PK' ELSE '' END FROM pragma_table_info(")
                .bind(name.clone())
                .push(", ")
                .bind(schema.clone())
                .push(")");
            uniq.push("SELECT name FROM pragma_table_info(")
                .bind(name.clone())
                .push(", ")
                .bind(schema.clone())
                .push(") WHERE pk > 0 AND (SELECT COUNT(*) FROM pragma_table_info(")
                .bind(name.clone())
                .push(", ")
                .bind(schema.clone())
                .push(") WHERE pk > 0) = 1 UNION SELECT MAX(ii.name) FROM pragma_index_list(")
                .bind(name)
                .push(", ")
                .bind(schema)
                .push(") il, pragma_index_info(il.name) ii WHERE il.\"unique\" = 1 AND il.partial = 0 GROUP BY il.name HAVING COUNT(*) = 1");
        }
    }
    let rows = db.fetch_texts(&cols).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let columns = rows
        .into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            let data_type = get(1);
            Column {
                name: get(0),
                class: classify(d, &data_type),
                unsigned: d == Dialect::MySql && data_type.ends_with(" unsigned"),
                sqlite_primary_key: d == Dialect::Sqlite && get(3) == "PK",
                data_type,
                nullable: get(2) != "NO",
            }
        })
        .collect();
    let unique = db
        .fetch_texts(&uniq)
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    Ok(Some(TableShape { columns, unique }))
}

/// Checks that `rule` fits `shape` (`None`: the table is missing): every column exists,
/// the key is unique and readable, `since` is a time, and the action's values fit their
/// columns. Returns every problem found.
pub fn check_rule(
    rule: &Rule,
    shape: Option<&TableShape>,
    dialect: Dialect,
    database: &str,
) -> Result<RuleShape, Vec<SchemaProblem>> {
    let Some(shape) = shape else {
        return Err(vec![missing_table(&rule.table, database)]);
    };
    let on = On {
        shape,
        dialect,
        table: &rule.table,
        database,
    };
    let mut problems = Vec::new();
    let key_col = on.column(&rule.key, "key", &mut problems);
    let key_unsigned = key_col.is_some_and(|c| c.unsigned);
    let since_col = on.column(&rule.since, "expires.since", &mut problems);
    let key = key_col.and_then(|c| on.key_kind(c, &rule.key, &mut problems));
    let since = since_col.and_then(|_| {
        since_kind(shape, dialect, &rule.since, &rule.table)
            .map_err(|m| problems.push(problem("expires.since", m)))
            .ok()
    });
    let mut flag_bool = None;
    match &rule.action {
        Action::Delete => {}
        Action::Anonymize(list) => on.anonymized(list, &mut problems),
        Action::Flag { column, value } => {
            if let Some(c) = on.column(column, "flag.column", &mut problems) {
                flag_bool = flag_fits(c, value, dialect, &mut problems);
            }
        }
    }
    match (key, since, problems.is_empty()) {
        (Some(key), Some(since), true) => Ok(RuleShape {
            key,
            since,
            key_unsigned,
            flag_bool,
        }),
        _ => Err(problems),
    }
}

/// How a `[[subject]]` maps onto its table, as established by [`check_subject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectShape {
    /// How keys are read and bound.
    pub key: KeyKind,
    /// The key is a MySQL/MariaDB `… UNSIGNED` integer (see [`RuleShape::key_unsigned`]).
    pub key_unsigned: bool,
    /// The class of the key column, to compare with the `foreign_key` of subjects reached
    /// through this one.
    pub key_class: ColClass,
    /// The class of the `via.foreign_key` column (`None` for a subject found by
    /// `identify`).
    pub foreign_key_class: Option<ColClass>,
}

/// Checks that `subject` fits `shape` (`None`: the table is missing), by the same measure
/// as [`check_rule`]: the key exists, is unique, NOT NULL and readable; every `identify`
/// column and the `via.foreign_key` exist; the anonymized columns take what their strategy
/// writes. Problems name the subject's config keys (`identify.email`, `via.foreign_key`).
pub fn check_subject(
    subject: &Subject,
    shape: Option<&TableShape>,
    dialect: Dialect,
    database: &str,
) -> Result<SubjectShape, Vec<SchemaProblem>> {
    let Some(shape) = shape else {
        return Err(vec![missing_table(&subject.table, database)]);
    };
    let on = On {
        shape,
        dialect,
        table: &subject.table,
        database,
    };
    let mut problems = Vec::new();
    let key_col = on.column(&subject.key, "key", &mut problems);
    let key = key_col.and_then(|c| on.key_kind(c, &subject.key, &mut problems));
    let mut foreign_key_class = None;
    match &subject.find {
        Find::Identify(attrs) => {
            for (attr, col) in attrs {
                on.column(col, &format!("identify.{attr}"), &mut problems);
            }
        }
        Find::Via { foreign_key, .. } => {
            foreign_key_class = on
                .column(foreign_key, "via.foreign_key", &mut problems)
                .map(|c| c.class);
        }
    }
    if let Erase::Anonymize(list) = &subject.erase {
        on.anonymized(list, &mut problems);
    }
    match (key, key_col, problems.is_empty()) {
        (Some(key), Some(c), true) => Ok(SubjectShape {
            key,
            key_unsigned: c.unsigned,
            key_class: c.class,
            foreign_key_class,
        }),
        _ => Err(problems),
    }
}

fn problem(key: &str, message: String) -> SchemaProblem {
    SchemaProblem {
        key: key.to_owned(),
        message,
        line: None,
    }
}

/// How a rule's `children` entry maps onto its table, as established by [`check_child`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildShape {
    /// How its keys are read and bound.
    pub key: KeyKind,
    /// The key is a MySQL/MariaDB `… UNSIGNED` integer.
    pub key_unsigned: bool,
    /// For an anonymizing rule: its strategies for the columns this table has (a child row
    /// is anonymized where it holds the same kind of data; its other columns stay).
    pub anonymized: Vec<(Ident, Strategy)>,
}

/// Checks a rule's `children` entry against its table: the key (unique, NOT NULL,
/// readable) and the foreign key exist; for an anonymizing rule, the rule's strategies
/// fit the columns of the same name this table has. Problems name `children[i].…`.
pub fn check_child(
    child: &crate::config::Child,
    shape: Option<&TableShape>,
    dialect: Dialect,
    database: &str,
    anonymize: Option<&[(Ident, Strategy)]>,
) -> Result<ChildShape, Vec<SchemaProblem>> {
    let prefixed = |problems: Vec<SchemaProblem>| {
        problems
            .into_iter()
            .map(|p| SchemaProblem {
                key: format!("{}.{}", child.path, p.key),
                ..p
            })
            .collect::<Vec<_>>()
    };
    let Some(shape) = shape else {
        return Err(prefixed(vec![missing_table(&child.table, database)]));
    };
    let on = On {
        shape,
        dialect,
        table: &child.table,
        database,
    };
    let mut problems = Vec::new();
    let key_col = on.column(&child.key, "key", &mut problems);
    let key = key_col.and_then(|c| on.key_kind(c, &child.key, &mut problems));
    on.column(&child.foreign_key, "foreign_key", &mut problems);
    let anonymized: Vec<(Ident, Strategy)> = anonymize
        .unwrap_or_default()
        .iter()
        .filter(|(c, _)| shape.column(dialect, c).is_some() && *c != child.key)
        .cloned()
        .collect();
    on.anonymized(&anonymized, &mut problems);
    match (key, key_col, problems.is_empty()) {
        (Some(key), Some(c), true) => Ok(ChildShape {
            key,
            key_unsigned: c.unsigned,
            anonymized,
        }),
        _ => Err(prefixed(problems)),
    }
}

/// The problem of a table that does not exist, at config key `table`.
fn missing_table(table: &TableName, database: &str) -> SchemaProblem {
    problem(
        "table",
        format!(
            "table '{table}' does not exist in database '{database}' (or the connection's user cannot see it); check the name and the grants"
        ),
    )
}

/// One table as the checks of rules and subjects see it: what they share, so that both
/// judge a key, a column and an anonymized column by the same measure.
struct On<'a> {
    shape: &'a TableShape,
    dialect: Dialect,
    table: &'a TableName,
    database: &'a str,
}

impl<'a> On<'a> {
    /// The column `name`, or a problem at config key `key` listing the columns there are.
    fn column(
        &self,
        name: &Ident,
        key: &str,
        problems: &mut Vec<SchemaProblem>,
    ) -> Option<&'a Column> {
        let c = self.shape.column(self.dialect, name);
        if c.is_none() {
            problems.push(problem(
                key,
                format!(
                    "column '{name}' does not exist in table '{}' of database '{}'; it has: {}",
                    self.table,
                    self.database,
                    self.shape
                        .columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        c
    }

    /// How the key column `c` (named `key`) is read, or `None` with the problems that
    /// keep it from naming exactly one record: not unique, NULL allowed, a type retentiond
    /// cannot read as a key.
    fn key_kind(
        &self,
        c: &Column,
        key: &Ident,
        problems: &mut Vec<SchemaProblem>,
    ) -> Option<KeyKind> {
        if !self.shape.is_unique(self.dialect, key) {
            problems.push(problem("key", format!(
                "column '{key}' is not unique in table '{}' (no primary key or unique index on it alone); a key must name exactly one record — use the primary key",
                self.table
            )));
        }
        if c.nullable && !c.sqlite_primary_key {
            problems.push(problem("key", format!(
                "key column '{key}' allows NULL: rows with a NULL key cannot be audited; declare it NOT NULL or choose another key"
            )));
        }
        match (c.class, self.dialect) {
            // Read as decimal text: `CAST(… AS SIGNED)` turns 2^64 - 1 into -1.
            (ColClass::Int, Dialect::MySql) if c.unsigned => Some(KeyKind::Text),
            (ColClass::Int, _) => Some(KeyKind::Int),
            (ColClass::Text, _) | (ColClass::Other, Dialect::Sqlite) => Some(KeyKind::Text),
            _ => {
                problems.push(problem("key", format!(
                    "column '{key}' has type {}, which retentiond cannot use as a key yet; use an integer or text key", c.data_type
                )));
                None
            }
        }
    }

    /// Every anonymized column exists and takes what its strategy writes: NULL into a
    /// nullable column, a hash or a replacement text into a text column. Problems at
    /// `anonymize.COLUMN`.
    fn anonymized(&self, list: &[(Ident, Strategy)], problems: &mut Vec<SchemaProblem>) {
        for (name, strategy) in list {
            let key = format!("anonymize.{name}");
            let Some(c) = self.column(name, &key, problems) else {
                continue;
            };
            match strategy {
                Strategy::Null if !c.nullable => problems.push(problem(&key, format!(
                    "column '{}' is NOT NULL, so it cannot be set to null; use {{ replace = \"…\" }} instead", c.name
                ))),
                Strategy::Replace(_) | Strategy::Hash if !text_ok(c, self.dialect) => problems.push(problem(&key, format!(
                    "column '{}' has type {}; \"hash\" and replace work on text columns only", c.name, c.data_type
                ))),
                _ => {}
            }
        }
    }
}

/// Whether `c` takes a text value (SQLite: also a column without a declared type).
fn text_ok(c: &Column, dialect: Dialect) -> bool {
    matches!(c.class, ColClass::Text) || (dialect == Dialect::Sqlite && c.class == ColClass::Other)
}

/// Whether a flag `value` fits the column `c`: for a boolean column, the value as a
/// boolean (see [`RuleShape::flag_bool`]); problems at `flag.value`.
fn flag_fits(
    c: &Column,
    value: &FlagValue,
    dialect: Dialect,
    problems: &mut Vec<SchemaProblem>,
) -> Option<bool> {
    match value {
        v if c.class == ColClass::Bool => match bool_flag(v) {
            Some(b) => return Some(b),
            None => problems.push(problem(
                "flag.value",
                format!(
                    "column '{}' has type {}; give value = true or value = false",
                    c.name, c.data_type
                ),
            )),
        },
        FlagValue::Text(_) if !text_ok(c, dialect) => problems.push(problem(
            "flag.value",
            format!(
                "column '{}' has type {}; give an integer value or flag a text column",
                c.name, c.data_type
            ),
        )),
        FlagValue::Int(_)
            if c.class != ColClass::Int
                && !(dialect == Dialect::Sqlite && c.class == ColClass::Other) =>
        {
            problems.push(problem(
                "flag.value",
                format!(
                    "column '{}' has type {}; give a text value or flag an integer column",
                    c.name, c.data_type
                ),
            ))
        }
        _ => {}
    }
    None
}

/// A flag value for a boolean column: TOML `true`/`false` (which the config reads as 1 and
/// 0), or the text `"true"`/`"false"`. Anything else is refused rather than guessed at.
fn bool_flag(v: &FlagValue) -> Option<bool> {
    match v {
        FlagValue::Int(0) => Some(false),
        FlagValue::Int(1) => Some(true),
        FlagValue::Text(t) if t.eq_ignore_ascii_case("true") => Some(true),
        FlagValue::Text(t) if t.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The smallest and largest number in `col` of `table` (SQLite: among the rows that hold
/// a number), or `None` if there is none. For judging what unit an integer time column is
/// in; read as text, so that no integer type overflows on the way.
pub async fn numeric_range(
    db: &Db,
    table: &TableName,
    col: &Ident,
) -> Result<Option<(f64, f64)>, DbError> {
    let d = db.dialect;
    let c = d.ident(col);
    // `text_select` leaves SQLite values as they are; these must arrive as text.
    let text = |e: String| match d {
        Dialect::MySql => format!("CAST({e} AS CHAR)"),
        Dialect::Postgres | Dialect::Sqlite => format!("CAST({e} AS TEXT)"),
    };
    let mut sql = Sql::new(d);
    sql.push("SELECT ")
        .push(&text(format!("MIN({c})")))
        .push(", ")
        .push(&text(format!("MAX({c})")))
        .push(" FROM ")
        .push(&d.table(table));
    if d == Dialect::Sqlite {
        sql.push(&format!(" WHERE typeof({c}) IN ('integer', 'real')"));
    }
    let rows = db.fetch_texts(&sql).await?;
    let get = |i: usize| {
        rows.first()
            .and_then(|r| r.get(i).cloned().flatten())
            .and_then(|t| t.trim().parse::<f64>().ok())
    };
    Ok(get(0).zip(get(1)))
}

/// SQLite: how many rows hold a key of another storage class than `kind` reads (text in
/// an integer key, a number in a text key, NULL), per class. SQLite stores what it is given
/// whatever the declared type, so only the data can tell.
pub async fn sqlite_key_types(
    db: &Db,
    table: &TableName,
    key: &Ident,
    kind: KeyKind,
) -> Result<Vec<(String, u64)>, DbError> {
    let c = db.dialect.ident(key);
    let expected = match kind {
        KeyKind::Int => "integer",
        KeyKind::Text => "text",
    };
    let mut sql = Sql::new(db.dialect);
    sql.push(&format!("SELECT typeof({c}), CAST(COUNT(*) AS TEXT) FROM "))
        .push(&db.dialect.table(table))
        .push(&format!(" WHERE typeof({c}) <> "))
        .bind(Value::Text(expected.to_owned()))
        .push(&format!(" GROUP BY typeof({c}) ORDER BY 1"));
    Ok(db
        .fetch_texts(&sql)
        .await?
        .into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            (get(0), get(1).parse().unwrap_or(0))
        })
        .collect())
}

/// SQLite: why the key column `key` of `table` cannot be used, read from its data (see
/// [`sqlite_key_types`]): values of another storage class than `kind` reads, or NULL. `None`
/// when every key is of the one class.
pub async fn sqlite_key_problem(
    db: &Db,
    table: &TableName,
    key: &Ident,
    kind: KeyKind,
) -> Result<Option<String>, DbError> {
    let found = sqlite_key_types(db, table, key, kind).await?;
    Ok((!found.is_empty()).then(|| sqlite_key_message(key, kind, &found)))
}

/// Why an SQLite key column cannot be used, from the storage classes found in it that
/// `kind` does not read (with their row counts).
fn sqlite_key_message(key: &Ident, kind: KeyKind, found: &[(String, u64)]) -> String {
    let rows = |n: u64| format!("{n} row{}", if n == 1 { "" } else { "s" });
    if let [(class, n)] = found {
        if class == "null" {
            return format!(
                "key column '{key}' allows NULL (SQLite lets NULL into a PRIMARY KEY that is not declared NOT NULL), and {} hold it: rows with a NULL key cannot be audited; declare it NOT NULL or choose another key",
                rows(*n)
            );
        }
    }
    let expected = match kind {
        KeyKind::Int => "integer",
        KeyKind::Text => "text",
    };
    let list = found
        .iter()
        .map(|(class, n)| format!("{class}: {}", rows(*n)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "key column '{key}' is read as {expected} (from its declared type), but it also holds other values ({list}): SQLite stores what it is given whatever the declared type, and a key of mixed types cannot be read, ordered and matched exactly; make every key one type (and NOT NULL) or choose another key"
    )
}

/// Table shapes, asked of the catalog once each: `prepare` checks many rules and subjects
/// on a few tables, and asking again for each made `check` take minutes.
#[derive(Debug, Default)]
pub struct Shapes(HashMap<(String, String), Option<TableShape>>);

impl Shapes {
    /// The shape of `table` in `db` (see [`describe`]), from the catalog the first time.
    pub async fn describe(
        &mut self,
        db: &Db,
        table: &TableName,
    ) -> Result<Option<TableShape>, DbError> {
        let k = (db.name.clone(), table.to_string());
        if let Some(shape) = self.0.get(&k) {
            return Ok(shape.clone());
        }
        let shape = describe(db, table).await?;
        self.0.insert(k, shape.clone());
        Ok(shape)
    }
}

/// A foreign key in another table that points at a rule's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignRef {
    /// The referencing table.
    pub table: String,
    /// Its referencing column.
    pub column: String,
    /// What the database does to referencing rows on delete, in words.
    pub on_delete: String,
    /// Whether deleting a referenced record changes the referencing rows by itself
    /// (`CASCADE`, `SET NULL`, `SET DEFAULT`): an action the audit trail would not see.
    pub changes_rows: bool,
}

fn on_delete_words(rule: &str) -> String {
    match rule.to_ascii_uppercase().as_str() {
        "C" | "CASCADE" => "ON DELETE CASCADE: its rows are deleted along with the record".into(),
        "N" | "SET NULL" => "ON DELETE SET NULL: its reference is cleared".into(),
        "D" | "SET DEFAULT" => "ON DELETE SET DEFAULT: its reference is reset".into(),
        "R" | "RESTRICT" | "A" | "NO ACTION" => "ON DELETE RESTRICT/NO ACTION: a referenced record cannot be deleted, so its batch fails".into(),
        other => format!("ON DELETE {other}"),
    }
}

/// Foreign keys in other tables (or this one) that reference `table`.
pub async fn referencing(db: &Db, table: &TableName) -> Result<Vec<ForeignRef>, DbError> {
    let d = db.dialect;
    let mut sql = Sql::new(d);
    let name = Value::Text(table.name.as_str().to_owned());
    match d {
        Dialect::Postgres => {
            sql.push("SELECT cl.relname::text, a.attname::text, c.confdeltype::text FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] WHERE c.contype = 'f' AND c.confrelid = to_regclass(")
                .bind(Value::Text(d.table(table)))
                .push(")");
        }
        Dialect::MySql => {
            sql.push("SELECT CAST(k.table_name AS CHAR), CAST(k.column_name AS CHAR), CAST(r.delete_rule AS CHAR) FROM information_schema.key_column_usage k JOIN information_schema.referential_constraints r ON r.constraint_schema = k.constraint_schema AND r.constraint_name = k.constraint_name WHERE k.referenced_table_name = ")
                .bind(name)
                .push(" AND k.referenced_table_schema = ");
            match &table.schema {
                Some(s) => sql.bind(Value::Text(s.as_str().to_owned())),
                None => sql.push("DATABASE()"),
            };
        }
        Dialect::Sqlite => {
            sql.push("SELECT m.name, f.\"from\", f.on_delete FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table' AND f.\"table\" = ")
                .bind(name)
                .push(" COLLATE NOCASE");
        }
    }
    Ok(db
        .fetch_texts(&sql)
        .await?
        .into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            let rule = get(2).to_ascii_uppercase();
            ForeignRef {
                table: get(0),
                column: get(1),
                on_delete: on_delete_words(&rule),
                changes_rows: matches!(
                    rule.as_str(),
                    "C" | "CASCADE" | "N" | "SET NULL" | "D" | "SET DEFAULT"
                ),
            }
        })
        .collect())
}

//! The statements that act on rows, shared by everything that acts — rules, their
//! `children`, data-subject erasures — so that all of them anonymize alike and are checked
//! alike.

use super::hasher::{is_hashed, Hasher};
use crate::config::{Ident, Strategy};
use crate::db::{Dialect, Record, Sql, Value};

/// A statement that acts on rows, and how many it must change (`None`: an anonymization
/// of child rows, whose row count some databases give as rows changed, not matched).
pub type Act = (Sql, Option<u64>);

/// The most records one statement lists. A batch larger than this is acted on by several
/// statements in its one transaction: each stays far below the placeholders a driver
/// allows (SQLite 32,766, MariaDB 65,535, PostgreSQL 65,535 arguments) whatever
/// `batch_size` or `batch_time` makes of the batch, and a hash anonymization's `CASE`
/// (one arm per record, which the database walks for every row) stays linear in the
/// batch instead of quadratic.
pub(super) const RECORDS_PER_STATEMENT: usize = 1000;

/// The placeholders one statement binds at most, on every dialect: below SQLite's 32,766
/// with room for the few a statement binds once (`replace` values, a flag).
const PLACEHOLDER_BUDGET: usize = 30_000;

/// What a statement does to the rows it lists.
pub(super) enum Change<'a> {
    /// `DELETE`.
    Delete,
    /// `UPDATE … SET column = value` (a flag).
    Set(&'a Ident, Value),
    /// `UPDATE … SET` each column to its strategy's value.
    Anonymize(&'a [(Ident, Strategy)]),
}

/// How many records one statement of `change` lists: [`RECORDS_PER_STATEMENT`], fewer
/// when each record binds more than its key (a hashed column binds two per record).
fn records_per_statement(change: &Change<'_>) -> usize {
    let hashed = match change {
        Change::Anonymize(cols) => cols.iter().filter(|(_, s)| *s == Strategy::Hash).count(),
        Change::Delete | Change::Set(..) => 0,
    };
    (PLACEHOLDER_BUDGET / (1 + 2 * hashed)).clamp(1, RECORDS_PER_STATEMENT)
}

/// The statements that apply `change` to exactly `records` of `table` (keyed by `key`),
/// in order, each with the number of records it lists. Run one after the other in the
/// same transaction, they are one act on the batch; see [`RECORDS_PER_STATEMENT`].
pub(super) fn act_statements(
    d: Dialect,
    table: &str,
    key: &str,
    key_unsigned: bool,
    change: &Change<'_>,
    records: &[Record],
    hasher: Option<&Hasher>,
) -> Result<Vec<(Sql, usize)>, String> {
    let mut out = Vec::new();
    for chunk in records.chunks(records_per_statement(change)) {
        let mut sql = Sql::new(d);
        match change {
            Change::Delete => {
                sql.push("DELETE FROM ").push(table);
            }
            Change::Set(column, value) => {
                sql.push("UPDATE ")
                    .push(table)
                    .push(" SET ")
                    .push(&d.ident(column))
                    .push(" = ")
                    .bind(value.clone());
            }
            Change::Anonymize(cols) => {
                sql.push("UPDATE ").push(table).push(" SET ");
                push_anonymized(&mut sql, key, key_unsigned, cols, chunk, hasher)?;
            }
        }
        let keys: Vec<Value> = chunk.iter().map(|r| r.key.value()).collect();
        // The batch's own keys, read from `key` itself (see `Sql::own_key_list`).
        sql.push(" WHERE ").own_key_list(key, &keys, key_unsigned);
        out.push((sql, chunk.len()));
    }
    Ok(out)
}

/// The `SET` list of an anonymization of exactly `records`: each column to its strategy's
/// value. `hash` hashes each record's value (read with the batch, in column order, into
/// `Record::texts`), keeps NULL as NULL, and never hashes a value twice. Shared by rules
/// and data-subject erasures, so both anonymize alike.
pub(super) fn push_anonymized(
    sql: &mut Sql,
    key: &str,
    key_unsigned: bool,
    cols: &[(Ident, Strategy)],
    records: &[Record],
    hasher: Option<&Hasher>,
) -> Result<(), String> {
    let d = sql.dialect();
    let mut hashed = 0;
    for (i, (col, strategy)) in cols.iter().enumerate() {
        let c = d.ident(col);
        if i > 0 {
            sql.push(", ");
        }
        sql.push(&c).push(" = ");
        match strategy {
            Strategy::Null => {
                sql.push("NULL");
            }
            Strategy::Replace(v) => {
                sql.bind(Value::Text(v.clone()));
            }
            Strategy::Hash => {
                let hasher = hasher.ok_or("internal: a hash strategy ran without its key")?;
                // NULL stays NULL, and a value already hashed (the matcher's own test) is
                // kept, not hashed twice.
                let to_hash: Vec<(&Record, &String)> = records
                    .iter()
                    .filter_map(|r| match r.texts.get(hashed) {
                        Some(Some(v)) if !is_hashed(v) => Some((r, v)),
                        _ => None,
                    })
                    .collect();
                if to_hash.is_empty() {
                    // A CASE needs a WHEN; the column stays as it is.
                    sql.push(&c);
                } else {
                    sql.push("CASE ").push(key);
                    for (r, v) in to_hash {
                        sql.push(" WHEN ")
                            .bind_key(r.key.value(), key_unsigned)
                            .push(" THEN ")
                            .bind(Value::Text(hasher.hash(v)));
                    }
                    sql.push(" ELSE ").push(&c).push(" END");
                }
                hashed += 1;
            }
        }
    }
    Ok(())
}

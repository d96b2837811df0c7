//! The statements that act on rows, shared by everything that acts — rules, their
//! `children`, data-subject erasures — so that all of them anonymize alike and are checked
//! alike.

use super::hasher::{is_hashed, Hasher};
use crate::config::{Ident, Strategy};
use crate::db::{Record, Sql, Value};

/// A statement that acts on rows, and how many it must change (`None`: an anonymization
/// of child rows, whose row count some databases give as rows changed, not matched).
pub type Act = (Sql, Option<u64>);

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

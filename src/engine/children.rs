//! A rule's related rows (`children`): the notes of an applicant, the lines of an order.
//! They are locked in the batch's transaction together with their parents, written into
//! the batch's intent, and acted on before the parents — deepest level first — so that
//! each row has its own audit entry under the same crash protocol, and no
//! `ON DELETE CASCADE` ever removes a row the trail cannot see.
//!
//! A deleting rule deletes its children. An anonymizing rule applies its strategies to
//! the columns of the same name a child table has (a child table without any of them is
//! only walked through, to its own children).

use super::hasher::Hasher;
pub use super::matcher::ChildPlan;
use super::statements::{act_statements, Act, Change};
use crate::config::{Action, Ident, Strategy};
use crate::db::{Dialect, Record, Sql, Tx, Value};
use crate::state::ChildKeys;

/// Parent keys bound per statement when reading children.
const CHUNK: usize = 1000;

/// Why the child rows of a batch could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// The database.
    Db(crate::db::DbError),
    /// A statement retentiond could not build (a bug: a hash rule without its key).
    Internal(String),
}

impl From<crate::db::DbError> for LockError {
    fn from(e: crate::db::DbError) -> Self {
        LockError::Db(e)
    }
}

/// The child rows of one batch, in the order they are acted on (deepest first), each
/// group with the statement that acts on exactly its rows.
#[derive(Debug)]
pub struct Locked {
    /// What goes into the intent (and then the trail), per group.
    pub keys: Vec<ChildKeys>,
    /// In order, the statements that act on the groups' rows (a group's rows may take
    /// several), each with how many rows it must change (`None`: an anonymization, whose
    /// row count some databases give as rows changed, not matched).
    pub acts: Vec<Act>,
}

/// Locks (reads `FOR UPDATE` in `tx`) every child row of the parents `keys` (read as
/// `unsigned` where the parent's key is), level by level, and builds the statements that
/// act on them. Nothing is changed yet.
pub(super) async fn lock(
    tx: &mut Tx,
    d: Dialect,
    plans: &[ChildPlan<'_>],
    parents: &[Value],
    parent_unsigned: bool,
    action: &Action,
    hasher: Option<&Hasher>,
) -> Result<Locked, LockError> {
    let mut groups: Vec<(ChildKeys, Vec<Act>)> = Vec::new();
    // Breadth first: a level's rows are the parents of the next.
    let mut level: Vec<(&ChildPlan<'_>, Vec<Value>, bool)> = plans
        .iter()
        .map(|p| (p, parents.to_vec(), parent_unsigned))
        .collect();
    while !level.is_empty() {
        let mut next = Vec::new();
        for (plan, parent_keys, unsigned) in level {
            if parent_keys.is_empty() {
                continue;
            }
            let cols: &[(Ident, Strategy)] = match action {
                Action::Anonymize(_) => &plan.shape.anonymized,
                Action::Delete | Action::Flag { .. } => &[],
            };
            let hashed: Vec<&Ident> = cols
                .iter()
                .filter(|(_, s)| *s == Strategy::Hash)
                .map(|(c, _)| c)
                .collect();
            let key = d.ident(&plan.child.key);
            let table = d.table(&plan.child.table);
            let mut records: Vec<Record> = Vec::new();
            for chunk in parent_keys.chunks(CHUNK) {
                let mut sql = Sql::new(d);
                sql.push("SELECT ")
                    .push(&d.key_select(&key, plan.shape.key));
                for c in &hashed {
                    sql.push(", ").push(&d.text_select(&d.ident(c)));
                }
                sql.push(" FROM ")
                    .push(&table)
                    .push(" WHERE ")
                    .key_list(&d.ident(&plan.child.foreign_key), chunk, unsigned)
                    .push(&format!(" ORDER BY {key}"))
                    .push(d.lock_all_suffix());
                records.extend(tx.fetch_records(&sql, plan.shape.key).await?);
            }
            if records.is_empty() {
                continue;
            }
            let values: Vec<Value> = records.iter().map(|r| r.key.value()).collect();
            // Each statement lists at most `RECORDS_PER_STATEMENT` rows, like the parents'.
            let (change, counted) = match action {
                Action::Delete => (Some(Change::Delete), true),
                Action::Anonymize(_) if !cols.is_empty() => (Some(Change::Anonymize(cols)), false),
                Action::Anonymize(_) | Action::Flag { .. } => (None, false),
            };
            if let Some(change) = change {
                let statements = act_statements(
                    d,
                    &table,
                    &key,
                    plan.shape.key_unsigned,
                    &change,
                    &records,
                    hasher,
                )
                .map_err(LockError::Internal)?;
                let acts = statements
                    .into_iter()
                    .map(|(sql, n)| (sql, counted.then_some(n as u64)))
                    .collect();
                groups.push((
                    ChildKeys {
                        table: plan.child.table.to_string(),
                        action: action.verb().to_owned(),
                        keys: records.iter().map(|r| r.key.to_string()).collect(),
                    },
                    acts,
                ));
            }
            for grand in &plan.children {
                next.push((grand, values.clone(), plan.shape.key_unsigned));
            }
        }
        level = next;
    }
    // Deepest first: a level's rows go before the rows they belong to.
    groups.reverse();
    let mut out = Locked {
        keys: Vec::new(),
        acts: Vec::new(),
    };
    for (keys, acts) in groups {
        out.keys.push(keys);
        out.acts.extend(acts);
    }
    Ok(out)
}

//! Which records a rule matches at a moment: expired, not already in the action's target
//! state, and within the operator's filter. Shared by `plan` and the batches, so that what
//! is forecast is exactly what is acted on.

use crate::config::{Action, Cutoff, Rule, Strategy};
use crate::db::schema::RuleShape;
use crate::db::{Dialect, Sql, Value};

/// The prefix of values written by the `hash` strategy; a value carrying it is already
/// anonymized.
pub const HASH_PREFIX: &str = "anon-";

/// A rule bound to its table's shape: everything needed to write its SQL.
#[derive(Debug, Clone)]
pub struct Matcher<'a> {
    /// The rule.
    pub rule: &'a Rule,
    /// Key and time kinds from the catalog.
    pub shape: RuleShape,
    /// The target's dialect.
    pub dialect: Dialect,
}

impl Matcher<'_> {
    /// The quoted table.
    pub fn table(&self) -> String {
        self.dialect.table(&self.rule.table)
    }

    /// The quoted key column.
    pub fn key(&self) -> String {
        self.dialect.ident(&self.rule.key)
    }

    /// Appends the rule's match condition (no `WHERE`).
    pub fn push_condition(&self, sql: &mut Sql, cutoff: &Cutoff) {
        let d = self.dialect;
        d.push_expired(sql, &d.ident(&self.rule.since), self.shape.since, cutoff);
        match &self.rule.action {
            Action::Delete => {}
            Action::Anonymize(cols) => {
                sql.push(" AND NOT (");
                for (i, (col, strategy)) in cols.iter().enumerate() {
                    let c = d.ident(col);
                    if i > 0 {
                        sql.push(" AND ");
                    }
                    match strategy {
                        Strategy::Null => {
                            sql.push(&c).push(" IS NULL");
                        }
                        Strategy::Replace(v) => {
                            sql.push("(")
                                .push(&c)
                                .push(" IS NOT NULL AND ")
                                .push(&c)
                                .push(" = ")
                                .bind(Value::Text(v.clone()))
                                .push(")");
                        }
                        Strategy::Hash => {
                            sql.push("(")
                                .push(&c)
                                .push(" IS NULL OR ")
                                .push(&c)
                                .push(&format!(" LIKE '{HASH_PREFIX}%')"));
                        }
                    }
                }
                sql.push(")");
            }
            Action::Flag { column, value } => {
                let c = d.ident(column);
                sql.push(" AND NOT (")
                    .push(&c)
                    .push(" IS NOT NULL AND ")
                    .push(&c)
                    .push(" = ")
                    .bind(flag_value(value))
                    .push(")");
            }
        }
        if let Some(f) = &self.rule.filter {
            sql.push(" AND (").push(f).push(")");
        }
    }

    /// `SELECT COUNT(*)` of matching records.
    pub fn count(&self, cutoff: &Cutoff) -> Sql {
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT COUNT(*) FROM ")
            .push(&self.table())
            .push(" WHERE ");
        self.push_condition(&mut sql, cutoff);
        sql
    }

    /// The first `limit` matching keys, for `plan`.
    pub fn sample(&self, cutoff: &Cutoff, limit: u32) -> Sql {
        let key = self.key();
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT ")
            .push(&self.dialect.key_select(&key, self.shape.key))
            .push(" FROM ")
            .push(&self.table())
            .push(" WHERE ");
        self.push_condition(&mut sql, cutoff);
        sql.push(&format!(" ORDER BY {key} LIMIT {limit}"));
        sql
    }

    /// The next batch after key `after`, locked: key first, then the columns the `hash`
    /// strategy must read.
    pub fn batch(&self, cutoff: &Cutoff, after: Option<&Value>, size: u32) -> Sql {
        let d = self.dialect;
        let key = self.key();
        let mut sql = Sql::new(d);
        sql.push("SELECT ")
            .push(&d.key_select(&key, self.shape.key));
        for col in self.hashed_columns() {
            sql.push(", ").push(&d.text_select(&d.ident(col)));
        }
        sql.push(" FROM ").push(&self.table()).push(" WHERE ");
        self.push_condition(&mut sql, cutoff);
        if let Some(v) = after {
            sql.push(&format!(" AND {key} > ")).bind(v.clone());
        }
        sql.push(&format!(" ORDER BY {key} LIMIT {size}"))
            .push(d.lock_suffix());
        sql
    }

    /// Columns anonymized with `hash`, in rule order.
    pub fn hashed_columns(&self) -> Vec<&crate::config::Ident> {
        match &self.rule.action {
            Action::Anonymize(cols) => cols
                .iter()
                .filter(|(_, s)| *s == Strategy::Hash)
                .map(|(c, _)| c)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The bind value of a flag.
pub fn flag_value(v: &crate::config::FlagValue) -> Value {
    match v {
        crate::config::FlagValue::Text(s) => Value::Text(s.clone()),
        crate::config::FlagValue::Int(i) => Value::Int(*i),
    }
}

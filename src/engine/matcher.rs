//! Which records a rule matches at a moment: expired, not already in the action's target
//! state, and within the operator's filter. Shared by `plan` and the batches, so that what
//! is forecast is exactly what is acted on.

use crate::config::{Action, Cutoff, Hold, KeepWhile, Rule, Strategy};
use crate::db::schema::RuleShape;
use crate::db::{Dialect, SinceKind, Sql, Value};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The prefix of values written by the `hash` strategy; a value carrying it is already
/// anonymized.
pub const HASH_PREFIX: &str = "anon-";

/// A rule bound to its table's shape, and to everything that can keep its records
/// alive: legal holds, references (`keep_while`), and rules with a longer retention.
#[derive(Debug, Clone)]
pub struct Matcher<'a> {
    /// The rule.
    pub rule: &'a Rule,
    /// Key and time kinds from the catalog.
    pub shape: RuleShape,
    /// The target's dialect.
    pub dialect: Dialect,
    /// Holds on the same table (whether they are active is decided per moment).
    pub holds: Vec<&'a Hold>,
    /// References that keep records alive, with how their time column compares.
    pub keeps: Vec<(&'a KeepWhile, SinceKind)>,
    /// Other rules with the same action on the same table and a longer retention: a
    /// record they still keep is kept (the longer retention wins).
    pub rivals: Vec<(&'a Rule, SinceKind)>,
}

/// The moment a rule is evaluated at, with every cutoff it needs.
#[derive(Debug, Clone)]
pub struct When {
    /// The moment.
    pub at: DateTime<Utc>,
    /// The rule's own cutoff.
    pub cutoff: Cutoff,
    keeps: Vec<Cutoff>,
    rivals: Vec<Cutoff>,
}

/// Whether legal holds are applied to a condition (they always are, except to count
/// what each hold protects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// Held records are excluded.
    Apply,
    /// Held records are included.
    Ignore,
}

impl Matcher<'_> {
    /// Every cutoff at `at`; `None` if a period reaches outside the calendar.
    pub fn when(&self, at: DateTime<Utc>, tz: Tz) -> Option<When> {
        Some(When {
            at,
            cutoff: Cutoff::at(at, self.rule.after, tz)?,
            keeps: self
                .keeps
                .iter()
                .map(|(k, _)| Cutoff::at(at, k.after, tz))
                .collect::<Option<_>>()?,
            rivals: self
                .rivals
                .iter()
                .map(|(r, _)| Cutoff::at(at, r.after, tz))
                .collect::<Option<_>>()?,
        })
    }

    /// Holds in force at `when`.
    pub fn active_holds(&self, when: &When) -> Vec<&Hold> {
        self.holds
            .iter()
            .copied()
            .filter(|h| h.active(when.at))
            .collect()
    }

    /// The quoted table.
    pub fn table(&self) -> String {
        self.dialect.table(&self.rule.table)
    }

    /// The quoted key column.
    pub fn key(&self) -> String {
        self.dialect.ident(&self.rule.key)
    }

    /// Appends the rule's match condition (no `WHERE`).
    pub fn push_condition(&self, sql: &mut Sql, when: &When, holds: Holds) {
        let d = self.dialect;
        d.push_expired(
            sql,
            &d.ident(&self.rule.since),
            self.shape.since,
            &when.cutoff,
        );
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
            sql.push(" AND (").push(f.sql()).push(")");
        }
        if holds == Holds::Apply {
            // A hold whose filter is NULL for a record holds it: when in doubt, keep.
            for h in self.active_holds(when) {
                sql.push(" AND NOT COALESCE((")
                    .push(h.filter.sql())
                    .push("), TRUE)");
            }
        }
        let outer_key = format!("{}.{}", self.table(), self.key());
        for (i, ((k, kind), cutoff)) in self.keeps.iter().zip(&when.keeps).enumerate() {
            let alias = format!("rtd_keep{i}");
            let since = format!("{alias}.{}", d.ident(&k.since));
            sql.push(" AND NOT EXISTS (SELECT 1 FROM ")
                .push(&d.table(&k.table))
                .push(" ")
                .push(&alias)
                .push(" WHERE ")
                .push(&format!(
                    "{alias}.{} = {outer_key}",
                    d.ident(&k.foreign_key)
                ))
                .push(&format!(" AND ({since} IS NULL OR NOT COALESCE(("));
            d.push_expired(sql, &since, *kind, cutoff);
            sql.push("), FALSE)))");
        }
        for ((r, kind), cutoff) in self.rivals.iter().zip(&when.rivals) {
            sql.push(" AND NOT (");
            if let Some(f) = &r.filter {
                sql.push("COALESCE((").push(f.sql()).push("), TRUE) AND ");
            }
            sql.push("NOT COALESCE((");
            d.push_expired(sql, &d.ident(&r.since), *kind, cutoff);
            sql.push("), FALSE))");
        }
    }

    /// `SELECT COUNT(*)` of the records a hold protects from this rule at `when`.
    pub fn count_held(&self, when: &When, hold: &Hold) -> Sql {
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT COUNT(*) FROM ")
            .push(&self.table())
            .push(" WHERE ");
        self.push_condition(&mut sql, when, Holds::Ignore);
        sql.push(" AND COALESCE((")
            .push(hold.filter.sql())
            .push("), TRUE)");
        sql
    }

    /// For a `flag` rule, `SELECT COUNT(*)` of the records carrying its flag.
    pub fn count_flagged(&self) -> Option<Sql> {
        let Action::Flag { column, value } = &self.rule.action else {
            return None;
        };
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT COUNT(*) FROM ")
            .push(&self.table())
            .push(" WHERE ")
            .push(&self.dialect.ident(column))
            .push(" = ")
            .bind(flag_value(value));
        Some(sql)
    }

    /// `SELECT COUNT(*)` of the whole table (the brake's denominator).
    pub fn count_table(&self) -> Sql {
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT COUNT(*) FROM ").push(&self.table());
        sql
    }

    /// `SELECT COUNT(*)` of matching records.
    pub fn count(&self, when: &When) -> Sql {
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT COUNT(*) FROM ")
            .push(&self.table())
            .push(" WHERE ");
        self.push_condition(&mut sql, when, Holds::Apply);
        sql
    }

    /// The first `limit` matching keys, for `plan`.
    pub fn sample(&self, when: &When, limit: u32) -> Sql {
        let key = self.key();
        let mut sql = Sql::new(self.dialect);
        sql.push("SELECT ")
            .push(&self.dialect.key_select(&key, self.shape.key))
            .push(" FROM ")
            .push(&self.table())
            .push(" WHERE ");
        self.push_condition(&mut sql, when, Holds::Apply);
        sql.push(&format!(" ORDER BY {key} LIMIT {limit}"));
        sql
    }

    /// The next batch after key `after`, locked: key first, then the columns the `hash`
    /// strategy must read.
    pub fn batch(&self, when: &When, after: Option<&Value>, size: u64) -> Sql {
        let d = self.dialect;
        let key = self.key();
        let mut sql = Sql::new(d);
        sql.push("SELECT ")
            .push(&d.key_select(&key, self.shape.key));
        for col in self.hashed_columns() {
            sql.push(", ").push(&d.text_select(&d.ident(col)));
        }
        sql.push(" FROM ").push(&self.table()).push(" WHERE ");
        self.push_condition(&mut sql, when, Holds::Apply);
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

/// Rules whose retention outlasts `rule`'s on the same table with the same action: while
/// they keep a record, `rule` must not act on it.
pub fn longer_rivals<'a>(rule: &Rule, all: &'a [Rule]) -> Vec<&'a Rule> {
    all.iter()
        .filter(|r| {
            r.name != rule.name
                && r.database == rule.database
                && r.table == rule.table
                && r.action.verb() == rule.action.verb()
                && r.action.verb() != "flag"
                && r.after.approx_days() > rule.after.approx_days()
        })
        .collect()
}

/// The bind value of a flag.
pub fn flag_value(v: &crate::config::FlagValue) -> Value {
    match v {
        crate::config::FlagValue::Text(s) => Value::Text(s.clone()),
        crate::config::FlagValue::Int(i) => Value::Int(*i),
    }
}

//! Which records a rule matches at a moment: expired, not already in the action's target
//! state, and within the operator's filter. Shared by `plan` and the batches, so that what
//! is forecast is exactly what is acted on.

use crate::config::{Action, ActionKind, Cutoff, Hold, KeepWhile, Rule, Strategy};
use crate::db::schema::RuleShape;
use crate::db::{Dialect, SinceKind, Sql, Value};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The prefix of values written by the `hash` strategy.
pub const HASH_PREFIX: &str = "anon-";

/// How many lowercase hex digits of the HMAC follow [`HASH_PREFIX`]. A value is already
/// hashed only if it has exactly this shape (see [`Dialect::push_hashed`]): a prefix alone
/// proves nothing (`anon-jane.doe@example.org` is an e-mail address).
pub const HASH_DIGITS: usize = 16;

/// Appends "not every column already holds what its strategy writes" (no `WHERE`): the
/// records an anonymization still has to change. A second anonymization of the same
/// records matches none of them, for rules and data-subject erasures alike.
pub fn push_not_anonymized(sql: &mut Sql, cols: &[(crate::config::Ident, Strategy)]) {
    let d = sql.dialect();
    sql.push("NOT (");
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
                sql.push("(").push(&c).push(" IS NOT NULL AND ");
                d.push_equals_exactly(sql, &c, v);
                sql.push(")");
            }
            Strategy::Hash => {
                sql.push("(").push(&c).push(" IS NULL OR ");
                d.push_hashed(sql, &c, HASH_PREFIX, HASH_DIGITS);
                sql.push(")");
            }
        }
    }
    sql.push(")");
}

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
    /// The rule's `children`, bound to their tables: acted on with each batch, first.
    pub children: Vec<ChildPlan<'a>>,
    /// Legal holds on the tables of the rule's `children`, each with the chain of children
    /// from the rule's table down to the held table: a record one of whose child rows a
    /// hold covers is kept whole, with all its children.
    pub child_holds: Vec<(Vec<&'a crate::config::Child>, &'a Hold)>,
}

/// One `children` entry bound to its table's shape (see `prepare`).
#[derive(Debug, Clone)]
pub struct ChildPlan<'a> {
    /// The entry.
    pub child: &'a crate::config::Child,
    /// Its table's key and the strategies that apply there.
    pub shape: crate::db::schema::ChildShape,
    /// Its own children.
    pub children: Vec<ChildPlan<'a>>,
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
                sql.push(" AND ");
                push_not_anonymized(sql, cols);
            }
            Action::Flag { column, value } => {
                let c = d.ident(column);
                sql.push(" AND NOT (")
                    .push(&c)
                    .push(" IS NOT NULL AND ")
                    .push(&c)
                    .push(" = ")
                    .bind(flag_value(value, &self.shape))
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
        if holds == Holds::Apply {
            for (i, (chain, hold)) in self
                .child_holds
                .iter()
                .filter(|(_, h)| h.active(when.at))
                .enumerate()
            {
                // NOT EXISTS (a child row … down the chain … that the hold covers): each
                // level correlated through its alias; the hold's own condition is written
                // against the innermost table, where its unqualified columns resolve.
                sql.push(" AND NOT EXISTS (");
                let mut above = outer_key.clone();
                for (depth, child) in chain.iter().enumerate() {
                    let alias = format!("rtd_held{i}_{depth}");
                    if depth > 0 {
                        sql.push(" AND EXISTS (");
                    }
                    sql.push("SELECT 1 FROM ")
                        .push(&d.table(&child.table))
                        .push(" ")
                        .push(&alias)
                        .push(&format!(
                            " WHERE {alias}.{} = {above}",
                            d.ident(&child.foreign_key)
                        ));
                    above = format!("{alias}.{}", d.ident(&child.key));
                }
                sql.push(" AND COALESCE((")
                    .push(hold.filter.sql())
                    .push("), TRUE)");
                for _ in 0..chain.len() {
                    sql.push(")");
                }
            }
        }
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
            .bind(flag_value(value, &self.shape));
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
            sql.push(&format!(" AND {key} > "))
                .bind_key(v.clone(), self.shape.key_unsigned);
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

/// The rules that can keep a record from another rule, grouped once by database, table
/// and action (`flag` rules never compete), longest retention first.
pub struct RivalIndex<'a> {
    groups: std::collections::HashMap<(&'a str, String, ActionKind), Vec<&'a Rule>>,
}

impl<'a> RivalIndex<'a> {
    /// Groups `all`.
    pub fn new(all: &'a [Rule]) -> Self {
        let mut groups: std::collections::HashMap<_, Vec<&'a Rule>> =
            std::collections::HashMap::new();
        for r in all.iter().filter(|r| r.action.kind() != ActionKind::Flag) {
            groups
                .entry((r.database.as_str(), r.table.to_string(), r.action.kind()))
                .or_default()
                .push(r);
        }
        for rules in groups.values_mut() {
            rules.sort_by_key(|r| std::cmp::Reverse(r.after.approx_days()));
        }
        RivalIndex { groups }
    }

    /// Rules whose retention outlasts `rule`'s on the same table with the same action:
    /// while they keep a record, `rule` must not act on it. Of rivals that share a `since`
    /// column and a filter, only the longest matters (what it keeps, every shorter one
    /// keeps too), so each such group is one condition, not one per rule: with thousands of
    /// rules on a table the condition stays small.
    pub fn longer_than(&self, rule: &Rule) -> Vec<&'a Rule> {
        let key = (
            rule.database.as_str(),
            rule.table.to_string(),
            rule.action.kind(),
        );
        let Some(rules) = self.groups.get(&key) else {
            return Vec::new();
        };
        let mut seen: std::collections::HashSet<(String, Option<String>)> =
            std::collections::HashSet::new();
        rules
            .iter()
            .take_while(|r| r.after.approx_days() > rule.after.approx_days())
            .filter(|r| r.name != rule.name)
            .filter(|r| {
                seen.insert((
                    r.since.to_string(),
                    r.filter.as_ref().map(|f| f.sql().to_owned()),
                ))
            })
            .copied()
            .collect()
    }
}

/// The bind value of a flag: a boolean for a boolean column (as [`check_rule`] read it),
/// otherwise the value as written.
///
/// [`check_rule`]: crate::db::schema::check_rule
pub fn flag_value(v: &crate::config::FlagValue, shape: &RuleShape) -> Value {
    if let Some(b) = shape.flag_bool {
        return Value::Bool(b);
    }
    match v {
        crate::config::FlagValue::Text(s) => Value::Text(s.clone()),
        crate::config::FlagValue::Int(i) => Value::Int(*i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` delete rules on one table, with 5 different filters and ever longer periods.
    fn rules(n: usize) -> crate::config::Config {
        let mut toml = String::from("[daemon]\nstate_dir = \"/tmp/x\"\nschedule = \"0 30 2 * * *\"\ntimezone = \"UTC\"\n\n[databases.main]\nurl = \"sqlite:///tmp/x.db\"\n\n");
        for i in 0..n {
            toml.push_str(&format!(
                "[[rule]]\nname = \"r{i}\"\nlegal_basis = \"x\"\ndatabase = \"main\"\ntable = \"t\"\nkey = \"id\"\nfilter = \"kind = {}\"\nexpires = {{ since = \"at\", after = \"{} days\" }}\naction = \"delete\"\n\n",
                i % 5,
                i + 1
            ));
        }
        crate::config::parse(std::path::Path::new("r.toml"), &toml).expect("valid config")
    }

    #[test]
    fn longer_rivals_are_one_per_filter_whatever_the_number_of_rules() {
        let config = rules(2000);
        let index = RivalIndex::new(&config.rules);
        let shortest = &config.rules[0];
        let rivals = index.longer_than(shortest);
        assert_eq!(rivals.len(), 5, "one rival condition per distinct filter");
        // Each kept rival is the longest of its filter.
        for r in &rivals {
            assert!(
                r.after.approx_days() >= 1996,
                "{} keeps less than the longest",
                r.name
            );
        }
        // The longest rule has no rival; one in the middle only longer ones.
        assert!(index.longer_than(&config.rules[1999]).is_empty());
        let middle = &config.rules[1000];
        assert!(index
            .longer_than(middle)
            .iter()
            .all(|r| r.after.approx_days() > middle.after.approx_days()));
    }
}

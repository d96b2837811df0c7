//! What a rule enforces, apart from how it is run: the part of a `[[rule]]` whose change an
//! auditor must see (`rule-change` in the trail, keyed by its [`Definition::fingerprint`]),
//! and what a `locked = true` rule may not lose without an unlock.

use super::model::{Action, Child, FlagValue, Mode, Rule};
use super::period::Period;
use super::strategy::Strategy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A rule's enforced definition, as text: what it acts on, when, and how. Kept beside the
/// trail (never in it) so that `rules --history` can say what a rule said at any time.
/// Holds names, periods and the operator's SQL, never a record's values. Not part of it:
/// the description and legal basis (words about the rule), batch sizes, brakes and
/// schedules (how it runs, not what it does).
///
/// Optional parts are left out of the JSON when empty, so that a part added in a later
/// version changes no fingerprint of a rule that does not use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// `[databases.NAME]`.
    pub database: String,
    /// The table (`schema.table` if qualified).
    pub table: String,
    /// The key column.
    pub key: String,
    /// `expires.since`.
    pub since: String,
    /// `expires.after`, written as a period (`7 years`).
    pub after: String,
    /// The filter as re-rendered SQL (what is sent, not the text as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// `delete`, `anonymize` or `flag`.
    pub action: String,
    /// Per anonymized column its strategy (`null`, `hash`, `replace:TEXT`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub anonymize: BTreeMap<String, String>,
    /// A flag action's column and value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<FlagDefinition>,
    /// `keep_while`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_while: Vec<KeepWhileDefinition>,
    /// `children`, nested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildDefinition>,
    /// `enforce` or `report`.
    pub mode: String,
    /// Whether the rule is locked: part of the definition, so that locking (and an unlocked
    /// change that drops the lock) is itself a `rule-change` in the trail.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
}

/// `flag = { column, value }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagDefinition {
    /// The column set.
    pub column: String,
    /// The value, as SQL would show it (`'due'`, `1`).
    pub value: String,
}

/// One `keep_while` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepWhileDefinition {
    /// The referencing table.
    pub table: String,
    /// Its column holding the rule's key.
    pub foreign_key: String,
    /// Its time column.
    pub since: String,
    /// How long a referencing row keeps the record.
    pub after: String,
}

/// One `children` entry, with its own children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildDefinition {
    /// The child table.
    pub table: String,
    /// Its column holding the parent's key.
    pub foreign_key: String,
    /// Its own key.
    pub key: String,
    /// Its children.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildDefinition>,
}

/// A change a locked rule may not undergo without an unlock: the config key it is at
/// (for [`Rule::line_of`]) and what changed, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedChange {
    /// The key whose line the refusal names (`expires.after`, `table`, `locked`…).
    pub key: &'static str,
    /// What changed, e.g. `expires.after would be shortened from "7 years" to "5 years"`.
    pub what: String,
}

fn strategy_text(s: &Strategy) -> String {
    match s {
        Strategy::Null => "null".into(),
        Strategy::Hash => "hash".into(),
        Strategy::Replace(t) => format!("replace:{t}"),
    }
}

fn child_definition(c: &Child) -> ChildDefinition {
    ChildDefinition {
        table: c.table.to_string(),
        foreign_key: c.foreign_key.to_string(),
        key: c.key.to_string(),
        children: c.children.iter().map(child_definition).collect(),
    }
}

fn flag_text(v: &FlagValue) -> String {
    v.to_string()
}

impl Rule {
    /// The rule's enforced definition (see [`Definition`]).
    pub fn definition(&self) -> Definition {
        let (anonymize, flag) = match &self.action {
            Action::Delete => (BTreeMap::new(), None),
            Action::Anonymize(cols) => (
                cols.iter()
                    .map(|(c, s)| (c.to_string(), strategy_text(s)))
                    .collect(),
                None,
            ),
            Action::Flag { column, value } => (
                BTreeMap::new(),
                Some(FlagDefinition {
                    column: column.to_string(),
                    value: flag_text(value),
                }),
            ),
        };
        Definition {
            database: self.database.clone(),
            table: self.table.to_string(),
            key: self.key.to_string(),
            since: self.since.to_string(),
            after: self.after.to_string(),
            filter: self.filter.as_ref().map(|f| f.sql().to_owned()),
            action: self.action.verb().to_owned(),
            anonymize,
            flag,
            keep_while: self
                .keep_while
                .iter()
                .map(|k| KeepWhileDefinition {
                    table: k.table.to_string(),
                    foreign_key: k.foreign_key.to_string(),
                    since: k.since.to_string(),
                    after: k.after.to_string(),
                })
                .collect(),
            children: self.children.iter().map(child_definition).collect(),
            mode: match self.mode {
                Mode::Enforce => "enforce".into(),
                Mode::Report => "report".into(),
            },
            locked: self.locked,
        }
    }

    /// A digest of [`Rule::definition`]: the `key` of the rule's `rule-start`,
    /// `rule-change` and `rule-end` entries, so the trail shows when what a rule enforces
    /// changed without holding its text.
    pub fn fingerprint(&self) -> String {
        self.definition().fingerprint()
    }
}

impl Definition {
    /// 16 hex digits of the SHA-256 of the definition's JSON (fields in declaration
    /// order, empty optional parts left out), like a hold's fingerprint.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        // A struct of strings, vectors and maps with string keys always serializes.
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..8])
    }

    /// The definition as JSON, as the state database keeps it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A definition the state database kept, or `None` if it cannot be read.
    pub fn from_json(json: &str) -> Option<Definition> {
        serde_json::from_str(json).ok()
    }

    /// What `now` changed of this (recorded, locked) definition that a lock forbids: its
    /// database, table, `since`, action (verb, strategies or flag), a shorter
    /// `expires.after`, or the lock itself. Empty when `now` only keeps or lengthens it,
    /// or changes what a lock leaves free (filter, key, keep_while, children, mode).
    pub fn locked_changes(&self, now: &Rule) -> Vec<LockedChange> {
        let new = now.definition();
        let mut out = Vec::new();
        let mut changed = |key: &'static str, what: &str, old: &str, new: &str| {
            if old != new {
                out.push(LockedChange {
                    key,
                    what: format!("{what} would change from \"{old}\" to \"{new}\""),
                });
            }
        };
        changed("database", "database", &self.database, &new.database);
        changed("table", "table", &self.table, &new.table);
        changed("expires.since", "expires.since", &self.since, &new.since);
        changed("action", "action", &self.action, &new.action);
        // Which records the rule acts on: a wider filter deletes what it kept, a narrower
        // one (or `1 = 0`) stops keeping the promise; either way it is not the rule that was
        // locked. The same for its key.
        changed("key", "key", &self.key, &new.key);
        changed(
            "filter",
            "filter",
            self.filter.as_deref().unwrap_or(""),
            new.filter.as_deref().unwrap_or(""),
        );
        if self.action == new.action {
            let text = |m: &BTreeMap<String, String>| {
                m.iter()
                    .map(|(c, s)| format!("{c} = {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            changed(
                "anonymize",
                "anonymize",
                &text(&self.anonymize),
                &text(&new.anonymize),
            );
            let flag = |f: &Option<FlagDefinition>| {
                f.as_ref()
                    .map(|f| format!("{} = {}", f.column, f.value))
                    .unwrap_or_default()
            };
            changed("flag", "flag", &flag(&self.flag), &flag(&new.flag));
        }
        if !surely_not_shorter(&new.after, &self.after) {
            out.push(LockedChange {
                key: "expires.after",
                what: format!(
                    "expires.after would be shortened from \"{}\" to \"{}\"",
                    self.after, new.after
                ),
            });
        }
        // A locked rule that only reports no longer enforces the promise.
        if self.mode == "enforce" && new.mode != "enforce" {
            out.push(LockedChange {
                key: "mode",
                what: format!(
                    "mode would change from \"enforce\" to \"{}\": the rule would stop acting",
                    new.mode
                ),
            });
        }
        // A reference that kept records alive may not go or get shorter (new ones may come).
        for old in &self.keep_while {
            let kept = new.keep_while.iter().any(|k| {
                k.table == old.table
                    && k.foreign_key == old.foreign_key
                    && k.since == old.since
                    && surely_not_shorter(&k.after, &old.after)
            });
            if !kept {
                out.push(LockedChange {
                    key: "keep_while",
                    what: format!(
                        "keep_while on {}.{} (for {}) would be removed or shortened",
                        old.table, old.foreign_key, old.after
                    ),
                });
            }
        }
        if self.children != new.children {
            out.push(LockedChange {
                key: "children",
                what: "children would change: the rule would act on other related rows".into(),
            });
        }
        if self.locked && !new.locked {
            out.push(LockedChange {
                key: "locked",
                what: "locked = true would be removed".into(),
            });
        }
        out
    }
}

/// The fewest and the most days a period can last in a calendar (a month is 28 to 31
/// days, a year 365 or 366).
fn day_range(p: Period) -> (u64, u64) {
    match p {
        Period::Days(n) => (n.into(), n.into()),
        Period::Weeks(n) => (u64::from(n) * 7, u64::from(n) * 7),
        Period::Months(n) => (u64::from(n) * 28, u64::from(n) * 31),
        Period::Years(n) => (u64::from(n) * 365, u64::from(n) * 366),
    }
}

/// Whether `new` keeps records at least as long as `old`, whatever the calendar: days and
/// weeks compare exactly, as do months and years; across the two, `new` must be at least
/// as long at its shortest as `old` at its longest (`1 month` is not surely as long as
/// `30 days`; `5 weeks` is surely longer than `1 month`). A period that cannot be read
/// is not surely longer.
fn surely_not_shorter(new: &str, old: &str) -> bool {
    let (Ok(new), Ok(old)) = (Period::parse(new), Period::parse(old)) else {
        return new == old;
    };
    let months = |p: Period| match p {
        Period::Months(n) => Some(u64::from(n)),
        Period::Years(n) => Some(u64::from(n) * 12),
        _ => None,
    };
    if let (Some(n), Some(o)) = (months(new), months(old)) {
        return n >= o;
    }
    day_range(new).0 >= day_range(old).1
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, Rule};
    use std::path::Path;

    const HEAD: &str = "[daemon]\nstate_dir = \"/tmp/x\"\n\n[databases.main]\nurl = \"sqlite:///tmp/x.db\"\n\n[databases.other]\nurl = \"sqlite:///tmp/y.db\"\n\n";

    fn rule(body: &str) -> Rule {
        let text = format!("{HEAD}[[rule]]\nname = \"r\"\n{body}\n");
        let config = parse(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        config.rules.into_iter().next().expect("one rule")
    }

    const BASE: &str = "description = \"d\"\nlegal_basis = \"law\"\ndatabase = \"main\"\ntable = \"people\"\nkey = \"id\"\nexpires = { since = \"left_at\", after = \"7 years\" }\naction = \"delete\"";

    fn with(from: &str, to: &str) -> Rule {
        assert!(BASE.contains(from), "{from}");
        rule(&BASE.replacen(from, to, 1))
    }

    #[test]
    fn the_fingerprint_changes_with_every_enforced_field() {
        let base = rule(BASE).fingerprint();
        assert_eq!(base.len(), 16);
        for (from, to) in [
            ("database = \"main\"", "database = \"other\""),
            ("table = \"people\"", "table = \"staff\""),
            ("key = \"id\"", "key = \"pk\""),
            ("since = \"left_at\"", "since = \"hired_at\""),
            ("after = \"7 years\"", "after = \"8 years\""),
            ("after = \"7 years\"", "after = \"84 months\""),
            (
                "action = \"delete\"",
                "action = \"anonymize\"\nanonymize = { name = \"null\" }",
            ),
            (
                "action = \"delete\"",
                "action = \"flag\"\nflag = { column = \"review\", value = \"due\" }",
            ),
            ("action = \"delete\"", "action = \"delete\"\nfilter = \"x = 1\""),
            ("action = \"delete\"", "action = \"delete\"\nmode = \"report\""),
            ("action = \"delete\"", "action = \"delete\"\nlocked = true"),
            (
                "action = \"delete\"",
                "action = \"delete\"\nkeep_while = [{ table = \"inv\", foreign_key = \"p\", since = \"at\", after = \"1 year\" }]",
            ),
            (
                "action = \"delete\"",
                "action = \"delete\"\nchildren = [{ table = \"notes\", foreign_key = \"p\", key = \"id\" }]",
            ),
        ] {
            assert_ne!(with(from, to).fingerprint(), base, "{to}");
        }
        let anon = |s: &str| {
            with(
                "action = \"delete\"",
                &format!("action = \"anonymize\"\nanonymize = {{ name = {s} }}"),
            )
            .fingerprint()
        };
        assert_ne!(anon("\"null\""), anon("\"hash\""));
        assert_ne!(anon("{ replace = \"a\" }"), anon("{ replace = \"b\" }"));
    }

    #[test]
    fn the_fingerprint_ignores_words_and_how_the_rule_runs() {
        let base = rule(BASE).fingerprint();
        for (from, to) in [
            ("description = \"d\"", "description = \"other words\""),
            ("legal_basis = \"law\"", "legal_basis = \"another law\""),
            (
                "action = \"delete\"",
                "action = \"delete\"\nbatch_size = 10\nbatch_pause = \"1 s\"\nmax_records = 5",
            ),
            (
                "action = \"delete\"",
                "action = \"delete\"\nbatch_time = \"2 s\"\nbatch_pause_factor = 3",
            ),
            ("action = \"delete\"", "action = \"delete\"\nlocked = false"),
            (
                "action = \"delete\"",
                "action = \"delete\"\nmode = \"enforce\"",
            ),
        ] {
            assert_eq!(with(from, to).fingerprint(), base, "{to}");
        }
        // The SQL sent, not the text as written.
        let f = |text: &str| {
            with(
                "action = \"delete\"",
                &format!("action = \"delete\"\nfilter = \"{text}\""),
            )
            .fingerprint()
        };
        assert_eq!(f("x   =  1"), f("x = 1"));
    }

    #[test]
    fn a_lock_keeps_every_keep_while_at_least_as_long() {
        let kw = |after: &str| {
            format!("action = \"delete\"\nkeep_while = [{{ table = \"orders\", foreign_key = \"person_id\", since = \"placed_at\", after = \"{after}\" }}]\nlocked = true")
        };
        let old = with("action = \"delete\"", &kw("2 years")).definition();
        let keys = |new: &Rule| -> Vec<&'static str> {
            old.locked_changes(new).into_iter().map(|c| c.key).collect()
        };
        assert!(keys(&with("action = \"delete\"", &kw("3 years"))).is_empty());
        assert_eq!(
            keys(&with("action = \"delete\"", &kw("1 year"))),
            vec!["keep_while"]
        );
        assert_eq!(
            keys(&with(
                "action = \"delete\"",
                "action = \"delete\"\nlocked = true"
            )),
            vec!["keep_while"]
        );
    }

    #[test]
    fn the_definition_survives_the_state_database() {
        let r = with(
            "action = \"delete\"",
            "action = \"anonymize\"\nanonymize = { name = \"null\", mail = { replace = \"x\" } }\nlocked = true",
        );
        let d = r.definition();
        let back = super::Definition::from_json(&d.to_json()).expect("reads back");
        assert_eq!(back, d);
        assert_eq!(back.fingerprint(), r.fingerprint());
    }

    fn locked_keys(from: &str, to: &str) -> Vec<&'static str> {
        let old = with("action = \"delete\"", "action = \"delete\"\nlocked = true").definition();
        assert!(BASE.contains(from), "{from}");
        let new = rule(&format!("{}\nlocked = true", BASE.replacen(from, to, 1)));
        old.locked_changes(&new)
            .into_iter()
            .map(|c| c.key)
            .collect()
    }

    #[test]
    fn a_lock_refuses_a_shorter_period_and_another_target() {
        for (from, to, key) in [
            (
                "after = \"7 years\"",
                "after = \"6 years\"",
                "expires.after",
            ),
            (
                "after = \"7 years\"",
                "after = \"83 months\"",
                "expires.after",
            ),
            (
                "after = \"7 years\"",
                "after = \"2555 days\"",
                "expires.after",
            ),
            (
                "after = \"7 years\"",
                "after = \"365 weeks\"",
                "expires.after",
            ),
            ("database = \"main\"", "database = \"other\"", "database"),
            ("table = \"people\"", "table = \"staff\"", "table"),
            (
                "since = \"left_at\"",
                "since = \"hired_at\"",
                "expires.since",
            ),
            (
                "action = \"delete\"",
                "action = \"flag\"\nflag = { column = \"c\", value = 1 }",
                "action",
            ),
            ("key = \"id\"", "key = \"other_id\"", "key"),
            (
                "action = \"delete\"",
                "action = \"delete\"\nfilter = \"1 = 1\"",
                "filter",
            ),
            (
                "action = \"delete\"",
                "action = \"delete\"\nmode = \"report\"",
                "mode",
            ),
            (
                "action = \"delete\"",
                "action = \"delete\"\nchildren = [{ table = \"notes\", foreign_key = \"person_id\", key = \"id\" }]",
                "children",
            ),
        ] {
            assert_eq!(locked_keys(from, to), vec![key], "{to}");
        }
        let old = with("action = \"delete\"", "action = \"delete\"\nlocked = true").definition();
        let unlocked = rule(BASE);
        let keys: Vec<_> = old
            .locked_changes(&unlocked)
            .iter()
            .map(|c| c.key)
            .collect();
        assert_eq!(keys, vec!["locked"]);
    }

    #[test]
    fn a_lock_lets_a_period_grow_and_the_words_and_pace_change() {
        for (from, to) in [
            ("after = \"7 years\"", "after = \"7 years\""),
            ("after = \"7 years\"", "after = \"84 months\""),
            ("after = \"7 years\"", "after = \"8 years\""),
            ("after = \"7 years\"", "after = \"2562 days\""),
            ("after = \"7 years\"", "after = \"366 weeks\""),
            ("description = \"d\"", "description = \"e\""),
            (
                "action = \"delete\"",
                "action = \"delete\"\nbatch_size = 10",
            ),
            (
                "action = \"delete\"",
                "action = \"delete\"\nbatch_time = \"1 s\"\nbatch_pause_factor = 0.5",
            ),
        ] {
            assert_eq!(locked_keys(from, to), Vec::<&str>::new(), "{to}");
        }
    }

    #[test]
    fn periods_across_units_compare_conservatively() {
        use super::surely_not_shorter as ok;
        assert!(ok("1 week", "7 days"));
        assert!(ok("12 months", "1 year"));
        assert!(ok("1 month", "28 days"));
        assert!(!ok("1 month", "29 days"));
        assert!(!ok("30 days", "1 month"));
        assert!(ok("31 days", "1 month"));
        assert!(!ok("365 days", "12 months"));
        assert!(ok("366 days", "1 year"));
        assert!(!ok("365 days", "1 year"));
        assert!(ok("1 year", "365 days"));
        assert!(!ok("1 year", "366 days"));
        assert!(!ok("6 days", "1 week"));
    }
}

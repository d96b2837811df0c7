//! Rules over time: at every pass, rules that started, changed (their enforced definition)
//! or ended (left the config) are written to the audit trail with the fingerprint of their
//! definition, and each version is kept beside the trail, so an auditor can tell which rule
//! said what on any night. Also the lock: a `locked = true` rule, once recorded, may not be
//! removed, shortened or retargeted until an operator unlocks it for one change.

use super::journal;
use super::outcome::{RuleEvent, RuleEventKind};
use crate::config::{Config, ConfigError, ConfigProblem, Definition};
use crate::state::{now_text, RuleChange, RuleSeen, RuleUnlock, RuleVersion, State, StateError};
use chrono::Utc;

/// Compares the config's rules with those last recorded and records every start, change
/// and end. Every rule in the config counts, also those a `run --once --rule` leaves out:
/// a rule ends only when it is no longer in the config.
pub async fn sync(
    config: &Config,
    state: &State,
    run_id: &str,
) -> Result<Vec<RuleEvent>, StateError> {
    let seen = state.rules_seen().await?;
    let mut events = Vec::new();
    for rule in &config.rules {
        let definition = rule.definition();
        let fingerprint = definition.fingerprint();
        let event = match seen.iter().find(|s| s.name == rule.name) {
            None => RuleEventKind::Start,
            Some(b) if !b.active => RuleEventKind::Start,
            Some(b) if b.fingerprint != fingerprint => RuleEventKind::Change,
            Some(_) => continue,
        };
        let change = RuleChange {
            seen: RuleSeen {
                name: rule.name.clone(),
                fingerprint: fingerprint.clone(),
                database: rule.database.clone(),
                table: rule.table.to_string(),
                active: true,
                locked: rule.locked,
                line: i64::try_from(rule.line).unwrap_or(i64::MAX),
                changed_at: now_text(),
            },
            definition: definition.to_json(),
            uses_unlock: event != RuleEventKind::Start,
        };
        journal::rule_event(state, run_id, &change, event).await?;
        tracing::info!(rule = %rule.name, %event, %fingerprint, "rule history");
        events.push(RuleEvent {
            rule: rule.name.clone(),
            event,
            fingerprint,
            action: definition.action,
            after: definition.after,
        });
    }
    let gone: Vec<&RuleSeen> = seen
        .iter()
        .filter(|s| s.active && !config.rules.iter().any(|r| r.name == s.name))
        .collect();
    if gone.is_empty() {
        return Ok(events);
    }
    let versions = state.rule_versions().await?;
    for s in gone {
        let last = version_of(&versions, &s.name, &s.fingerprint);
        let change = RuleChange {
            seen: RuleSeen {
                active: false,
                changed_at: now_text(),
                ..s.clone()
            },
            definition: last.map_or_else(|| "{}".to_owned(), |v| v.definition.clone()),
            uses_unlock: true,
        };
        journal::rule_event(state, run_id, &change, RuleEventKind::End).await?;
        tracing::info!(rule = %s.name, event = "rule-end", "rule removed from the config");
        let said = last.and_then(|v| Definition::from_json(&v.definition));
        events.push(RuleEvent {
            rule: s.name.clone(),
            event: RuleEventKind::End,
            fingerprint: s.fingerprint.clone(),
            action: said.as_ref().map(|d| d.action.clone()).unwrap_or_default(),
            after: said.map(|d| d.after).unwrap_or_default(),
        });
    }
    Ok(events)
}

/// The recorded version `fingerprint` of rule `name`.
fn version_of<'v>(
    versions: &'v [RuleVersion],
    name: &str,
    fingerprint: &str,
) -> Option<&'v RuleVersion> {
    versions
        .iter()
        .find(|v| v.name == name && v.fingerprint == fingerprint)
}

/// The refusal of `config` if it removes, shortens or retargets a locked rule (compared
/// with the rule's last recorded version) that no pending unlock frees: exit 78, with the
/// line of each changed key. `None` when the config keeps every lock.
pub async fn refused(config: &Config, state: &State) -> Result<Option<ConfigError>, StateError> {
    let seen = state.rules_seen().await?;
    if !seen.iter().any(|s| s.active && s.locked) {
        return Ok(None);
    }
    let versions = state.rule_versions().await?;
    let unlocks = state.pending_unlocks().await?;
    let problems = lock_problems(config, &seen, &versions, &unlocks);
    Ok((!problems.is_empty()).then_some(ConfigError { problems }))
}

/// What [`refused`] decides, on what the state database holds.
pub fn lock_problems(
    config: &Config,
    seen: &[RuleSeen],
    versions: &[RuleVersion],
    unlocks: &[RuleUnlock],
) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    for s in seen.iter().filter(|s| s.active && s.locked) {
        if unlocks
            .iter()
            .any(|u| u.name == s.name && u.fingerprint == s.fingerprint)
        {
            continue;
        }
        let name = &s.name;
        let locked = format!(
            "the rule is locked (locked = true; the version a pass recorded on {} holds)",
            day_of(&s.changed_at)
        );
        let unlock = format!("if the change is decided, run `retentiond rules unlock {name} --reason TEXT` first (it allows exactly one change, recorded in the audit trail)");
        let problem = |line: usize, key: String, message: String| ConfigProblem {
            file: config.path.clone(),
            line,
            key,
            message,
        };
        let Some(rule) = config.rules.iter().find(|r| &r.name == name) else {
            problems.push(problem(
                usize::try_from(s.line).unwrap_or(0),
                format!("rule \"{name}\""),
                format!("{locked} and may not be removed, but it is no longer in the config (it was at line {} when a pass last recorded it): put it back, or, {unlock}", s.line),
            ));
            continue;
        };
        if rule.fingerprint() == s.fingerprint {
            continue;
        }
        let Some(recorded) = version_of(versions, name, &s.fingerprint)
            .and_then(|v| Definition::from_json(&v.definition))
        else {
            problems.push(problem(
                rule.line,
                format!("rule \"{name}\""),
                format!("{locked}, and its recorded version cannot be read from the state database, so no change can be checked against it; {unlock}"),
            ));
            continue;
        };
        for c in recorded.locked_changes(rule) {
            problems.push(problem(
                rule.line_of(c.key),
                format!("rule \"{name}\" → {}", c.key),
                format!("{locked}: {}. A locked rule keeps its database, table, since and action, and at least its period: put back what that version says, or, {unlock}", c.what),
            ));
        }
    }
    problems
}

/// The day of an RFC 3339 time as stored (`2026-03-03`).
fn day_of(at: &str) -> &str {
    at.get(..10).unwrap_or(at)
}

/// Why a rule could not be unlocked.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    /// No rule of that name is in the config or recorded.
    #[error("no rule \"{0}\" is in the config or in the audit trail's rule history")]
    Unknown(String),
    /// The rule's recorded version is not locked.
    #[error("{0}")]
    NotLocked(String),
    /// The state database.
    #[error("{0}")]
    State(#[from] StateError),
}

/// What an unlock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlocked {
    /// The fingerprint of the locked version it unlocked.
    pub fingerprint: String,
    /// A pending unlock already freed that version: nothing new was written.
    pub already: bool,
    /// The `run_id` of the `rule-unlock` entry (of the earlier one if `already`).
    pub run_id: Option<String>,
}

/// Unlocks rule `name`'s recorded, locked version for exactly one change (the next pass
/// that records a change or the end of the rule uses it up): a `rule-unlock` entry in the
/// trail and `reason` in the state database, atomically, under the pass lock.
pub async fn unlock(
    config: &Config,
    state: &State,
    name: &str,
    reason: &str,
) -> Result<Unlocked, UnlockError> {
    let _lock = state.lock_pass().await?;
    let seen = state.rules_seen().await?;
    let Some(s) = seen.iter().find(|s| s.name == name && s.active) else {
        if config.rules.iter().any(|r| r.name == name) {
            return Err(UnlockError::NotLocked(format!(
                "rule \"{name}\" has not been recorded by a pass yet, so no lock holds it: the lock takes effect at the first pass after `locked = true` is set"
            )));
        }
        return Err(UnlockError::Unknown(name.to_owned()));
    };
    if !s.locked {
        return Err(UnlockError::NotLocked(format!(
            "rule \"{name}\" is not locked (its version recorded {} has no locked = true); it may change without an unlock",
            day_of(&s.changed_at)
        )));
    }
    if state
        .pending_unlocks()
        .await?
        .iter()
        .any(|u| u.name == name && u.fingerprint == s.fingerprint)
    {
        return Ok(Unlocked {
            fingerprint: s.fingerprint.clone(),
            already: true,
            run_id: None,
        });
    }
    let now = Utc::now();
    let mut random = [0u8; 3];
    // Without randomness the time alone still names the unlock.
    let _ = getrandom::getrandom(&mut random);
    let run_id = format!(
        "unlock-{}-{}",
        now.format("%Y%m%dT%H%M%SZ"),
        hex::encode(random)
    );
    let u = RuleUnlock {
        name: name.to_owned(),
        fingerprint: s.fingerprint.clone(),
        reason: reason.to_owned(),
        unlocked_at: crate::state::time_text(now),
    };
    journal::rule_unlock(state, &run_id, s, &u).await?;
    tracing::info!(rule = %name, fingerprint = %s.fingerprint, "locked rule unlocked for one change");
    Ok(Unlocked {
        fingerprint: s.fingerprint.clone(),
        already: false,
        run_id: Some(run_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use std::path::Path;

    fn config(rule_body: &str) -> Config {
        let text = format!(
            "[daemon]\nstate_dir = \"/tmp/x\"\n\n[databases.main]\nurl = \"sqlite:///tmp/x.db\"\n\n{rule_body}"
        );
        parse(Path::new("c.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
    }

    const LOCKED: &str = "[[rule]]\nname = \"r\"\ndatabase = \"main\"\ntable = \"t\"\nkey = \"id\"\nexpires = { since = \"at\", after = \"7 years\" }\naction = \"delete\"\nlocked = true\n";

    fn recorded(c: &Config) -> (Vec<RuleSeen>, Vec<RuleVersion>) {
        let r = &c.rules[0];
        let seen = RuleSeen {
            name: r.name.clone(),
            fingerprint: r.fingerprint(),
            database: r.database.clone(),
            table: r.table.to_string(),
            active: true,
            locked: r.locked,
            line: 42,
            changed_at: "2026-03-03T02:30:00.000000Z".into(),
        };
        let version = RuleVersion {
            name: r.name.clone(),
            fingerprint: r.fingerprint(),
            definition: r.definition().to_json(),
            first_seen_at: seen.changed_at.clone(),
        };
        (vec![seen], vec![version])
    }

    #[test]
    fn a_shorter_period_of_a_locked_rule_is_refused_at_its_line() {
        let (seen, versions) = recorded(&config(LOCKED));
        let shorter = config(&LOCKED.replace("7 years", "5 years"));
        let problems = lock_problems(&shorter, &seen, &versions, &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 12, "the line of expires");
        assert!(problems[0].key.ends_with("expires.after"), "{problems:?}");
        assert!(
            problems[0].message.contains("rules unlock r"),
            "{problems:?}"
        );
        let longer = config(&LOCKED.replace("7 years", "9 years"));
        assert!(lock_problems(&longer, &seen, &versions, &[]).is_empty());
    }

    #[test]
    fn a_removed_locked_rule_is_refused_unless_unlocked() {
        let (seen, versions) = recorded(&config(LOCKED));
        let empty = config("");
        let problems = lock_problems(&empty, &seen, &versions, &[]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 42, "where the rule was when recorded");
        assert!(problems[0].message.contains("no longer in the config"));
        let unlock = RuleUnlock {
            name: "r".into(),
            fingerprint: seen[0].fingerprint.clone(),
            reason: "x".into(),
            unlocked_at: "now".into(),
        };
        assert!(lock_problems(&empty, &seen, &versions, &[unlock]).is_empty());
    }
}

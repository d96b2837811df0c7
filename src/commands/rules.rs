//! `retentiond rules [--history]`: the rules in force with the fingerprints the trail
//! knows them by, and every start, change and end of every rule with what it said then;
//! `rules unlock NAME --reason TEXT`: one change of a locked rule. Also the lock check the
//! other commands run before they act on a config.

use super::{load, CommandError, Out, Status};
use crate::config::{Config, Definition, Rule};
use crate::engine::rule_history::{self, lock_problems, UnlockError};
use crate::state::{RuleEntry, RuleSeen, RuleUnlock, RuleVersion, State};
use serde::Serialize;
use std::path::Path;

/// Output formats of `rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lines for people.
    Text,
    /// JSON.
    Json,
}

/// Refuses `config` (exit 78) if it removes, shortens or retargets a locked rule without
/// an unlock, compared with what the state database last recorded: what `check`, `plan`,
/// `run --once` and the daemon's start run before anything else. Opens the state read-only,
/// and passes when there is none (no pass, no lock).
pub async fn refuse_locked_changes(config: &Config) -> Result<(), CommandError> {
    let Some(state) = open_state(config).await? else {
        return Ok(());
    };
    let refused = rule_history::refused(config, &state).await;
    state.close().await;
    match refused.map_err(CommandError::runtime)? {
        Some(e) => Err(CommandError::Config(e)),
        None => Ok(()),
    }
}

/// The state database if a pass ever created it (read-only: `rules` changes nothing).
async fn open_state(config: &Config) -> Result<Option<State>, CommandError> {
    State::open_read_only_for(&config.daemon)
        .await
        .map_err(CommandError::runtime)
}

/// What the state database says about rules, read at once.
#[derive(Default)]
struct Recorded {
    seen: Vec<RuleSeen>,
    versions: Vec<RuleVersion>,
    unlocks: Vec<RuleUnlock>,
    changed_at: Option<String>,
}

async fn recorded(state: &State) -> Result<Recorded, CommandError> {
    let read = async {
        Ok::<_, crate::state::StateError>(Recorded {
            seen: state.rules_seen().await?,
            versions: state.rule_versions().await?,
            unlocks: state.pending_unlocks().await?,
            changed_at: state.rules_changed_at().await?,
        })
    };
    read.await.map_err(CommandError::runtime)
}

/// `rules [--history]`.
pub async fn rules(
    path: &Path,
    history: bool,
    format: Format,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let state = open_state(&config).await?;
    let result = match (&state, history) {
        (Some(s), true) => write_history(s, format, out).await,
        (None, true) => no_history(&config, format, out),
        (Some(s), false) => match recorded(s).await {
            Ok(r) => write_in_force(&config, &r, format, out),
            Err(e) => Err(e),
        },
        (None, false) => write_in_force(&config, &Recorded::default(), format, out),
    };
    if let Some(s) = state {
        s.close().await;
    }
    result
}

/// One rule in force, as `rules --format json` lists it.
#[derive(Serialize)]
struct InForce<'a> {
    rule: &'a str,
    database: &'a str,
    table: String,
    action: &'static str,
    after: String,
    since: &'a str,
    filter: Option<&'a str>,
    locked: bool,
    fingerprint: String,
    /// Whether the trail holds this very version (else the next pass records it).
    recorded: bool,
    /// When the trail last recorded an event of the rule.
    recorded_at: Option<&'a str>,
    /// Whether an unlock allows the next change of this locked rule.
    unlocked: bool,
    line: usize,
}

fn in_force<'a>(rule: &'a Rule, r: &'a Recorded) -> InForce<'a> {
    let fingerprint = rule.fingerprint();
    let seen = r.seen.iter().find(|s| s.name == rule.name && s.active);
    InForce {
        rule: &rule.name,
        database: &rule.database,
        table: rule.table.to_string(),
        action: rule.action.verb(),
        after: rule.after.to_string(),
        since: rule.since.as_str(),
        filter: rule.filter.as_ref().map(|f| f.sql()),
        locked: rule.locked,
        recorded: seen.is_some_and(|s| s.fingerprint == fingerprint),
        recorded_at: seen.map(|s| s.changed_at.as_str()),
        unlocked: seen.is_some_and(|s| {
            r.unlocks
                .iter()
                .any(|u| u.name == s.name && u.fingerprint == s.fingerprint)
        }),
        fingerprint,
        line: rule.line,
    }
}

fn write_in_force(
    config: &Config,
    r: &Recorded,
    format: Format,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let rules: Vec<InForce> = config.rules.iter().map(|rule| in_force(rule, r)).collect();
    let ending: Vec<&str> = r
        .seen
        .iter()
        .filter(|s| s.active && !config.rules.iter().any(|rule| rule.name == s.name))
        .map(|s| s.name.as_str())
        .collect();
    let refused: Vec<String> = lock_problems(config, &r.seen, &r.versions, &r.unlocks)
        .iter()
        .map(ToString::to_string)
        .collect();
    if format == Format::Json {
        let doc = serde_json::json!({
            "config": config.path.display().to_string(),
            "rules": rules,
            "ending": ending,
            "refused": refused,
            "rules_changed_at": r.changed_at,
        });
        return write_json(&doc, out);
    }
    writeln!(
        out,
        "{} rule{} in force ({}):",
        rules.len(),
        if rules.len() == 1 { "" } else { "s" },
        config.path.display()
    )?;
    for x in &rules {
        let filter = x.filter.map(|f| format!(" where {f}")).unwrap_or_default();
        let lock = match (x.locked, x.unlocked) {
            (true, true) => " [locked; unlocked for one change]",
            (true, false) => " [locked]",
            (false, true) => " [unlocked for one change]",
            (false, false) => "",
        };
        writeln!(
            out,
            "  {:<32} {}.{}: {} after {} since {}{filter}{lock}",
            x.rule, x.database, x.table, x.action, x.after, x.since
        )?;
        let recorded = match (x.recorded, x.recorded_at) {
            (true, Some(at)) => format!("in the audit trail since {at}"),
            (false, Some(_)) => {
                "changed since the audit trail recorded it: the next pass records a rule-change"
                    .to_owned()
            }
            (_, None) => {
                "not in the audit trail yet: the next pass records a rule-start".to_owned()
            }
        };
        writeln!(
            out,
            "  {:<32} fingerprint {} — {recorded}",
            "", x.fingerprint
        )?;
    }
    for name in &ending {
        writeln!(
            out,
            "  {name:<32} no longer in the config: the next pass records a rule-end"
        )?;
    }
    for r in &refused {
        writeln!(out, "refused: {r}")?;
    }
    if let Some(at) = &r.changed_at {
        writeln!(out, "rules last changed: {at}")?;
    }
    Ok(Status::Success)
}

fn write_json(doc: &serde_json::Value, out: Out<'_>) -> Result<Status, CommandError> {
    let text = serde_json::to_string_pretty(doc)
        .map_err(|e| CommandError::runtime(format!("cannot encode the rules: {e}")))?;
    writeln!(out, "{text}")?;
    Ok(Status::Success)
}

fn no_history(config: &Config, format: Format, out: Out<'_>) -> Result<Status, CommandError> {
    match format {
        Format::Json => write_json(&serde_json::json!({ "history": [] }), out),
        Format::Text => {
            writeln!(
                out,
                "no rule history yet: no pass has run ({})",
                config.daemon.state_place()
            )?;
            Ok(Status::Success)
        }
    }
}

/// One rule-history entry of the trail with the version of the rule it names.
#[derive(Serialize)]
struct Event<'a> {
    seq: i64,
    at: &'a str,
    run_id: &'a str,
    rule: &'a str,
    event: &'a str,
    fingerprint: &'a str,
    database: &'a str,
    table: &'a str,
    /// What the rule said in that version (`None` if the state database lost it).
    definition: Option<Definition>,
}

fn event<'a>(e: &'a RuleEntry, versions: &[RuleVersion]) -> Event<'a> {
    Event {
        seq: e.seq,
        at: &e.at,
        run_id: &e.run_id,
        rule: &e.rule,
        event: &e.action,
        fingerprint: &e.fingerprint,
        database: &e.database,
        table: &e.table,
        definition: versions
            .iter()
            .find(|v| v.name == e.rule && v.fingerprint == e.fingerprint)
            .and_then(|v| Definition::from_json(&v.definition)),
    }
}

/// What a version said, in one line.
fn said(d: &Definition) -> String {
    let mut s = format!(
        "{} on {}.{} after {} since {}",
        d.action, d.database, d.table, d.after, d.since
    );
    if let Some(f) = &d.filter {
        s.push_str(&format!(" where {f}"));
    }
    if !d.anonymize.is_empty() {
        let cols: Vec<String> = d
            .anonymize
            .iter()
            .map(|(c, v)| format!("{c}={v}"))
            .collect();
        s.push_str(&format!(" ({})", cols.join(", ")));
    }
    if let Some(f) = &d.flag {
        s.push_str(&format!(" (set {} = {})", f.column, f.value));
    }
    if d.mode != "enforce" {
        s.push_str(&format!(", mode {}", d.mode));
    }
    if d.locked {
        s.push_str(", locked");
    }
    s
}

async fn write_history(
    state: &State,
    format: Format,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let entries = state.rule_entries().await.map_err(CommandError::runtime)?;
    let versions = state.rule_versions().await.map_err(CommandError::runtime)?;
    let events: Vec<Event> = entries.iter().map(|e| event(e, &versions)).collect();
    if format == Format::Json {
        return write_json(&serde_json::json!({ "history": events }), out);
    }
    if events.is_empty() {
        writeln!(out, "no rule history in the audit trail yet")?;
        return Ok(Status::Success);
    }
    for e in &events {
        let what = match (&e.definition, e.event) {
            (_, "rule-unlock") => {
                "unlocked for one change (the reason is in the state database, not the trail)"
                    .to_owned()
            }
            (Some(d), _) => said(d),
            (None, _) => "(this version's definition is not in the state database)".to_owned(),
        };
        writeln!(
            out,
            "{}  #{:<8} {:<12} {:<32} {}  {what}",
            e.at, e.seq, e.event, e.rule, e.fingerprint
        )?;
    }
    writeln!(out, "A record's entry names its rule and time: the rule said what its latest rule-start or rule-change before that time says.")?;
    Ok(Status::Success)
}

/// `rules unlock NAME --reason TEXT`: exit 2 for a rule that is unknown or not locked.
pub async fn unlock(
    path: &Path,
    name: &str,
    reason: &str,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(CommandError::Usage(
            "--reason: say why the locked rule may change (a new law, a decision of the DPO); it is kept in the state database".into(),
        ));
    }
    if let Some(probe) = open_state(&config).await? {
        probe.close().await;
    } else {
        let why = if config.rules.iter().any(|r| r.name == name) {
            format!("rule \"{name}\" has not been recorded by a pass yet (no pass has run), so no lock holds it")
        } else {
            format!("no rule \"{name}\" is in the config, and no pass has run yet")
        };
        return Err(CommandError::Usage(why));
    }
    let state = State::open_for(&config.daemon)
        .await
        .map_err(CommandError::runtime)?;
    let result = rule_history::unlock(&config, &state, name, reason).await;
    state.close().await;
    let done = match result {
        Ok(done) => done,
        Err(e @ (UnlockError::Unknown(_) | UnlockError::NotLocked(_))) => {
            return Err(CommandError::Usage(e.to_string()))
        }
        Err(UnlockError::State(e)) => return Err(CommandError::runtime(e)),
    };
    if done.already {
        writeln!(
            out,
            "rule \"{name}\" is already unlocked for one change (version {}); nothing was written",
            done.fingerprint
        )?;
        return Ok(Status::Success);
    }
    writeln!(
        out,
        "rule \"{name}\" unlocked for one change of version {}: the next pass records the change (rule-change or rule-end) and the lock holds again from the version it records.",
        done.fingerprint
    )?;
    writeln!(
        out,
        "audit trail: rule-unlock, run {}; the reason is kept in the state database, not in the trail",
        done.run_id.as_deref().unwrap_or_default()
    )?;
    Ok(Status::Success)
}

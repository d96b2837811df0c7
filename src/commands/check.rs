//! `retentiond check`: the config, the connections, every table and column a rule or a
//! `[[subject]]` names, foreign keys nobody handles, tables no subject covers, rules that
//! lack what the processing register needs, and what each rule would do now (counted on
//! a database's `read_url` when it has one; the catalog is read on the primary). Changes
//! nothing.

use super::plan::write_plan;
use super::{load, CommandError, Out, Status};
use crate::config::{Action, Config, ConfigError};
use crate::db::replicas::Behind;
use crate::db::{schema, Db};
use crate::engine::plan::{plan_on, CountOn};
use crate::engine::prepare::{prepare, Prepared};
use crate::engine::replicas::{Replicas, Watch};
use crate::engine::subjects::{check_subjects, uncovered};
use chrono::Utc;
use std::collections::BTreeMap;
use std::path::Path;

/// `check`.
pub async fn check(path: &Path, out: Out<'_>) -> Result<Status, CommandError> {
    let config = load(path)?;
    super::rules::refuse_locked_changes(&config).await?;
    let prepared = prepare(&config, &[]).await?;
    // `prepare` opened only the rules' databases; the others are checked here, subjects and
    // all, before anything is written, so that a broken subject there refuses the config
    // (exit 78) like one on a rule's database.
    let others = match other_databases(&config).await {
        Ok(others) => others,
        Err(e) => {
            prepared.close().await;
            return Err(e.into());
        }
    };
    let on = CountOn::read_urls(&config, &prepared).await;
    let planned = plan_on(&prepared, &on, Utc::now(), config.daemon.timezone).await;
    on.close().await;
    for warning in reference_warnings(&config, &prepared).await {
        writeln!(out, "warning: {warning}")?;
    }
    for warning in uncovered(&config) {
        writeln!(out, "warning: {warning}")?;
    }
    for warning in crate::report::register::gaps(&config) {
        writeln!(out, "warning: {warning}")?;
    }
    for note in prepared.notes.iter().chain(&others.notes) {
        writeln!(out, "note: {note}")?;
    }
    for note in on.describe() {
        writeln!(out, "note: {note}")?;
    }
    for line in replica_lines(&config, &prepared).await {
        writeln!(out, "{line}")?;
    }
    prepared.close().await;
    let mut failed = others.unreachable;
    for line in &others.lines {
        writeln!(out, "{line}")?;
    }
    for rule in config.rules.iter().filter(|r| r.legal_basis.is_empty()) {
        writeln!(
            out,
            "warning: rule '{}' (line {}) has no legal_basis; auditors will ask for one",
            rule.name, rule.line
        )?;
    }
    writeln!(
        out,
        "config {} is valid: {} rules, {} subjects, {} databases",
        config.path.display(),
        config.rules.len(),
        config.subjects.len(),
        config.databases.len()
    )?;
    failed |= write_plan(&planned, out)?;
    let in_doubt = super::batches_in_doubt(&config).await;
    if in_doubt > 0 {
        writeln!(out, "{}", super::in_doubt_note(in_doubt))?;
    }
    Ok(Status::from_failed(failed))
}

/// How far behind the replicas of each rule's database with a `max_replica_lag` are now:
/// a `note:` per replica within the limit, a `warning:` per replica beyond it or that
/// cannot tell (every batch on that database would wait for it). Not an error: a replica
/// paused for maintenance is no fault of the config.
async fn replica_lines(config: &Config, prepared: &Prepared<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, db) in &prepared.dbs {
        let (Some(policy), Some(spec)) = (config.replica_policy(name), config.databases.get(name))
        else {
            continue;
        };
        let seen = crate::engine::replicas::SeenStandbys::default();
        let mut watch = Watch::new(Replicas {
            policy,
            spec,
            seen: &seen,
        });
        let readings = watch.readings(db).await;
        watch.close().await;
        if readings.is_empty() {
            lines.push(format!("warning: database '{name}' has max_replica_lag but no standby is connected to it now, so batches do not wait; list a standby that may be down in replicas to have batches wait for it"));
        }
        for r in readings {
            lines.push(match r.behind {
                Behind::By(d) if d <= policy.max_lag => format!(
                    "note: database '{name}': replica {} is {:.1} s behind (max_replica_lag {:.1} s)",
                    r.replica,
                    d.as_secs_f64(),
                    policy.max_lag.as_secs_f64()
                ),
                Behind::By(d) => format!(
                    "warning: database '{name}': replica {} is {:.1} s behind, more than max_replica_lag ({:.1} s): batches on it wait until it catches up",
                    r.replica,
                    d.as_secs_f64(),
                    policy.max_lag.as_secs_f64()
                ),
                Behind::Unknown(why) => format!(
                    "warning: database '{name}': how far replica {} is behind cannot be told ({why}): batches on it wait until it can",
                    r.replica
                ),
            });
        }
    }
    lines
}

/// What `check` found on the databases no rule uses.
struct Others {
    /// `warning: …` and `error: …` lines, one per database that needs one.
    lines: Vec<String>,
    /// One of them could not be reached (`check` fails: exit 1).
    unreachable: bool,
    /// Notes from checking their subjects.
    notes: Vec<String>,
}

/// Connects to every database no rule uses: an unreachable one is an error line; one that
/// no subject uses either is a warning line (configured, but for nothing); the subjects of
/// the others are checked against their tables, and any mismatch refuses the config.
async fn other_databases(config: &Config) -> Result<Others, ConfigError> {
    let mut others = Others {
        lines: Vec::new(),
        unreachable: false,
        notes: Vec::new(),
    };
    let mut problems = Vec::new();
    for (name, spec) in &config.databases {
        if config.rules.iter().any(|r| &r.database == name) {
            continue;
        }
        let db = match Db::connect(spec).await {
            Ok(db) => db,
            Err(e) => {
                others.lines.push(format!("error: {e}"));
                others.unreachable = true;
                continue;
            }
        };
        if config.subjects.iter().any(|s| &s.database == name) {
            let dbs = BTreeMap::from([(name.clone(), db)]);
            let found = check_subjects(config, &dbs, &mut schema::Shapes::default()).await;
            problems.extend(found.problems);
            others.notes.extend(found.notes);
            for db in dbs.values() {
                db.close().await;
            }
        } else {
            db.close().await;
            others.lines.push(format!(
                "warning: database '{name}' is reachable but no rule or subject uses it"
            ));
        }
    }
    if problems.is_empty() {
        Ok(others)
    } else {
        Err(ConfigError { problems })
    }
}

/// Delete rules on tables that other tables reference by foreign key, where the rule does
/// not say (with `keep_while`) what happens to the referencing rows.
async fn reference_warnings(config: &Config, prepared: &Prepared<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for rule in config.rules.iter().filter(|r| r.action == Action::Delete) {
        let Some(db) = prepared.db(rule) else {
            continue;
        };
        let refs = match schema::referencing(db, &rule.table).await {
            Ok(r) => r,
            Err(e) => {
                out.push(format!(
                    "rule '{}': could not read the foreign keys that reference {}: {e}",
                    rule.name, rule.table
                ));
                continue;
            }
        };
        for r in refs {
            let names = |table: &crate::config::TableName, fk: &crate::config::Ident| {
                table.name.as_str().eq_ignore_ascii_case(&r.table)
                    && fk.as_str().eq_ignore_ascii_case(&r.column)
            };
            let covered = rule
                .keep_while
                .iter()
                .any(|k| names(&k.table, &k.foreign_key))
                || rule
                    .children
                    .iter()
                    .any(|c| names(&c.table, &c.foreign_key));
            if !covered {
                out.push(format!(
                    "rule '{}' (line {}) deletes from {}, which {}.{} references ({}). Say what should happen: keep the record while it is referenced (keep_while = [{{ table = \"{}\", foreign_key = \"{}\", since = \"…\", after = \"…\" }}]) or give {} a rule of its own.",
                    rule.name, rule.line, rule.table, r.table, r.column, r.on_delete, r.table, r.column, r.table
                ));
            }
        }
    }
    out
}

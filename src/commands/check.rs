//! `retentiond check`: the config, the connections, every table and column a rule names,
//! foreign keys nobody handles, and what each rule would do now. Changes nothing.

use super::plan::write_plan;
use super::{load, CommandError, Out, Status};
use crate::config::{Action, Config};
use crate::db::{schema, Db};
use crate::engine::plan::plan as plan_rules;
use crate::engine::prepare::{prepare, Prepared};
use chrono::Utc;
use std::path::Path;

/// `check`.
pub async fn check(path: &Path, out: Out<'_>) -> Result<Status, CommandError> {
    let config = load(path)?;
    let prepared = prepare(&config, &[]).await?;
    let planned = plan_rules(&prepared, Utc::now(), config.daemon.timezone).await;
    for warning in reference_warnings(&config, &prepared).await {
        writeln!(out, "warning: {warning}")?;
    }
    for note in &prepared.notes {
        writeln!(out, "note: {note}")?;
    }
    prepared.close().await;
    let mut failed = false;
    for (name, spec) in &config.databases {
        if config.rules.iter().any(|r| &r.database == name) {
            continue;
        }
        match Db::connect(spec).await {
            Ok(db) => {
                db.close().await;
                writeln!(
                    out,
                    "warning: database '{name}' is reachable but no rule uses it"
                )?;
            }
            Err(e) => {
                failed = true;
                writeln!(out, "error: {e}")?;
            }
        }
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
        "config {} is valid: {} rules, {} databases",
        config.path.display(),
        config.rules.len(),
        config.databases.len()
    )?;
    failed |= write_plan(&planned, out)?;
    let in_doubt = super::batches_in_doubt(&config).await;
    if in_doubt > 0 {
        writeln!(out, "{}", super::in_doubt_note(in_doubt))?;
    }
    Ok(Status::from_failed(failed))
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
            let covered = rule.keep_while.iter().any(|k| {
                k.table.name.as_str().eq_ignore_ascii_case(&r.table)
                    && k.foreign_key.as_str().eq_ignore_ascii_case(&r.column)
            });
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

//! One enforcement pass: settle what an earlier pass left in doubt, check every rule
//! against its table (nothing is touched if any rule is wrong), then run the rules one by
//! one, each independently, and record the outcome.

use super::execute::{execute_rule, Context};
use super::hasher::Hasher;
use super::prepare::{prepare, Readiness};
use super::reconcile::reconcile;
use crate::config::{Action, Config, ConfigError, Cutoff, Strategy};
use crate::report::summary::{RuleOutcome, RuleStatus, RunSummary};
use crate::state::{now_text, time_text, State, StateError};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// Why a pass could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// A rule does not fit its table: exit 78, nothing touched.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The state database or directory.
    #[error("{0}")]
    State(#[from] StateError),
    /// Something else that stops the pass before it starts.
    #[error("{0}")]
    Other(String),
}

/// A new pass id: its UTC start and a random suffix, so ids never repeat even if the
/// state database is recreated (journal rows in target databases are keyed by it).
pub fn new_run_id(at: DateTime<Utc>) -> String {
    let mut r = [0u8; 3];
    // Without randomness the time alone still orders runs; collisions need the same second.
    let _ = getrandom::getrandom(&mut r);
    format!("{}-{}", at.format("%Y%m%dT%H%M%SZ"), hex::encode(r))
}

/// Runs one pass over the `selected` rules (all if empty).
pub async fn run_pass(
    config: &Config,
    state: &State,
    selected: &[String],
    stop: &CancellationToken,
) -> Result<RunSummary, PassError> {
    let _lock = state.lock_pass()?;
    state.close_interrupted_runs().await?;
    let reconciled = reconcile(config, state).await?;
    let prepared = prepare(config, selected).await?;
    let hasher = if needs_hasher(config) {
        Some(Hasher::load_or_create(&config.daemon.state_dir).map_err(PassError::Other)?)
    } else {
        None
    };
    let started = Utc::now();
    let run_id = new_run_id(started);
    let started_at = time_text(started);
    state.start_run(&run_id, &started_at).await?;
    let names: Vec<&str> = prepared
        .rules
        .iter()
        .map(|(r, _)| r.name.as_str())
        .collect();
    state.mark_rules_started(&names, &started_at).await?;
    let span = tracing::info_span!("pass", run_id = %run_id);
    let _enter = span.enter();
    tracing::info!(rules = prepared.rules.len(), "pass started");
    let mut outcomes = Vec::new();
    for (rule, readiness) in &prepared.rules {
        let rule_index = config
            .rules
            .iter()
            .position(|r| r.name == rule.name)
            .unwrap_or(0);
        let outcome = match (readiness, prepared.db(rule)) {
            (Readiness::Ready(m), Some(db)) => {
                match Cutoff::at(started, rule.after, config.daemon.timezone) {
                    Some(cutoff) => {
                        let ctx = Context {
                            db,
                            state,
                            run_id: &run_id,
                            rule_index,
                            hasher: hasher.as_ref(),
                            stop,
                        };
                        execute_rule(m, &cutoff, &ctx).await
                    }
                    None => failed(
                        rule,
                        format!("{} before now is out of the calendar's range", rule.after),
                    ),
                }
            }
            (Readiness::Unavailable(why), _) => failed(rule, why.clone()),
            (Readiness::Ready(_), None) => {
                failed(rule, format!("database '{}' is not open", rule.database))
            }
        };
        tracing::info!(rule = %outcome.rule, action = %outcome.action, rows = outcome.acted, status = ?outcome.status, "rule done");
        outcomes.push(outcome);
    }
    prepared.close().await;
    let (audit_entries, audit_head) = crate::audit::head(state).await?;
    let mut summary = RunSummary {
        run_id: run_id.clone(),
        started_at,
        finished_at: now_text(),
        status: String::new(),
        rules: outcomes,
        reconciled,
        audit_entries,
        audit_head,
    };
    summary.status = if summary.failed() { "failed" } else { "ok" }.to_owned();
    let json = serde_json::to_string(&summary).map_err(|e| PassError::Other(e.to_string()))?;
    state.finish_run(&run_id, &summary.status, &json).await?;
    tracing::info!(rows = summary.total_acted(), status = %summary.status, "pass finished");
    Ok(summary)
}

fn needs_hasher(config: &Config) -> bool {
    config.rules.iter().any(|r| match &r.action {
        Action::Anonymize(cols) => cols.iter().any(|(_, s)| *s == Strategy::Hash),
        _ => false,
    })
}

fn failed(rule: &crate::config::Rule, error: String) -> RuleOutcome {
    RuleOutcome {
        rule: rule.name.clone(),
        description: rule.description.clone(),
        legal_basis: rule.legal_basis.clone(),
        database: rule.database.clone(),
        table: rule.table.to_string(),
        action: rule.action.verb().to_owned(),
        cutoff: None,
        acted: 0,
        batches: 0,
        status: RuleStatus::Failed,
        error: Some(error),
    }
}

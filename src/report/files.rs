//! Reports on disk and in the mail: after every pass the management report is saved under
//! `state_dir/reports/` (named by run id, which starts with the UTC start time, so names
//! sort by date), old ones are pruned after `[report] keep_days`, and — if
//! `[report.email]` is set — it is queued and mailed. A mail that cannot be sent stays
//! queued for the next pass and never fails enforcement.

use super::document::{render, Format};
use super::model::{build, Report};
use super::summary::RunSummary;
use crate::config::Config;
use crate::state::{time_text, State, StateError};
use chrono::{DateTime, Duration, Utc};
use std::path::{Path, PathBuf};

/// Builds the report of `summary` with the 30 days of history before it.
pub async fn report_of(
    config: &Config,
    state: &State,
    summary: &RunSummary,
) -> Result<Report, StateError> {
    let at = DateTime::parse_from_rfc3339(&summary.started_at)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now());
    let from = time_text(at - Duration::days(31));
    let history: Vec<RunSummary> = state
        .summaries_between(&from, &summary.started_at)
        .await?
        .iter()
        .filter_map(|s| serde_json::from_str(s).ok())
        .collect();
    Ok(build(
        summary,
        &history,
        config.daemon.timezone,
        config.daemon.language,
    ))
}

/// Where the reports of `config` are kept.
pub fn reports_dir(config: &Config) -> PathBuf {
    config.daemon.state_dir.join("reports")
}

/// Saves the report as HTML, text and JSON; returns the HTML path.
pub fn save(dir: &Path, report: &Report) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut html = PathBuf::new();
    for (format, ext) in [
        (Format::Html, "html"),
        (Format::Text, "txt"),
        (Format::Json, "json"),
    ] {
        let path = dir.join(format!("{}.{ext}", report.run_id));
        std::fs::write(&path, render(report, format)?)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if format == Format::Html {
            html = path;
        }
    }
    Ok(html)
}

/// Removes saved reports older than `keep_days` (by the date their name starts with).
pub fn prune(dir: &Path, keep_days: u32) -> usize {
    let cutoff = (Utc::now() - Duration::days(i64::from(keep_days)))
        .format("%Y%m%d")
        .to_string();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let day = name.get(..8).unwrap_or("");
        if day.len() == 8
            && day.chars().all(|c| c.is_ascii_digit())
            && day < cutoff.as_str()
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// After a pass: save the report, prune old ones, queue and send the mail. Problems are
/// logged, never raised: the pass itself has already happened and is audited.
pub async fn publish(config: &Config, state: &State, summary: &RunSummary) -> Option<PathBuf> {
    let html = match report_of(config, state, summary).await {
        Ok(report) => match save(&reports_dir(config), &report) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "could not save the report");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "could not build the report");
            None
        }
    };
    let pruned = prune(&reports_dir(config), config.report.keep_days);
    if pruned > 0 {
        tracing::info!(
            files = pruned,
            keep_days = config.report.keep_days,
            "old reports removed"
        );
    }
    if config.report.email.is_some() {
        if let Err(e) = state.queue_mail(&summary.run_id).await {
            tracing::warn!(error = %e, "could not queue the report mail");
        }
        super::mail::deliver(config, state).await;
    }
    html
}

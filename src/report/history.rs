//! A pass's management report with its history: the summaries of the 30 days before it,
//! from the run history, for the trend. Shared by `report`, the saved files and the mail.

use super::model::{build, Report};
use crate::config::Config;
use crate::engine::outcome::RunSummary;
use crate::state::{time_text, State, StateError};
use chrono::{DateTime, Duration, Utc};

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
    let mut report = build(
        summary,
        &history,
        config.daemon.timezone,
        config.daemon.language,
    );
    let open = state.open_requests().await?;
    if !open.is_empty() {
        let today = at.with_timezone(&config.daemon.timezone).date_naive();
        report.requests = Some(crate::engine::requests::open_and_overdue(&open, today));
    }
    Ok(report)
}

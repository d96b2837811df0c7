//! After a pass: save its report (and prune old ones), then queue and send the mail if
//! `[report.email]` is set. A mail that cannot be sent stays queued for the next pass and
//! never fails enforcement.

use super::files::{prune, reports_dir, save};
use super::history::report_of;
use super::mail;
use crate::config::Config;
use crate::engine::outcome::RunSummary;
use crate::state::State;
use std::path::PathBuf;

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
        mail::deliver(config, state).await;
    }
    html
}

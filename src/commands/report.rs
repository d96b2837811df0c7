//! `retentiond report [--last | --run ID | --date DAY]`: the management report of a pass,
//! as HTML, text or JSON.

use super::{load, CommandError, Out, Status};
use crate::config::{Config, Moment};
use crate::engine::outcome::RunSummary;
use crate::report::document::render;
use crate::report::history::report_of;
use crate::state::{time_text, State};
use std::path::Path;

pub use crate::report::document::Format;

/// Which pass to report on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which<'a> {
    /// The last finished pass.
    Last,
    /// A pass by id.
    Run(&'a str),
    /// The last pass that started on this date (`YYYY-MM-DD`, configured timezone).
    Date(&'a str),
}

/// `report`.
pub async fn report(
    path: &Path,
    which: Which<'_>,
    format: Format,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let state = State::open_read_only_for(&config.daemon)
        .await
        .map_err(CommandError::runtime)?
        .ok_or_else(|| {
            CommandError::Runtime(format!(
                "no pass has run yet ({}); run `retentiond run --once` first",
                config.daemon.state_place()
            ))
        })?;
    let text = report_from(&config, &state, which, format).await;
    state.close().await;
    write!(out, "{}", text?)?;
    Ok(Status::Success)
}

async fn report_from(
    config: &Config,
    state: &State,
    which: Which<'_>,
    format: Format,
) -> Result<String, CommandError> {
    let found = match which {
        Which::Run(id) => state.run(Some(id)).await.map(|r| r.and_then(|r| r.summary)),
        Which::Date(d) => {
            let from = Moment::parse_date(d, config.daemon.timezone)
                .map_err(|e| CommandError::Usage(format!("--date: {e}")))?
                .at;
            let until = time_text(from + chrono::Duration::days(1));
            state
                .summaries_between(&time_text(from), &until)
                .await
                .map(|v| v.into_iter().last())
        }
        Which::Last => state.run(None).await.map(|r| r.and_then(|r| r.summary)),
    };
    let summary = found.map_err(CommandError::runtime)?.ok_or_else(|| {
        CommandError::Runtime(match which {
            Which::Run(id) => {
                format!("no finished pass with id {id}; `retentiond audit export` lists run ids")
            }
            Which::Date(d) => format!("no finished pass on {d}"),
            Which::Last => "no finished pass yet; run `retentiond run --once` first".to_owned(),
        })
    })?;
    let summary = serde_json::from_str::<RunSummary>(&summary).map_err(|e| {
        CommandError::Runtime(format!(
            "the stored summary of this pass cannot be read: {e}"
        ))
    })?;
    let report = report_of(config, state, &summary)
        .await
        .map_err(CommandError::runtime)?;
    render(&report, format).map_err(CommandError::Runtime)
}

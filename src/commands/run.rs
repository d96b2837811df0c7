//! `retentiond run --once` (one pass now, then its summary) and `retentiond run` (the
//! daemon). Both stop cleanly on SIGTERM/SIGINT: the batch in flight finishes and is
//! audited first.

use super::{load, CommandError, Out, Status};
use crate::config::Config;
use crate::daemon::{self, Ended};
use crate::engine::outcome::RunSummary;
use crate::engine::pass::{run_prepared, PassError, PassOptions};
use crate::engine::prepare::prepare;
use crate::progress::Reporter;
use crate::report::render;
use crate::signal::Listener;
use crate::state::State;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// `run --once`: one pass of `rules` (all if empty) now; writes the summary and saves the
/// report under `state_dir/reports`. `confirm` approves the exact count the single
/// selected rule may act on past its brake.
pub async fn once(
    path: &Path,
    rules: &[String],
    confirm: Option<u64>,
    stop: CancellationToken,
    progress: Reporter,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    if let Some(unknown) = rules
        .iter()
        .find(|n| !config.rules.iter().any(|r| &r.name == *n))
    {
        let known: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
        return Err(CommandError::Usage(format!(
            "--rule {unknown}: no such rule in {}; rules are: {}",
            config.path.display(),
            known.join(", ")
        )));
    }
    if confirm.is_some() && rules.len() != 1 {
        return Err(CommandError::Usage(
            "--confirm approves one rule's count: give exactly one --rule NAME with it".into(),
        ));
    }
    super::rules::refuse_locked_changes(&config).await?;
    let options = PassOptions {
        rules: rules.to_vec(),
        confirm,
        progress,
    };
    let (summary, _) = one_pass(&config, &options, &stop).await?;
    write!(out, "{}", render::text(&summary, config.daemon.language))?;
    Ok(Status::from_failed(summary.failed()))
}

/// Runs a pass and publishes its report (saved, and mailed if configured). Returns the
/// summary and the saved HTML report.
pub(super) async fn one_pass(
    config: &Config,
    options: &PassOptions,
    stop: &CancellationToken,
) -> Result<(RunSummary, Option<PathBuf>), CommandError> {
    // Every rule is checked against its table first: a config that does not fit (exit 78)
    // leaves no state directory behind and takes no lock.
    let prepared = prepare(config, &options.rules).await?;
    let state = match State::open_for(&config.daemon).await {
        Ok(s) => s,
        Err(e) => {
            prepared.close().await;
            return Err(CommandError::runtime(e));
        }
    };
    let result = run_prepared(config, &state, prepared, options, stop).await;
    let html = match &result {
        Ok(summary) => crate::report::publish::publish(config, &state, summary).await,
        Err(_) => None,
    };
    state.close().await;
    match result {
        Ok(summary) => Ok((summary, html)),
        Err(PassError::Config(e)) => Err(CommandError::Config(e)),
        Err(e) => Err(CommandError::runtime(e)),
    }
}

/// `run`: the daemon, until a stop signal (exit 0 after a clean stop, so that systemd
/// records success; 1 if a second signal abandoned a batch).
pub async fn daemon(path: &Path, signals: &mut Listener) -> Result<Status, CommandError> {
    let config = load(path)?;
    super::rules::refuse_locked_changes(&config).await?;
    match daemon::run(path, config, signals).await {
        Ok(Ended::Stopped(_)) => Ok(Status::Success),
        Ok(Ended::Aborted(_)) => Ok(Status::Failed),
        Err(e) => Err(CommandError::runtime(e)),
    }
}

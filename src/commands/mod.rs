//! The verbs of the binary, at the edge of the library: each command loads what it needs,
//! calls into the engine, audit or report, and writes what the user reads to the writer it
//! is given. None prints by itself or ends the process: each returns a [`Status`] or a
//! [`CommandError`], and `main.rs` alone prints errors and maps both to exit codes.

pub mod audit;
pub mod check;
pub mod demo;
pub mod holds;
pub mod plan;
pub mod register;
pub mod report;
pub mod request;
pub mod rules;
pub mod run;
pub mod state;

use crate::config::{self, Config, ConfigError};
use crate::signal::{Listener, SignalTo, Stop};
use std::future::Future;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// How a command that ran ended (its output is already written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything it was asked to do was done: exit 0.
    Success,
    /// It ran, and what it wrote says what failed (a rule, a database, a broken trail):
    /// exit 1.
    Failed,
    /// A (first) stop signal ended it early, after the batch in flight was finished and
    /// audited: exit 128 + the signal (130 for Ctrl-C). A command abandoned by a second
    /// signal ends `Failed` instead: a batch may be left in doubt.
    Interrupted(Stop),
}

impl Status {
    /// The process exit code (PRODUCT.md fixes 0 and 1).
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failed => 1,
            Status::Interrupted(stop) => stop.exit_code(),
        }
    }

    /// `Failed` if `failed`, else `Success`.
    pub fn from_failed(failed: bool) -> Status {
        if failed {
            Status::Failed
        } else {
            Status::Success
        }
    }
}

/// Why a command could not do its work. Its message is for the user, complete: what went
/// wrong, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The config is invalid, or a rule does not fit its table; nothing was touched
    /// (exit 78).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The command line asks for something impossible (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A runtime failure: a database or the state directory (exit 1).
    #[error("{0}")]
    Runtime(String),
    /// The output could not be written (e.g. the reader of a pipe went away; exit 1).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CommandError {
    /// The process exit code (fixed by PRODUCT.md: 78 config, 2 usage, 1 runtime).
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Config(_) => 78,
            CommandError::Usage(_) => 2,
            CommandError::Runtime(_) | CommandError::Output(_) => 1,
        }
    }

    /// A runtime failure from anything displayable.
    pub fn runtime(e: impl std::fmt::Display) -> Self {
        CommandError::Runtime(e.to_string())
    }
}

/// What every command writes to: standard output, or a buffer in tests.
pub type Out<'a> = &'a mut dyn std::io::Write;

/// Loads and validates the config at `path`.
pub fn load(path: &Path) -> Result<Config, CommandError> {
    Ok(config::load(path)?)
}

/// How many batches an interrupted pass left in doubt (0 if no pass ever ran, or the state
/// database cannot be read: `check` and `plan` inform, they do not fail on it).
pub async fn batches_in_doubt(config: &Config) -> usize {
    match crate::state::State::open_read_only_for(&config.daemon).await {
        Ok(Some(state)) => {
            let n = state.pending().await.map(|p| p.len()).unwrap_or(0);
            state.close().await;
            n
        }
        _ => 0,
    }
}

/// The note `check` and `plan` print when batches are in doubt.
pub fn in_doubt_note(n: usize) -> String {
    format!("note: {n} batches from an interrupted pass are in doubt; the next pass (or the daemon's start) settles them against their databases before anything else")
}

/// What a stop signal does to a running command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// It acts on data: the first signal asks it (through its token) to finish the batch in
    /// flight, audit it and return; a second abandons it.
    Finish,
    /// It changes nothing: the first signal abandons it.
    Abandon,
}

/// Runs `command` under `signals` (see [`OnStop`]): the first SIGINT/SIGTERM cancels the
/// token it was given, or abandons it; a second one abandons it at once (the next start
/// settles a batch left in doubt). Either way it ends `Interrupted`. SIGHUP means nothing
/// outside the daemon and is ignored.
pub async fn under_signals<F, Fut>(
    signals: &mut Listener,
    on_stop: OnStop,
    command: F,
) -> Result<Status, CommandError>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<Status, CommandError>>,
{
    let stop = CancellationToken::new();
    let work = command(stop.clone());
    tokio::pin!(work);
    let mut stopped_by: Option<Stop> = None;
    loop {
        tokio::select! {
            r = &mut work => {
                // A pass that also failed says so (1); one that only stopped early, 128+n.
                return match (r, stopped_by) {
                    (Ok(Status::Success), Some(s)) => Ok(Status::Interrupted(s)),
                    (r, _) => r,
                };
            }
            sig = signals.recv() => match sig {
                Some(SignalTo::Reload) => {
                    tracing::info!("SIGHUP ignored: only `retentiond run` (the daemon) reloads its config");
                }
                Some(SignalTo::Shutdown(s)) if on_stop == OnStop::Abandon => {
                    return Ok(Status::Interrupted(s));
                }
                Some(SignalTo::Shutdown(_)) if stopped_by.is_some() => {
                    // Not "interrupted after the batch was audited": a batch may be left
                    // in doubt, for the next start to settle. Exit 1, as the daemon does.
                    tracing::warn!("second stop signal: stopping at once; the next start settles the batch in flight");
                    return Ok(Status::Failed);
                }
                Some(SignalTo::Shutdown(s)) => {
                    tracing::info!("stop signal: finishing the batch in flight, then stopping (send it again to stop at once)");
                    stopped_by = Some(s);
                    stop.cancel();
                }
                None => return work.await,
            },
        }
    }
}

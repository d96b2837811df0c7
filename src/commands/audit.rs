//! `retentiond audit verify` and `audit export`: the trail for auditors.

use super::{load, CommandError, Out, Status};
use crate::audit::{export, verify, Verdict};
use crate::config::{Config, Moment};
use crate::state::{time_text, State};
use std::path::Path;

pub use crate::audit::export::Format as ExportFormat;

/// The state database if a pass ever created it (read-only commands never create one).
async fn open_state(config: &Config) -> Result<Option<State>, CommandError> {
    State::open_read_only(&config.daemon.state_dir)
        .await
        .map_err(CommandError::runtime)
}

/// `audit verify`: exit 0 only if every entry is intact and in order.
pub async fn verify_trail(path: &Path, out: Out<'_>) -> Result<Status, CommandError> {
    let config = load(path)?;
    let Some(state) = open_state(&config).await? else {
        writeln!(
            out,
            "audit trail is empty (no pass has run yet; state directory {})",
            config.daemon.state_dir.display()
        )?;
        return Ok(Status::Success);
    };
    let verdict = verify(&state).await;
    let pending = state.pending().await.map(|p| p.len()).unwrap_or(0);
    state.close().await;
    match verdict.map_err(CommandError::runtime)? {
        Verdict::Intact { entries, head } => {
            writeln!(
                out,
                "audit trail intact: {entries} entries, head hash {head}"
            )?;
            if pending > 0 {
                writeln!(out, "note: {pending} batches from an interrupted pass are still to be settled; the next pass settles them")?;
            }
            Ok(Status::Success)
        }
        Verdict::Broken { seq, reason } => {
            writeln!(out, "audit trail BROKEN at entry {seq}: {reason}")?;
            Ok(Status::Failed)
        }
    }
}

/// `audit export`: the trail (between `since` and `until`, UTC) as JSON Lines or CSV,
/// streamed to `out` (memory stays flat however long the trail is).
pub async fn export_trail(
    path: &Path,
    since: Option<&str>,
    until: Option<&str>,
    format: ExportFormat,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let bound = |s: Option<&str>, flag: &str| -> Result<Option<String>, CommandError> {
        s.map(|s| {
            Moment::parse(s, chrono_tz::UTC)
                .map(|m| time_text(m.at))
                .map_err(|e| CommandError::Usage(format!("{flag}: {e}")))
        })
        .transpose()
    };
    let (since, until) = (bound(since, "--since")?, bound(until, "--until")?);
    let Some(state) = open_state(&config).await? else {
        if format == ExportFormat::Csv {
            writeln!(out, "{}", export::COLUMNS.join(","))?;
        }
        return Ok(Status::Success);
    };
    let mut out = std::io::BufWriter::new(out);
    let r = export::export(&state, since.as_deref(), until.as_deref(), format, &mut out).await;
    state.close().await;
    match r {
        Ok(_) => {}
        Err(export::ExportError::Write(e)) => return Err(CommandError::Output(e)),
        Err(e) => return Err(CommandError::runtime(e)),
    }
    std::io::Write::flush(&mut out)?;
    Ok(Status::Success)
}

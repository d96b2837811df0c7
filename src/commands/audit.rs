//! `retentiond audit verify` and `audit export`: the trail for auditors.

use super::{load, CommandError, Out, Status};
use crate::audit::{anchors, export, Verdict};
use crate::config::{Config, Moment};
use crate::progress::Reporter;
use crate::state::{time_text, State};
use std::path::Path;

pub use crate::audit::export::Format as ExportFormat;

/// The state database if a pass ever created it (read-only commands never create one).
async fn open_state(config: &Config) -> Result<Option<State>, CommandError> {
    State::open_read_only_for(&config.daemon)
        .await
        .map_err(CommandError::runtime)
}

/// `audit verify [--anchor HASH]`: exit 0 only if every entry is intact and in order, and
/// the trail agrees with every head recorded outside it that can be reached.
pub async fn verify_trail(
    path: &Path,
    anchor: Option<&str>,
    progress: Reporter,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    if let Some(a) = anchor {
        if a.len() != 64 || !a.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CommandError::Usage(format!(
                "--anchor {a}: a head hash is 64 hexadecimal digits, as the report prints it"
            )));
        }
    }
    let Some(state) = open_state(&config).await? else {
        return match anchor {
            Some(a) => {
                writeln!(out, "audit trail BROKEN: there is no trail ({}), but --anchor {a} says there was one", config.daemon.state_place())?;
                Ok(Status::Failed)
            }
            None => {
                writeln!(
                    out,
                    "audit trail is empty (no pass has run yet; state directory {})",
                    config.daemon.state_place()
                )?;
                Ok(Status::Success)
            }
        };
    };
    let result = verify_state(&state, &config, anchor, progress, out).await;
    state.close().await;
    result
}

async fn verify_state(
    state: &State,
    config: &Config,
    anchor: Option<&str>,
    progress: Reporter,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let (entries, head) = match crate::audit::verify::verify_with(state, progress)
        .await
        .map_err(CommandError::runtime)?
    {
        Verdict::Intact { entries, head } => (entries, head),
        Verdict::Broken { seq, reason } => {
            writeln!(out, "audit trail BROKEN at entry {seq}: {reason}")?;
            return Ok(Status::Failed);
        }
    };
    if let Some(a) = anchor {
        if let Some(why) = anchors::contains(state, a)
            .await
            .map_err(CommandError::runtime)?
        {
            writeln!(out, "audit trail BROKEN: {why}")?;
            return Ok(Status::Failed);
        }
    }
    let cross = anchors::cross_check(state, config, entries)
        .await
        .map_err(CommandError::runtime)?;
    if let Some(why) = &cross.broken {
        writeln!(out, "audit trail BROKEN: {why}")?;
        return Ok(Status::Failed);
    }
    writeln!(
        out,
        "audit trail intact: {entries} entries, head hash {head}"
    )?;
    let anchored: Vec<String> = cross
        .anchors_checked
        .iter()
        .map(|(db, n)| format!("{db} ({n})"))
        .collect();
    writeln!(
        out,
        "agrees with the run history ({} passes){}{}",
        cross.runs_checked,
        if anchored.is_empty() {
            ""
        } else {
            " and the anchors in "
        },
        anchored.join(", ")
    )?;
    if let Some(a) = anchor {
        writeln!(out, "holds the anchored entry {a}")?;
    }
    for (db, n) in &cross.foreign {
        writeln!(out, "note: database '{db}' holds {n} anchors of another installation (another state directory), not checked here; if this state directory was recreated, they are this trail's earlier heads, and the trail before it is gone")?;
    }
    for (db, why) in &cross.unreachable {
        writeln!(out, "note: anchors in database '{db}' not checked: {why}")?;
    }
    if cross.anchors_checked.is_empty() && anchor.is_none() && entries > 0 {
        writeln!(out, "WARNING: no head recorded outside state.db was checked (no target database reachable, no --anchor): this proves the chain and the run history, which live in the same file; run it where the databases can be reached, or give --anchor HASH from a report")?;
    }
    let pending = state.pending().await.map(|p| p.len()).unwrap_or(0);
    if pending > 0 {
        writeln!(out, "note: {pending} batches from an interrupted pass are still to be settled; the next pass settles them")?;
    }
    Ok(Status::Success)
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

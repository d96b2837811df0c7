//! `request erase ID --match ATTR=VALUE…`: erases the person's records (GDPR art. 17), as
//! `engine::erase` plans and runs it, under the pass lock and after settling whatever an
//! interrupted pass or erasure left in doubt. Prints what was erased and what stays (with
//! the reason, and the date a rule deletes it later); never a value or a key.

use super::super::{load, CommandError, Out, Status};
use super::{bind, open, Format};
use crate::engine::erase::{self, EraseError, Erased, Job};
use crate::engine::find;
use crate::engine::requests::{Identity, Kind};
use crate::progress::Reporter;
use chrono::Utc;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// `request erase`. `progress` hears how many records are erased of how many.
#[allow(clippy::too_many_arguments)] // one per flag, plus the stop signal, progress and output
pub async fn erase(
    path: &Path,
    id: &str,
    matches: &[String],
    confirm: Option<u64>,
    format: Format,
    stop: CancellationToken,
    progress: Reporter,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let identity = Identity::parse(matches, &config).map_err(CommandError::Usage)?;
    let (state, hasher) = open(&config).await?;
    let result = async {
        let row = bind(&state, &hasher, id, &identity).await?;
        if row.kind != Kind::Erasure.as_str() {
            return Err(CommandError::Usage(format!(
                "request {id} is an {} request; only an erasure request erases (register one with `retentiond request new --kind erasure`)",
                row.kind
            )));
        }
        if let Some(closed) = &row.closed_at {
            return Err(CommandError::Runtime(format!(
                "request {id} was closed at {closed}; register a new request to erase again"
            )));
        }
        let _lock = state.lock_pass().await.map_err(CommandError::runtime)?;
        erase::settle(&config, &state)
            .await
            .map_err(CommandError::runtime)?;
        let dbs = super::connect_fitting(&config).await?;
        let done = async {
            let found = find::find(&config, &dbs, &identity)
                .await
                .map_err(CommandError::Runtime)?;
            let mut plan = erase::plan(&config, &dbs, found, Utc::now())
                .await
                .map_err(CommandError::Runtime)?;
            erase::brake(plan.total(), confirm).map_err(|e| match e {
                EraseError::Brake(m) | EraseError::Other(m) => CommandError::Runtime(m),
            })?;
            let job = Job {
                request: id,
                dbs: &dbs,
                state: &state,
                hasher: &hasher,
                stop: &stop,
                progress: progress.get(),
            };
            Ok(erase::run(&mut plan, &job).await)
        }
        .await;
        find::close(dbs).await;
        done
    }
    .await;
    state.close().await;
    let erased = result?;
    write(out, id, &erased, format)?;
    if let Some(e) = &erased.failed {
        tracing::error!(request = %id, error = %e, "erasure failed");
    }
    Ok(Status::from_failed(erased.failed.is_some()))
}

/// Prints what the erasure did.
fn write(out: Out<'_>, id: &str, e: &Erased, format: Format) -> std::io::Result<()> {
    match format {
        Format::Json => {
            let erased: Vec<serde_json::Value> = e
                .erased
                .iter()
                .map(|(subject, action, count)| {
                    serde_json::json!({ "subject": subject, "action": action, "count": count })
                })
                .collect();
            let kept: Vec<serde_json::Value> = e
                .kept
                .iter()
                .map(|(subject, k)| {
                    serde_json::json!({
                        "subject": subject,
                        "count": k.keys.len(),
                        "reason": k.reason.describe(),
                        "until": k.until.map(|d| d.to_string()),
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "request": id,
                "erased": erased,
                "kept": kept,
                "stopped": e.stopped,
                "error": e.failed,
            });
            writeln!(out, "{doc}")
        }
        Format::Text => {
            let acted = e.erased.iter().any(|(_, _, n)| *n > 0);
            if !acted && e.kept.is_empty() {
                writeln!(out, "{id}: nothing (more) of this person to erase")?;
            }
            // Subjects where nothing was erased (all kept, or done before) are in the JSON.
            for (subject, action, count) in e.erased.iter().filter(|(_, _, n)| *n > 0) {
                let verb = match *action {
                    "delete" => "deleted",
                    _ => "anonymized",
                };
                writeln!(out, "{subject:<20} {verb} {count} record(s)")?;
            }
            for (subject, k) in &e.kept {
                let until = k
                    .until
                    .map(|d| format!("; a retention rule deletes them by {d}"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{subject:<20} kept {} record(s): {}{until}",
                    k.keys.len(),
                    k.reason.describe()
                )?;
            }
            if e.stopped {
                writeln!(out, "stopped early by a signal: what was erased is audited; run the same command again to finish")?;
            }
            if let Some(err) = &e.failed {
                writeln!(out, "error: {err}; what was erased before it is audited; run the same command again to finish")?;
            }
            Ok(())
        }
    }
}

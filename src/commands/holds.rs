//! `retentiond holds`: every legal hold, whether it is in force, how many records it
//! covers, and how many of those each rule would act on now if not for the hold.

use super::{load, CommandError, Out, Status};
use crate::config::Hold;
use crate::engine::holds as engine_holds;
use crate::engine::plan::plan as plan_rules;
use crate::engine::prepare::{prepare, Prepared};
use chrono::Utc;
use std::path::Path;

/// `holds`.
pub async fn holds(path: &Path, out: Out<'_>) -> Result<Status, CommandError> {
    let config = load(path)?;
    if config.holds.is_empty() {
        writeln!(out, "no legal holds in {}", config.path.display())?;
        return Ok(Status::Success);
    }
    let prepared = prepare(&config, &[]).await?;
    let now = Utc::now();
    let planned = plan_rules(&prepared, now, config.daemon.timezone).await;
    let mut failed = false;
    for h in &config.holds {
        let state = if h.active(now) { "in force" } else { "ended" };
        let until = h.until.map_or("until lifted".to_owned(), |u| {
            format!("until {}", u.to_rfc3339())
        });
        writeln!(out, "{} ({state}, {until}): {}", h.name, h.reason)?;
        let covered = match covered(&prepared, h).await {
            Ok(n) => n.to_string(),
            Err(e) => {
                failed = true;
                e
            }
        };
        writeln!(
            out,
            "  {}.{} where {} — {covered} records",
            h.database, h.table, h.filter
        )?;
        for p in &planned {
            if let Some(c) = p.held.iter().find(|c| c.hold == h.name) {
                writeln!(
                    out,
                    "  keeps {} records from rule {} ({})",
                    c.records, p.rule, p.action
                )?;
            }
        }
    }
    prepared.close().await;
    Ok(Status::from_failed(failed))
}

/// How many records `h` covers now, or why that is unknown.
async fn covered(prepared: &Prepared<'_>, h: &Hold) -> Result<i64, String> {
    let Some(db) = prepared.dbs.get(&h.database) else {
        return Err("unknown (no rule uses this database, or it is unreachable)".to_owned());
    };
    engine_holds::covered(db, h)
        .await
        .map_err(|e| format!("unknown ({e})"))
}

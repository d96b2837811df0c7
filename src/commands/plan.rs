//! `retentiond plan [--at TIME]`: the forecast at a moment, per rule. Changes nothing.
//! Counts on a database's `read_url` when it has one (see [`CountOn`]).

use super::{load, CommandError, Out, Status};
use crate::config::{Mode, Moment};
use crate::engine::plan::{plan_on, CountOn, PlannedRule};
use crate::engine::prepare::prepare;
use chrono::Utc;
use std::path::Path;

/// `plan`'s output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table for people.
    Text,
    /// `{"at": …, "rules": [{"rule", "action", "count", …}]}`.
    Json,
}

/// `plan`: what each rule would act on at `at` (default now).
pub async fn plan(
    path: &Path,
    at: Option<&str>,
    format: Format,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let at = match at {
        Some(s) => {
            Moment::parse(s, config.daemon.timezone)
                .map_err(|e| CommandError::Usage(format!("--at: {e}")))?
                .at
        }
        None => Utc::now(),
    };
    super::rules::refuse_locked_changes(&config).await?;
    let prepared = prepare(&config, &[]).await?;
    let on = CountOn::read_urls(&config, &prepared).await;
    let planned = plan_on(&prepared, &on, at, config.daemon.timezone).await;
    on.close().await;
    prepared.close().await;
    let failed = planned.iter().any(|p| p.error.is_some());
    let in_doubt = super::batches_in_doubt(&config).await;
    match format {
        Format::Json => {
            let doc = serde_json::json!({ "at": at.to_rfc3339(), "rules": planned, "batches_in_doubt": in_doubt });
            let text = serde_json::to_string_pretty(&doc)
                .map_err(|e| CommandError::runtime(format!("cannot encode the plan: {e}")))?;
            writeln!(out, "{text}")?;
        }
        Format::Text => {
            writeln!(
                out,
                "plan at {} ({}):",
                at.to_rfc3339(),
                config.daemon.timezone
            )?;
            write_plan(&planned, out)?;
            for line in on.describe() {
                writeln!(out, "  {line}")?;
            }
            if in_doubt > 0 {
                writeln!(out, "{}", super::in_doubt_note(in_doubt))?;
            }
        }
    }
    Ok(Status::from_failed(failed))
}

/// The plan as a table, one rule a line (with held-back records and brakes below it).
/// Returns whether a rule could not be evaluated.
pub(super) fn write_plan(planned: &[PlannedRule], out: Out<'_>) -> std::io::Result<bool> {
    let mut failed = false;
    for p in planned {
        let held: u64 = p.held.iter().map(|h| h.records).sum();
        match (&p.error, p.count) {
            (Some(e), _) => {
                failed = true;
                writeln!(out, "  {:<32} {:<9} FAILED: {e}", p.rule, p.action)?;
            }
            (None, Some(n)) => {
                let sample = if p.sample_keys.is_empty() {
                    String::new()
                } else {
                    let more = if n > p.sample_keys.len() as i64 {
                        ", …"
                    } else {
                        ""
                    };
                    let keys: Vec<String> = p.sample_keys.iter().map(|k| printable(k)).collect();
                    format!(" (keys {}{more})", keys.join(", "))
                };
                let mode = if p.mode == Mode::Report {
                    " [report only]"
                } else {
                    ""
                };
                writeln!(
                    out,
                    "  {:<32} {:<9} {n:>8} records in {}.{}{sample}{mode}",
                    p.rule, p.action, p.database, p.table
                )?;
                if held > 0 {
                    let names: Vec<&str> = p.held.iter().map(|h| h.hold.as_str()).collect();
                    writeln!(
                        out,
                        "  {:<32} {:<9} {held:>8} held back by legal holds ({})",
                        "",
                        "",
                        names.join(", ")
                    )?;
                }
                if let Some(b) = &p.brake {
                    writeln!(out, "  {:<32} BRAKE: {b}", "")?;
                }
            }
            (None, None) => {}
        }
    }
    Ok(failed)
}

/// `s` with control characters escaped (`\n`, `\u{1b}`): a key is data from the database,
/// and must not move the cursor, clear the screen or forge a line on the operator's terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn keys_with_control_characters_are_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
        assert_eq!(printable("jan-42 é"), "jan-42 é");
    }
}

//! `retentiond demo [--dir DIR]`: builds the demo company (see [`crate::demo`]), runs one
//! pass over it, and writes what happened and where the files are.

use super::run::one_pass;
use super::{load, CommandError, Out, Status};
use crate::engine::pass::PassOptions;
use crate::report::render;
use chrono::Utc;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// `demo`.
pub async fn demo(
    dir: Option<&Path>,
    stop: CancellationToken,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let demo = crate::demo::build(dir)
        .await
        .map_err(|e| CommandError::Runtime(format!("demo: {e}")))?;
    let config = load(&demo.config)?;
    writeln!(
        out,
        "retentiond demo — a small company's HR, CRM and bookkeeping in SQLite\n"
    )?;
    let (summary, html) = one_pass(&config, &PassOptions::default(), &stop).await?;
    write!(out, "{}", render::text(&summary, config.daemon.language))?;
    writeln!(out, "\nFiles:")?;
    writeln!(out, "  config:        {}", demo.config.display())?;
    for db in &demo.databases {
        writeln!(out, "  database:      {}", db.display())?;
    }
    writeln!(
        out,
        "  state dir:     {}",
        config.daemon.state_dir.display()
    )?;
    writeln!(
        out,
        "  reports:       {}",
        config.daemon.state_dir.join("reports").display()
    )?;
    if let Some(html) = &html {
        writeln!(
            out,
            "  this report:   {}  (open it in a browser)",
            html.display()
        )?;
    }
    writeln!(out, "\nTry next:")?;
    let c = demo.config.display();
    writeln!(
        out,
        "  retentiond --config {c} plan --at {}",
        (Utc::now() + chrono::Duration::days(365)).format("%Y-%m-%d")
    )?;
    writeln!(out, "  retentiond --config {c} audit verify")?;
    writeln!(out, "  retentiond --config {c} audit export --format csv")?;
    writeln!(
        out,
        "  retentiond --config {c} report --last --format html > report.html"
    )?;
    Ok(Status::from_failed(summary.failed()))
}

//! `retentiond demo [--dir DIR]`: builds the demo company (see [`crate::demo`]), runs one
//! pass over it, and writes what happened and where the files are.

use super::request::{self, erase::erase, NewRequest};
use super::run::one_pass;
use super::{load, CommandError, Out, Status};
use crate::engine::pass::PassOptions;
use crate::engine::requests::Kind;
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
    let request = if stop.is_cancelled() {
        None
    } else {
        Some(a_request(&demo.config, &stop, &mut *out).await?)
    };
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
    if let Some(id) = &request {
        writeln!(out, "  retentiond --config {c} request list")?;
        writeln!(
            out,
            "  retentiond --config {c} request answer {id} --lang nl --format html > answer.html"
        )?;
    }
    writeln!(out, "  retentiond --config {c} audit export --format csv")?;
    writeln!(
        out,
        "  retentiond --config {c} register --lang nl --format html > register.html"
    )?;
    writeln!(
        out,
        "  retentiond --config {c} report --last --format html > report.html"
    )?;
    Ok(Status::from_failed(summary.failed()))
}

/// A request from a person, in action: the demo's customer (`crate::demo::DEMO_PERSON`)
/// asks to be erased; she is found, erased (her customer record anonymized, her invoices
/// kept for the bookkeeping law), and answered. Returns the request's id.
async fn a_request(
    config: &Path,
    stop: &CancellationToken,
    out: Out<'_>,
) -> Result<String, CommandError> {
    let matches = [format!("email={}", crate::demo::DEMO_PERSON)];
    writeln!(
        out,
        "\nA request from a person: a former customer asks to be erased.\n"
    )?;
    let mut registered = Vec::new();
    request::new(
        config,
        NewRequest {
            kind: Kind::Erasure,
            received: None,
            reference: Some("demo letter 1"),
            matches: &matches,
        },
        request::Format::Json,
        &mut registered,
    )
    .await?;
    let id = serde_json::from_slice::<serde_json::Value>(&registered)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .ok_or_else(|| CommandError::Runtime("demo: the request was not registered".into()))?;
    writeln!(
        out,
        "$ retentiond request new --kind erasure --match email=… → {id}"
    )?;
    writeln!(out, "\n$ retentiond request find {id} --match email=…")?;
    request::find(config, &id, &matches, request::Format::Text, &mut *out).await?;
    writeln!(out, "\n$ retentiond request erase {id} --match email=…")?;
    let erased = erase(
        config,
        &id,
        &matches,
        None,
        request::Format::Text,
        stop.clone(),
        crate::progress::Reporter::default(),
        &mut *out,
    )
    .await?;
    if erased != Status::Success {
        return Err(CommandError::Runtime(format!(
            "demo: the erasure under {id} did not finish"
        )));
    }
    writeln!(out, "\n$ retentiond request answer {id}")?;
    request::answer::answer(config, &id, request::answer::Format::Text, None, &mut *out).await?;
    Ok(id)
}

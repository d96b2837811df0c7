//! `retentiond register`: the record of processing activities (GDPR art. 30) and the
//! retention paragraph of the privacy statement, written from the config alone — no
//! database or state is opened, so the DPO can draw it up on any copy of the config.

use super::{load, CommandError, Out, Status};
use crate::config::Language;
use crate::report::register::{self as doc, Record};
use chrono::{DateTime, Utc};
use std::path::Path;

/// Output formats of `register`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A printable HTML page.
    Html,
    /// Markdown.
    Markdown,
    /// CSV.
    Csv,
    /// JSON.
    Json,
}

/// `register`: writes the register of the config at `path` in `format`, in `lang` (or the
/// config's `report_language`), dated today and by the config file's last change.
pub async fn register(
    path: &Path,
    format: Format,
    lang: Option<Language>,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let tz = config.daemon.timezone;
    let lang = lang.unwrap_or(config.daemon.language);
    let today = Utc::now().with_timezone(&tz).date_naive();
    // When the promises last changed: the file's modification time, if the file system
    // keeps one (the register is still right without it).
    let changed = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| DateTime::<Utc>::from(t).with_timezone(&tz).date_naive());
    let record = Record::new(&config, lang, today, changed);
    let format = match format {
        Format::Html => doc::Format::Html,
        Format::Markdown => doc::Format::Markdown,
        Format::Csv => doc::Format::Csv,
        Format::Json => doc::Format::Json,
    };
    let text = doc::render(&record, format).map_err(CommandError::Runtime)?;
    out.write_all(text.as_bytes())?;
    Ok(Status::Success)
}

//! Report files: every pass's summary saved under `state_dir/reports/` as text and HTML,
//! named by run id (which starts with the UTC start time, so names sort by date).

use super::render::{render, Format};
use super::summary::RunSummary;
use crate::config::Language;
use std::path::{Path, PathBuf};

/// Writes `state_dir/reports/<run_id>.{txt,html}`; returns the HTML path.
pub fn save(state_dir: &Path, s: &RunSummary, lang: Language) -> std::io::Result<PathBuf> {
    let dir = state_dir.join("reports");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join(format!("{}.txt", s.run_id)),
        render(s, Format::Text, lang),
    )?;
    let html = dir.join(format!("{}.html", s.run_id));
    std::fs::write(&html, render(s, Format::Html, lang))?;
    Ok(html)
}

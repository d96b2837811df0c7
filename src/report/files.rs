//! Reports on disk: the management report of every pass is saved under
//! `state_dir/reports/` (named by run id, which starts with the UTC start time, so names
//! sort by date), and old ones are pruned after `[report] keep_days`.

use super::document::{render, Format};
use super::model::Report;
use crate::config::Config;
use chrono::{Duration, Utc};
use std::path::{Path, PathBuf};

/// Where the reports of `config` are kept.
pub fn reports_dir(config: &Config) -> PathBuf {
    config.daemon.state_dir.join("reports")
}

/// Saves the report as HTML, text and JSON; returns the HTML path.
pub fn save(dir: &Path, report: &Report) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut html = PathBuf::new();
    for (format, ext) in [
        (Format::Html, "html"),
        (Format::Text, "txt"),
        (Format::Json, "json"),
    ] {
        let path = dir.join(format!("{}.{ext}", report.run_id));
        write_private(&path, render(report, format)?.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if format == Format::Html {
            html = path;
        }
    }
    Ok(html)
}

/// Writes `bytes` to `path`, created with mode 0640 (readable by the service's group, for
/// whoever mails or serves reports; never by everyone).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(path)?;
    f.write_all(bytes)
}

/// Removes saved reports older than `keep_days` (by the date their name starts with).
pub fn prune(dir: &Path, keep_days: u32) -> usize {
    let cutoff = (Utc::now() - Duration::days(i64::from(keep_days)))
        .format("%Y%m%d")
        .to_string();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let day = name.get(..8).unwrap_or("");
        if day.len() == 8
            && day.chars().all(|c| c.is_ascii_digit())
            && day < cutoff.as_str()
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

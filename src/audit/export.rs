//! `audit export`: the trail as JSON Lines or CSV, streamed to a writer.

use super::chain::Entry;
use crate::state::{State, StateError};
use futures_util::TryStreamExt;
use sqlx::Row;
use std::io::Write;

/// One stored entry, as read from the state database.
fn entry_of<'r, R: Row>(r: &'r R) -> Result<Entry, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Entry {
        seq: r.try_get(0)?,
        at: r.try_get(1)?,
        run_id: r.try_get(2)?,
        rule: r.try_get(3)?,
        database: r.try_get(4)?,
        table: r.try_get(5)?,
        action: r.try_get(6)?,
        key: r.try_get(7)?,
        legal_basis: r.try_get(8)?,
        hash: r.try_get(9)?,
        prev_hash: r.try_get(10)?,
        request: r.try_get(11)?,
    })
}

/// The columns of an entry, in [`entry_of`]'s order; `request` is read as NULL from a
/// state database from before schema 2 (opened read-only, as it is).
fn select_entries(has_request: bool) -> String {
    let request = if has_request { "request" } else { "NULL" };
    format!("SELECT seq, at, run_id, rule, database, tbl, action, key, legal_basis, hash, prev_hash, {request} FROM audit")
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the trail failed.
    #[error("{0}")]
    State(#[from] StateError),
    /// Writing the output failed (e.g. the reader of the pipe went away).
    #[error("cannot write the output: {0}")]
    Write(#[from] std::io::Error),
}

impl From<sqlx::Error> for ExportError {
    fn from(e: sqlx::Error) -> Self {
        ExportError::State(StateError::Db(e))
    }
}

impl From<csv::Error> for ExportError {
    fn from(e: csv::Error) -> Self {
        match e.into_kind() {
            csv::ErrorKind::Io(io) => ExportError::Write(io),
            other => ExportError::Write(std::io::Error::other(format!("{other:?}"))),
        }
    }
}

/// A CSV cell as written: a value that starts with `=`, `+`, `-`, `@`, a tab or a carriage
/// return gets a leading apostrophe, so a spreadsheet shows it as text instead of running
/// it as a formula (OWASP's advice for CSV injection). JSON Lines carries values exactly.
/// Also used by `report::register`, whose CSV a DPO opens in a spreadsheet too.
pub(crate) fn cell(value: &str) -> std::borrow::Cow<'_, str> {
    match value.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{value}").into(),
        _ => value.into(),
    }
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

/// The CSV header, in the order of the entry fields.
pub const COLUMNS: [&str; 12] = [
    "seq",
    "at",
    "run_id",
    "rule",
    "database",
    "table",
    "action",
    "key",
    "legal_basis",
    "hash",
    "prev_hash",
    "request",
];

/// Writes entries with `since <= at < until` (RFC 3339 UTC strings; either may be absent).
pub async fn export(
    state: &State,
    since: Option<&str>,
    until: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let has_request = state.has_column("audit", "request").await?;
    let mut q = format!("{} WHERE 1 = 1", select_entries(has_request));
    if since.is_some() {
        q.push_str(" AND at >= $1");
    }
    if until.is_some() {
        q.push_str(if since.is_some() {
            " AND at < $2"
        } else {
            " AND at < $1"
        });
    }
    q.push_str(" ORDER BY seq");
    let n = crate::state::on_pool!(state, pool => {
    let mut query = sqlx::query(&q);
    for bound in [since, until].into_iter().flatten() {
        query = query.bind(bound.to_owned());
    }
    let mut rows = query.fetch(pool);
    let mut n = 0;
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(COLUMNS)?;
            while let Some(row) = rows.try_next().await? {
                let e = entry_of(&row)?;
                let seq = e.seq.to_string();
                w.write_record([
                    seq.as_str(),
                    &cell(&e.at),
                    &cell(&e.run_id),
                    &cell(&e.rule),
                    &cell(&e.database),
                    &cell(&e.table),
                    &cell(&e.action),
                    &cell(&e.key),
                    &cell(&e.legal_basis),
                    &e.hash,
                    &e.prev_hash,
                    &cell(e.request.as_deref().unwrap_or_default()),
                ])?;
                n += 1;
            }
            w.flush()?;
        }
        Format::Jsonl => {
            while let Some(row) = rows.try_next().await? {
                let e = entry_of(&row)?;
                serde_json::to_writer(&mut *out, &e).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                n += 1;
            }
        }
    }
    n
    });
    out.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_are_written_as_text() {
        for v in ["=HYPERLINK(\"x\")", "+1", "-5", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(cell(v), format!("'{v}"));
        }
        for v in ["42", "rejected-applicants", "", "a=b"] {
            assert_eq!(cell(v), v);
        }
    }
}

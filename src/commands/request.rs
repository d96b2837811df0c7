//! `retentiond request new | list | extend | close`: the register of data-subject requests
//! (GDPR art. 12: an answer within one month, extendable once by two). The person's
//! identity (`--match`) is bound to a request as a keyed tag, never stored in clear.

use super::{load, CommandError, Out, Status};
use crate::config::Config;
use crate::engine::hasher::Hasher;
use crate::engine::requests::{
    add_months, check_binding, days_left, Identity, Kind, ANSWER_MONTHS, EXTENSION_MONTHS,
};
use crate::state::requests::RequestRow;
use crate::state::State;
use chrono::{Datelike, NaiveDate, Utc};
use std::path::Path;

/// Output formats of the request verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lines for people.
    Text,
    /// JSON for tools (fields as PRODUCT.md fixes them).
    Json,
}

/// What `request new` registers.
#[derive(Debug, Clone)]
pub struct NewRequest<'a> {
    /// Access or erasure.
    pub kind: Kind,
    /// `YYYY-MM-DD`; default today in the configured timezone.
    pub received: Option<&'a str>,
    /// The operator's reference (a ticket number; never the person's name).
    pub reference: Option<&'a str>,
    /// `ATTR=VALUE` pairs that identify the person (may be given later, at `find`).
    pub matches: &'a [String],
}

/// Today in the configured timezone.
fn today(config: &Config) -> NaiveDate {
    Utc::now()
        .with_timezone(&config.daemon.timezone)
        .date_naive()
}

/// The state database and the installation key (created on first use).
async fn open(config: &Config) -> Result<(State, Hasher), CommandError> {
    let state = State::open(&config.daemon.state_dir)
        .await
        .map_err(CommandError::runtime)?;
    match Hasher::load_or_create(&config.daemon.state_dir) {
        Ok(h) => Ok((state, h)),
        Err(e) => {
            state.close().await;
            Err(CommandError::Runtime(e))
        }
    }
}

/// A registered request by id; an unknown id is a bad command line (exit 2).
async fn find_request(state: &State, id: &str) -> Result<RequestRow, CommandError> {
    state
        .request(id)
        .await
        .map_err(CommandError::runtime)?
        .ok_or_else(|| {
            CommandError::Usage(format!(
                "no request with id {id}; `retentiond request list` shows the open ones"
            ))
        })
}

/// `request new`.
pub async fn new(
    path: &Path,
    req: NewRequest<'_>,
    format: Format,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let today = today(&config);
    let received = match req.received {
        None => today,
        Some(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
            CommandError::Usage(format!("--received {s}: write the date as YYYY-MM-DD"))
        })?,
    };
    if received > today {
        return Err(CommandError::Usage(format!(
            "--received {received}: that is after today ({today}); a request cannot be received in the future"
        )));
    }
    let identity = if req.matches.is_empty() {
        None
    } else {
        Some(Identity::parse(req.matches, &config).map_err(CommandError::Usage)?)
    };
    let reference = req.reference.map(str::trim).filter(|r| !r.is_empty());
    let due = add_months(received, ANSWER_MONTHS).ok_or_else(|| {
        CommandError::Usage(format!(
            "--received {received}: out of the calendar's range"
        ))
    })?;
    let (state, hasher) = open(&config).await?;
    let tag = identity.as_ref().map(|i| i.tag(&hasher));
    let added = state
        .add_request(
            received.year(),
            req.kind.as_str(),
            &received.to_string(),
            &due.to_string(),
            reference,
            tag.as_deref(),
        )
        .await;
    state.close().await;
    let row = added.map_err(CommandError::runtime)?;
    match format {
        Format::Json => {
            let doc = serde_json::json!({
                "id": row.id,
                "kind": row.kind,
                "received": row.received,
                "due": row.due,
                "reference": row.reference,
                "identity_bound": row.identity.is_some(),
            });
            writeln!(out, "{doc}")?;
        }
        Format::Text => {
            writeln!(
                out,
                "registered {} ({} request), received {}, answer due {}",
                row.id, row.kind, row.received, row.due
            )?;
            if row.identity.is_none() {
                writeln!(
                    out,
                    "no identity bound yet: the first `request find {} --match …` binds it",
                    row.id
                )?;
            }
        }
    }
    Ok(Status::Success)
}

/// `request list`: open requests, overdue first, then by due date.
pub async fn list(path: &Path, format: Format, out: Out<'_>) -> Result<Status, CommandError> {
    let config = load(path)?;
    let today = today(&config);
    let rows = match State::open_read_only(&config.daemon.state_dir)
        .await
        .map_err(CommandError::runtime)?
    {
        Some(state) => {
            let rows = state.open_requests().await;
            state.close().await;
            rows.map_err(CommandError::runtime)?
        }
        None => Vec::new(),
    };
    let mut listed: Vec<(RequestRow, i64)> = rows
        .into_iter()
        .map(|r| {
            let left = days_left(&r.due, today).unwrap_or(0);
            (r, left)
        })
        .collect();
    // Overdue first (most overdue on top), then the earliest due.
    listed.sort_by(|a, b| (a.1 >= 0, a.1, &a.0.id).cmp(&(b.1 >= 0, b.1, &b.0.id)));
    match format {
        Format::Json => {
            let items: Vec<serde_json::Value> = listed
                .iter()
                .map(|(r, left)| {
                    serde_json::json!({
                        "id": r.id,
                        "kind": r.kind,
                        "received": r.received,
                        "due": r.due,
                        "days_left": left,
                        "overdue": *left < 0,
                        "extended": r.extension_reason.is_some(),
                        "reference": r.reference,
                    })
                })
                .collect();
            writeln!(out, "{}", serde_json::json!({ "requests": items }))?;
        }
        Format::Text => {
            if listed.is_empty() {
                writeln!(out, "no open requests")?;
            }
            for (r, left) in &listed {
                let when = if *left < 0 {
                    format!("OVERDUE by {} days", -left)
                } else {
                    format!("{left} days left")
                };
                let extended = if r.extension_reason.is_some() {
                    ", extended"
                } else {
                    ""
                };
                let reference = r
                    .reference
                    .as_deref()
                    .map(|x| format!(" [{x}]"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<14} {:<8} received {} due {} — {when}{extended}{reference}",
                    r.id, r.kind, r.received, r.due
                )?;
            }
        }
    }
    Ok(Status::Success)
}

/// `request extend ID --reason TEXT`: once, by two months.
pub async fn extend(
    path: &Path,
    id: &str,
    reason: &str,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(CommandError::Usage("--reason: say why the answer needs two more months (art. 12(3): complexity or number of requests)".into()));
    }
    let (state, _) = open(&config).await?;
    let result = extend_in(&state, id, reason).await;
    state.close().await;
    let (row, due) = result?;
    writeln!(
        out,
        "{} extended: answer now due {due} (was {})",
        row.id, row.due
    )?;
    Ok(Status::Success)
}

async fn extend_in(
    state: &State,
    id: &str,
    reason: &str,
) -> Result<(RequestRow, NaiveDate), CommandError> {
    let row = find_request(state, id).await?;
    if let Some(closed) = &row.closed_at {
        return Err(CommandError::Runtime(format!(
            "request {id} was closed at {closed}; it cannot be extended"
        )));
    }
    if row.extension_reason.is_some() {
        return Err(CommandError::Runtime(format!(
            "request {id} was already extended (to {}); the law allows one extension",
            row.due
        )));
    }
    let due = NaiveDate::parse_from_str(&row.due, "%Y-%m-%d")
        .ok()
        .and_then(|d| add_months(d, EXTENSION_MONTHS))
        .ok_or_else(|| {
            CommandError::Runtime(format!(
                "request {id} has an unreadable due date {}",
                row.due
            ))
        })?;
    if !state
        .extend_request(id, &due.to_string(), reason)
        .await
        .map_err(CommandError::runtime)?
    {
        return Err(CommandError::Runtime(format!(
            "request {id} was extended or closed meanwhile"
        )));
    }
    Ok((row, due))
}

/// `request close ID`.
pub async fn close(path: &Path, id: &str, out: Out<'_>) -> Result<Status, CommandError> {
    let config = load(path)?;
    let (state, _) = open(&config).await?;
    let result = async {
        let row = find_request(&state, id).await?;
        if let Some(at) = &row.closed_at {
            return Err(CommandError::Runtime(format!(
                "request {id} was already closed at {at}"
            )));
        }
        state
            .close_request(id)
            .await
            .map_err(CommandError::runtime)?;
        Ok(row)
    }
    .await;
    state.close().await;
    let row = result?;
    writeln!(
        out,
        "{} closed ({} request, received {}, due {})",
        row.id, row.kind, row.received, row.due
    )?;
    Ok(Status::Success)
}

/// Binds `identity` to request `id` if it is not bound yet, or checks it is the identity it
/// is bound to. For the verbs that act on one person (`find`, `export`, `erase`).
pub async fn bind(
    state: &State,
    hasher: &Hasher,
    id: &str,
    identity: &Identity,
) -> Result<RequestRow, CommandError> {
    let row = find_request(state, id).await?;
    let tag = identity.tag(hasher);
    if check_binding(&row, &tag).map_err(CommandError::Runtime)?
        && !state
            .bind_identity(id, &tag)
            .await
            .map_err(CommandError::runtime)?
    {
        // Bound by another process meanwhile: check again against what it bound.
        let row = find_request(state, id).await?;
        check_binding(&row, &tag).map_err(CommandError::Runtime)?;
    }
    Ok(row)
}

//! `retentiond request new | list | extend | close`: the register of data-subject requests
//! (GDPR art. 12: an answer within one month, extendable once by two). The person's
//! identity (`--match`) is bound to a request as a keyed tag, never stored in clear.

pub mod answer;
pub mod erase;

use super::{load, CommandError, Out, Status};
use crate::config::{Config, Erase, Language, Rule};
use crate::db::{Db, Key};
use crate::engine::erase::rules_on;
use crate::engine::find::{self, Found};
use crate::engine::hasher::Hasher;
use crate::engine::requests::{
    add_months, check_binding, days_left, Identity, Kind, ANSWER_MONTHS, EXTENSION_MONTHS,
};
use crate::state::requests::{OutcomeRow, RequestRow, FOUND};
use crate::state::State;
use chrono::{Datelike, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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
pub(super) async fn open(config: &Config) -> Result<(State, Hasher), CommandError> {
    let state = State::open_for(&config.daemon)
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
    let rows = match State::open_read_only_for(&config.daemon)
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

/// The identity of `matches`, bound to request `id` (or checked against the identity it is
/// bound to): unknown attributes and ids are a bad command line, another person's values
/// are refused before any database is asked.
async fn identity_for(
    config: &Config,
    id: &str,
    matches: &[String],
) -> Result<Identity, CommandError> {
    let identity = Identity::parse(matches, config).map_err(CommandError::Usage)?;
    let (state, hasher) = open(config).await?;
    let bound = bind(&state, &hasher, id, &identity).await;
    state.close().await;
    bound?;
    Ok(identity)
}

/// Connects to the subjects' databases and checks every subject against its table as
/// `check` does — including that a `via` foreign key holds the same kind of value as the
/// key it refers to (text '007' must never find integer key 7). A misfit is a config error
/// (exit 78) before any person is looked up: a request must not find, export or erase
/// another person's records.
pub(super) async fn connect_fitting(config: &Config) -> Result<BTreeMap<String, Db>, CommandError> {
    let dbs = find::connect(config).await.map_err(CommandError::Runtime)?;
    let mut shapes = crate::db::schema::Shapes::default();
    let checked = crate::engine::subjects::check_subjects(config, &dbs, &mut shapes).await;
    let refusal = if !checked.problems.is_empty() {
        Some(CommandError::Config(crate::config::ConfigError {
            problems: checked.problems,
        }))
    } else {
        checked
            .notes
            .first()
            .map(|n| CommandError::Runtime(format!("{n}; nothing was looked up")))
    };
    match refusal {
        Some(e) => {
            find::close(dbs).await;
            Err(e)
        }
        None => Ok(dbs),
    }
}

/// The subjects found for `identity`, with the databases they are in, still open. How
/// many records each holds (counts only) is recorded under request `id` for the answer
/// letter.
async fn search<'c>(
    config: &'c Config,
    id: &str,
    identity: &Identity,
) -> Result<(BTreeMap<String, Db>, Vec<Found<'c>>), CommandError> {
    let dbs = connect_fitting(config).await?;
    let found = match find::find(config, &dbs, identity).await {
        Ok(found) => found,
        Err(e) => {
            find::close(dbs).await;
            return Err(CommandError::Runtime(e));
        }
    };
    if let Err(e) = record_found(config, id, &found).await {
        find::close(dbs).await;
        return Err(e);
    }
    Ok((dbs, found))
}

/// Records how many of the person's records each subject holds (no keys, no values).
async fn record_found(config: &Config, id: &str, found: &[Found<'_>]) -> Result<(), CommandError> {
    let rows: Vec<OutcomeRow> = found
        .iter()
        .filter(|f| f.searched)
        .map(|f| OutcomeRow {
            subject: f.subject.name.clone(),
            step: String::new(),
            reason: String::new(),
            count: f.keys.len() as i64,
            until: None,
            at: String::new(),
        })
        .collect();
    let state = State::open_for(&config.daemon)
        .await
        .map_err(CommandError::runtime)?;
    let recorded = state.record_outcomes(id, FOUND, &rows).await;
    state.close().await;
    recorded.map_err(CommandError::runtime)
}

fn key_json(k: &Key) -> serde_json::Value {
    match k {
        Key::Int(i) => serde_json::json!(i),
        Key::Text(s) => serde_json::json!(s),
    }
}

/// `request find ID --match ATTR=VALUE…`: which records of which subjects are the person's,
/// by key. Changes nothing in the target databases; prints keys, never the values.
pub async fn find(
    path: &Path,
    id: &str,
    matches: &[String],
    format: Format,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let identity = identity_for(&config, id, matches).await?;
    let (dbs, found) = search(&config, id, &identity).await?;
    find::close(dbs).await;
    match format {
        Format::Json => {
            let subjects: Vec<serde_json::Value> = found
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "subject": f.subject.name,
                        "database": f.subject.database,
                        "table": f.subject.table.to_string(),
                        "count": f.keys.len(),
                        "keys": f.keys.iter().map(key_json).collect::<Vec<_>>(),
                        "searched": f.searched,
                        "needs": f.needs,
                        "capped": f.capped,
                    })
                })
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::json!({ "request": id, "subjects": subjects })
            )?;
        }
        Format::Text => {
            for f in &found {
                let place = format!("{}.{}", f.subject.database, f.subject.table);
                if !f.searched {
                    writeln!(
                        out,
                        "{:<20} {place:<24} not searched: needs {}",
                        f.subject.name,
                        f.needs.join(" or ")
                    )?;
                    continue;
                }
                let keys: Vec<String> = f.keys.iter().map(Key::to_string).collect();
                let capped = if f.capped {
                    format!(
                        " (only the first {} shown: more match; is this one person?)",
                        find::KEY_CAP
                    )
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "{:<20} {place:<24} {} record(s){}{capped}",
                    f.subject.name,
                    f.keys.len(),
                    if keys.is_empty() {
                        String::new()
                    } else {
                        format!(", keys {}", keys.join(", "))
                    }
                )?;
            }
        }
    }
    Ok(Status::Success)
}

/// `DIR` for the access package: created if missing; refused when it holds anything.
fn package_dir(dir: &Path) -> Result<(), CommandError> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| CommandError::Usage(format!("--out {}: {e}", dir.display())))?
            .next()
            .is_none();
        if !empty {
            return Err(CommandError::Usage(format!(
                "--out {}: the directory is not empty; give a new or empty directory, so that no other files end up in the package",
                dir.display()
            )));
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            CommandError::Runtime(format!("--out {}: cannot create it: {e}", dir.display()))
        })
}

/// Writes the package's files whole or not at all: each under a `.part` name first
/// (fsynced), then renamed into place; on any error what was written is removed, so that
/// the directory never holds half a package that looks like a whole one.
fn write_package(dir: &Path, files: &[(&str, &str)]) -> Result<(), CommandError> {
    let part = |name: &str| dir.join(format!(".{name}.part"));
    let written = files
        .iter()
        .try_for_each(|(name, text)| write_private(&part(name), text))
        .and_then(|()| {
            files.iter().try_for_each(|(name, _)| {
                std::fs::rename(part(name), dir.join(name)).map_err(|e| {
                    CommandError::Runtime(format!("{}: {e}", dir.join(name).display()))
                })
            })
        });
    if written.is_err() {
        for (name, _) in files {
            let _ = std::fs::remove_file(part(name));
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    written
}

/// Writes `text` to a new file readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), CommandError> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CommandError::Runtime(format!("{}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| CommandError::Runtime(format!("{}: {e}", path.display())))
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// One subject of the access package.
struct Section<'a> {
    found: &'a Found<'a>,
    rows: find::Rows,
    rules: Vec<&'a Rule>,
}

fn package_json(id: &str, today: NaiveDate, sections: &[Section<'_>]) -> serde_json::Value {
    let subjects: Vec<serde_json::Value> = sections
        .iter()
        .map(|s| {
            let rows: Vec<serde_json::Value> = s
                .rows
                .rows
                .iter()
                .map(|row| {
                    let obj: serde_json::Map<String, serde_json::Value> = s
                        .rows
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| {
                            (
                                c.clone(),
                                v.clone()
                                    .map_or(serde_json::Value::Null, serde_json::Value::String),
                            )
                        })
                        .collect();
                    serde_json::Value::Object(obj)
                })
                .collect();
            let rules: Vec<serde_json::Value> = s
                .rules
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "rule": r.name,
                        "purpose": r.description,
                        "legal_basis": r.legal_basis,
                        "retention": r.after.to_string(),
                    })
                })
                .collect();
            let keep_reason = match &s.found.subject.erase {
                Erase::Keep { reason } => Some(reason.as_str()),
                _ => None,
            };
            serde_json::json!({
                "subject": s.found.subject.name,
                "database": s.found.subject.database,
                "table": s.found.subject.table.to_string(),
                "searched": s.found.searched,
                "count": s.rows.rows.len(),
                "rows": rows,
                "rules": rules,
                "keep_reason": keep_reason,
            })
        })
        .collect();
    serde_json::json!({ "request": id, "created": today.to_string(), "subjects": subjects })
}

fn package_html(id: &str, today: NaiveDate, lang: Language, sections: &[Section<'_>]) -> String {
    let nl = lang == Language::Nl;
    let t = |en: &'static str, du: &'static str| if nl { du } else { en };
    let mut h = String::new();
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{} {}</title>\n<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.2em .5em;text-align:left}}</style>\n</head>\n<body>\n",
        if nl { "nl" } else { "en" },
        t("Your personal data — request", "Uw persoonsgegevens — verzoek"),
        html_escape(id)
    ));
    h.push_str(&format!(
        "<h1>{}</h1>\n<p>{} {} ({}).</p>\n",
        t("Your personal data", "Uw persoonsgegevens"),
        t(
            "This is the data we hold about you, as found on",
            "Dit zijn de gegevens die wij over u bewaren, zoals gevonden op"
        ),
        today,
        html_escape(&format!("{} {id}", t("request", "verzoek")))
    ));
    for s in sections {
        let subject = s.found.subject;
        h.push_str(&format!(
            "<h2>{}</h2>\n",
            html_escape(&format!("{}.{}", subject.database, subject.table))
        ));
        if s.rules.is_empty() {
            h.push_str(&format!(
                "<p>{}</p>\n",
                t(
                    "No retention rule acts on this table.",
                    "Geen bewaarregel werkt op deze tabel."
                )
            ));
        }
        for r in &s.rules {
            h.push_str("<p>");
            if let Some(d) = &r.description {
                h.push_str(&format!(
                    "{}: {}<br>\n",
                    t("Purpose", "Doel"),
                    html_escape(d)
                ));
            }
            h.push_str(&format!(
                "{}: {}<br>\n{}: {}</p>\n",
                t("Legal basis", "Rechtsgrond"),
                html_escape(&r.legal_basis),
                t("Kept for", "Bewaartermijn"),
                html_escape(&r.after.to_string())
            ));
        }
        if let Erase::Keep { reason } = &subject.erase {
            h.push_str(&format!(
                "<p>{}: {}</p>\n",
                t("Kept by law", "Wettelijk bewaard"),
                html_escape(reason)
            ));
        }
        if s.rows.rows.is_empty() {
            h.push_str(&format!(
                "<p>{}</p>\n",
                if s.found.searched {
                    t("Nothing about you here.", "Hier niets over u.")
                } else {
                    t(
                        "Not searched: you are not found here by the details you gave.",
                        "Niet doorzocht: u wordt hier niet gevonden met de gegevens die u gaf.",
                    )
                }
            ));
            continue;
        }
        h.push_str("<table>\n<tr>");
        for c in &s.rows.columns {
            h.push_str(&format!("<th>{}</th>", html_escape(c)));
        }
        h.push_str("</tr>\n");
        for row in &s.rows.rows {
            h.push_str("<tr>");
            for v in row {
                match v {
                    Some(v) => h.push_str(&format!("<td>{}</td>", html_escape(v))),
                    None => h.push_str("<td></td>"),
                }
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// `request export ID --match ATTR=VALUE… --out DIR`: the access package (art. 15): every
/// row of the person's, per table with the purpose, legal basis and retention the rules on
/// it state, as `package.json` and `package.html` (owner-readable only). The person's data
/// is in these files by design — for the person — and nowhere else.
pub async fn export(
    path: &Path,
    id: &str,
    matches: &[String],
    dir: &Path,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let today = today(&config);
    let identity = Identity::parse(matches, &config).map_err(CommandError::Usage)?;
    if dir.exists() {
        package_dir(dir)?;
    }
    identity_for(&config, id, matches).await?;
    let (dbs, found) = search(&config, id, &identity).await?;
    let mut sections = Vec::new();
    let mut failed = None;
    for f in &found {
        match find::rows(&dbs, f).await {
            Ok(rows) => sections.push(Section {
                found: f,
                rows,
                rules: rules_on(&config, f.subject),
            }),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    find::close(dbs).await;
    if let Some(e) = failed {
        return Err(CommandError::Runtime(e));
    }
    package_dir(dir)?;
    let json = package_json(id, today, &sections);
    let json = serde_json::to_string_pretty(&json).map_err(CommandError::runtime)?;
    let html = package_html(id, today, config.daemon.language, &sections);
    write_package(dir, &[("package.json", &json), ("package.html", &html)])?;
    let total: usize = sections.iter().map(|s| s.rows.rows.len()).sum();
    let tables = sections.iter().filter(|s| !s.rows.rows.is_empty()).count();
    writeln!(
        out,
        "access package for {id}: {total} record(s) from {tables} table(s) in {} (package.json, package.html)",
        dir.display()
    )?;
    if let Some(capped) = found.iter().find(|f| f.capped) {
        writeln!(
            out,
            "note: subject \"{}\" matched more than {} records; only those are in the package",
            capped.subject.name,
            find::KEY_CAP
        )?;
    }
    Ok(Status::Success)
}

//! The commands of the binary, as library functions: each loads what it needs, does its
//! work, prints for the user, and returns the exit status. `main.rs` only parses the
//! command line and sets up logging.

use crate::audit::{self, export, Verdict};
use crate::config::{self, Config};
use crate::engine::pass::{run_pass, PassError, PassOptions};
use crate::engine::plan::{plan as plan_rules, PlannedRule};
use crate::engine::prepare::prepare;
use crate::report::render::{self, Format};
use crate::report::summary::RunSummary;
use crate::state::State;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::path::Path;
use tokio_util::sync::CancellationToken;

pub use crate::exit::Exit;

fn load(path: &Path) -> Result<Config, Exit> {
    config::load(path).map_err(|e| {
        eprint!("error: {e}");
        Exit::Config
    })
}

/// Parses `--at`, `--since`, `--until`: RFC 3339, or a date meaning its midnight in `tz`.
pub fn parse_moment(s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        format!(
            "'{s}' is not a moment: write RFC 3339 (2026-12-31T23:00:00Z) or a date (2026-12-31)"
        )
    })?;
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .ok_or_else(|| format!("'{s}' has no midnight"))?;
    tz.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("'{s}' has no midnight in {tz}"))
}

/// `run`: the daemon (see [`crate::daemon`]).
pub async fn run_daemon(path: &Path) -> Exit {
    match load(path) {
        Ok(config) => crate::daemon::run(path, config).await,
        Err(e) => e,
    }
}

/// `check`: config, connections, tables and columns, and what each rule would do now.
pub async fn check(path: &Path) -> Exit {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let prepared = match prepare(&config, &[]).await {
        Ok(p) => p,
        Err(e) => {
            eprint!("error: {e}");
            return Exit::Config;
        }
    };
    let planned = plan_rules(&prepared, Utc::now(), config.daemon.timezone).await;
    for warning in reference_warnings(&config, &prepared).await {
        println!("warning: {warning}");
    }
    prepared.close().await;
    let mut failed = false;
    for (name, spec) in &config.databases {
        if !config.rules.iter().any(|r| &r.database == name) {
            match crate::db::Db::connect(spec).await {
                Ok(db) => {
                    db.close().await;
                    println!("warning: database '{name}' is reachable but no rule uses it");
                }
                Err(e) => {
                    failed = true;
                    println!("error: {e}");
                }
            }
        }
    }
    for rule in &config.rules {
        if rule.legal_basis.is_empty() {
            println!(
                "warning: rule '{}' (line {}) has no legal_basis; auditors will ask for one",
                rule.name, rule.line
            );
        }
    }
    println!(
        "config {} is valid: {} rules, {} databases",
        config.path.display(),
        config.rules.len(),
        config.databases.len()
    );
    failed |= print_plan(&planned);
    if failed {
        Exit::Failure
    } else {
        Exit::Success
    }
}

/// Delete rules on tables that other tables reference by foreign key, where the rule does
/// not say (with `keep_while`) what happens to the referencing rows.
async fn reference_warnings(
    config: &Config,
    prepared: &crate::engine::prepare::Prepared<'_>,
) -> Vec<String> {
    let mut out = Vec::new();
    for rule in config
        .rules
        .iter()
        .filter(|r| r.action == crate::config::Action::Delete)
    {
        let Some(db) = prepared.db(rule) else {
            continue;
        };
        let refs = match crate::db::schema::referencing(db, &rule.table).await {
            Ok(r) => r,
            Err(e) => {
                out.push(format!(
                    "rule '{}': could not read the foreign keys that reference {}: {e}",
                    rule.name, rule.table
                ));
                continue;
            }
        };
        for r in refs {
            let covered = rule.keep_while.iter().any(|k| {
                k.table.name.as_str().eq_ignore_ascii_case(&r.table)
                    && k.foreign_key.as_str().eq_ignore_ascii_case(&r.column)
            });
            if !covered {
                out.push(format!(
                    "rule '{}' (line {}) deletes from {}, which {}.{} references ({}). Say what should happen: keep the record while it is referenced (keep_while = [{{ table = \"{}\", foreign_key = \"{}\", since = \"…\", after = \"…\" }}]) or give {} a rule of its own.",
                    rule.name, rule.line, rule.table, r.table, r.column, r.on_delete, r.table, r.column, r.table
                ));
            }
        }
    }
    out
}

fn print_plan(planned: &[PlannedRule]) -> bool {
    let mut failed = false;
    for p in planned {
        let held: u64 = p.held.iter().map(|h| h.records).sum();
        match (&p.error, p.count) {
            (Some(e), _) => {
                failed = true;
                println!("  {:<32} {:<9} FAILED: {e}", p.rule, p.action);
            }
            (None, Some(n)) => {
                let sample = if p.sample_keys.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (keys {}{})",
                        p.sample_keys.join(", "),
                        if n > p.sample_keys.len() as i64 {
                            ", …"
                        } else {
                            ""
                        }
                    )
                };
                let mode = if p.mode == "report" {
                    " [report only]"
                } else {
                    ""
                };
                println!(
                    "  {:<32} {:<9} {n:>8} records in {}.{}{sample}{mode}",
                    p.rule, p.action, p.database, p.table
                );
                if held > 0 {
                    let names: Vec<&str> = p.held.iter().map(|h| h.hold.as_str()).collect();
                    println!(
                        "  {:<32} {:<9} {held:>8} held back by legal holds ({})",
                        "",
                        "",
                        names.join(", ")
                    );
                }
                if let Some(b) = &p.brake {
                    println!("  {:<32} BRAKE: {b}", "");
                }
            }
            (None, None) => {}
        }
    }
    failed
}

/// `plan`: the forecast at a moment.
pub async fn plan(path: &Path, at: Option<&str>, json: bool) -> Exit {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let at = match at
        .map(|s| parse_moment(s, config.daemon.timezone))
        .transpose()
    {
        Ok(t) => t.unwrap_or_else(Utc::now),
        Err(e) => {
            eprintln!("error: --at: {e}");
            return Exit::Usage;
        }
    };
    let prepared = match prepare(&config, &[]).await {
        Ok(p) => p,
        Err(e) => {
            eprint!("error: {e}");
            return Exit::Config;
        }
    };
    let planned = plan_rules(&prepared, at, config.daemon.timezone).await;
    prepared.close().await;
    let failed = planned.iter().any(|p| p.error.is_some());
    if json {
        let doc = serde_json::json!({ "at": at.to_rfc3339(), "rules": planned });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        println!("plan at {} ({}):", at.to_rfc3339(), config.daemon.timezone);
        print_plan(&planned);
    }
    if failed {
        Exit::Failure
    } else {
        Exit::Success
    }
}

/// `run --once`: one pass now; prints the summary and saves it under `state_dir/reports`.
/// `confirm` approves the exact count the single selected rule may act on past its brake.
pub async fn run_once(path: &Path, rules: &[String], confirm: Option<u64>) -> Exit {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if let Some(unknown) = rules
        .iter()
        .find(|n| !config.rules.iter().any(|r| &r.name == *n))
    {
        let known: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
        eprintln!(
            "error: --rule {unknown}: no such rule in {}; rules are: {}",
            config.path.display(),
            known.join(", ")
        );
        return Exit::Usage;
    }
    if confirm.is_some() && rules.len() != 1 {
        eprintln!(
            "error: --confirm approves one rule's count: give exactly one --rule NAME with it"
        );
        return Exit::Usage;
    }
    let options = PassOptions {
        rules: rules.to_vec(),
        confirm,
    };
    match one_pass(&config, &options, &CancellationToken::new()).await {
        Ok((summary, _)) => {
            print!(
                "{}",
                render::render(&summary, Format::Text, config.daemon.language)
            );
            if summary.failed() {
                Exit::Failure
            } else {
                Exit::Success
            }
        }
        Err(e) => e,
    }
}

/// Runs a pass and publishes its report (saved, and mailed if configured); maps pass
/// errors to exit statuses. Returns the summary and the saved HTML report.
async fn one_pass(
    config: &Config,
    options: &PassOptions,
    stop: &CancellationToken,
) -> Result<(RunSummary, Option<std::path::PathBuf>), Exit> {
    let state = State::open(&config.daemon.state_dir).await.map_err(|e| {
        eprintln!("error: {e}");
        Exit::Failure
    })?;
    let result = run_pass(config, &state, options, stop).await;
    let html = match &result {
        Ok(summary) => crate::report::files::publish(config, &state, summary).await,
        Err(_) => None,
    };
    state.close().await;
    match result {
        Ok(summary) => Ok((summary, html)),
        Err(PassError::Config(e)) => {
            eprint!("error: {e}");
            Err(Exit::Config)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(Exit::Failure)
        }
    }
}

async fn open_state(config: &Config) -> Result<Option<State>, Exit> {
    State::open_existing(&config.daemon.state_dir)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            Exit::Failure
        })
}

/// `holds`: every legal hold, whether it is in force, how many records it covers, and how
/// many of those a rule would act on now if not for the hold.
pub async fn holds(path: &Path) -> Exit {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if config.holds.is_empty() {
        println!("no legal holds in {}", config.path.display());
        return Exit::Success;
    }
    let prepared = match prepare(&config, &[]).await {
        Ok(p) => p,
        Err(e) => {
            eprint!("error: {e}");
            return Exit::Config;
        }
    };
    let now = Utc::now();
    let planned = plan_rules(&prepared, now, config.daemon.timezone).await;
    let mut failed = false;
    for h in &config.holds {
        let state = if h.active(now) { "in force" } else { "ended" };
        let until = h.until.map_or("until lifted".to_owned(), |u| {
            format!("until {}", u.to_rfc3339())
        });
        println!("{} ({state}, {until}): {}", h.name, h.reason);
        let covered = match prepared.dbs.get(&h.database) {
            Some(db) => {
                let mut sql = crate::db::Sql::new(db.dialect);
                sql.push("SELECT COUNT(*) FROM ")
                    .push(&db.dialect.table(&h.table))
                    .push(" WHERE COALESCE((")
                    .push(&h.filter)
                    .push("), TRUE)");
                db.fetch_i64(&sql)
                    .await
                    .map(|n| n.to_string())
                    .unwrap_or_else(|e| {
                        failed = true;
                        format!("unknown ({e})")
                    })
            }
            None => "unknown (no rule uses this database, or it is unreachable)".to_owned(),
        };
        println!(
            "  {}.{} where {} — {covered} records",
            h.database, h.table, h.filter
        );
        for p in &planned {
            if let Some(c) = p.held.iter().find(|c| c.hold == h.name) {
                println!(
                    "  keeps {} records from rule {} ({})",
                    c.records, p.rule, p.action
                );
            }
        }
    }
    prepared.close().await;
    if failed {
        Exit::Failure
    } else {
        Exit::Success
    }
}

/// `audit verify`.
pub async fn audit_verify(path: &Path) -> Exit {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let state = match open_state(&config).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            println!(
                "audit trail is empty (no pass has run yet; state directory {})",
                config.daemon.state_dir.display()
            );
            return Exit::Success;
        }
        Err(e) => return e,
    };
    let verdict = audit::verify(&state).await;
    let pending = state.pending().await.map(|p| p.len()).unwrap_or(0);
    state.close().await;
    match verdict {
        Ok(Verdict::Intact { entries, head }) => {
            println!("audit trail intact: {entries} entries, head hash {head}");
            if pending > 0 {
                println!("note: {pending} batches from an interrupted pass are still to be settled; the next pass settles them");
            }
            Exit::Success
        }
        Ok(Verdict::Broken { seq, reason }) => {
            println!("audit trail BROKEN at entry {seq}: {reason}");
            Exit::Failure
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// `audit export`.
pub async fn audit_export(
    path: &Path,
    since: Option<&str>,
    until: Option<&str>,
    format: export::Format,
) -> Exit {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let bound = |s: Option<&str>, flag: &str| -> Result<Option<String>, Exit> {
        s.map(|s| {
            parse_moment(s, chrono_tz::UTC)
                .map(crate::state::time_text)
                .map_err(|e| {
                    eprintln!("error: {flag}: {e}");
                    Exit::Usage
                })
        })
        .transpose()
    };
    let (since, until) = match (bound(since, "--since"), bound(until, "--until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let state = match open_state(&config).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            if format == export::Format::Csv {
                println!("seq,at,run_id,rule,database,table,action,key,legal_basis,hash,prev_hash");
            }
            return Exit::Success;
        }
        Err(e) => return e,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let r = export::export(&state, since.as_deref(), until.as_deref(), format, &mut out).await;
    drop(out);
    state.close().await;
    match r {
        Ok(_) => Exit::Success,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// `report`: the management report of a pass (the last one, one by id, or the last one
/// on a date), rendered as HTML, text or JSON.
pub async fn report(
    path: &Path,
    run: Option<&str>,
    date: Option<&str>,
    format: crate::report::document::Format,
) -> Exit {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let state = match open_state(&config).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("error: no pass has run yet (state directory {}); run `retentiond run --once` first", config.daemon.state_dir.display());
            return Exit::Failure;
        }
        Err(e) => return e,
    };
    let exit = report_from(&config, &state, run, date, format).await;
    state.close().await;
    exit
}

async fn report_from(
    config: &Config,
    state: &State,
    run: Option<&str>,
    date: Option<&str>,
    format: crate::report::document::Format,
) -> Exit {
    let found = match (run, date) {
        (Some(id), _) => state.run(Some(id)).await.map(|r| r.and_then(|r| r.summary)),
        (None, Some(d)) => {
            let tz = config.daemon.timezone;
            let Ok(from) = parse_moment(d, tz) else {
                eprintln!("error: --date: '{d}' is not a date; write YYYY-MM-DD");
                return Exit::Usage;
            };
            let until = crate::state::time_text(from + chrono::Duration::days(1));
            state
                .summaries_between(&crate::state::time_text(from), &until)
                .await
                .map(|v| v.into_iter().last())
        }
        (None, None) => state.run(None).await.map(|r| r.and_then(|r| r.summary)),
    };
    let summary = match found {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!(
                "error: {}",
                match (run, date) {
                    (Some(id), _) => format!(
                        "no finished pass with id {id}; `retentiond audit export` lists run ids"
                    ),
                    (None, Some(d)) => format!("no finished pass on {d}"),
                    (None, None) =>
                        "no finished pass yet; run `retentiond run --once` first".to_owned(),
                }
            );
            return Exit::Failure;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    let Ok(summary) = serde_json::from_str::<RunSummary>(&summary) else {
        eprintln!("error: the stored summary of this pass cannot be read");
        return Exit::Failure;
    };
    let rendered = crate::report::files::report_of(config, state, &summary)
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| crate::report::document::render(&r, format));
    match rendered {
        Ok(text) => {
            print!("{text}");
            Exit::Success
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// `demo`.
pub async fn demo(dir: Option<&Path>) -> Exit {
    match crate::demo::build(dir).await {
        Ok(demo) => {
            let config = match load(&demo.config) {
                Ok(c) => c,
                Err(e) => return e,
            };
            println!("retentiond demo — a small company's HR, CRM and bookkeeping in SQLite\n");
            let mut html = None;
            let status =
                match one_pass(&config, &PassOptions::default(), &CancellationToken::new()).await {
                    Ok((s, report)) => {
                        html = report;
                        print!(
                            "{}",
                            render::render(&s, Format::Text, config.daemon.language)
                        );
                        if s.failed() {
                            Exit::Failure
                        } else {
                            Exit::Success
                        }
                    }
                    Err(e) => e,
                };
            println!("\nFiles:");
            println!("  config:        {}", demo.config.display());
            for db in &demo.databases {
                println!("  database:      {}", db.display());
            }
            println!("  state dir:     {}", config.daemon.state_dir.display());
            println!(
                "  reports:       {}",
                config.daemon.state_dir.join("reports").display()
            );
            if let Some(html) = &html {
                println!(
                    "  this report:   {}  (open it in a browser)",
                    html.display()
                );
            }
            println!("\nTry next:");
            let c = demo.config.display();
            println!(
                "  retentiond --config {c} plan --at {}",
                (Utc::now() + chrono::Duration::days(365)).format("%Y-%m-%d")
            );
            println!("  retentiond --config {c} audit verify");
            println!("  retentiond --config {c} audit export --format csv");
            println!("  retentiond --config {c} report --last --format html > report.html");
            status
        }
        Err(e) => {
            eprintln!("error: demo: {e}");
            Exit::Failure
        }
    }
}

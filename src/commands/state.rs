//! `retentiond state migrate --to URL`: moves the state from `state_dir/state.db` into
//! PostgreSQL (`[daemon] state_url`), then proves the copy: both trails verify, to the same
//! number of entries and the same head.

use super::{load, CommandError, Out, Status};
use crate::audit::verify::verify;
use crate::audit::Verdict;
use crate::config::{mask_url, Config};
use crate::state::migrate::{Copied, MigrateError};
use crate::state::State;
use std::path::Path;

/// `state migrate --to URL`: copies the config's `state.db` into the empty PostgreSQL
/// state at `url` under both pass locks, verifies both trails and compares them. Exit 0
/// only when both verify alike; the URL's password is never printed.
pub async fn migrate(path: &Path, url: &str, out: Out<'_>) -> Result<Status, CommandError> {
    let config = load(path)?;
    let masked = mask_url(url);
    check_url(url, &masked)?;
    let file = config.daemon.state_dir.join("state.db");
    if !file.exists() {
        return Err(CommandError::Usage(format!(
            "there is no state to migrate: {} does not exist (is [daemon] state_dir in {} the one a pass wrote?)",
            file.display(),
            path.display()
        )));
    }
    // Opened for writing, as a pass would: an older schema is converted to the current one.
    let source = State::open(&config.daemon.state_dir)
        .await
        .map_err(CommandError::runtime)?;
    let result = with_source(&config, &source, url, &masked, out).await;
    source.close().await;
    result
}

/// Only a PostgreSQL URL can hold the state (as `[daemon] state_url` requires).
fn check_url(url: &str, masked: &str) -> Result<(), CommandError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(CommandError::Usage(format!(
            "--to '{masked}': the state can only move to PostgreSQL; give a URL such as postgres://user@host:5432/retentiond"
        )));
    }
    <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)
        .map(|_| ())
        .map_err(|e| CommandError::Usage(format!("--to '{masked}' is not a PostgreSQL URL: {e}")))
}

async fn with_source(
    config: &Config,
    source: &State,
    url: &str,
    masked: &str,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let _source_lock = source.lock_pass().await.map_err(CommandError::runtime)?;
    let mut daemon = config.daemon.clone();
    daemon.state_url = Some(url.to_owned());
    let target = State::open_for(&daemon)
        .await
        .map_err(CommandError::runtime)?;
    let result = with_target(source, &target, masked, out).await;
    target.close().await;
    result
}

async fn with_target(
    source: &State,
    target: &State,
    masked: &str,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let _target_lock = target.lock_pass().await.map_err(CommandError::runtime)?;
    let copied = source.copy_into(target).await.map_err(|e| match e {
        MigrateError::NotEmpty { .. } => CommandError::Usage(e.to_string()),
        MigrateError::State(e) => CommandError::runtime(e),
    })?;
    writeln!(
        out,
        "copied {} from {} to {masked}",
        summary(&copied),
        source.location()
    )?;
    let before = verify(source).await.map_err(CommandError::runtime)?;
    let after = verify(target).await.map_err(CommandError::runtime)?;
    match (&before, &after) {
        (
            Verdict::Intact { entries, head },
            Verdict::Intact {
                entries: copied_entries,
                head: copied_head,
            },
        ) if entries == copied_entries && head == copied_head => {
            writeln!(out, "both trails verify: {entries} entries, head {head}")?;
            writeln!(
                out,
                "next: set [daemon] state_url = \"{masked}\" in the config (with its password, if it has one) and restart retentiond; keep {} as a backup, and run no pass on it again: the anchors in your databases follow the PostgreSQL trail from the next pass on (reports and anonymize.key stay in {})",
                source.location(),
                source.dir().display()
            )?;
            Ok(Status::Success)
        }
        (Verdict::Broken { .. }, _) => {
            writeln!(
                out,
                "the trail in {} is itself {}; the copy at {masked} holds it as it is ({})",
                source.location(),
                describe(&before),
                describe(&after)
            )?;
            not_switched(source, masked, out)
        }
        _ => {
            writeln!(
                out,
                "the copy does NOT verify like the original: {} says {}; {masked} says {}",
                source.location(),
                describe(&before),
                describe(&after)
            )?;
            not_switched(source, masked, out)
        }
    }
}

/// What to do when the copy is not proven equal: the copy stays, the switch does not happen.
fn not_switched(source: &State, masked: &str, out: Out<'_>) -> Result<Status, CommandError> {
    writeln!(
        out,
        "do not set state_url: keep using {} and find out why (`retentiond audit verify`); to migrate again, drop the schema retentiond in {masked} first",
        source.location()
    )?;
    Ok(Status::Failed)
}

/// "N audit entries, R runs, …": what was copied, in the words of the state's things.
fn summary(c: &Copied) -> String {
    [
        (c.rows("audit_entry"), "audit entries"),
        (c.rows("audit_batch"), "audit batches"),
        (c.rows("runs"), "runs"),
        (c.rows("pending"), "batches in doubt"),
        (c.rows("holds_seen"), "holds"),
        (c.rows("rules_seen"), "rules"),
        (c.rows("rule_versions"), "rule versions"),
        (c.rows("rule_unlocks"), "rule unlocks"),
        (c.rows("requests"), "requests"),
        (c.rows("request_outcomes"), "request outcomes"),
        (c.rows("mail_outbox"), "reports waiting to be mailed"),
    ]
    .iter()
    .map(|(n, what)| format!("{n} {what}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// A verdict in a few words.
fn describe(v: &Verdict) -> String {
    match v {
        Verdict::Intact { entries, head } => format!("intact, {entries} entries, head {head}"),
        Verdict::Broken { seq, reason } => format!("BROKEN at entry {seq}: {reason}"),
    }
}

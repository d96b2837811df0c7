//! One enforcement pass: settle what an earlier pass left in doubt, check every rule
//! against its table (nothing is touched if any rule is wrong), record legal holds that
//! began or ended, then run the rules, each independently: count what it matches, stop at
//! the mass-deletion brake unless confirmed, act in audited batches. The rules of one
//! database run one after the other; several databases (`[daemon] parallel`) at once.

use super::execute::{execute_rule, AuditGate, Context};
use super::hasher::Hasher;
use super::matcher::Matcher;
use super::outcome::{Failure, PassStatus, Reconciled, RuleOutcome, RuleStatus, RunSummary};
use super::plan::{brake, evaluate};
use super::prepare::{prepare, Readiness};
use super::reconcile::reconcile;
use crate::config::{Action, Config, ConfigError, Mode, Rule, Strategy};
use crate::db::journal::{self, Anchor};
use crate::db::Db;
use crate::progress::Progress;
use crate::state::{now_text, time_text, State, StateError};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Why a pass could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// A rule does not fit its table: exit 78, nothing touched.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The state database or directory.
    #[error("{0}")]
    State(#[from] StateError),
    /// Something else that stops the pass before it starts.
    #[error("{0}")]
    Other(String),
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Only these rules (all if empty).
    pub rules: Vec<String>,
    /// The operator's confirmation of the exact count the single selected rule may act on,
    /// past its brake (`--confirm N`).
    pub confirm: Option<u64>,
    /// Told how far each rule is (records acted on of those it matched); silent by default.
    pub progress: crate::progress::Reporter,
}

/// The least free space in the state directory for a pass to start: room for the run's
/// rows, a few batches' intents and entries, and SQLite's journal.
pub const MIN_FREE_BYTES: u64 = 16 << 20;

/// What one audit entry costs in the state directory, generously: the row, its index
/// entry, and its copy in the write-ahead log until the next checkpoint.
const BYTES_PER_ENTRY: u64 = 1024;

/// Whether the state directory has room to audit `records` more records (besides the
/// floor); `Err` says how much is missing, in words.
pub(super) fn room_for(state: &State, records: u64) -> Result<(), String> {
    let free = state.free_space().map_err(|e| e.to_string())?;
    let needed = MIN_FREE_BYTES.saturating_add(records.saturating_mul(BYTES_PER_ENTRY));
    if free >= needed {
        return Ok(());
    }
    Err(format!(
        "the state directory {} has {} MB free, and auditing {records} records needs about {} MB; nothing was done. Free some space there; the next pass carries on",
        state.dir().display(),
        free >> 20,
        needed.div_ceil(1 << 20)
    ))
}

/// A new pass id: its UTC start and a random suffix, so ids never repeat even if the
/// state database is recreated (journal rows in target databases are keyed by it).
pub fn new_run_id(at: DateTime<Utc>) -> String {
    let mut r = [0u8; 3];
    // Without randomness the time alone still orders runs; collisions need the same second.
    let _ = getrandom::getrandom(&mut r);
    format!("{}-{}", at.format("%Y%m%dT%H%M%SZ"), hex::encode(r))
}

/// What was left of interrupted passes, settled before anything else.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// Batches in doubt, settled against their databases' journals.
    pub reconciled: Reconciled,
    /// Start times of passes that never finished: rules that last started then are due.
    pub interrupted_starts: Vec<String>,
}

/// Settles what interrupted passes left behind: closes their runs and settles their
/// batches in doubt (each becomes audit entries, or is dropped), under the pass lock. Every
/// pass starts with it; the daemon also runs it the moment it starts, so that records a
/// killed daemon deleted are audited within seconds of the restart, not at the next tick.
pub async fn settle(config: &Config, state: &State) -> Result<Settled, PassError> {
    let _lock = state.lock_pass().await?;
    let interrupted_starts = state.close_interrupted_runs().await?;
    let reconciled = reconcile(config, state).await?;
    Ok(Settled {
        reconciled,
        interrupted_starts,
    })
}

/// Runs one pass.
pub async fn run_pass(
    config: &Config,
    state: &State,
    options: &PassOptions,
    stop: &CancellationToken,
) -> Result<RunSummary, PassError> {
    let prepared = prepare(config, &options.rules).await?;
    run_prepared(config, state, prepared, options, stop).await
}

/// Runs one pass whose rules were already checked against their tables (`prepare`): a
/// rule that does not fit stops the command with exit 78 before the state directory is
/// even opened.
pub async fn run_prepared(
    config: &Config,
    state: &State,
    prepared: super::prepare::Prepared<'_>,
    options: &PassOptions,
    stop: &CancellationToken,
) -> Result<RunSummary, PassError> {
    let _lock = match state.lock_pass().await {
        Ok(lock) => lock,
        Err(e) => {
            prepared.close().await;
            return Err(e.into());
        }
    };
    if let Err(why) = room_for(state, 0) {
        prepared.close().await;
        return Err(PassError::Other(why));
    }
    state.close_interrupted_runs().await?;
    let reconciled = reconcile(config, state).await?;
    clean_old_journal_rows(&prepared, state).await;
    // Under the pass lock: an unlock another process used up since the command checked
    // the config cannot let a locked rule change here.
    if let Some(refused) = super::rule_history::refused(config, state).await? {
        prepared.close().await;
        return Err(refused.into());
    }
    let hasher = if needs_hasher(config) {
        Some(Hasher::load_or_create(&config.daemon.state_dir).map_err(PassError::Other)?)
    } else {
        None
    };
    let started = Utc::now();
    let run_id = new_run_id(started);
    let started_at = time_text(started);
    state.start_run(&run_id, &started_at).await?;
    let names: Vec<&str> = prepared
        .rules
        .iter()
        .map(|(r, _)| r.name.as_str())
        .collect();
    // Marked now, so a pass the process does not survive counts as interrupted for each of
    // its rules; what each rule had before is kept to put back if a stop signal cuts it short.
    let mut before = Vec::with_capacity(names.len());
    for name in &names {
        before.push(state.rule_last_started(name).await?);
    }
    state.mark_rules_started(&names, &started_at).await?;
    let span = tracing::info_span!("pass", run_id = %run_id);
    let _enter = span.enter();
    tracing::info!(rules = prepared.rules.len(), "pass started");
    let hold_events = super::holds::sync(config, state, &run_id, started).await?;
    let rule_events = super::rule_history::sync(config, state, &run_id).await?;
    let batch_counter = AtomicU64::new(0);
    let progress = Together::new(options.progress.get());
    // Once an intent or an audit entry could not be written, no further batch may act in
    // this pass, on any rule: the rest of the pass is refused, each rule saying why.
    let audit = AuditGate::default();
    let seen = super::replicas::SeenStandbys::default();
    let shared = Shared {
        config,
        state,
        prepared: &prepared,
        options,
        stop,
        started,
        run_id: &run_id,
        hasher: hasher.as_ref(),
        batch_counter: &batch_counter,
        audit: &audit,
        progress: &progress,
        seen: &seen,
    };
    // Rules on different databases run side by side, at most `parallel` databases at once;
    // the rules of one database run one after the other, in config order. "One database"
    // is the physical one (`db::target_of`): two `[databases.*]` entries for the same
    // server database or SQLite file share its locks, and would race to create
    // retentiond_journal. With `parallel = 1` every rule runs alone, in config order,
    // exactly as before.
    let mut groups: Vec<(String, Vec<(usize, &Prepped)>)> = Vec::new();
    for (i, prepped) in prepared.rules.iter().enumerate() {
        let name = prepped.0.database.as_str();
        let database = config
            .databases
            .get(name)
            .map_or_else(|| name.to_owned(), crate::db::target_of);
        match groups.iter_mut().find(|(db, _)| *db == database) {
            Some((_, members)) if config.daemon.parallel > 1 => members.push((i, prepped)),
            _ => groups.push((database, vec![(i, prepped)])),
        }
    }
    let shared = &shared;
    let mut done: Vec<(usize, RuleOutcome)> = stream::iter(groups)
        .map(|(_, members)| async move {
            let mut outcomes = Vec::with_capacity(members.len());
            for (i, (rule, readiness)) in members {
                outcomes.push((i, shared.run_one(i, rule, readiness).await));
            }
            outcomes
        })
        .buffer_unordered(config.daemon.parallel)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    // Back in config order: the report and the run history read the same as ever.
    done.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<RuleOutcome> = done.into_iter().map(|(_, o)| o).collect();
    let (audit_entries, audit_head) = crate::audit::head(state).await?;
    let mut summary = RunSummary {
        run_id: run_id.clone(),
        started_at,
        finished_at: now_text(),
        status: PassStatus::Ok,
        rules: outcomes,
        reconciled,
        hold_events,
        rule_events,
        rules_changed_at: state.rules_changed_at().await?,
        audit_entries,
        audit_head,
        anchored_in: Vec::new(),
    };
    summary.status = summary.status_now();
    let encode =
        |s: &RunSummary| serde_json::to_string(s).map_err(|e| PassError::Other(e.to_string()));
    // Durable here first (finish_run fsyncs), then anchored elsewhere: an anchor never
    // names a head this state database could still lose.
    let finished = state
        .finish_run(&run_id, summary.status.as_str(), &encode(&summary)?)
        .await;
    if let Err(e) = finished {
        prepared.close().await;
        return Err(e.into());
    }
    // Rules a stop signal cut short did not really run: they stay due (see daemon::missed).
    for (name, previous) in names.iter().zip(&before) {
        let stopped = summary
            .rules
            .iter()
            .any(|o| o.rule == *name && o.status == RuleStatus::Stopped);
        if let (true, Some(previous)) = (stopped, previous) {
            state.mark_rules_started(&[name], previous).await?;
        }
    }
    let anchor = Anchor {
        run_id: run_id.clone(),
        installation: state.installation().await?.unwrap_or_default(),
        seq: summary.audit_entries,
        head: summary.audit_head.clone(),
    };
    summary.anchored_in = anchor_everywhere(&prepared, &anchor).await;
    prepared.close().await;
    state.update_summary(&run_id, &encode(&summary)?).await?;
    tracing::info!(rows = summary.total_acted(), status = %summary.status, "pass finished");
    Ok(summary)
}

/// A selected rule and whether it can run, as `prepare` left it.
type Prepped<'a> = (&'a Rule, Readiness<'a>);

/// What every rule of a pass shares, however many run at once.
struct Shared<'a> {
    config: &'a Config,
    state: &'a State,
    prepared: &'a super::prepare::Prepared<'a>,
    options: &'a PassOptions,
    stop: &'a CancellationToken,
    started: DateTime<Utc>,
    run_id: &'a str,
    hasher: Option<&'a Hasher>,
    batch_counter: &'a AtomicU64,
    audit: &'a AuditGate,
    progress: &'a Together<'a>,
    /// The standbys each database's rules have seen connected in this pass.
    seen: &'a super::replicas::SeenStandbys,
}

impl Shared<'_> {
    /// Runs one rule of the pass, unless a stop signal came or the audit trail could not be
    /// written earlier in the pass (by any rule, on any database), and closes the audit
    /// gate if this rule could not write it.
    async fn run_one(&self, index: usize, rule: &Rule, readiness: &Readiness<'_>) -> RuleOutcome {
        let progress = self.progress.stage(index);
        let outcome = match (readiness, self.prepared.db(rule)) {
            _ if self.stop.is_cancelled() => {
                let mut o = RuleOutcome::new(rule);
                o.status = RuleStatus::Stopped;
                o
            }
            _ if self.audit.closed().is_some() => RuleOutcome::new(rule).fail(
                Failure::Audit,
                format!(
                    "not run: earlier in this pass the audit trail could not be written ({}); no batch acts unaudited",
                    self.audit.closed().unwrap_or_default()
                ),
            ),
            (Readiness::Ready(m), Some(db)) => {
                let ctx = Context {
                    db,
                    state: self.state,
                    run_id: self.run_id,
                    rule_index: self
                        .config
                        .rules
                        .iter()
                        .position(|r| r.name == rule.name)
                        .unwrap_or(0),
                    hasher: self.hasher,
                    stop: self.stop,
                    batch_counter: self.batch_counter,
                    progress: &progress,
                    audit: self.audit,
                    replicas: self
                        .config
                        .replica_policy(&rule.database)
                        .zip(self.config.databases.get(&rule.database))
                        .map(|(policy, spec)| super::replicas::Replicas {
                            policy,
                            spec,
                            seen: self.seen,
                        }),
                };
                // Every line a rule logs carries its rule and database (journald: RULE=,
                // DATABASE=), besides the pass's RUN_ID=.
                let span = tracing::info_span!("rule", rule = %rule.name, database = %rule.database);
                let mut o = run_rule(m, db, self.started, self.config, self.options.confirm, &ctx)
                    .instrument(span)
                    .await;
                outlook(m, db, self.config, &mut o).await;
                o
            }
            (Readiness::Unavailable(why), _) => {
                RuleOutcome::new(rule).fail(Failure::Unreachable, why.clone())
            }
            (Readiness::Ready(_), None) => RuleOutcome::new(rule).fail(
                Failure::Unreachable,
                format!("database '{}' is not open", rule.database),
            ),
        };
        tracing::info!(rule = %outcome.rule, database = %rule.database, action = %outcome.action, rows = outcome.acted, status = ?outcome.status, "rule done");
        if outcome.failure == Some(Failure::Audit) {
            self.audit
                .close(outcome.error.as_deref().unwrap_or_default());
        }
        outcome
    }
}

/// The rules under way, by their position in the pass: name, records to do, done.
type Underway = BTreeMap<usize, (String, Option<u64>, u64)>;

/// One progress display for the rules that run side by side: the listener (a bar, systemd's
/// `STATUS=`) knows one stage at a time, so while several rules run it is shown one stage
/// covering all of them ("2 rules: a, b", their records together); a single rule is shown
/// as itself, exactly as when rules ran one by one.
struct Together<'a> {
    listener: &'a dyn Progress,
    stages: Mutex<Underway>,
}

impl<'a> Together<'a> {
    fn new(listener: &'a dyn Progress) -> Together<'a> {
        Together {
            listener,
            stages: Mutex::new(BTreeMap::new()),
        }
    }

    /// The progress of the rule at `index`, to hand to it.
    fn stage(&self, index: usize) -> Stage<'_> {
        Stage {
            together: self,
            index,
        }
    }

    fn stages(&self) -> MutexGuard<'_, Underway> {
        // A panic elsewhere while holding the lock leaves the counts usable.
        self.stages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Shows the stages under way as one.
    fn show(&self, stages: &Underway) {
        let (what, total, done) = match stages.values().collect::<Vec<_>>().as_slice() {
            [] => return,
            [(name, total, done)] => (name.clone(), *total, *done),
            many => {
                let names: Vec<&str> = many.iter().map(|(n, _, _)| n.as_str()).collect();
                let total = many.iter().map(|(_, t, _)| *t).sum::<Option<u64>>();
                let done = many.iter().map(|(_, _, d)| d).sum();
                (
                    format!("{} rules: {}", many.len(), names.join(", ")),
                    total,
                    done,
                )
            }
        };
        self.listener.begin(&what, total);
        if done > 0 {
            self.listener.advance(done);
        }
    }
}

/// One rule's view of [`Together`].
struct Stage<'a> {
    together: &'a Together<'a>,
    index: usize,
}

impl Progress for Stage<'_> {
    fn begin(&self, what: &str, total: Option<u64>) {
        let mut stages = self.together.stages();
        stages.insert(self.index, (what.to_owned(), total, 0));
        self.together.show(&stages);
    }

    fn advance(&self, records: u64) {
        let mut stages = self.together.stages();
        if let Some((_, _, done)) = stages.get_mut(&self.index) {
            *done += records;
        }
        self.together.listener.advance(records);
    }

    fn finish(&self) {
        let mut stages = self.together.stages();
        if stages.remove(&self.index).is_none() {
            return;
        }
        if stages.is_empty() {
            self.together.listener.finish();
        } else {
            self.together.show(&stages);
        }
    }
}

/// Removes the journal rows that passes of this installation left behind when they failed
/// or were interrupted (a successful rule cleans its own): once a pass is finished and none
/// of its batches is still in doubt, its rows prove nothing any more. Rows of passes this
/// state database does not know (another installation on the same database) are left
/// alone. Best effort: a failure is logged and retried next pass.
async fn clean_old_journal_rows(prepared: &super::prepare::Prepared<'_>, state: &State) {
    let in_doubt: Vec<String> = match state.pending().await {
        Ok(p) => p.into_iter().map(|i| i.run_id).collect(),
        Err(_) => return,
    };
    // What reconciliation just appended must be on disk before its evidence goes.
    if state.flush().await.is_err() {
        return;
    }
    for (name, db) in &prepared.dbs {
        let Ok(passes) = journal::passes_with_rows(db).await else {
            continue;
        };
        for run_id in passes {
            if in_doubt.contains(&run_id) {
                continue;
            }
            let finished =
                matches!(state.run(Some(&run_id)).await, Ok(Some(r)) if r.finished_at.is_some());
            if !finished {
                continue;
            }
            if let Err(e) = journal::clean(db, &format!("{run_id}-")).await {
                tracing::warn!(database = %name, run_id = %run_id, error = %e, "could not remove old journal rows; retried next pass");
            }
        }
    }
}

/// Anchors the trail's head in every database the pass used (see
/// [`crate::db::journal::write_anchor`]) and in the log, which journald keeps apart from
/// the state directory. Returns the databases that hold the anchor; one that could not
/// be written is logged, never fails the pass (its work is done and audited).
async fn anchor_everywhere(
    prepared: &super::prepare::Prepared<'_>,
    anchor: &Anchor,
) -> Vec<String> {
    tracing::info!(run_id = %anchor.run_id, seq = anchor.seq, head = %anchor.head, "audit trail head");
    let mut anchored = Vec::new();
    for (name, db) in &prepared.dbs {
        match journal::write_anchor(db, anchor).await {
            Ok(()) => anchored.push(name.clone()),
            Err(e) => {
                tracing::warn!(database = %name, error = %e, "could not anchor the audit trail's head in this database")
            }
        }
    }
    anchored
}

/// One rule: count, report-only or brake, then act on at most the counted records.
async fn run_rule(
    m: &Matcher<'_>,
    db: &Db,
    at: DateTime<Utc>,
    config: &Config,
    confirm: Option<u64>,
    ctx: &Context<'_>,
) -> RuleOutcome {
    let rule = m.rule;
    let mut o = RuleOutcome::new(rule);
    let Some(when) = m.when(at, config.daemon.timezone) else {
        return o.fail(
            Failure::Other,
            format!("a retention period before {at} is out of the calendar's range"),
        );
    };
    o.cutoff = Some(when.cutoff.utc.to_rfc3339());
    let e = match evaluate(m, db, &when).await {
        Ok(e) => e,
        Err(e) => return o.fail(super::execute::failure_of(&e), e.to_string()),
    };
    o.matched = Some(e.matched);
    o.table_rows = Some(e.table_rows);
    o.held = e.held;
    if rule.mode == Mode::Report {
        o.status = RuleStatus::Reported;
        return o;
    }
    match confirm {
        Some(n) if n != e.matched => {
            o.brake(Failure::ConfirmMismatch, format!(
                "--confirm {n} does not match the {} records the rule matches now; nothing was done. Check `retentiond plan`, then confirm the count it shows.",
                e.matched
            ));
            return o;
        }
        Some(_) => {
            tracing::warn!(rule = %rule.name, records = e.matched, "brake overridden by --confirm")
        }
        None => {
            if let Some(why) = brake(rule, e.matched, e.table_rows) {
                tracing::error!(rule = %rule.name, "mass-deletion brake: {why}");
                o.brake(Failure::Brake, why);
                return o;
            }
        }
    }
    if let Err(why) = room_for(ctx.state, e.matched) {
        tracing::error!(rule = %rule.name, "{why}");
        // Not `Audit`: nothing failed to be written, so the audit gate stays open and the
        // rules under way on other databases carry on; only this rule does not start.
        return o.fail(Failure::NoRoom, why);
    }
    ctx.progress.begin(&rule.name, Some(e.matched));
    execute_rule(m, &when, e.matched, ctx, &mut o).await;
    ctx.progress.finish();
    o
}

/// What lies ahead for a rule, for the report: what it will act on within 30 days, and
/// (for flags) how many records wait for a human decision. Best effort: a failure here
/// leaves the numbers out, never fails the rule.
async fn outlook(m: &Matcher<'_>, db: &Db, config: &Config, o: &mut RuleOutcome) {
    let in_30_days = Utc::now() + chrono::Duration::days(30);
    if let Some(when) = m.when(in_30_days, config.daemon.timezone) {
        o.forecast_30d = db
            .fetch_i64(&m.count(&when))
            .await
            .ok()
            .map(|n| n.max(0) as u64);
    }
    if let Some(sql) = m.count_flagged() {
        o.awaiting_review = db.fetch_i64(&sql).await.ok().map(|n| n.max(0) as u64);
    }
}

fn needs_hasher(config: &Config) -> bool {
    config.rules.iter().any(|r: &Rule| match &r.action {
        Action::Anonymize(cols) => cols.iter().any(|(_, s)| *s == Strategy::Hash),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes down what a listener is told.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Progress for Recorder {
        fn begin(&self, what: &str, total: Option<u64>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("begin {what} {total:?}"));
        }
        fn advance(&self, records: u64) {
            self.0.lock().unwrap().push(format!("advance {records}"));
        }
        fn finish(&self) {
            self.0.lock().unwrap().push("finish".into());
        }
    }

    #[test]
    fn rules_one_after_the_other_are_shown_as_themselves() {
        let r = Recorder::default();
        let t = Together::new(&r);
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let s = t.stage(i);
            s.begin(name, Some(10));
            s.advance(10);
            s.finish();
        }
        assert_eq!(
            *r.0.lock().unwrap(),
            [
                "begin a Some(10)",
                "advance 10",
                "finish",
                "begin b Some(10)",
                "advance 10",
                "finish"
            ]
        );
    }

    #[test]
    fn rules_side_by_side_are_shown_as_one_stage_with_their_records_together() {
        let r = Recorder::default();
        let t = Together::new(&r);
        let (a, b) = (t.stage(0), t.stage(1));
        a.begin("a", Some(10));
        a.advance(4);
        b.begin("b", Some(5));
        b.advance(1);
        a.finish();
        b.finish();
        assert_eq!(
            *r.0.lock().unwrap(),
            [
                "begin a Some(10)",
                "advance 4",
                "begin 2 rules: a, b Some(15)",
                "advance 4",
                "advance 1",
                "begin b Some(5)",
                "advance 1",
                "finish"
            ]
        );
    }
}

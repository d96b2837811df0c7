//! Acting on one rule, batch by batch. Each batch is one short transaction in the target
//! database, and follows the protocol that keeps the audit invariant under any crash:
//!
//! 1. lock the next batch of matching records (`FOR UPDATE SKIP LOCKED`; SQLite:
//!    `BEGIN IMMEDIATE`), walking the key range once (keyset, never rescanning);
//! 2. write the batch's *intent* (its keys) to the state database, durably;
//! 3. act on exactly those keys, and insert the batch's row in `retentiond_journal`;
//! 4. commit the target transaction;
//! 5. *confirm*: turn the intent into audit entries, atomically.
//!
//! A crash before 4 leaves an intent without a journal row: dropped at the next start.
//! A crash after 4 leaves an intent with a journal row: confirmed at the next start.
//! See `reconcile`.

use super::batch_size::{pause_after, BatchSizer};
use super::hasher::Hasher;
use super::journal;
use super::matcher::{flag_value, Matcher, When};
use super::outcome::{Failure, RuleOutcome, RuleStatus};
use super::replicas::{Replicas, WaitEnd, Watch};
use super::statements::{act_statements, Act, Change};
use super::wait::{sleep_or_stop, Waited};
use crate::config::Action;
use crate::db::{self, Db, DbError, Record, Value};
use crate::state::{now_text, Intent, State};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often a batch is tried again after a transient error (lost connection, lock or
/// statement timeout, deadlock) before the rule fails for this pass.
pub const MAX_RETRIES: u32 = 3;

/// The wait before retry `n` (1-based): 0.5 s, 1 s, 2 s.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(500 << n.saturating_sub(1).min(4))
}

/// What a batch loop needs besides the rule.
pub struct Context<'a> {
    /// The target database.
    pub db: &'a Db,
    /// The state database.
    pub state: &'a State,
    /// The pass.
    pub run_id: &'a str,
    /// Position of the rule in the config (part of batch ids).
    pub rule_index: usize,
    /// The anonymization key, when a rule hashes.
    pub hasher: Option<&'a Hasher>,
    /// Checked between batches, never inside one.
    pub stop: &'a CancellationToken,
    /// Numbers batch ids; every attempt gets a new id, so a settled id is never reused.
    pub batch_counter: &'a AtomicU64,
    /// Told after every batch how many records it acted on.
    pub progress: &'a dyn crate::progress::Progress,
    /// Closed for the rest of the pass once any rule could not write its audit trail;
    /// shared by the rules that run at the same time on other databases.
    pub audit: &'a AuditGate,
    /// The database's replicas, when it has a `max_replica_lag`: every batch waits while
    /// one lags more than that.
    pub replicas: Option<Replicas<'a>>,
}

/// Whether the audit trail could be written so far in this pass. Once an intent or an audit
/// entry could not be written, no further batch may act in the pass, on any rule: rules
/// that run side by side on other databases check it before every batch, not only before
/// they start.
#[derive(Debug, Default)]
pub struct AuditGate(Mutex<Option<String>>);

impl AuditGate {
    /// Why the trail could not be written, once it could not; `None` while it could.
    pub fn closed(&self) -> Option<String> {
        // A panic elsewhere while holding the lock leaves the text intact; keep using it.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Closes the gate for the rest of the pass; the first reason is the one kept.
    pub fn close(&self, why: &str) {
        let mut reason = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if reason.is_none() {
            *reason = Some(why.to_owned());
        }
    }
}

impl Context<'_> {
    fn next_batch_id(&self) -> String {
        let n = self.batch_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{}-{n}", self.run_id, self.rule_index)
    }
}

/// Why a batch did not happen, what kind of failure that is, and whether trying again may
/// help.
#[derive(Debug)]
pub(super) struct BatchError {
    /// What happened, for the operator.
    pub message: String,
    /// Its kind, for the report.
    pub failure: Failure,
    /// Whether trying again may help.
    pub transient: bool,
}

impl BatchError {
    fn fatal(failure: Failure, message: impl Into<String>) -> Self {
        BatchError {
            message: message.into(),
            failure,
            transient: false,
        }
    }
}

impl From<DbError> for BatchError {
    fn from(e: DbError) -> Self {
        BatchError {
            transient: e.is_transient(),
            failure: failure_of(&e),
            message: e.to_string(),
        }
    }
}

/// The kind of failure a database error is, for the report.
pub fn failure_of(e: &DbError) -> Failure {
    match e {
        DbError::Connect { .. } | DbError::Secret { .. } => Failure::Unreachable,
        DbError::Query {
            transient: true, ..
        } => Failure::Busy,
        DbError::Query { .. } => Failure::Other,
    }
}

/// Runs the batches of one rule at `when`, acting on at most `limit` records (the count
/// checked against the brake at the start of the pass), and records how it went.
///
/// Batches are pipelined: while batch *n + 1* is being locked in the target database, the
/// audit entries of the committed batch *n* are written to the state database, and a
/// batch's intent is fsynced while its action runs (it must only be on disk before the
/// target commits). The two databases work side by side instead of taking turns; the
/// protocol's order for each batch is unchanged.
///
/// Each batch's size comes from a [`BatchSizer`] told how long the batch before held its
/// locks (from lock to commit), and so does the pause after it (`batch_pause` plus
/// `batch_pause_factor` times that time).
pub async fn execute_rule(
    m: &Matcher<'_>,
    when: &When,
    limit: u64,
    ctx: &Context<'_>,
    outcome: &mut RuleOutcome,
) {
    let rule = m.rule;
    if let Err(e) = db::journal::ensure(ctx.db).await {
        let failure = match failure_of(&e) {
            Failure::Other => Failure::Journal,
            f => f,
        };
        outcome.record_failure(failure, format!(
            "{e} — retentiond keeps a small table retentiond_journal in each database to make every batch verifiable; grant CREATE (or create it as in the README)"
        ));
        return;
    }
    let mut after: Option<Value> = None;
    let mut retries = 0;
    let mut sizer = BatchSizer::new(rule.batch_sizing);
    // A committed batch whose audit entries are still to be written.
    let mut unconfirmed: Option<Intent> = None;
    let mut watch = ctx.replicas.map(Watch::new);
    while outcome.acted < limit {
        if ctx.stop.is_cancelled() {
            outcome.status = RuleStatus::Stopped;
            break;
        }
        if let Some(why) = ctx.audit.closed() {
            outcome.record_failure(Failure::Audit, format!(
                "stopped: elsewhere in this pass the audit trail could not be written ({why}); no batch acts unaudited"
            ));
            break;
        }
        if let Some(w) = watch.as_mut() {
            if !wait_for_replicas(w, ctx, outcome, &mut unconfirmed).await {
                break;
            }
        }
        let size = (limit - outcome.acted).min(u64::from(sizer.next()));
        let (confirmed, locked) = if m.dialect.single_writer() {
            // SQLite has one writer, and a batch holds the whole database: the application
            // writes while the entries are written, or it would wait out the entire pass
            // (its busy handler polls, and back-to-back batches never leave it a turn).
            let confirmed = confirm(ctx, unconfirmed.take()).await;
            let locked = match confirmed {
                Ok(()) => lock_batch(m, when, ctx, after.as_ref(), size).await,
                Err(_) => Ok(None),
            };
            (confirmed, locked)
        } else {
            tokio::join!(
                confirm(ctx, unconfirmed.take()),
                lock_batch(m, when, ctx, after.as_ref(), size)
            )
        };
        if let Err(e) = confirmed {
            // The next batch, if locked, rolls back as `locked` is dropped.
            fail(outcome, e, retries);
            break;
        }
        let step = match locked {
            Ok(None) => break,
            Ok(Some(batch)) => finish_batch(m, ctx, batch).await,
            Err(e) => Err(e),
        };
        let pause = match step {
            Ok(done) => {
                outcome.acted += done.records;
                ctx.progress.advance(done.records);
                outcome.batches += 1;
                after = Some(done.last);
                retries = 0;
                unconfirmed = done.unconfirmed;
                sizer.record(done.records, done.rows, done.held);
                tracing::debug!(rule = %rule.name, batch = outcome.batches, rows = done.records, held_ms = done.held.as_millis() as u64, next = sizer.next(), "batch committed");
                if outcome.acted >= limit || done.records < size {
                    // Nothing is left: the lock found fewer than it asked for (the key range
                    // is walked once), or the rule's count is done. A pause now would only
                    // hold the database's later rules back.
                    Duration::ZERO
                } else {
                    pause_after(rule.batch_pause, rule.batch_pause_factor, done.held)
                }
            }
            Err(e) if e.transient && retries < MAX_RETRIES => {
                retries += 1;
                // A statement or lock timeout is the database saying the batch is too much
                // for it now: retry with less, not the same again.
                sizer.shrink();
                tracing::warn!(rule = %rule.name, error = %e.message, retry = retries, "batch failed; trying again");
                if sleep_or_stop(backoff(retries), ctx.stop).await == Waited::Stopped {
                    outcome.status = RuleStatus::Stopped;
                    break;
                }
                continue;
            }
            Err(e) => {
                fail(outcome, e, retries);
                break;
            }
        };
        if !pause.is_zero() {
            // A pause may be long: the batch just committed is audited before it, not after.
            if let Err(e) = confirm(ctx, unconfirmed.take()).await {
                fail(outcome, e, 0);
                break;
            }
        }
        if sleep_or_stop(pause, ctx.stop).await == Waited::Stopped {
            // The loop's head sees the stop and ends the rule as stopped.
            continue;
        }
    }
    if let Some(w) = watch {
        w.close().await;
    }
    close_gate_if_unaudited(ctx, outcome);
    // However the loop ended, the last committed batch gets its entries now.
    if let Err(e) = confirm(ctx, unconfirmed.take()).await {
        fail(outcome, e, 0);
        close_gate_if_unaudited(ctx, outcome);
    }
    if outcome.status == RuleStatus::Ok && outcome.acted < limit {
        outcome.deferred = limit - outcome.acted;
        tracing::info!(rule = %rule.name, records = outcome.deferred, "matched records were busy; left for the next pass");
    }
    if outcome.status != RuleStatus::Failed && outcome.batches > 0 {
        cleanup_journal(m, ctx).await;
    }
}

/// Before a batch, with no target transaction open: waits while a replica lags more than
/// `max_replica_lag` (see [`Watch`]), adding the time waited to the outcome. The batch
/// committed before is audited before a wait, not after it. Returns `false` when the rule
/// must end here: stopped, waited longer than `max_replica_wait`, or not audited.
async fn wait_for_replicas(
    w: &mut Watch<'_>,
    ctx: &Context<'_>,
    outcome: &mut RuleOutcome,
    unconfirmed: &mut Option<Intent>,
) -> bool {
    let since = Instant::now();
    let lagging = tokio::select! {
        read = w.lagging(ctx.db) => read,
        () = ctx.stop.cancelled() => {
            outcome.status = RuleStatus::Stopped;
            return false;
        }
    };
    if lagging.is_empty() {
        return true;
    }
    if let Err(e) = confirm(ctx, unconfirmed.take()).await {
        fail(outcome, e, 0);
        return false;
    }
    let end = w
        .wait(ctx.db, (since, lagging), &outcome.rule, ctx.stop)
        .await;
    let waited = match &end {
        WaitEnd::Go(d) | WaitEnd::Stopped(d) | WaitEnd::TooLong(d, _) => *d,
    };
    outcome.replica_wait_ms = outcome
        .replica_wait_ms
        .saturating_add(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX));
    match end {
        WaitEnd::Go(_) => true,
        WaitEnd::Stopped(_) => {
            outcome.status = RuleStatus::Stopped;
            false
        }
        WaitEnd::TooLong(_, why) => {
            tracing::error!(rule = %outcome.rule, error = %why, "rule failed");
            outcome.record_failure(Failure::ReplicaLag, why);
            false
        }
    }
}

/// Rules running side by side on other databases stop before their next batch as soon as
/// this one could not write the audit trail, not only once it has finished.
fn close_gate_if_unaudited(ctx: &Context<'_>, outcome: &RuleOutcome) {
    if outcome.failure == Some(Failure::Audit) {
        ctx.audit
            .close(outcome.error.as_deref().unwrap_or("the audit trail"));
    }
}

/// Marks the rule failed for this pass (the first error is the one reported).
fn fail(outcome: &mut RuleOutcome, e: BatchError, retries: u32) {
    tracing::error!(rule = %outcome.rule, error = %e.message, "rule failed");
    let message = if retries > 0 {
        format!("{} (after {retries} retries)", e.message)
    } else {
        e.message
    };
    outcome.record_failure(e.failure, message);
}

/// Writes the audit entries of a committed batch (step 5), if there is one. Hashing and
/// encoding the entries take CPU, so this runs as a task of its own, on the other core,
/// rather than stalling the batch beside it.
async fn confirm(ctx: &Context<'_>, intent: Option<Intent>) -> Result<(), BatchError> {
    confirm_in(ctx.state, intent).await
}

/// [`confirm`] given the state database alone.
pub(super) async fn confirm_in(state: &State, intent: Option<Intent>) -> Result<(), BatchError> {
    let Some(intent) = intent else {
        return Ok(());
    };
    let state = state.clone();
    let batch_id = intent.batch_id.clone();
    let failed = |e: String| {
        BatchError::fatal(Failure::Audit, format!("batch {batch_id} committed but its audit entries could not be written yet ({e}); they are written at the next start"))
    };
    tokio::spawn(async move { journal::confirm(&state, &intent).await })
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))
}

/// A batch locked in an open target transaction (step 1).
struct Locked {
    tx: crate::db::Tx,
    records: Vec<Record>,
    last: Value,
    /// When its transaction began: what it holds, it holds from here until the commit.
    since: Instant,
}

/// A committed batch.
struct Done {
    records: u64,
    /// Rows acted on: its records and their child rows.
    rows: u64,
    last: Value,
    /// How long its transaction held its locks, from the lock to the commit: what the
    /// database and its other users paid for it, which sizes the next batch.
    held: Duration,
    /// Its intent, when its audit entries are still to be written.
    unconfirmed: Option<Intent>,
}

/// Step 1: locks the next batch of at most `size` records after `after`. `Ok(None)` when
/// nothing is left to do.
async fn lock_batch(
    m: &Matcher<'_>,
    when: &When,
    ctx: &Context<'_>,
    after: Option<&Value>,
    size: u64,
) -> Result<Option<Locked>, BatchError> {
    let since = Instant::now();
    let mut tx = ctx.db.begin().await?;
    let records = tx
        .fetch_records(&m.batch(when, after, size), m.shape.key)
        .await?;
    Ok(records.last().map(|r| r.key.value()).map(|last| Locked {
        tx,
        records,
        last,
        since,
    }))
}

/// Steps 2 to 4 for a locked batch: the intent is made durable while the action and the
/// journal row are sent, and the target commits only once both are done.
async fn finish_batch(
    m: &Matcher<'_>,
    ctx: &Context<'_>,
    batch: Locked,
) -> Result<Done, BatchError> {
    let rule = m.rule;
    let Locked {
        tx,
        records,
        last,
        since,
    } = batch;
    let intent = Intent {
        batch_id: ctx.next_batch_id(),
        run_id: ctx.run_id.to_owned(),
        rule: rule.name.clone(),
        database: rule.database.clone(),
        table: rule.table.to_string(),
        action: rule.action.verb().to_owned(),
        legal_basis: rule.legal_basis.clone(),
        keys: records.iter().map(|r| r.key.to_string()).collect(),
        created_at: now_text(),
        request: None,
        children: Vec::new(),
    };
    let act =
        action_sql(m, &records, ctx.hasher).map_err(|e| BatchError::fatal(Failure::Other, e))?;
    let mut tx = tx;
    let mut intent = intent;
    let mut acts = Vec::new();
    if !m.children.is_empty() {
        let parents: Vec<Value> = records.iter().map(|r| r.key.value()).collect();
        let children = super::children::lock(
            &mut tx,
            m.dialect,
            &m.children,
            &parents,
            m.shape.key_unsigned,
            &rule.action,
            ctx.hasher,
        )
        .await
        .map_err(|e| match e {
            super::children::LockError::Db(e) => BatchError::from(e),
            super::children::LockError::Internal(m) => BatchError::fatal(Failure::Other, m),
        })?;
        intent.children = children.keys;
        acts = children.acts;
    }
    acts.extend(act);
    let sink = Sink {
        db: ctx.db,
        state: ctx.state,
        stop: ctx.stop,
    };
    let children: u64 = intent.children.iter().map(|c| c.keys.len() as u64).sum();
    let unconfirmed = commit_audited(&sink, tx, intent, &acts).await?;
    Ok(Done {
        records: records.len() as u64,
        rows: records.len() as u64 + children,
        last,
        held: since.elapsed(),
        unconfirmed,
    })
}

/// Where an audited batch is committed: its target database, the state database, and
/// the stop signal that ends a wait for a database in doubt.
pub(super) struct Sink<'a> {
    /// The target database.
    pub db: &'a Db,
    /// The state database.
    pub state: &'a State,
    /// Ends the waits of [`settle_now`].
    pub stop: &'a CancellationToken,
}

/// Steps 2 to 4 of the protocol for a batch whose records `tx` holds locked: `intent`
/// (the batch's keys) is made durable while `acts` (in order: child rows first, the
/// records last) and the journal row are sent, and the target commits only once both are
/// done and each act changed exactly the rows it was given (where a count is given).
/// Returns the intent whose audit entries are still to be written (step 5), or `None` when
/// a commit in doubt was settled (and audited) here. The one crash protocol of every
/// action retentiond takes: retention rules and data-subject erasures alike.
pub(super) async fn commit_audited(
    sink: &Sink<'_>,
    mut tx: crate::db::Tx,
    intent: Intent,
    acts: &[Act],
) -> Result<Option<Intent>, BatchError> {
    let verb = intent.action.clone();
    let dialect = sink.db.dialect;
    let acting = async {
        for (act, expected) in acts {
            let affected = tx.execute(act).await?;
            if let Some(n) = expected.filter(|n| *n != affected) {
                return Err(BatchError::fatal(Failure::Other, format!(
                    "the {verb} statement changed {affected} rows where {n} were locked; nothing was committed (is a trigger or a cascade rewriting the table?)",
                )));
            }
        }
        db::journal::record(&mut tx, dialect, &intent.batch_id, &intent.rule).await?;
        Ok(())
    };
    let (written, acted) = tokio::join!(sink.state.write_intent(&intent), acting);
    // Without COMMIT the transaction rolls back (when `tx` is dropped, or by the server
    // when the connection is gone), so on any error below the batch did not happen.
    if let Err(e) = written {
        let mut message =
            format!("the batch's intent could not be written ({e}); nothing was committed");
        if sink.state.drop_intent(&intent.batch_id).await.is_err() {
            message.push_str("; a leftover intent, if any, is settled at the next start");
        }
        return Err(BatchError::fatal(Failure::Audit, message));
    }
    if let Err(e) = acted {
        sink.state
            .drop_intent(&intent.batch_id)
            .await
            .map_err(|e2| BatchError::fatal(Failure::Audit, format!("{}; and {e2}", e.message)))?;
        return Err(e);
    }
    if let Err(e) = tx.commit().await {
        settle_now(sink, &intent, &e).await?;
        return Ok(None);
    }
    Ok(Some(intent))
}

/// A COMMIT failed: whether it happened is unknown until the journal says. Settles it now
/// if the database answers; otherwise leaves the intent for the next start.
async fn settle_now(
    ctx: &Sink<'_>,
    intent: &Intent,
    commit_error: &DbError,
) -> Result<(), BatchError> {
    for attempt in 1..=MAX_RETRIES {
        match db::journal::settle(ctx.db, &intent.batch_id).await {
            Ok(true) => {
                journal::confirm(ctx.state, intent)
                    .await
                    .map_err(|e| BatchError::fatal(Failure::Audit, e.to_string()))?;
                return Ok(());
            }
            Ok(false) => {
                ctx.state
                    .drop_intent(&intent.batch_id)
                    .await
                    .map_err(|e| BatchError::fatal(Failure::Audit, e.to_string()))?;
                return Err(BatchError {
                    message: format!("commit failed ({commit_error}); the batch was rolled back"),
                    failure: Failure::CommitInDoubt,
                    transient: true,
                });
            }
            Err(_) => {
                if sleep_or_stop(backoff(attempt), ctx.stop).await == Waited::Stopped {
                    break;
                }
            }
        }
    }
    Err(BatchError::fatal(Failure::CommitInDoubt, format!(
        "commit failed ({commit_error}); whether batch {} happened is settled against the database at the next start, and the audit trail follows it",
        intent.batch_id
    )))
}

/// The DELETEs or UPDATEs for exactly the locked keys, each listing at most
/// [`super::statements::RECORDS_PER_STATEMENT`] of them (MySQL: each limited to the rows
/// it lists), with how many rows each must change.
fn action_sql(
    m: &Matcher<'_>,
    records: &[Record],
    hasher: Option<&Hasher>,
) -> Result<Vec<Act>, String> {
    let d = m.dialect;
    let key = m.key();
    let change = match &m.rule.action {
        Action::Delete => Change::Delete,
        Action::Flag { column, value } => Change::Set(column, flag_value(value, &m.shape)),
        Action::Anonymize(cols) => Change::Anonymize(cols),
    };
    let statements = act_statements(
        d,
        &m.table(),
        &key,
        m.shape.key_unsigned,
        &change,
        records,
        hasher,
    )?;
    Ok(statements
        .into_iter()
        .map(|(mut sql, n)| {
            sql.push(&d.action_suffix(&key, n));
            (sql, Some(n as u64))
        })
        .collect())
}

/// Removes this rule's journal rows once all its batches are confirmed; they are only
/// needed while a batch's outcome could be in doubt.
async fn cleanup_journal(m: &Matcher<'_>, ctx: &Context<'_>) {
    if let Err(e) = ctx.state.flush().await {
        tracing::warn!(rule = %m.rule.name, error = %e, "audit entries not yet flushed to disk; retentiond_journal rows kept, removed next pass");
        return;
    }
    let prefix = format!("{}-{}-", ctx.run_id, ctx.rule_index);
    if let Err(e) = db::journal::clean(ctx.db, &prefix).await {
        tracing::warn!(rule = %m.rule.name, error = %e, "could not clean up retentiond_journal; harmless, retried next pass");
    }
}

//! What a pass did, as data the engine owns: stored with the run (as JSON, so old
//! summaries must keep loading), read by `report`, `daemon::metrics` and the commands.
//! Every "which kind" is an enum here, so readers match on variants, never on message
//! text. Holds counts, rule names and key-free explanations — never record values.

use crate::config::ActionKind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a rule ended in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// Every matching record was handled.
    Ok,
    /// It failed; see `error`. Records before the failure were handled and audited.
    Failed,
    /// A stop signal arrived between batches; the rest is left for the next pass.
    Stopped,
    /// The mass-deletion brake held it back: it would have acted on more records than
    /// its `max_records`/`max_fraction` allow, or a `--confirm` count did not match.
    /// Nothing was done.
    Braked,
    /// `mode = "report"`: counted, never acted.
    Reported,
}

/// Records a legal hold kept from a rule in a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldCount {
    /// The hold.
    pub hold: String,
    /// Its reason, for the report.
    pub reason: String,
    /// Records the rule would otherwise have acted on.
    pub records: u64,
}

/// Why a rule failed or was braked: what the report explains to management, and what it
/// advises. The technical message stays in [`RuleOutcome::error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// The database could not be reached (or its password read).
    Unreachable,
    /// The database was too busy: lock or statement timeouts, deadlocks.
    Busy,
    /// A COMMIT's outcome is unknown; the next start settles it against the journal.
    CommitInDoubt,
    /// `retentiond_journal` could not be created in the target database.
    Journal,
    /// The state database (intents, audit trail) could not be written: the rule stopped
    /// so that nothing acts unaudited.
    Audit,
    /// The state directory had too little room for the audit entries of the records the
    /// rule matched, so the rule did not start. Unlike [`Failure::Audit`] nothing failed to
    /// be written: rules already under way on other databases carry on.
    NoRoom,
    /// The mass-deletion brake held the rule back.
    Brake,
    /// `--confirm N` did not match the count the rule matches now.
    ConfirmMismatch,
    /// A replica of the database stayed further behind than `max_replica_lag` (or could
    /// not tell how far) for all of `max_replica_wait`: the rule stopped before its next
    /// batch rather than leave the replica further behind.
    ReplicaLag,
    /// Anything else; the message says what.
    Other,
}

/// What happened to a legal hold at a pass (also written to the audit trail, as `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldEventKind {
    /// The hold came into force (new, or its `until` was extended past now).
    #[serde(rename = "hold-start")]
    Start,
    /// Its definition (table, filter, until) changed while in force.
    #[serde(rename = "hold-change")]
    Change,
    /// It ended: its `until` passed, or it left the config.
    #[serde(rename = "hold-end")]
    End,
}

impl HoldEventKind {
    /// The audit trail's verb: `hold-start`, `hold-change`, `hold-end`.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldEventKind::Start => "hold-start",
            HoldEventKind::Change => "hold-change",
            HoldEventKind::End => "hold-end",
        }
    }
}

impl fmt::Display for HoldEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A legal hold that began, changed or ended (also written to the audit trail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldEvent {
    /// The hold.
    pub hold: String,
    /// What happened to it.
    pub event: HoldEventKind,
}

/// What happened to a rule at a pass (also written to the audit trail, as `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleEventKind {
    /// The rule came into the config (or back into it).
    #[serde(rename = "rule-start")]
    Start,
    /// Its enforced definition changed (its fingerprint).
    #[serde(rename = "rule-change")]
    Change,
    /// It left the config.
    #[serde(rename = "rule-end")]
    End,
}

impl RuleEventKind {
    /// The audit trail's verb: `rule-start`, `rule-change`, `rule-end`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleEventKind::Start => "rule-start",
            RuleEventKind::Change => "rule-change",
            RuleEventKind::End => "rule-end",
        }
    }
}

impl fmt::Display for RuleEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A rule that started, changed or ended at a pass (also written to the audit trail), with
/// what it says since, so the report can tell management what the promise now is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEvent {
    /// The rule.
    pub rule: String,
    /// What happened to it.
    pub event: RuleEventKind,
    /// The fingerprint of its definition (for an end: of its last version).
    pub fingerprint: String,
    /// Its action (`delete`, `anonymize`, `flag`).
    pub action: String,
    /// Its `expires.after` (`7 years`).
    pub after: String,
}

/// How a whole pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassStatus {
    /// Every rule finished (or was only reported), nothing is in doubt.
    Ok,
    /// A rule failed or was braked, or a batch is still in doubt.
    Failed,
}

impl PassStatus {
    /// As stored in the run history: `ok`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            PassStatus::Ok => "ok",
            PassStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for PassStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One rule's result in a pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleOutcome {
    /// Rule name.
    pub rule: String,
    /// The rule's plain-language description.
    pub description: Option<String>,
    /// Its legal basis.
    pub legal_basis: String,
    /// Database config name.
    pub database: String,
    /// Table.
    pub table: String,
    /// What the rule does.
    pub action: ActionKind,
    /// Records whose `since` is at or before this moment had expired (RFC 3339).
    pub cutoff: Option<String>,
    /// Records acted on (= audit entries written for this rule in this pass).
    pub acted: u64,
    /// Batches committed.
    pub batches: u64,
    /// Records the rule matched at the start of the pass (after holds and keep rules).
    #[serde(default)]
    pub matched: Option<u64>,
    /// Rows in the table at the start of the pass (the brake's denominator).
    #[serde(default)]
    pub table_rows: Option<u64>,
    /// Matched records that were busy (locked by another transaction, or changed since
    /// they were counted) and are left for the next pass.
    #[serde(default)]
    pub deferred: u64,
    /// Records held back by legal holds, per hold.
    #[serde(default)]
    pub held: Vec<HeldCount>,
    /// Records the rule will have to act on 30 days from now (forecast by `plan`).
    #[serde(default)]
    pub forecast_30d: Option<u64>,
    /// For `flag` rules: records that carry the flag, waiting for a human decision.
    #[serde(default)]
    pub awaiting_review: Option<u64>,
    /// How it ended.
    pub status: RuleStatus,
    /// What went wrong, in words a sysadmin can act on.
    pub error: Option<String>,
    /// What kind of failure `error` is (summaries stored before this field have none).
    #[serde(default)]
    pub failure: Option<Failure>,
    /// Milliseconds its batches waited, in all, for replicas that lagged more than
    /// `max_replica_lag`: shown in the report, so a slow pass is explained. Absent (and
    /// left out of the stored summary) when they never waited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replica_wait_ms: u64,
}

/// For `skip_serializing_if`: a zero count is left out.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Batches found in doubt at the start of a pass and settled against their databases.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reconciled {
    /// Batches that had committed: their audit entries were written.
    pub confirmed_batches: u64,
    /// Entries written for them.
    pub confirmed_entries: u64,
    /// Batches that had not committed: their intents were dropped.
    pub dropped_batches: u64,
    /// Batches that could not be settled yet (database unreachable), with the reason.
    pub unresolved: Vec<String>,
}

/// A whole pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    /// Pass id (as in the audit trail).
    pub run_id: String,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// End, RFC 3339 UTC.
    pub finished_at: String,
    /// How the pass ended.
    pub status: PassStatus,
    /// Per rule, in config order.
    pub rules: Vec<RuleOutcome>,
    /// Settled batches from an earlier, interrupted pass.
    pub reconciled: Reconciled,
    /// Legal holds that began, changed or ended at this pass.
    #[serde(default)]
    pub hold_events: Vec<HoldEvent>,
    /// Rules that started, changed or ended at this pass.
    #[serde(default)]
    pub rule_events: Vec<RuleEvent>,
    /// When a rule last started, changed or ended, per the trail (RFC 3339 UTC): the date
    /// the rules, the organisation's promises, last changed.
    #[serde(default)]
    pub rules_changed_at: Option<String>,
    /// Entries in the audit trail after the pass.
    pub audit_entries: i64,
    /// The trail's head hash after the pass (anchors the trail).
    pub audit_head: String,
    /// The databases whose `retentiond_anchor` table holds this head.
    #[serde(default)]
    pub anchored_in: Vec<String>,
}

impl RuleOutcome {
    /// A fresh outcome for `rule`, before anything happened.
    pub fn new(rule: &crate::config::Rule) -> RuleOutcome {
        RuleOutcome {
            rule: rule.name.clone(),
            description: rule.description.clone(),
            legal_basis: rule.legal_basis.clone(),
            database: rule.database.clone(),
            table: rule.table.to_string(),
            action: rule.action.kind(),
            cutoff: None,
            acted: 0,
            batches: 0,
            matched: None,
            table_rows: None,
            deferred: 0,
            forecast_30d: None,
            awaiting_review: None,
            held: Vec::new(),
            status: RuleStatus::Ok,
            error: None,
            failure: None,
            replica_wait_ms: 0,
        }
    }

    /// Marks the rule failed with `error`, of kind `failure`.
    pub fn fail(mut self, failure: Failure, error: impl Into<String>) -> RuleOutcome {
        self.record_failure(failure, error);
        self
    }

    /// Marks the rule failed; the first failure is the one reported.
    pub fn record_failure(&mut self, failure: Failure, error: impl Into<String>) {
        self.status = RuleStatus::Failed;
        if self.error.is_none() {
            self.error = Some(error.into());
            self.failure = Some(failure);
        }
    }

    /// Marks the rule held back (brake or a `--confirm` mismatch); nothing was done.
    pub fn brake(&mut self, failure: Failure, why: impl Into<String>) {
        self.status = RuleStatus::Braked;
        self.error = Some(why.into());
        self.failure = Some(failure);
    }
}

impl RunSummary {
    /// Whether any rule failed or was braked, or any batch is still in doubt: the pass
    /// exits 1 and its report says so at the top.
    pub fn failed(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.status, RuleStatus::Failed | RuleStatus::Braked))
            || !self.reconciled.unresolved.is_empty()
    }

    /// The status [`RunSummary::failed`] implies.
    pub fn status_now(&self) -> PassStatus {
        if self.failed() {
            PassStatus::Failed
        } else {
            PassStatus::Ok
        }
    }

    /// Records acted on in the pass.
    pub fn total_acted(&self) -> u64 {
        self.rules.iter().map(|r| r.acted).sum()
    }
}

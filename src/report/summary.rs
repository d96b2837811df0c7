//! What a pass did, as data: stored with the run, rendered by `report`, read by management.
//! Holds counts, rule names and keys-free explanations — never record values.

use serde::{Deserialize, Serialize};

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
    /// `delete`, `anonymize`, `flag`.
    pub action: String,
    /// Records whose `since` is at or before this moment had expired (RFC 3339).
    pub cutoff: Option<String>,
    /// Records acted on (= audit entries written for this rule in this pass).
    pub acted: u64,
    /// Batches committed.
    pub batches: u64,
    /// How it ended.
    pub status: RuleStatus,
    /// What went wrong, in words a sysadmin can act on.
    pub error: Option<String>,
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
    /// `ok` or `failed`.
    pub status: String,
    /// Per rule, in config order.
    pub rules: Vec<RuleOutcome>,
    /// Settled batches from an earlier, interrupted pass.
    pub reconciled: Reconciled,
    /// Entries in the audit trail after the pass.
    pub audit_entries: i64,
    /// The trail's head hash after the pass (anchors the trail).
    pub audit_head: String,
}

impl RunSummary {
    /// Whether any rule failed or any batch is still in doubt.
    pub fn failed(&self) -> bool {
        self.rules.iter().any(|r| r.status == RuleStatus::Failed)
            || !self.reconciled.unresolved.is_empty()
    }

    /// Records acted on in the pass.
    pub fn total_acted(&self) -> u64 {
        self.rules.iter().map(|r| r.acted).sum()
    }
}

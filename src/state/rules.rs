//! Rules as last seen by a pass (`rules_seen`), every version of their definition
//! (`rule_versions`), and the operator's unlocks of locked rules (`rule_unlocks`), so the
//! next pass can tell which rules began, changed or ended, `rules --history` can say what a
//! rule said then, and a locked rule is held to its last recorded version. Written only
//! together with the audit entry of that event (see `trail`).

use super::{State, StateError};
use sqlx::Row;

/// A rule as the trail last recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSeen {
    /// The rule's name.
    pub name: String,
    /// The fingerprint of its definition then.
    pub fingerprint: String,
    /// Its database.
    pub database: String,
    /// Its table.
    pub table: String,
    /// Whether it was in the config (false after its `rule-end`).
    pub active: bool,
    /// Whether that version was locked.
    pub locked: bool,
    /// The line of its `[[rule]]` then, to say where a removed locked rule was.
    pub line: i64,
    /// When its last event was recorded (RFC 3339 UTC).
    pub changed_at: String,
}

/// One version of a rule's definition, as first recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleVersion {
    /// The rule's name.
    pub name: String,
    /// The fingerprint (the `key` of its trail entries).
    pub fingerprint: String,
    /// The definition, as JSON (`config::Definition`).
    pub definition: String,
    /// When a pass first recorded it.
    pub first_seen_at: String,
}

/// An operator's unlock of a locked rule (`rules unlock`), not yet used by a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleUnlock {
    /// The rule's name.
    pub name: String,
    /// The fingerprint of the locked version it unlocks.
    pub fingerprint: String,
    /// Why, in the operator's words: kept here, never in the trail (it may name people).
    pub reason: String,
    /// When.
    pub unlocked_at: String,
}

/// What a rule event settles in the append's transaction: the rule's new state and its
/// definition's version; a change or an end also uses up the rule's pending unlock.
#[derive(Debug, Clone)]
pub struct RuleChange {
    /// The rule as now recorded.
    pub seen: RuleSeen,
    /// Its definition as JSON (kept once per version).
    pub definition: String,
    /// Whether it uses up the rule's pending unlock (a change or an end does; a start
    /// has none to use).
    pub uses_unlock: bool,
}

/// A rule-history entry of the trail (`rule-start`, `rule-change`, `rule-end`,
/// `rule-unlock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEntry {
    /// Its position in the trail.
    pub seq: i64,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// The pass (or unlock) that wrote it.
    pub run_id: String,
    /// The rule.
    pub rule: String,
    /// The rule's database.
    pub database: String,
    /// The rule's table.
    pub table: String,
    /// `rule-start`, `rule-change`, `rule-end` or `rule-unlock`.
    pub action: String,
    /// The fingerprint of the version it concerns.
    pub fingerprint: String,
}

impl State {
    /// Whether the rule-history tables exist (a state database from before them, opened
    /// read-only, has none: it has seen no rule).
    async fn has_rule_tables(&self) -> Result<bool, StateError> {
        // The PostgreSQL state is created whole.
        let super::Store::Sqlite { pool, .. } = &self.store else {
            return Ok(true);
        };
        {
            let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('rules_seen', 'rule_versions', 'rule_unlocks')",
        )
        .fetch_one(pool)
        .await?;
            Ok(n == 3)
        }
    }

    /// Every rule the trail has seen, by name.
    pub async fn rules_seen(&self) -> Result<Vec<RuleSeen>, StateError> {
        super::on_pool!(self, pool => {
        if !self.has_rule_tables().await? {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT name, fingerprint, database, tbl, active, locked, line, changed_at FROM rules_seen ORDER BY name",
        )
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RuleSeen {
                    name: r.try_get(0)?,
                    fingerprint: r.try_get(1)?,
                    database: r.try_get(2)?,
                    table: r.try_get(3)?,
                    active: r.try_get::<i64, _>(4)? != 0,
                    locked: r.try_get::<i64, _>(5)? != 0,
                    line: r.try_get(6)?,
                    changed_at: r.try_get(7)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StateError::Db)
        })
    }

    /// Every recorded version of every rule, oldest first.
    pub async fn rule_versions(&self) -> Result<Vec<RuleVersion>, StateError> {
        super::on_pool!(self, pool => {
        if !self.has_rule_tables().await? {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT name, fingerprint, definition, first_seen_at FROM rule_versions ORDER BY first_seen_at, name",
        )
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RuleVersion {
                    name: r.try_get(0)?,
                    fingerprint: r.try_get(1)?,
                    definition: r.try_get(2)?,
                    first_seen_at: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StateError::Db)
        })
    }

    /// The unlocks no change has used yet, by rule.
    pub async fn pending_unlocks(&self) -> Result<Vec<RuleUnlock>, StateError> {
        super::on_pool!(self, pool => {
        if !self.has_rule_tables().await? {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT name, fingerprint, reason, unlocked_at FROM rule_unlocks WHERE used_at IS NULL ORDER BY id",
        )
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RuleUnlock {
                    name: r.try_get(0)?,
                    fingerprint: r.try_get(1)?,
                    reason: r.try_get(2)?,
                    unlocked_at: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StateError::Db)
        })
    }

    /// The trail's rule-history entries, in order (a scan of the trail: for `rules
    /// --history`, not for a pass).
    pub async fn rule_entries(&self) -> Result<Vec<RuleEntry>, StateError> {
        super::on_pool!(self, pool => {
        let rows = sqlx::query(
            "SELECT seq, at, run_id, rule, database, tbl, action, key FROM audit WHERE action IN ('rule-start', 'rule-change', 'rule-end', 'rule-unlock') ORDER BY seq",
        )
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RuleEntry {
                    seq: r.try_get(0)?,
                    at: r.try_get(1)?,
                    run_id: r.try_get(2)?,
                    rule: r.try_get(3)?,
                    database: r.try_get(4)?,
                    table: r.try_get(5)?,
                    action: r.try_get(6)?,
                    fingerprint: r.try_get(7)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StateError::Db)
        })
    }

    /// When a rule last started, changed or ended (the latest of their trail entries):
    /// the date the set of rules, the promises, last changed. `None` before any.
    pub async fn rules_changed_at(&self) -> Result<Option<String>, StateError> {
        super::on_pool!(self, pool => {
        if !self.has_rule_tables().await? {
            return Ok(None);
        }
        Ok(sqlx::query_scalar("SELECT MAX(changed_at) FROM rules_seen")
            .fetch_one(pool)
            .await?)
        })
    }
}

//! Forecasts: how many records each rule matches at a moment, and a few of their keys.
//! Read-only; used by `check` (now) and `plan --at`.

use super::prepare::{Prepared, Readiness};
use crate::config::Cutoff;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// How many keys `plan` shows per rule.
pub const SAMPLE_KEYS: u32 = 5;

/// One rule's forecast.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRule {
    /// Rule name.
    pub rule: String,
    /// `delete`, `anonymize`, `flag`.
    pub action: String,
    /// Database config name.
    pub database: String,
    /// Table.
    pub table: String,
    /// Records matched (absent when the rule could not be evaluated).
    pub count: Option<i64>,
    /// The first few matching keys.
    pub sample_keys: Vec<String>,
    /// Records whose `since` is at or before this moment count as expired.
    pub cutoff: Option<String>,
    /// Why the rule could not be evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Evaluates every prepared rule at `at`.
pub async fn plan(prepared: &Prepared<'_>, at: DateTime<Utc>, tz: Tz) -> Vec<PlannedRule> {
    let mut out = Vec::new();
    for (rule, readiness) in &prepared.rules {
        let mut p = PlannedRule {
            rule: rule.name.clone(),
            action: rule.action.verb().to_owned(),
            database: rule.database.clone(),
            table: rule.table.to_string(),
            count: None,
            sample_keys: Vec::new(),
            cutoff: None,
            error: None,
        };
        let (m, db) = match (readiness, prepared.db(rule)) {
            (Readiness::Ready(m), Some(db)) => (m, db),
            (Readiness::Unavailable(why), _) => {
                p.error = Some(why.clone());
                out.push(p);
                continue;
            }
            (Readiness::Ready(_), None) => {
                p.error = Some(format!("database '{}' is not open", rule.database));
                out.push(p);
                continue;
            }
        };
        let Some(cutoff) = Cutoff::at(at, rule.after, tz) else {
            p.error = Some(format!(
                "{} before {at} is out of the calendar's range",
                rule.after
            ));
            out.push(p);
            continue;
        };
        p.cutoff = Some(cutoff.utc.to_rfc3339());
        match db.fetch_i64(&m.count(&cutoff)).await {
            Ok(n) => p.count = Some(n),
            Err(e) => p.error = Some(e.to_string()),
        }
        if p.count.unwrap_or(0) > 0 {
            match db
                .fetch_records(&m.sample(&cutoff, SAMPLE_KEYS), m.shape.key)
                .await
            {
                Ok(rs) => p.sample_keys = rs.into_iter().map(|r| r.key.to_string()).collect(),
                Err(e) => p.error = Some(e.to_string()),
            }
        }
        out.push(p);
    }
    out
}

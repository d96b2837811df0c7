//! Legal holds over time: at every pass, holds that began, changed (their definition) or
//! ended (their `until` passed, or they left the config) are written to the audit trail,
//! so an auditor sees when each hold protected what. The trail gets the hold's name and a
//! fingerprint of its definition, never its reason or filter text.

use super::journal;
use super::outcome::{HoldEvent, HoldEventKind};
use crate::config::{Config, Hold};
use crate::db::{Db, DbError, Sql};
use crate::state::{HoldSeen, State, StateError};
use chrono::{DateTime, Utc};

/// Compares the config's holds with those last seen and records every change.
pub async fn sync(
    config: &Config,
    state: &State,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<HoldEvent>, StateError> {
    let seen = state.holds_seen().await?;
    let mut events = Vec::new();
    for h in &config.holds {
        let fingerprint = h.fingerprint();
        let active = h.active(now);
        let before = seen.iter().find(|s| s.name == h.name);
        let event = match (before, active) {
            (None, true) => Some(HoldEventKind::Start),
            (None, false) => None,
            (Some(b), true) if !b.active => Some(HoldEventKind::Start),
            (Some(b), false) if b.active => Some(HoldEventKind::End),
            (Some(b), true) if b.fingerprint != fingerprint => Some(HoldEventKind::Change),
            _ => None,
        };
        if let Some(event) = event {
            let now_seen = HoldSeen {
                name: h.name.clone(),
                fingerprint,
                database: h.database.clone(),
                table: h.table.to_string(),
                active,
            };
            journal::hold_event(state, run_id, &now_seen, event).await?;
            tracing::info!(hold = %h.name, %event, "legal hold");
            events.push(HoldEvent {
                hold: h.name.clone(),
                event,
            });
        }
    }
    for gone in &seen {
        if gone.active && !config.holds.iter().any(|h| h.name == gone.name) {
            let ended = HoldSeen {
                active: false,
                ..gone.clone()
            };
            journal::hold_event(state, run_id, &ended, HoldEventKind::End).await?;
            tracing::info!(hold = %gone.name, event = "hold-end", "legal hold removed from the config");
            events.push(HoldEvent {
                hold: gone.name.clone(),
                event: HoldEventKind::End,
            });
        }
    }
    Ok(events)
}

/// How many records `hold` covers in `db` now (whatever any rule says about them).
pub async fn covered(db: &Db, hold: &Hold) -> Result<i64, DbError> {
    let mut sql = Sql::new(db.dialect);
    sql.push("SELECT COUNT(*) FROM ")
        .push(&db.dialect.table(&hold.table))
        .push(" WHERE COALESCE((")
        .push(hold.filter.sql())
        .push("), TRUE)");
    db.fetch_i64(&sql).await
}

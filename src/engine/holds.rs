//! Legal holds over time: at every pass, holds that began, changed (their definition) or
//! ended (their `until` passed, or they left the config) are written to the audit trail,
//! so an auditor sees when each hold protected what. The trail gets the hold's name and a
//! fingerprint of its definition, never its reason or filter text.

use crate::config::Config;
use crate::report::summary::HoldEvent;
use crate::state::{State, StateError};
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
        let fp = h.fingerprint();
        let active = h.active(now);
        let before = seen.iter().find(|s| s.0 == h.name);
        let event = match (before, active) {
            (None, true) => Some("hold-start"),
            (None, false) => None,
            (Some((_, _, _, _, false)), true) => Some("hold-start"),
            (Some((_, _, _, _, true)), false) => Some("hold-end"),
            (Some((_, old_fp, ..)), true) if *old_fp != fp => Some("hold-change"),
            _ => None,
        };
        if let Some(event) = event {
            state
                .hold_event(
                    run_id,
                    &h.name,
                    event,
                    &fp,
                    &h.database,
                    &h.table.to_string(),
                    active,
                )
                .await?;
            tracing::info!(hold = %h.name, event, "legal hold");
            events.push(HoldEvent {
                hold: h.name.clone(),
                event: event.to_owned(),
            });
        }
    }
    for (name, fp, database, table, active) in &seen {
        if *active && !config.holds.iter().any(|h| &h.name == name) {
            state
                .hold_event(run_id, name, "hold-end", fp, database, table, false)
                .await?;
            tracing::info!(hold = %name, event = "hold-end", "legal hold removed from the config");
            events.push(HoldEvent {
                hold: name.clone(),
                event: "hold-end".into(),
            });
        }
    }
    Ok(events)
}

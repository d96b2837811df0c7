//! Settling batches left in doubt by a crash, a kill or a lost connection: each pending
//! intent is checked against its database's journal (see [`crate::db::journal::settle`]),
//! then either becomes audit entries or is dropped. Runs before every pass.

use super::journal;
use super::outcome::Reconciled;
use crate::config::Config;
use crate::db::{self, Db};
use crate::state::{State, StateError};
use std::collections::BTreeMap;

/// Settles every pending intent it can; the rest stay pending for the next try.
pub async fn reconcile(config: &Config, state: &State) -> Result<Reconciled, StateError> {
    let mut out = Reconciled::default();
    let pending = state.pending().await?;
    if pending.is_empty() {
        return Ok(out);
    }
    tracing::warn!(
        batches = pending.len(),
        "settling batches left in doubt by an interrupted pass"
    );
    let mut dbs: BTreeMap<String, Result<Db, String>> = BTreeMap::new();
    for intent in pending {
        if !dbs.contains_key(&intent.database) {
            let db = match config.databases.get(&intent.database) {
                Some(spec) => Db::connect(spec).await.map_err(|e| e.to_string()),
                None => Err(format!(
                    "database '{}' is no longer in the config; put it back to settle this batch",
                    intent.database
                )),
            };
            dbs.insert(intent.database.clone(), db);
        }
        let db = match dbs.get(&intent.database) {
            Some(Ok(db)) => db,
            Some(Err(e)) => {
                out.unresolved.push(format!(
                    "batch {} ({} records, rule {}): {e}",
                    intent.batch_id,
                    intent.keys.len(),
                    intent.rule
                ));
                continue;
            }
            None => continue,
        };
        match db::journal::settle(db, &intent.batch_id).await {
            Ok(true) => {
                journal::confirm(state, &intent).await?;
                out.confirmed_batches += 1;
                out.confirmed_entries += intent.keys.len() as u64
                    + intent
                        .children
                        .iter()
                        .map(|c| c.keys.len() as u64)
                        .sum::<u64>();
                tracing::info!(batch = %intent.batch_id, rule = %intent.rule, rows = intent.keys.len(), "batch had committed: audit entries written");
            }
            Ok(false) => {
                state.drop_intent(&intent.batch_id).await?;
                out.dropped_batches += 1;
                tracing::info!(batch = %intent.batch_id, rule = %intent.rule, "batch had not committed: nothing to audit");
            }
            Err(e) => out.unresolved.push(format!(
                "batch {} ({} records, rule {}): {e}",
                intent.batch_id,
                intent.keys.len(),
                intent.rule
            )),
        }
    }
    for db in dbs.values().flatten() {
        db.close().await;
    }
    Ok(out)
}

//! Turning what happened into audit entries: a committed batch's intent, or a legal hold's
//! event, is chained and hashed here (with `audit::chain`) and handed to the state database,
//! which appends the entries and settles the intent (or records the hold) in one
//! transaction. The engine decides what is written; `state` only stores it.

use super::outcome::HoldEventKind;
use crate::audit::chain::{hash_of, Fields, GENESIS};
use crate::state::{now_text, Chained, HoldSeen, Intent, Settles, State, StateError};

/// The fields every entry of one append shares.
struct Shared<'a> {
    run_id: &'a str,
    rule: &'a str,
    database: &'a str,
    table: &'a str,
    action: &'a str,
    legal_basis: &'a str,
    request: Option<&'a str>,
}

/// Chains one entry per key to the trail's current head and appends them with `settles`.
async fn append(
    state: &State,
    what: &Shared<'_>,
    keys: &[String],
    at: &str,
    settles: Settles<'_>,
) -> Result<(), StateError> {
    let head = state.head().await?;
    let first_link = head.as_ref().map_or(GENESIS, |h| h.hash.as_str());
    let first_seq = head.as_ref().map_or(0, |h| h.seq) + 1;
    let mut hashes: Vec<String> = Vec::with_capacity(keys.len());
    for (seq, key) in (first_seq..).zip(keys) {
        let hash = hash_of(&Fields {
            seq,
            at,
            run_id: what.run_id,
            rule: what.rule,
            database: what.database,
            table: what.table,
            action: what.action,
            key,
            legal_basis: what.legal_basis,
            prev_hash: hashes.last().map_or(first_link, String::as_str),
            request: what.request,
        });
        hashes.push(hash);
    }
    let chained = Chained {
        after: head.as_ref(),
        first_link,
        at,
        run_id: what.run_id,
        rule: what.rule,
        database: what.database,
        table: what.table,
        action: what.action,
        legal_basis: what.legal_basis,
        request: what.request,
        keys,
        hashes: &hashes,
    };
    state.append(&chained, settles).await
}

/// A batch committed: its intent becomes one audit entry per key, and the intent is
/// removed, atomically. Every entry's `at` is the moment the intent was written, just
/// before the commit: the same whenever the entries are written (right away, or again at
/// the next start after a power cut lost them), so they hash alike and agree with any head
/// anchored meanwhile.
pub async fn confirm(state: &State, intent: &Intent) -> Result<(), StateError> {
    let at = intent.created_at.as_str();
    let what = Shared {
        run_id: &intent.run_id,
        rule: &intent.rule,
        database: &intent.database,
        table: &intent.table,
        action: &intent.action,
        legal_basis: &intent.legal_basis,
        request: intent.request.as_deref(),
    };
    append(
        state,
        &what,
        &intent.keys,
        at,
        Settles::Intent(&intent.batch_id),
    )
    .await
}

/// A legal hold began, changed or ended: one entry (its key is the fingerprint of the
/// hold's definition, never its reason or filter) and the hold's new state, atomically.
pub async fn hold_event(
    state: &State,
    run_id: &str,
    seen: &HoldSeen,
    event: HoldEventKind,
) -> Result<(), StateError> {
    let what = Shared {
        run_id,
        rule: &seen.name,
        database: &seen.database,
        table: &seen.table,
        action: event.as_str(),
        legal_basis: "legal hold",
        request: None,
    };
    append(
        state,
        &what,
        std::slice::from_ref(&seen.fingerprint),
        &now_text(),
        Settles::Hold(seen),
    )
    .await
}

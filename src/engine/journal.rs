//! Turning what happened into audit entries: a committed batch's intent, or a legal hold's
//! or a rule's event, is chained and hashed here (with `audit::chain`) and handed to the
//! state database, which appends the entries and settles the intent (or records the hold or
//! rule) in one transaction. The engine decides what is written; `state` only stores it.

use super::outcome::{HoldEventKind, RuleEventKind};
use crate::audit::chain::{digest_of, Fields, GENESIS};
use crate::state::{
    now_text, Entries, EntryGroup, Head, HoldSeen, Intent, RuleChange, RuleSeen, RuleUnlock,
    Settles, State, StateError,
};

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
    append_groups(state, what, &[(what.table, what.action, keys)], at, settles).await
}

/// [`append`] for entries of several tables and verbs (a rule's child rows, then its
/// records), chained in the order given; `what.table` and `what.action` are not used.
async fn append_groups(
    state: &State,
    what: &Shared<'_>,
    groups: &[(&str, &str, &[String])],
    at: &str,
    settles: Settles<'_>,
) -> Result<(), StateError> {
    let entries = Entries {
        at: at.to_owned(),
        run_id: what.run_id.to_owned(),
        rule: what.rule.to_owned(),
        database: what.database.to_owned(),
        legal_basis: what.legal_basis.to_owned(),
        request: what.request.map(str::to_owned),
        groups: groups
            .iter()
            .map(|(table, action, keys)| EntryGroup {
                table: (*table).to_owned(),
                action: (*action).to_owned(),
                keys: keys.to_vec(),
            })
            .collect(),
    };
    state.append(entries, chain, settles).await
}

/// The entries' digests, chained to `head`: entry after entry, each hashed over its fields
/// and the hex of the hash before it (the hash definition of `audit::chain`, unchanged
/// since the first release). Runs inside the append's transaction (see `State::append`).
fn chain(e: &Entries, head: Option<&Head>) -> Result<Vec<Vec<u8>>, StateError> {
    let mut seq = head.map_or(0, |h| h.seq);
    let mut link = [0u8; 64];
    let first = head.map_or(GENESIS, |h| h.hash.as_str());
    if first.len() != link.len() {
        return Err(StateError::Io(format!(
            "the trail's recorded head hash is not 64 hex digits ({first:?}); run `retentiond audit verify`"
        )));
    }
    link.copy_from_slice(first.as_bytes());
    let mut all = Vec::with_capacity(e.groups.len());
    for group in &e.groups {
        let mut digests: Vec<u8> = Vec::with_capacity(group.keys.len() * 32);
        for key in &group.keys {
            seq += 1;
            let digest = digest_of(&Fields {
                seq,
                at: &e.at,
                run_id: &e.run_id,
                rule: &e.rule,
                database: &e.database,
                table: &group.table,
                action: &group.action,
                key,
                legal_basis: &e.legal_basis,
                prev_hash: std::str::from_utf8(&link).map_err(StateError::io)?,
                request: e.request.as_deref(),
            });
            hex::encode_to_slice(digest, &mut link).map_err(StateError::io)?;
            digests.extend_from_slice(&digest);
        }
        all.push(digests);
    }
    Ok(all)
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
    let mut groups: Vec<(&str, &str, &[String])> = intent
        .children
        .iter()
        .map(|c| (c.table.as_str(), c.action.as_str(), c.keys.as_slice()))
        .collect();
    groups.push((&intent.table, &intent.action, &intent.keys));
    append_groups(state, &what, &groups, at, Settles::Intent(&intent.batch_id)).await
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

/// The `legal_basis` of rule-history entries: they record a change of the rules
/// themselves, not an action on a record.
pub const RULE_HISTORY: &str = "rule history";

/// A rule started, changed or ended: one entry (its key is the fingerprint of the rule's
/// enforced definition, never its text) and the rule's new state and version, atomically.
pub async fn rule_event(
    state: &State,
    run_id: &str,
    change: &RuleChange,
    event: RuleEventKind,
) -> Result<(), StateError> {
    let seen = &change.seen;
    let what = Shared {
        run_id,
        rule: &seen.name,
        database: &seen.database,
        table: &seen.table,
        action: event.as_str(),
        legal_basis: RULE_HISTORY,
        request: None,
    };
    append(
        state,
        &what,
        std::slice::from_ref(&seen.fingerprint),
        &seen.changed_at,
        Settles::Rule(change),
    )
    .await
}

/// An operator unlocked a locked rule for one change: one `rule-unlock` entry (its key is
/// the fingerprint of the version unlocked; the reason stays in the state database, as it
/// may name people) and the unlock, atomically.
pub async fn rule_unlock(
    state: &State,
    run_id: &str,
    seen: &RuleSeen,
    unlock: &RuleUnlock,
) -> Result<(), StateError> {
    let what = Shared {
        run_id,
        rule: &seen.name,
        database: &seen.database,
        table: &seen.table,
        action: "rule-unlock",
        legal_basis: RULE_HISTORY,
        request: None,
    };
    append(
        state,
        &what,
        std::slice::from_ref(&unlock.fingerprint),
        &unlock.unlocked_at,
        Settles::RuleUnlock(unlock),
    )
    .await
}

//! Beyond the chain: the trail checked against what was recorded outside it. A chain
//! that verifies proves no entry was changed *without recomputing every hash after it*;
//! someone with write access to `state.db` can recompute them, or cut the tail and move
//! the head back. What they cannot quietly change is a head recorded elsewhere: in the run
//! history (same file, but one more thing to forge consistently), in every target database
//! a pass used (`retentiond_anchor`), and in a report someone printed or mailed
//! (`audit verify --anchor HASH`).

use super::chain::GENESIS;
use crate::config::Config;
use crate::db::{journal, Db};
use crate::state::{State, StateError};

/// What the cross-checks found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrossCheck {
    /// The first disagreement, in words; `None` if every recorded head matches.
    pub broken: Option<String>,
    /// Passes in the run history whose recorded head was checked.
    pub runs_checked: usize,
    /// Per database: how many anchors were checked there.
    pub anchors_checked: Vec<(String, usize)>,
    /// Databases whose anchors could not be read, and why (not a failure: said aloud).
    pub unreachable: Vec<(String, String)>,
    /// Per database: anchors of other installations found there (not checked: they are
    /// another state directory's heads — or this one's, if it was recreated).
    pub foreign: Vec<(String, usize)>,
}

/// Whether entry `seq` carries `head`; the disagreement in words if not. `source` says
/// where the head was recorded.
async fn holds_head(
    state: &State,
    seq: i64,
    head: &str,
    entries: i64,
    source: &str,
) -> Result<Option<String>, StateError> {
    if seq <= 0 {
        return Ok((head != GENESIS && seq == 0).then(|| {
            format!(
                "{source} recorded an empty trail with head {head}, which is not the genesis hash"
            )
        }));
    }
    Ok(match state.hash_at(seq).await? {
        Some(h) if h == head => None,
        Some(h) => Some(format!(
            "entry {seq} has hash {h}, but {source} recorded {head} there: the trail was rewritten at or before entry {seq}"
        )),
        None => Some(format!(
            "{source} recorded {seq} entries (head {head}), but the trail has only {entries}: entries were cut"
        )),
    })
}

/// Checks the head every finished pass recorded in the run history.
async fn against_history(
    state: &State,
    entries: i64,
    out: &mut CrossCheck,
) -> Result<(), StateError> {
    for summary in state.summaries_between("", "~").await? {
        let v = serde_json::from_str::<serde_json::Value>(&summary).unwrap_or_default();
        let (Some(run_id), Some(seq), Some(head)) = (
            v["run_id"].as_str(),
            v["audit_entries"].as_i64(),
            v["audit_head"].as_str(),
        ) else {
            // retentiond writes every summary whole: one it cannot read was tampered with.
            out.broken = Some(
                "a pass in the run history has a summary that is not retentiond's (unreadable, or without its head): the history was altered".to_owned(),
            );
            return Ok(());
        };
        out.runs_checked += 1;
        let source = format!("pass {run_id} (run history)");
        if let Some(why) = holds_head(state, seq, head, entries, &source).await? {
            out.broken = Some(why);
            return Ok(());
        }
    }
    Ok(())
}

/// Checks the anchors in every configured database it can reach.
async fn against_anchors(
    state: &State,
    config: &Config,
    entries: i64,
    out: &mut CrossCheck,
) -> Result<(), StateError> {
    let installation = state.installation().await?;
    for (name, spec) in &config.databases {
        let db = match Db::connect(spec).await {
            Ok(db) => db,
            Err(e) => {
                out.unreachable.push((name.clone(), e.to_string()));
                continue;
            }
        };
        let anchors = journal::anchors(&db).await;
        db.close().await;
        let anchors = match anchors {
            Ok(a) => a,
            Err(e) => {
                out.unreachable.push((name.clone(), e.to_string()));
                continue;
            }
        };
        let (ours, theirs): (Vec<_>, Vec<_>) = anchors
            .into_iter()
            .partition(|a| Some(&a.installation) == installation.as_ref());
        if !theirs.is_empty() {
            out.foreign.push((name.clone(), theirs.len()));
        }
        out.anchors_checked.push((name.clone(), ours.len()));
        for a in ours {
            let source = format!("pass {} (anchor in database '{name}')", a.run_id);
            if let Some(why) = holds_head(state, a.seq, &a.head, entries, &source).await? {
                out.broken = Some(why);
                return Ok(());
            }
            if state.run(Some(&a.run_id)).await?.is_none() {
                out.broken = Some(format!(
                    "database '{name}' holds an anchor of pass {}, which the run history does not know: the history was rewritten",
                    a.run_id
                ));
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Checks a trail of `entries` entries (whose chain already verified) against the run
/// history and the anchors in `config`'s databases; stops at the first disagreement.
pub async fn cross_check(
    state: &State,
    config: &Config,
    entries: i64,
) -> Result<CrossCheck, StateError> {
    let mut out = CrossCheck::default();
    against_history(state, entries, &mut out).await?;
    if out.broken.is_none() {
        against_anchors(state, config, entries, &mut out).await?;
    }
    Ok(out)
}

/// Whether the trail holds the entry whose hash is `hash` (a head printed in a report);
/// the disagreement in words if not.
pub async fn contains(state: &State, hash: &str) -> Result<Option<String>, StateError> {
    let hash = hash.trim().to_ascii_lowercase();
    if hash == GENESIS {
        return Ok(None);
    }
    Ok(match state.seq_of(&hash).await? {
        Some(_) => None,
        None => Some(format!(
            "the trail holds no entry with hash {hash}: it was rewritten or cut at or before the anchored entry"
        )),
    })
}

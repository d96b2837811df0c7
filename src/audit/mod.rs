//! The audit trail for auditors: append-only, hash-chained, free of personal data.
//! [`chain`] defines entries and hashing; [`verify`] proves the stored trail intact and
//! [`anchors`] holds it against the heads recorded outside it; [`export`] writes it out.
//! Entries are appended by `engine::journal` through `state`.

pub mod anchors;
pub mod chain;
mod check;
pub mod export;
pub mod verify;
mod verify_postgres;

pub use chain::{Entry, GENESIS};
pub use verify::{verify, Verdict};

use crate::state::{State, StateError};

/// The trail's current length and head hash (for anchoring in reports).
pub async fn head(state: &State) -> Result<(i64, String), StateError> {
    Ok(match state.head().await? {
        Some(h) => (h.seq, h.hash),
        None => (0, GENESIS.to_owned()),
    })
}

//! What can go wrong with the state, wherever it is kept: a leaf every part of `state`
//! may name without depending on the others.

use std::path::PathBuf;

/// A state database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state database itself.
    #[error("state database: {0}")]
    Db(#[from] sqlx::Error),
    /// Files around it.
    #[error("state directory: {0}")]
    Io(String),
    /// Another pass holds the lock.
    #[error("another retentiond pass is running on state directory {0} (it holds retentiond.lock); wait for it to finish")]
    Busy(PathBuf),
    /// Another instance holds the pass lock of the PostgreSQL state.
    #[error("another retentiond instance is running a pass on the state at {0} (it holds the pass lock there); wait for it to finish")]
    BusyElsewhere(String),
    /// This instance lost its session with the PostgreSQL state, and with it the lock that
    /// let it write there: another instance may have taken over.
    #[error("the session holding the pass lock on the state at {0} is gone ({1}); nothing more is written by this pass — another instance may have taken over")]
    LostLock(String, String),
}

impl From<String> for StateError {
    fn from(e: String) -> Self {
        StateError::Io(e)
    }
}

impl StateError {
    /// Wraps an I/O-like error.
    pub fn io(e: impl std::fmt::Display) -> Self {
        StateError::Io(e.to_string())
    }
}

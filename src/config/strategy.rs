//! How one column is anonymized: shared by `[[rule]]` (`action = "anonymize"`) and
//! `[[subject]]` (`erase = "anonymize"`), in a file of its own so that both models can use
//! it without depending on each other.

/// How one column is anonymized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Set to NULL.
    Null,
    /// Replace with a fixed text.
    Replace(String),
    /// Replace with a keyed hash (`anon-` + 16 hex digits): equal values stay equal, so
    /// statistics and duplicates survive, but the value cannot be read back.
    Hash,
}

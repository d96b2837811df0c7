//! The hash chain: how an audit entry is encoded and hashed. Each entry's hash covers all
//! its fields and the previous entry's hash, so editing, removing or reordering any entry
//! breaks every hash after it.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first entry (defined beside the trail's storage, which shows it too).
pub use crate::state::GENESIS;

/// One audit entry: one action on one record. Holds no personal data — only the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Position in the trail: 1, 2, 3, …
    pub seq: i64,
    /// When the action was committed, RFC 3339 UTC.
    pub at: String,
    /// The pass that acted.
    pub run_id: String,
    /// The rule.
    pub rule: String,
    /// The config name of the database.
    pub database: String,
    /// The table.
    pub table: String,
    /// `delete`, `anonymize` or `flag`.
    pub action: String,
    /// The record's key, as text.
    pub key: String,
    /// The rule's legal basis.
    pub legal_basis: String,
    /// SHA-256 (hex) over the canonical encoding of this entry.
    pub hash: String,
    /// The previous entry's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// The data-subject request an erasure entry acted under (`REQ-2026-0001`); `null`
    /// for retention rules and legal holds.
    pub request: Option<String>,
}

impl Entry {
    /// The hash this entry must carry: SHA-256 over each field, length-prefixed in a fixed
    /// order (so no two different entries encode alike), ending with `prev_hash`.
    pub fn compute_hash(&self) -> String {
        hash_of(&Fields {
            seq: self.seq,
            at: &self.at,
            run_id: &self.run_id,
            rule: &self.rule,
            database: &self.database,
            table: &self.table,
            action: &self.action,
            key: &self.key,
            legal_basis: &self.legal_basis,
            prev_hash: &self.prev_hash,
            request: self.request.as_deref(),
        })
    }
}

/// The hashed fields of an entry, borrowed: appending hashes thousands of entries per batch
/// that share everything but `seq`, `key` and `prev_hash`, without copying the rest.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// Position in the trail.
    pub seq: i64,
    /// When the action was committed.
    pub at: &'a str,
    /// The pass.
    pub run_id: &'a str,
    /// The rule.
    pub rule: &'a str,
    /// The config name of the database.
    pub database: &'a str,
    /// The table.
    pub table: &'a str,
    /// The action verb.
    pub action: &'a str,
    /// The record's key.
    pub key: &'a str,
    /// The rule's legal basis.
    pub legal_basis: &'a str,
    /// The previous entry's hash.
    pub prev_hash: &'a str,
    /// The data-subject request, for an erasure's entry.
    pub request: Option<&'a str>,
}

/// SHA-256 (hex) over each field, length-prefixed in a fixed order (so no two different
/// entries encode alike), ending with `prev_hash`.
pub fn hash_of(f: &Fields<'_>) -> String {
    let mut hex = [0u8; 64];
    // 32 bytes always fit in 64 hex digits, and hex digits are ASCII.
    let _ = hex::encode_to_slice(digest_of(f), &mut hex);
    std::str::from_utf8(&hex)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The raw SHA-256 behind [`hash_of`].
pub fn digest_of(f: &Fields<'_>) -> [u8; 32] {
    digest_of_parts(
        f.seq,
        [
            f.at.as_bytes(),
            f.run_id.as_bytes(),
            f.rule.as_bytes(),
            f.database.as_bytes(),
            f.table.as_bytes(),
            f.action.as_bytes(),
            f.key.as_bytes(),
            f.legal_basis.as_bytes(),
            f.prev_hash.as_bytes(),
        ],
        f.request.map(str::as_bytes),
    )
}

/// [`digest_of`] over the fields after `seq` as stored bytes, in the same order (`verify`
/// hashes what is on disk without decoding it first).
///
/// `request` comes last and only when there is one: entries without it (every entry
/// written before requests existed, and every rule's) hash exactly as they always did, so
/// an upgraded retentiond verifies the trail it has. An entry with a request encodes one
/// length-prefixed field more, so it never encodes like one without.
pub fn digest_of_parts(seq: i64, parts: [&[u8]; 9], request: Option<&[u8]>) -> [u8; 32] {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    h.update((seq.len() as u64).to_be_bytes());
    h.update(seq.as_bytes());
    for field in parts.into_iter().chain(request) {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    h.finalize().into()
}

/// Whether `stored` is the hex form of `digest` (lowercase, as written).
pub fn matches(stored: &[u8], digest: &[u8; 32]) -> bool {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(digest, &mut hex).is_ok() && stored == hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            seq: 1,
            at: "2026-11-23T02:30:00.000000Z".into(),
            run_id: "r1".into(),
            rule: "rejected-applicants".into(),
            database: "hr".into(),
            table: "applicants".into(),
            action: "delete".into(),
            key: "42".into(),
            legal_basis: "GDPR".into(),
            hash: String::new(),
            prev_hash: GENESIS.into(),
            request: None,
        }
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = entry().compute_hash();
        let mut e = entry();
        e.key = "43".into();
        assert_ne!(e.compute_hash(), base);
        let mut e = entry();
        e.prev_hash = "1".repeat(64);
        assert_ne!(e.compute_hash(), base);
        // Moving a character between fields must not give the same encoding.
        let mut e = entry();
        e.rule = "rejected-applicantsh".into();
        e.database = "r".into();
        assert_ne!(e.compute_hash(), base);
        assert_eq!(entry().compute_hash(), base);
        let mut e = entry();
        e.request = Some("REQ-2026-0001".into());
        assert_ne!(e.compute_hash(), base);
        let mut e = entry();
        e.request = Some(String::new());
        assert_ne!(
            e.compute_hash(),
            base,
            "an empty request is still a request"
        );
    }

    #[test]
    fn entries_without_a_request_hash_as_before_requests_existed() {
        // The hash of this entry as retentiond wrote it before schema 2: a trail written
        // then must still verify.
        assert_eq!(
            entry().compute_hash(),
            "188e61208aa78ed175cc6f01cbf7d8c944c93e51f77b808d43377fa28ff3410c"
        );
    }
}

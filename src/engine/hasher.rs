//! The keyed hash of the `hash` anonymize strategy: HMAC-SHA-256 under a secret kept in the
//! state directory, so equal values stay equal (duplicates, statistics) but nobody without
//! the key can test a guess against a stored value.

use super::matcher::{HASH_DIGITS, HASH_PREFIX};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write;
use std::path::Path;

/// The installation's anonymization key.
#[derive(Clone)]
pub struct Hasher {
    key: Vec<u8>,
}

impl Hasher {
    /// Loads `state_dir/anonymize.key`, creating it (0600, 32 random bytes) on first use.
    pub fn load_or_create(state_dir: &Path) -> Result<Hasher, String> {
        let path = state_dir.join("anonymize.key");
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                let key = hex::decode(s.trim()).map_err(|e| {
                    format!(
                        "{} is not a hex key ({e}); restore it from backup",
                        path.display()
                    )
                })?;
                if key.len() < 16 {
                    return Err(format!(
                        "{} is shorter than 16 bytes; restore it from backup",
                        path.display()
                    ));
                }
                Ok(Hasher { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                getrandom::getrandom(&mut key)
                    .map_err(|e| format!("no randomness for the anonymization key: {e}"))?;
                let mut f = open_private(&path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                f.write_all(hex::encode(&key).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok(Hasher { key })
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// `anon-` and the first [`HASH_DIGITS`] (16) lowercase hex digits of
    /// HMAC-SHA-256(key, value): the exact shape the matcher takes for "already hashed".
    pub fn hash(&self, value: &str) -> String {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(value.as_bytes());
        let digest = hex::encode(mac.finalize().into_bytes());
        format!("{HASH_PREFIX}{}", &digest[..HASH_DIGITS])
    }
}

impl Hasher {
    /// The full HMAC-SHA-256 (64 hex digits) of `value` in a `domain` of its own, so a
    /// tag made for one purpose (a request's identity) never equals one made for another
    /// (an anonymized column). What a data-subject request keeps instead of the person's
    /// identity: it can be compared with, never read back.
    pub fn tag(&self, domain: &str, value: &str) -> String {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Whether `value` has exactly the shape [`Hasher::hash`] writes — the same test the
/// matcher makes in SQL for "already hashed" (`Dialect::push_hashed`). A record matched
/// for another column keeps such a value as it is: hashing it again would part it from
/// the other records hashed from the same original.
pub fn is_hashed(value: &str) -> bool {
    value.len() == HASH_PREFIX.len() + HASH_DIGITS
        && value.starts_with(HASH_PREFIX)
        && value[HASH_PREFIX.len()..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_hash_alike_and_the_key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let a = Hasher::load_or_create(dir.path()).unwrap();
        let b = Hasher::load_or_create(dir.path()).unwrap();
        assert_eq!(a.hash("jan@example.be"), b.hash("jan@example.be"));
        assert_ne!(a.hash("jan@example.be"), a.hash("piet@example.be"));
        assert!(a.hash("x").starts_with("anon-") && a.hash("x").len() == 21);
        assert!(is_hashed(&a.hash("x")) && is_hashed("anon-0123456789abcdef"));
        for lookalike in [
            "anon-jane.doe@example.org",
            "ANON-0123456789ABCDEF",
            "anon-0123456789ABCDEF",
            "anon-0123456789abcde",
            "anon-0123456789abcdef0",
            "anon-0123456789abcdef\n",
        ] {
            assert!(!is_hashed(lookalike), "{lookalike}");
        }
        let other = tempfile::tempdir().unwrap();
        let c = Hasher::load_or_create(other.path()).unwrap();
        assert_ne!(a.hash("jan@example.be"), c.hash("jan@example.be"));
    }
}

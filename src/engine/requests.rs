//! Data-subject requests (GDPR art. 12, 15, 17): the rules of the register. A request is
//! due one calendar month after it was received (31 January → the last day of February),
//! may be extended once by two months with a reason, and is bound to one person: the
//! `--match` values that identify them, kept only as a keyed tag (HMAC under the
//! installation's key), so the register can refuse another person's values without ever
//! holding the person's identity.

use super::hasher::Hasher;
use crate::config::Config;
use crate::state::requests::RequestRow;
use chrono::{Months, NaiveDate};
use std::collections::BTreeMap;

/// The two kinds of request the register knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Art. 15: what is kept about me?
    Access,
    /// Art. 17: erase what you may.
    Erasure,
}

impl Kind {
    /// As stored and shown: `access`, `erasure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Erasure => "erasure",
        }
    }
}

/// The answer is due this many months after a request was received.
pub const ANSWER_MONTHS: u32 = 1;

/// An extension adds this many months, once.
pub const EXTENSION_MONTHS: u32 = 2;

/// `date` plus `months` calendar months; the last day of the month where the day does not
/// exist (31 January + 1 month = 28 or 29 February).
pub fn add_months(date: NaiveDate, months: u32) -> Option<NaiveDate> {
    date.checked_add_months(Months::new(months))
}

/// The identity a request is about: attribute → value, as the operator gave them with
/// `--match`, normalized (trimmed; e-mail addresses lowercased). Lives only in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values: a debug print must not put a person into a log.
        f.debug_struct("Identity")
            .field("attributes", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Identity {
    /// Parses `ATTR=VALUE` pairs; every attribute must be one some `[[subject]]` declares
    /// in `identify`. `Err` says what is wrong (a bad command line: exit 2).
    pub fn parse(pairs: &[String], config: &Config) -> Result<Identity, String> {
        let known = config.identity_attributes();
        let mut values = BTreeMap::new();
        for pair in pairs {
            let Some((attr, value)) = pair.split_once('=') else {
                return Err(format!(
                    "--match {}: write ATTR=VALUE, e.g. --match email=jane@example.org",
                    attr_only(pair)
                ));
            };
            let attr = attr.trim().to_ascii_lowercase();
            if !known.contains(attr.as_str()) {
                let list: Vec<&str> = known.iter().copied().collect();
                return Err(format!(
                    "--match {attr}=…: no [[subject]] identifies people by '{attr}'; the attributes are: {}",
                    if list.is_empty() { "(none: declare [[subject]] blocks with identify = { … })".to_owned() } else { list.join(", ") }
                ));
            }
            let value = normalize(&attr, value);
            if value.is_empty() {
                return Err(format!("--match {attr}=: the value is empty"));
            }
            if values.insert(attr.clone(), value).is_some() {
                return Err(format!("--match {attr}=… is given twice"));
            }
        }
        if values.is_empty() {
            return Err("give the person's identity with --match ATTR=VALUE".into());
        }
        Ok(Identity { values })
    }

    /// The attribute → value pairs, for finding the person's records.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The keyed tag the register keeps instead of the identity.
    pub fn tag(&self, hasher: &Hasher) -> String {
        let canonical: Vec<String> = self
            .values
            .iter()
            .map(|(a, v)| format!("{a}={v}"))
            .collect();
        hasher.tag("retentiond request identity v1", &canonical.join("\n"))
    }
}

/// The attribute part of a malformed pair, for the message (never the value).
fn attr_only(pair: &str) -> String {
    pair.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// Trimmed; an e-mail address (an attribute whose name mentions mail) lowercased, since
/// addresses are compared case-insensitively.
pub fn normalize(attr: &str, value: &str) -> String {
    let v = value.trim();
    if attr.contains("mail") {
        v.to_lowercase()
    } else {
        v.to_owned()
    }
}

/// Whether `identity` may be used under `request`: `Ok(true)` when the request is not
/// bound yet (the caller binds it), `Ok(false)` when it is bound to exactly this identity,
/// `Err` when it is bound to someone else — no erasing another person under a request.
pub fn check_binding(request: &RequestRow, tag: &str) -> Result<bool, String> {
    match &request.identity {
        None => Ok(true),
        Some(bound) if bound == tag => Ok(false),
        Some(_) => Err(format!(
            "request {} is about another person: these --match values are not the ones it was registered with; check them, or register a new request",
            request.id
        )),
    }
}

/// How many of `open` requests there are, and how many are past their due date on `today`.
pub fn open_and_overdue(open: &[RequestRow], today: NaiveDate) -> (usize, usize) {
    let overdue = open
        .iter()
        .filter(|r| days_left(&r.due, today).is_some_and(|d| d < 0))
        .count();
    (open.len(), overdue)
}

/// Days from `today` until `due` (negative when overdue).
pub fn days_left(due: &str, today: NaiveDate) -> Option<i64> {
    let due = NaiveDate::parse_from_str(due, "%Y-%m-%d").ok()?;
    Some((due - today).num_days())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_a_calendar_month_and_ends_with_short_months() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(add_months(d("2026-01-31"), 1), Some(d("2026-02-28")));
        assert_eq!(add_months(d("2028-01-31"), 1), Some(d("2028-02-29")));
        assert_eq!(add_months(d("2026-03-15"), 1), Some(d("2026-04-15")));
        assert_eq!(add_months(d("2026-02-28"), 2), Some(d("2026-04-28")));
        assert_eq!(days_left("2026-12-01", d("2026-11-29")), Some(2));
        assert_eq!(days_left("2026-11-20", d("2026-11-29")), Some(-9));
    }

    #[test]
    fn identities_are_normalized_and_tagged_without_their_values_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let hasher = Hasher::load_or_create(dir.path()).unwrap();
        let mut values = BTreeMap::new();
        values.insert(
            "email".to_owned(),
            normalize("email", "  Jane.Doe@Example.ORG "),
        );
        let a = Identity { values };
        assert_eq!(a.values()["email"], "jane.doe@example.org");
        assert!(!format!("{a:?}").contains("jane"));
        let mut other = BTreeMap::new();
        other.insert("email".to_owned(), "jane.doe@example.org".to_owned());
        let b = Identity { values: other };
        assert_eq!(a.tag(&hasher), b.tag(&hasher));
        assert_eq!(a.tag(&hasher).len(), 64);
        assert_ne!(
            a.tag(&hasher),
            hasher.tag("other purpose", "email=jane.doe@example.org")
        );
    }
}

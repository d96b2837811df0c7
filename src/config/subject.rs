//! `[[subject]]`: where a person's data lives, for data-subject requests (GDPR art. 15 and
//! 17). One per table that holds personal data: found by identity attributes (`identify`)
//! or through another subject's keys (`via`), and erased by `delete`, `anonymize` or not at
//! all (`keep`, with the law that says so).

use super::ident::{Ident, TableName};
use super::register::Register;
use super::strategy::Strategy;
use std::collections::BTreeMap;

/// One `[[subject]]`.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Unique among subjects (`crm-prospects`).
    pub name: String,
    /// The database's config name.
    pub database: String,
    /// The table.
    pub table: TableName,
    /// The column that names a record (audit entries carry it).
    pub key: Ident,
    /// How the person is found here.
    pub find: Find,
    /// What an erasure does here.
    pub erase: Erase,
    /// What the record of processing activities says about this table's data (`purpose`,
    /// `categories`, `data_subjects`, `recipients`, `owner`).
    pub register: Register,
    /// The line of the `[[subject]]`.
    pub line: usize,
    /// The line of each key as written (`table`, `key`, `identify.ATTR`, `via`, …).
    pub key_lines: BTreeMap<String, usize>,
}

/// How a subject's records are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Find {
    /// By identity attributes: attribute name (what `--match ATTR=VALUE` gives) → column.
    Identify(BTreeMap<String, Ident>),
    /// Through another subject: this table's `foreign_key` holds that subject's keys.
    Via {
        /// The other subject's name.
        subject: String,
        /// The column here that refers to the other subject's key.
        foreign_key: Ident,
    },
}

/// What `request erase` does to a subject's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erase {
    /// Delete the rows.
    Delete,
    /// Overwrite these columns, keep the rows.
    Anonymize(Vec<(Ident, Strategy)>),
    /// Keep them, for this reason (a law that requires it), which the answer letter quotes.
    Keep {
        /// `keep_reason`.
        reason: String,
    },
}

impl Subject {
    /// The line of `key` as written (`identify.email` falls back to `identify`,
    /// `via.foreign_key` to `via`), or the subject's own line; the same lookup as
    /// `Rule::line_of`, so that a database check pins a problem on the key it is about.
    pub fn line_of(&self, key: &str) -> usize {
        let mut k = key;
        loop {
            if let Some(line) = self.key_lines.get(k) {
                return *line;
            }
            match k.rfind('.') {
                Some(dot) => k = &k[..dot],
                None => return self.line,
            }
        }
    }

    /// The identity attributes this subject is found by (none for a `via` subject).
    pub fn attributes(&self) -> impl Iterator<Item = &str> {
        let attrs = match &self.find {
            Find::Identify(map) => Some(map.keys().map(String::as_str)),
            Find::Via { .. } => None,
        };
        attrs.into_iter().flatten()
    }
}

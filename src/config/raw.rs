//! The config file exactly as written: serde structs that keep every value's span, so that
//! validation can name the line of any key. Nothing here is trusted yet; see `model`.

use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeMap;

/// The whole file. Unknown keys anywhere are errors (`deny_unknown_fields`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub daemon: Option<Spanned<RawDaemon>>,
    #[serde(default)]
    pub databases: BTreeMap<Spanned<String>, Spanned<RawDatabase>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub hold: Vec<Spanned<RawHold>>,
    #[serde(default)]
    pub subject: Vec<Spanned<RawSubject>>,
    pub report: Option<Spanned<RawReport>>,
}

/// `[report]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    pub keep_days: Option<Spanned<i64>>,
    pub email: Option<Spanned<RawEmail>>,
}

/// `[report.email]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub smtp_url: Spanned<String>,
    pub from: Spanned<String>,
    pub to: Spanned<Vec<Spanned<String>>>,
    pub password_file: Option<Spanned<String>>,
}

/// `[[hold]]`: a legal hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHold {
    pub name: Spanned<String>,
    pub reason: Spanned<String>,
    pub database: Spanned<String>,
    pub table: Spanned<String>,
    pub filter: Spanned<String>,
    pub until: Option<Spanned<String>>,
}

/// `[[subject]]`: where a person's data lives (data-subject requests).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubject {
    pub name: Spanned<String>,
    pub database: Spanned<String>,
    pub table: Spanned<String>,
    pub key: Spanned<String>,
    /// Identity attribute → column.
    pub identify: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    pub via: Option<Spanned<RawVia>>,
    pub erase: Spanned<String>,
    pub anonymize: Option<Spanned<RawAnonymize>>,
    pub keep_reason: Option<Spanned<String>>,
    pub purpose: Option<Spanned<String>>,
    pub categories: Option<Spanned<toml::Value>>,
    pub data_subjects: Option<Spanned<String>>,
    pub recipients: Option<Spanned<toml::Value>>,
    pub owner: Option<Spanned<String>>,
}

/// `via = { subject = "...", foreign_key = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVia {
    pub subject: Spanned<String>,
    pub foreign_key: Spanned<String>,
}

/// `anonymize = { COLUMN = STRATEGY, ... }`, of a rule or a subject.
pub type RawAnonymize = BTreeMap<Spanned<String>, Spanned<RawStrategy>>;

/// One `keep_while` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeepWhile {
    pub table: Spanned<String>,
    pub foreign_key: Spanned<String>,
    pub since: Spanned<String>,
    pub after: Spanned<String>,
}

/// One `children` entry: rows of `table` whose `foreign_key` holds a parent's key, with
/// their own `children`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChild {
    pub table: Spanned<String>,
    pub foreign_key: Spanned<String>,
    pub key: Spanned<String>,
    pub children: Option<Vec<Spanned<RawChild>>>,
}

/// `[daemon]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub state_dir: Option<Spanned<String>>,
    pub state_url: Option<Spanned<String>>,
    pub schedule: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub report_language: Option<Spanned<String>>,
    pub metrics_listen: Option<Spanned<String>>,
    /// Any TOML value, so that a string or a fraction is reported at its key, not as a
    /// syntax error.
    pub parallel: Option<Spanned<toml::Value>>,
}

/// `[databases.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Spanned<String>,
    pub password_file: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub lock_timeout: Option<Spanned<String>>,
    pub statement_timeout: Option<Spanned<String>>,
    pub max_replica_lag: Option<Spanned<String>>,
    pub max_replica_wait: Option<Spanned<String>>,
    pub replicas: Option<Spanned<Vec<Spanned<String>>>>,
    pub ignore_walsenders: Option<Spanned<Vec<Spanned<String>>>>,
    pub read_url: Option<Spanned<String>>,
}

/// `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Spanned<String>,
    pub description: Option<Spanned<String>>,
    pub legal_basis: Option<Spanned<String>>,
    pub database: Spanned<String>,
    pub table: Spanned<String>,
    pub key: Spanned<String>,
    pub filter: Option<Spanned<String>>,
    pub expires: Spanned<RawExpires>,
    pub action: Spanned<String>,
    pub anonymize: Option<Spanned<RawAnonymize>>,
    pub flag: Option<Spanned<RawFlag>>,
    pub batch_size: Option<Spanned<i64>>,
    pub batch_pause: Option<Spanned<String>>,
    /// Any TOML value, so that a bare number is reported at its key, not as a syntax error.
    pub batch_time: Option<Spanned<toml::Value>>,
    pub batch_pause_factor: Option<Spanned<toml::Value>>,
    pub schedule: Option<Spanned<String>>,
    pub keep_while: Option<Vec<Spanned<RawKeepWhile>>>,
    pub children: Option<Vec<Spanned<RawChild>>>,
    pub max_records: Option<Spanned<i64>>,
    pub max_fraction: Option<Spanned<toml::Value>>,
    pub mode: Option<Spanned<String>>,
    pub locked: Option<Spanned<bool>>,
    pub purpose: Option<Spanned<String>>,
    pub categories: Option<Spanned<toml::Value>>,
    pub data_subjects: Option<Spanned<String>>,
    pub recipients: Option<Spanned<toml::Value>>,
    pub owner: Option<Spanned<String>>,
}

/// `expires = { since = "...", after = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpires {
    pub since: Spanned<String>,
    pub after: Option<Spanned<String>>,
}

/// One column's anonymize strategy: `"null"`, `"hash"`, or `{ replace = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawStrategy {
    Word(String),
    Replace(RawReplace),
}

/// `{ replace = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplace {
    pub replace: String,
}

/// `flag = { column = "...", value = ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlag {
    pub column: Spanned<String>,
    pub value: Spanned<toml::Value>,
}

//! The validated config: what the rest of retentiond works with. A value of these types
//! exists only if it passed validation, so downstream code never re-checks strings.

use super::dialect::Dialect;
use super::filter::Filter;
use super::ident::{Ident, TableName};
use super::period::Period;
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A loaded, validated config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// `[daemon]`.
    pub daemon: Daemon,
    /// `[databases.NAME]`, by name.
    pub databases: BTreeMap<String, DatabaseSpec>,
    /// `[[rule]]`, in file order (the order passes run them in).
    pub rules: Vec<Rule>,
    /// `[[hold]]`: legal holds, which protect records from every rule.
    pub holds: Vec<Hold>,
    /// `[report]`: where the management report goes.
    pub report: ReportSettings,
}

/// `[report]`.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Saved reports older than this many days are removed.
    pub keep_days: u32,
    /// Mail the report after every pass, if set.
    pub email: Option<EmailSettings>,
}

/// `[report.email]`.
#[derive(Clone)]
pub struct EmailSettings {
    /// `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465` (TLS), or
    /// `smtp://host:25` (plain, for a local relay). A user name may be in the URL.
    pub smtp_url: String,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The SMTP password, read at send time.
    pub password_file: Option<PathBuf>,
}

impl fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSettings")
            .field("smtp_url", &mask_url(&self.smtp_url))
            .field("from", &self.from)
            .field("to", &self.to)
            .finish()
    }
}

impl Config {
    /// The database a rule names (validation guarantees it exists).
    pub fn database_of(&self, rule: &Rule) -> Option<&DatabaseSpec> {
        self.databases.get(&rule.database)
    }
}

/// Report language. Serialized as its code (`en`, `nl`), as reports' JSON and HTML carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English.
    En,
    /// Dutch.
    Nl,
}

/// `[daemon]` settings.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Holds the state database (run history, audit trail) and reports.
    pub state_dir: PathBuf,
    /// When passes run.
    pub schedule: cron::Schedule,
    /// The schedule as written, for messages.
    pub schedule_text: String,
    /// The timezone of the schedule and of zone-less time columns.
    pub timezone: Tz,
    /// Report language.
    pub language: Language,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Where a database password comes from. Never stored in the main config file.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// No separate password (none needed, or it is inside the URL).
    None,
    /// Read from a file (e.g. a systemd credential) at connect time.
    File(PathBuf),
    /// Read from an environment variable at connect time.
    Env(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::None => f.write_str("None"),
            Secret::File(p) => write!(f, "File({})", p.display()),
            Secret::Env(v) => write!(f, "Env({v})"),
        }
    }
}

/// One `[databases.NAME]`.
#[derive(Clone)]
pub struct DatabaseSpec {
    /// The config name (`hr`).
    pub name: String,
    /// The SQL dialect, from the URL scheme.
    pub dialect: Dialect,
    /// The URL as written. May hold a password: print [`DatabaseSpec::masked_url`] instead.
    pub url: String,
    /// Where the password comes from.
    pub secret: Secret,
    /// Bounds on waiting, so retentiond never stalls a production database.
    pub timeouts: Timeouts,
    /// The line of the `[databases.NAME]` table, to pin connection problems on.
    pub line: usize,
}

/// How long retentiond waits for a database before giving up on a statement or batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection.
    pub connect: std::time::Duration,
    /// Waiting for a lock (PostgreSQL `lock_timeout`, MySQL `innodb_lock_wait_timeout`,
    /// SQLite `busy_timeout`).
    pub lock: std::time::Duration,
    /// One statement (PostgreSQL `statement_timeout`, MariaDB `max_statement_time`,
    /// MySQL `max_execution_time`).
    pub statement: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: std::time::Duration::from_secs(10),
            lock: std::time::Duration::from_secs(5),
            statement: std::time::Duration::from_secs(300),
        }
    }
}

impl DatabaseSpec {
    /// The URL with any password replaced by `***`, safe for logs and messages.
    pub fn masked_url(&self) -> String {
        mask_url(&self.url)
    }
}

impl fmt::Debug for DatabaseSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSpec")
            .field("name", &self.name)
            .field("dialect", &self.dialect)
            .field("url", &self.masked_url())
            .field("secret", &self.secret)
            .finish()
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// What a rule does to an expired record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delete the row.
    Delete,
    /// Overwrite personal columns, keep the row.
    Anonymize(Vec<(Ident, Strategy)>),
    /// Set a column to a value so that a human reviews the record.
    Flag {
        /// The column to set.
        column: Ident,
        /// The value that marks the record.
        value: FlagValue,
    },
}

impl Action {
    /// The verb used in the audit trail: `delete`, `anonymize` or `flag`.
    pub fn verb(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Which of the three actions this is, without its settings.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Delete => ActionKind::Delete,
            Action::Anonymize(_) => ActionKind::Anonymize,
            Action::Flag { .. } => ActionKind::Flag,
        }
    }
}

/// The three actions by name alone: what outcomes, plans, reports and the trail carry
/// (the settings stay with the rule). Serialized as the audit trail's verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// `delete`.
    Delete,
    /// `anonymize`.
    Anonymize,
    /// `flag`.
    Flag,
}

impl ActionKind {
    /// The verb: `delete`, `anonymize` or `flag`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Delete => "delete",
            ActionKind::Anonymize => "anonymize",
            ActionKind::Flag => "flag",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

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

/// The value a `flag` action writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagValue {
    /// A text value.
    Text(String),
    /// An integer (also used for booleans: true = 1).
    Int(i64),
}

impl fmt::Display for FlagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagValue::Text(s) => write!(f, "'{s}'"),
            FlagValue::Int(i) => write!(f, "{i}"),
        }
    }
}

/// Whether a rule acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Act on expired records (the default).
    Enforce,
    /// Plan and report what it would do; never act. For a safe roll-out.
    Report,
}

/// A record stays while another table still references it with a young enough row
/// (e.g. a customer while an invoice younger than 7 years names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepWhile {
    /// The referencing table (same database).
    pub table: TableName,
    /// Its column that holds the rule's key.
    pub foreign_key: Ident,
    /// Its time column.
    pub since: Ident,
    /// How long a referencing row keeps the record alive.
    pub after: Period,
}

/// A legal hold: records matching `filter` in `database.table` are untouched by every
/// rule while it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Unique name.
    pub name: String,
    /// Why (a case number, a dispute). Shown to operators; kept out of the audit trail.
    pub reason: String,
    /// The database.
    pub database: String,
    /// The table.
    pub table: TableName,
    /// Which records it holds: one condition in the database's own SQL, as re-rendered.
    pub filter: Filter,
    /// When it ends, if it does.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// The line of the `[[hold]]`.
    pub line: usize,
}

impl Hold {
    /// Whether the hold protects records at `at`.
    pub fn active(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.until.is_none_or(|u| at < u)
    }

    /// A digest of what the hold covers, so that changes to it are noticed and audited
    /// without putting its (possibly sensitive) text in the trail.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            self.database.as_str(),
            &self.table.to_string(),
            // The re-rendered SQL, not the text as written: what the hold really covers, so
            // re-spacing or re-casing a filter is no change. A hold written otherwise than
            // its rendering (`x in (1,2)` → `x IN (1, 2)`) records one `hold-change` after
            // the upgrade that began to parse filters; its records stay held throughout.
            self.filter.sql(),
            &self.until.map(|u| u.to_rfc3339()).unwrap_or_default(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(&h.finalize()[..8])
    }
}

/// One retention rule, validated.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name (`rejected-applicants`).
    pub name: String,
    /// Plain-language description for the report.
    pub description: Option<String>,
    /// The legal basis, copied into every audit entry.
    pub legal_basis: String,
    /// The `[databases.NAME]` it acts on.
    pub database: String,
    /// The table.
    pub table: TableName,
    /// The primary (or unique) key column.
    pub key: Ident,
    /// Trusted operator SQL narrowing the rule: one condition in the database's own
    /// dialect, as re-rendered.
    pub filter: Option<Filter>,
    /// The column whose value starts the retention period. NULL never expires.
    pub since: Ident,
    /// How long after `since` the record expires.
    pub after: Period,
    /// What happens to expired records.
    pub action: Action,
    /// Records per batch (one short transaction each).
    pub batch_size: u32,
    /// Pause between batches, to leave the database breathing room.
    pub batch_pause: std::time::Duration,
    /// References that keep a record alive (minimum retention).
    pub keep_while: Vec<KeepWhile>,
    /// The most records one pass may act on without `--confirm`.
    pub max_records: Option<u64>,
    /// The largest fraction of the table one pass may act on without `--confirm`.
    pub max_fraction: f64,
    /// Enforce, or only report.
    pub mode: Mode,
    /// Its own schedule, overriding `[daemon] schedule` (with the text as written).
    pub schedule: Option<(cron::Schedule, String)>,
    /// The line of the `[[rule]]`, to pin database problems on.
    pub line: usize,
}

impl Rule {
    /// Every column the rule names, with the config key that named it, for the
    /// existence check against the database.
    pub fn columns(&self) -> Vec<(&Ident, &'static str)> {
        let mut cols = vec![(&self.key, "key"), (&self.since, "expires.since")];
        match &self.action {
            Action::Delete => {}
            Action::Anonymize(list) => cols.extend(list.iter().map(|(c, _)| (c, "anonymize"))),
            Action::Flag { column, .. } => cols.push((column, "flag.column")),
        }
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            mask_url("postgres://app:s3cret@db.local:5432/hr"),
            "postgres://app:***@db.local:5432/hr"
        );
        assert_eq!(
            mask_url("mysql://root@localhost/crm"),
            "mysql://root@localhost/crm"
        );
        assert_eq!(mask_url("sqlite:///srv/a@b.db"), "sqlite:///srv/a@b.db");
        assert_eq!(mask_url("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }
}

//! The validated config: what the rest of retentiond works with. A value of these types
//! exists only if it passed validation, so downstream code never re-checks strings.

use super::dialect::Dialect;
use super::filter::Filter;
use super::ident::{Ident, TableName};
use super::period::Period;
use super::register::Register;
use super::strategy::Strategy;
use super::subject::Subject;
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
    /// `[[subject]]`: where a person's data lives, for data-subject requests.
    pub subjects: Vec<Subject>,
    /// `[report]`: where the management report goes.
    pub report: ReportSettings,
    /// `max_replica_lag` (with `max_replica_wait` and `replicas`) of each database that has
    /// one, by database name: kept beside [`DatabaseSpec`] rather than in it, so that code
    /// which builds a `DatabaseSpec` by hand (tests, the benchmark) stays as it is.
    pub replicas: BTreeMap<String, ReplicaPolicy>,
    /// `read_url` of each database that has one, by database name, as the spec to connect
    /// with: the replica's URL with the database's name, secret, timeouts and line. Only
    /// `plan` and `check` count there, so that a forecast never loads the primary; kept
    /// beside [`DatabaseSpec`] for the same reason as `replicas`.
    pub read_urls: BTreeMap<String, DatabaseSpec>,
}

impl Config {
    /// The replica policy of `database`, if it has one: then every batch of its rules
    /// waits while a replica lags more than the policy allows.
    pub fn replica_policy(&self, database: &str) -> Option<&ReplicaPolicy> {
        self.replicas.get(database)
    }

    /// Where `plan` and `check` count the records of `database`'s rules instead of on the
    /// primary, if it has a `read_url`. Never used by anything that decides what to act on.
    pub fn read_spec(&self, database: &str) -> Option<&DatabaseSpec> {
        self.read_urls.get(database)
    }
}

/// What a database's replicas may lag before batches on it wait: deleting is
/// irreversible, and a replica that falls far behind (read traffic, a fail-over target) is
/// what the operator asked retentiond not to cause.
#[derive(Clone)]
pub struct ReplicaPolicy {
    /// `max_replica_lag`: a batch starts only while every replica is at most this far
    /// behind.
    pub max_lag: std::time::Duration,
    /// `max_replica_wait` (default [`DEFAULT_MAX_REPLICA_WAIT`]): how long one wait may
    /// last before the rule fails for this pass rather than stall it without end.
    pub max_wait: std::time::Duration,
    /// `replicas`: URLs of replicas to ask directly (MariaDB/MySQL, where the primary
    /// cannot tell its replicas' lag; PostgreSQL, for a standby that may be disconnected
    /// and so missing from `pg_stat_replication`). They may hold a password: print
    /// [`mask_url`] of them.
    pub replicas: Vec<String>,
    /// `ignore_walsenders` (PostgreSQL): the `application_name`s of walsenders on the
    /// primary that are not standbys — a WAL archiver (`pg_receivewal`, Barman) reports
    /// no replay position and would hold every purge back as "cannot tell".
    pub ignore_walsenders: Vec<String>,
}

/// How long one wait for lagging replicas may last by default: long enough for a replica
/// to catch up after a burst, short enough that a replica paused for maintenance fails the
/// rule (and says why) instead of holding the pass for hours.
pub const DEFAULT_MAX_REPLICA_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

impl fmt::Debug for ReplicaPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked: Vec<String> = self.replicas.iter().map(|u| mask_url(u)).collect();
        f.debug_struct("ReplicaPolicy")
            .field("max_lag", &self.max_lag)
            .field("max_wait", &self.max_wait)
            .field("replicas", &masked)
            .finish()
    }
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
    /// Every identity attribute some subject is found by (what `--match` may name).
    pub fn identity_attributes(&self) -> std::collections::BTreeSet<&str> {
        self.subjects.iter().flat_map(|s| s.attributes()).collect()
    }

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
    /// Where the run history, intents and audit trail live instead of `state_dir/state.db`
    /// (`state_url`, PostgreSQL only): a database the organisation already replicates and
    /// backs up, shared by instances on several hosts of which one acts at a time. Reports
    /// and `anonymize.key` stay in `state_dir`.
    pub state_url: Option<String>,
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
    /// How many databases a pass works on at once (`parallel`, 1–64). Rules on one
    /// database (the same host, port and name, or SQLite file, whatever its entry is
    /// called) always run one after the other; but databases that share a server also
    /// share its CPU and disks, so that server sees up to this many rules' batches at once.
    pub parallel: usize,
}

impl Daemon {
    /// Where the state is, for messages: `state directory /var/lib/retentiond`, or `state
    /// database postgres://retentiond:***@db1/retentiond` with `state_url` (masked).
    pub fn state_place(&self) -> String {
        match &self.state_url {
            Some(url) => format!("state database {}", mask_url(url)),
            None => format!("state directory {}", self.state_dir.display()),
        }
    }
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
    /// The URL with every secret (the password, secret query parameters) replaced by
    /// `***`, safe for logs, messages, the state database and reports (see [`mask_url`]).
    pub fn masked_url(&self) -> String {
        mask_url(&self.url)
    }

    /// The secrets in the URL, in every form a driver message could quote them in, for
    /// scrubbing such messages (see `url_secrets`).
    pub fn url_secrets(&self) -> Vec<String> {
        url_secrets(&self.url)
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

/// Query parameters whose value is a secret (or, like `sslkey`, says where one is): a name
/// holding one of these words, in any case (`password`, `sslpassword`, `PassWord`,
/// `api_token`), has its value masked.
const SECRET_PARAM_WORDS: [&str; 6] = ["password", "passwd", "pwd", "secret", "token", "key"];

/// Replaces every secret in a URL with `***`: the password of `scheme://user:password@host`
/// (whatever characters it holds), and the value of every query parameter named like a
/// secret (see `SECRET_PARAM_WORDS`). The URL is read by the same parser the drivers use,
/// so what is masked is what they would send. A URL that does not parse, or whose reading
/// is in doubt (an `@` after the host, as in `postgres://u:2024/pw@host/db`, which parses
/// as host `u`, port 2024), is masked conservatively: everything between `://` and the `@`
/// before the host becomes `***`, and the query is dropped. A URL without a secret is
/// returned as written.
pub fn mask_url(url: &str) -> String {
    let Some(mut parsed) = clear_url(url) else {
        return mask_conservatively(url);
    };
    let mut masked = false;
    if parsed.password().is_some() {
        if parsed.set_password(Some("***")).is_err() {
            return mask_conservatively(url);
        }
        masked = true;
    }
    if let Some(query) = parsed.query() {
        let (query, any) = mask_query(query);
        if any {
            parsed.set_query(Some(&query));
            masked = true;
        }
    }
    if masked {
        parsed.to_string()
    } else {
        url.to_owned()
    }
}

/// Every secret in a URL, in each form a driver message could quote it in: as written, as
/// the URL parser re-encodes it, and percent-decoded (the password, and the value of each
/// secret query parameter; for a URL [`mask_url`] masks conservatively, the whole userinfo
/// too). Longest first, so that removing them in order never leaves a piece of one.
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut add = |raw: &str| {
        for form in [raw.to_owned(), percent_decode(raw), form_decode(raw)] {
            if !form.is_empty() && !found.contains(&form) {
                found.push(form);
            }
        }
    };
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match clear_url(url) {
        Some(parsed) => {
            if let Some(password) = parsed.password() {
                add(password);
                // As written: the parser re-encodes some characters (`@` as `%40`).
                let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
                if let Some((_, written)) = authority
                    .rfind('@')
                    .and_then(|at| authority[..at].split_once(':'))
                {
                    add(written);
                }
            }
            for query in [parsed.query(), rest.split_once('?').map(|(_, q)| q)]
                .into_iter()
                .flatten()
            {
                let query = query.split('#').next().unwrap_or(query);
                secret_values(query).for_each(&mut add);
            }
        }
        None => {
            let (userinfo, _, query) = murky_split(rest);
            if let Some(userinfo) = userinfo {
                add(userinfo);
                if let Some((_, password)) = userinfo.split_once(':') {
                    add(password);
                }
            }
            if let Some(query) = query {
                secret_values(query).for_each(&mut add);
            }
        }
    }
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found
}

/// `url` as the drivers read it (sqlx parses with the same crate), or `None` when it does
/// not parse or may be read two ways. An `@` after the host, in the path, the fragment, a
/// parameter name or a value that is not masked, means a password may hold a `/`, `?` or
/// `#` and the parser took part of it for the host, port and path: only a conservative
/// mask is safe then. (A SQLite URL is a file path, where an `@` is a plain character.)
fn clear_url(url: &str) -> Option<url::Url> {
    if !url.contains("://") {
        return None;
    }
    let parsed = url::Url::parse(url).ok()?;
    let file = matches!(parsed.scheme(), "sqlite" | "file");
    let path_at = !file && parsed.path().contains('@');
    let fragment_at = parsed.fragment().is_some_and(|f| f.contains('@'));
    let query_at = parsed.query().is_some_and(|q| {
        q.split('&').any(|pair| match pair.split_once('=') {
            Some((name, value)) => {
                name.contains('@') || (!is_secret_param(name) && value.contains('@'))
            }
            None => pair.contains('@'),
        })
    });
    (!path_at && !fragment_at && !query_at).then_some(parsed)
}

/// The mask for a URL that does not parse cleanly: `scheme://***@host/path`, the query and
/// fragment dropped, or the URL up to its query if it has no `@` at all.
fn mask_conservatively(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    match murky_split(rest) {
        (Some(_), host, _) => format!("{scheme}***@{host}"),
        (None, host, _) => format!("{scheme}{host}"),
    }
}

/// Splits what follows `://` in a URL that does not parse cleanly into userinfo, host and
/// path, and query. The userinfo ends at the last `@` before the first `?` or `#`; if there
/// is none there, the password may hold a `?` or `#`, so it ends at the first `@` after it
/// (or the last, if the host part that follows still holds one).
fn murky_split(rest: &str) -> (Option<&str>, &str, Option<&str>) {
    let cut = |s: &str| s.find(['?', '#']).unwrap_or(s.len());
    let first_cut = cut(rest);
    let at = rest[..first_cut].rfind('@').or_else(|| {
        rest[first_cut..].find('@').map(|i| {
            let first = first_cut + i;
            let after = &rest[first + 1..];
            after[..cut(after)]
                .rfind('@')
                .map_or(first, |j| first + 1 + j)
        })
    });
    let (userinfo, tail) = match at {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let end = cut(tail);
    let query = tail[end..].strip_prefix('?');
    (userinfo, &tail[..end], query)
}

/// The query with the value of every secret parameter replaced by `***`, and whether any
/// was. Other parameters stay exactly as written.
fn mask_query(query: &str) -> (String, bool) {
    let mut any = false;
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_param(name) => {
                any = true;
                format!("{name}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    (pairs.join("&"), any)
}

/// The values, as written, of the secret parameters in a query.
fn secret_values(query: &str) -> impl Iterator<Item = &str> {
    query.split('&').filter_map(|pair| {
        pair.split_once('=')
            .filter(|(name, _)| is_secret_param(name))
            .map(|(_, value)| value)
    })
}

/// Whether a query parameter's value is a secret, by its (percent-decoded) name.
fn is_secret_param(name: &str) -> bool {
    let name = form_decode(name).to_ascii_lowercase();
    SECRET_PARAM_WORDS.iter().any(|w| name.contains(w))
}

/// `%XX` escapes decoded, as the drivers decode a URL's password; an invalid escape stays
/// as written, and bytes that are not UTF-8 become U+FFFD.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let hex = |c: u8| char::from(c).to_digit(16);
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits: at most 0xff.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query value decoded as `application/x-www-form-urlencoded` (`+` is a space), as the
/// drivers read query parameters.
fn form_decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
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

/// Rows of another table that belong to a rule's record (notes of an applicant, lines of
/// an order): acted on in the same transaction as their parent, before it, each with its
/// own audit entry — never left to an `ON DELETE CASCADE` the trail cannot see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The child table (same database).
    pub table: TableName,
    /// Its column that holds the parent's key.
    pub foreign_key: Ident,
    /// Its own key (audit entries carry it).
    pub key: Ident,
    /// Its children, acted on before it.
    pub children: Vec<Child>,
    /// Where it is written: `children[0]`, `children[0].children[1]`.
    pub path: String,
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

/// How a rule sizes its batches. One enum rather than two optional keys, so a rule
/// cannot be both fixed and timed, nor neither.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchSizing {
    /// `batch_size = N`: every batch is exactly N records (the last one fewer), as the
    /// operator asked, whatever it costs the database.
    Fixed(u32),
    /// The default: batches are sized from the speed of the ones before so that each holds
    /// its locks about this long (`batch_time`): the impact the operator accepts, which a
    /// record count only stands for on one table and one server.
    Timed(std::time::Duration),
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
    /// How large each batch (one short transaction) is: a fixed `batch_size`, or sized
    /// to hold its locks about `batch_time`.
    pub batch_sizing: BatchSizing,
    /// Pause between batches, to leave the database breathing room.
    pub batch_pause: std::time::Duration,
    /// `batch_pause_factor`: after each batch, a further pause of this many times the
    /// batch's own lock-to-commit time (0 to 100), so the pause follows the database's load.
    pub batch_pause_factor: f64,
    /// References that keep a record alive (minimum retention).
    pub keep_while: Vec<KeepWhile>,
    /// Related rows acted on with each record, before it (`children`).
    pub children: Vec<Child>,
    /// The most records one pass may act on without `--confirm`.
    pub max_records: Option<u64>,
    /// The largest fraction of the table one pass may act on without `--confirm`.
    pub max_fraction: f64,
    /// Enforce, or only report.
    pub mode: Mode,
    /// `locked = true`: once a pass has recorded the rule, a config that removes it,
    /// shortens `expires.after` or changes its table, database, `since` or action is
    /// refused until `retentiond rules unlock` allows one such change.
    pub locked: bool,
    /// Its own schedule, overriding `[daemon] schedule` (with the text as written).
    pub schedule: Option<(cron::Schedule, String)>,
    /// What the record of processing activities says about it (`purpose`, `categories`,
    /// `data_subjects`, `recipients`, `owner`); `retentiond register` writes it.
    pub register: Register,
    /// The line of the `[[rule]]`, to pin database problems on.
    pub line: usize,
    /// The line of each key a database check may find wrong (`table`, `key`,
    /// `expires.since`, `filter`, `anonymize.COL`, `keep_while[i]`…); see [`Rule::line_of`].
    pub key_lines: BTreeMap<String, usize>,
}

impl Rule {
    /// The line of `key` as written (`flag.value` falls back to `flag`,
    /// `keep_while[0].table` to `keep_while[0]`), or the rule's own line.
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

    /// `(url, masked, the secret that must not survive)`.
    const SECRET_URLS: [(&str, &str, &str); 9] = [
        // A '/' ends the host for the parser: the URL does not parse (port "S3cret").
        (
            "postgres://u:S3cret/PW@host/db",
            "postgres://***@host/db",
            "S3cret",
        ),
        // Digits before the '/' parse as a port: the '@' in the path gives it away.
        (
            "postgres://u:2024/Pw@host:5432/db",
            "postgres://***@host:5432/db",
            "2024/Pw",
        ),
        ("mysql://u:a:b:c@host/db", "mysql://u:***@host/db", "a:b:c"),
        (
            "postgres://u:p%40ss%2Fw%3Ard@host/db",
            "postgres://u:***@host/db",
            "p%40ss",
        ),
        (
            "postgres://u:x@y@z@host/db?sslmode=require",
            "postgres://u:***@host/db?sslmode=require",
            "x@y@z",
        ),
        // A '?' or '#' in the password: the URL does not parse; the query is dropped.
        (
            "postgres://u:pa?ss#w@host/db?password=other",
            "postgres://***@host/db",
            "pa?ss",
        ),
        (
            "postgres://u:pa?ss@host/db?password=p@ss",
            "postgres://***@host/db",
            "p@ss",
        ),
        // No "://": whatever is before the last '@' may be a password.
        ("postgres:u:pw@host/db", "***@host/db", "pw"),
        ("postgres://u:pw@[bad/db", "postgres://***@[bad/db", "pw"),
    ];

    #[test]
    fn a_password_is_masked_whatever_characters_it_holds() {
        for (url, masked, secret) in SECRET_URLS {
            assert_eq!(mask_url(url), masked, "{url}");
            assert!(!mask_url(url).contains(secret), "{url}");
        }
    }

    #[test]
    fn secret_query_parameters_are_masked_and_the_others_kept() {
        for (url, masked) in [
            (
                "postgres://u@host/db?password=S3cret",
                "postgres://u@host/db?password=***",
            ),
            (
                "postgres://u@host/db?sslmode=verify-full&sslpassword=S3cret&application_name=x",
                "postgres://u@host/db?sslmode=verify-full&sslpassword=***&application_name=x",
            ),
            (
                "postgres://u@host/db?PassWord=S3cret&sslkey=/etc/k.pem",
                "postgres://u@host/db?PassWord=***&sslkey=***",
            ),
            (
                "mysql://u:pw@host/db?api_TOKEN=t&pwd=p&passwd=q&client_secret=s",
                "mysql://u:***@host/db?api_TOKEN=***&pwd=***&passwd=***&client_secret=***",
            ),
            // An encoded name is still a secret's name; an '@' in its value is its own.
            (
                "postgres://host/db?pass%77ord=p@ss",
                "postgres://host/db?pass%77ord=***",
            ),
            // An '@' in a value that is not masked may be the end of a password.
            ("postgres://u:12?x=y@host/db", "postgres://***@host/db"),
        ] {
            assert_eq!(mask_url(url), masked, "{url}");
        }
    }

    #[test]
    fn a_url_without_a_secret_is_returned_as_written() {
        for url in [
            "postgres://retentiond@db.local:5432/hr?sslmode=require&application_name=a%20b",
            "mysql://root@127.0.0.1:3306/crm",
            "postgresql://db.local/hr",
            "sqlite:///var/lib/app/data.db?mode=rwc",
            "sqlite://relative/a@b.db",
            "smtp://mail.example.org:587?tls=required",
            "postgres://u:@host/db",
            "not a url",
            "",
        ] {
            assert_eq!(mask_url(url), url);
        }
    }

    #[test]
    fn every_form_of_a_secret_is_listed_for_scrubbing() {
        let secrets = url_secrets("postgres://u:p%2Fw@host/db?sslpassword=a+b%21");
        for form in ["p%2Fw", "p/w", "a+b%21", "a b!", "a+b!"] {
            assert!(secrets.iter().any(|s| s == form), "{form}: {secrets:?}");
        }
        let secrets = url_secrets("postgres://u:S3cret/PW@host/db?password=x%2F");
        for form in ["u:S3cret/PW", "S3cret/PW", "x%2F", "x/"] {
            assert!(secrets.iter().any(|s| s == form), "{form}: {secrets:?}");
        }
        assert!(url_secrets("postgres://u:p@ss@h/db")
            .iter()
            .any(|s| s == "p@ss"));
        assert!(url_secrets("mysql://root@localhost/crm").is_empty());
        assert!(url_secrets("sqlite:///srv/a@b.db").is_empty());
        let lengths: Vec<usize> = secrets.iter().map(String::len).collect();
        assert!(lengths.windows(2).all(|w| w[0] >= w[1]), "longest first");
    }
}

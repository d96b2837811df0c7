//! Loading the config file: TOML → raw spanned structs → a validated [`Config`]. All config
//! errors come from here, each with file, line and key; a config that loads is safe to act on
//! (as far as it can be known without the databases — see `db::schema` for the rest).

mod definition;
mod dialect;
mod error;
mod filter;
mod ident;
mod model;
mod moment;
mod period;
mod raw;
mod register;
mod strategy;
mod subject;

pub use definition::{
    ChildDefinition, Definition, FlagDefinition, KeepWhileDefinition, LockedChange,
};
pub use dialect::Dialect;
pub use error::{ConfigError, ConfigProblem, Lines};
pub use filter::{Filter, MAX_FILTER_CHARS};
pub use ident::{Ident, TableName};
pub use model::{
    mask_url, Action, ActionKind, BatchSizing, Child, Config, Daemon, DatabaseSpec, EmailSettings,
    FlagValue, Hold, KeepWhile, Language, Mode, ReplicaPolicy, ReportSettings, Rule, Secret,
    Timeouts, DEFAULT_MAX_REPLICA_WAIT,
};
pub use moment::Moment;
pub use period::{parse_pause, Cutoff, Period};
pub use register::Register;
pub use strategy::Strategy;
pub use subject::{Erase, Find, Subject};

use raw::{
    RawAnonymize, RawConfig, RawDaemon, RawDatabase, RawEmail, RawHold, RawKeepWhile, RawReport,
    RawRule, RawStrategy, RawSubject, RawVia,
};
use register::RawRegister;
use serde_spanned::Spanned;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The config path used when neither `--config` nor `RETENTIOND_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/retentiond/retentiond.toml";
/// The first batch of a rule sized by time (`batch_time`): the size every batch had before
/// batches were timed, a safe guess until the first batch is measured.
pub const DEFAULT_BATCH_SIZE: u32 = 1000;
/// The largest batch a rule may ask for; bigger batches hold locks too long.
pub const MAX_BATCH_SIZE: u32 = 100_000;
/// How long a batch holds its locks unless a rule says otherwise (`batch_time`): short
/// enough that an application waiting on one of its rows barely notices.
pub const DEFAULT_BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(100);
/// The shortest `batch_time`: below it a batch's fixed costs (round trips, the intent's
/// fsync) outweigh its records.
pub const MIN_BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(10);
/// The longest `batch_time`: longer than a lock wait most applications tolerate.
pub const MAX_BATCH_TIME: std::time::Duration = std::time::Duration::from_secs(10);
/// The largest `batch_pause_factor`: 100 × the batch's time is already a database at
/// work 1 % of the time.
pub const MAX_BATCH_PAUSE_FACTOR: f64 = 100.0;
/// How many databases a pass works on at once unless `[daemon] parallel` says otherwise.
/// Each database (the physical one: entries with the same host, port and name, or the same
/// SQLite file, count as one) still sees one rule at a time. Databases on one server share
/// its CPU, disks and write-ahead log, so there a pass does add load: up to `parallel`
/// rules' batches at once, plus the replication they cause. 4 covers most installations'
/// databases while bounding the open connections and the CPU that hashing audit entries
/// takes.
pub const DEFAULT_PARALLEL: usize = 4;
/// The most databases a pass may work on at once (`[daemon] parallel`).
pub const MAX_PARALLEL: usize = 64;

/// How deep `children` may nest (a rule's rows, their children, theirs, …).
pub const MAX_CHILD_DEPTH: usize = 4;
/// Saved reports are kept this many days unless `[report] keep_days` says otherwise.
pub const DEFAULT_REPORT_KEEP_DAYS: u32 = 400;
/// Unless a rule says otherwise, one pass may act on at most half of a table.
pub const DEFAULT_MAX_FRACTION: f64 = 0.5;

/// Reads and validates the config at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![ConfigProblem {
            file: path.to_owned(),
            line: 0,
            key: "(file)".into(),
            message: format!(
                "cannot read the config file: {e}; pass the right file with --config PATH \
                 or RETENTIOND_CONFIG"
            ),
        }],
    })?;
    parse(path, &source)
}

/// Validates config text `source` that was read from `path`.
pub fn parse(path: &Path, source: &str) -> Result<Config, ConfigError> {
    let lines = Lines::new(path.to_owned(), source);
    let raw: RawConfig = toml::from_str(source).map_err(|e| ConfigError {
        problems: vec![toml_problem(&lines, &e)],
    })?;
    Validator {
        lines: &lines,
        problems: Vec::new(),
    }
    .config(raw)
}

fn toml_problem(lines: &Lines, e: &toml::de::Error) -> ConfigProblem {
    let offset = e.span().map(|s| s.start).unwrap_or(0);
    let message = e.message().trim().to_owned();
    let key = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .map(|k| format!("unknown key '{k}'"))
        .unwrap_or_else(|| "(syntax)".to_owned());
    let mut problem = lines.problem(offset, key, message);
    if problem.key.starts_with("unknown key") {
        problem
            .message
            .push_str("; remove it or fix its spelling (see README, 'Config reference')");
    }
    problem
}

struct Validator<'a> {
    lines: &'a Lines,
    problems: Vec<ConfigProblem>,
}

impl Validator<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, key: impl Into<String>, message: impl Into<String>) {
        self.problems
            .push(self.lines.problem(at.span().start, key, message));
    }

    /// A problem pinned on a whole table (`[[subject]]`) rather than on one value: for a
    /// key that is missing, whose line is the table's.
    fn err_at_line(&mut self, line: usize, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            file: self.lines.file().to_owned(),
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    /// Reports `database` unless it names a `[databases.NAME]`, listing the ones there are.
    fn known_database(
        &mut self,
        database: &Spanned<String>,
        dbs: &BTreeMap<String, DatabaseSpec>,
        key: String,
    ) {
        if dbs.contains_key(database.get_ref()) {
            return;
        }
        let known: Vec<&str> = dbs.keys().map(String::as_str).collect();
        self.err(
            database,
            key,
            format!(
                "unknown database '{}'; define [databases.{}] or use one of: {}",
                database.get_ref(),
                database.get_ref(),
                if known.is_empty() {
                    "(none defined)".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        );
    }

    fn config(mut self, raw: RawConfig) -> Result<Config, ConfigError> {
        let daemon = self.daemon(raw.daemon);
        let mut databases = BTreeMap::new();
        let mut replicas = BTreeMap::new();
        let mut read_urls = BTreeMap::new();
        for (name, db) in raw.databases {
            if let Some((spec, policy, read_url)) = self.database(&name, db) {
                if let Some(policy) = policy {
                    replicas.insert(name.get_ref().clone(), policy);
                }
                if let Some(url) = read_url {
                    let read = DatabaseSpec {
                        url,
                        ..spec.clone()
                    };
                    read_urls.insert(name.get_ref().clone(), read);
                }
                databases.insert(name.into_inner(), spec);
            }
        }
        let mut rules = Vec::new();
        let mut seen = HashSet::new();
        for raw_rule in raw.rule {
            let name = raw_rule.get_ref().name.clone();
            if !seen.insert(name.get_ref().clone()) {
                self.err(
                    &name,
                    format!("rule \"{}\" → name", name.get_ref()),
                    "duplicate rule name: every [[rule]] needs a name of its own (the audit \
                     trail and reports identify rules by name)",
                );
            }
            if let Some(rule) = self.rule(raw_rule, &databases) {
                rules.push(rule);
            }
        }
        let tz = daemon.as_ref().map_or(chrono_tz::UTC, |d| d.timezone);
        let mut holds = Vec::new();
        let mut hold_names = HashSet::new();
        for raw_hold in raw.hold {
            let name = raw_hold.get_ref().name.clone();
            if !hold_names.insert(name.get_ref().clone()) {
                self.err(
                    &name,
                    format!("hold \"{}\" → name", name.get_ref()),
                    "duplicate hold name: every [[hold]] needs a name of its own",
                );
            }
            if let Some(h) = self.hold(raw_hold, &databases, tz) {
                holds.push(h);
            }
        }
        let subjects = self.subjects(raw.subject, &databases);
        let report = self.report(raw.report);
        match (daemon, report, self.problems.is_empty()) {
            (Some(daemon), Some(report), true) => Ok(Config {
                path: self.lines.file().to_owned(),
                daemon,
                databases,
                rules,
                holds,
                subjects,
                report,
                replicas,
                read_urls,
            }),
            _ => Err(ConfigError {
                problems: self.problems,
            }),
        }
    }

    fn daemon(&mut self, raw: Option<Spanned<RawDaemon>>) -> Option<Daemon> {
        let raw = raw.map(Spanned::into_inner).unwrap_or(RawDaemon {
            state_dir: None,
            state_url: None,
            schedule: None,
            timezone: None,
            report_language: None,
            metrics_listen: None,
            parallel: None,
        });
        let state_dir = match raw.state_dir {
            Some(s) if s.get_ref().trim().is_empty() => {
                self.err(
                    &s,
                    "daemon.state_dir",
                    "is empty; give a directory, e.g. \"/var/lib/retentiond\"",
                );
                None
            }
            Some(s) => Some(PathBuf::from(s.into_inner())),
            None => Some(PathBuf::from("/var/lib/retentiond")),
        };
        let state_url = match &raw.state_url {
            None => Some(None),
            Some(at) => match state_url_problem(at.get_ref()) {
                None => Some(Some(at.get_ref().clone())),
                Some(why) => {
                    self.err(at, "daemon.state_url", why);
                    None
                }
            },
        };
        let schedule_text = raw
            .schedule
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "0 30 2 * * *".to_owned());
        let schedule = match &raw.schedule {
            Some(at) => self.cron(at, "daemon.schedule"),
            None => cron::Schedule::from_str(&schedule_text).ok(),
        };
        let timezone = match &raw.timezone {
            None => Some(chrono_tz::UTC),
            Some(tz) => match tz.get_ref().parse::<chrono_tz::Tz>() {
                Ok(t) => Some(t),
                Err(_) => {
                    self.err(
                        tz,
                        "daemon.timezone",
                        format!(
                            "'{}' is not an IANA timezone; write e.g. \"Europe/Brussels\" or \"UTC\"",
                            tz.get_ref()
                        ),
                    );
                    None
                }
            },
        };
        let language = match raw
            .report_language
            .as_ref()
            .map(|l| (l, l.get_ref().as_str()))
        {
            None | Some((_, "en")) => Some(Language::En),
            Some((_, "nl")) => Some(Language::Nl),
            Some((at, other)) => {
                let msg = format!("'{other}' is not a report language; write \"en\" or \"nl\"");
                self.err(at, "daemon.report_language", msg);
                None
            }
        };
        let metrics_listen = match &raw.metrics_listen {
            None => Some(None),
            Some(at) => match at.get_ref().parse::<std::net::SocketAddr>() {
                Ok(a) => Some(Some(a)),
                Err(_) => {
                    let msg = format!(
                        "'{}' is not an address:port; write e.g. \"127.0.0.1:9464\"",
                        at.get_ref()
                    );
                    self.err(at, "daemon.metrics_listen", msg);
                    None
                }
            },
        };
        let parallel = match &raw.parallel {
            None => Some(DEFAULT_PARALLEL),
            Some(at) => match at.get_ref().as_integer().map(usize::try_from) {
                Some(Ok(n)) if (1..=MAX_PARALLEL).contains(&n) => Some(n),
                _ => {
                    let msg = format!(
                        "{} is not a number of databases to work on at once: write a whole number from 1 (one after the other) to {MAX_PARALLEL}",
                        at.get_ref()
                    );
                    self.err(at, "daemon.parallel", msg);
                    None
                }
            },
        };
        Some(Daemon {
            metrics_listen: metrics_listen?,
            parallel: parallel?,
            state_dir: state_dir?,
            state_url: state_url?,
            schedule: schedule?,
            schedule_text,
            timezone: timezone?,
            language: language?,
        })
    }

    fn database(
        &mut self,
        name: &Spanned<String>,
        raw: Spanned<RawDatabase>,
    ) -> Option<(DatabaseSpec, Option<ReplicaPolicy>, Option<String>)> {
        let line = self.lines.line_of(raw.span().start);
        let raw = raw.into_inner();
        let n = name.get_ref();
        let key = |k: &str| format!("databases.{n}.{k}");
        if !is_plain_name(n) {
            self.err(
                name,
                format!("databases.{n}"),
                "database names use letters, digits, '-' and '_' only",
            );
        }
        let url = raw.url.get_ref().clone();
        let dialect = match url.split_once("://").map(|(s, _)| s) {
            Some("postgres" | "postgresql") => Some(Dialect::Postgres),
            Some("mysql" | "mariadb") => Some(Dialect::MySql),
            Some("sqlite") if url.len() > "sqlite://".len() => Some(Dialect::Sqlite),
            _ => {
                self.err(
                    &raw.url,
                    key("url"),
                    format!(
                        "'{}' is not a database URL retentiond knows; use postgres://…, \
                         mysql://… (also for MariaDB) or sqlite:///path/to/file.db",
                        mask_url(&url)
                    ),
                );
                None
            }
        };
        let mut timeouts = Timeouts::default();
        for (value, slot, k) in [
            (
                &raw.connect_timeout,
                &mut timeouts.connect,
                "connect_timeout",
            ),
            (&raw.lock_timeout, &mut timeouts.lock, "lock_timeout"),
            (
                &raw.statement_timeout,
                &mut timeouts.statement,
                "statement_timeout",
            ),
        ] {
            if let Some(v) = value {
                match parse_pause(v.get_ref()) {
                    Ok(d) if !d.is_zero() => *slot = d,
                    Ok(_) => self.err(
                        v,
                        key(k),
                        "must be longer than 0; an unbounded wait is what this setting prevents",
                    ),
                    Err(m) => self.err(v, key(k), m),
                }
            }
        }
        let secret = match (raw.password_file, raw.password_env) {
            (Some(f), Some(_)) => {
                self.err(
                    &f,
                    key("password_file"),
                    "give either password_file or password_env, not both",
                );
                None
            }
            (Some(f), None) => Some(Secret::File(PathBuf::from(f.into_inner()))),
            (None, Some(e)) => Some(Secret::Env(e.into_inner())),
            (None, None) => Some(Secret::None),
        };
        let replica_keys = ReplicaKeys {
            max_lag: raw.max_replica_lag,
            max_wait: raw.max_replica_wait,
            replicas: raw.replicas,
            ignore_walsenders: raw.ignore_walsenders,
        };
        let policy = match dialect {
            Some(d) => self.replica_policy(n, d, replica_keys),
            None => Some(None),
        };
        // A bad read_url is reported, but the database stays defined: its rules would
        // otherwise each add an "unknown database" that hides the one real mistake.
        let read_url = match (dialect, &raw.read_url) {
            (Some(d), Some(at)) => self.read_url(n, d, at),
            (None, _) | (_, None) => None,
        };
        let spec = DatabaseSpec {
            name: n.clone(),
            dialect: dialect?,
            url: if dialect == Some(Dialect::MySql) && url.starts_with("mariadb://") {
                url.replacen("mariadb://", "mysql://", 1)
            } else {
                url
            },
            secret: secret?,
            timeouts,
            line,
        };
        Some((spec, policy?, read_url))
    }

    /// `read_url` of database `n`: the URL (`mariadb://` read as `mysql://`), or `None`
    /// after a problem (reported at its line). A replica of the database's own kind only:
    /// SQLite has none, and a URL of another kind could not run the same counting SQL.
    fn read_url(&mut self, n: &str, dialect: Dialect, at: &Spanned<String>) -> Option<String> {
        let key = format!("databases.{n}.read_url");
        if dialect == Dialect::Sqlite {
            self.err(at, key, "SQLite has no replicas to count on: remove read_url from this database (plan and check count on the file itself)");
            return None;
        }
        match replica_url(at.get_ref(), dialect) {
            Ok(url) => Some(url),
            Err(m) => {
                self.err(at, key, m);
                None
            }
        }
    }

    /// `max_replica_lag`, `max_replica_wait` and `replicas` of database `n`: `Some(None)`
    /// when it has none, `None` after a problem (reported with its line).
    ///
    /// The rules: SQLite has no replicas, so none of the keys is allowed there; `replicas` and
    /// `max_replica_wait` mean nothing without `max_replica_lag`; a MariaDB/MySQL primary
    /// cannot tell how far its replicas are behind, so there `max_replica_lag` needs
    /// `replicas` (a PostgreSQL primary reads `pg_stat_replication`, and `replicas` only
    /// adds standbys to ask directly). Each replica URL must be of the database's kind.
    fn replica_policy(
        &mut self,
        n: &str,
        dialect: Dialect,
        raw: ReplicaKeys,
    ) -> Option<Option<ReplicaPolicy>> {
        let key = |k: &str| format!("databases.{n}.{k}");
        if dialect == Dialect::Sqlite {
            let sqlite = "SQLite has no replicas: remove max_replica_lag, max_replica_wait and replicas from this database";
            if let Some(at) = &raw.max_lag {
                self.err(at, key("max_replica_lag"), sqlite);
            } else if let Some(at) = &raw.replicas {
                self.err(at, key("replicas"), sqlite);
            } else if let Some(at) = &raw.max_wait {
                self.err(at, key("max_replica_wait"), sqlite);
            } else if let Some(at) = &raw.ignore_walsenders {
                self.err(at, key("ignore_walsenders"), sqlite);
            } else {
                return Some(None);
            }
            return None;
        }
        let Some(lag_at) = raw.max_lag else {
            if let Some(r) = &raw.replicas {
                self.err(r, key("replicas"), "replicas are only asked when max_replica_lag is set: add max_replica_lag = \"10 s\" (how far behind a replica may be before batches wait)");
                return None;
            }
            if let Some(w) = &raw.max_wait {
                self.err(w, key("max_replica_wait"), "max_replica_wait bounds the wait for lagging replicas: it needs max_replica_lag too");
                return None;
            }
            if let Some(w) = &raw.ignore_walsenders {
                self.err(w, key("ignore_walsenders"), "ignore_walsenders tells which walsenders are not standbys when replicas are watched: it needs max_replica_lag too");
                return None;
            }
            return Some(None);
        };
        let duration =
            |this: &mut Self, at: &Spanned<String>, k: &str| match parse_pause(at.get_ref()) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    this.err(at, key(k), "must be longer than 0: write e.g. \"10 s\"");
                    None
                }
                Err(m) => {
                    this.err(at, key(k), format!("{m} (at most an hour)"));
                    None
                }
            };
        let max_lag = duration(self, &lag_at, "max_replica_lag");
        let max_wait = match &raw.max_wait {
            None => Some(DEFAULT_MAX_REPLICA_WAIT),
            Some(w) => duration(self, w, "max_replica_wait"),
        };
        let mut urls = Vec::new();
        let mut ok = true;
        for u in raw.replicas.iter().flat_map(|r| r.get_ref()) {
            match replica_url(u.get_ref(), dialect) {
                Ok(url) => urls.push(url),
                Err(m) => {
                    self.err(u, key("replicas"), m);
                    ok = false;
                }
            }
        }
        let mut ignore = Vec::new();
        if let Some(list) = &raw.ignore_walsenders {
            if dialect != Dialect::Postgres {
                self.err(list, key("ignore_walsenders"), "walsenders are PostgreSQL's: a MariaDB/MySQL primary's replicas are the ones listed in replicas");
                ok = false;
            }
            for name in list.get_ref() {
                let n = name.get_ref();
                // PostgreSQL keeps the first 63 bytes of an application_name.
                if n.trim().is_empty() || n.len() > 63 || n.chars().any(char::is_control) {
                    self.err(name, key("ignore_walsenders"), "each entry is a walsender's application_name as pg_stat_replication shows it: 1 to 63 bytes, no control characters");
                    ok = false;
                } else {
                    ignore.push(n.clone());
                }
            }
        }
        if !ok {
            return None;
        }
        if dialect == Dialect::MySql && urls.is_empty() {
            let msg = "a MariaDB/MySQL primary cannot tell how far its replicas are behind: list them, as replicas = [\"mysql://user@replica-host:3306/db\"]";
            match &raw.replicas {
                Some(r) => self.err(r, key("replicas"), msg),
                None => self.err(&lag_at, key("max_replica_lag"), msg),
            }
            return None;
        }
        Some(Some(ReplicaPolicy {
            max_lag: max_lag?,
            max_wait: max_wait?,
            replicas: urls,
            ignore_walsenders: ignore,
        }))
    }

    fn report(&mut self, raw: Option<Spanned<RawReport>>) -> Option<ReportSettings> {
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return Some(ReportSettings {
                keep_days: DEFAULT_REPORT_KEEP_DAYS,
                email: None,
            });
        };
        let keep_days = match &raw.keep_days {
            None => Some(DEFAULT_REPORT_KEEP_DAYS),
            Some(k) => match u32::try_from(*k.get_ref()) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    self.err(
                        k,
                        "report.keep_days",
                        "must be a whole number of days, at least 1",
                    );
                    None
                }
            },
        };
        let email = match raw.email {
            None => Some(None),
            Some(e) => self.email(e.into_inner()).map(Some),
        };
        Some(ReportSettings {
            keep_days: keep_days?,
            email: email?,
        })
    }

    fn email(&mut self, e: RawEmail) -> Option<EmailSettings> {
        let url = e.smtp_url.get_ref();
        let scheme_ok = url.starts_with("smtp://") || url.starts_with("smtps://");
        if !scheme_ok {
            self.err(&e.smtp_url, "report.email.smtp_url", format!(
                "'{}' is not an SMTP URL; write smtp://host:587?tls=required (STARTTLS), smtps://host:465 (TLS) or smtp://localhost:25 (a local relay)",
                mask_url(url)
            ));
        }
        let mut ok = scheme_ok;
        let check = |v: &mut Self, addr: &Spanned<String>, key: &str| {
            if addr.get_ref().parse::<lettre::message::Mailbox>().is_err() {
                v.err(addr, key, format!("'{}' is not a mail address; write \"name@example.org\" or \"Name <name@example.org>\"", addr.get_ref()));
                false
            } else {
                true
            }
        };
        ok &= check(self, &e.from, "report.email.from");
        for to in e.to.get_ref() {
            ok &= check(self, to, "report.email.to");
        }
        if e.to.get_ref().is_empty() {
            self.err(&e.to, "report.email.to", "lists no recipient");
            ok = false;
        }
        ok.then(|| EmailSettings {
            smtp_url: e.smtp_url.into_inner(),
            from: e.from.into_inner(),
            to: e
                .to
                .into_inner()
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            password_file: e.password_file.map(|p| PathBuf::from(p.into_inner())),
        })
    }

    fn hold(
        &mut self,
        raw: Spanned<RawHold>,
        dbs: &BTreeMap<String, DatabaseSpec>,
        tz: chrono_tz::Tz,
    ) -> Option<Hold> {
        let line = self.lines.line_of(raw.span().start);
        let h = raw.into_inner();
        let hn = h.name.get_ref().clone();
        let key = |k: &str| format!("hold \"{hn}\" → {k}");
        if !is_plain_name(&hn) {
            self.err(
                &h.name,
                key("name"),
                "hold names use letters, digits, '-', '_' and '.' only",
            );
        }
        if h.reason.get_ref().trim().is_empty() {
            self.err(
                &h.reason,
                key("reason"),
                "is empty; say why the records are held (a case number, a dispute)",
            );
        }
        if !dbs.contains_key(h.database.get_ref()) {
            self.err(
                &h.database,
                key("database"),
                format!("unknown database '{}'", h.database.get_ref()),
            );
        }
        let table = TableName::parse(h.table.get_ref())
            .map_err(|m| self.err(&h.table, key("table"), m))
            .ok();
        // Parsed in the dialect of the hold's database; an unknown database was reported
        // above, and then there is no grammar to read the filter with.
        let filter = dbs.get(h.database.get_ref()).and_then(|db| {
            Filter::parse(h.filter.get_ref(), db.dialect)
                .map_err(|m| self.err(&h.filter, key("filter"), m))
                .ok()
        });
        let until = match &h.until {
            None => Some(None),
            Some(u) => match Moment::parse(u.get_ref(), tz).map(|m| m.at) {
                Ok(t) => Some(Some(t)),
                Err(m) => {
                    self.err(u, key("until"), m);
                    None
                }
            },
        };
        Some(Hold {
            name: hn.clone(),
            reason: h.reason.into_inner(),
            database: h.database.into_inner(),
            table: table?,
            filter: filter?,
            until: until?,
            line,
        })
    }

    fn keep_while(
        &mut self,
        list: Option<Vec<Spanned<RawKeepWhile>>>,
        key: &dyn Fn(&str) -> String,
    ) -> Option<Vec<KeepWhile>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, k) in list.unwrap_or_default().into_iter().enumerate() {
            let k = k.into_inner();
            let at = |f: &str| key(&format!("keep_while[{i}].{f}"));
            let table = TableName::parse(k.table.get_ref())
                .map_err(|m| self.err(&k.table, at("table"), m))
                .ok();
            let fk = self.ident(&k.foreign_key, &at("foreign_key"));
            let since = self.ident(&k.since, &at("since"));
            let after = Period::parse(k.after.get_ref())
                .map_err(|m| self.err(&k.after, at("after"), m))
                .ok();
            match (table, fk, since, after) {
                (Some(table), Some(foreign_key), Some(since), Some(after)) => out.push(KeepWhile {
                    table,
                    foreign_key,
                    since,
                    after,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `children` (and theirs, to any depth): tables, foreign keys and keys as identifiers.
    fn children(
        &mut self,
        list: Option<Vec<Spanned<raw::RawChild>>>,
        prefix: &str,
        key: &dyn Fn(&str) -> String,
        depth: usize,
    ) -> Option<Vec<Child>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, c) in list.unwrap_or_default().into_iter().enumerate() {
            let span = c.span();
            let c = c.into_inner();
            let path = format!("{prefix}children[{i}]");
            let at = |f: &str| key(&format!("{path}.{f}"));
            if depth >= MAX_CHILD_DEPTH {
                let line = self.lines.line_of(span.start);
                self.err_at_line(
                    line,
                    key(&path),
                    format!("children nest at most {MAX_CHILD_DEPTH} levels deep"),
                );
                ok = false;
                continue;
            }
            let table = TableName::parse(c.table.get_ref())
                .map_err(|m| self.err(&c.table, at("table"), m))
                .ok();
            let fk = self.ident(&c.foreign_key, &at("foreign_key"));
            let k = self.ident(&c.key, &at("key"));
            let grand = self.children(c.children, &format!("{path}."), key, depth + 1);
            match (table, fk, k, grand) {
                (Some(table), Some(foreign_key), Some(key), Some(children)) => out.push(Child {
                    table,
                    foreign_key,
                    key,
                    children,
                    path,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn cron(&mut self, at: &Spanned<String>, key: &str) -> Option<cron::Schedule> {
        cron::Schedule::from_str(at.get_ref())
            .map_err(|e| {
                let msg = format!(
                    "'{}' is not a valid cron schedule ({e}); it has seconds first: \
                     \"sec min hour day-of-month month day-of-week\", e.g. \"0 30 2 * * *\" \
                     for 02:30 every night",
                    at.get_ref()
                );
                self.err(at, key, msg)
            })
            .ok()
    }

    fn ident(&mut self, s: &Spanned<String>, key: &str) -> Option<Ident> {
        Ident::parse(s.get_ref())
            .map_err(|m| self.err(s, key, m))
            .ok()
    }

    fn rule(
        &mut self,
        raw: Spanned<RawRule>,
        dbs: &BTreeMap<String, DatabaseSpec>,
    ) -> Option<Rule> {
        let line = self.lines.line_of(raw.span().start);
        let mut r = raw.into_inner();
        let rn = r.name.get_ref().clone();
        let key = |k: &str| format!("rule \"{rn}\" → {k}");
        if !is_plain_name(&rn) {
            self.err(&r.name, key("name"), "rule names use letters, digits, '-', '_' and '.' only (they appear in commands and reports)");
        }
        self.known_database(&r.database, dbs, key("database"));
        let table = TableName::parse(r.table.get_ref())
            .map_err(|m| self.err(&r.table, key("table"), m))
            .ok();
        let key_col = self.ident(&r.key, &key("key"));
        let mut key_lines = self.key_lines(&r);
        let register = register::validate(
            RawRegister::take_rule(&mut r),
            self.lines,
            &key,
            &mut key_lines,
        )
        .map_err(|p| self.problems.extend(p))
        .ok();
        let expires = r.expires.into_inner();
        let since = self.ident(&expires.since, &key("expires.since"));
        let after = match &expires.after {
            None => Some(Period::Days(0)),
            Some(a) => Period::parse(a.get_ref())
                .map_err(|m| self.err(a, key("expires.after"), m))
                .ok(),
        };
        // Parsed in the dialect of the rule's database; an unknown database was reported
        // above, and then there is no grammar to read the filter with.
        let filter = match (&r.filter, dbs.get(r.database.get_ref())) {
            (None, _) => Some(None),
            (Some(_), None) => None,
            (Some(f), Some(db)) => Filter::parse(f.get_ref(), db.dialect)
                .map(Some)
                .map_err(|m| self.err(f, key("filter"), m))
                .ok(),
        };
        let action = self.action(&r.action, r.anonymize, r.flag, &key);
        if let (Some(Action::Anonymize(cols)), Some(k)) = (&action, &key_col) {
            if cols.iter().any(|(c, _)| c == k) {
                self.err(&r.action, key("anonymize"), "the key column cannot be anonymized: the audit trail needs it to name the record");
            }
        }
        let batch_time_at = r.batch_time.as_ref().map(|t| t.span().start);
        let batch_sizing = self.batch_sizing(r.batch_size, r.batch_time, &key);
        if let (Some(BatchSizing::Timed(d)), Some(at), Some(db)) =
            (&batch_sizing, batch_time_at, dbs.get(r.database.get_ref()))
        {
            // A batch that may take its whole statement_timeout is cancelled by it,
            // retried, cancelled again: the sizer learns nothing from a batch that never
            // commits.
            if *d >= db.timeouts.statement {
                let line = self.lines.line_of(at);
                self.err_at_line(line, key("batch_time"), format!(
                    "must be shorter than the statement_timeout of database \"{}\" ({} ms), or its batches are cancelled before they commit",
                    db.name,
                    db.timeouts.statement.as_millis()
                ));
            }
        }
        let batch_pause = match r.batch_pause {
            None => Some(std::time::Duration::ZERO),
            Some(p) => parse_pause(p.get_ref())
                .map_err(|m| self.err(&p, key("batch_pause"), m))
                .ok(),
        };
        let batch_pause_factor = match &r.batch_pause_factor {
            None => Some(0.0),
            Some(f) => {
                let v = number(f.get_ref());
                match v {
                    Some(x) if (0.0..=MAX_BATCH_PAUSE_FACTOR).contains(&x) => Some(x),
                    _ => {
                        self.err(
                            f,
                            key("batch_pause_factor"),
                            format!("must be a number from 0 to {MAX_BATCH_PAUSE_FACTOR}: the pause after each batch, in multiples of the time the batch held its locks (1 = the database works at most half the time on this rule)"),
                        );
                        None
                    }
                }
            }
        };
        let keep_while = self.keep_while(r.keep_while, &key);
        let children_at = r
            .children
            .as_ref()
            .and_then(|c| c.first().map(|c| c.span()));
        let children = self.children(r.children, "", &key, 0);
        if let (Some(span), Some(a)) = (children_at, &action) {
            if matches!(a, Action::Flag { .. }) {
                let line = self.lines.line_of(span.start);
                self.err_at_line(
                    line,
                    key("children"),
                    "children are deleted or anonymized with their parent; a flag rule leaves its records, so it has no children to act on: remove `children`",
                );
            }
        }
        let max_records = match &r.max_records {
            None => Some(None),
            Some(m) => match u64::try_from(*m.get_ref()) {
                Ok(n) if n > 0 => Some(Some(n)),
                _ => {
                    self.err(m, key("max_records"), "must be a whole number above 0");
                    None
                }
            },
        };
        let max_fraction = match &r.max_fraction {
            None => Some(DEFAULT_MAX_FRACTION),
            Some(f) => {
                let v = number(f.get_ref());
                match v {
                    Some(x) if x > 0.0 && x <= 1.0 => Some(x),
                    _ => {
                        self.err(
                            f,
                            key("max_fraction"),
                            "must be a number above 0 and at most 1 (0.5 = half the table)",
                        );
                        None
                    }
                }
            }
        };
        let mode = match r.mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None | Some((_, "enforce")) => Some(Mode::Enforce),
            Some((_, "report")) => Some(Mode::Report),
            Some((m, other)) => {
                self.err(
                    m,
                    key("mode"),
                    format!("'{other}' is not a mode; write \"enforce\" or \"report\""),
                );
                None
            }
        };
        let schedule = match &r.schedule {
            None => Some(None),
            Some(at) => self
                .cron(at, &key("schedule"))
                .map(|s| Some((s, at.get_ref().clone()))),
        };
        Some(Rule {
            keep_while: keep_while?,
            children: children?,
            max_records: max_records?,
            max_fraction: max_fraction?,
            mode: mode?,
            locked: r.locked.map(Spanned::into_inner).unwrap_or(false),
            schedule: schedule?,
            name: rn.clone(),
            description: r.description.map(Spanned::into_inner),
            legal_basis: r.legal_basis.map(Spanned::into_inner).unwrap_or_default(),
            database: r.database.into_inner(),
            table: table?,
            key: key_col?,
            filter: filter?,
            since: since?,
            after: after?,
            action: action?,
            batch_sizing: batch_sizing?,
            batch_pause: batch_pause?,
            batch_pause_factor: batch_pause_factor?,
            register: register?,
            line,
            key_lines,
        })
    }

    /// `batch_size` (fixed) or `batch_time` (timed, the default): at most one of them.
    fn batch_sizing(
        &mut self,
        size: Option<Spanned<i64>>,
        time: Option<Spanned<toml::Value>>,
        key: &dyn Fn(&str) -> String,
    ) -> Option<BatchSizing> {
        let fixed = size.map(|b| match u32::try_from(*b.get_ref()) {
            Ok(n) if (1..=MAX_BATCH_SIZE).contains(&n) => Some(n),
            _ => {
                self.err(
                    &b,
                    key("batch_size"),
                    format!("must be between 1 and {MAX_BATCH_SIZE}"),
                );
                None
            }
        });
        let timed = time.as_ref().map(|t| {
            let Some(text) = t.get_ref().as_str() else {
                self.err(
                    t,
                    key("batch_time"),
                    format!("{} is not a duration: write it as text with its unit, e.g. batch_time = \"100 ms\"", t.get_ref()),
                );
                return None;
            };
            let d = parse_pause(text)
                .map_err(|m| self.err(t, key("batch_time"), m.replace("a pause", "a duration")))
                .ok()?;
            if !(MIN_BATCH_TIME..=MAX_BATCH_TIME).contains(&d) {
                self.err(
                    t,
                    key("batch_time"),
                    format!(
                        "'{text}' is outside {} ms to {} s: write how long one batch may hold its locks, e.g. \"100 ms\"",
                        MIN_BATCH_TIME.as_millis(),
                        MAX_BATCH_TIME.as_secs()
                    ),
                );
                return None;
            }
            Some(d)
        });
        match (fixed, timed, &time) {
            (Some(_), Some(_), Some(t)) => {
                self.err(
                    t,
                    key("batch_time"),
                    "batch_size fixes every batch's size, batch_time sizes them by time: keep one of the two",
                );
                None
            }
            (Some(n), _, _) => n.map(BatchSizing::Fixed),
            (None, Some(d), _) => d.map(BatchSizing::Timed),
            (None, None, _) => Some(BatchSizing::Timed(DEFAULT_BATCH_TIME)),
        }
    }

    /// The line of each key of a rule that a database check may find wrong (its table, a
    /// column, the filter…), so that such a problem points at the key, not the rule.
    fn key_lines(&self, r: &RawRule) -> BTreeMap<String, usize> {
        let at = |span: std::ops::Range<usize>| self.lines.line_of(span.start);
        let mut out = BTreeMap::new();
        out.insert("table".to_owned(), at(r.table.span()));
        out.insert("database".to_owned(), at(r.database.span()));
        if let Some(l) = &r.locked {
            out.insert("locked".to_owned(), at(l.span()));
        }
        out.insert("key".to_owned(), at(r.key.span()));
        out.insert("expires".to_owned(), at(r.expires.span()));
        out.insert(
            "expires.since".to_owned(),
            at(r.expires.get_ref().since.span()),
        );
        if let Some(a) = &r.expires.get_ref().after {
            out.insert("expires.after".to_owned(), at(a.span()));
        }
        out.insert("action".to_owned(), at(r.action.span()));
        if let Some(f) = &r.filter {
            out.insert("filter".to_owned(), at(f.span()));
        }
        if let Some(f) = &r.flag {
            out.insert("flag".to_owned(), at(f.span()));
        }
        if let Some(a) = &r.anonymize {
            out.insert("anonymize".to_owned(), at(a.span()));
            for col in a.get_ref().keys() {
                out.insert(format!("anonymize.{}", col.get_ref()), at(col.span()));
            }
        }
        for (i, k) in r.keep_while.iter().flatten().enumerate() {
            out.insert(format!("keep_while[{i}]"), at(k.span()));
        }
        fn children(
            out: &mut BTreeMap<String, usize>,
            list: Option<&Vec<Spanned<raw::RawChild>>>,
            prefix: &str,
            at: &dyn Fn(std::ops::Range<usize>) -> usize,
        ) {
            for (i, c) in list.into_iter().flatten().enumerate() {
                let path = format!("{prefix}children[{i}]");
                out.insert(path.clone(), at(c.span()));
                out.insert(format!("{path}.table"), at(c.get_ref().table.span()));
                out.insert(
                    format!("{path}.foreign_key"),
                    at(c.get_ref().foreign_key.span()),
                );
                out.insert(format!("{path}.key"), at(c.get_ref().key.span()));
                children(out, c.get_ref().children.as_ref(), &format!("{path}."), at);
            }
        }
        if let Some(c) = &r.children {
            if let Some(first) = c.first() {
                out.insert("children".to_owned(), at(first.span()));
            }
        }
        children(&mut out, r.children.as_ref(), "", &at);
        out
    }

    fn action(
        &mut self,
        verb: &Spanned<String>,
        anonymize: Option<Spanned<RawAnonymize>>,
        flag: Option<Spanned<raw::RawFlag>>,
        key: &dyn Fn(&str) -> String,
    ) -> Option<Action> {
        match (verb.get_ref().as_str(), &anonymize, &flag) {
            ("delete", None, None) => Some(Action::Delete),
            ("anonymize", Some(_), None) => self
                .anonymize_columns(anonymize?, key)
                .map(Action::Anonymize),
            ("flag", None, Some(_)) => {
                let f = flag?.into_inner();
                let column = self.ident(&f.column, &key("flag.column"));
                let value = match f.value.get_ref() {
                    toml::Value::String(s) => Some(FlagValue::Text(s.clone())),
                    toml::Value::Integer(i) => Some(FlagValue::Int(*i)),
                    toml::Value::Boolean(b) => Some(FlagValue::Int(i64::from(*b))),
                    _ => {
                        self.err(
                            &f.value,
                            key("flag.value"),
                            "must be a text, an integer or a boolean",
                        );
                        None
                    }
                };
                Some(Action::Flag {
                    column: column?,
                    value: value?,
                })
            }
            ("anonymize", None, _) => {
                self.err(verb, key("anonymize"), "action \"anonymize\" needs an anonymize table, e.g. anonymize = { email = \"null\" }");
                None
            }
            ("flag", _, None) => {
                self.err(
                    verb,
                    key("flag"),
                    "action \"flag\" needs flag = { column = \"…\", value = \"…\" }",
                );
                None
            }
            ("delete" | "anonymize" | "flag", _, _) => {
                self.err(
                    verb,
                    key("action"),
                    format!(
                        "action \"{}\" cannot be combined with {}: remove the table that does not belong to this action",
                        verb.get_ref(),
                        if anonymize.is_some() { "anonymize" } else { "flag" }
                    ),
                );
                None
            }
            (other, _, _) => {
                self.err(
                    verb,
                    key("action"),
                    format!(
                        "'{other}' is not an action; write \"delete\", \"anonymize\" or \"flag\""
                    ),
                );
                None
            }
        }
    }
}

/// The `anonymize` table (rules and subjects share it) and `[[subject]]`.
impl Validator<'_> {
    /// The columns of an `anonymize` table and their strategies, for a rule's
    /// `action = "anonymize"` and a subject's `erase = "anonymize"` alike, so that both
    /// accept and refuse exactly the same: each column an identifier, each strategy
    /// `"null"`, `"hash"` or `{ replace = "…" }`. `None` if the table is empty or any entry
    /// is wrong (each one reported).
    fn anonymize_columns(
        &mut self,
        cols: Spanned<RawAnonymize>,
        key: &dyn Fn(&str) -> String,
    ) -> Option<Vec<(Ident, Strategy)>> {
        if cols.get_ref().is_empty() {
            self.err(
                &cols,
                key("anonymize"),
                "names no column; list the columns to anonymize, e.g. { email = \"null\" }",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (col, strategy) in cols.into_inner() {
            let at = key(&format!("anonymize.{}", col.get_ref()));
            let ident = self.ident(&col, &at);
            let strategy = match strategy.get_ref() {
                RawStrategy::Word(w) if w == "null" => Some(Strategy::Null),
                RawStrategy::Word(w) if w == "hash" => Some(Strategy::Hash),
                RawStrategy::Replace(r) => Some(Strategy::Replace(r.replace.clone())),
                RawStrategy::Word(w) => {
                    self.err(
                        &strategy,
                        at,
                        format!("'{w}' is not a strategy; write \"null\", \"hash\" or {{ replace = \"text\" }}"),
                    );
                    None
                }
            };
            match (ident, strategy) {
                (Some(i), Some(s)) => out.push((i, s)),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Every `[[subject]]`: each one on its own (see [`Validator::subject`]), and what their
    /// names and `via` links say together (see [`Validator::via_links`]).
    fn subjects(
        &mut self,
        raws: Vec<Spanned<RawSubject>>,
        dbs: &BTreeMap<String, DatabaseSpec>,
    ) -> Vec<Subject> {
        let mut seen = HashSet::new();
        for raw in &raws {
            let name = &raw.get_ref().name;
            if !seen.insert(name.get_ref().as_str()) {
                self.err(
                    name,
                    format!("subject \"{}\" → name", name.get_ref()),
                    "duplicate subject name: every [[subject]] needs a name of its own (a \
                     request reports where it found a person by subject name, and via = \
                     { subject = … } names one)",
                );
            }
        }
        self.via_links(&raws);
        raws.into_iter()
            .filter_map(|raw| self.subject(raw, dbs))
            .collect()
    }

    /// What the `via` links of all subjects say together, read from the file as written (so
    /// that a subject with a mistake of its own still counts as existing, and a link to it
    /// is not reported a second time): each `via` names another subject of the same
    /// database, and following the links always ends at a subject found by `identify`,
    /// never going round in a circle. A circle is reported once, at the `via` of its
    /// subject that comes first in the file.
    fn via_links(&mut self, raws: &[Spanned<RawSubject>]) {
        // The first subject of each name; a second one is reported as a duplicate.
        let mut by_name: BTreeMap<&str, &RawSubject> = BTreeMap::new();
        for raw in raws {
            by_name
                .entry(raw.get_ref().name.get_ref().as_str())
                .or_insert(raw.get_ref());
        }
        let names = by_name.keys().copied().collect::<Vec<_>>().join(", ");
        for raw in raws {
            let s = raw.get_ref();
            let Some(via) = &s.via else { continue };
            let target = &via.get_ref().subject;
            let key = format!("subject \"{}\" → via.subject", s.name.get_ref());
            if !by_name.contains_key(target.get_ref().as_str()) {
                self.err(
                    target,
                    key,
                    format!(
                        "no [[subject]] is named '{}'; name one of: {names} (the subject whose \
                         key this table's foreign_key holds), or find the person here with \
                         identify = {{ … }} instead",
                        target.get_ref()
                    ),
                );
            }
        }
        let mut in_reported_circle: HashSet<&str> = HashSet::new();
        for raw in raws {
            let start = raw.get_ref();
            let Some(start_via) = &start.via else {
                continue;
            };
            let mut path = vec![start.name.get_ref().as_str()];
            let mut at = start;
            while let Some(via) = &at.via {
                let next = via.get_ref().subject.get_ref().as_str();
                if let Some(i) = path.iter().position(|p| *p == next) {
                    // Only a circle through `start` is reported from here; one that `start`
                    // merely leads into is reported from its own first subject.
                    if i == 0 && !path.iter().any(|p| in_reported_circle.contains(p)) {
                        in_reported_circle.extend(path.iter().copied());
                        let circle = format!("{} → {next}", path.join(" → "));
                        self.err(
                            &start_via.get_ref().subject,
                            format!("subject \"{}\" → via.subject", path[0]),
                            format!(
                                "the subjects are reached through each other in a circle \
                                 ({circle}), so none of them leads to the person: give one \
                                 of them identify = {{ … }} instead of via"
                            ),
                        );
                    }
                    break;
                }
                let Some(n) = by_name.get(next) else { break };
                path.push(next);
                at = n;
            }
        }
    }

    /// One `[[subject]]` on its own: its names, its table and key, how the person is found
    /// there, and what an erasure does there.
    fn subject(
        &mut self,
        raw: Spanned<RawSubject>,
        dbs: &BTreeMap<String, DatabaseSpec>,
    ) -> Option<Subject> {
        let line = self.lines.line_of(raw.span().start);
        let mut s = raw.into_inner();
        let sn = s.name.get_ref().clone();
        let key = |k: &str| format!("subject \"{sn}\" → {k}");
        if !is_plain_name(&sn) {
            self.err(
                &s.name,
                key("name"),
                "subject names use letters, digits, '-', '_' and '.' only (they appear in \
                 requests' answers and in via = { subject = … })",
            );
        }
        self.known_database(&s.database, dbs, key("database"));
        let table = TableName::parse(s.table.get_ref())
            .map_err(|m| self.err(&s.table, key("table"), m))
            .ok();
        let key_col = self.ident(&s.key, &key("key"));
        let mut key_lines = self.subject_key_lines(&s);
        let register = register::validate(
            RawRegister::take_subject(&mut s),
            self.lines,
            &key,
            &mut key_lines,
        )
        .map_err(|p| self.problems.extend(p))
        .ok();
        let find = self.find(s.identify, s.via, line, &key);
        let erase = self.erase(&s.erase, s.anonymize, s.keep_reason, key_col.as_ref(), &key);
        Some(Subject {
            name: sn.clone(),
            database: s.database.into_inner(),
            table: table?,
            key: key_col?,
            find: find?,
            erase: erase?,
            register: register?,
            line,
            key_lines,
        })
    }

    /// `identify` or `via`: exactly one of them. Whether `via` names a subject that exists
    /// is for [`Validator::via_links`], which sees them all.
    fn find(
        &mut self,
        identify: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
        via: Option<Spanned<RawVia>>,
        line: usize,
        key: &dyn Fn(&str) -> String,
    ) -> Option<Find> {
        match (identify, via) {
            (Some(_), Some(via)) => {
                self.err(
                    &via,
                    key("via"),
                    "give either identify (the person is found here by their own attributes) \
                     or via (through another subject's keys), not both; a table found by \
                     via is searched through that subject's identify",
                );
                None
            }
            (None, None) => {
                self.err_at_line(
                    line,
                    key("identify"),
                    "says neither how to find a person here: give identify = { email = \
                     \"email\" } (identity attribute → column) or via = { subject = \"…\", \
                     foreign_key = \"…\" } (through another subject's keys)",
                );
                None
            }
            (Some(map), None) => {
                if map.get_ref().is_empty() {
                    self.err(
                        &map,
                        key("identify"),
                        "names no attribute; map each identity attribute to its column, e.g. \
                         identify = { email = \"email\" }",
                    );
                    return None;
                }
                let mut out = BTreeMap::new();
                let mut ok = true;
                for (attr, col) in map.into_inner() {
                    let at = key(&format!("identify.{}", attr.get_ref()));
                    if !is_attribute_name(attr.get_ref()) {
                        self.err(
                            &attr,
                            at.clone(),
                            format!(
                                "'{}' is not an identity attribute name: use lowercase letters, \
                                 digits, '-' and '_' only, at most 64 (it is what \
                                 `request … --match ATTR=VALUE` names)",
                                attr.get_ref()
                            ),
                        );
                        ok = false;
                    }
                    match self.ident(&col, &at) {
                        Some(c) => {
                            out.insert(attr.into_inner(), c);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(Find::Identify(out))
            }
            (None, Some(via)) => {
                let via = via.into_inner();
                let foreign_key = self.ident(&via.foreign_key, &key("via.foreign_key"))?;
                Some(Find::Via {
                    subject: via.subject.into_inner(),
                    foreign_key,
                })
            }
        }
    }

    /// `erase`, with `anonymize` for and only for `"anonymize"` and `keep_reason` for and
    /// only for `"keep"`. Every mismatch is reported, not just the first.
    fn erase(
        &mut self,
        verb: &Spanned<String>,
        anonymize: Option<Spanned<RawAnonymize>>,
        keep_reason: Option<Spanned<String>>,
        key_col: Option<&Ident>,
        key: &dyn Fn(&str) -> String,
    ) -> Option<Erase> {
        let v = verb.get_ref().as_str();
        if !matches!(v, "delete" | "anonymize" | "keep") {
            self.err(
                verb,
                key("erase"),
                format!(
                    "'{v}' is not a way to erase; write \"delete\", \"anonymize\" (with \
                     anonymize = {{ … }}) or \"keep\" (with keep_reason = \"…\")"
                ),
            );
            return None;
        }
        let mut ok = true;
        match (&anonymize, v) {
            (None, "anonymize") => {
                self.err(
                    verb,
                    key("anonymize"),
                    "erase = \"anonymize\" needs an anonymize table: the columns that hold \
                     personal data and how to overwrite them, e.g. anonymize = { email = \
                     \"null\" }",
                );
                ok = false;
            }
            (Some(a), "delete" | "keep") => {
                self.err(
                    a,
                    key("anonymize"),
                    format!(
                        "anonymize belongs to erase = \"anonymize\" only, and this subject has \
                         erase = \"{v}\": remove it, or write erase = \"anonymize\""
                    ),
                );
                ok = false;
            }
            _ => {}
        }
        match (&keep_reason, v) {
            (None, "keep") => {
                self.err(
                    verb,
                    key("keep_reason"),
                    "erase = \"keep\" needs keep_reason = \"…\": the law or contract that \
                     requires keeping these records, which the answer to the person quotes",
                );
                ok = false;
            }
            (Some(r), "keep") if r.get_ref().trim().is_empty() => {
                self.err(
                    r,
                    key("keep_reason"),
                    "is empty; name the law or contract that requires keeping these records \
                     (the answer to the person quotes it)",
                );
                ok = false;
            }
            (Some(r), "delete" | "anonymize") => {
                self.err(
                    r,
                    key("keep_reason"),
                    format!(
                        "keep_reason belongs to erase = \"keep\" only, and this subject has \
                         erase = \"{v}\": remove it, or write erase = \"keep\""
                    ),
                );
                ok = false;
            }
            _ => {}
        }
        if let (Some(a), Some(k)) = (&anonymize, key_col) {
            // Case-blind: MySQL and SQLite read `ID` as the column `id`.
            for col in a.get_ref().keys() {
                if col.get_ref().eq_ignore_ascii_case(k.as_str()) {
                    self.err(
                        col,
                        key(&format!("anonymize.{}", col.get_ref())),
                        "the key column cannot be anonymized: the audit trail names each \
                         erased record by it, and subjects reached through this one find \
                         their rows by it",
                    );
                    ok = false;
                }
            }
        }
        let columns = match anonymize {
            Some(a) if v == "anonymize" => self.anonymize_columns(a, key),
            _ => None,
        };
        if !ok {
            return None;
        }
        match v {
            "delete" => Some(Erase::Delete),
            "anonymize" => columns.map(Erase::Anonymize),
            _ => keep_reason.map(|r| Erase::Keep {
                reason: r.into_inner(),
            }),
        }
    }

    /// The line of each key of a subject, so that a database check can point at the key it
    /// finds wrong (see `Subject::line_of`).
    fn subject_key_lines(&self, s: &RawSubject) -> BTreeMap<String, usize> {
        let at = |span: std::ops::Range<usize>| self.lines.line_of(span.start);
        let mut out = BTreeMap::new();
        out.insert("name".to_owned(), at(s.name.span()));
        out.insert("database".to_owned(), at(s.database.span()));
        out.insert("table".to_owned(), at(s.table.span()));
        out.insert("key".to_owned(), at(s.key.span()));
        out.insert("erase".to_owned(), at(s.erase.span()));
        if let Some(i) = &s.identify {
            out.insert("identify".to_owned(), at(i.span()));
            for attr in i.get_ref().keys() {
                out.insert(format!("identify.{}", attr.get_ref()), at(attr.span()));
            }
        }
        if let Some(v) = &s.via {
            out.insert("via".to_owned(), at(v.span()));
            out.insert("via.subject".to_owned(), at(v.get_ref().subject.span()));
            out.insert(
                "via.foreign_key".to_owned(),
                at(v.get_ref().foreign_key.span()),
            );
        }
        if let Some(a) = &s.anonymize {
            out.insert("anonymize".to_owned(), at(a.span()));
            for col in a.get_ref().keys() {
                out.insert(format!("anonymize.{}", col.get_ref()), at(col.span()));
            }
        }
        if let Some(r) = &s.keep_reason {
            out.insert("keep_reason".to_owned(), at(r.span()));
        }
        out
    }
}

/// An identity attribute's name (`email`, `customer-number`): what `request … --match
/// ATTR=VALUE` names on a command line, so plain and lowercase.
fn is_attribute_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
}

/// The replica keys of one `[databases.NAME]`, as written.
struct ReplicaKeys {
    max_lag: Option<Spanned<String>>,
    max_wait: Option<Spanned<String>>,
    replicas: Option<Spanned<Vec<Spanned<String>>>>,
    ignore_walsenders: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A replica URL of a database of `dialect`: of the same kind (`mariadb://` read as
/// `mysql://`, as for `url`), with a host, so that a typo is found when the config is read
/// rather than as an unreachable replica in the middle of a pass.
fn replica_url(url: &str, dialect: Dialect) -> Result<String, String> {
    let bad = |why: &str| format!("'{}' is not a replica URL: {why}", mask_url(url));
    let url = match url.split_once("://") {
        Some(("mariadb", rest)) => format!("mysql://{rest}"),
        _ => url.to_owned(),
    };
    let parsed = url::Url::parse(&url).map_err(|e| bad(&e.to_string()))?;
    let kind_ok = match dialect {
        Dialect::Postgres => matches!(parsed.scheme(), "postgres" | "postgresql"),
        Dialect::MySql => parsed.scheme() == "mysql",
        Dialect::Sqlite => false,
    };
    if !kind_ok {
        return Err(bad(match dialect {
            Dialect::Postgres => {
                "a replica of a PostgreSQL database is written postgres://user@host:5432/db"
            }
            _ => "a replica of a MariaDB/MySQL database is written mysql://user@host:3306/db",
        }));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    Ok(url)
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A TOML number as written, `1` or `0.5` alike (`max_fraction`, `batch_pause_factor`);
/// `None` for anything else, which the caller reports at the key's line.
fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Float(x) => Some(*x),
        toml::Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

#[cfg(test)]
mod subject_tests;
#[cfg(test)]
mod tests;

/// Why `url` cannot hold the state (`[daemon] state_url`), or `None` if it can: only
/// PostgreSQL, the database organisations replicate and back up, and where a session lock
/// decides which of several instances acts.
fn state_url_problem(url: &str) -> Option<String> {
    let masked = mask_url(url);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Some(format!(
            "'{masked}' cannot hold the state: state_url must be a PostgreSQL URL (postgres://user@host:5432/retentiond); leave it out to keep the state in state_dir/state.db"
        ));
    }
    match <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url) {
        Ok(_) => None,
        Err(e) => Some(format!("'{masked}' is not a PostgreSQL URL: {e}")),
    }
}

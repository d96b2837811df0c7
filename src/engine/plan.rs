//! Forecasts: how many records each rule matches at a moment, a few of their keys, what
//! legal holds keep back, and whether the brake would stop it. Read-only; used by
//! `check` (now), `plan --at`, and the pass itself before it acts. `plan` and `check`
//! count on a database's `read_url` when it has one ([`CountOn`]); the pass never does.

use super::matcher::{Matcher, When};
use super::outcome::HeldCount;
use super::prepare::{Prepared, Readiness};
use crate::config::{ActionKind, Config, Mode, Rule};
use crate::db::{Db, DbError};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::BTreeMap;

/// How many keys `plan` shows per rule.
pub const SAMPLE_KEYS: u32 = 5;

/// One rule's forecast.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRule {
    /// Rule name.
    pub rule: String,
    /// What the rule does.
    pub action: ActionKind,
    /// Database config name.
    pub database: String,
    /// Table.
    pub table: String,
    /// Records matched (absent when the rule could not be evaluated).
    pub count: Option<i64>,
    /// The first few matching keys.
    pub sample_keys: Vec<String>,
    /// Records whose `since` is at or before this moment count as expired.
    pub cutoff: Option<String>,
    /// Whether the rule acts (`enforce`) or only counts (`report`).
    pub mode: Mode,
    /// Rows in the table.
    pub table_rows: Option<i64>,
    /// Records legal holds keep from this rule.
    pub held: Vec<HeldCount>,
    /// Why the mass-deletion brake would stop this rule, if it would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brake: Option<String>,
    /// Why the rule could not be evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which connection the counts were taken on: `primary`, or `read_url` (a replica).
    pub counted_on: Connection,
    /// The `read_url` counted on, masked; absent when counted on the primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_url: Option<String>,
}

/// The connection a forecast counted on, so that an operator (or a script reading
/// `plan --format json`) knows whether the numbers are the primary's or a replica's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// The database's `url`, which `prepare` opened.
    Primary,
    /// The database's `read_url`.
    ReadUrl,
}

/// Where `plan` and `check` count each database's records: its `read_url` when it has
/// one (a replica, so that counting never loads the primary), else the primary `prepare`
/// opened. An unreachable `read_url` fails its rules rather than falling back to the
/// primary: the operator asked for the primary not to be loaded. The pass, the daemon and
/// erasures never use this: what is acted on is decided on the primary, never on data a
/// replica may hold stale.
#[derive(Default)]
pub struct CountOn {
    /// Open `read_url` connections, by database name.
    open: BTreeMap<String, Db>,
    /// Databases whose `read_url` could not be reached, with why (credentials masked).
    down: BTreeMap<String, String>,
    /// Every database counted on its `read_url`, with that URL masked.
    urls: BTreeMap<String, String>,
}

impl CountOn {
    /// Counting on the primaries only (commands that have no `read_url` to honour).
    pub fn primary() -> CountOn {
        CountOn::default()
    }

    /// Connects to the `read_url` of every database `prepared` opened that has one.
    pub async fn read_urls(config: &Config, prepared: &Prepared<'_>) -> CountOn {
        let mut on = CountOn::default();
        for name in prepared.dbs.keys() {
            let Some(spec) = config.read_spec(name) else {
                continue;
            };
            on.urls.insert(name.clone(), spec.masked_url());
            match Db::connect(spec).await {
                Ok(db) => {
                    on.open.insert(name.clone(), db);
                }
                Err(e) => {
                    tracing::error!(database = %name, error = %e, "read_url unreachable");
                    on.down.insert(
                        name.clone(),
                        format!("cannot count on the replica read_url, and the primary is not counted on instead: {e}"),
                    );
                }
            }
        }
        on
    }

    /// One line per database with a `read_url`, for the command's output: that it was
    /// counted there, or that its rules were not counted at all.
    pub fn describe(&self) -> Vec<String> {
        self.urls
            .iter()
            .map(|(name, url)| {
                if self.down.contains_key(name) {
                    format!("database '{name}': its read_url ({url}) could not be reached, so its rules were not counted (not on the primary either)")
                } else {
                    format!("database '{name}': counted on the replica read_url ({url}); its tables, columns and foreign keys were checked on the primary")
                }
            })
            .collect()
    }

    /// Closes the `read_url` connections.
    pub async fn close(&self) {
        for db in self.open.values() {
            db.close().await;
        }
    }

    /// The connection to count `rule`'s records on, which one it is, and the masked
    /// `read_url`; or why its `read_url` is down.
    fn db<'d>(
        &'d self,
        rule: &Rule,
        primary: &'d Db,
    ) -> (Result<&'d Db, String>, Connection, Option<String>) {
        let url = self.urls.get(&rule.database).cloned();
        if let Some(why) = self.down.get(&rule.database) {
            return (Err(why.clone()), Connection::ReadUrl, url);
        }
        match self.open.get(&rule.database) {
            Some(db) => (Ok(db), Connection::ReadUrl, url),
            None => (Ok(primary), Connection::Primary, None),
        }
    }
}

/// Counts for one rule at one moment.
pub struct Evaluation {
    /// Records it acts on.
    pub matched: u64,
    /// Rows in the table.
    pub table_rows: u64,
    /// Held back, per active hold (holds holding nothing are left out).
    pub held: Vec<HeldCount>,
}

/// Counts what `m` matches at `when`, the table size, and what each hold keeps back.
pub async fn evaluate(m: &Matcher<'_>, db: &Db, when: &When) -> Result<Evaluation, DbError> {
    let matched = db.fetch_i64(&m.count(when)).await?.max(0) as u64;
    let table_rows = db.fetch_i64(&m.count_table()).await?.max(0) as u64;
    let mut held = Vec::new();
    for h in m.active_holds(when) {
        let n = db.fetch_i64(&m.count_held(when, h)).await?.max(0) as u64;
        if n > 0 {
            held.push(HeldCount {
                hold: h.name.clone(),
                reason: h.reason.clone(),
                records: n,
            });
        }
    }
    Ok(Evaluation {
        matched,
        table_rows,
        held,
    })
}

/// Why the brake stops `rule` from acting on `matched` of `table_rows` records, if it does.
pub fn brake(rule: &crate::config::Rule, matched: u64, table_rows: u64) -> Option<String> {
    let verb = rule.action.verb();
    let how = format!(
        "If that is right, confirm this exact count with `retentiond run --once --rule {} --confirm {matched}`, or raise the limit in the rule (line {}).",
        rule.name, rule.line
    );
    if let Some(max) = rule.max_records.filter(|max| matched > *max) {
        return Some(format!("would {verb} {matched} records, more than its max_records ({max}); nothing was done. {how}"));
    }
    let fraction = if table_rows == 0 {
        0.0
    } else {
        matched as f64 / table_rows as f64
    };
    if fraction > rule.max_fraction {
        return Some(format!(
            "would {verb} {matched} of the {table_rows} records in {} ({:.0}%), more than its max_fraction ({}) allows; nothing was done. {how}",
            rule.table,
            fraction * 100.0,
            rule.max_fraction
        ));
    }
    None
}

/// Evaluates every prepared rule at `at`, counting on the primaries.
pub async fn plan(prepared: &Prepared<'_>, at: DateTime<Utc>, tz: Tz) -> Vec<PlannedRule> {
    plan_on(prepared, &CountOn::primary(), at, tz).await
}

/// Evaluates every prepared rule at `at`, counting where `on` says (a `read_url`, or the
/// primary).
pub async fn plan_on(
    prepared: &Prepared<'_>,
    on: &CountOn,
    at: DateTime<Utc>,
    tz: Tz,
) -> Vec<PlannedRule> {
    let mut out = Vec::new();
    for (rule, readiness) in &prepared.rules {
        let mut p = PlannedRule {
            rule: rule.name.clone(),
            action: rule.action.kind(),
            database: rule.database.clone(),
            table: rule.table.to_string(),
            count: None,
            sample_keys: Vec::new(),
            cutoff: None,
            mode: rule.mode,
            table_rows: None,
            held: Vec::new(),
            brake: None,
            error: None,
            counted_on: Connection::Primary,
            read_url: None,
        };
        let (m, primary) = match (readiness, prepared.db(rule)) {
            (Readiness::Ready(m), Some(db)) => (m, db),
            (Readiness::Unavailable(why), _) => {
                p.error = Some(why.clone());
                out.push(p);
                continue;
            }
            (Readiness::Ready(_), None) => {
                p.error = Some(format!("database '{}' is not open", rule.database));
                out.push(p);
                continue;
            }
        };
        let Some(when) = m.when(at, tz) else {
            p.error = Some(format!(
                "a retention period before {at} is out of the calendar's range"
            ));
            out.push(p);
            continue;
        };
        let (db, counted_on, read_url) = on.db(rule, primary);
        (p.counted_on, p.read_url) = (counted_on, read_url);
        let db = match db {
            Ok(db) => db,
            Err(why) => {
                p.error = Some(why);
                out.push(p);
                continue;
            }
        };
        p.cutoff = Some(when.cutoff.utc.to_rfc3339());
        match evaluate(m, db, &when).await {
            Ok(e) => {
                p.count = Some(e.matched as i64);
                p.table_rows = Some(e.table_rows as i64);
                p.held = e.held;
                p.brake = brake(rule, e.matched, e.table_rows);
            }
            Err(e) => p.error = Some(e.to_string()),
        }
        if p.count.unwrap_or(0) > 0 {
            match db
                .fetch_records(&m.sample(&when, SAMPLE_KEYS), m.shape.key)
                .await
            {
                Ok(rs) => p.sample_keys = rs.into_iter().map(|r| r.key.to_string()).collect(),
                Err(e) => p.error = Some(e.to_string()),
            }
        }
        out.push(p);
    }
    out
}

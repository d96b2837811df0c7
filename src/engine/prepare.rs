//! Before anything runs: connect to every database the selected rules use and check each
//! rule against its table — its columns, its key, its filter (parsed by the database
//! itself), the holds on its table, the tables its `keep_while` names, and the rules with
//! a longer retention it must respect. Any mismatch is a config error (exit 78, nothing
//! touched); an unreachable database only fails its own rules.

use crate::config::{Config, ConfigError, ConfigProblem, Rule};
use crate::db::schema::{self, SchemaProblem, TableShape};
use crate::db::{Db, DbError, Sql};
use crate::engine::matcher::{longer_rivals, Matcher};
use std::collections::BTreeMap;

/// A rule that is ready to run, or why it cannot run this time.
pub enum Readiness<'a> {
    /// Its database is open and everything fits.
    Ready(Matcher<'a>),
    /// Its database could not be reached.
    Unavailable(String),
}

/// The open databases and every selected rule's readiness, in config order.
pub struct Prepared<'a> {
    /// Open connections, by config name.
    pub dbs: BTreeMap<String, Db>,
    /// Selected rules.
    pub rules: Vec<(&'a Rule, Readiness<'a>)>,
}

impl Prepared<'_> {
    /// The open database a ready rule acts on.
    pub fn db(&self, rule: &Rule) -> Option<&Db> {
        self.dbs.get(&rule.database)
    }

    /// Closes every connection.
    pub async fn close(&self) {
        for db in self.dbs.values() {
            db.close().await;
        }
    }
}

/// Connects and checks. `selected` empty means every rule.
pub async fn prepare<'a>(
    config: &'a Config,
    selected: &[String],
) -> Result<Prepared<'a>, ConfigError> {
    let rules: Vec<&Rule> = config
        .rules
        .iter()
        .filter(|r| selected.is_empty() || selected.contains(&r.name))
        .collect();
    let mut dbs = BTreeMap::new();
    let mut down: BTreeMap<String, String> = BTreeMap::new();
    for rule in &rules {
        if dbs.contains_key(&rule.database) || down.contains_key(&rule.database) {
            continue;
        }
        let Some(spec) = config.database_of(rule) else {
            continue;
        };
        match Db::connect(spec).await {
            Ok(db) => {
                dbs.insert(rule.database.clone(), db);
            }
            Err(e) => {
                tracing::error!(database = %rule.database, error = %e, "database unreachable");
                down.insert(rule.database.clone(), e.to_string());
            }
        }
    }
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for rule in rules {
        let Some(db) = dbs.get(&rule.database) else {
            let why = down.get(&rule.database).cloned().unwrap_or_default();
            out.push((rule, Readiness::Unavailable(why)));
            continue;
        };
        match matcher(config, db, rule).await {
            Ok(Ok(m)) => out.push((rule, Readiness::Ready(m))),
            Ok(Err(found)) => problems.extend(found.into_iter().map(|p| ConfigProblem {
                file: config.path.clone(),
                line: p.line.unwrap_or(rule.line),
                key: if p.line.is_some() {
                    p.key
                } else {
                    format!("rule \"{}\" → {}", rule.name, p.key)
                },
                message: p.message,
            })),
            Err(e) => out.push((rule, Readiness::Unavailable(e.to_string()))),
        }
    }
    let prepared = Prepared { dbs, rules: out };
    if problems.is_empty() {
        Ok(prepared)
    } else {
        prepared.close().await;
        Err(ConfigError { problems })
    }
}

fn problem(key: &str, message: String) -> SchemaProblem {
    SchemaProblem {
        key: key.to_owned(),
        message,
        line: None,
    }
}

/// Asks the database to parse and plan `SELECT 1 FROM table WHERE (condition)`.
async fn parses(db: &Db, table: &str, condition: &str) -> Result<(), String> {
    let mut sql = Sql::new(db.dialect);
    sql.push(db.dialect.explain())
        .push("SELECT 1 FROM ")
        .push(table)
        .push(" WHERE (")
        .push(condition)
        .push(")");
    db.execute(&sql)
        .await
        .map(|_| ())
        .map_err(|e| format!("the database rejects this condition: {e}"))
}

async fn matcher<'a>(
    config: &'a Config,
    db: &Db,
    rule: &'a Rule,
) -> Result<Result<Matcher<'a>, Vec<SchemaProblem>>, DbError> {
    let d = db.dialect;
    let table = schema::describe(db, &rule.table).await?;
    let shape = match schema::check_rule(rule, table.as_ref(), d, &rule.database) {
        Ok(s) => s,
        Err(p) => return Ok(Err(p)),
    };
    let Some(table) = table else {
        return Ok(Err(vec![problem("table", "table vanished".into())]));
    };
    let quoted = d.table(&rule.table);
    let mut problems = Vec::new();
    if let Some(f) = &rule.filter {
        if let Err(m) = parses(db, &quoted, f).await {
            problems.push(problem("filter", m));
        }
    }
    let holds: Vec<_> = config
        .holds
        .iter()
        .filter(|h| h.database == rule.database && h.table == rule.table)
        .collect();
    for h in &holds {
        if let Err(m) = parses(db, &quoted, &h.filter).await {
            problems.push(SchemaProblem {
                key: format!("hold \"{}\" → filter", h.name),
                message: m,
                line: Some(h.line),
            });
        }
    }
    let mut keeps = Vec::new();
    for (i, k) in rule.keep_while.iter().enumerate() {
        let key = |f: &str| format!("keep_while[{i}].{f}");
        let Some(kt) = schema::describe(db, &k.table).await? else {
            problems.push(problem(
                &key("table"),
                format!(
                    "table '{}' does not exist in database '{}'",
                    k.table, rule.database
                ),
            ));
            continue;
        };
        if !schema::has_column(&kt, d, &k.foreign_key) {
            problems.push(problem(
                &key("foreign_key"),
                format!(
                    "column '{}' does not exist in table '{}'",
                    k.foreign_key, k.table
                ),
            ));
        }
        match schema::since_kind(&kt, d, &k.since, &k.table) {
            Ok(kind) => keeps.push((k, kind)),
            Err(m) => problems.push(problem(&key("since"), m)),
        }
    }
    let rivals = rivals(config, rule, &table, d, &mut problems);
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    let m = Matcher {
        rule,
        shape,
        dialect: d,
        holds,
        keeps,
        rivals,
    };
    // The whole condition, as it will run, must parse too.
    if let Some(when) = m.when(chrono::Utc::now(), config.daemon.timezone) {
        let mut sql = m.count(&when);
        sql.text = format!("{}{}", d.explain(), sql.text);
        if let Err(e) = db.execute(&sql).await {
            return Ok(Err(vec![problem(
                "filter",
                format!("the database rejects the rule's condition: {e}"),
            )]));
        }
    }
    Ok(Ok(m))
}

fn rivals<'a>(
    config: &'a Config,
    rule: &Rule,
    table: &TableShape,
    d: crate::db::Dialect,
    problems: &mut Vec<SchemaProblem>,
) -> Vec<(&'a Rule, crate::db::SinceKind)> {
    let mut out = Vec::new();
    for r in longer_rivals(rule, &config.rules) {
        match schema::since_kind(table, d, &r.since, &r.table) {
            Ok(kind) => out.push((r, kind)),
            Err(m) => problems.push(SchemaProblem {
                key: format!("rule \"{}\" → expires.since", r.name),
                message: m,
                line: Some(r.line),
            }),
        }
    }
    out
}

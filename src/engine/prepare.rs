//! Before anything runs: connect to every database the selected rules use and check each
//! rule against its table. A rule that does not fit its table is a config error (exit 78,
//! nothing touched); an unreachable database only fails its own rules.

use crate::config::{Config, ConfigError, ConfigProblem, Rule};
use crate::db::schema::{self, RuleShape};
use crate::db::{Db, DbError};
use crate::engine::matcher::Matcher;
use std::collections::BTreeMap;

/// A rule that is ready to run, or why it cannot run this time.
pub enum Readiness<'a> {
    /// Its database is open and its table fits.
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
        match shape_of(db, rule).await {
            Ok(Ok(shape)) => out.push((
                rule,
                Readiness::Ready(Matcher {
                    rule,
                    shape,
                    dialect: db.dialect,
                }),
            )),
            Ok(Err(found)) => problems.extend(found.into_iter().map(|p| ConfigProblem {
                file: config.path.clone(),
                line: rule.line,
                key: format!("rule \"{}\" → {}", rule.name, p.key),
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

async fn shape_of(
    db: &Db,
    rule: &Rule,
) -> Result<Result<RuleShape, Vec<schema::SchemaProblem>>, DbError> {
    let table = schema::describe(db, &rule.table).await?;
    Ok(schema::check_rule(
        rule,
        table.as_ref(),
        db.dialect,
        &rule.database,
    ))
}

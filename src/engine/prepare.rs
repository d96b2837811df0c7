//! Before anything runs: connect to every database the selected rules use and check each
//! rule against its table — its columns, its key, its filter (parsed by the database
//! itself), the holds on its table, the tables its `keep_while` names, and the rules with
//! a longer retention it must respect — and every `[[subject]]` of those databases (see
//! [`crate::engine::subjects`]). Any mismatch is a config error (exit 78, nothing
//! touched); an unreachable database only fails its own rules.

use crate::config::{Action, Child, Config, ConfigError, ConfigProblem, Ident, Rule, TableName};
use crate::db::schema::{self, ChildShape, SchemaProblem, Shapes, TableShape};
use crate::db::{Db, DbError, Dialect, SinceKind, Sql};
use crate::engine::children::ChildPlan;
use crate::engine::matcher::{Matcher, RivalIndex};
use crate::engine::subjects::check_subjects;
use std::collections::{BTreeMap, HashMap};

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
    /// What retentiond assumed where the catalog could not say (the unit of an integer
    /// time column), for `check` to tell the operator.
    pub notes: Vec<String>,
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
    let mut notes = Vec::new();
    let mut out = Vec::new();
    let mut catalog = Catalog {
        shapes: Shapes::default(),
        seconds: HashMap::new(),
        rivals: RivalIndex::new(&config.rules),
    };
    for rule in rules {
        let Some(db) = dbs.get(&rule.database) else {
            let why = down.get(&rule.database).cloned().unwrap_or_default();
            out.push((rule, Readiness::Unavailable(why)));
            continue;
        };
        match matcher(config, db, rule, &mut notes, &mut catalog).await {
            Ok(Ok(m)) => out.push((rule, Readiness::Ready(m))),
            Ok(Err(found)) => problems.extend(found.into_iter().map(|p| ConfigProblem {
                file: config.path.clone(),
                line: p.line.unwrap_or_else(|| rule.line_of(&p.key)),
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
    // The subjects of the databases now open: a broken one is refused like a broken rule.
    let subjects = check_subjects(config, &dbs, &mut catalog.shapes).await;
    problems.extend(subjects.problems);
    notes.extend(subjects.notes);
    let prepared = Prepared {
        dbs,
        rules: out,
        notes,
    };
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

/// What `prepare` learns once and many rules share: each table's shape, each integer
/// column's unit check, and the rules grouped by table (for the longer-retention rivals).
/// With thousands of rules on a few tables, asking the catalog again per rule, or
/// comparing every rule with every other, made `check` take minutes.
struct Catalog<'a> {
    shapes: Shapes,
    seconds: HashMap<(String, String, String), Result<Option<String>, String>>,
    rivals: RivalIndex<'a>,
}

impl Catalog<'_> {
    /// The shape of `table` in `db`, asked of the catalog once.
    async fn describe(
        &mut self,
        db: &Db,
        table: &TableName,
    ) -> Result<Option<TableShape>, DbError> {
        self.shapes.describe(db, table).await
    }

    /// [`unix_seconds`], asked once per column.
    async fn unix_seconds(
        &mut self,
        db: &Db,
        table: &TableName,
        col: &Ident,
        kind: SinceKind,
        what: &str,
    ) -> Result<Result<Option<String>, String>, DbError> {
        let k = (db.name.clone(), table.to_string(), col.to_string());
        if let Some(r) = self.seconds.get(&k) {
            return Ok(r.clone());
        }
        let r = unix_seconds(db, table, col, kind, what).await?;
        self.seconds.insert(k, r.clone());
        Ok(r)
    }
}

async fn matcher<'a>(
    config: &'a Config,
    db: &Db,
    rule: &'a Rule,
    notes: &mut Vec<String>,
    catalog: &mut Catalog<'a>,
) -> Result<Result<Matcher<'a>, Vec<SchemaProblem>>, DbError> {
    let d = db.dialect;
    let table = catalog.describe(db, &rule.table).await?;
    let shape = match schema::check_rule(rule, table.as_ref(), d, &rule.database) {
        Ok(s) => s,
        Err(p) => return Ok(Err(p)),
    };
    let Some(table) = table else {
        return Ok(Err(vec![problem("table", "table vanished".into())]));
    };
    let quoted = d.table(&rule.table);
    let mut problems = Vec::new();
    if d == Dialect::Sqlite {
        if let Some(m) = schema::sqlite_key_problem(db, &rule.table, &rule.key, shape.key).await? {
            problems.push(problem("key", m));
        }
    }
    let what = format!("since column {}", rule.since);
    match catalog
        .unix_seconds(db, &rule.table, &rule.since, shape.since, &what)
        .await?
    {
        Ok(Some(note)) => notes.push(format!("rule \"{}\": {note}", rule.name)),
        Ok(None) => {}
        Err(m) => problems.push(problem("expires.since", m)),
    }
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
        let Some(kt) = catalog.describe(db, &k.table).await? else {
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
            Ok(kind) => {
                let what = format!("keep_while[{i}].since column {} of {}", k.since, k.table);
                match catalog
                    .unix_seconds(db, &k.table, &k.since, kind, &what)
                    .await?
                {
                    Ok(Some(note)) => notes.push(format!("rule \"{}\": {note}", rule.name)),
                    Ok(None) => {}
                    Err(m) => problems.push(problem(&key("since"), m)),
                }
                keeps.push((k, kind));
            }
            Err(m) => problems.push(problem(&key("since"), m)),
        }
    }
    let rivals = rivals(&catalog.rivals, rule, &table, d, &mut problems);
    // A longer rule's integer `since` is read as seconds too when it keeps records from
    // this one; it is checked here as well, since it may not be among the selected rules.
    for (r, kind) in &rivals {
        let what = format!("since column {}", r.since);
        if let Err(m) = catalog
            .unix_seconds(db, &r.table, &r.since, *kind, &what)
            .await?
        {
            problems.push(SchemaProblem {
                key: format!("rule \"{}\" → expires.since", r.name),
                message: m,
                line: Some(r.line),
            });
        }
    }
    let children = child_plans(db, catalog, rule, &mut problems).await?;
    let child_holds = child_holds(config, rule);
    for (chain, h) in &child_holds {
        let Some(child) = chain.last() else { continue };
        if let Err(m) = parses(db, &d.table(&child.table), &h.filter).await {
            problems.push(SchemaProblem {
                key: format!("hold \"{}\" → filter", h.name),
                message: m,
                line: Some(h.line),
            });
        }
    }
    if rule.action == Action::Delete {
        unaudited_cascades(db, rule, &mut problems).await?;
    }
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
        children,
        child_holds,
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

/// Every `children` entry of `rule`, depth first, with its parent's path.
fn flatten<'a>(list: &'a [Child], out: &mut Vec<&'a Child>) {
    for c in list {
        out.push(c);
        flatten(&c.children, out);
    }
}

/// The rule's `children` bound to their tables (see `schema::check_child`); problems at
/// `children[i].…`.
async fn child_plans<'a>(
    db: &Db,
    catalog: &mut Catalog<'_>,
    rule: &'a Rule,
    problems: &mut Vec<SchemaProblem>,
) -> Result<Vec<ChildPlan<'a>>, DbError> {
    let mut all = Vec::new();
    flatten(&rule.children, &mut all);
    let anonymize = match &rule.action {
        Action::Anonymize(cols) => Some(cols.as_slice()),
        Action::Delete | Action::Flag { .. } => None,
    };
    let mut shapes: HashMap<&str, ChildShape> = HashMap::new();
    for child in all {
        let table = catalog.describe(db, &child.table).await?;
        match schema::check_child(child, table.as_ref(), db.dialect, &rule.database, anonymize) {
            Ok(shape) => {
                shapes.insert(child.path.as_str(), shape);
            }
            Err(p) => problems.extend(p),
        }
    }
    fn build<'a>(list: &'a [Child], shapes: &HashMap<&str, ChildShape>) -> Vec<ChildPlan<'a>> {
        list.iter()
            .filter_map(|c| {
                shapes.get(c.path.as_str()).map(|shape| ChildPlan {
                    child: c,
                    shape: shape.clone(),
                    children: build(&c.children, shapes),
                })
            })
            .collect()
    }
    Ok(build(&rule.children, &shapes))
}

/// The legal holds on the tables of `rule`'s children, each with the chain of children that
/// leads to its table (the same table may be reached by more than one chain).
fn child_holds<'a>(
    config: &'a Config,
    rule: &'a Rule,
) -> Vec<(Vec<&'a Child>, &'a crate::config::Hold)> {
    fn walk<'a>(
        config: &'a Config,
        database: &str,
        list: &'a [Child],
        chain: &mut Vec<&'a Child>,
        out: &mut Vec<(Vec<&'a Child>, &'a crate::config::Hold)>,
    ) {
        for c in list {
            chain.push(c);
            for h in config
                .holds
                .iter()
                .filter(|h| h.database == database && h.table == c.table)
            {
                out.push((chain.clone(), h));
            }
            walk(config, database, &c.children, chain, out);
            chain.pop();
        }
    }
    let mut out = Vec::new();
    walk(
        config,
        &rule.database,
        &rule.children,
        &mut Vec::new(),
        &mut out,
    );
    out
}

/// A deleting rule must not leave rows to the database's `ON DELETE CASCADE` or
/// `SET NULL`: they would change without an audit entry. Every such foreign key into the
/// rule's table (or into a child table) must be named by a `children` entry; otherwise a
/// problem at the table's key.
async fn unaudited_cascades(
    db: &Db,
    rule: &Rule,
    problems: &mut Vec<SchemaProblem>,
) -> Result<(), DbError> {
    let mut tables: Vec<(&TableName, &[Child], String)> =
        vec![(&rule.table, &rule.children, "table".to_owned())];
    let mut all = Vec::new();
    flatten(&rule.children, &mut all);
    for c in all {
        tables.push((&c.table, &c.children, format!("{}.table", c.path)));
    }
    for (table, children, key) in tables {
        for r in schema::referencing(db, table).await? {
            if !r.changes_rows {
                continue;
            }
            let named = |t: &TableName, fk: &Ident| {
                t.name.as_str().eq_ignore_ascii_case(&r.table)
                    && fk.as_str().eq_ignore_ascii_case(&r.column)
            };
            // Only `children` covers such a key: `keep_while` keeps the record while a
            // young row refers to it, and the old rows would still be cascaded unaudited.
            // A key of the table into itself (a manager, a referrer) is never covered: the
            // cascade would reach other records than the rule's.
            let into_itself = r.table.eq_ignore_ascii_case(table.name.as_str());
            let covered = !into_itself && children.iter().any(|c| named(&c.table, &c.foreign_key));
            if !covered {
                problems.push(problem(&key, format!(
                    "table '{table}' is referenced by {}.{} with {}: deleting a record would change those rows without an audit entry. Name them, so that each gets its own entry: children = [{{ table = \"{}\", foreign_key = \"{}\", key = \"…\" }}] (a key of the table into itself cannot be named: make it ON DELETE RESTRICT or NO ACTION)",
                    r.table, r.column, r.on_delete, r.table, r.column
                )));
            }
        }
    }
    Ok(())
}

fn rivals<'a>(
    index: &RivalIndex<'a>,
    rule: &Rule,
    table: &TableShape,
    d: crate::db::Dialect,
    problems: &mut Vec<SchemaProblem>,
) -> Vec<(&'a Rule, crate::db::SinceKind)> {
    let mut out = Vec::new();
    for r in index.longer_than(rule) {
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

/// Integer unix seconds stay within ±10^11 (±3,170 years around 1970): a larger value is in
/// milliseconds or microseconds, and read as seconds it would never expire.
const MAX_UNIX_SECONDS: f64 = 1e11;

/// The newest value of a column of unix seconds that still holds records of our time is
/// past 10^8 (1973-03-03). A smaller newest value is days, hours or minutes since 1970, and
/// read as seconds every record would count as expired decades ago.
const MIN_NEWEST_UNIX_SECONDS: f64 = 1e8;

/// For a `since` column that holds integers (read as unix seconds, the only unit
/// retentiond knows): the note for `check` saying so, or why its values cannot be seconds.
/// `Ok(None)` for a column that holds no numbers. `what` names the column for the message.
async fn unix_seconds(
    db: &Db,
    table: &TableName,
    col: &Ident,
    kind: SinceKind,
    what: &str,
) -> Result<Result<Option<String>, String>, DbError> {
    if !matches!(kind, SinceKind::UnixSeconds | SinceKind::SqliteAny) {
        return Ok(Ok(None));
    }
    let range = schema::numeric_range(db, table, col).await?;
    if range.is_none() && kind == SinceKind::SqliteAny {
        return Ok(Ok(None));
    }
    Ok(judge_unix_seconds(what, range).map(Some))
}

/// The judgement of [`unix_seconds`] on a column's smallest and largest value.
fn judge_unix_seconds(what: &str, range: Option<(f64, f64)>) -> Result<String, String> {
    let assumed = format!("{what} is an integer, read as unix seconds");
    let Some((min, max)) = range else {
        return Ok(format!(
            "{assumed} (it holds no values yet to check that by)"
        ));
    };
    let as_seconds = |v: f64| {
        chrono::DateTime::from_timestamp(v as i64, 0).map_or_else(
            || "far beyond any real date".to_owned(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
    };
    let refuse = |v: f64, why: &str| {
        Err(format!(
            "{assumed}, but it holds {v:.0}, which as seconds is {}: {why}. Nothing can be compared safely, so the rule is refused: store unix seconds, or use a DATE/TIMESTAMP column",
            as_seconds(v)
        ))
    };
    for v in [max, min] {
        if v.abs() > MAX_UNIX_SECONDS {
            return refuse(v, "these are not seconds (milliseconds or microseconds?)");
        }
    }
    if max < MIN_NEWEST_UNIX_SECONDS {
        return refuse(max, "its newest value cannot be seconds (days, hours or minutes since 1970?), and every record would count as expired");
    }
    Ok(format!(
        "{assumed} (its values run from {} to {})",
        as_seconds(min),
        as_seconds(max)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_time_columns_must_look_like_unix_seconds() {
        let what = "since column created_at";
        let note = judge_unix_seconds(what, Some((1.5e9, 1.75e9))).unwrap();
        assert!(note.contains("read as unix seconds"), "{note}");
        assert!(note.contains("2017-07-14T02:40:00Z"), "{note}");
        // Milliseconds, microseconds, a negative in milliseconds.
        for range in [(1.5e9, 1.75e12), (1.5e15, 1.75e15), (-1.0e12, 1.7e9)] {
            let e = judge_unix_seconds(what, Some(range)).unwrap_err();
            assert!(e.contains("not seconds"), "{e}");
        }
        // Days since 1970: everything would have expired in 1970.
        let e = judge_unix_seconds(what, Some((19_000.0, 20_500.0))).unwrap_err();
        assert!(e.contains("newest value"), "{e}");
        assert!(judge_unix_seconds(what, None).is_ok());
    }
}

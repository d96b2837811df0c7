//! Where a person's data is, for a data-subject request (GDPR art. 15 and 17): each
//! `[[subject]]`'s records that match the request's identity, by key, and — for the access
//! package — those records' columns. Reads only: nothing in the target databases changes.
//!
//! A subject found by `identify` matches a record when every given attribute it declares
//! equals the record's column after normalization (trimmed; e-mail addresses compared
//! case-insensitively), exactly: never a prefix, never a pattern. A subject found `via`
//! another takes the records whose foreign key is one of the keys found there (in any
//! database: the keys are bound as values). Values are always bound, never spliced, and
//! never logged: the errors here name subjects, tables and columns only.

use super::requests::Identity;
use crate::config::{Config, Find, Ident, Subject};
use crate::db::schema::{self, Shapes, SubjectShape};
use crate::db::{Db, Key, Sql, Value};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many keys are collected per subject (one person has far fewer; more means
/// the identity is not one person's, and the result says so).
pub const KEY_CAP: usize = 10_000;

/// Keys bound per statement when reading through a list of keys (SQLite allows 999
/// parameters in older builds).
const CHUNK: usize = 500;

/// What searching one subject found.
#[derive(Debug, Clone)]
pub struct Found<'a> {
    /// The subject.
    pub subject: &'a Subject,
    /// Whether it was searched: `false` when the identity has none of the attributes it is
    /// found by (or its parent was not searched).
    pub searched: bool,
    /// When not searched: what it needs (attribute names, or `via SUBJECT`).
    pub needs: Vec<String>,
    /// The keys of the matching records, ordered.
    pub keys: Vec<Key>,
    /// Whether [`KEY_CAP`] was hit (more records match than `keys` holds).
    pub capped: bool,
    /// How its table's key is read and bound.
    shape: Option<SubjectShape>,
}

impl Found<'_> {
    /// How the subject's key is read and bound (`None` when it was not searched).
    pub fn shape(&self) -> Option<SubjectShape> {
        self.shape
    }
}

/// The rows of one subject's matching records, every column as text.
#[derive(Debug, Clone)]
pub struct Rows {
    /// The column names, as the catalog spells them.
    pub columns: Vec<String>,
    /// The rows, one value per column (`None`: NULL).
    pub rows: Vec<Vec<Option<String>>>,
}

/// Connects to every database some subject lives in.
pub async fn connect(config: &Config) -> Result<BTreeMap<String, Db>, String> {
    let mut dbs = BTreeMap::new();
    for subject in &config.subjects {
        if dbs.contains_key(&subject.database) {
            continue;
        }
        let Some(spec) = config.databases.get(&subject.database) else {
            close(dbs).await;
            return Err(format!(
                "subject \"{}\": database '{}' is not configured",
                subject.name, subject.database
            ));
        };
        match Db::connect(spec).await {
            Ok(db) => {
                dbs.insert(subject.database.clone(), db);
            }
            Err(e) => {
                close(dbs).await;
                return Err(e.to_string());
            }
        }
    }
    Ok(dbs)
}

/// Closes what [`connect`] opened.
pub async fn close(dbs: BTreeMap<String, Db>) {
    for db in dbs.into_values() {
        db.close().await;
    }
}

/// Searches every subject for `identity`, parents before the subjects reached through
/// them; the result is in config order. `Err` says what could not be searched.
pub async fn find<'a>(
    config: &'a Config,
    dbs: &BTreeMap<String, Db>,
    identity: &Identity,
) -> Result<Vec<Found<'a>>, String> {
    let mut shapes = Shapes::default();
    let mut done: BTreeMap<&str, Found<'a>> = BTreeMap::new();
    while done.len() < config.subjects.len() {
        let mut progress = false;
        for subject in &config.subjects {
            if done.contains_key(subject.name.as_str()) {
                continue;
            }
            let found = match &subject.find {
                Find::Identify(map) => {
                    search_identify(dbs, &mut shapes, subject, map, identity).await?
                }
                Find::Via {
                    subject: parent,
                    foreign_key,
                } => {
                    let Some(parent) = done.get(parent.as_str()) else {
                        continue;
                    };
                    search_via(dbs, &mut shapes, subject, parent, foreign_key).await?
                }
            };
            done.insert(subject.name.as_str(), found);
            progress = true;
        }
        if !progress {
            let left: Vec<&str> = config
                .subjects
                .iter()
                .map(|s| s.name.as_str())
                .filter(|n| !done.contains_key(n))
                .collect();
            return Err(format!(
                "subjects {} are reached through subjects that are never found (a circle of `via`)",
                left.join(", ")
            ));
        }
    }
    Ok(config
        .subjects
        .iter()
        .filter_map(|s| done.remove(s.name.as_str()))
        .collect())
}

/// Every column of the records `found` holds, as text, ordered by key.
pub async fn rows(dbs: &BTreeMap<String, Db>, found: &Found<'_>) -> Result<Rows, String> {
    let subject = found.subject;
    let db = db_of(dbs, subject)?;
    let Some(shape) = found.shape else {
        return Ok(Rows {
            columns: Vec::new(),
            rows: Vec::new(),
        });
    };
    let table = schema::describe(db, &subject.table)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "subject \"{}\": table '{}' no longer exists in database '{}'",
                subject.name, subject.table, subject.database
            )
        })?;
    let mut columns = Vec::new();
    let mut selected = Vec::new();
    for c in &table.columns {
        let ident = Ident::parse(&c.name).map_err(|why| {
            format!(
                "subject \"{}\": column {why}; retentiond cannot read it into the access package",
                subject.name
            )
        })?;
        selected.push(db.dialect.any_as_text(&db.dialect.ident(&ident)));
        columns.push(c.name.clone());
    }
    let key = db.dialect.ident(&subject.key);
    let mut rows = Vec::new();
    for chunk in found.keys.chunks(CHUNK) {
        if selected.is_empty() {
            break;
        }
        let values: Vec<Value> = chunk.iter().map(Key::value).collect();
        let mut sql = Sql::new(db.dialect);
        sql.push("SELECT ")
            .push(&selected.join(", "))
            .push(" FROM ")
            .push(&db.dialect.table(&subject.table))
            .push(" WHERE ")
            .key_list(&key, &values, shape.key_unsigned)
            .push(" ORDER BY ")
            .push(&key);
        rows.extend(db.fetch_texts(&sql).await.map_err(|e| e.to_string())?);
    }
    Ok(Rows { columns, rows })
}

fn db_of<'d>(dbs: &'d BTreeMap<String, Db>, subject: &Subject) -> Result<&'d Db, String> {
    dbs.get(&subject.database).ok_or_else(|| {
        format!(
            "subject \"{}\": database '{}' is not open",
            subject.name, subject.database
        )
    })
}

/// The subject's table checked as `check` checks it, for how its key is read.
async fn shape_of(db: &Db, shapes: &mut Shapes, subject: &Subject) -> Result<SubjectShape, String> {
    let table = shapes
        .describe(db, &subject.table)
        .await
        .map_err(|e| e.to_string())?;
    schema::check_subject(subject, table.as_ref(), db.dialect, &subject.database).map_err(
        |problems| {
            let list: Vec<String> = problems.into_iter().map(|p| format!("{}: {}", p.key, p.message)).collect();
            format!(
                "subject \"{}\" (line {}) does not fit its table: {}; `retentiond check` shows the details",
                subject.name,
                subject.line,
                list.join("; ")
            )
        },
    )
}

fn not_searched(subject: &Subject, needs: Vec<String>) -> Found<'_> {
    Found {
        subject,
        searched: false,
        needs,
        keys: Vec::new(),
        capped: false,
        shape: None,
    }
}

async fn search_identify<'a>(
    dbs: &BTreeMap<String, Db>,
    shapes: &mut Shapes,
    subject: &'a Subject,
    map: &BTreeMap<String, Ident>,
    identity: &Identity,
) -> Result<Found<'a>, String> {
    let given: Vec<(&Ident, &str, &str)> = map
        .iter()
        .filter_map(|(attr, col)| {
            identity
                .values()
                .get(attr)
                .map(|v| (col, attr.as_str(), v.as_str()))
        })
        .collect();
    if given.is_empty() {
        return Ok(not_searched(subject, map.keys().cloned().collect()));
    }
    let db = db_of(dbs, subject)?;
    let shape = shape_of(db, shapes, subject).await?;
    let d = db.dialect;
    let key = d.ident(&subject.key);
    let mut sql = Sql::new(d);
    sql.push("SELECT ")
        .push(&d.key_select(&key, shape.key))
        .push(" FROM ")
        .push(&d.table(&subject.table))
        .push(" WHERE ");
    for (i, (col, attr, value)) in given.iter().enumerate() {
        if i > 0 {
            sql.push(" AND ");
        }
        let trimmed = format!("TRIM({})", d.any_as_text(&d.ident(col)));
        let expr = if attr.contains("mail") {
            format!("LOWER({trimmed})")
        } else {
            trimmed
        };
        // Exactly equal: no collation that ignores case or padding decides a match.
        d.push_equals_exactly(&mut sql, &expr, value);
    }
    sql.push(" ORDER BY ")
        .push(&key)
        .push(&format!(" LIMIT {}", KEY_CAP + 1));
    let records = db
        .fetch_records(&sql, shape.key)
        .await
        .map_err(|e| e.to_string())?;
    let mut keys: Vec<Key> = records.into_iter().map(|r| r.key).collect();
    let capped = keys.len() > KEY_CAP;
    keys.truncate(KEY_CAP);
    Ok(Found {
        subject,
        searched: true,
        needs: Vec::new(),
        keys,
        capped,
        shape: Some(shape),
    })
}

async fn search_via<'a>(
    dbs: &BTreeMap<String, Db>,
    shapes: &mut Shapes,
    subject: &'a Subject,
    parent: &Found<'_>,
    foreign_key: &Ident,
) -> Result<Found<'a>, String> {
    if !parent.searched {
        let mut needs = vec![format!("via {}", parent.subject.name)];
        needs.extend(parent.needs.iter().cloned());
        return Ok(not_searched(subject, needs));
    }
    let db = db_of(dbs, subject)?;
    let shape = shape_of(db, shapes, subject).await?;
    let parent_unsigned = parent.shape.is_some_and(|s| s.key_unsigned);
    let d = db.dialect;
    let key = d.ident(&subject.key);
    let fk = d.ident(foreign_key);
    let mut keys = BTreeSet::new();
    for chunk in parent.keys.chunks(CHUNK) {
        if keys.len() > KEY_CAP {
            break;
        }
        let values: Vec<Value> = chunk.iter().map(Key::value).collect();
        let mut sql = Sql::new(d);
        sql.push("SELECT ")
            .push(&d.key_select(&key, shape.key))
            .push(" FROM ")
            .push(&d.table(&subject.table))
            .push(" WHERE ")
            .key_list(&fk, &values, parent_unsigned)
            .push(" ORDER BY ")
            .push(&key)
            .push(&format!(" LIMIT {}", KEY_CAP + 1));
        let records = db
            .fetch_records(&sql, shape.key)
            .await
            .map_err(|e| e.to_string())?;
        keys.extend(records.into_iter().map(|r| r.key));
    }
    let capped = keys.len() > KEY_CAP || parent.capped;
    let keys: Vec<Key> = keys.into_iter().take(KEY_CAP).collect();
    Ok(Found {
        subject,
        searched: true,
        needs: Vec::new(),
        keys,
        capped,
        shape: Some(shape),
    })
}

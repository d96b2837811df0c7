//! `[[subject]]` against the databases: each subject's table, key and columns checked the
//! way a rule's are (`db::schema::check_subject`), and a `via` foreign key compared with the
//! key it refers to. A mismatch is a config error at the line of the key it is about, so
//! that `check`, `plan` and `run` refuse a broken subject as they refuse a broken rule: a
//! data-subject request that cannot find a person's records, or cannot erase them, is
//! found out now and not a month into the legal deadline. Also what `check` warns about:
//! a table some rule acts on that no subject covers.

use crate::config::{Config, ConfigProblem, Find, Subject};
use crate::db::schema::{self, ColClass, SchemaProblem, Shapes, SubjectShape};
use crate::db::{Db, DbError, Dialect};
use std::collections::BTreeMap;

/// What checking the subjects found.
#[derive(Debug, Default)]
pub struct SubjectCheck {
    /// Mismatches between subjects and their tables: config errors (exit 78), each at the
    /// line of the key it is about.
    pub problems: Vec<ConfigProblem>,
    /// What could not be checked (a catalog that did not answer), for `check` to tell.
    pub notes: Vec<String>,
}

/// Checks every subject whose database is open in `dbs` against its table, asking the
/// catalog through `shapes` (shared with the rules' checks, so that a table is described
/// once). Subjects of other databases are left to whoever opens those.
pub async fn check_subjects(
    config: &Config,
    dbs: &BTreeMap<String, Db>,
    shapes: &mut Shapes,
) -> SubjectCheck {
    let mut out = SubjectCheck::default();
    let mut fitting: BTreeMap<&str, SubjectShape> = BTreeMap::new();
    for subject in &config.subjects {
        let Some(db) = dbs.get(&subject.database) else {
            continue;
        };
        match check_one(db, subject, shapes).await {
            Ok(Ok(shape)) => {
                fitting.insert(subject.name.as_str(), shape);
            }
            Ok(Err(found)) => out
                .problems
                .extend(found.into_iter().map(|p| problem_at(config, subject, p))),
            Err(e) => out.notes.push(format!(
                "subject \"{}\" (line {}) could not be checked against {}.{}: {e}",
                subject.name, subject.line, subject.database, subject.table
            )),
        }
    }
    // Only now is every key known: a subject may be reached through one written after it.
    for subject in &config.subjects {
        let Find::Via {
            subject: parent,
            foreign_key,
        } = &subject.find
        else {
            continue;
        };
        let (Some(child), Some(parent_shape)) = (
            fitting.get(subject.name.as_str()),
            fitting.get(parent.as_str()),
        ) else {
            continue;
        };
        let Some(fk_class) = child.foreign_key_class else {
            continue;
        };
        if let Some((held, referred)) = type_mismatch(fk_class, parent_shape.key_class) {
            let key = config
                .subjects
                .iter()
                .find(|s| &s.name == parent)
                .map_or_else(|| "key".to_owned(), |s| s.key.to_string());
            out.problems.push(problem_at(
                config,
                subject,
                SchemaProblem {
                    key: "via.foreign_key".into(),
                    message: format!(
                        "column '{foreign_key}' holds {held}, but the key '{key}' of subject \"{parent}\", which it refers to, holds {referred}: the database would have to convert one to compare them (PostgreSQL refuses to), and then text like '007' would find key 7; give the column the type of that key"
                    ),
                    line: None,
                },
            ));
        }
    }
    out
}

/// One subject against its table: the catalog's shape, then (SQLite, which stores any
/// type in any column) the key's data.
async fn check_one(
    db: &Db,
    subject: &Subject,
    shapes: &mut Shapes,
) -> Result<Result<SubjectShape, Vec<SchemaProblem>>, DbError> {
    let table = shapes.describe(db, &subject.table).await?;
    let shape = match schema::check_subject(subject, table.as_ref(), db.dialect, &subject.database)
    {
        Ok(shape) => shape,
        Err(problems) => return Ok(Err(problems)),
    };
    if db.dialect == Dialect::Sqlite {
        if let Some(message) =
            schema::sqlite_key_problem(db, &subject.table, &subject.key, shape.key).await?
        {
            return Ok(Err(vec![SchemaProblem {
                key: "key".into(),
                message,
                line: None,
            }]));
        }
    }
    Ok(Ok(shape))
}

/// What a foreign key holds and what the key it refers to holds, in words, when the two
/// do not compare exactly; `None` when they do (or the catalog cannot say, as for a SQLite
/// column without a declared type).
fn type_mismatch(foreign_key: ColClass, key: ColClass) -> Option<(&'static str, &'static str)> {
    match (foreign_key, key) {
        (ColClass::Text, ColClass::Int) => Some(("text", "integers")),
        (ColClass::Int, ColClass::Text) => Some(("integers", "text")),
        _ => None,
    }
}

/// A problem of `subject`'s, as a config error at the line of the key it names.
fn problem_at(config: &Config, subject: &Subject, p: SchemaProblem) -> ConfigProblem {
    ConfigProblem {
        file: config.path.clone(),
        line: p.line.unwrap_or_else(|| subject.line_of(&p.key)),
        key: format!("subject \"{}\" → {}", subject.name, p.key),
        message: p.message,
    }
}

/// One warning per rule whose table no `[[subject]]` covers: a data-subject request would
/// not find a person's records there, though retention shows the table holds personal
/// data. A warning, not an error: the table may hold none (a log keyed by a session), and
/// a config without requests in mind must still run.
pub fn uncovered(config: &Config) -> Vec<String> {
    config
        .rules
        .iter()
        .filter(|r| {
            !config
                .subjects
                .iter()
                .any(|s| s.database == r.database && s.table == r.table)
        })
        .map(|r| {
            format!(
                "rule \"{}\" acts on {}.{}, which no [[subject]] covers: a data-subject request would not find a person there",
                r.name, r.database, r.table
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_integer_against_text_is_a_mismatch() {
        assert!(type_mismatch(ColClass::Text, ColClass::Int).is_some());
        assert!(type_mismatch(ColClass::Int, ColClass::Text).is_some());
        assert!(type_mismatch(ColClass::Int, ColClass::Int).is_none());
        assert!(type_mismatch(ColClass::Other, ColClass::Int).is_none());
    }
}

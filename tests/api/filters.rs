//! A rule's `filter` is one SQL condition, parsed in its database's dialect and sent as
//! re-rendered, against real PostgreSQL, MariaDB and SQLite: the two injections that once
//! broke out of retentiond's parentheses (and deleted records under a legal hold) stop at
//! `check` with exit 78 naming the line and `filter`, and nothing is deleted; a legitimate
//! filter with parentheses and OR still acts, and still respects a hold.

use crate::helpers::{run, ConfigBuilder, Kind, RuleSpec, TestDb};
use chrono::{Duration, Utc};

/// Reproduced on PostgreSQL: closed retentiond's `AND (`, so that the hold's `AND NOT …`
/// bound only the second half, and 10 held rows were deleted with `check` exiting 0.
const PG_ATTACK: &str = "decision = 'rejected') OR (decision = 'rejected'";

/// Reproduced on MariaDB (in TOML: `"decision = 'x\\'' OR TRUE) -- '"`): MySQL reads `\'`
/// as a quote inside the string, so `OR TRUE)` is SQL and `-- '` comments out the hold, the
/// LIMIT and the lock.
const MARIADB_ATTACK: &str = r"decision = 'x\'' OR TRUE) -- '";

fn years_ago(y: i64) -> String {
    (Utc::now() - Duration::days(y * 366))
        .format("%Y-%m-%d")
        .to_string()
}

/// `applicants` with `rows` of `(id, decision, years since the decision)`.
async fn applicants(kind: Kind, rows: &[(i64, &str, i64)]) -> Option<TestDb> {
    let db = TestDb::new(kind).await?;
    let text = if kind == Kind::MySql {
        "VARCHAR(50)"
    } else {
        "TEXT"
    };
    db.exec(&format!(
        "CREATE TABLE applicants (id INTEGER PRIMARY KEY, decision {text}, decided_at DATE)"
    ))
    .await;
    let values: Vec<String> = rows
        .iter()
        .map(|(id, decision, years)| format!("({id}, '{decision}', '{}')", years_ago(*years)))
        .collect();
    db.exec(&format!(
        "INSERT INTO applicants VALUES {}",
        values.join(", ")
    ))
    .await;
    Some(db)
}

/// A legal hold on `applicants`.
fn hold(filter: &str) -> String {
    format!(
        "[[hold]]\nname = \"litigation\"\nreason = \"Case 2026/4 about the hiring round\"\n\
         database = \"main\"\ntable = \"applicants\"\nfilter = {}\n\n",
        crate::helpers::quoted(filter)
    )
}

/// Deletes applicants decided more than a year ago that `filter` selects (brake off).
fn rule(filter: &str) -> RuleSpec {
    RuleSpec::delete("rejected-applicants", "applicants", "decided_at")
        .after("1 year")
        .max_fraction(1.0)
        .filter(filter)
}

fn ids(rows: Vec<Vec<Option<String>>>) -> Vec<i64> {
    rows.iter()
        .filter_map(|r| r[0].as_deref().and_then(|s| s.parse().ok()))
        .collect()
}

/// Ten expired rejected applicants, all under a legal hold, and a rule whose filter is
/// `attack`: every verb refuses the config with exit 78 at the filter's line, saying
/// `says`, and all ten are still there.
async fn refused(kind: Kind, attack: &str, says: &str) {
    let rows: Vec<(i64, &str, i64)> = (1..=10).map(|id| (id, "rejected", 3)).collect();
    let Some(db) = applicants(kind, &rows).await else {
        return;
    };
    let config = ConfigBuilder::new(&db)
        .section(&hold("id <= 10"))
        .rule(rule(attack));
    let line = config.line("rule[0].filter");
    let path = config.write(&db);
    for verb in [&["check"][..], &["run", "--once"][..], &["plan"][..]] {
        let r = run(&path, verb);
        r.assert_code(78);
        let named = format!("retentiond.toml:{line}: rule \"rejected-applicants\" → filter:");
        if !r.stderr.contains(&named) {
            r.fail(&format!(
                "the message does not name line {line} and the key filter"
            ));
        }
        if !r.stderr.contains(says) {
            r.fail(&format!("the message does not say {says:?}"));
        }
        assert_eq!(
            db.count("SELECT COUNT(*) FROM applicants").await,
            10,
            "{verb:?} deleted held records"
        );
    }
}

#[tokio::test]
async fn the_parenthesis_attack_is_refused_on_postgres() {
    refused(Kind::Postgres, PG_ATTACK, "is not one SQL condition").await;
}

#[tokio::test]
async fn the_parenthesis_attack_is_refused_on_mariadb() {
    refused(Kind::MySql, PG_ATTACK, "is not one SQL condition").await;
}

#[tokio::test]
async fn the_parenthesis_attack_is_refused_on_sqlite() {
    refused(Kind::Sqlite, PG_ATTACK, "is not one SQL condition").await;
}

#[tokio::test]
async fn the_backslash_comment_attack_is_refused_on_mariadb() {
    refused(Kind::MySql, MARIADB_ATTACK, "comment").await;
}

#[tokio::test]
async fn the_backslash_comment_attack_is_refused_on_postgres() {
    // PostgreSQL would read the backslash literally, but only while
    // standard_conforming_strings is on: a backslash inside quotes is refused as ambiguous.
    refused(Kind::Postgres, MARIADB_ATTACK, "backslash").await;
}

#[tokio::test]
async fn the_backslash_comment_attack_is_one_harmless_string_on_sqlite() {
    // SQLite has no backslash escapes: the whole tail is one string literal, the rule
    // matches no applicant, and the held ones stay.
    let rows: Vec<(i64, &str, i64)> = (1..=10).map(|id| (id, "rejected", 3)).collect();
    let Some(db) = applicants(Kind::Sqlite, &rows).await else {
        return;
    };
    let config = ConfigBuilder::new(&db)
        .section(&hold("id <= 10"))
        .rule(rule(MARIADB_ATTACK))
        .write(&db);
    run(&config, &["check"]).assert_code(0);
    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(db.count("SELECT COUNT(*) FROM applicants").await, 10);
}

/// A filter with parentheses and OR acts on what it selects, and a hold whose filter has
/// them too still keeps its records; `holds` shows the filter as it is sent.
async fn a_filter_with_parentheses_and_or_works_and_respects_a_hold(kind: Kind) {
    let Some(db) = applicants(
        kind,
        &[
            (1, "rejected", 3),
            (2, "withdrawn", 3),
            (3, "rejected", 3),
            (4, "hired", 3),
            (5, "rejected", 0),
            (6, "withdrawn", 3),
        ],
    )
    .await
    else {
        return;
    };
    let config = ConfigBuilder::new(&db)
        .section(&hold("(id=3 or id=6)"))
        .rule(rule(
            "(decision = 'rejected' OR decision = 'withdrawn') AND (id > 0)",
        ))
        .write(&db);
    run(&config, &["check"]).assert_code(0);
    let r = run(&config, &["run", "--once"]);
    r.assert_code(0);
    assert_eq!(
        ids(db.rows("applicants", &["id"]).await),
        vec![3, 4, 5, 6],
        "{r}"
    );
    let h = run(&config, &["holds"]);
    h.assert_code(0);
    if !h.stdout.contains("(id = 3 OR id = 6)") {
        h.fail("`holds` does not show the hold's filter as re-rendered");
    }
}

#[tokio::test]
async fn a_filter_with_parentheses_and_or_works_and_respects_a_hold_on_postgres() {
    a_filter_with_parentheses_and_or_works_and_respects_a_hold(Kind::Postgres).await;
}

#[tokio::test]
async fn a_filter_with_parentheses_and_or_works_and_respects_a_hold_on_mariadb() {
    a_filter_with_parentheses_and_or_works_and_respects_a_hold(Kind::MySql).await;
}

#[tokio::test]
async fn a_filter_with_parentheses_and_or_works_and_respects_a_hold_on_sqlite() {
    a_filter_with_parentheses_and_or_works_and_respects_a_hold(Kind::Sqlite).await;
}

//! Every class of bad config stops retentiond before it touches anything: exit 78 and a
//! message naming the file, the line and the key.

use crate::helpers::{quoted, run, ConfigBuilder, Kind, RuleSpec, TestDb};

/// The valid config every case breaks in one place: two rules on `applicants`.
fn valid(db: &TestDb) -> ConfigBuilder {
    ConfigBuilder::new(db)
        .rule(
            RuleSpec::delete("rejected-applicants", "applicants", "decided_at")
                .legal_basis("GDPR art. 5(1)(e)")
                .filter("decision = 'rejected'")
                .after("0 days"),
        )
        .rule(
            RuleSpec::delete("old-applicants", "applicants", "decided_at")
                .legal_basis("GDPR art. 5(1)(e)")
                .after("2 years"),
        )
}

/// Applies `break_it` to the valid config, runs `check`, `run --once` and `plan`, and
/// asserts for each: exit 78, the line of `at` (a `ConfigBuilder::line` path, e.g.
/// `rule[1].table` for the value's own line or `rule[1]` for its rule's `[[rule]]` line)
/// and `key` in the message, and that no applicant was deleted.
async fn refused(break_it: impl FnOnce(&mut ConfigBuilder), at: &str, key: &str) {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    db.exec(
        "CREATE TABLE applicants (id INTEGER PRIMARY KEY, email TEXT, decision TEXT, decided_at TEXT);
         INSERT INTO applicants VALUES (1, 'a@example.be', 'rejected', '2020-01-01');
         INSERT INTO applicants VALUES (2, 'b@example.be', 'rejected', '2021-01-01')",
    )
    .await;
    let mut config = valid(&db);
    break_it(&mut config);
    let line = config.line(at);
    let path = config.write(&db);
    for verb in [&["check"][..], &["run", "--once"][..], &["plan"][..]] {
        let r = run(&path, verb);
        r.assert_code(78);
        if !r.stderr.contains(&format!("retentiond.toml:{line}:")) {
            r.fail(&format!("the message does not name line {line} ({at})"));
        }
        if !r.stderr.contains(key) {
            r.fail(&format!("the message does not name the key {key:?}"));
        }
        assert_eq!(
            db.count("SELECT COUNT(*) FROM applicants").await,
            2,
            "{verb:?} deleted something"
        );
    }
}

#[tokio::test]
async fn a_syntax_error_is_refused_with_its_line() {
    // An unterminated string.
    refused(
        |c| {
            c.rules[1]
                .extra
                .push(("note".into(), "\"old-applicants".into()))
        },
        "rule[1].note",
        "syntax",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_key_is_refused_with_its_line() {
    refused(
        |c| c.rules[1].extra.push(("colour".into(), quoted("red"))),
        "rule[1].colour",
        "colour",
    )
    .await;
}

#[tokio::test]
async fn a_bad_cron_is_refused_with_its_line() {
    refused(
        |c| c.schedule = Some("0 30 2 * *".into()),
        "daemon.schedule",
        "daemon.schedule",
    )
    .await;
}

#[tokio::test]
async fn a_bad_duration_is_refused_with_its_line() {
    refused(
        |c| c.rules[1].after = Some("2 yeers".into()),
        "rule[1].expires.after",
        "expires.after",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_database_is_refused_with_its_line() {
    refused(
        |c| c.rules[1].database = "mian".into(),
        "rule[1].database",
        "database",
    )
    .await;
}

#[tokio::test]
async fn a_missing_table_is_refused_at_the_line_of_its_table_key() {
    refused(
        |c| c.rules[1].table = "applicant".into(),
        "rule[1].table",
        "table",
    )
    .await;
}

#[tokio::test]
async fn a_missing_column_is_refused_at_the_line_of_its_expires_key() {
    refused(
        |c| c.rules[1].since = "decided".into(),
        "rule[1].expires.since",
        "expires.since",
    )
    .await;
}

#[tokio::test]
async fn a_non_unique_key_is_refused_at_the_line_of_its_key_key() {
    refused(|c| c.rules[1].key = "email".into(), "rule[1].key", "key").await;
}

#[tokio::test]
async fn an_identifier_with_quotes_is_refused() {
    refused(
        |c| c.rules[1].table = "applicants\" WHERE 1=1 --".into(),
        "rule[1].table",
        "table",
    )
    .await;
}

#[tokio::test]
async fn an_identifier_with_a_semicolon_is_refused() {
    refused(
        |c| c.rules[1].key = "id; DROP TABLE applicants".into(),
        "rule[1].key",
        "key",
    )
    .await;
}

#[tokio::test]
async fn a_duplicate_rule_name_is_refused() {
    refused(
        |c| c.rules[1].name = "rejected-applicants".into(),
        "rule[1].name",
        "name",
    )
    .await;
}

#[tokio::test]
async fn a_missing_config_file_exits_78_and_says_how_to_point_at_one() {
    let r = run(
        std::path::Path::new("/nonexistent/retentiond.toml"),
        &["check"],
    );
    r.assert_code(78);
    if !r.stderr.contains("--config") {
        r.fail("the message does not say how to point at a config (--config)");
    }
}

#[tokio::test]
async fn an_unknown_rule_on_the_command_line_exits_2() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    let config = ConfigBuilder::new(&db).write(&db);
    run(&config, &["run", "--once", "--rule", "nope"]).assert_code(2);
}

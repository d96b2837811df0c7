//! Every class of bad config stops retentiond before it touches anything: exit 78 and a
//! message naming the file, the line and the key.

use crate::helpers::{config_head, run, write_config, Kind, TestDb};

const RULES: &str = r#"[[rule]]
name = "rejected-applicants"
legal_basis = "GDPR art. 5(1)(e)"
database = "main"
table = "applicants"
key = "id"
filter = "decision = 'rejected'"
expires = { since = "decided_at", after = "0 days" }
action = "delete"

[[rule]]
name = "old-applicants"
legal_basis = "GDPR art. 5(1)(e)"
database = "main"
table = "applicants"
key = "id"
expires = { since = "decided_at", after = "2 years" }
action = "delete"
"#;

/// Applies `edit` (find, replace) to the second rule, runs `check` and `run --once`, and
/// asserts exit 78, the line of the edit (or `line` if given) and `key` in the message,
/// and that no applicant was deleted.
async fn refused(find: &str, replace: &str, key: &str) {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    db.exec(
        "CREATE TABLE applicants (id INTEGER PRIMARY KEY, email TEXT, decision TEXT, decided_at TEXT);
         INSERT INTO applicants VALUES (1, 'a@example.be', 'rejected', '2020-01-01');
         INSERT INTO applicants VALUES (2, 'b@example.be', 'rejected', '2021-01-01')",
    )
    .await;
    let head = config_head(&db);
    let second = RULES
        .find("name = \"old-applicants\"")
        .expect("second rule");
    let (first_part, second_part) = RULES.split_at(second);
    assert!(
        second_part.contains(find) || head.contains(find),
        "fixture has no {find:?}"
    );
    let text = if head.contains(find) {
        format!("{}{RULES}", head.replacen(find, replace, 1))
    } else {
        format!(
            "{head}{first_part}{}",
            second_part.replacen(find, replace, 1)
        )
    };
    let config = write_config(db.dir.path(), &text);
    let edited = text.rfind(replace).expect("edit in config");
    let edit_line = text[..edited].matches('\n').count() + 1;
    let rule_line = text[..text.rfind("[[rule]]").expect("rule")]
        .matches('\n')
        .count()
        + 1;
    for verb in [&["check"][..], &["run", "--once"][..], &["plan"][..]] {
        let r = run(&config, verb);
        assert_eq!(
            r.code, 78,
            "{verb:?} on {replace:?}: exit {}\n{}{}",
            r.code, r.stdout, r.stderr
        );
        let at_edit = format!("retentiond.toml:{edit_line}:");
        let at_rule = format!("retentiond.toml:{rule_line}:");
        assert!(
            r.stderr.contains(&at_edit) || r.stderr.contains(&at_rule),
            "{verb:?}: no line {edit_line} or {rule_line} in: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains(key),
            "{verb:?}: key {key:?} not named in: {}",
            r.stderr
        );
        assert_eq!(
            db.count("SELECT COUNT(*) FROM applicants").await,
            2,
            "nothing was deleted"
        );
    }
}

#[tokio::test]
async fn a_syntax_error_is_refused_with_its_line() {
    refused(
        "name = \"old-applicants\"",
        "name = \"old-applicants",
        "syntax",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_key_is_refused_with_its_line() {
    refused(
        "action = \"delete\"\n",
        "colour = \"red\"\naction = \"delete\"\n",
        "colour",
    )
    .await;
}

#[tokio::test]
async fn a_bad_cron_is_refused_with_its_line() {
    refused(
        "schedule = \"0 30 2 * * *\"",
        "schedule = \"0 30 2 * *\"",
        "daemon.schedule",
    )
    .await;
}

#[tokio::test]
async fn a_bad_duration_is_refused_with_its_line() {
    refused(
        "after = \"2 years\"",
        "after = \"2 yeers\"",
        "expires.after",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_database_is_refused_with_its_line() {
    refused("database = \"main\"", "database = \"mian\"", "database").await;
}

#[tokio::test]
async fn a_missing_table_is_refused_with_the_rule_line() {
    refused("table = \"applicants\"", "table = \"applicant\"", "table").await;
}

#[tokio::test]
async fn a_missing_column_is_refused_with_the_rule_line() {
    refused(
        "since = \"decided_at\", after = \"2 years\"",
        "since = \"decided\", after = \"2 years\"",
        "expires.since",
    )
    .await;
}

#[tokio::test]
async fn a_non_unique_key_is_refused_with_the_rule_line() {
    refused("key = \"id\"", "key = \"email\"", "key").await;
}

#[tokio::test]
async fn an_identifier_with_quotes_is_refused() {
    refused(
        "table = \"applicants\"",
        "table = \"applicants\\\" WHERE 1=1 --\"",
        "table",
    )
    .await;
}

#[tokio::test]
async fn an_identifier_with_a_semicolon_is_refused() {
    refused("key = \"id\"", "key = \"id; DROP TABLE applicants\"", "key").await;
}

#[tokio::test]
async fn a_duplicate_rule_name_is_refused() {
    refused(
        "name = \"old-applicants\"",
        "name = \"rejected-applicants\"",
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
    assert_eq!(r.code, 78);
    assert!(r.stderr.contains("--config"), "{}", r.stderr);
}

#[tokio::test]
async fn an_unknown_rule_on_the_command_line_exits_2() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    let config = write_config(db.dir.path(), &config_head(&db));
    let r = run(&config, &["run", "--once", "--rule", "nope"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

//! `read_url`: `plan` and `check` count on a replica so that counting never loads the
//! primary, while `run` decides and deletes on the primary alone. The "replica" here is a
//! second database on the same local server holding other rows, so that which of the two
//! was counted shows in the numbers.

use crate::helpers::{events, run, ConfigBuilder, DatabaseEntry, Kind, RuleSpec, Run, TestDb};
use std::path::PathBuf;

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The config of `primary` with one rule deleting events older than a year, and
/// `read_url` on database `main`.
fn with_read_url(primary: &TestDb, read_url: &str) -> ConfigBuilder {
    let mut c = ConfigBuilder::new(primary).rule(
        RuleSpec::delete("old-events", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0),
    );
    c.databases[0] = DatabaseEntry::new("main", &primary.url).option("read_url", read_url);
    c
}

/// The one rule of `plan --format json`.
fn planned_rule(r: &Run) -> serde_json::Value {
    let doc = r.json();
    match doc["rules"].as_array().map(Vec::as_slice) {
        Some([rule]) => rule.clone(),
        _ => r.fail("plan --format json does not hold exactly one rule"),
    }
}

/// Primary: 5 expired events and 2 young ones; replica: 3 expired and 1 young. `plan`
/// and `check` must show the replica's 3, `run --once` must delete the primary's 5.
async fn counts_on_the_replica_and_deletes_on_the_primary(kind: Kind) {
    let (Some(primary), Some(replica)) = (events(kind, 5).await, events(kind, 3).await) else {
        return;
    };
    primary
        .exec("INSERT INTO events VALUES (100, CURRENT_DATE), (101, CURRENT_DATE)")
        .await;
    replica
        .exec("INSERT INTO events VALUES (100, CURRENT_DATE)")
        .await;
    let path: PathBuf = with_read_url(&primary, &replica.url).write(&primary);

    let plan = run(&path, &["plan", "--format", "json"]);
    plan.assert_code(0);
    let rule = planned_rule(&plan);
    if rule["count"] != 3 || rule["table_rows"] != 4 {
        plan.fail("plan did not count the read_url's rows (3 expired of 4)");
    }
    if rule["counted_on"] != "read_url" || rule["read_url"] != replica.url.as_str() {
        plan.fail("plan --format json does not say it counted on the read_url");
    }
    let text = run(&path, &["plan"]);
    text.assert_code(0);
    if !text.stdout.contains(&format!(
        "counted on the replica read_url ({})",
        replica.url
    )) {
        text.fail("plan does not say which connection it counted on");
    }
    let check = run(&path, &["check"]);
    check.assert_code(0);
    if !check
        .stdout
        .contains("note: database 'main': counted on the replica read_url")
        || !check.stdout.contains("3 records in main.events")
    {
        check.fail("check did not count on the read_url, or does not say so");
    }

    run(&path, &["run", "--once"]).assert_code(0);
    assert_eq!(
        primary.count("SELECT COUNT(*) FROM events").await,
        2,
        "run --once must delete the primary's 5 expired events, decided on the primary"
    );
    assert_eq!(
        replica.count("SELECT COUNT(*) FROM events").await,
        4,
        "run --once must never write to the read_url"
    );
}

#[tokio::test]
async fn postgres_plan_and_check_count_on_read_url_while_run_deletes_on_the_primary() {
    counts_on_the_replica_and_deletes_on_the_primary(Kind::Postgres).await;
}

#[tokio::test]
async fn mariadb_plan_and_check_count_on_read_url_while_run_deletes_on_the_primary() {
    counts_on_the_replica_and_deletes_on_the_primary(Kind::MySql).await;
}

#[tokio::test]
async fn an_unreachable_read_url_fails_plan_masked_and_run_never_uses_it() {
    let Some(primary) = events(Kind::Postgres, 4).await else {
        return;
    };
    let read_url = format!("postgres://postgres:s3cret@127.0.0.1:{}/x", free_port());
    // Refused at once, but sqlx tries again until connect_timeout: keep the test short.
    let mut config = with_read_url(&primary, &read_url);
    config.databases[0] = config.databases[0].clone().option("connect_timeout", "1 s");
    let path = config.write(&primary);

    for args in [&["plan", "--format", "json"][..], &["check"][..]] {
        let r = run(&path, args);
        r.assert_code(1);
        let all = format!("{}{}", r.stdout, r.stderr);
        if all.contains("s3cret") {
            r.fail("the read_url's password reached the output");
        }
        if !all.contains("read_url") || !all.contains("postgres://postgres:***@127.0.0.1:") {
            r.fail("the failure does not name the read_url (masked)");
        }
        if all.contains("4 records") {
            r.fail("the primary was counted instead of the unreachable read_url");
        }
        if args[0] == "plan" {
            let rule = planned_rule(&r);
            if !rule["count"].is_null() || rule["counted_on"] != "read_url" {
                r.fail("plan fell back to the primary instead of failing the rule");
            }
        }
    }

    run(&path, &["run", "--once"]).assert_code(0);
    assert_eq!(
        primary.count("SELECT COUNT(*) FROM events").await,
        0,
        "run --once acts on the primary and never needs the read_url"
    );
}

/// Asserts that `check` refuses the config with exit 78 at `at`'s line, saying `words`.
fn refused(config: &ConfigBuilder, db: &TestDb, at: &str, words: &str) {
    let line = config.line(at);
    let path = config.write(db);
    let r = run(&path, &["check"]);
    r.assert_code(78);
    if !r.stderr.contains(&format!("retentiond.toml:{line}:")) {
        r.fail(&format!("the message does not name line {line} ({at})"));
    }
    if !r.stderr.contains(words) {
        r.fail(&format!("the message does not say {words:?}"));
    }
    if r.stderr.contains("s3cret") {
        r.fail("the read_url's password reached the message");
    }
}

#[tokio::test]
async fn a_read_url_on_sqlite_or_of_another_kind_is_refused_at_its_line() {
    let Some(db) = events(Kind::Sqlite, 1).await else {
        return;
    };
    refused(
        &with_read_url(&db, "sqlite:///tmp/copy.db"),
        &db,
        "databases.main.read_url",
        "SQLite has no replicas",
    );
    let mut mixed = with_read_url(&db, "mysql://root:s3cret@127.0.0.1:3306/x");
    mixed.databases[0].url = "postgres://postgres@127.0.0.1:5432/x".into();
    refused(
        &mixed,
        &db,
        "databases.main.read_url",
        "a replica of a PostgreSQL database is written postgres://",
    );
}

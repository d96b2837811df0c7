//! Safeguards against real PostgreSQL, MariaDB and SQLite: legal holds, minimum retention
//! through references (`keep_while`), the longer retention winning, the mass-deletion brake
//! with `--confirm`, and report-only mode.

use crate::helpers::{audit_keys, quoted, run, ConfigBuilder, Kind, RuleSpec, TestDb};
use chrono::{Duration, Utc};

fn years_ago(y: i64) -> String {
    (Utc::now() - Duration::days(y * 366))
        .format("%Y-%m-%d")
        .to_string()
}

async fn customers(kind: Kind) -> Option<TestDb> {
    let db = TestDb::new(kind).await?;
    let text = if kind == Kind::MySql {
        "VARCHAR(50)"
    } else {
        "TEXT"
    };
    db.exec(&format!(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, region {text}, kind {text}, closed_on DATE);
         CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER, invoice_date DATE)"
    ))
    .await;
    Some(db)
}

fn ids(db_rows: Vec<Vec<Option<String>>>) -> Vec<i64> {
    db_rows
        .iter()
        .filter_map(|r| r[0].as_deref().and_then(|s| s.parse().ok()))
        .collect()
}

/// Deletes customers closed more than a year ago (the brake off unless a test sets it).
fn rule(name: &str) -> RuleSpec {
    RuleSpec::delete(name, "customers", "closed_on")
        .after("1 year")
        .max_fraction(1.0)
}

/// Keeps customers while an invoice is younger than 7 years.
const KEEP_WHILE_INVOICES: &str = "[{ table = \"invoices\", foreign_key = \"customer_id\", since = \"invoice_date\", after = \"7 years\" }]";

/// The legal hold on the northern customers, ended on `until` if given.
fn dispute_north(until: Option<&str>) -> String {
    let until = until
        .map(|u| format!("until = {}\n", quoted(u)))
        .unwrap_or_default();
    format!("[[hold]]\nname = \"dispute-north\"\nreason = \"Dispute 2026/17 about northern deliveries\"\ndatabase = \"main\"\ntable = \"customers\"\nfilter = \"region = 'north'\"\n{until}\n")
}

async fn held_records_are_untouched_counted_and_audited(kind: Kind) {
    let Some(db) = customers(kind).await else {
        return;
    };
    let old = years_ago(3);
    db.exec(&format!(
        "INSERT INTO customers VALUES (1, 'north', 'b2b', '{old}'), (2, 'north', 'b2c', '{old}'), (3, 'south', 'b2b', '{old}'), (4, 'south', 'b2c', NULL)"
    ))
    .await;
    let config = ConfigBuilder::new(&db)
        .section(&dispute_north(None))
        .rule(rule("closed-customers"))
        .write(&db);
    let p = run(&config, &["plan", "--format", "json"]);
    p.assert_code(0);
    let v = p.json();
    assert_eq!(v["rules"][0]["count"], 1, "{p}");
    assert_eq!(v["rules"][0]["held"][0]["records"], 2, "{p}");
    let r = run(&config, &["run", "--once"]);
    r.assert_code(0);
    assert!(
        r.stdout.contains("dispute-north: 2"),
        "the summary counts held records: {}",
        r.stdout
    );
    assert_eq!(ids(db.rows("customers", &["id"]).await), vec![1, 2, 4]);
    let trail = audit_keys(&config);
    assert_eq!(trail[0].0, "dispute-north");
    assert_eq!(trail[0].1, "hold-start");
    assert!(trail.contains(&("closed-customers".into(), "delete".into(), "3".into())));
    let export = run(&config, &["audit", "export"]).stdout;
    assert!(
        !export.contains("Dispute 2026/17") && !export.contains("north'"),
        "no hold text in the trail"
    );
    let h = run(&config, &["holds"]);
    h.assert_code(0);
    assert!(
        h.stdout.contains("dispute-north (in force") && h.stdout.contains("2 records"),
        "{}",
        h.stdout
    );

    // The hold ends: its end is audited and the records go at the next pass.
    let config = ConfigBuilder::new(&db)
        .section(&dispute_north(Some("2020-01-01")))
        .rule(rule("closed-customers"))
        .write(&db);
    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(ids(db.rows("customers", &["id"]).await), vec![4]);
    assert!(audit_keys(&config)
        .iter()
        .any(|(n, a, _)| n == "dispute-north" && a == "hold-end"));
    run(&config, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn held_records_are_untouched_counted_and_audited_on_postgres() {
    held_records_are_untouched_counted_and_audited(Kind::Postgres).await;
}

#[tokio::test]
async fn held_records_are_untouched_counted_and_audited_on_mariadb() {
    held_records_are_untouched_counted_and_audited(Kind::MySql).await;
}

#[tokio::test]
async fn held_records_are_untouched_counted_and_audited_on_sqlite() {
    held_records_are_untouched_counted_and_audited(Kind::Sqlite).await;
}

async fn customers_stay_while_an_invoice_is_younger_than_7_years(kind: Kind) {
    let Some(db) = customers(kind).await else {
        return;
    };
    let old = years_ago(2);
    db.exec(&format!(
        "INSERT INTO customers VALUES (1, 'a', 'b2b', '{old}'), (2, 'a', 'b2b', '{old}'), (3, 'a', 'b2b', '{old}'), (4, 'a', 'b2b', NULL);
         INSERT INTO invoices VALUES (10, 1, '{}'), (11, 1, '{}'), (20, 2, '{}'), (30, 4, '{}')",
        years_ago(8), years_ago(6), years_ago(8), years_ago(1)
    ))
    .await;
    let config = ConfigBuilder::new(&db)
        .rule(rule("former-customers").raw("keep_while", KEEP_WHILE_INVOICES))
        .write(&db);
    run(&config, &["run", "--once"]).assert_code(0);
    // 1 has a 6-year-old invoice: kept. 2's only invoice is 8 years old, 3 has none: gone.
    assert_eq!(ids(db.rows("customers", &["id"]).await), vec![1, 4]);
    // Time passes: the last invoice of customer 1 turns 8.
    db.exec(&format!(
        "UPDATE invoices SET invoice_date = '{}' WHERE id = 11",
        years_ago(8)
    ))
    .await;
    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(ids(db.rows("customers", &["id"]).await), vec![4]);
    let deleted: Vec<String> = audit_keys(&config).into_iter().map(|(_, _, k)| k).collect();
    assert_eq!(deleted, vec!["2", "3", "1"]);
}

#[tokio::test]
async fn customers_stay_while_an_invoice_is_younger_than_7_years_on_postgres() {
    customers_stay_while_an_invoice_is_younger_than_7_years(Kind::Postgres).await;
}

#[tokio::test]
async fn customers_stay_while_an_invoice_is_younger_than_7_years_on_mariadb() {
    customers_stay_while_an_invoice_is_younger_than_7_years(Kind::MySql).await;
}

#[tokio::test]
async fn customers_stay_while_an_invoice_is_younger_than_7_years_on_sqlite() {
    customers_stay_while_an_invoice_is_younger_than_7_years(Kind::Sqlite).await;
}

async fn the_longer_retention_wins(kind: Kind) {
    let Some(db) = customers(kind).await else {
        return;
    };
    db.exec(&format!(
        "INSERT INTO customers VALUES (1, 'a', 'temp', '{}'), (2, 'a', 'temp', '{}'), (3, 'a', 'b2b', '{}')",
        years_ago(3), years_ago(8), years_ago(3)
    ))
    .await;
    // One rule deletes temporary customers after 1 year; another keeps every customer 7.
    let config = ConfigBuilder::new(&db)
        .rule(rule("temp-customers").filter("kind = 'temp'"))
        .rule(rule("all-customers").after("7 years"))
        .write(&db);
    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(
        ids(db.rows("customers", &["id"]).await),
        vec![1, 3],
        "the 3-year-old temp customer is kept 7 years"
    );
}

#[tokio::test]
async fn the_longer_retention_wins_on_postgres() {
    the_longer_retention_wins(Kind::Postgres).await;
}

#[tokio::test]
async fn the_longer_retention_wins_on_mariadb() {
    the_longer_retention_wins(Kind::MySql).await;
}

#[tokio::test]
async fn the_longer_retention_wins_on_sqlite() {
    the_longer_retention_wins(Kind::Sqlite).await;
}

async fn the_brake_stops_a_mass_deletion_until_confirmed(kind: Kind) {
    let Some(db) = customers(kind).await else {
        return;
    };
    let old = years_ago(3);
    let rows: Vec<String> = (1..=10)
        .map(|i| {
            format!(
                "({i}, 'a', 'b2b', {})",
                if i <= 6 {
                    format!("'{old}'")
                } else {
                    "NULL".into()
                }
            )
        })
        .collect();
    db.exec(&format!("INSERT INTO customers VALUES {}", rows.join(", ")))
        .await;
    let mut braked = rule("closed-customers");
    braked.max_fraction = None; // the default brake
    let config = ConfigBuilder::new(&db).rule(braked).write(&db);
    let r = run(&config, &["run", "--once"]);
    r.assert_code(1);
    assert!(
        r.stdout.contains("SAFETY BRAKE") && r.stdout.contains("--confirm 6"),
        "{}",
        r.stdout
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM customers").await,
        10,
        "nothing was done"
    );
    let plan = run(&config, &["plan"]);
    assert!(plan.stdout.contains("BRAKE"), "plan warns: {}", plan.stdout);
    // A stale or wrong count is refused.
    let r = run(
        &config,
        &[
            "run",
            "--once",
            "--rule",
            "closed-customers",
            "--confirm",
            "5",
        ],
    );
    r.assert_code(1);
    assert!(
        r.stdout.contains("--confirm 5 does not match the 6"),
        "{}",
        r.stdout
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM customers").await, 10);
    // --confirm without exactly one --rule is a bad command line.
    run(&config, &["run", "--once", "--confirm", "6"]).assert_code(2);
    // The right count runs it.
    let r = run(
        &config,
        &[
            "run",
            "--once",
            "--rule",
            "closed-customers",
            "--confirm",
            "6",
        ],
    );
    r.assert_code(0);
    assert_eq!(db.count("SELECT COUNT(*) FROM customers").await, 4);
    assert_eq!(audit_keys(&config).len(), 6);
}

#[tokio::test]
async fn the_brake_stops_a_mass_deletion_until_confirmed_on_postgres() {
    the_brake_stops_a_mass_deletion_until_confirmed(Kind::Postgres).await;
}

#[tokio::test]
async fn the_brake_stops_a_mass_deletion_until_confirmed_on_mariadb() {
    the_brake_stops_a_mass_deletion_until_confirmed(Kind::MySql).await;
}

#[tokio::test]
async fn the_brake_stops_a_mass_deletion_until_confirmed_on_sqlite() {
    the_brake_stops_a_mass_deletion_until_confirmed(Kind::Sqlite).await;
}

#[tokio::test]
async fn max_records_brakes_and_report_mode_acts_on_nothing() {
    let Some(db) = customers(Kind::Sqlite).await else {
        return;
    };
    let old = years_ago(3);
    db.exec(&format!("INSERT INTO customers VALUES (1, 'a', 'b2b', '{old}'), (2, 'a', 'b2b', '{old}'), (3, 'a', 'b2b', '{old}')")).await;
    let config = ConfigBuilder::new(&db)
        .rule(rule("capped").max_records(2))
        .write(&db);
    let r = run(&config, &["run", "--once"]);
    r.assert_code(1);
    assert!(r.stdout.contains("max_records (2)"), "{}", r.stdout);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM customers").await,
        3,
        "the brake deleted nothing"
    );
    let config = ConfigBuilder::new(&db)
        .rule(rule("rollout").mode("report"))
        .write(&db);
    let r = run(&config, &["run", "--once"]);
    r.assert_code(0);
    assert!(
        r.stdout.contains("report only") && r.stdout.contains("3 records"),
        "{}",
        r.stdout
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM customers").await, 3);
    assert!(audit_keys(&config).is_empty());
}

#[tokio::test]
async fn a_filter_the_database_rejects_is_a_config_error_on_its_line() {
    let Some(db) = customers(Kind::Sqlite).await else {
        return;
    };
    let config = ConfigBuilder::new(&db).rule(rule("bad-filter").filter("regoin = 'x'"));
    let line = config.line("rule[0].filter");
    let r = run(&config.write(&db), &["check"]);
    r.assert_code(78);
    if !(r.stderr.contains(&format!("retentiond.toml:{line}:")) && r.stderr.contains("filter")) {
        r.fail(&format!(
            "the message does not name line {line} and the key filter"
        ));
    }
}

/// A cascade would delete (or change) rows without an audit entry: refused until a
/// `children` entry names it (`keep_while` does not: old rows would still cascade). A foreign key that only blocks the delete
/// (RESTRICT / NO ACTION) is a warning: the batch fails visibly instead.
async fn check_refuses_unaudited_cascades_and_warns_about_other_foreign_keys(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    db.exec(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, region VARCHAR(20), kind VARCHAR(20), closed_on DATE);
         CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id) ON DELETE CASCADE, invoice_date DATE);
         CREATE TABLE visits (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id))",
    )
    .await;
    if kind == Kind::MySql {
        // MariaDB ignores inline REFERENCES; declare the keys as table constraints.
        db.exec("ALTER TABLE invoices ADD CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE").await;
        db.exec("ALTER TABLE visits ADD CONSTRAINT fk_visit FOREIGN KEY (customer_id) REFERENCES customers (id)").await;
    }
    let builder = ConfigBuilder::new(&db).rule(rule("former-customers"));
    let line = builder.line("rule[0].table");
    let config = builder.write(&db);
    let r = run(&config, &["check"]);
    r.assert_code(78);
    assert!(
        r.stderr.contains(&format!("retentiond.toml:{line}:"))
            && r.stderr.contains("invoices.customer_id")
            && r.stderr.contains("CASCADE"),
        "the unaudited cascade is refused at the rule's table: {r}"
    );
    // keep_while does not cover it: once the invoices are old, the cascade would still
    // delete them unaudited.
    let config = ConfigBuilder::new(&db)
        .rule(rule("former-customers").raw("keep_while", KEEP_WHILE_INVOICES))
        .write(&db);
    run(&config, &["check"]).assert_code(78);
    let config = ConfigBuilder::new(&db)
        .rule(rule("former-customers").raw(
            "children",
            "[{ table = \"invoices\", foreign_key = \"customer_id\", key = \"id\" }]",
        ))
        .write(&db);
    let r = run(&config, &["check"]);
    r.assert_code(0);
    assert!(
        !r.stdout.contains("invoices.customer_id references"),
        "children say what happens: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("visits.customer_id references") && r.stdout.contains("RESTRICT"),
        "a key that only blocks the delete is a warning: {}",
        r.stdout
    );
}

#[tokio::test]
async fn check_refuses_unaudited_cascades_on_postgres() {
    check_refuses_unaudited_cascades_and_warns_about_other_foreign_keys(Kind::Postgres).await;
}

#[tokio::test]
async fn check_refuses_unaudited_cascades_on_mariadb() {
    check_refuses_unaudited_cascades_and_warns_about_other_foreign_keys(Kind::MySql).await;
}

#[tokio::test]
async fn check_refuses_unaudited_cascades_on_sqlite() {
    check_refuses_unaudited_cascades_and_warns_about_other_foreign_keys(Kind::Sqlite).await;
}

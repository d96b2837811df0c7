//! Time columns are compared correctly in each dialect and in the configured timezone
//! (Europe/Brussels, UTC+2 in June): at 2026-06-15T12:00:00Z, "1 year" expires everything
//! at or before 2025-06-15 14:00 local = 12:00 UTC.

use crate::helpers::{run, ConfigBuilder, Kind, RuleSpec, TestDb};

const AT: &str = "2026-06-15T12:00:00Z";

fn rule(name: &str, since: &str) -> RuleSpec {
    RuleSpec::delete(name, "times", since).after("1 year")
}

/// `(rule, count, sample keys)` from `plan --at AT`.
fn planned(db: &TestDb, rules: Vec<RuleSpec>) -> Vec<(String, i64, Vec<String>)> {
    let mut config = ConfigBuilder::new(db);
    config.rules = rules;
    let r = run(&config.write(db), &["plan", "--at", AT, "--format", "json"]);
    r.assert_code(0);
    r.json()["rules"]
        .as_array()
        .unwrap_or_else(|| r.fail("plan has no rules array"))
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap_or_default().to_owned(),
                r["count"].as_i64().unwrap_or(-1),
                r["sample_keys"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn keys(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| s.to_string()).collect()
}

async fn typed_columns(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let (n, z) = match kind {
        Kind::Postgres => ("TIMESTAMP", "TIMESTAMPTZ"),
        _ => ("DATETIME", "TIMESTAMP NULL DEFAULT NULL"),
    };
    let (z1, z2, z4) = match kind {
        Kind::Postgres => (
            "'2025-06-15 11:59:59+00'",
            "'2025-06-15 12:00:01+00'",
            "'2025-06-15 13:59:59+02'",
        ),
        _ => (
            "'2025-06-15 11:59:59'",
            "'2025-06-15 12:00:01'",
            "'2025-06-15 12:00:00'",
        ),
    };
    db.exec(&format!(
        "CREATE TABLE times (id INTEGER PRIMARY KEY, d DATE, n {n}, z {z}, u BIGINT);
         INSERT INTO times VALUES (1, '2025-06-15', '2025-06-15 13:59:59', {z1}, 1749988799);
         INSERT INTO times VALUES (2, '2025-06-16', '2025-06-15 14:00:01', {z2}, 1749988801);
         INSERT INTO times VALUES (3, NULL, NULL, NULL, NULL);
         INSERT INTO times VALUES (4, NULL, NULL, {z4}, NULL)"
    ))
    .await;
    let rules = vec![
        rule("date", "d"),
        rule("naive", "n"),
        rule("zoned", "z"),
        rule("unix", "u"),
    ];
    assert_eq!(
        planned(&db, rules),
        vec![
            ("date".into(), 1, keys(&["1"])),
            ("naive".into(), 1, keys(&["1"])),
            ("zoned".into(), 2, keys(&["1", "4"])),
            ("unix".into(), 1, keys(&["1"])),
        ]
    );
}

#[tokio::test]
async fn postgres_date_timestamp_and_timestamptz_compare_in_the_configured_timezone() {
    typed_columns(Kind::Postgres).await;
}

#[tokio::test]
async fn mariadb_date_datetime_and_timestamp_compare_in_the_configured_timezone() {
    typed_columns(Kind::MySql).await;
}

#[tokio::test]
async fn sqlite_iso_text_in_every_form_and_unix_seconds_compare_correctly() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    db.exec(
        "CREATE TABLE times (id INTEGER PRIMARY KEY, t);
         INSERT INTO times VALUES (1, '2025-06-15'), (2, '2025-06-15 13:59:59'), (3, '2025-06-15T14:00:01'),
           (4, '2025-06-15T11:59:59Z'), (5, '2025-06-15T13:59:59+02:00'), (6, '2025-06-15T14:00:01+02:00'),
           (7, 1749988799), (8, 1749988801), (9, NULL), (10, 'not a date'), (11, '2025-06-16'), (12, '2025-06-15T12:00:00Z'),
           -- Text SQLite would read as a time, but not an ISO date: kept, not guessed at.
           (13, '10:30'), (14, '2460000.5'),
           -- The largest zone offsets SQLite reads: expired, although their wall-clock
           -- text lies past the cutoff (the index range must still include them).
           (15, '2025-06-15T23:59:59+14:00'), (16, '2025-06-14T23:00:00-12:00')",
    )
    .await;
    let got = planned(&db, vec![rule("text", "t")]);
    assert_eq!(
        got,
        vec![("text".into(), 8, keys(&["1", "2", "4", "5", "7"]))]
    );
    // …and the sixth is the exact boundary, which counts as expired.
    let config = ConfigBuilder::new(&db).rule(rule("text", "t")).write(&db);
    let r = run(
        &config,
        &["plan", "--at", "2026-06-15T11:59:59Z", "--format", "json"],
    );
    r.assert_code(0);
    assert_eq!(
        r.json()["rules"][0]["count"],
        7,
        "one second earlier, the boundary record stays:\n{r}"
    );
}

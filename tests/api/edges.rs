//! Edge values a hostile tester found, against real PostgreSQL, MariaDB and SQLite: dates
//! that are not dates, integer time columns in the wrong unit, values that only look
//! anonymized, keys that cannot be read back, and boolean flags. Each either works exactly
//! or is refused by `check` (exit 78) before anything is touched.

use crate::helpers::{audit_keys, quoted, run, ConfigBuilder, Kind, RuleSpec, TestDb};
use chrono::{Duration, Utc};
use std::path::Path;

const AT: &str = "2026-06-15T12:00:00Z";

fn days_from_now(days: i64) -> String {
    (Utc::now() + Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

fn text(kind: Kind) -> &'static str {
    match kind {
        Kind::MySql => "VARCHAR(200)",
        _ => "TEXT",
    }
}

/// The ids left in `table`, in order.
async fn ids(db: &TestDb, table: &str) -> Vec<String> {
    db.rows(table, &["id"])
        .await
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect()
}

/// `(rule, count)` from `plan --at AT`.
fn planned_counts(config: &Path) -> Vec<(String, i64)> {
    let r = run(config, &["plan", "--at", AT, "--format", "json"]);
    r.assert_code(0);
    r.json()["rules"]
        .as_array()
        .unwrap_or_else(|| r.fail("plan has no rules array"))
        .iter()
        .map(|p| {
            (
                p["rule"].as_str().unwrap_or_default().to_owned(),
                p["count"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// Asserts that `check`, `plan` and `run --once` all exit 78 with a message on the line of
/// the offending `key` of rule `rule` (`flag.value` is on the `flag` line) that names `key`
/// and says `says`, and that the table kept its rows.
async fn refused(db: &TestDb, config: &ConfigBuilder, rule: usize, key: &str, says: &str) {
    let at = key.strip_suffix(".value").unwrap_or(key);
    let line = config.line(&format!("rule[{rule}].{at}"));
    let path = config.write(db);
    let table = &config.rules[rule].table;
    let before = db.count(&format!("SELECT COUNT(*) FROM {table}")).await;
    for verb in [&["check"][..], &["plan"][..], &["run", "--once"][..]] {
        let r = run(&path, verb);
        r.assert_code(78);
        if !r.stderr.contains(&format!("retentiond.toml:{line}:")) {
            r.fail(&format!("the message does not name line {line}"));
        }
        if !r.stderr.contains(key) || !r.stderr.contains(says) {
            r.fail(&format!(
                "the message does not name {key:?} and say {says:?}"
            ));
        }
        assert_eq!(
            db.count(&format!("SELECT COUNT(*) FROM {table}")).await,
            before,
            "{verb:?} touched {table}"
        );
    }
}

// ------------------------------------------------------------- 1. dates that are not dates

/// One delete rule per column `d`, `n`, `z` of `times`, expiring after a year.
fn per_column(db: &TestDb) -> ConfigBuilder {
    let mut config = ConfigBuilder::new(db);
    for col in ["d", "n", "z"] {
        config = config.rule(
            RuleSpec::delete(col, "times", col)
                .after("1 year")
                .max_fraction(1.0),
        );
    }
    config
}

/// Plans and runs `per_column` over `times`, where only `expired` is a real, old moment.
async fn only_the_real_date_expires(db: &TestDb, expired: &str) {
    let config = per_column(db);
    let path = config.write(db);
    let want: Vec<(String, i64)> = ["d", "n", "z"].map(|c| (c.to_owned(), 1)).into();
    assert_eq!(planned_counts(&path), want, "plan --at {AT}");
    let mut left = ids(db, "times").await;
    run(&path, &["run", "--once"]).assert_code(0);
    left.retain(|id| id != expired);
    assert_eq!(ids(db, "times").await, left, "only {expired} is deleted");
    let trail: Vec<String> = audit_keys(&path).into_iter().map(|(_, _, k)| k).collect();
    assert_eq!(trail, vec![expired.to_owned()]);
}

#[tokio::test]
async fn mariadb_zero_dates_are_not_set_and_never_expire() {
    let Some(db) = TestDb::new(Kind::MySql).await else {
        return;
    };
    db.exec(
        "CREATE TABLE times (id INTEGER PRIMARY KEY, d DATE NULL, n DATETIME NULL, z TIMESTAMP NULL DEFAULT NULL)",
    )
    .await;
    // A permissive sql_mode, for this statement only: zero dates, zero parts, year 0 and
    // days past the month's end go in as written (a TIMESTAMP turns the last ones to zero).
    db.exec(
        "SET STATEMENT sql_mode = 'ALLOW_INVALID_DATES' FOR INSERT INTO times VALUES
           (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'),
           (2, '2020-00-00', '2020-00-00 00:00:00', '2020-00-00 00:00:00'),
           (3, '2020-05-00', '2020-05-00 10:00:00', '2020-05-00 10:00:00'),
           (4, '0000-01-01', '0000-01-01 00:00:00', NULL),
           (5, '2020-02-31', '2020-02-31 10:00:00', '2020-02-31 10:00:00'),
           (6, NULL, NULL, NULL),
           (7, '2020-01-01', '2020-01-01 00:00:00', '2020-01-01 00:00:00')",
    )
    .await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM times WHERE d = '0000-00-00' OR MONTH(n) = 0")
            .await,
        2,
        "the zero dates are stored"
    );
    only_the_real_date_expires(&db, "7").await;
}

#[tokio::test]
async fn postgres_infinity_is_not_a_moment_and_never_expires() {
    let Some(db) = TestDb::new(Kind::Postgres).await else {
        return;
    };
    db.exec(
        "CREATE TABLE times (id INTEGER PRIMARY KEY, d DATE, n TIMESTAMP, z TIMESTAMPTZ);
         INSERT INTO times VALUES (1, '-infinity', '-infinity', '-infinity'),
           (2, 'infinity', 'infinity', 'infinity'),
           (3, NULL, NULL, NULL),
           (4, '2020-01-01', '2020-01-01 00:00:00', '2020-01-01 00:00:00+00')",
    )
    .await;
    only_the_real_date_expires(&db, "4").await;
}

#[tokio::test]
async fn sqlite_dates_off_the_calendar_never_expire() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    db.exec(
        "CREATE TABLE times (id INTEGER PRIMARY KEY, d, n, z);
         INSERT INTO times VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00T00:00:00Z'),
           (2, '2020-00-00', '2020-00-00 00:00:00', '2020-00-00T00:00:00Z'),
           (3, '0000-01-01', '0000-01-01 00:00:00', '0000-01-01T00:00:00Z'),
           (4, '2020-02-31', '2020-02-31 10:00:00', '2020-02-31T10:00:00+02:00'),
           (5, NULL, NULL, NULL),
           (6, '2020-01-01', '2020-01-01 00:00:00', '2020-01-01T00:00:00Z')",
    )
    .await;
    only_the_real_date_expires(&db, "6").await;
}

// ------------------------------------------------------- 2. integer time columns and units

/// `events` with an integer `created_at` holding `values` (ids 1, 2, …).
async fn integer_times(kind: Kind, values: &[i64]) -> Option<TestDb> {
    let db = TestDb::new(kind).await?;
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, created_at BIGINT)")
        .await;
    let rows: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("({}, {v})", i + 1))
        .collect();
    db.exec(&format!("INSERT INTO events VALUES {}", rows.join(", ")))
        .await;
    Some(db)
}

fn events_rule(db: &TestDb) -> ConfigBuilder {
    ConfigBuilder::new(db).rule(
        RuleSpec::delete("old-events", "events", "created_at")
            .after("1 year")
            .max_fraction(1.0),
    )
}

#[tokio::test]
async fn check_says_an_integer_since_column_is_read_as_unix_seconds() {
    for kind in [Kind::Postgres, Kind::MySql, Kind::Sqlite] {
        // 2017-07-14 and 2025-06-15.
        let Some(db) = integer_times(kind, &[1_500_000_000, 1_750_000_000]).await else {
            continue;
        };
        let r = run(&events_rule(&db).write(&db), &["check"]);
        r.assert_code(0);
        let note =
            "rule \"old-events\": since column created_at is an integer, read as unix seconds";
        if !r.stdout.contains(note) || !r.stdout.contains("2025-06-15T") {
            r.fail(&format!(
                "{kind:?}: check does not say {note:?} with the values' range"
            ));
        }
    }
}

#[tokio::test]
async fn an_integer_since_column_in_milliseconds_or_days_is_refused() {
    for kind in [Kind::Postgres, Kind::MySql, Kind::Sqlite] {
        // Milliseconds (2025-06-15), microseconds, and days since 1970 (2026-02-16).
        for (values, says) in [
            (
                &[1_750_000_000_000_i64, 1_500_000_000_000][..],
                "not seconds",
            ),
            (
                &[1_750_000_000_000_000, 1_500_000_000_000_000][..],
                "not seconds",
            ),
            (&[20_500, 19_000][..], "newest value cannot be seconds"),
        ] {
            let Some(db) = integer_times(kind, values).await else {
                continue;
            };
            refused(&db, &events_rule(&db), 0, "expires.since", says).await;
        }
    }
}

// ----------------------------------------------- 3. what only looks anonymized is not

async fn look_alikes_are_anonymized_and_real_hashes_left_alone(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    // SQLite's NOCASE collation compares like MariaDB's default one.
    let t = match kind {
        Kind::Sqlite => "TEXT COLLATE NOCASE",
        k => text(k),
    };
    db.exec(&format!(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email {t}, phone {t}, left_at DATE)"
    ))
    .await;
    let old = days_from_now(-30);
    db.exec(&format!(
        "INSERT INTO people VALUES
           (1, 'anon-jane.doe@example.org', 'removed', '{old}'),
           (2, 'ANON-0123456789ABCDEF', 'removed', '{old}'),
           (3, 'jan@example.be', '+32 470 11 22 33', '{old}'),
           (4, 'anon-0123456789abcdef', 'removed', '{old}'),
           (5, 'anon-0123456789abcdef', 'REMOVED', '{old}'),
           (6, 'anon-0123456789abcdef', 'removed ', '{old}'),
           (7, 'anon-0123456789abcde', 'removed', '{old}'),
           (8, NULL, 'removed', '{old}')"
    ))
    .await;
    // One record a batch: a batch whose e-mail is hashed already (5, 6) must still work.
    let mut rule = RuleSpec::delete("leavers", "people", "left_at")
        .max_fraction(1.0)
        .batch_size(1)
        .raw(
            "anonymize",
            "{ email = \"hash\", phone = { replace = \"removed\" } }",
        );
    rule.action = "anonymize".into();
    let path = ConfigBuilder::new(&db).rule(rule).write(&db);
    let before = db.rows("people", &["id", "email", "phone"]).await;

    run(&path, &["run", "--once"]).assert_code(0);
    let acted = ["1", "2", "3", "5", "6", "7"];
    let trail: Vec<String> = audit_keys(&path).into_iter().map(|(_, _, k)| k).collect();
    assert_eq!(trail, acted, "{kind:?}: the look-alikes are anonymized");
    let after = db.rows("people", &["id", "email", "phone"]).await;
    let hashed = |v: &str| {
        v.len() == 21
            && v.starts_with("anon-")
            && v[5..].chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    };
    for (b, a) in before.iter().zip(&after) {
        let id = b[0].as_deref().unwrap_or_default();
        if acted.contains(&id) {
            assert_eq!(a[2].as_deref(), Some("removed"), "{kind:?}: {a:?}");
            match id {
                // Acted on for the phone; the e-mail, hashed already, stays as it is.
                "5" | "6" => assert_eq!(a[1], b[1], "{kind:?}: {a:?}"),
                _ => assert!(
                    a[1].as_deref().is_some_and(hashed) && a[1] != b[1],
                    "{kind:?}: {a:?}"
                ),
            }
        } else {
            assert_eq!(a, b, "{kind:?}: already anonymized, untouched");
        }
    }
    // Everything is now exactly in its target state: nothing more to do, ever.
    run(&path, &["run", "--once"]).assert_code(0);
    assert_eq!(
        audit_keys(&path).len(),
        acted.len(),
        "{kind:?}: second pass"
    );
    assert_eq!(db.rows("people", &["id", "email", "phone"]).await, after);
}

#[tokio::test]
async fn postgres_anonymizes_what_only_looks_anonymized() {
    look_alikes_are_anonymized_and_real_hashes_left_alone(Kind::Postgres).await;
}

#[tokio::test]
async fn mariadb_anonymizes_what_only_looks_anonymized() {
    look_alikes_are_anonymized_and_real_hashes_left_alone(Kind::MySql).await;
}

#[tokio::test]
async fn sqlite_anonymizes_what_only_looks_anonymized() {
    look_alikes_are_anonymized_and_real_hashes_left_alone(Kind::Sqlite).await;
}

// ----------------------------------------------------------------------- 4. keys

#[tokio::test]
async fn a_key_column_that_allows_null_is_refused() {
    for kind in [Kind::Postgres, Kind::MySql, Kind::Sqlite] {
        let Some(db) = TestDb::new(kind).await else {
            continue;
        };
        db.exec(&format!(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, ref {} UNIQUE, closed_on DATE);
             INSERT INTO accounts VALUES (1, NULL, '2020-01-01'), (2, 'R2', '2020-01-01')",
            match kind {
                Kind::MySql => "VARCHAR(20)",
                _ => "TEXT",
            }
        ))
        .await;
        let mut rule = RuleSpec::delete("closed", "accounts", "closed_on").max_fraction(1.0);
        rule.key = "ref".into();
        let config = ConfigBuilder::new(&db).rule(rule);
        refused(
            &db,
            &config,
            0,
            "key",
            "key column 'ref' allows NULL: rows with a NULL key cannot be audited; declare it NOT NULL or choose another key",
        )
        .await;
    }
}

#[tokio::test]
async fn sqlite_keys_of_mixed_types_or_null_are_refused_and_one_type_works() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    // `INT PRIMARY KEY` is no rowid alias: SQLite keeps text (and NULL) in it. A column
    // without a type keeps whatever it is given. A TEXT PRIMARY KEY takes NULL too.
    db.exec(
        "CREATE TABLE mixed (id INT PRIMARY KEY, closed_on DATE);
         INSERT INTO mixed VALUES (1, '2020-01-01'), ('abc', '2020-01-01'), (2.5, '2020-01-01');
         CREATE TABLE untyped (id PRIMARY KEY, closed_on DATE);
         INSERT INTO untyped VALUES (1, '2020-01-01'), ('abc', '2020-01-01');
         CREATE TABLE nulls (id TEXT PRIMARY KEY, closed_on DATE);
         INSERT INTO nulls VALUES ('a', '2020-01-01'), (NULL, '2020-01-01');
         CREATE TABLE texts (id TEXT PRIMARY KEY, closed_on DATE);
         INSERT INTO texts VALUES ('a', '2020-01-01'), ('b', '2020-01-01')",
    )
    .await;
    let config = |table: &str| {
        ConfigBuilder::new(&db)
            .rule(RuleSpec::delete("closed", table, "closed_on").max_fraction(1.0))
    };
    let says = "is read as integer (from its declared type), but it also holds other values (real: 1 row, text: 1 row)";
    refused(&db, &config("mixed"), 0, "key", says).await;
    refused(&db, &config("untyped"), 0, "key", "(integer: 1 row)").await;
    refused(
        &db,
        &config("nulls"),
        0,
        "key",
        "key column 'id' allows NULL",
    )
    .await;
    let path = config("texts").write(&db);
    run(&path, &["run", "--once"]).assert_code(0);
    assert!(ids(&db, "texts").await.is_empty());
}

#[tokio::test]
async fn mariadb_unsigned_keys_above_2_pow_63_are_read_matched_and_audited_exactly() {
    let Some(db) = TestDb::new(Kind::MySql).await else {
        return;
    };
    let (old, young) = (days_from_now(-30), days_from_now(30));
    db.exec(&format!(
        "CREATE TABLE events (id BIGINT UNSIGNED PRIMARY KEY, happened_on DATE);
         INSERT INTO events VALUES (1, '{old}'), (9223372036854775807, '{old}'),
           (9223372036854775808, '{old}'), (18446744073709551614, '{young}'),
           (18446744073709551615, '{old}');
         CREATE TABLE contacts (id BIGINT UNSIGNED PRIMARY KEY, email VARCHAR(100), left_on DATE);
         INSERT INTO contacts VALUES (18446744073709551614, 'young@example.be', '{young}'),
           (18446744073709551615, 'old@example.be', '{old}')"
    ))
    .await;
    let mut hash = RuleSpec::delete("contacts", "contacts", "left_on")
        .max_fraction(1.0)
        .raw("anonymize", "{ email = \"hash\" }");
    hash.action = "anonymize".into();
    let path = ConfigBuilder::new(&db)
        .rule(
            RuleSpec::delete("events", "events", "happened_on")
                .max_fraction(1.0)
                .batch_size(2),
        )
        .rule(hash)
        .write(&db);
    let r = run(&path, &["plan", "--format", "json"]);
    r.assert_code(0);
    let expired = [
        "1",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
    ];
    assert_eq!(
        r.json()["rules"][0]["sample_keys"],
        serde_json::json!(expired)
    );

    run(&path, &["run", "--once"]).assert_code(0);
    assert_eq!(ids(&db, "events").await, ["18446744073709551614"]);
    let contacts = db.rows("contacts", &["id", "email"]).await;
    assert_eq!(contacts[0][1].as_deref(), Some("young@example.be"));
    assert!(
        contacts[1][1]
            .as_deref()
            .is_some_and(|e| e.starts_with("anon-")),
        "{contacts:?}"
    );
    let trail: Vec<(String, String)> = audit_keys(&path)
        .into_iter()
        .map(|(rule, _, key)| (rule, key))
        .collect();
    let mut want: Vec<(String, String)> = expired
        .iter()
        .map(|k| ("events".to_owned(), k.to_string()))
        .collect();
    want.push(("contacts".into(), "18446744073709551615".into()));
    assert_eq!(trail, want);
}

// ----------------------------------------------------------------- 5. boolean flags

async fn a_boolean_column_is_flagged(kind: Kind, value: &str) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let old = days_from_now(-30);
    db.exec(&format!(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, last_order DATE, retention_review BOOLEAN NOT NULL DEFAULT FALSE);
         INSERT INTO customers (id, last_order) VALUES (1, '{old}'), (2, '{}'), (3, NULL)",
        days_from_now(30)
    ))
    .await;
    let mut rule = RuleSpec::delete("review", "customers", "last_order")
        .max_fraction(1.0)
        .raw(
            "flag",
            &format!("{{ column = \"retention_review\", value = {value} }}"),
        );
    rule.action = "flag".into();
    let path = ConfigBuilder::new(&db).rule(rule).write(&db);
    run(&path, &["check"]).assert_code(0);
    run(&path, &["run", "--once"]).assert_code(0);
    let flagged = "SELECT COUNT(*) FROM customers WHERE retention_review = TRUE";
    assert_eq!(db.count(flagged).await, 1, "{kind:?} {value}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM customers WHERE retention_review = TRUE AND id = 1")
            .await,
        1
    );
    run(&path, &["run", "--once"]).assert_code(0);
    let trail: Vec<String> = audit_keys(&path).into_iter().map(|(_, _, k)| k).collect();
    assert_eq!(trail, ["1"], "{kind:?} {value}: flagged once, audited once");
}

#[tokio::test]
async fn postgres_flags_a_boolean_column() {
    a_boolean_column_is_flagged(Kind::Postgres, "true").await;
    a_boolean_column_is_flagged(Kind::Postgres, &quoted("true")).await;
}

#[tokio::test]
async fn mariadb_flags_a_boolean_column() {
    a_boolean_column_is_flagged(Kind::MySql, "true").await;
}

#[tokio::test]
async fn sqlite_flags_a_boolean_column() {
    a_boolean_column_is_flagged(Kind::Sqlite, "true").await;
    a_boolean_column_is_flagged(Kind::Sqlite, &quoted("TRUE")).await;
}

#[tokio::test]
async fn a_boolean_column_refuses_a_flag_value_that_is_no_boolean() {
    let Some(db) = TestDb::new(Kind::Postgres).await else {
        return;
    };
    db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, last_order DATE, retention_review BOOLEAN)")
        .await;
    for value in ["2", "\"due\""] {
        let mut rule = RuleSpec::delete("review", "customers", "last_order").raw(
            "flag",
            &format!("{{ column = \"retention_review\", value = {value} }}"),
        );
        rule.action = "flag".into();
        let config = ConfigBuilder::new(&db).rule(rule);
        refused(
            &db,
            &config,
            0,
            "flag.value",
            "give value = true or value = false",
        )
        .await;
    }
}

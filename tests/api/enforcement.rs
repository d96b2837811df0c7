//! The same rule set against PostgreSQL, MariaDB and SQLite, compared record by record:
//! what must go is gone, what must stay is unchanged, anonymized and flagged records are
//! exactly as asked, and the audit trail matches the changes one to one.

use crate::helpers::{audit_keys, config_head, run, write_config, Kind, TestDb};
use chrono::{Duration, Utc};
use std::collections::BTreeSet;

/// A time `days` from now in the literal form each engine reads for an instant column.
fn instant(kind: Kind, days: i64) -> String {
    let t = Utc::now() + Duration::days(days);
    match kind {
        Kind::Postgres => format!("'{}'", t.format("%Y-%m-%d %H:%M:%S+00")),
        Kind::MySql => format!("'{}'", t.format("%Y-%m-%d %H:%M:%S")),
        Kind::Sqlite => format!("'{}'", t.format("%Y-%m-%dT%H:%M:%SZ")),
    }
}

fn naive(days: i64) -> String {
    format!(
        "'{}'",
        (Utc::now() + Duration::days(days)).format("%Y-%m-%d %H:%M:%S")
    )
}

fn date(days: i64) -> String {
    format!(
        "'{}'",
        (Utc::now() + Duration::days(days)).format("%Y-%m-%d")
    )
}

async fn schema(db: &TestDb) {
    let (tz, ts, text, key) = match db.kind {
        Kind::Postgres => ("TIMESTAMPTZ", "TIMESTAMP", "TEXT", "VARCHAR(20)"),
        Kind::MySql => (
            "TIMESTAMP NULL DEFAULT NULL",
            "DATETIME",
            "VARCHAR(200)",
            "VARCHAR(20)",
        ),
        Kind::Sqlite => ("TEXT", "TEXT", "TEXT", "TEXT"),
    };
    db.exec(&format!(
        "CREATE TABLE applicants (id INTEGER PRIMARY KEY, full_name {text} NOT NULL, email {text}, decision {text} NOT NULL, decided_at {tz});
         CREATE TABLE prospects (id INTEGER PRIMARY KEY, name {text}, email {text}, phone {text}, company {text}, consent_expires_at {ts});
         CREATE TABLE customers (id {key} PRIMARY KEY, name {text} NOT NULL, last_order_at DATE, retention_review {text})"
    ))
    .await;
}

async fn data(db: &TestDb) {
    let k = db.kind;
    db.exec(&format!(
        "INSERT INTO applicants VALUES (1, 'Ann Peeters', 'ann@example.be', 'rejected', {});
         INSERT INTO applicants VALUES (2, 'Bert Maes', 'bert@example.be', 'hired', {});
         INSERT INTO applicants VALUES (3, 'Cis Claes', 'cis@example.be', 'rejected', NULL);
         INSERT INTO applicants VALUES (4, 'Dirk Dubois', 'dirk@example.be', 'rejected', {});
         INSERT INTO applicants VALUES (5, 'Eva Jacobs', 'eva@example.be', 'rejected', {});
         INSERT INTO applicants VALUES (6, 'Fons Wouters', NULL, 'pending', {})",
        instant(k, -10),
        instant(k, -10),
        instant(k, 5),
        instant(k, -3 * 365),
        instant(k, -365)
    ))
    .await;
    // Many rejected applicants (several batches) among hired ones that must stay.
    for chunk in (7..=3006).collect::<Vec<i64>>().chunks(500) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                let decision = if *i <= 2506 { "rejected" } else { "hired" };
                format!(
                    "({i}, 'Applicant {i}', 'a{i}@example.be', '{decision}', {})",
                    instant(k, -2)
                )
            })
            .collect();
        db.exec(&format!(
            "INSERT INTO applicants VALUES {}",
            rows.join(", ")
        ))
        .await;
    }
    db.exec(&format!(
        "INSERT INTO prospects VALUES (1, 'Jan Janssens', 'jan@example.be', '+32 470 11 22 33', 'Glas bv', {});
         INSERT INTO prospects VALUES (2, 'Kim Mertens', 'kim@example.be', '+32 470 44 55 66', 'Raam nv', {});
         INSERT INTO prospects VALUES (3, 'Lien Goossens', 'lien@example.be', NULL, NULL, NULL);
         INSERT INTO prospects VALUES (4, 'Mo Willems', NULL, '+32 470 77 88 99', 'Deur bv', {});
         INSERT INTO prospects VALUES (5, 'Jan Janssens jr', 'jan@example.be', '+32 470 00 00 00', 'Glas bv', {});
         INSERT INTO prospects VALUES (6, NULL, 'anon-0123456789abcdef', 'removed', 'Oud bv', {})",
        naive(-1), naive(30), naive(-400), naive(-2), naive(-800)
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO customers VALUES ('C1', 'Vermeulen bv', {}, NULL);
         INSERT INTO customers VALUES ('C2', 'De Smet nv', {}, NULL);
         INSERT INTO customers VALUES ('C3', 'Bakker bv', {}, 'due');
         INSERT INTO customers VALUES ('C4', 'Visser bv', NULL, NULL);
         INSERT INTO customers VALUES ('C5', 'Maes en zonen', {}, 'keep')",
        date(-6 * 366),
        date(-4 * 365),
        date(-6 * 366),
        date(-6 * 366)
    ))
    .await;
}

const RULES: &str = r#"
[[rule]]
name = "rejected-applicants"
description = "Applicants are removed as soon as it is clear they will not be hired."
legal_basis = "GDPR art. 5(1)(e)"
database = "main"
table = "applicants"
key = "id"
filter = "decision = 'rejected'"
expires = { since = "decided_at", after = "0 days" }
action = "delete"
batch_size = 100
# 2,502 of 3,006 applicants expire here; the brake has its own tests (safeguards.rs).
max_fraction = 1.0

[[rule]]
name = "prospects-without-consent"
legal_basis = "GDPR art. 7(3)"
database = "main"
table = "prospects"
key = "id"
expires = { since = "consent_expires_at" }
action = "anonymize"
anonymize = { name = "null", email = "hash", phone = { replace = "removed" } }
batch_size = 2

[[rule]]
name = "dormant-customers"
legal_basis = "GDPR art. 5(1)(e)"
database = "main"
table = "customers"
key = "id"
expires = { since = "last_order_at", after = "5 years" }
action = "flag"
flag = { column = "retention_review", value = "due" }
"#;

async fn same_rules_same_outcome(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    schema(&db).await;
    data(&db).await;
    let cols_a = ["id", "full_name", "email", "decision", "decided_at"];
    let cols_p = [
        "id",
        "name",
        "email",
        "phone",
        "company",
        "consent_expires_at",
    ];
    let cols_c = ["id", "name", "last_order_at", "retention_review"];
    let before_a = db.rows("applicants", &cols_a).await;
    let before_p = db.rows("prospects", &cols_p).await;
    let before_c = db.rows("customers", &cols_c).await;
    let config = write_config(db.dir.path(), &format!("{}{RULES}", config_head(&db)));

    run(&config, &["run", "--once"]).assert_code(0);

    // Applicants: exactly the expired rejected ones are gone; the rest unchanged.
    let gone: BTreeSet<i64> = [1, 5].into_iter().chain(7..=2506).collect();
    let expected_a: Vec<_> = before_a
        .iter()
        .filter(|r| !gone.contains(&id(r)))
        .cloned()
        .collect();
    assert_eq!(db.rows("applicants", &cols_a).await, expected_a);

    // Prospects 1, 4, 5 anonymized; equal e-mails hash alike; everything else unchanged.
    let after_p = db.rows("prospects", &cols_p).await;
    assert_eq!(after_p.len(), before_p.len());
    for (b, a) in before_p.iter().zip(&after_p) {
        match id(b) {
            1 | 4 | 5 => {
                assert_eq!(a[1], None, "name nulled: {a:?}");
                assert_eq!(a[3].as_deref(), Some("removed"), "phone replaced: {a:?}");
                assert_eq!(&a[4..], &b[4..], "other columns untouched: {a:?}");
                match &b[2] {
                    None => assert_eq!(a[2], None),
                    Some(_) => assert!(
                        a[2].as_deref()
                            .is_some_and(|e| e.starts_with("anon-") && e.len() == 21),
                        "{a:?}"
                    ),
                }
            }
            _ => assert_eq!(a, b),
        }
    }
    assert_eq!(
        after_p[0][2], after_p[4][2],
        "the same e-mail hashes to the same value"
    );

    // Customers C1 and C5 flagged; others unchanged.
    let after_c = db.rows("customers", &cols_c).await;
    for (b, a) in before_c.iter().zip(&after_c) {
        match b[0].as_deref() {
            Some("C1" | "C5") => {
                assert_eq!(a[3].as_deref(), Some("due"));
                assert_eq!(&a[..3], &b[..3]);
            }
            _ => assert_eq!(a, b),
        }
    }

    // The trail: one entry per changed record, nothing else.
    let mut expected: Vec<(String, String, String)> = gone
        .iter()
        .map(|k| ("rejected-applicants".into(), "delete".into(), k.to_string()))
        .collect();
    expected.extend(["1", "4", "5"].map(|k| {
        (
            "prospects-without-consent".into(),
            "anonymize".into(),
            k.into(),
        )
    }));
    expected.extend(["C1", "C5"].map(|k| ("dormant-customers".into(), "flag".into(), k.into())));
    let mut trail = audit_keys(&config);
    trail.sort();
    expected.sort();
    assert_eq!(trail, expected);

    // A second pass over the same data acts on nothing and adds no entries.
    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(audit_keys(&config).len(), expected.len());
    run(&config, &["audit", "verify"]).assert_code(0);
    // The journal is cleaned up after a successful pass.
    assert_eq!(db.count("SELECT COUNT(*) FROM retentiond_journal").await, 0);
    // No personal data in the trail.
    let export = run(&config, &["audit", "export", "--format", "csv"]);
    export.assert_code(0);
    let export = export.stdout;
    for personal in [
        "Peeters",
        "ann@example.be",
        "jan@example.be",
        "+32",
        "Vermeulen",
    ] {
        assert!(!export.contains(personal), "audit export leaks {personal}");
    }
}

fn id(row: &[Option<String>]) -> i64 {
    row[0].as_deref().and_then(|s| s.parse().ok()).unwrap_or(-1)
}

#[tokio::test]
async fn the_rule_set_acts_exactly_as_written_on_postgres() {
    same_rules_same_outcome(Kind::Postgres).await;
}

#[tokio::test]
async fn the_rule_set_acts_exactly_as_written_on_mariadb() {
    same_rules_same_outcome(Kind::MySql).await;
}

#[tokio::test]
async fn the_rule_set_acts_exactly_as_written_on_sqlite() {
    same_rules_same_outcome(Kind::Sqlite).await;
}

/// Every row of the three tables, per table, as `(table, rows)`.
async fn snapshot(db: &TestDb) -> Vec<(&'static str, BTreeSet<Vec<Option<String>>>)> {
    let tables: [(&'static str, &[&str]); 3] = [
        (
            "applicants",
            &["id", "full_name", "email", "decision", "decided_at"],
        ),
        (
            "prospects",
            &[
                "id",
                "name",
                "email",
                "phone",
                "company",
                "consent_expires_at",
            ],
        ),
        (
            "customers",
            &["id", "name", "last_order_at", "retention_review"],
        ),
    ];
    let mut out = Vec::new();
    for (table, cols) in tables {
        out.push((table, db.rows(table, cols).await.into_iter().collect()));
    }
    out
}

#[tokio::test]
async fn plan_counts_what_run_then_does_and_changes_nothing() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    schema(&db).await;
    data(&db).await;
    let before = snapshot(&db).await;
    let config = write_config(db.dir.path(), &format!("{}{RULES}", config_head(&db)));
    let r = run(&config, &["plan", "--format", "json"]);
    r.assert_code(0);
    let plan = r.json();
    // (rule, count, first keys) in the order of the config, which is the order of `before`.
    let planned: Vec<(String, usize, Vec<String>)> = plan["rules"]
        .as_array()
        .unwrap_or_else(|| r.fail("plan has no rules array"))
        .iter()
        .map(|p| {
            let keys = p["sample_keys"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let count = p["count"]
                .as_u64()
                .unwrap_or_else(|| r.fail("a rule without a count"));
            (
                p["rule"].as_str().unwrap_or_default().to_owned(),
                count as usize,
                keys,
            )
        })
        .collect();
    let counts: Vec<(&str, usize)> = planned.iter().map(|(n, c, _)| (n.as_str(), *c)).collect();
    assert_eq!(
        counts,
        vec![
            ("rejected-applicants", 2502),
            ("prospects-without-consent", 3),
            ("dormant-customers", 2)
        ]
    );
    assert!(snapshot(&db).await == before, "plan changed a record");
    let r = run(&config, &["check"]);
    r.assert_code(0);
    if !r.stdout.contains("2502 records") {
        r.fail("check does not count the 2502 records");
    }
    assert!(snapshot(&db).await == before, "check changed a record");
    assert!(!db.state_dir().exists(), "check and plan create no state");

    // Now the pass: per rule, it acts on exactly as many records as plan counted, and on
    // the records plan named first.
    run(&config, &["run", "--once"]).assert_code(0);
    let after = snapshot(&db).await;
    let trail = audit_keys(&config);
    for ((name, count, sample), ((table, rows_before), (_, rows_after))) in
        planned.iter().zip(before.iter().zip(&after))
    {
        // Rows that are no longer there as they were: deleted, anonymized or flagged.
        let acted: BTreeSet<String> = rows_before
            .difference(rows_after)
            .map(|row| row[0].clone().unwrap_or_default())
            .collect();
        assert_eq!(
            acted.len(),
            *count,
            "{name}: plan counted {count}, the pass changed {} records in {table}",
            acted.len()
        );
        let audited: BTreeSet<String> = trail
            .iter()
            .filter(|(rule, _, _)| rule == name)
            .map(|(_, _, key)| key.clone())
            .collect();
        assert_eq!(
            trail.iter().filter(|(rule, _, _)| rule == name).count(),
            *count,
            "{name}: plan counted {count}; audit entries differ"
        );
        assert_eq!(
            audited, acted,
            "{name}: the audited keys are the changed records"
        );
        assert!(!sample.is_empty(), "{name}: plan named no keys");
        for key in sample {
            assert!(
                acted.contains(key),
                "{name}: plan named {key}, the pass left it alone"
            );
        }
    }
    assert_eq!(
        trail.len(),
        planned.iter().map(|(_, c, _)| c).sum::<usize>(),
        "no audit entry for another rule"
    );
}

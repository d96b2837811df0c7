//! One failing database does not stop the others, the failure is reported, and a password
//! in a URL never reaches any output.

use crate::helpers::{audit_keys, config_head, run, write_config, Kind, TestDb};

const SECRET: &str = "s3cret-pw-never-shown";

#[tokio::test]
async fn an_unreachable_database_fails_its_rules_and_the_others_complete() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    db.exec(
        "CREATE TABLE applicants (id INTEGER PRIMARY KEY, decided_at TEXT);
         INSERT INTO applicants VALUES (1, '2020-01-01'), (2, NULL)",
    )
    .await;
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let config = write_config(
        db.dir.path(),
        &format!(
            "{}[databases.down]\nurl = \"postgres://retentiond:{SECRET}@127.0.0.1:1/hr\"\n
[[rule]]
name = \"on-the-down-database\"
legal_basis = \"test\"
database = \"down\"
table = \"employees\"
key = \"id\"
expires = {{ since = \"left_at\", after = \"7 years\" }}
action = \"delete\"

[[rule]]
name = \"on-the-healthy-database\"
legal_basis = \"test\"
database = \"main\"
table = \"applicants\"
key = \"id\"
expires = {{ since = \"decided_at\" }}
action = \"delete\"
",
            config_head(&db)
        ),
    );
    let r = run(&config, &["run", "--once"]);
    r.assert_code(1);
    assert!(
        r.stdout.contains("on-the-down-database") && r.stdout.contains("FAILED"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("unreachable"),
        "the report says why: {}",
        r.stdout
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM applicants").await,
        1,
        "the healthy rule ran"
    );
    assert_eq!(
        audit_keys(&config),
        vec![(
            "on-the-healthy-database".into(),
            "delete".into(),
            "1".into()
        )]
    );
    let check = run(&config, &["check"]);
    check.assert_code(1);
    let report = run(&config, &["report", "--last", "--format", "json"]);
    report.assert_code(0);
    for out in [
        &r.stdout,
        &r.stderr,
        &check.stdout,
        &check.stderr,
        &report.stdout,
    ] {
        assert!(!out.contains(SECRET), "password leaked: {out}");
    }
    assert!(
        check.stdout.contains("retentiond:***@127.0.0.1:1"),
        "{}",
        check.stdout
    );
}

#[tokio::test]
async fn a_missing_sqlite_file_is_reported_not_created() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    let missing = db.dir.path().join("nope.db");
    let config = write_config(
        db.dir.path(),
        &format!(
            "{}[databases.gone]\nurl = \"sqlite://{}\"\n\n[[rule]]\nname = \"r\"\ndatabase = \"gone\"\ntable = \"t\"\nkey = \"id\"\nexpires = {{ since = \"at\" }}\naction = \"delete\"\n",
            config_head(&db),
            missing.display()
        ),
    );
    let r = run(&config, &["check"]);
    r.assert_code(1);
    assert!(r.stdout.contains("does not exist"), "{}", r.stdout);
    assert!(!missing.exists(), "retentiond never creates a database");
}

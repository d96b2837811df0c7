//! `state migrate --to URL` moves the state from `state_dir/state.db` into an empty
//! PostgreSQL state: the trail there verifies to the same head and exports byte for byte as
//! before, passes go on appending to it, and a target that holds anything, a missing
//! `state.db` or a URL that is not PostgreSQL are refused (exit 2).

use crate::helpers::{raw, run, write_config, ConfigBuilder, Kind, RuleSpec, TestDb};
use std::path::{Path, PathBuf};

/// A SQLite target database with `events` of which `old` expired long ago, and a test
/// PostgreSQL database of its own (`db.state_url`) for the state to move into; `None`
/// locally without a PostgreSQL server.
async fn events(old: i64) -> Option<TestDb> {
    let db = TestDb::with_postgres_state(Kind::Sqlite).await?;
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT)")
        .await;
    let rows: Vec<String> = (1..=old)
        .map(|i| format!("({i}, '2001-01-01')"))
        .chain(std::iter::once("(1000, '2999-01-01')".to_owned()))
        .collect();
    db.exec(&format!("INSERT INTO events VALUES {}", rows.join(", ")))
        .await;
    Some(db)
}

/// The config with the state in `state_dir/state.db` (`state_url` left out) and, beside
/// it, the same config with `state_url` set to the test's PostgreSQL state.
fn configs(db: &TestDb) -> (PathBuf, PathBuf) {
    let builder = ConfigBuilder::new(db).rule(
        RuleSpec::delete("old_events", "events", "happened_at")
            .after("1 year")
            .batch_size(3)
            .max_fraction(1.0),
    );
    let sqlite = ConfigBuilder {
        state_url: None,
        ..builder.clone()
    };
    let postgres = ConfigBuilder {
        state_url: db.state_url.clone(),
        ..builder
    };
    let sqlite = write_config(db.dir.path(), &sqlite.to_toml());
    let pg_path = db.dir.path().join("retentiond-pg.toml");
    std::fs::write(&pg_path, postgres.to_toml()).expect("write the state_url config");
    (sqlite, pg_path)
}

/// The URL of the test's PostgreSQL state.
fn target(db: &TestDb) -> String {
    db.state_url.clone().expect("a PostgreSQL state database")
}

/// `audit verify`'s count and head, from its "intact: N entries, head hash H" line.
fn verified(config: &Path) -> (i64, String) {
    let r = run(config, &["audit", "verify"]);
    r.assert_code(0);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("audit trail intact: "))
        .unwrap_or_else(|| r.fail("audit verify says nothing about an intact trail"));
    let entries = line
        .trim_start_matches("audit trail intact: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| r.fail("no entry count"));
    let head = line
        .rsplit(' ')
        .next()
        .filter(|h| h.len() == 64)
        .unwrap_or_else(|| r.fail("no head hash"));
    (entries, head.to_owned())
}

fn export(config: &Path) -> String {
    let r = run(config, &["audit", "export", "--format", "jsonl"]);
    r.assert_code(0);
    r.stdout.clone()
}

/// The installation id `state.db` holds.
fn sqlite_installation(db: &TestDb) -> String {
    rusqlite::Connection::open(db.state_dir().join("state.db"))
        .expect("open state.db")
        .query_row(
            "SELECT value FROM meta WHERE key = 'installation'",
            [],
            |r| r.get(0),
        )
        .expect("installation id")
}

/// One text from the PostgreSQL state.
async fn pg_text(db: &TestDb, sql: &str) -> String {
    let state = db.state_sql().await;
    let rows = state
        .fetch_texts(&raw(&state, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    state.close().await;
    rows.into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
        .unwrap_or_else(|| panic!("{sql}: no value"))
}

#[tokio::test]
async fn a_state_db_moves_into_postgres_and_verifies_exports_and_grows_there_alike() {
    let Some(db) = events(7).await else { return };
    let (sqlite, postgres) = configs(&db);
    run(&sqlite, &["run", "--once"]).assert_code(0);
    assert_eq!(db.count("SELECT COUNT(*) FROM events").await, 1);
    let (entries, head) = verified(&sqlite);
    assert!(entries >= 7, "the pass audited its 7 deletions");
    let before = export(&sqlite);
    let url = target(&db);

    let r = run(&sqlite, &["state", "migrate", "--to", &url]);
    r.assert_code(0);
    for want in [
        format!("copied {entries} audit entries"),
        "1 runs".to_owned(),
        format!("both trails verify: {entries} entries, head {head}"),
        "state_url".to_owned(),
    ] {
        if !r.stdout.contains(&want) {
            r.fail(&format!("the output does not say {want:?}"));
        }
    }

    // The state in PostgreSQL is the same trail: same head, same export, same installation
    // (so the anchors in the target database still name it).
    assert_eq!(verified(&postgres), (entries, head.clone()));
    assert_eq!(
        export(&postgres),
        before,
        "the export changed in PostgreSQL"
    );
    assert_eq!(
        pg_text(&db, "SELECT value FROM meta WHERE key = 'installation'").await,
        sqlite_installation(&db)
    );

    // A further pass appends to the PostgreSQL trail (new ids past the copied ones), and
    // leaves state.db as it was.
    db.exec("INSERT INTO events VALUES (8, '2001-01-01'), (9, '2001-01-01')")
        .await;
    run(&postgres, &["run", "--once"]).assert_code(0);
    assert_eq!(db.count("SELECT COUNT(*) FROM events").await, 1);
    let (grown, new_head) = verified(&postgres);
    assert_eq!(grown, entries + 2, "the pass's two deletions were appended");
    assert_ne!(new_head, head);
    assert!(export(&postgres).starts_with(&before));
    // state.db, kept as the backup, was not changed (its `audit verify` now says it is
    // behind the anchors the PostgreSQL pass wrote: it is no longer the trail).
    assert_eq!(export(&sqlite), before, "state.db changed");
}

#[tokio::test]
async fn a_target_that_holds_a_state_is_refused_and_left_unchanged() {
    let Some(db) = events(4).await else { return };
    let (sqlite, postgres) = configs(&db);
    run(&sqlite, &["run", "--once"]).assert_code(0);
    let url = target(&db);
    run(&sqlite, &["state", "migrate", "--to", &url]).assert_code(0);
    let copied = export(&postgres);
    let verdict = verified(&postgres);

    let runs = pg_text(&db, "SELECT CAST(COUNT(*) AS TEXT) FROM runs").await;

    // Migrating again would enter the same trail twice.
    let r = run(&sqlite, &["state", "migrate", "--to", &url]);
    r.assert_code(2);
    if !r.stderr.contains("not empty") || !r.stderr.contains("rows in audit_entry") {
        r.fail("the refusal does not say what the target holds");
    }
    assert_eq!(
        export(&postgres),
        copied,
        "the refused migration changed the target"
    );
    assert_eq!(verified(&postgres), verdict);
    assert_eq!(
        pg_text(&db, "SELECT CAST(COUNT(*) AS TEXT) FROM runs").await,
        runs
    );
}

#[test]
fn without_a_state_db_there_is_nothing_to_migrate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let config = write_config(
        dir.path(),
        &format!("[daemon]\nstate_dir = {:?}\n", state.display().to_string()),
    );
    let r = run(
        &config,
        &[
            "state",
            "migrate",
            "--to",
            "postgres://retentiond:s3cret@127.0.0.1:1/none",
        ],
    );
    r.assert_code(2);
    if !r.stderr.contains("state.db does not exist") {
        r.fail("the refusal does not name the missing state.db");
    }
    assert!(!state.join("state.db").exists(), "a state.db was created");
    assert!(!r.stderr.contains("s3cret") && !r.stdout.contains("s3cret"));
}

#[test]
fn a_url_that_is_not_postgres_is_refused_without_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let config = write_config(
        dir.path(),
        &format!("[daemon]\nstate_dir = {:?}\n", state.display().to_string()),
    );
    for url in [
        "mysql://root:s3cret@127.0.0.1:3306/retentiond",
        "sqlite:///tmp/state.db",
    ] {
        let r = run(&config, &["state", "migrate", "--to", url]);
        r.assert_code(2);
        if !r.stderr.contains("only move to PostgreSQL") {
            r.fail("the refusal does not say the state moves to PostgreSQL only");
        }
        if r.stderr.contains("s3cret") || r.stdout.contains("s3cret") {
            r.fail("the URL's password was printed");
        }
    }
}

#[tokio::test]
async fn a_schema_2_state_with_holds_requests_and_rule_history_moves_whole() {
    // `tests/fixtures/state-schema-2/`: what `retentiond demo` wrote before schema 3 —
    // holds, requests, erasures, rule versions — and what its `audit export` printed.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-schema-2");
    let Some(db) = TestDb::with_postgres_state(Kind::Sqlite).await else {
        return;
    };
    let state = db.state_dir();
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::copy(fixture.join("state.db"), state.join("state.db")).expect("copy state.db");
    let daemon = format!("[daemon]\nstate_dir = {:?}\n", state.display().to_string());
    let sqlite = write_config(db.dir.path(), &daemon);
    let postgres = db.dir.path().join("retentiond-pg.toml");
    let url = target(&db);
    std::fs::write(&postgres, format!("{daemon}state_url = {url:?}\n")).expect("write config");

    let r = run(&sqlite, &["state", "migrate", "--to", &url]);
    r.assert_code(0);
    let expected = std::fs::read_to_string(fixture.join("export.jsonl")).expect("fixture");
    assert_eq!(
        export(&postgres),
        expected,
        "the migrated trail exports differently"
    );
    assert_eq!(verified(&postgres), verified(&sqlite));
    for table in ["requests", "rule_versions", "holds_seen", "runs"] {
        let sql = format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}");
        let source = rusqlite::Connection::open(state.join("state.db"))
            .expect("open state.db")
            .query_row(&sql, [], |r| r.get::<_, String>(0))
            .expect("count");
        assert_ne!(source, "0", "the fixture holds {table}");
        assert_eq!(pg_text(&db, &sql).await, source, "{table}");
    }
}

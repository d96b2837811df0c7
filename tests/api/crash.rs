//! The invariant that matters most: whatever moment the process is killed with SIGKILL,
//! every record acted on has exactly one audit entry and no entry exists for an action
//! that did not happen. The real binary is killed mid-pass again and again; after the
//! last pass, the trail is compared with the database key by key. The `..._state_in_postgres`
//! variants keep the trail in PostgreSQL (`[daemon] state_url`) whatever
//! `RETENTIOND_TEST_STATE` says, so that plain `cargo test` covers that store too.

use crate::helpers::{audit_keys, command, config_head, run, write_config, Kind, TestDb};
use std::collections::BTreeSet;
use std::time::Duration;

const ROWS: i64 = 4000;

async fn killed_again_and_again(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    killed_again_and_again_on(db).await;
}

/// The storm on `db`, whose state is wherever its config puts it.
async fn killed_again_and_again_on(db: TestDb) {
    let kind = db.kind;
    let text = if kind == Kind::MySql {
        "VARCHAR(100)"
    } else {
        "TEXT"
    };
    db.exec(&format!("CREATE TABLE events (id INTEGER PRIMARY KEY, payload {text}, happened_at DATE, reviewed {text})")).await;
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(1000) {
        // Even ids expired (deleted by one rule), ids divisible by 3 flagged by another.
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "({i}, 'payload {i}', '{}', NULL)",
                    if i % 2 == 0 {
                        "2001-01-01"
                    } else {
                        "2999-01-01"
                    }
                )
            })
            .collect();
        db.exec(&format!("INSERT INTO events VALUES {}", rows.join(", ")))
            .await;
    }
    db.exec("UPDATE events SET happened_at = '2002-02-02' WHERE id % 6 = 3")
        .await;
    let config = write_config(
        db.dir.path(),
        &format!(
            "{}[[rule]]
name = \"purge\"
legal_basis = \"test\"
database = \"main\"
table = \"events\"
key = \"id\"
filter = \"id % 2 = 0\"
expires = {{ since = \"happened_at\", after = \"1 year\" }}
action = \"delete\"
batch_size = 7

[[rule]]
name = \"review\"
legal_basis = \"test\"
database = \"main\"
table = \"events\"
key = \"id\"
filter = \"id % 2 = 1\"
expires = {{ since = \"happened_at\", after = \"1 year\" }}
action = \"flag\"
flag = {{ column = \"reviewed\", value = \"due\" }}
batch_size = 5
",
            config_head(&db)
        ),
    );
    let mut rng = 0x9e37_79b9_u64;
    let mut kills = 0;
    for _ in 0..12 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = command(&config, &["run", "--once"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        tokio::time::sleep(Duration::from_millis(40 + rng % 260)).await;
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
    }
    // The final pass, not killed.
    run(&config, &["run", "--once"]).assert_code(0);
    assert!(
        kills >= 3,
        "the binary was killed mid-pass only {kills} times; the test proves nothing"
    );

    let deleted: BTreeSet<String> = (1..=ROWS)
        .filter(|i| i % 2 == 0)
        .map(|i| i.to_string())
        .collect();
    let flagged: BTreeSet<String> = (1..=ROWS)
        .filter(|i| i % 6 == 3)
        .map(|i| i.to_string())
        .collect();
    let remaining = db.rows("events", &["id", "reviewed"]).await;
    let still: BTreeSet<String> = remaining.iter().filter_map(|r| r[0].clone()).collect();
    assert!(
        deleted.is_disjoint(&still),
        "every expired even record is gone"
    );
    assert_eq!(still.len() as i64, ROWS / 2);
    for r in &remaining {
        let id = r[0].clone().unwrap_or_default();
        let want = flagged.contains(&id).then_some("due");
        assert_eq!(r[1].as_deref(), want, "record {id}");
    }
    let trail = audit_keys(&config);
    let mut seen = BTreeSet::new();
    for (rule, action, key) in &trail {
        assert!(
            seen.insert((rule.clone(), key.clone())),
            "two entries for {rule} {key}"
        );
        match rule.as_str() {
            "purge" => assert!(action == "delete" && deleted.contains(key), "{key}"),
            _ => assert!(action == "flag" && flagged.contains(key), "{key}"),
        }
    }
    assert_eq!(
        trail.len(),
        deleted.len() + flagged.len(),
        "one entry per record acted on, none missing"
    );
    run(&config, &["audit", "verify"]).assert_code(0);
    if db.state_url.is_some() {
        assert!(
            !db.state_dir().join("state.db").exists(),
            "the trail was to be kept in PostgreSQL, not in state.db"
        );
    }
}

#[tokio::test]
async fn sigkill_at_any_moment_leaves_the_trail_whole_on_sqlite() {
    killed_again_and_again(Kind::Sqlite).await;
}

#[tokio::test]
async fn sigkill_at_any_moment_leaves_the_trail_whole_on_postgres() {
    killed_again_and_again(Kind::Postgres).await;
}

#[tokio::test]
async fn sigkill_at_any_moment_leaves_the_trail_whole_on_mariadb() {
    killed_again_and_again(Kind::MySql).await;
}

#[tokio::test]
async fn sigkill_at_any_moment_leaves_the_trail_whole_on_sqlite_with_the_state_in_postgres() {
    let Some(db) = TestDb::with_postgres_state(Kind::Sqlite).await else {
        return;
    };
    killed_again_and_again_on(db).await;
}

#[tokio::test]
async fn sigkill_at_any_moment_leaves_the_trail_whole_on_postgres_with_the_state_in_postgres() {
    let Some(db) = TestDb::with_postgres_state(Kind::Postgres).await else {
        return;
    };
    killed_again_and_again_on(db).await;
}

//! A stop signal to `run --once`: the batch in flight commits and is audited, every pause
//! ends at once, and the process exits 128 + the signal (130 for Ctrl-C) with a trail that
//! verifies and matches the database key for key.

use crate::helpers::{audit_keys, command, config_head, run, write_config, Kind, TestDb};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A SQLite table `events` with `rows` expired rows, and a config deleting them in batches
/// of `batch_size` with `batch_pause` between batches.
async fn expired_events(
    rows: i64,
    batch_size: u32,
    batch_pause: &str,
) -> (TestDb, std::path::PathBuf) {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite is embedded");
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT)")
        .await;
    db.exec(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) INSERT INTO events SELECT i, '2001-01-01' FROM n"
    ))
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
expires = {{ since = \"happened_at\", after = \"1 year\" }}
action = \"delete\"
max_fraction = 1.0
batch_size = {batch_size}
batch_pause = \"{batch_pause}\"
",
            config_head(&db)
        ),
    );
    (db, config)
}

/// Waits until fewer than `below` rows are left (the pass is under way).
async fn wait_until_rows_below(db: &TestDb, below: i64, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.count("SELECT COUNT(*) FROM events").await >= below {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("run --once ended ({status}) before the test could interrupt it");
        }
        assert!(Instant::now() < deadline, "the pass never started deleting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn send(child: &Child, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {signal} failed");
}

/// Waits for `child` to exit within `limit`; its exit code.
fn exit_within(child: &mut Child, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < deadline,
            "retentiond did not stop within {limit:?} of the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every deleted row has exactly one `delete` entry, nothing else is in the trail, and
/// `audit verify` passes. Returns how many rows were deleted.
async fn trail_matches_the_database(db: &TestDb, config: &std::path::Path, rows: i64) -> i64 {
    let left = db.count("SELECT COUNT(*) FROM events").await;
    let deleted = rows - left;
    let trail = audit_keys(config);
    assert_eq!(
        trail.len() as i64,
        deleted,
        "one audit entry per deleted row"
    );
    let mut keys: Vec<i64> = trail
        .iter()
        .map(|(rule, action, key)| {
            assert_eq!((rule.as_str(), action.as_str()), ("purge", "delete"));
            key.parse().expect("integer key")
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len() as i64, deleted, "no key audited twice");
    let still_there = db
        .count(&format!(
            "SELECT COUNT(*) FROM events WHERE id IN ({})",
            keys.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ))
        .await;
    assert_eq!(still_there, 0, "an audited key is still in the table");
    let verify = run(config, &["audit", "verify"]);
    assert_eq!(
        verify.code, 0,
        "audit verify: {}{}",
        verify.stdout, verify.stderr
    );
    deleted
}

#[tokio::test]
async fn ctrl_c_during_a_300k_row_purge_finishes_the_batch_in_flight_and_exits_130() {
    const ROWS: i64 = 300_000;
    let (db, config) = expired_events(ROWS, 1000, "20 ms").await;
    let mut child = command(&config, &["run", "--once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start retentiond");
    wait_until_rows_below(&db, ROWS - 3000, &mut child).await;
    send(&child, "-INT");
    let code = exit_within(&mut child, Duration::from_secs(30));
    assert_eq!(code, 130, "Ctrl-C ends run --once with 128 + SIGINT");
    let deleted = trail_matches_the_database(&db, &config, ROWS).await;
    assert!(
        (3000..ROWS).contains(&deleted),
        "the pass stopped part-way ({deleted} of {ROWS} deleted)"
    );
    assert_eq!(deleted % 1000, 0, "only whole batches were committed");
    // The next pass carries on where this one stopped, from a clean state.
    let again = run(&config, &["run", "--once"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(trail_matches_the_database(&db, &config, ROWS).await, ROWS);
}

#[tokio::test]
async fn an_hour_long_batch_pause_ends_at_sigterm_with_the_batch_audited() {
    const ROWS: i64 = 5000;
    let (db, config) = expired_events(ROWS, 1000, "3600 s").await;
    let mut child = command(&config, &["run", "--once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start retentiond");
    wait_until_rows_below(&db, ROWS, &mut child).await;
    send(&child, "-TERM");
    let code = exit_within(&mut child, Duration::from_secs(15));
    assert_eq!(code, 143, "SIGTERM ends run --once with 128 + SIGTERM");
    assert_eq!(trail_matches_the_database(&db, &config, ROWS).await, 1000);
}

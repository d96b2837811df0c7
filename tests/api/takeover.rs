//! Two instances on one PostgreSQL state (`[daemon] state_url`), as on two hosts: one acts,
//! the other waits as a standby; killing the active one (`kill -9`, mid-pass) hands the
//! lease over within the stated bound, the new one settles the batch in doubt and carries
//! on; across ten such kills no record is acted on twice, none unaudited, and the trail
//! verifies and equals the data key by key.

use crate::helpers::{audit_keys, command, run, ConfigBuilder, Kind, RuleSpec, TestDb};
use retentiond::state::TAKEOVER_BOUND;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// One instance: a daemon process with its own state directory ("its host") and log.
struct Instance {
    config: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl Instance {
    fn new(config: PathBuf) -> Instance {
        let log = config.with_extension("log");
        Instance {
            config,
            child: None,
            log,
        }
    }

    /// Starts the daemon (again), with a fresh log.
    fn start(&mut self) {
        let file = std::fs::File::create(&self.log).expect("log file");
        let mut c = command(&self.config, &["run"]);
        c.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(file);
        self.child = Some(c.spawn().expect("spawn daemon"));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether this process took the lease (it logs so once, when it does).
    fn acts(&self) -> bool {
        self.child.is_some() && self.log().contains("this instance acts")
    }

    /// Whether this process said it waits as a standby.
    fn waits(&self) -> bool {
        self.child.is_some()
            && self
                .log()
                .contains("standby: another instance holds the lease")
    }

    /// `kill -9`.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(&mut self) -> i32 {
        let Some(mut c) = self.child.take() else {
            return 0;
        };
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s.code().unwrap_or(-1);
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = c.kill();
                panic!("instance did not stop; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Entries in the PostgreSQL trail (read directly: cheap enough to poll).
async fn entries(state: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM retentiond.audit_entry")
        .fetch_one(state)
        .await
        .unwrap_or(0)
}

/// Waits until `done` holds, or panics after `limit` with `why` and both logs.
async fn wait_until(
    limit: Duration,
    instances: &[Instance; 2],
    why: &str,
    mut done: impl FnMut(&[Instance; 2]) -> bool,
) -> Duration {
    let start = Instant::now();
    while !done(instances) {
        assert!(
            start.elapsed() < limit,
            "{why} within {limit:?}\n--- instance a ---\n{}\n--- instance b ---\n{}",
            instances[0].log(),
            instances[1].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// The config of one "host": its own state directory, the shared state database.
fn host_config(db: &TestDb, name: &str) -> PathBuf {
    let mut config = ConfigBuilder::new(db).rule(
        RuleSpec::delete("old-events", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0)
            .batch_size(10)
            .batch_pause("20 ms"),
    );
    config.state_dir = db.dir.path().join(name).join("state");
    config.state_url = db.state_url.clone();
    config.schedule = Some("* * * * * *".into());
    let path = db.dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, config.to_toml()).expect("config");
    path
}

/// A PostgreSQL target with `rows` expired events, a PostgreSQL state of its own, a
/// session on that state, and two "hosts" configured on it (not started).
async fn two_hosts(rows: i64) -> Option<(TestDb, sqlx::PgPool, [Instance; 2])> {
    let db = TestDb::with_postgres_state(Kind::Postgres).await?;
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at DATE)")
        .await;
    db.exec(&format!(
        "INSERT INTO events SELECT g, DATE '2001-01-01' FROM generate_series(1, {rows}) g"
    ))
    .await;
    let state = sqlx::PgPool::connect(db.state_url.as_deref().expect("state_url"))
        .await
        .expect("state database");
    let hosts = [
        Instance::new(host_config(&db, "a")),
        Instance::new(host_config(&db, "b")),
    ];
    Some((db, state, hosts))
}

/// Every event deleted from `db` (of ids `1..=rows`) has exactly one `delete` entry in the
/// trail `config` reads, no event still there has one, and `audit verify` passes.
async fn assert_trail_equals_data(db: &TestDb, config: &Path, rows: i64) {
    let keys: Vec<String> = audit_keys(config)
        .into_iter()
        .filter(|(_, action, _)| action == "delete")
        .map(|(_, _, k)| k)
        .collect();
    let audited: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(audited.len(), keys.len(), "an entry for a record twice");
    let present: BTreeSet<String> = db
        .rows("events", &["id"])
        .await
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    let deleted: BTreeSet<String> = (1..=rows)
        .map(|i| i.to_string())
        .filter(|k| !present.contains(k))
        .collect();
    assert!(!deleted.is_empty(), "nothing was purged");
    let unaudited: Vec<&String> = deleted.difference(&audited).take(5).collect();
    let phantom: Vec<&String> = audited.difference(&deleted).take(5).collect();
    assert!(
        unaudited.is_empty() && phantom.is_empty(),
        "deleted without an entry: {unaudited:?}; entries for records still there: {phantom:?}"
    );
    run(config, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn ten_kills_of_the_active_instance_hand_over_and_no_record_is_acted_on_twice() {
    const ROWS: i64 = 20_000;
    let Some((db, state, mut hosts)) = two_hosts(ROWS).await else {
        return;
    };
    hosts[0].start();
    hosts[1].start();
    let mut takeovers = Vec::new();
    for kill in 0..10 {
        wait_until(
            Duration::from_secs(30),
            &hosts,
            "one instance acts and the other waits as a standby",
            |h| (h[0].acts() && h[1].waits()) || (h[1].acts() && h[0].waits()),
        )
        .await;
        let active = if hosts[0].acts() { 0 } else { 1 };
        assert!(
            !hosts[1 - active].acts(),
            "both instances act at once\n--- a ---\n{}\n--- b ---\n{}",
            hosts[0].log(),
            hosts[1].log()
        );
        // Let it work a little under its lease, then kill it mid-pass.
        let before = entries(&state).await;
        let start = Instant::now();
        while entries(&state).await < before + 20 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "kill {kill}: the active instance made no progress; log:\n{}",
                hosts[active].log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        hosts[active].kill();
        let took = wait_until(
            TAKEOVER_BOUND + Duration::from_secs(5),
            &hosts,
            &format!("kill {kill}: the standby took over"),
            |h| h[1 - active].acts(),
        )
        .await;
        takeovers.push(took);
        // The killed host comes back: it must wait, not act.
        hosts[active].start();
    }
    wait_until(
        Duration::from_secs(30),
        &hosts,
        "the instance that came back waits as a standby",
        |h| h[0].waits() || h[1].waits(),
    )
    .await;
    // A little more work, then a clean stop of both.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for h in &mut hosts {
        assert_eq!(h.stop(), 0, "clean stop; log:\n{}", h.log());
    }
    state.close().await;
    eprintln!("takeovers after kill -9: {takeovers:?}");

    // The trail and the data agree key by key: every deleted record has exactly one entry,
    // and no record still present has one.
    let config = hosts[0].config.clone();
    assert_trail_equals_data(&db, &config, ROWS).await;
    assert_bound(&takeovers);
}

/// Every takeover after a `kill -9` happened within the stated bound.
fn assert_bound(takeovers: &[Duration]) {
    for (i, t) in takeovers.iter().enumerate() {
        assert!(
            *t <= TAKEOVER_BOUND,
            "takeover {i} took {t:?}, more than the stated {TAKEOVER_BOUND:?}"
        );
    }
}

/// A second `run --once` while an instance holds the pass lock is refused, and says where.
#[tokio::test]
async fn a_pass_elsewhere_on_the_same_state_is_refused_while_one_runs() {
    let Some(db) = TestDb::with_postgres_state(Kind::Sqlite).await else {
        return;
    };
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT)")
        .await;
    for chunk in (1..=3000).collect::<Vec<i64>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("({i}, '2001-01-01')"))
            .collect();
        db.exec(&format!("INSERT INTO events VALUES {}", values.join(", ")))
            .await;
    }
    let a = host_config(&db, "a");
    let b = host_config(&db, "b");
    let mut first = command(&a, &["run", "--once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait until the first pass is under way (it has written entries).
    let start = Instant::now();
    while audit_keys_count(&a) == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "no pass started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = run(&b, &["run", "--once"]);
    let _ = first.wait();
    assert_ne!(second.code, 0, "{second}");
    assert!(
        second
            .stderr
            .contains("another retentiond instance is running a pass"),
        "{second}"
    );
    run(&a, &["audit", "verify"]).assert_code(0);
}

fn audit_keys_count(config: &Path) -> usize {
    let r = run(config, &["audit", "export", "--format", "jsonl"]);
    if r.code != 0 {
        return 0;
    }
    r.stdout
        .lines()
        .filter(|l| l.contains("\"delete\""))
        .count()
}

/// The lease's session ended under the acting instance (an administrator's
/// `pg_terminate_backend`, a failover of the state database): it stops its pass after the
/// batch in flight and waits as a standby, and the other instance takes over and carries
/// on — still one entry per deleted record.
#[tokio::test]
async fn an_instance_that_loses_its_lease_mid_pass_stops_and_the_standby_takes_over() {
    const ROWS: i64 = 5_000;
    let Some((db, state, mut hosts)) = two_hosts(ROWS).await else {
        return;
    };
    hosts[0].start();
    wait_until(Duration::from_secs(30), &hosts, "a acts", |h| h[0].acts()).await;
    hosts[1].start();
    wait_until(Duration::from_secs(30), &hosts, "b waits", |h| h[1].waits()).await;
    let start = Instant::now();
    while entries(&state).await < 50 {
        assert!(start.elapsed() < Duration::from_secs(30), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // End the lease's session on the server (class "RETD", object 2).
    let ended: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1380275268 AND objid = 2 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&state)
    .await
    .expect("terminate the lease session");
    assert_eq!(ended, 1, "one session held the lease");
    wait_until(
        Duration::from_secs(30),
        &hosts,
        "a gives up and b takes over",
        |h| h[0].log().contains("lost the lease") && h[1].acts(),
    )
    .await;
    wait_until(Duration::from_secs(30), &hosts, "a waits again", |h| {
        h[0].log()
            .contains("standby: another instance holds the lease")
    })
    .await;
    let before = entries(&state).await;
    let start = Instant::now();
    while entries(&state).await < before + 20 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "b made no progress; log:\n{}",
            hosts[1].log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for h in &mut hosts {
        assert_eq!(h.stop(), 0, "clean stop; log:\n{}", h.log());
    }
    state.close().await;
    let config = hosts[1].config.clone();
    assert_trail_equals_data(&db, &config, ROWS).await;
}

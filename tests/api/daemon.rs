//! The daemon as systemd runs it: passes on schedule and never overlapping, a missed pass
//! caught up once, SIGHUP reload (valid and invalid), SIGTERM mid-purge, sd_notify
//! messages, and the metrics endpoint.

use crate::helpers::{audit_keys, command, raw, run, ConfigBuilder, Kind, RuleSpec, TestDb};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running daemon whose stderr goes to a file; killed if the test ends early.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, envs: &[(&str, &str)]) -> Daemon {
        let log = config.with_extension("log");
        let file = std::fs::File::create(&log).expect("log file");
        let mut c = command(config, &["run"]);
        c.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(file);
        for (k, v) in envs {
            c.env(k, v);
        }
        Daemon {
            child: c.spawn().expect("spawn daemon"),
            log,
        }
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit; its code, or panics after `limit`.
    fn wait_exit(&mut self, limit: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < limit,
                "daemon did not exit within {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finished passes as (started_at, finished_at), oldest first.
async fn passes(db: &TestDb) -> Vec<(String, String)> {
    if db.state_url.is_none() && !db.state_dir().join("state.db").exists() {
        return Vec::new();
    }
    let state = db.state_sql().await;
    let rows = state
        .fetch_texts(&raw(
            &state,
            "SELECT started_at, finished_at FROM runs WHERE finished_at IS NOT NULL ORDER BY started_at",
        ))
        .await;
    state.close().await;
    match rows {
        Ok(rows) => rows
            .into_iter()
            .map(|r| {
                let mut r = r.into_iter().map(Option::unwrap_or_default);
                (r.next().unwrap_or_default(), r.next().unwrap_or_default())
            })
            .collect(),
        // The PostgreSQL state before the daemon created its schema.
        Err(_) if db.state_url.is_some() => Vec::new(),
        Err(e) => panic!("runs: {e}"),
    }
}

async fn wait_for_passes(db: &TestDb, n: usize, limit: Duration) -> Vec<(String, String)> {
    let start = Instant::now();
    loop {
        let p = passes(db).await;
        if p.len() >= n || start.elapsed() > limit {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn table_db(rows: i64) -> Option<TestDb> {
    let db = TestDb::new(Kind::Sqlite).await?;
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT)")
        .await;
    for chunk in (1..=rows).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("({i}, '2001-01-01')"))
            .collect();
        db.exec(&format!("INSERT INTO events VALUES {}", values.join(", ")))
            .await;
    }
    Some(db)
}

fn rule() -> RuleSpec {
    RuleSpec::delete("old-events", "events", "happened_at")
        .after("1 year")
        .max_fraction(1.0)
}

/// A config for `db` with `schedule` and the one `rule`.
fn scheduled(db: &TestDb, schedule: &str, rule: RuleSpec) -> ConfigBuilder {
    let mut config = ConfigBuilder::new(db).rule(rule);
    config.schedule = Some(schedule.into());
    config
}

fn with_schedule(db: &TestDb, schedule: &str, rule: RuleSpec) -> PathBuf {
    scheduled(db, schedule, rule).write(db)
}

#[tokio::test]
async fn passes_run_on_schedule_and_never_overlap() {
    let Some(db) = table_db(12).await else { return };
    // Every second, but each pass takes ~1.2 s (12 batches of 1 with 100 ms pauses).
    let config = with_schedule(
        &db,
        "* * * * * *",
        rule().batch_size(1).batch_pause("100 ms"),
    );
    let mut d = Daemon::start(&config, &[]);
    let p = wait_for_passes(&db, 3, Duration::from_secs(15)).await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), 0, "{}", d.log());
    assert!(
        p.len() >= 3,
        "only {} passes ran; log:\n{}",
        p.len(),
        d.log()
    );
    for w in p.windows(2) {
        assert!(
            w[1].0 >= w[0].1,
            "pass started at {} before the previous ended at {}",
            w[1].0,
            w[0].1
        );
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM events").await, 0);
}

#[tokio::test]
async fn a_pass_missed_while_down_is_caught_up_once_at_start() {
    let Some(db) = table_db(3).await else { return };
    // Daily at 03:00; the history says the rule last ran three days ago.
    let config = with_schedule(&db, "0 0 3 * * *", rule());
    let state = db.open_state().await;
    let long_ago = retentiond::state::time_text(chrono::Utc::now() - chrono::Duration::days(3));
    state
        .mark_rules_started(&["old-events"], &long_ago)
        .await
        .expect("history");
    state.close().await;
    let mut d = Daemon::start(&config, &[]);
    let p = wait_for_passes(&db, 1, Duration::from_secs(10)).await;
    assert_eq!(p.len(), 1, "log:\n{}", d.log());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(passes(&db).await.len(), 1, "caught up once, not again");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM events").await, 0);
}

#[tokio::test]
async fn sighup_applies_a_valid_config_and_keeps_the_old_one_when_invalid() {
    let Some(db) = table_db(3).await else { return };
    let daily = with_schedule(&db, "0 0 3 * * *", rule());
    let mut d = Daemon::start(&daily, &[]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    // An invalid file: refused, the daemon keeps running on the old config.
    with_schedule(&db, "0 0 3 * * *", rule().after("1 yeer"));
    d.signal("HUP");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        d.child.try_wait().expect("wait").is_none(),
        "daemon died on an invalid reload"
    );
    assert!(d.log().contains("config reload refused"), "{}", d.log());
    assert!(
        d.log().contains("expires.after"),
        "the log says exactly why: {}",
        d.log()
    );
    assert!(passes(&db).await.is_empty());
    // A valid file with a per-second schedule: takes effect.
    with_schedule(&db, "* * * * * *", rule());
    d.signal("HUP");
    let p = wait_for_passes(&db, 1, Duration::from_secs(10)).await;
    assert!(
        !p.is_empty(),
        "the reloaded schedule ran no pass; log:\n{}",
        d.log()
    );
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), 0);
}

#[tokio::test]
async fn sigterm_in_a_long_purge_exits_0_quickly_with_the_trail_whole() {
    let Some(db) = table_db(3000).await else {
        return;
    };
    let config = with_schedule(
        &db,
        "* * * * * *",
        rule().batch_size(10).batch_pause("20 ms"),
    );
    let mut d = Daemon::start(&config, &[]);
    let start = Instant::now();
    while audit_keys(&config).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no batch ran; log:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stop = Instant::now();
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(5)), 0, "{}", d.log());
    assert!(
        stop.elapsed() < Duration::from_secs(3),
        "took {:?}",
        stop.elapsed()
    );
    let remaining = db.count("SELECT COUNT(*) FROM events").await;
    assert!(remaining > 0, "the purge was interrupted, not finished");
    assert_eq!(
        audit_keys(&config).len() as i64,
        3000 - remaining,
        "entries = records changed"
    );
    run(&config, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn systemd_hears_ready_and_stopping() {
    let Some(db) = table_db(1).await else { return };
    let config = with_schedule(&db, "0 0 3 * * *", rule());
    let socket_path = db.dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut d = Daemon::start(
        &config,
        &[("NOTIFY_SOCKET", socket_path.to_str().expect("path"))],
    );
    let mut heard = String::new();
    let mut buf = [0u8; 4096];
    while !heard.contains("READY=1") {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no READY=1 ({e}); heard {heard:?}; log:\n{}", d.log()));
        heard.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    while !heard.contains("STATUS=next pass") {
        let n = socket.recv(&mut buf).expect("STATUS");
        heard.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    d.signal("TERM");
    while !heard.contains("STOPPING=1") {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no STOPPING=1 ({e}); heard {heard:?}"));
        heard.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(d.wait_exit(Duration::from_secs(10)), 0);
}

#[tokio::test]
async fn the_metrics_endpoint_answers_with_the_counters() {
    let Some(db) = table_db(5).await else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut config = scheduled(&db, "* * * * * *", rule());
    config.metrics_listen = Some(format!("127.0.0.1:{port}"));
    let config = config.write(&db);
    let mut d = Daemon::start(&config, &[]);
    wait_for_passes(&db, 1, Duration::from_secs(10)).await;
    let scrape = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("response");
        out
    };
    // A pass is in the run history (fsynced, then anchored) a moment before the daemon
    // counts it in the metrics: wait for the counters, not for the history.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut body = scrape();
    while body.contains("retentiond_passes_total 0") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        body = scrape();
    }
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), 0);
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("retentiond_records_total{rule=\"old-events\",action=\"delete\"} 5"),
        "{body}"
    );
    for name in [
        "retentiond_passes_total",
        "retentiond_last_success_timestamp_seconds",
        "retentiond_last_pass_duration_seconds",
        // 5 deletions and the rule's rule-start.
        "retentiond_audit_entries 6",
        // The only instance holds the lease.
        "retentiond_active 1",
    ] {
        assert!(body.contains(name), "{name} missing: {body}");
    }
}

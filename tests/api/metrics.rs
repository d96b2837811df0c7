//! The metrics endpoint against a hostile client: idle connections by the hundred, a
//! slow-loris request head, a storm of connects. None of them may hold the daemon's file
//! descriptors or CPU, and scheduled passes go on enforcing and auditing meanwhile.

use crate::helpers::{audit_keys, command, run, ConfigBuilder, Kind, RuleSpec, TestDb};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server's header-read timeout (`LIMITS.header` in `src/daemon/metrics.rs`) plus slack
/// for a loaded 2-core machine: an idle or slow client must be gone by then.
const CUT_OFF: Duration = Duration::from_secs(4);

/// A running daemon whose stderr goes to a file; killed if the test ends early.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// `retentiond run`, with at most `max_fds` open files if given (as systemd's
    /// `LimitNOFILE=` would), so that a leak shows within a test's few hundred connections.
    fn start(config: &Path, max_fds: Option<u32>) -> Daemon {
        let log = config.with_extension("log");
        let file = std::fs::File::create(&log).expect("log file");
        let inner = command(config, &["run"]);
        let mut c = match max_fds {
            None => command(config, &["run"]),
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(inner.get_program())
                    .args(inner.get_args());
                for (k, v) in inner.get_envs() {
                    match v {
                        Some(v) => c.env(k, v),
                        None => c.env_remove(k),
                    };
                }
                c
            }
        };
        c.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(file);
        Daemon {
            child: c.spawn().expect("spawn daemon"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Entries in /proc/<pid>/fd: the descriptors the daemon holds now.
    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// SIGTERM, then the exit code (panics after 10 s).
    fn stop(&mut self) -> i32 {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(ok.success());
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "daemon did not stop; log:\n{}",
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// A SQLite database with an empty `events` table and a config that deletes its rows older
/// than a year at every second, serving metrics on a free port.
async fn setup() -> Option<(TestDb, PathBuf, u16)> {
    let db = TestDb::new(Kind::Sqlite).await?;
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT)")
        .await;
    let port = free_port();
    let mut config = ConfigBuilder::new(&db).rule(
        RuleSpec::delete("old-events", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0),
    );
    config.schedule = Some("* * * * * *".into());
    config.metrics_listen = Some(format!("127.0.0.1:{port}"));
    let config = config.write(&db);
    Some((db, config, port))
}

/// Waits until the daemon listens on `port`.
fn wait_listening(d: &Daemon, port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "metrics endpoint never came up; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /metrics` on a new connection: the response, or `None` if the server refused or
/// closed the connection. Panics if nothing happens within `limit`.
fn scrape(port: u16, limit: Duration) -> Option<String> {
    let start = Instant::now();
    let mut s = match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), limit) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => return None,
        Err(e) => panic!("connect: {e}"),
    };
    s.set_read_timeout(Some(limit)).expect("timeout");
    if s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return None;
    }
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "GET /metrics neither answered nor refused within {:?}: {e}",
            start.elapsed()
        ),
    }
    let out = String::from_utf8_lossy(&out).into_owned();
    out.starts_with("HTTP/1.1 200").then_some(out)
}

/// Whether the server has closed `s`: a read sees end of file (or a reset) before `by`.
fn closed_by_server(s: &mut TcpStream, by: Instant) -> bool {
    let left = by.saturating_duration_since(Instant::now());
    s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
        .expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A 503 for a connection beyond the limit, then the close.
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn idle_connections_neither_stop_enforcement_nor_stay_open() {
    let Some((db, config, port)) = setup().await else {
        return;
    };
    // Room for the daemon's own files and the endpoint's 16 connections, not for 200.
    let mut d = Daemon::start(&config, Some(64));
    wait_listening(&d, port);
    // 200 clients connect and say nothing. A connect that hangs past the kernel's SYN retries
    // at 1 and 3 s (the daemon stopped taking connections, its backlog stays full) ends the
    // opening; that too is checked, after the rules.
    let addr = ([127, 0, 0, 1], port).into();
    let mut idle = Vec::new();
    let mut stuck = None;
    for i in 0..200 {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => idle.push(s),
            Err(e) => {
                stuck = Some(format!("idle connection {i}: {e}"));
                break;
            }
        }
    }
    let opened = Instant::now();
    // Expired records appear while the idle connections are held: the next pass must act.
    let values: Vec<String> = (1..=20).map(|i| format!("({i}, '2001-01-01')")).collect();
    db.exec(&format!("INSERT INTO events VALUES {}", values.join(", ")))
        .await;
    let start = Instant::now();
    while db.count("SELECT COUNT(*) FROM events").await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no pass deleted the expired rows while {} idle connections were open; log:\n{}",
            idle.len(),
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stuck, None, "the endpoint stopped taking connections");
    // A scrape meanwhile is answered or refused, at once either way (`scrape` panics if not).
    let _ = scrape(port, Duration::from_secs(3));
    let by = opened + CUT_OFF;
    let still_open = idle
        .iter_mut()
        .filter_map(|s| (!closed_by_server(s, by)).then_some(()))
        .count();
    assert_eq!(still_open, 0, "idle connections the server kept open");
    let body = scrape(port, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no metrics once the idle clients were gone:\n{}", d.log()));
    assert!(
        body.contains("retentiond_records_total{rule=\"old-events\",action=\"delete\"} 20"),
        "{body}"
    );
    drop(idle);
    assert_eq!(d.stop(), 0, "{}", d.log());
    assert!(!d.log().contains("Too many open files"), "{}", d.log());
    // Logged once per burst, not once per refused connection.
    let warned = d.log().matches("too many connections").count();
    assert!((1..=5).contains(&warned), "{warned} warnings:\n{}", d.log());
    run(&config, &["audit", "verify"]).assert_code(0);
    assert_eq!(audit_keys(&config).len(), 20);
}

#[tokio::test]
async fn a_slow_loris_request_head_is_cut_off() {
    let Some((_db, config, port)) = setup().await else {
        return;
    };
    let d = Daemon::start(&config, None);
    wait_listening(&d, port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut writer = s.try_clone().expect("clone");
    let start = Instant::now();
    // One header byte every 100 ms: never a whole head within the timeout.
    let slow = std::thread::spawn(move || {
        let head = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".iter();
        for &b in head.chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[b]).is_err() || start.elapsed() > Duration::from_secs(8) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    assert!(
        closed_by_server(&mut s, start + CUT_OFF),
        "a slow request head was still being read after {CUT_OFF:?}"
    );
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = slow.join();
}

#[tokio::test]
async fn open_descriptors_stay_bounded_under_a_connection_storm() {
    let Some((_db, config, port)) = setup().await else {
        return;
    };
    let d = Daemon::start(&config, None);
    wait_listening(&d, port);
    let before = d.open_fds();
    let mut held = Vec::new();
    let mut most = before;
    for i in 0..500 {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => held.push(s),
            Err(e) => panic!("connection {i}: {e}"),
        }
        if i % 50 == 0 {
            most = most.max(d.open_fds());
        }
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(500) {
        most = most.max(d.open_fds());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        most < 100,
        "{most} descriptors open (from {before}) with 500 connections attempted"
    );
    drop(held);
    // Once the storm is over, the endpoint answers again.
    let start = Instant::now();
    while scrape(port, Duration::from_secs(3)).is_none() {
        assert!(
            start.elapsed() < CUT_OFF,
            "no metrics after the storm; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! `max_replica_lag`: a purge waits while a replica lags, and goes on once it has caught
//! up. Against the real thing on 127.0.0.1 only: a PostgreSQL streaming standby of the
//! local cluster (pg_basebackup on a free port), and a MariaDB primary and replica of the
//! test's own (the shared server runs without a binary log). Each test starts its
//! replica and tears it down; the config errors need no replica.

use crate::helpers::{
    command, events, quoted, run, ConfigBuilder, DatabaseEntry, Kind, RuleSpec, Run, TestDb,
};
use retentiond::config::{DatabaseSpec, Dialect, Secret};
use retentiond::db::replicas::{lag_of_replica, standbys_of, Behind, Reading};
use retentiond::db::{Db, Sql};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Skips (locally, loudly) or fails (with `CI` set) when something the test needs is
/// missing, as `helpers` does for the database servers.
fn missing<T>(what: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {what}");
    }
    eprintln!("\n!!!!! SKIPPING replica test: {what}; set CI=1 to make this a failure !!!!!\n");
    None
}

/// `replicas = [...]` on a `[databases.NAME]`.
trait WithReplicas {
    fn replicas(self, urls: &[&str]) -> Self;
}

impl WithReplicas for DatabaseEntry {
    fn replicas(mut self, urls: &[&str]) -> Self {
        let list: Vec<String> = urls.iter().map(|u| quoted(u)).collect();
        self.extra
            .push(("replicas".into(), format!("[{}]", list.join(", "))));
        self
    }
}

/// Whether this process may start servers as the `postgres` and `mysql` users.
fn root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spec(url: &str) -> DatabaseSpec {
    DatabaseSpec {
        name: "replica-test".into(),
        dialect: if url.starts_with("postgres") {
            Dialect::Postgres
        } else {
            Dialect::MySql
        },
        url: url.into(),
        secret: Secret::None,
        timeouts: Default::default(),
        line: 0,
    }
}

/// Runs one statement on `url` (fixtures only).
async fn exec(url: &str, stmt: &str) {
    let db = Db::connect(&spec(url))
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let mut sql = Sql::new(db.dialect);
    sql.push(stmt);
    db.execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    db.close().await;
}

/// One integer from `url`.
async fn count(url: &str, q: &str) -> i64 {
    let db = Db::connect(&spec(url))
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let mut sql = Sql::new(db.dialect);
    sql.push(q);
    let n = db
        .fetch_i64(&sql)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    db.close().await;
    n
}

/// Runs a program to completion; its output on failure.
fn sh(program: &str, args: &[&str]) -> Result<(), String> {
    let o = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

// ------------------------------------------------------------------ PostgreSQL standby

/// A streaming standby of the local cluster (127.0.0.1:5432), stopped and removed on drop.
struct PgStandby {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PgStandby {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Makes the primary accept replication connections from 127.0.0.1 (one line in its
    /// pg_hba.conf, added once, then a reload), copies it with pg_basebackup and starts
    /// the copy as a standby on a free port. `wal_receiver_status_interval = 1s` so that
    /// the primary hears of the standby's replay within a second even when idle.
    async fn start(primary: &str) -> Option<PgStandby> {
        if !root() {
            return missing("the standby is started as the postgres user, which needs root");
        }
        let Some(bin) = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path().join("bin")).max())
            .filter(|b| b.join("pg_basebackup").exists())
        else {
            return missing("pg_basebackup is not installed under /usr/lib/postgresql");
        };
        if let Err(e) = allow_replication(primary).await {
            return missing(&format!("the primary does not accept replication: {e}"));
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let standby = PgStandby { dir, bin, port };
        let data = standby.data();
        sh(
            "chown",
            &["postgres", &standby.dir.path().display().to_string()],
        )
        .expect("chown the standby's directory");
        as_postgres(
            &standby.bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                "5432",
                "-U",
                "postgres",
                "-D",
                &data.display().to_string(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        )
        .expect("pg_basebackup");
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             hot_standby = on\nwal_receiver_status_interval = 1s\ncluster_name = 'rtd_test_standby'\n\
             shared_buffers = 16MB\n",
            standby.dir.path().display()
        );
        std::fs::write(data.join("postgresql.conf"), conf).expect("postgresql.conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        std::fs::write(data.join("pg_ident.conf"), "").expect("pg_ident.conf");
        sh("chown", &["-R", "postgres", &data.display().to_string()]).expect("chown");
        let log = standby.dir.path().join("log");
        as_postgres(
            &standby.bin.join("pg_ctl"),
            &[
                "-D",
                &data.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-w",
                "start",
            ],
        )
        .unwrap_or_else(|e| {
            panic!(
                "the standby did not start: {e}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        // Streaming, and the primary has heard of its replay position.
        let deadline = Instant::now() + Duration::from_secs(20);
        while count(
            primary,
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'rtd_test_standby' AND replay_lsn IS NOT NULL",
        )
        .await
            == 0
        {
            assert!(Instant::now() < deadline, "the standby never streamed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(standby)
    }
}

impl Drop for PgStandby {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }
}

/// Runs a PostgreSQL program as the `postgres` user (the server refuses to run as root).
fn as_postgres(program: &Path, args: &[&str]) -> Result<(), String> {
    let program = program.display().to_string();
    if root() {
        let mut all = vec!["-u", "postgres", "--", program.as_str()];
        all.extend_from_slice(args);
        sh("runuser", &all)
    } else {
        sh(&program, args)
    }
}

/// Adds `host replication all 127.0.0.1/32 trust` to the primary's pg_hba.conf unless a
/// replication line for 127.0.0.1 is there, and reloads it. (`.ci/run` does the same.)
async fn allow_replication(primary: &str) -> Result<(), String> {
    let db = Db::connect(&spec(primary))
        .await
        .map_err(|e| e.to_string())?;
    let mut q = Sql::new(db.dialect);
    q.push("SELECT current_setting('hba_file')");
    let hba = db
        .fetch_texts(&q)
        .await
        .map_err(|e| e.to_string())?
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .ok_or("no hba_file")?;
    let text = std::fs::read_to_string(&hba).map_err(|e| format!("{hba}: {e}"))?;
    let has = text.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.first() == Some(&"host") && w.get(1) == Some(&"replication")
    });
    if !has {
        std::fs::write(
            &hba,
            format!("{text}\nhost replication all 127.0.0.1/32 trust\n"),
        )
        .map_err(|e| format!("{hba}: {e}"))?;
        let mut reload = Sql::new(db.dialect);
        reload.push("SELECT pg_reload_conf()");
        db.fetch_texts(&reload).await.map_err(|e| e.to_string())?;
    }
    db.close().await;
    Ok(())
}

// ------------------------------------------------------------------ MariaDB pair

/// A MariaDB primary (binary log on) and its replica, each a mariadbd of the test's own
/// on a free port; killed and removed on drop.
struct MariaPair {
    _dir: tempfile::TempDir,
    children: Vec<Child>,
    primary_port: u16,
    replica_port: u16,
}

impl MariaPair {
    fn primary(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.primary_port)
    }

    fn replica(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.replica_port)
    }

    /// One data directory made by mariadb-install-db and copied for the replica (a copy
    /// takes milliseconds, a second install seconds), both servers started, and the
    /// replica following the primary's binary log from its start (GTID).
    async fn start() -> Option<MariaPair> {
        if !root() {
            return missing("the servers are started as the mysql user, which needs root");
        }
        for bin in ["/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db"] {
            if !Path::new(bin).exists() {
                return missing(&format!("{bin} is not installed"));
            }
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let small = [
            "--innodb-log-file-size=4M",
            "--innodb-buffer-pool-size=16M",
            "--innodb-flush-log-at-trx-commit=0",
        ];
        let primary_data = root.join("primary");
        let mut install = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", primary_data.display()),
            "--user=mysql".to_owned(),
            "--auth-root-authentication-method=normal".to_owned(),
            "--skip-test-db".to_owned(),
        ];
        install.extend(small.iter().map(|s| s.to_string()));
        let install: Vec<&str> = install.iter().map(String::as_str).collect();
        sh("/usr/bin/mariadb-install-db", &install).expect("mariadb-install-db");
        let replica_data = root.join("replica");
        sh(
            "cp",
            &[
                "-a",
                &primary_data.display().to_string(),
                &replica_data.display().to_string(),
            ],
        )
        .expect("copy the data directory");
        sh("chown", &["-R", "mysql", &root.display().to_string()]).expect("chown");
        let (primary_port, replica_port) = (free_port(), free_port());
        let mut children = Vec::new();
        for (name, data, port, id) in [
            ("primary", &primary_data, primary_port, "1"),
            ("replica", &replica_data, replica_port, "2"),
        ] {
            let mut c = Command::new("/usr/sbin/mariadbd");
            c.arg("--no-defaults")
                .arg("--user=mysql")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg(format!(
                    "--socket={}",
                    root.join(format!("{name}.sock")).display()
                ))
                .arg(format!(
                    "--pid-file={}",
                    root.join(format!("{name}.pid")).display()
                ))
                .arg(format!(
                    "--log-error={}",
                    root.join(format!("{name}.err")).display()
                ))
                .arg(format!("--server-id={id}"))
                .args(small)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if name == "primary" {
                c.arg(format!("--log-bin={}", data.join("bin").display()));
            }
            children.push(c.spawn().expect("start mariadbd"));
        }
        let pair = MariaPair {
            _dir: dir,
            children,
            primary_port,
            replica_port,
        };
        for url in [pair.primary("mysql"), pair.replica("mysql")] {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Db::connect(&spec(&url)).await.is_err() {
                assert!(Instant::now() < deadline, "{url} never came up");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        exec(
            &pair.replica("mysql"),
            &format!("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary_port}, MASTER_USER='root', MASTER_USE_GTID=slave_pos"),
        )
        .await;
        exec(&pair.replica("mysql"), "START SLAVE").await;
        Some(pair)
    }
}

impl Drop for MariaPair {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ------------------------------------------------------------------ the purge

/// What `retentiond::db::replicas` reads: the standbys of the primary at `url` (`primary`),
/// or the replica at `url` itself.
async fn behind(url: &str, primary: bool) -> Vec<Reading> {
    let db = Db::connect(&spec(url))
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let read = if primary {
        standbys_of(&db, &[]).await.map_err(|e| e.to_string())
    } else {
        lag_of_replica(&db, url)
            .await
            .map(|r| vec![r])
            .map_err(|e| e.to_string())
    };
    db.close().await;
    read.unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// Further behind than the tests' `max_replica_lag = "1 s"`, or not to be told.
fn too_far(b: &Behind) -> bool {
    match b {
        Behind::By(d) => *d > Duration::from_secs(1),
        Behind::Unknown(_) => true,
    }
}

/// Polls `rows()` until it has not changed for `quiet` while the run is still going, and
/// returns that count; fails if the run ends first or nothing settles by `deadline`.
async fn settles<F, Fut>(child: &mut Child, rows: F, quiet: Duration, deadline: Duration) -> i64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    let until = Instant::now() + deadline;
    let mut last = rows().await;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) while the replica was paused, with {last} rows left");
        }
        let now = rows().await;
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return last;
        }
        assert!(
            Instant::now() < until,
            "the purge never halted while the replica was paused ({last} rows left)"
        );
    }
}

/// The run's output, once it has ended.
fn finished(child: Child, config: &Path) -> Run {
    let o = child.wait_with_output().expect("wait for the run");
    Run::from_output(config, &["run", "--once"], o)
}

/// The first rule's `replica_wait_ms` in the saved report, as JSON.
fn waited_ms(config: &Path) -> u64 {
    let r = run(config, &["report", "--last", "--format", "json"]);
    r.assert_code(0);
    r.json()["rules"][0]["replica_wait_ms"]
        .as_u64()
        .unwrap_or_else(|| r.fail("no replica_wait_ms in the report"))
}

/// Held by the tests that start a walsender on the shared PostgreSQL primary (a standby,
/// `pg_receivewal`): a pass remembers every standby it saw and waits for one that left,
/// so one test's walsender coming and going would hold another test's purge back.
static SHARED_PRIMARY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_paused_postgres_standby_halts_the_purge_until_it_replays_again() {
    let _primary = SHARED_PRIMARY.lock().await;
    let Some(db) = events(Kind::Postgres, 300).await else {
        return;
    };
    let primary = "postgres://postgres@127.0.0.1:5432/postgres";
    let t0 = Instant::now();
    let Some(standby) = PgStandby::start(primary).await else {
        return;
    };
    eprintln!("{:?} standby streaming", t0.elapsed());
    let mut config = ConfigBuilder::new(&db).rule(
        RuleSpec::delete("old-events", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0)
            .batch_size(10)
            .batch_pause("150 ms"),
    );
    config.databases[0] = DatabaseEntry::new("main", &db.url).option("max_replica_lag", "1 s");
    let path = config.write(&db);
    let mut child = command(&path, &["run", "--once"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the run");
    // The purge is under way before the standby pauses.
    let started = Instant::now();
    while db.count("SELECT COUNT(*) FROM events").await == 300 {
        if started.elapsed() > Duration::from_secs(20) || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            finished(child, &path).fail("the purge never started");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    exec(&standby.url(), "SELECT pg_wal_replay_pause()").await;
    let paused_at = Instant::now();
    eprintln!("{:?} standby paused", t0.elapsed());
    let left = settles(
        &mut child,
        || db.count("SELECT COUNT(*) FROM events"),
        Duration::from_secs(2),
        Duration::from_secs(15),
    )
    .await;
    assert!(
        left > 0,
        "everything was deleted while the standby was paused"
    );
    // The lag passes 1 s about a second after the pause: a few batches of 150 ms, not
    // the rest of the purge.
    assert!(
        paused_at.elapsed() < Duration::from_secs(8),
        "halting took {:?}",
        paused_at.elapsed()
    );
    eprintln!("{:?} purge halted with {left} rows left", t0.elapsed());
    // Both ways of reading the lag see the paused standby as behind: the primary's
    // pg_stat_replication, and the standby itself (what `replicas` on PostgreSQL asks).
    let on_primary = behind(primary, true).await;
    assert!(
        on_primary
            .iter()
            .any(|r| r.replica.contains("rtd_test_standby") && too_far(&r.behind)),
        "pg_stat_replication reads the paused standby as {on_primary:?}"
    );
    let on_standby = behind(&standby.url(), false).await;
    assert!(
        on_standby.iter().all(|r| too_far(&r.behind)),
        "the paused standby reads itself as {on_standby:?}"
    );
    exec(&standby.url(), "SELECT pg_wal_replay_resume()").await;
    let r = finished(child, &path);
    eprintln!("{:?} run finished", t0.elapsed());
    r.assert_code(0);
    assert_eq!(db.count("SELECT COUNT(*) FROM events").await, 0);
    if !r.stdout.contains("waited for lagging replicas:") {
        r.fail("the summary does not say how long the purge waited for the standby");
    }
    let ms = waited_ms(&path);
    assert!(
        ms >= 2000,
        "the report says it waited {ms} ms; the test paused the standby for longer"
    );
    drop(standby);
}

#[tokio::test]
async fn a_mariadb_replica_with_its_sql_thread_stopped_halts_the_purge_within_one_batch() {
    let Some(pair) = MariaPair::start().await else {
        return;
    };
    let state = tempfile::tempdir().expect("temp dir");
    exec(&pair.primary("mysql"), "CREATE DATABASE shop").await;
    exec(
        &pair.primary("shop"),
        "CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at DATE)",
    )
    .await;
    let rows: Vec<String> = (1..=300).map(|i| format!("({i}, '2001-01-01')")).collect();
    exec(
        &pair.primary("shop"),
        &format!("INSERT INTO events VALUES {}", rows.join(", ")),
    )
    .await;
    // The replica has the rows before the test begins.
    let on_replica = pair.replica("mysql");
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(
        &on_replica,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'shop' AND table_name = 'events'",
    )
    .await
        == 0
        || count(&on_replica, "SELECT COUNT(*) FROM shop.events").await < 300
    {
        assert!(Instant::now() < deadline, "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replica = pair.replica("shop");
    let config = ConfigBuilder {
        state_dir: state.path().join("state"),
        state_url: None,
        schedule: Some("0 30 2 * * *".into()),
        timezone: Some("Europe/Brussels".into()),
        report_language: Some("en".into()),
        metrics_listen: None,
        databases: vec![DatabaseEntry::new("main", &pair.primary("shop"))
            .option("max_replica_lag", "1 s")
            .option("max_replica_wait", "60 s")
            .replicas(&[&replica])],
        sections: Vec::new(),
        rules: vec![RuleSpec::delete("old-events", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0)
            .batch_size(10)
            .batch_pause("150 ms")],
    };
    let path = crate::helpers::write_config(state.path(), &config.to_toml());
    let primary = pair.primary("shop");
    let mut child = command(&path, &["run", "--once"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the run");
    let started = Instant::now();
    while count(&primary, "SELECT COUNT(*) FROM events").await == 300 {
        if started.elapsed() > Duration::from_secs(20) || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            finished(child, &path).fail("the purge never started");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    exec(&replica, "STOP SLAVE SQL_THREAD").await;
    let at_stop = count(&primary, "SELECT COUNT(*) FROM events").await;
    let left = settles(
        &mut child,
        || count(&primary, "SELECT COUNT(*) FROM events"),
        Duration::from_secs(2),
        Duration::from_secs(15),
    )
    .await;
    // Seconds_Behind_Master is NULL at once: at most the batch under way when the SQL
    // thread stopped (and the one whose check had just passed) still acted.
    assert!(
        at_stop - left <= 20,
        "{} rows were deleted after the replica stopped replaying",
        at_stop - left
    );
    let read = behind(&replica, false).await;
    assert!(
        matches!(&read[0].behind, Behind::Unknown(why) if why.contains("SQL thread: No")),
        "a replica with its SQL thread stopped reads as {read:?}"
    );
    exec(&replica, "START SLAVE SQL_THREAD").await;
    let r = finished(child, &path);
    r.assert_code(0);
    assert_eq!(count(&primary, "SELECT COUNT(*) FROM events").await, 0);
    if !r.stdout.contains("waited for lagging replicas:") {
        r.fail("the summary does not say how long the purge waited for the replica");
    }
    let ms = waited_ms(&path);
    assert!(
        ms >= 2000,
        "the report says it waited {ms} ms; the replica was stopped for longer"
    );
    // The replica replays the purge too.
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&replica, "SELECT COUNT(*) FROM shop.events").await > 0 {
        assert!(
            Instant::now() < deadline,
            "the replica never replayed the purge"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_unreachable_replica_holds_the_purge_back_then_fails_the_rule_saying_why() {
    let Some(db) = events(Kind::MySql, 20).await else {
        return;
    };
    let nobody = format!("mysql://root@127.0.0.1:{}/x", free_port());
    let mut config = ConfigBuilder::new(&db).rule(
        RuleSpec::delete("old-events", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0)
            .batch_size(5),
    );
    config.databases[0] = DatabaseEntry::new("main", &db.url)
        .option("max_replica_lag", "1 s")
        .option("max_replica_wait", "2 s")
        .replicas(&[&nobody]);
    let path = config.write(&db);
    let started = Instant::now();
    let r = run(&path, &["run", "--once"]);
    r.assert_code(1);
    if started.elapsed() < Duration::from_secs(2) {
        r.fail("it did not wait");
    }
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events").await,
        20,
        "a batch acted without knowing how far the replica was behind"
    );
    for words in [
        "max_replica_wait",
        "127.0.0.1",
        "waited for lagging replicas:",
    ] {
        if !r.stdout.contains(words) {
            r.fail(&format!("the summary does not say {words:?}"));
        }
    }
    let check = run(&path, &["check"]);
    check.assert_code(0);
    if !check
        .stdout
        .contains("warning: database 'main': how far replica")
    {
        check.fail("check does not warn that the replica cannot tell how far behind it is");
    }
    let report = run(&path, &["report", "--last", "--format", "text"]);
    report.assert_code(0);
    if std::env::var_os("SHOW_REPLICA_OUTPUT").is_some() {
        eprintln!("{r}\n{}", report.stdout);
    }
    if !report.stdout.contains("replica") {
        report.fail("the report does not explain that a replica held the rule back");
    }
}

/// Asserts that `check` refuses the config with exit 78, naming `line` and `words`.
fn refused(config: &ConfigBuilder, db: &TestDb, at: &str, words: &str) {
    let line = config.line(at);
    let path = config.write(db);
    let r = run(&path, &["check"]);
    r.assert_code(78);
    if !r.stderr.contains(&format!("retentiond.toml:{line}:")) {
        r.fail(&format!("the message does not name line {line} ({at})"));
    }
    if !r.stderr.contains(words) {
        r.fail(&format!("the message does not say {words:?}"));
    }
}

#[tokio::test]
async fn replica_keys_that_cannot_work_are_refused_at_their_line() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT)")
        .await;
    let with = |entry: DatabaseEntry| {
        let mut c = ConfigBuilder::new(&db)
            .rule(RuleSpec::delete("old-events", "events", "happened_at").after("1 year"));
        c.databases[0] = entry;
        c
    };
    let main = || DatabaseEntry::new("main", &db.url);
    let mysql = || DatabaseEntry::new("main", "mysql://root@127.0.0.1:3306/x");
    let pg = || DatabaseEntry::new("main", "postgres://postgres@127.0.0.1:5432/x");
    refused(
        &with(main().option("max_replica_lag", "10 s")),
        &db,
        "databases.main.max_replica_lag",
        "SQLite has no replicas",
    );
    refused(
        &with(pg().option("max_replica_lag", "ten seconds")),
        &db,
        "databases.main.max_replica_lag",
        "databases.main.max_replica_lag",
    );
    refused(
        &with(pg().option("max_replica_lag", "0 s")),
        &db,
        "databases.main.max_replica_lag",
        "longer than 0",
    );
    refused(
        &with(mysql().replicas(&["mysql://root@127.0.0.1:3307/x"])),
        &db,
        "databases.main.replicas",
        "max_replica_lag",
    );
    refused(
        &with(mysql().option("max_replica_lag", "10 s")),
        &db,
        "databases.main.max_replica_lag",
        "cannot tell how far its replicas are behind",
    );
    refused(
        &with(
            mysql()
                .option("max_replica_lag", "10 s")
                .replicas(&["postgres://postgres@127.0.0.1:5432/x"]),
        ),
        &db,
        "databases.main.replicas",
        "is not a replica URL",
    );
    refused(
        &with(
            pg().option("max_replica_lag", "10 s")
                .option("max_replica_wait", "3 hours"),
        ),
        &db,
        "databases.main.max_replica_wait",
        "databases.main.max_replica_wait",
    );
    let ignore = |e: DatabaseEntry, names: &str| {
        let mut e = e;
        e.extra.push(("ignore_walsenders".into(), names.into()));
        e
    };
    refused(
        &with(ignore(main(), "[\"barman\"]")),
        &db,
        "databases.main.ignore_walsenders",
        "SQLite has no replicas",
    );
    refused(
        &with(ignore(pg(), "[\"barman\"]")),
        &db,
        "databases.main.ignore_walsenders",
        "needs max_replica_lag",
    );
    refused(
        &with(ignore(
            mysql()
                .option("max_replica_lag", "10 s")
                .replicas(&["mysql://u@replica-1/x"]),
            "[\"barman\"]",
        )),
        &db,
        "databases.main.ignore_walsenders",
        "walsenders are PostgreSQL's",
    );
    refused(
        &with(ignore(pg().option("max_replica_lag", "10 s"), "[\" \"]")),
        &db,
        "databases.main.ignore_walsenders",
        "application_name",
    );
    // Valid: a PostgreSQL primary reads pg_stat_replication by itself; a MariaDB one
    // needs its replicas listed.
    for (entry, replicas) in [
        (pg().option("max_replica_lag", "10 s"), 0),
        (
            mysql().option("max_replica_lag", "10 s").replicas(&[
                "mariadb://u:secret@replica-1:3306/x",
                "mysql://u@replica-2/x",
            ]),
            2,
        ),
    ] {
        let text = with(entry).to_toml();
        let config = retentiond::config::parse(Path::new("retentiond.toml"), &text)
            .unwrap_or_else(|e| panic!("refused: {e}\n{text}"));
        let policy = config
            .replica_policy("main")
            .unwrap_or_else(|| panic!("no replica policy:\n{text}"));
        assert_eq!(policy.max_lag, Duration::from_secs(10));
        assert_eq!(policy.max_wait, Duration::from_secs(600), "the default");
        assert_eq!(policy.replicas.len(), replicas);
        assert!(
            !format!("{policy:?}").contains("secret"),
            "a replica's password reached Debug"
        );
    }
}

#[tokio::test]
async fn a_wait_for_replicas_ends_at_sigterm_with_nothing_deleted() {
    let Some(db) = events(Kind::MySql, 20).await else {
        return;
    };
    let nobody = format!("mysql://root@127.0.0.1:{}/x", free_port());
    let mut config = ConfigBuilder::new(&db).rule(
        RuleSpec::delete("old-events", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0)
            .batch_size(5),
    );
    config.databases[0] = DatabaseEntry::new("main", &db.url)
        .option("max_replica_lag", "1 s")
        .replicas(&[&nobody]);
    let path = config.write(&db);
    let mut child = command(&path, &["run", "--once"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the run");
    // Waiting by now: the replica is unreachable, and max_replica_wait is 10 minutes.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the run ended instead of waiting"
    );
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -TERM failed");
    let signalled = Instant::now();
    let r = finished(child, &path);
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "the wait went on {:?} after SIGTERM",
        signalled.elapsed()
    );
    r.assert_code(143);
    assert_eq!(db.count("SELECT COUNT(*) FROM events").await, 20);
}

/// A WAL archiver streaming from the primary (`pg_receivewal`, as Barman runs it) is a
/// walsender without a replay position: read as a standby, it would hold every purge back
/// as "cannot tell". Named in `ignore_walsenders`, it is left out of the reading — and only
/// it (the reading is what the wait before each batch judges).
#[tokio::test]
async fn a_wal_archiver_reads_as_cannot_tell_unless_named_in_ignore_walsenders() {
    let _primary = SHARED_PRIMARY.lock().await;
    let primary = "postgres://postgres@127.0.0.1:5432/postgres";
    let Ok(db) = Db::connect(&spec(primary)).await else {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but PostgreSQL is not reachable at {primary}");
        }
        eprintln!("SKIPPED: PostgreSQL is not reachable at {primary}");
        return;
    };
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path().join("bin/pg_receivewal"))
        .filter(|p| p.exists());
    let Some(bin) = bin else {
        db.close().await;
        let _: Option<()> = missing("pg_receivewal is not installed");
        return;
    };
    let name = format!("rtd_test_archiver_{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut archiver = Command::new(bin)
        .args([
            "-d",
            &format!("host=127.0.0.1 port=5432 user=postgres application_name={name}"),
            "-D",
        ])
        .arg(dir.path())
        .args(["--no-sync", "--no-loop"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pg_receivewal");
    // Wait until the primary lists it.
    let named = |rs: &[Reading]| rs.iter().any(|r| r.replica.contains(&name));
    let started = Instant::now();
    let mut seen = standbys_of(&db, &[]).await.expect("pg_stat_replication");
    while !named(&seen) && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = standbys_of(&db, &[]).await.expect("pg_stat_replication");
    }
    let ignored = standbys_of(&db, std::slice::from_ref(&name))
        .await
        .expect("pg_stat_replication");
    let another = standbys_of(&db, &["rtd_test_someone_else".to_owned()])
        .await
        .expect("pg_stat_replication");
    let _ = archiver.kill();
    let _ = archiver.wait();
    db.close().await;
    assert!(
        named(&seen),
        "pg_receivewal never showed as a walsender: {seen:?}"
    );
    let archiver_reading = seen.iter().find(|r| r.replica.contains(&name));
    assert!(
        archiver_reading.is_some_and(|r| matches!(r.behind, Behind::Unknown(_))),
        "an archiver reads as {archiver_reading:?}, not as 'cannot tell'"
    );
    assert!(
        !named(&ignored),
        "ignore_walsenders did not leave it out: {ignored:?}"
    );
    // Left out by its name only (other tests' standbys may come and go meanwhile).
    assert!(
        named(&another),
        "another name left the archiver out too: {another:?}"
    );
}

#[test]
fn ignore_walsenders_is_read_into_the_replica_policy() {
    let text = "[daemon]\nstate_dir = \"/tmp/rtd-unused\"\n\n[databases.main]\nurl = \"postgres://postgres@127.0.0.1:5432/x\"\nmax_replica_lag = \"10 s\"\nignore_walsenders = [\"barman_receive_wal\", \"pg_receivewal\"]\n";
    let config = retentiond::config::parse(Path::new("retentiond.toml"), text)
        .unwrap_or_else(|e| panic!("refused: {e}\n{text}"));
    let policy = config.replica_policy("main").expect("a replica policy");
    assert_eq!(
        policy.ignore_walsenders,
        ["barman_receive_wal", "pg_receivewal"]
    );
}

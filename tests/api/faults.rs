//! Database faults: a foreground lock never stalls a pass, and a connection cut mid-pass
//! (through a TCP proxy the test controls, not by stopping the shared server) ends the
//! pass with a clear failure while the other databases' rules complete; the trail
//! verifies, and the next pass finishes the job.

use crate::helpers::{
    audit_keys, command, events, raw, run, ConfigBuilder, DatabaseEntry, Kind, RuleSpec, Run,
};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn events_rule(name: &str, database: &str) -> RuleSpec {
    let mut rule = RuleSpec::delete(name, "events", "happened_at")
        .after("1 year")
        .max_fraction(1.0);
    rule.database = database.into();
    rule
}

async fn a_foreground_lock_does_not_stall_the_pass(kind: Kind) {
    let Some(db) = events(kind, 20).await else {
        return;
    };
    let mut config = ConfigBuilder::new(&db).rule(events_rule("old-events", "main").batch_size(5));
    config.databases = vec![DatabaseEntry::new("main", &db.url).option("lock_timeout", "1 s")];
    let config = config.write(&db);
    // A foreground transaction holds a row lock on expired record 7 for the whole pass.
    let mut foreground = db.db.begin().await.expect("begin");
    foreground
        .execute(&raw(
            &db.db,
            "UPDATE events SET happened_at = happened_at WHERE id = 7",
        ))
        .await
        .expect("lock");
    let started = Instant::now();
    let r = tokio::task::spawn_blocking(move || run(&config, &["run", "--once"]))
        .await
        .expect("join");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the pass stalled for {:?}",
        started.elapsed()
    );
    r.assert_code(0);
    assert!(
        r.stdout.contains("left for the next pass: 1"),
        "{}",
        r.stdout
    );
    assert_eq!(
        db.rows("events", &["id"]).await,
        vec![vec![Some("7".to_owned())]]
    );
    drop(foreground.commit().await);
    let config = db.dir.path().join("retentiond.toml");
    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events").await,
        0,
        "the locked record went next pass"
    );
    assert_eq!(audit_keys(&config).len(), 20);
}

#[tokio::test]
async fn a_foreground_lock_does_not_stall_the_pass_on_postgres() {
    a_foreground_lock_does_not_stall_the_pass(Kind::Postgres).await;
}

#[tokio::test]
async fn a_foreground_lock_does_not_stall_the_pass_on_mariadb() {
    a_foreground_lock_does_not_stall_the_pass(Kind::MySql).await;
}

/// A TCP proxy on 127.0.0.1 that can cut every connection and refuse new ones.
struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy listen");
        let addr = listener.local_addr().expect("addr");
        let (cut, cut_rx) = watch::channel(false);
        let cut_rx = Arc::new(cut_rx);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    continue; // dropped: the connection is refused at once
                }
                let mut rx = (*cut_rx).clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { addr, cut }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_pass_fails_cleanly_and_the_next_pass_finishes() {
    let Some(pg) = events(Kind::Postgres, 3000).await else {
        return;
    };
    let lite = events(Kind::Sqlite, 5).await.expect("sqlite");
    let target: SocketAddr = "127.0.0.1:5432".parse().expect("addr");
    let pg_port = pg
        .url
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .unwrap_or("5432");
    assert_eq!(
        pg_port, "5432",
        "the proxy test expects the local PostgreSQL on 5432"
    );
    let proxy = Proxy::start(target).await;
    let proxied = pg.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let mut config = ConfigBuilder::new(&pg);
    config.schedule = None;
    config.report_language = None;
    config.databases = vec![
        DatabaseEntry::new("pg", &proxied)
            .option("connect_timeout", "1 s")
            .option("lock_timeout", "1 s"),
        DatabaseEntry::new("lite", &lite.url),
    ];
    config.rules = vec![
        events_rule("pg-events", "pg")
            .batch_size(10)
            .batch_pause("5 ms"),
        events_rule("lite-events", "lite"),
    ];
    let config = config.write(&pg);
    let child = command(&config, &["run", "--once"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while pg.count("SELECT COUNT(*) FROM events").await > 2900 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the purge never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.cut.send(true).expect("cut");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let cut = Run::from_output(&config, &["run", "--once"], out);
    cut.assert_code(1);
    let stdout = cut.stdout;
    assert!(
        stdout.contains("pg-events") && stdout.contains("FAILED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("after 3 retries")
            || stdout.contains("unreachable")
            || stdout.contains("commit failed"),
        "a clear reason: {stdout}"
    );
    assert_eq!(
        lite.count("SELECT COUNT(*) FROM events").await,
        0,
        "the other database's rule completed"
    );
    run(&config, &["audit", "verify"]).assert_code(0);
    let remaining = pg.count("SELECT COUNT(*) FROM events").await;
    assert!(remaining > 0, "the cut stopped the purge");
    let audited = audit_keys(&config)
        .iter()
        .filter(|(r, _, _)| r == "pg-events")
        .count() as i64;
    // At most the one batch whose COMMIT was cut may still await settlement.
    assert!(
        (0..=10).contains(&(3000 - remaining - audited)),
        "deleted {} but audited {audited}",
        3000 - remaining
    );

    proxy.cut.send(false).expect("restore");
    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(pg.count("SELECT COUNT(*) FROM events").await, 0);
    let trail = audit_keys(&config);
    let pg_keys: std::collections::BTreeSet<String> = trail
        .iter()
        .filter(|(r, _, _)| r == "pg-events")
        .map(|(_, _, k)| k.clone())
        .collect();
    assert_eq!(
        pg_keys.len(),
        3000,
        "every deleted record audited exactly once"
    );
    assert_eq!(
        trail.iter().filter(|(r, _, _)| r == "pg-events").count(),
        3000
    );
    run(&config, &["audit", "verify"]).assert_code(0);
}

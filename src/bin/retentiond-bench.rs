//! `retentiond-bench`: retentiond against the database doing the same work by itself.
//!
//! For each database it builds three identical tables of N rows (30% expired, text columns,
//! an index on the time column), then measures on each: one raw `DELETE` (the physical
//! limit, no audit, one long transaction), the batched loop a sysadmin's cron script would
//! run, and `retentiond run --once` with its audit trail. Meanwhile a foreground workload
//! updates single non-expired rows, and its p50/p99 latency is compared with the same
//! workload idle. Also: `plan` time on the full table, `audit verify` throughput, and
//! retentiond's peak RSS. See BENCHMARKS.md for the command and the figures.

use retentiond::config::{DatabaseSpec, Dialect, Secret};
use retentiond::db::{Db, Sql};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    rows: Vec<u64>,
    dbs: Vec<String>,
    retentiond: PathBuf,
    batch: u32,
    pause_ms: u64,
    trail: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        rows: vec![1_000_000],
        dbs: vec!["postgres".into(), "mysql".into(), "sqlite".into()],
        retentiond: std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("retentiond"),
        batch: 1000,
        pause_ms: 0,
        trail: 1_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rows" => a.rows = value.split(',').map(|v| v.trim().replace('_', "").parse().map_err(|_| format!("--rows {value}: not a number"))).collect::<Result<_, _>>()?,
            "--db" => a.dbs = value.split(',').map(str::to_owned).collect(),
            "--retentiond" => a.retentiond = PathBuf::from(value),
            "--batch-size" => a.batch = value.parse().map_err(|_| "--batch-size: not a number")?,
            "--batch-pause-ms" => a.pause_ms = value.parse().map_err(|_| "--batch-pause-ms: not a number")?,
            "--trail" => a.trail = value.replace('_', "").parse().map_err(|_| "--trail: not a number")?,
            other => return Err(format!("unknown flag {other}; flags: --rows N[,N] --db postgres,mysql,sqlite --retentiond PATH --batch-size N --batch-pause-ms N --trail N")),
        }
    }
    Ok(a)
}

fn spec(url: &str) -> DatabaseSpec {
    let dialect = match url.split("://").next() {
        Some("postgres") => Dialect::Postgres,
        Some("mysql") => Dialect::MySql,
        _ => Dialect::Sqlite,
    };
    DatabaseSpec {
        name: "bench".into(),
        dialect,
        url: url.into(),
        secret: Secret::None,
        timeouts: Default::default(),
        line: 0,
    }
}

fn sql(db: &Db, text: &str) -> Sql {
    let mut s = Sql::new(db.dialect);
    s.push(text);
    s
}

async fn exec(db: &Db, text: &str) -> Result<u64, String> {
    db.execute(&sql(db, text))
        .await
        .map_err(|e| format!("{text}: {e}"))
}

/// A fresh database for the run; returns its URL and how to drop it.
async fn create(kind: &str, dir: &Path) -> Result<(String, Option<(String, String)>), String> {
    let name = format!("rtd_bench_{}", std::process::id());
    let (admin, root) = match kind {
        "postgres" => (
            "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            "postgres://postgres@127.0.0.1:5432",
        ),
        "mysql" => (
            "mysql://root@127.0.0.1:3306/mysql".to_owned(),
            "mysql://root@127.0.0.1:3306",
        ),
        _ => {
            let file = dir.join("bench.db");
            std::fs::File::create(&file).map_err(|e| e.to_string())?;
            return Ok((format!("sqlite://{}", file.display()), None));
        }
    };
    let admin_url = std::env::var(if kind == "postgres" {
        "RETENTIOND_TEST_POSTGRES_URL"
    } else {
        "RETENTIOND_TEST_MYSQL_URL"
    })
    .unwrap_or(admin);
    let a = Db::connect(&spec(&admin_url))
        .await
        .map_err(|e| e.to_string())?;
    exec(&a, &format!("DROP DATABASE IF EXISTS {name}")).await?;
    exec(&a, &format!("CREATE DATABASE {name}")).await?;
    a.close().await;
    Ok((format!("{root}/{name}"), Some((admin_url, name))))
}

async fn fill(db: &Db, kind: &str, table: &str, n: u64) -> Result<(), String> {
    let (ddl, insert) = match kind {
        "postgres" => (
            format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL, name TEXT, email TEXT, note TEXT)"),
            format!("INSERT INTO {table} SELECT g, CASE WHEN g % 10 < 3 THEN now() - interval '10 years' ELSE now() - interval '1 day' END, 'name ' || g, 'user' || g || '@example.org', repeat('x', 100) FROM generate_series(1, {n}) g"),
        ),
        "mysql" => (
            format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, created_at DATETIME NOT NULL, name VARCHAR(100), email VARCHAR(100), note VARCHAR(200)) ENGINE=InnoDB"),
            format!("INSERT INTO {table} SELECT seq, IF(seq % 10 < 3, NOW() - INTERVAL 10 YEAR, NOW() - INTERVAL 1 DAY), CONCAT('name ', seq), CONCAT('user', seq, '@example.org'), REPEAT('x', 100) FROM seq_1_to_{n}"),
        ),
        _ => (
            format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, name TEXT, email TEXT, note TEXT)"),
            format!("WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n}) INSERT INTO {table} SELECT x, CASE WHEN x % 10 < 3 THEN '2015-01-01 00:00:00' ELSE datetime('now', '-1 day') END, 'name ' || x, 'user' || x || '@example.org', printf('%.100c', 'x') FROM g"),
        ),
    };
    exec(db, &ddl).await?;
    exec(db, &insert).await?;
    exec(
        db,
        &format!("CREATE INDEX {table}_created_at ON {table} (created_at)"),
    )
    .await?;
    exec(
        db,
        &if kind == "mysql" {
            format!("ANALYZE TABLE {table}")
        } else {
            format!("ANALYZE {table}")
        },
    )
    .await
    .map(|_| ())
}

fn expired(kind: &str) -> &'static str {
    match kind {
        "postgres" => "created_at <= now() - interval '1 year'",
        "mysql" => "created_at <= NOW() - INTERVAL 1 YEAR",
        _ => "created_at <= datetime('now', '-1 year')",
    }
}

/// Single-row updates of non-expired rows until `stop`; returns the latencies.
fn foreground(
    db: Arc<Db>,
    table: String,
    n: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Duration>> {
    tokio::spawn(async move {
        let mut lat = Vec::new();
        let mut x = 7u64;
        while !stop.load(Ordering::Relaxed) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = ((x >> 33) % n.max(10) / 10) * 10 + 5; // id % 10 == 5: never expired
            let started = Instant::now();
            let _ = exec(
                &db,
                &format!("UPDATE {table} SET note = 'y' WHERE id = {id}"),
            )
            .await;
            lat.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lat
    })
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
}

/// Runs `work` with the foreground workload beside it: (seconds, p50 ms, p99 ms).
async fn with_foreground<F: std::future::Future<Output = Result<(), String>>>(
    db: &Arc<Db>,
    table: &str,
    n: u64,
    work: F,
) -> Result<(f64, f64, f64), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let fg = foreground(db.clone(), table.to_owned(), n, stop.clone());
    let started = Instant::now();
    work.await?;
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let lat = fg.await.map_err(|e| e.to_string())?;
    if let Some(dir) = std::env::var_os("RETENTIOND_BENCH_TRACE") {
        // Each sample's latency in order, to see *when* the foreground suffered.
        let trace: String = lat
            .iter()
            .map(|d| format!("{:.3}\n", d.as_secs_f64() * 1000.0))
            .collect();
        let _ = std::fs::write(PathBuf::from(dir).join(format!("{table}.txt")), trace);
    }
    Ok((secs, pct(lat.clone(), 0.5), pct(lat, 0.99)))
}

fn run_retentiond(
    bin: &Path,
    config: &Path,
    args: &[&str],
    rss_file: &Path,
) -> Result<(f64, u64), String> {
    let started = Instant::now();
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(rss_file)
        .arg(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "retentiond {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let rss_kb = std::fs::read_to_string(rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    Ok((secs, rss_kb))
}

async fn bench(kind: &str, n: u64, a: &Args) -> Result<String, String> {
    let dir = tempfile_dir()?;
    let (url, drop_db) = create(kind, &dir).await?;
    let db = Arc::new(Db::connect(&spec(&url)).await.map_err(|e| e.to_string())?);
    let load = Instant::now();
    for t in ["t_raw", "t_batched", "t_keyset", "t_rtd"] {
        fill(&db, kind, t, n).await?;
    }
    eprintln!(
        "{kind}: {n} rows × 4 tables in {:.1} s",
        load.elapsed().as_secs_f64()
    );
    let expired_rows = db
        .fetch_i64(&sql(
            &db,
            &format!("SELECT COUNT(*) FROM t_raw WHERE {}", expired(kind)),
        ))
        .await
        .map_err(|e| e.to_string())? as f64;
    let idle = with_foreground(&db, "t_raw", n, async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    })
    .await?;
    let raw = with_foreground(&db, "t_raw", n, async {
        exec(&db, &format!("DELETE FROM t_raw WHERE {}", expired(kind)))
            .await
            .map(|_| ())
    })
    .await?;
    let batched_sql = match kind {
        "mysql" => format!("DELETE FROM t_batched WHERE {} LIMIT 10000", expired(kind)),
        "postgres" => format!("DELETE FROM t_batched WHERE id IN (SELECT id FROM t_batched WHERE {} ORDER BY created_at, id LIMIT 10000)", expired(kind)),
        _ => format!("DELETE FROM t_batched WHERE id IN (SELECT id FROM t_batched WHERE {} LIMIT 10000)", expired(kind)),
    };
    let batched = with_foreground(&db, "t_batched", n, async {
        while exec(&db, &batched_sql).await? > 0 {}
        Ok(())
    })
    .await?;
    let keyset = with_foreground(&db, "t_keyset", n, keyset_batches(&db, kind, a.batch)).await?;
    let config = dir.join("bench.toml");
    std::fs::write(&config, format!(
        "[daemon]\nstate_dir = \"{}\"\n\n[databases.bench]\nurl = \"{url}\"\n\n[[rule]]\nname = \"bench\"\nlegal_basis = \"benchmark\"\ndatabase = \"bench\"\ntable = \"t_rtd\"\nkey = \"id\"\nexpires = {{ since = \"created_at\", after = \"1 year\" }}\naction = \"delete\"\nbatch_size = {}\nbatch_pause = \"{} ms\"\n",
        dir.join("state").display(), a.batch, a.pause_ms
    )).map_err(|e| e.to_string())?;
    let rss_file = dir.join("rss");
    let (plan_s, _) = run_retentiond(&a.retentiond, &config, &["plan"], &rss_file)?;
    let mut rss = 0;
    let rtd = with_foreground(&db, "t_rtd", n, async {
        let (_, r) = run_retentiond(&a.retentiond, &config, &["run", "--once"], &rss_file)?;
        rss = r;
        Ok(())
    })
    .await?;
    let left = db
        .fetch_i64(&sql(
            &db,
            &format!("SELECT COUNT(*) FROM t_rtd WHERE {}", expired(kind)),
        ))
        .await
        .map_err(|e| e.to_string())?;
    if left != 0 {
        return Err(format!("{kind}: retentiond left {left} expired rows"));
    }
    db.close().await;
    if let Some((admin, name)) = drop_db {
        if let Ok(a) = Db::connect(&spec(&admin)).await {
            let _ = exec(&a, &format!("DROP DATABASE IF EXISTS {name}")).await;
            a.close().await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let rate = |s: f64| expired_rows / s.max(1e-9);
    Ok(format!(
        "| {kind} | {n} | {expired_rows:.0} | {:.2} s ({:.0}/s) | {:.2} s ({:.0}/s) | {:.2} s ({:.0}/s) | {:.2} s ({:.0}/s) | **{:.2}×** | {:.2}× | {:.1} MB | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} s |",
        raw.0, rate(raw.0), batched.0, rate(batched.0), keyset.0, rate(keyset.0), rtd.0, rate(rtd.0), raw.0 / rtd.0, keyset.0 / rtd.0, rss as f64 / 1024.0,
        idle.1, idle.2, raw.1, raw.2, batched.1, batched.2, keyset.1, keyset.2, rtd.1, rtd.2, plan_s
    ))
}

/// The floor for short transactions: the same keyset walk and batch size as retentiond,
/// with each batch locked and acted on in one statement, and no audit, intent or journal.
async fn keyset_batches(db: &Db, kind: &str, batch: u32) -> Result<(), String> {
    let exp = expired(kind);
    let mut last = 0i64;
    loop {
        let text = match kind {
            "postgres" => format!("WITH d AS (DELETE FROM t_keyset WHERE id IN (SELECT id FROM t_keyset WHERE {exp} AND id > {last} ORDER BY id LIMIT {batch} FOR UPDATE SKIP LOCKED) RETURNING id) SELECT id FROM d"),
            "mysql" => format!("DELETE FROM t_keyset WHERE {exp} AND id > {last} ORDER BY id LIMIT {batch} RETURNING id"),
            _ => format!("DELETE FROM t_keyset WHERE id IN (SELECT id FROM t_keyset WHERE {exp} AND id > {last} ORDER BY id LIMIT {batch}) RETURNING id"),
        };
        let ids = db
            .fetch_records(&sql(db, &text), retentiond::db::KeyKind::Int)
            .await
            .map_err(|e| format!("{text}: {e}"))?;
        let max = ids
            .iter()
            .filter_map(|r| match r.key {
                retentiond::db::Key::Int(i) => Some(i),
                retentiond::db::Key::Text(_) => None,
            })
            .max();
        match max {
            Some(m) => last = m,
            None => return Ok(()),
        }
    }
}

/// The audit trail on its own: retentiond's whole share of the work in the state database
/// for `n` records in batches of `--batch-size` (each batch's intent written and fsynced, then its
/// entries hashed and appended), then `retentiond audit verify` over the trail.
/// Returns (records/s, verified entries/s including start-up, verify's peak RSS).
async fn trail(a: &Args) -> Result<(f64, f64, f64), String> {
    use retentiond::state::State;
    let dir = tempfile_dir()?;
    let state = State::open(&dir.join("state"))
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut next = 0u64;
    while next < a.trail {
        let end = (next + u64::from(a.batch)).min(a.trail);
        let intent = retentiond::state::Intent {
            batch_id: format!("bench-{next}"),
            run_id: "20261123T023000Z-bench".into(),
            rule: "bench".into(),
            database: "bench".into(),
            table: "t_rtd".into(),
            action: "delete".into(),
            legal_basis: "benchmark".into(),
            keys: (next..end).map(|k| k.to_string()).collect(),
            created_at: retentiond::state::now_text(),
            request: None,
            children: Vec::new(),
        };
        state
            .write_intent(&intent)
            .await
            .map_err(|e| e.to_string())?;
        retentiond::engine::journal::confirm(&state, &intent)
            .await
            .map_err(|e| e.to_string())?;
        next = end;
    }
    let append_s = started.elapsed().as_secs_f64();
    state.close().await;
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n",
            dir.join("state").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let (verify_s, rss) = run_retentiond(
        &a.retentiond,
        &config,
        &["audit", "verify"],
        &dir.join("rss"),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    let n = a.trail as f64;
    Ok((n / append_s, n / verify_s, rss as f64 / 1024.0))
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "retentiond-bench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    println!(
        "retentiond batch_size {}, batch_pause {} ms\n",
        a.batch, a.pause_ms
    );
    println!("| database | rows | expired | raw DELETE | batched SQL (10k) | keyset batches, no audit | retentiond run --once | retentiond ÷ raw (throughput) | retentiond ÷ keyset | retentiond peak RSS | fg p50/p99 ms idle | … during raw | … during batched | … during keyset | … during retentiond | plan |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut failed = false;
    for n in &a.rows {
        for kind in &a.dbs {
            match bench(kind, *n, &a).await {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    failed = true;
                    eprintln!("error: {kind} with {n} rows: {e}");
                }
            }
        }
    }
    if a.trail > 0 {
        match trail(&a).await {
            Ok((append, verify, rss)) => println!(
                "\n| audit trail | entries | intent + entries per batch, no target database | `audit verify` (process start-up included) | verify peak RSS |\n|---|---|---|---|---|\n| state SQLite | {} | {append:.0}/s | {verify:.0}/s | {rss:.1} MB |",
                a.trail
            ),
            Err(e) => {
                failed = true;
                eprintln!("error: audit trail of {} entries: {e}", a.trail);
            }
        }
    }
    std::process::ExitCode::from(u8::from(failed))
}

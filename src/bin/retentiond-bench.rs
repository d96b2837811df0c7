//! `retentiond-bench`: retentiond against the database doing the same work by itself.
//!
//! For each database it builds identical tables of N rows (30% expired, text columns, an
//! index on the time column), then measures on each: one raw `DELETE` (the physical limit,
//! no audit, one long transaction), the batched loop a sysadmin's cron script would run,
//! keyset batches without audit, and `retentiond run --once` with its audit trail. On
//! MariaDB it also measures Percona's `pt-archiver` (the tool a MySQL DBA would reach for),
//! row by row and with `--bulk-delete`. Meanwhile a foreground workload updates single
//! non-expired rows, and its p50/p99 latency is compared with the same workload idle.
//! Also: `plan` time on the full table, `audit verify` throughput, and retentiond's peak
//! RSS. See BENCHMARKS.md for the command and the figures.
//!
//! pt-archiver is optional: install it with `apt-get install percona-toolkit` (Debian,
//! Ubuntu). Without it on `PATH` the bench says so and leaves its columns empty.
//!
//! Two other modes answer other questions, each on its own fresh tables:
//!
//! - `--multi`: one table in each of PostgreSQL, MariaDB and SQLite, purged by one
//!   `retentiond run --once` with the three databases in one config (`[daemon] parallel`),
//!   against the same three purged by three separate runs: is the combined pass shorter
//!   than the sum of its parts?
//! - `--perf-stat`: the instructions (user space) retentiond executes for a fixed pass on
//!   SQLite, counted by `perf stat -e instructions:u`, or by `valgrind --tool=callgrind`
//!   where the machine exposes no hardware counters (most VMs). Unlike seconds, this
//!   barely moves with a noisy neighbour, so it can compare two builds.
//!
//! Tables are filled on the server, a million rows per `INSERT … SELECT` from a generated
//! series, so the bench's own memory stays flat at 10M rows (~22 MB at 100k and 1M).
//!
//! ```sh
//! retentiond-bench --rows 100000 --db mysql --trail 0     # pt-archiver side by side
//! retentiond-bench --rows 10000000 --db postgres --trail 0 --skip batched
//! retentiond-bench --rows 100000 --multi                  # one pass over three databases
//! retentiond-bench --perf-stat                            # 100,000 rows on SQLite
//! ```
//!
//! `--skip batched` at 10M rows: the batched loop rescans the rows it already deleted, so
//! it grows with the square of N (0.1 s at 100k, 11 s at 1M on PostgreSQL: ~15 min at 10M).

use retentiond::config::{DatabaseSpec, Dialect, Secret};
use retentiond::db::{Db, Sql};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "flags: --rows N[,N] --db postgres,mysql,sqlite --retentiond PATH --batch-size N --batch-time-ms N --batch-pause-ms N --pause-factor F --trail N --state-url POSTGRES_URL --skip batched,keyset,pt-archiver --multi --perf-stat";

/// What may be left out of the main table with `--skip`: the slow comparisons (the batched
/// loop rescans what it deleted, quadratic at 10M rows; pt-archiver row by row is one
/// `DELETE` per row). The raw `DELETE` and retentiond are what the table is about.
const SKIPPABLE: [&str; 3] = ["batched", "keyset", "pt-archiver"];

struct Args {
    rows: Vec<u64>,
    /// Whether `--rows` was given: `--perf-stat` has its own default (100,000).
    rows_given: bool,
    dbs: Vec<String>,
    retentiond: PathBuf,
    batch: u32,
    /// retentiond's own `batch_size`: `None` leaves it out, so batches are sized by
    /// `batch_time` (retentiond's default); `--batch-size N` fixes it for all.
    fixed: Option<u32>,
    /// retentiond's `batch_time` in ms, if given (`--batch-time-ms`).
    batch_time_ms: Option<u64>,
    /// retentiond's `batch_pause_factor` (`--pause-factor`), 0 by default.
    pause_factor: f64,
    pause_ms: u64,
    trail: u64,
    skip: Vec<String>,
    multi: bool,
    perf_stat: bool,
    /// `--state-url`: a PostgreSQL server (any database on it) to keep the trail of the
    /// trail benchmark in, as `[daemon] state_url` does; a database of its own is created
    /// there and dropped after.
    state_url: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        rows: vec![1_000_000],
        rows_given: false,
        dbs: vec!["postgres".into(), "mysql".into(), "sqlite".into()],
        retentiond: std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("retentiond"),
        batch: 1000,
        fixed: None,
        batch_time_ms: None,
        pause_factor: 0.0,
        pause_ms: 0,
        trail: 1_000_000,
        skip: Vec::new(),
        multi: false,
        perf_stat: false,
        state_url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--multi" => {
                a.multi = true;
                continue;
            }
            "--perf-stat" => {
                a.perf_stat = true;
                continue;
            }
            "--help" | "-h" => return Err(USAGE.into()),
            _ => {}
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rows" => {
                a.rows = value
                    .split(',')
                    .map(|v| {
                        v.trim()
                            .replace('_', "")
                            .parse()
                            .map_err(|_| format!("--rows {value}: not a number"))
                    })
                    .collect::<Result<_, _>>()?;
                a.rows_given = true;
            }
            "--db" => a.dbs = value.split(',').map(str::to_owned).collect(),
            "--state-url" => a.state_url = Some(value),
            "--retentiond" => a.retentiond = PathBuf::from(value),
            "--batch-size" => {
                a.batch = value.parse().map_err(|_| "--batch-size: not a number")?;
                a.fixed = Some(a.batch);
            }
            "--pause-factor" => {
                a.pause_factor = value.parse().map_err(|_| "--pause-factor: not a number")?
            }
            "--batch-time-ms" => {
                a.batch_time_ms = Some(value.parse().map_err(|_| "--batch-time-ms: not a number")?)
            }
            "--batch-pause-ms" => {
                a.pause_ms = value
                    .parse()
                    .map_err(|_| "--batch-pause-ms: not a number")?
            }
            "--trail" => {
                a.trail = value
                    .replace('_', "")
                    .parse()
                    .map_err(|_| "--trail: not a number")?
            }
            "--skip" => {
                a.skip = value.split(',').map(str::to_owned).collect();
                if let Some(bad) = a.skip.iter().find(|s| !SKIPPABLE.contains(&s.as_str())) {
                    return Err(format!(
                        "--skip {bad}: can skip only {}",
                        SKIPPABLE.join(", ")
                    ));
                }
            }
            other => return Err(format!("unknown flag {other}; {USAGE}")),
        }
    }
    if a.multi && a.perf_stat {
        return Err("--multi and --perf-stat are separate runs; give one".into());
    }
    if let Some(bad) = a
        .dbs
        .iter()
        .find(|d| !["postgres", "mysql", "sqlite"].contains(&d.as_str()))
    {
        return Err(format!("--db {bad}: one of postgres, mysql, sqlite"));
    }
    if a.perf_stat && !a.rows_given {
        a.rows = vec![100_000];
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

/// Drops what [`create`] made (best effort: a leftover database is named after the pid).
async fn drop_database(drop_db: Option<(String, String)>) {
    if let Some((admin, name)) = drop_db {
        if let Ok(a) = Db::connect(&spec(&admin)).await {
            let _ = exec(&a, &format!("DROP DATABASE IF EXISTS {name}")).await;
            a.close().await;
        }
    }
}

/// Rows per `INSERT … SELECT`: each statement stays far below the 300 s statement timeout
/// and the server's transaction small, whatever N is; the bench itself holds no rows.
const FILL_CHUNK: u64 = 1_000_000;

async fn fill(db: &Db, kind: &str, table: &str, n: u64) -> Result<(), String> {
    let ddl = match kind {
        "postgres" => format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL, name TEXT, email TEXT, note TEXT)"),
        "mysql" => format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, created_at DATETIME NOT NULL, name VARCHAR(100), email VARCHAR(100), note VARCHAR(200)) ENGINE=InnoDB"),
        _ => format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, name TEXT, email TEXT, note TEXT)"),
    };
    exec(db, &ddl).await?;
    let mut lo = 1;
    while lo <= n {
        let hi = (lo + FILL_CHUNK - 1).min(n);
        let insert = match kind {
            "postgres" => format!("INSERT INTO {table} SELECT g, CASE WHEN g % 10 < 3 THEN now() - interval '10 years' ELSE now() - interval '1 day' END, 'name ' || g, 'user' || g || '@example.org', repeat('x', 100) FROM generate_series({lo}, {hi}) g"),
            "mysql" => format!("INSERT INTO {table} SELECT seq, IF(seq % 10 < 3, NOW() - INTERVAL 10 YEAR, NOW() - INTERVAL 1 DAY), CONCAT('name ', seq), CONCAT('user', seq, '@example.org'), REPEAT('x', 100) FROM seq_{lo}_to_{hi}"),
            _ => format!("WITH RECURSIVE g(x) AS (SELECT {lo} UNION ALL SELECT x + 1 FROM g WHERE x < {hi}) INSERT INTO {table} SELECT x, CASE WHEN x % 10 < 3 THEN '2015-01-01 00:00:00' ELSE datetime('now', '-1 day') END, 'name ' || x, 'user' || x || '@example.org', printf('%.100c', 'x') FROM g"),
        };
        exec(db, &insert).await?;
        lo = hi + 1;
    }
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

async fn count_expired(db: &Db, kind: &str, table: &str) -> Result<i64, String> {
    db.fetch_i64(&sql(
        db,
        &format!("SELECT COUNT(*) FROM {table} WHERE {}", expired(kind)),
    ))
    .await
    .map_err(|e| format!("counting {table}: {e}"))
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

/// Seconds, foreground p50 ms, foreground p99 ms.
type Measured = (f64, f64, f64);

/// Runs `work` with the foreground workload beside it: (seconds, p50 ms, p99 ms).
async fn with_foreground<F: std::future::Future<Output = Result<(), String>>>(
    db: &Arc<Db>,
    table: &str,
    n: u64,
    work: F,
) -> Result<Measured, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let fg = foreground(db.clone(), table.to_owned(), n, stop.clone());
    let started = Instant::now();
    let done = work.await;
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let lat = fg.await.map_err(|e| e.to_string())?;
    done?;
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

/// A child process run to the end, with what it said; its exit status is the caller's to
/// judge (the combined pass looks at the code to retry without `parallel`).
struct Finished {
    secs: f64,
    rss_kb: u64,
    status: std::process::ExitStatus,
    output: String,
}

fn retentiond_child(
    bin: &Path,
    config: &Path,
    args: &[&str],
    rss_file: &Path,
) -> Result<Finished, String> {
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
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
    let rss_kb = std::fs::read_to_string(rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    Ok(Finished {
        secs,
        rss_kb,
        status: out.status,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

fn run_retentiond(
    bin: &Path,
    config: &Path,
    args: &[&str],
    rss_file: &Path,
) -> Result<(f64, u64), String> {
    let f = retentiond_child(bin, config, args, rss_file)?;
    if !f.status.success() {
        return Err(format!("retentiond {args:?} failed: {}", f.output));
    }
    Ok((f.secs, f.rss_kb))
}

/// A child process off the async workers, so that the foreground workload keeps both of
/// them while the child runs.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
}

/// `name` in a directory of `PATH`, as a shell would find it.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `%xx` escapes of a URL's user or password, undone for pt-archiver's DSN.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// pt-archiver's DSN (`h=…,P=…,u=…,p=…,D=…,t=…`) for `table` in the MariaDB database at `url`.
fn pt_dsn(url: &str, table: &str) -> Result<String, String> {
    let u = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let mut dsn = format!("h={}", u.host_str().unwrap_or("127.0.0.1"));
    if let Some(port) = u.port() {
        dsn.push_str(&format!(",P={port}"));
    }
    if !u.username().is_empty() {
        dsn.push_str(&format!(",u={}", percent_decode(u.username())));
    }
    if let Some(p) = u.password() {
        dsn.push_str(&format!(",p={}", percent_decode(p)));
    }
    let db = u.path().trim_start_matches('/');
    Ok(format!("{dsn},D={db},t={table}"))
}

/// pt-archiver purging the expired rows of `table` in batches of `batch`, one commit per
/// batch. Without `--bulk-delete` it deletes row by row (one `DELETE … WHERE id = ?` each);
/// with it, one `DELETE … WHERE id BETWEEN first AND last AND <where>` per batch.
/// `--no-check-charset`: it refuses a utf8mb4 table otherwise (FACTS.md);
/// `--no-safe-auto-increment`: the row with the largest key may be expired too.
fn pt_archiver(bin: &Path, dsn: &str, where_: &str, batch: u32, bulk: bool) -> Result<(), String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--source")
        .arg(dsn)
        .args(["--purge", "--where", where_, "--limit"])
        .arg(batch.to_string())
        .args([
            "--commit-each",
            "--no-check-charset",
            "--no-safe-auto-increment",
        ]);
    if bulk {
        cmd.arg("--bulk-delete");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "pt-archiver ({}) failed, {}: {}{}",
            if bulk { "--bulk-delete" } else { "row by row" },
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// A measurement in the main table, or why there is none.
enum Cell {
    Done(Measured),
    /// "—" (not this database), "skipped", "not installed", "failed".
    Absent(&'static str),
}

impl Cell {
    fn time(&self, expired: f64) -> String {
        match self {
            Cell::Done(m) => format!("{:.2} s ({:.0}/s)", m.0, expired / m.0.max(1e-9)),
            Cell::Absent(why) => (*why).to_owned(),
        }
    }
    fn fg(&self) -> String {
        match self {
            Cell::Done(m) => format!("{:.2} / {:.2}", m.1, m.2),
            Cell::Absent(why) => (*why).to_owned(),
        }
    }
    /// retentiond ÷ this, in throughput (this one's seconds over retentiond's).
    fn ratio(&self, rtd_secs: f64) -> String {
        match self {
            Cell::Done(m) => format!("{:.2}×", m.0 / rtd_secs.max(1e-9)),
            Cell::Absent(why) => (*why).to_owned(),
        }
    }
}

/// One measurement that may be skipped or fail without losing the rest of the row; a
/// failure is reported in `errors` and the cell says "failed", never a time.
async fn measured_or_failed<F: std::future::Future<Output = Result<(), String>>>(
    db: &Arc<Db>,
    kind: &str,
    table: &str,
    n: u64,
    work: F,
    errors: &mut Vec<String>,
) -> Cell {
    match with_foreground(db, table, n, work).await {
        Ok(m) => match count_expired(db, kind, table).await {
            Ok(0) => Cell::Done(m),
            Ok(left) => {
                errors.push(format!("{kind}: {left} expired rows left in {table}"));
                Cell::Absent("failed")
            }
            Err(e) => {
                errors.push(e);
                Cell::Absent("failed")
            }
        },
        Err(e) => {
            errors.push(format!("{kind}, {table}: {e}"));
            Cell::Absent("failed")
        }
    }
}

/// The header of the main table; the row is [`bench`]'s.
const HEADER: &str = "| database | rows | expired | raw DELETE | batched SQL (10k) | keyset batches, no audit | retentiond run --once | retentiond ÷ raw (throughput) | retentiond ÷ keyset | retentiond peak RSS | fg p50/p99 ms idle | … during raw | … during batched | … during keyset | … during retentiond | plan | µs per expired record: raw / retentiond | pt-archiver row by row | pt-archiver --bulk-delete | retentiond ÷ pt-archiver --bulk-delete (throughput) | … during pt-archiver row by row | … during pt-archiver --bulk-delete |";

/// A row of the main table, and the measurements that failed without stopping the row.
async fn bench(kind: &str, n: u64, a: &Args) -> Result<(String, Vec<String>), String> {
    let mut errors = Vec::new();
    let skip = |what: &str| a.skip.iter().any(|s| s == what);
    let pt = if kind != "mysql" || skip("pt-archiver") {
        None
    } else {
        on_path("pt-archiver")
    };
    let mut tables = vec!["t_raw", "t_rtd"];
    if !skip("batched") {
        tables.push("t_batched");
    }
    if !skip("keyset") {
        tables.push("t_keyset");
    }
    if pt.is_some() {
        tables.extend(["t_pt_row", "t_pt_bulk"]);
    }
    let dir = tempfile_dir()?;
    let (url, drop_db) = create(kind, &dir).await?;
    let db = Arc::new(Db::connect(&spec(&url)).await.map_err(|e| e.to_string())?);
    let load = Instant::now();
    for t in &tables {
        fill(&db, kind, t, n).await?;
    }
    eprintln!(
        "{kind}: {n} rows × {} tables in {:.1} s",
        tables.len(),
        load.elapsed().as_secs_f64()
    );
    let expired_rows = count_expired(&db, kind, "t_raw").await? as f64;
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
    let batched = if skip("batched") {
        Cell::Absent("skipped")
    } else {
        let batched_sql = match kind {
            "mysql" => format!("DELETE FROM t_batched WHERE {} LIMIT 10000", expired(kind)),
            "postgres" => format!("DELETE FROM t_batched WHERE id IN (SELECT id FROM t_batched WHERE {} ORDER BY created_at, id LIMIT 10000)", expired(kind)),
            _ => format!("DELETE FROM t_batched WHERE id IN (SELECT id FROM t_batched WHERE {} LIMIT 10000)", expired(kind)),
        };
        Cell::Done(
            with_foreground(&db, "t_batched", n, async {
                while exec(&db, &batched_sql).await? > 0 {}
                Ok(())
            })
            .await?,
        )
    };
    let keyset = if skip("keyset") {
        Cell::Absent("skipped")
    } else {
        Cell::Done(with_foreground(&db, "t_keyset", n, keyset_batches(&db, kind, a.batch)).await?)
    };
    let (pt_row, pt_bulk) = match &pt {
        None if kind != "mysql" => (Cell::Absent("—"), Cell::Absent("—")),
        None if skip("pt-archiver") => (Cell::Absent("skipped"), Cell::Absent("skipped")),
        None => (Cell::Absent("not installed"), Cell::Absent("not installed")),
        Some(bin) => {
            let mut cells = Vec::new();
            for (table, bulk) in [("t_pt_row", false), ("t_pt_bulk", true)] {
                let (bin, dsn, batch) = (bin.clone(), pt_dsn(&url, table)?, a.batch);
                let work = blocking(move || pt_archiver(&bin, &dsn, expired("mysql"), batch, bulk));
                cells.push(measured_or_failed(&db, kind, table, n, work, &mut errors).await);
            }
            let bulk = cells.pop().unwrap_or(Cell::Absent("failed"));
            (cells.pop().unwrap_or(Cell::Absent("failed")), bulk)
        }
    };
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n\n{}",
            dir.join("state").display(),
            database_and_rule("bench", &url, "t_rtd", a)
        ),
    )
    .map_err(|e| e.to_string())?;
    let rss_file = dir.join("rss");
    let (plan_s, _) = run_retentiond(&a.retentiond, &config, &["plan"], &rss_file)?;
    let (bin, cfg, rss_path) = (a.retentiond.clone(), config.clone(), rss_file.clone());
    let rss = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rss_out = rss.clone();
    let rtd = with_foreground(&db, "t_rtd", n, async move {
        let (_, r) =
            blocking(move || run_retentiond(&bin, &cfg, &["run", "--once"], &rss_path)).await?;
        rss_out.store(r, Ordering::Relaxed);
        Ok(())
    })
    .await?;
    let rss = rss.load(Ordering::Relaxed);
    let left = count_expired(&db, kind, "t_rtd").await?;
    if left != 0 {
        return Err(format!("{kind}: retentiond left {left} expired rows"));
    }
    db.close().await;
    drop_database(drop_db).await;
    let _ = std::fs::remove_dir_all(&dir);
    // Per expired record, so that 1M and 10M rows compare (retentiond's includes its
    // start-up and checks, which a larger table amortizes).
    let us = |s: f64| s * 1e6 / expired_rows.max(1.0);
    let (raw_us, rtd_us) = (us(raw.0), us(rtd.0));
    let raw = Cell::Done(raw);
    let rtd_cell = Cell::Done(rtd);
    Ok((
        format!(
            "| {kind} | {n} | {expired_rows:.0} | {} | {} | {} | {} | **{}** | {} | {:.1} MB | {:.2} / {:.2} | {} | {} | {} | {} | {plan_s:.2} s | {:.2} / {:.2} | {} | {} | {} | {} | {} |",
            raw.time(expired_rows), batched.time(expired_rows), keyset.time(expired_rows), rtd_cell.time(expired_rows),
            raw.ratio(rtd.0), keyset.ratio(rtd.0), rss as f64 / 1024.0,
            idle.1, idle.2, raw.fg(), batched.fg(), keyset.fg(), rtd_cell.fg(),
            raw_us, rtd_us,
            pt_row.time(expired_rows), pt_bulk.time(expired_rows), pt_bulk.ratio(rtd.0), pt_row.fg(), pt_bulk.fg(),
        ),
        errors,
    ))
}

/// The config sections for one database named `name` and one rule on its `table`, with the
/// bench's batch size and pause. Databases and rules go in this order so that several of
/// them can follow one another in a file.
fn database_and_rule(name: &str, url: &str, table: &str, a: &Args) -> String {
    format!(
        "[databases.{name}]\nurl = \"{url}\"\n\n[[rule]]\nname = \"{name}\"\nlegal_basis = \"benchmark\"\ndatabase = \"{name}\"\ntable = \"{table}\"\nkey = \"id\"\nexpires = {{ since = \"created_at\", after = \"1 year\" }}\naction = \"delete\"\n{}batch_pause = \"{} ms\"\nbatch_pause_factor = {}\n\n",
        match (a.fixed, a.batch_time_ms) {
            (Some(n), _) => format!("batch_size = {n}\n"),
            (None, Some(ms)) => format!("batch_time = \"{ms} ms\"\n"),
            (None, None) => String::new(),
        },
        a.pause_ms,
        a.pause_factor
    )
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

/// `--multi`: is one pass over three databases shorter than three passes? The same table
/// (N rows, 30% expired) in each database of `--db`, purged three times alone (a config,
/// a state directory and a `run --once` each), then, each on a fresh copy, by one `run
/// --once` whose config holds all of them: with `[daemon] parallel` set to their number,
/// and with `parallel = 1` (one process, one database after another: what one process
/// saves without any parallelism). If this build rejects `parallel` (exit 78, unknown
/// key), the combined pass runs without the key and the output says so.
async fn multi(n: u64, a: &Args) -> Result<Vec<String>, String> {
    let dir = tempfile_dir()?;
    let mut dbs = Vec::new();
    for kind in &a.dbs {
        let sub = dir.join(kind);
        std::fs::create_dir_all(&sub).map_err(|e| e.to_string())?;
        let (url, drop_db) = create(kind, &sub).await?;
        let db = Db::connect(&spec(&url)).await.map_err(|e| e.to_string())?;
        let load = Instant::now();
        for t in ["t_alone", "t_multi", "t_seq"] {
            fill(&db, kind, t, n).await?;
        }
        eprintln!(
            "{kind}: {n} rows × 3 tables in {:.1} s",
            load.elapsed().as_secs_f64()
        );
        let expired_rows = count_expired(&db, kind, "t_alone").await?;
        dbs.push((kind.clone(), url, drop_db, db, expired_rows));
    }
    let rss = dir.join("rss");
    let mut alone = Vec::new();
    for (kind, url, _, db, _) in &dbs {
        let config = dir.join(format!("alone-{kind}.toml"));
        std::fs::write(
            &config,
            format!(
                "[daemon]\nstate_dir = \"{}\"\n\n{}",
                dir.join(format!("state-{kind}")).display(),
                database_and_rule(kind, url, "t_alone", a)
            ),
        )
        .map_err(|e| e.to_string())?;
        let (secs, _) = run_retentiond(&a.retentiond, &config, &["run", "--once"], &rss)?;
        let left = count_expired(db, kind, "t_alone").await?;
        if left != 0 {
            return Err(format!("{kind}: retentiond alone left {left} expired rows"));
        }
        alone.push(secs);
    }
    // One config for all the databases, on `table`, with `parallel = …` unless None.
    let combined = |table: &str, parallel: Option<usize>| -> Result<Finished, String> {
        let sections: String = dbs
            .iter()
            .map(|(kind, url, ..)| database_and_rule(kind, url, table, a))
            .collect();
        let state = dir.join(format!("state-{table}"));
        let config = dir.join(format!("{table}.toml"));
        let parallel = parallel.map_or(String::new(), |p| format!("parallel = {p}\n"));
        std::fs::write(
            &config,
            format!(
                "[daemon]\nstate_dir = \"{}\"\n{parallel}\n{sections}",
                state.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        retentiond_child(&a.retentiond, &config, &["run", "--once"], &rss)
    };
    let mut note = None;
    let mut par = combined("t_multi", Some(dbs.len()))?;
    let mut seq = None;
    if par.status.code() == Some(78) && par.output.contains("parallel") {
        note = Some(format!(
            "Note: this retentiond rejects `[daemon] parallel = {}` (exit 78: {}); the combined pass ran without the key, with whatever this build does by itself (no parallelism before the key existed).",
            dbs.len(),
            par.output.lines().find(|l| l.contains("parallel")).unwrap_or("").trim()
        ));
        par = combined("t_multi", None)?;
    } else if par.status.success() {
        seq = Some(combined("t_seq", Some(1))?);
    }
    for (what, f, table) in [
        ("parallel", Some(&par), "t_multi"),
        ("parallel = 1", seq.as_ref(), "t_seq"),
    ] {
        let Some(f) = f else { continue };
        if !f.status.success() {
            return Err(format!("combined run --once ({what}) failed: {}", f.output));
        }
        for (kind, _, _, db, _) in &dbs {
            let left = count_expired(db, kind, table).await?;
            if left != 0 {
                return Err(format!(
                    "{kind}: the combined pass ({what}) left {left} expired rows"
                ));
            }
        }
    }
    let sum: f64 = alone.iter().sum();
    let expired_total: i64 = dbs.iter().map(|d| d.4).sum();
    let parallel = if note.is_some() {
        "key rejected".to_owned()
    } else {
        format!("parallel = {}", dbs.len())
    };
    let mut lines: Vec<String> = note.map(|n| format!("{n}\n")).into_iter().collect();
    let names: Vec<&str> = dbs.iter().map(|d| d.0.as_str()).collect();
    lines.push(format!(
        "| rows per database | expired, all databases | {} | sum alone | one pass, all {} ({parallel}) | combined ÷ sum | one pass, parallel = 1 | parallel = 1 ÷ sum | µs per expired record: sum alone / combined |",
        names.iter().map(|k| format!("{k} alone")).collect::<Vec<_>>().join(" | "),
        dbs.len(),
    ));
    lines.push(format!("|{}", "---|".repeat(8 + dbs.len())));
    let us = |s: f64| s * 1e6 / (expired_total.max(1) as f64);
    let (seq_s, seq_ratio) = match &seq {
        Some(f) => (
            format!("{:.2} s", f.secs),
            format!("{:.2}×", f.secs / sum.max(1e-9)),
        ),
        None => ("—".to_owned(), "—".to_owned()),
    };
    lines.push(format!(
        "| {n} | {expired_total} | {} | {sum:.2} s | {:.2} s | **{:.2}×** | {seq_s} | {seq_ratio} | {:.2} / {:.2} |",
        alone.iter().map(|s| format!("{s:.2} s")).collect::<Vec<_>>().join(" | "),
        par.secs,
        par.secs / sum.max(1e-9),
        us(sum),
        us(par.secs)
    ));
    for (_, _, drop_db, db, _) in dbs {
        db.close().await;
        drop_database(drop_db).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(lines)
}

/// How `--perf-stat` counts instructions.
#[derive(Clone, Copy, PartialEq)]
enum Counter {
    /// `perf stat -e instructions:u`: the CPU's own counter, at full speed.
    Perf,
    /// `valgrind --tool=callgrind`: instructions executed in the simulated CPU (the
    /// program's, its libraries', all threads'), ~50× slower, no hardware counter needed.
    Callgrind,
}

/// perf if it can count user-space instructions here (`perf stat -e instructions:u true`
/// gives a number), else callgrind; with why, for the output.
fn pick_counter() -> Result<(Counter, String), String> {
    let probe = Command::new("perf")
        .args(["stat", "-e", "instructions:u", "-x,", "true"])
        .output();
    let why = match probe {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stderr).into_owned();
            match text.lines().find(|l| l.contains("instructions")) {
                Some(l) if first_number(l).is_some() => return Ok((Counter::Perf, String::new())),
                Some(l) => format!("`perf stat -e instructions:u true` says `{}`", l.trim()),
                None => format!("`perf stat -e instructions:u true` says `{}`", text.trim()),
            }
        }
        Ok(out) => format!(
            "`perf stat -e instructions:u true` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("no perf ({e})"),
    };
    if on_path("valgrind").is_none() {
        return Err(format!(
            "{why}, and valgrind is not on PATH (apt-get install valgrind)"
        ));
    }
    Ok((
        Counter::Callgrind,
        format!("{why}: no hardware counter in this machine; counted with valgrind --tool=callgrind instead"),
    ))
}

fn first_number(line: &str) -> Option<u64> {
    line.split(',').next()?.trim().parse().ok()
}

/// `retentiond run --once` under `counter`: (instructions, wall seconds under the counter).
fn counted(counter: Counter, a: &Args, config: &Path, out: &Path) -> Result<(u64, f64), String> {
    let mut cmd = match counter {
        Counter::Perf => {
            let mut c = Command::new("perf");
            c.args(["stat", "-e", "instructions:u", "-x,", "-o"])
                .arg(out)
                .arg("--");
            c
        }
        Counter::Callgrind => {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg("--");
            c
        }
    };
    cmd.arg(&a.retentiond)
        .arg("--config")
        .arg(config)
        .args(["run", "--once"])
        .env("RUST_LOG", "warn");
    let started = Instant::now();
    let o = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    if !o.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let n = match counter {
        Counter::Perf => text
            .lines()
            .find(|l| l.contains("instructions"))
            .and_then(first_number),
        // callgrind's file ends with `totals: <Ir>` (`summary:` in older versions).
        Counter::Callgrind => text
            .lines()
            .filter_map(|l| {
                l.strip_prefix("totals:")
                    .or_else(|| l.strip_prefix("summary:"))
            })
            .filter_map(|v| v.split_whitespace().next()?.parse().ok())
            .max(),
    };
    n.map(|n| (n, secs)).ok_or(format!(
        "no instruction count in {}:\n{text}",
        out.display()
    ))
}

/// `--perf-stat`: the instructions of one `retentiond run --once` over a SQLite table of
/// N rows (30% expired), and of a second pass that finds nothing (start-up, checks, the
/// counts, the report: the fixed cost), so the cost per record can be told from it. SQLite
/// keeps the server's work out of the count: its engine runs inside retentiond, so the
/// figure is the whole pass on the target side and the state side.
async fn perf_stat(n: u64, a: &Args) -> Result<Vec<String>, String> {
    let (counter, why) = blocking(pick_counter).await?;
    let dir = tempfile_dir()?;
    let (url, _) = create("sqlite", &dir).await?;
    let db = Db::connect(&spec(&url)).await.map_err(|e| e.to_string())?;
    fill(&db, "sqlite", "t_rtd", n).await?;
    let expired_rows = count_expired(&db, "sqlite", "t_rtd").await?;
    db.close().await;
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n\n{}",
            dir.join("state").display(),
            database_and_rule("bench", &url, "t_rtd", a)
        ),
    )
    .map_err(|e| e.to_string())?;
    let out = dir.join("count");
    let (pass, secs) = counted(counter, a, &config, &out)?;
    let db = Db::connect(&spec(&url)).await.map_err(|e| e.to_string())?;
    let left = count_expired(&db, "sqlite", "t_rtd").await?;
    db.close().await;
    if left != 0 {
        return Err(format!("sqlite: retentiond left {left} expired rows"));
    }
    let (empty, _) = counted(counter, a, &config, &out)?;
    let _ = std::fs::remove_dir_all(&dir);
    let per = |i: u64| i as f64 / (expired_rows.max(1) as f64);
    let mut lines = Vec::new();
    if !why.is_empty() {
        lines.push(format!("{why}.\n"));
    }
    lines.push("| counter | database | rows | expired | instructions, pass | instructions, second pass (nothing left: the fixed cost) | per expired record | per expired record, fixed cost excluded | wall time under the counter |".into());
    lines.push("|---|---|---|---|---|---|---|---|---|".into());
    lines.push(format!(
        "| {} | sqlite | {n} | {expired_rows} | {pass} | {empty} | {:.0} | {:.0} | {secs:.2} s |",
        match counter {
            Counter::Perf => "perf stat -e instructions:u",
            Counter::Callgrind => "valgrind --tool=callgrind (Ir)",
        },
        per(pass),
        per(pass.saturating_sub(empty)),
    ));
    Ok(lines)
}

/// The audit trail on its own: retentiond's whole share of the work in the state database
/// for `n` records in batches of `--batch-size` (each batch's intent written and fsynced, then its
/// entries hashed and appended), then `retentiond audit verify` over the trail.
/// Returns (records/s, verified entries/s including start-up, verify's peak RSS).
async fn trail(a: &Args) -> Result<(f64, f64, f64), String> {
    use retentiond::state::State;
    let dir = tempfile_dir()?;
    let state_db = match &a.state_url {
        Some(server) => Some(StateDb::create(server).await?),
        None => None,
    };
    let config = dir.join("bench.toml");
    let url_line = state_db
        .as_ref()
        .map(|s| format!("state_url = \"{}\"\n", s.url))
        .unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n{url_line}",
            dir.join("state").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let loaded = retentiond::config::load(&config).map_err(|e| e.to_string())?;
    let state = State::open_for(&loaded.daemon)
        .await
        .map_err(|e| e.to_string())?;
    // Intents and entries are written under the pass lock, as a pass writes them.
    let lock = state.lock_pass().await.map_err(|e| e.to_string())?;
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
    drop(lock);
    state.close().await;
    let measured = run_retentiond(
        &a.retentiond,
        &config,
        &["audit", "verify"],
        &dir.join("rss"),
    );
    if let Some(db) = state_db {
        db.drop_it().await;
    }
    let (verify_s, rss) = measured?;
    let _ = std::fs::remove_dir_all(&dir);
    let n = a.trail as f64;
    Ok((n / append_s, n / verify_s, rss as f64 / 1024.0))
}

/// A PostgreSQL database of the benchmark's own for `--state-url`.
struct StateDb {
    admin: String,
    name: String,
    url: String,
}

impl StateDb {
    async fn create(server: &str) -> Result<StateDb, String> {
        let name = format!("retentiond_bench_state_{}", std::process::id());
        let base = server
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .ok_or_else(|| format!("--state-url {server}: not a postgres://host/db URL"))?;
        let db = StateDb {
            admin: server.to_owned(),
            url: format!("{base}/{name}"),
            name,
        };
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.admin)
            .await
            .map_err(|e| format!("--state-url: {e}"))?;
        // Two statements: CREATE DATABASE cannot share an (implicit) transaction.
        for sql in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name),
            format!("CREATE DATABASE {}", db.name),
        ] {
            sqlx::raw_sql(&sql)
                .execute(&mut conn)
                .await
                .map_err(|e| format!("--state-url: {e}"))?;
        }
        Ok(db)
    }

    async fn drop_it(self) {
        if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin).await {
            let _ = sqlx::raw_sql(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
        }
    }
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "retentiond-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
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
    match (a.fixed, a.batch_time_ms) {
        (Some(n), _) => println!("retentiond batch_size {n} (fixed), batch_pause {} ms; peers' batch size {}\n", a.pause_ms, a.batch),
        (None, Some(ms)) => println!("retentiond batches sized by batch_time = {ms} ms, batch_pause {} ms; peers' batch size {}\n", a.pause_ms, a.batch),
        (None, None) => println!("retentiond at its defaults (batches sized by batch_time, 100 ms), batch_pause {} ms; peers' batch size {}\n", a.pause_ms, a.batch),
    }
    let mut failed = false;
    if a.multi || a.perf_stat {
        for n in &a.rows {
            let done = if a.multi {
                multi(*n, &a).await
            } else {
                perf_stat(*n, &a).await
            };
            match done {
                Ok(lines) => println!("{}\n", lines.join("\n")),
                Err(e) => {
                    failed = true;
                    eprintln!("error: {n} rows: {e}");
                }
            }
        }
        return std::process::ExitCode::from(u8::from(failed));
    }
    if a.dbs.iter().any(|d| d == "mysql")
        && !a.skip.iter().any(|s| s == "pt-archiver")
        && on_path("pt-archiver").is_none()
    {
        println!("pt-archiver is not on PATH: its columns stay empty. Install it with `apt-get install percona-toolkit`.\n");
    }
    println!("{HEADER}");
    println!("|{}", "---|".repeat(HEADER.matches(" |").count()));
    for n in &a.rows {
        for kind in &a.dbs {
            match bench(kind, *n, &a).await {
                Ok((line, errors)) => {
                    println!("{line}");
                    for e in errors {
                        failed = true;
                        eprintln!("error: {kind} with {n} rows: {e}");
                    }
                }
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
                "\n| audit trail | entries | intent + entries per batch, no target database | `audit verify` (process start-up included) | verify peak RSS |\n|---|---|---|---|---|\n| state {} | {} | {append:.0}/s | {verify:.0}/s | {rss:.1} MB |",
                if a.state_url.is_some() { "PostgreSQL" } else { "SQLite" },
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

//! Trust around the crash protocol: a daemon killed mid-pass has every deletion audited
//! within seconds of its restart (not at the next tick) and runs the interrupted pass again
//! at once; a PostgreSQL session the server ends is retried; an auditor can verify, export
//! and report from a copy of the state directory they cannot write; the CSV export cannot
//! smuggle formulas into a spreadsheet.

use crate::helpers::{
    audit_keys, command, events, raw, run, sqlite_state_only, ConfigBuilder, Kind, RuleSpec, TestDb,
};
use sqlx::sqlite::SqlitePoolOptions;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn purge(batch_size: u64, batch_pause: &str) -> RuleSpec {
    RuleSpec::delete("purge", "events", "happened_at")
        .after("1 year")
        .max_fraction(1.0)
        .batch_size(batch_size)
        .batch_pause(batch_pause)
}

fn config_with(db: &TestDb, schedule: &str, rule: RuleSpec) -> std::path::PathBuf {
    let mut config = ConfigBuilder::new(db);
    config.schedule = Some(schedule.to_owned());
    config.rule(rule).write(db)
}

fn daemon(config: &Path) -> Child {
    command(config, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon")
}

/// Polls `probe` every 50 ms until it holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !probe().await {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn remaining(db: &TestDb) -> i64 {
    db.count("SELECT COUNT(*) FROM events").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_pass_audits_every_deletion_at_restart_and_reruns_the_pass() {
    const ROWS: i64 = 20_000;
    let Some(db) = events(Kind::Postgres, ROWS).await else {
        return;
    };
    // A pass every two seconds, slowed by a pause so that it is still running when killed.
    let config = config_with(&db, "*/2 * * * * *", purge(200, "50 ms"));
    let mut first = daemon(&config);
    eventually(
        Duration::from_secs(60),
        "the pass started deleting",
        || async { remaining(&db).await < ROWS - 1000 },
    )
    .await;
    first.kill().expect("kill -9");
    first.wait().expect("reap");
    let deleted_before_restart = ROWS - remaining(&db).await;
    assert!(deleted_before_restart < ROWS, "the kill came mid-pass");

    // The next tick is hours away: anything that happens now is the restart's doing.
    let config = config_with(&db, "0 30 2 * * *", purge(200, "0 ms"));
    let mut second = daemon(&config);
    eventually(
        Duration::from_secs(30),
        "the interrupted pass ran again at once and deleted the rest",
        || async { remaining(&db).await == 0 },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "every deletion audited",
        || async { audit_keys(&config).len() as i64 == ROWS },
    )
    .await;
    second.kill().expect("stop the daemon");
    second.wait().expect("reap");
    let trail = audit_keys(&config);
    let keys: std::collections::BTreeSet<&str> = trail.iter().map(|(_, _, k)| k.as_str()).collect();
    assert_eq!(keys.len() as i64, ROWS, "each record audited exactly once");
    run(&config, &["audit", "verify"]).assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_session_ended_by_the_server_is_retried() {
    const ROWS: i64 = 3000;
    let Some(db) = events(Kind::Postgres, ROWS).await else {
        return;
    };
    // Each DELETE takes 0.3 s, so the session is most likely ended in the middle of one:
    // the error then reaches the batch (on an idle pooled connection the pool would just
    // open a new one).
    db.exec("CREATE FUNCTION slow() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$ LANGUAGE plpgsql;\nCREATE TRIGGER slow AFTER DELETE ON events FOR EACH STATEMENT EXECUTE FUNCTION slow()")
        .await;
    let config = config_with(&db, "0 30 2 * * *", purge(300, "0 ms"));
    // The test's own connections predate the child's (and share its application_name).
    let spawned_at: String = db
        .db
        .fetch_texts(&crate::helpers::raw(
            &db.db,
            "SELECT CAST(clock_timestamp() AS TEXT)",
        ))
        .await
        .expect("now")[0][0]
        .clone()
        .expect("a time");
    let child = command(&config, &["run", "--once"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start run --once");
    eventually(Duration::from_secs(60), "the purge started", || async {
        remaining(&db).await < ROWS
    })
    .await;
    // What a restart, a fail-over or an administrator's pg_terminate_backend does.
    let ended = db
        .count(&format!("SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'retentiond' AND datname = current_database() AND pid <> pg_backend_pid() AND backend_start > '{spawned_at}') AS t"))
        .await;
    assert!(ended > 0, "retentiond had a session to end");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let r = crate::helpers::Run::from_output(&config, &["run", "--once"], out);
    r.assert_code(0);
    assert_eq!(
        remaining(&db).await,
        0,
        "the purge finished after the retry"
    );
    assert_eq!(audit_keys(&config).len() as i64, ROWS);
    run(&config, &["audit", "verify"]).assert_code(0);
}

/// Copies `from` into a new directory only `nobody` will read.
fn read_only_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("copy dir");
    for entry in std::fs::read_dir(from).expect("state dir") {
        let entry = entry.expect("entry");
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

#[tokio::test]
async fn an_auditor_verifies_exports_and_reports_from_a_copy_they_cannot_write() {
    if !Path::new("/usr/bin/setpriv").exists() || !nix_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs root and setpriv for this test"
        );
        eprintln!("\n!!!!! SKIPPING: needs root and setpriv to run as another user !!!!!\n");
        return;
    }
    let db = events(Kind::Sqlite, 50).await.expect("sqlite");
    let config = config_with(&db, "0 30 2 * * *", purge(10, "0 ms"));
    run(&config, &["run", "--once"]).assert_code(0);
    // The copy: world-readable files in a directory nobody may write to.
    let copy = db.dir.path().join("auditor");
    read_only_copy(&db.state_dir(), &copy.join("state"));
    let text = std::fs::read_to_string(&config).expect("config").replace(
        &db.state_dir().display().to_string(),
        &copy.join("state").display().to_string(),
    );
    let audit_config = copy.join("retentiond.toml");
    std::fs::write(&audit_config, text).expect("auditor config");
    chmod_tree(db.dir.path(), 0o755, 0o644);
    let before = snapshot(&copy.join("state"));
    for args in [
        &["audit", "verify"][..],
        &["audit", "export", "--format", "csv"],
        &["report", "--last", "--format", "json"],
    ] {
        let out = std::process::Command::new("/usr/bin/setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_retentiond"))
            .arg("--config")
            .arg(&audit_config)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run as nobody");
        let r = crate::helpers::Run::from_output(&audit_config, args, out);
        r.assert_code(0);
    }
    assert_eq!(
        snapshot(&copy.join("state")),
        before,
        "the copy was not changed"
    );
}

fn nix_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Sets directories to `dir_mode` and files to `file_mode` under `root` (and `root`'s
/// ancestors up to the temp directory stay as they are: they are world-searchable).
fn chmod_tree(root: &Path, dir_mode: u32, file_mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(dir_mode)).expect("chmod");
    for entry in std::fs::read_dir(root).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            chmod_tree(&path, dir_mode, file_mode);
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file_mode))
                .expect("chmod");
        }
    }
}

/// Names and contents of the files in `dir`.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn csv_cells_that_a_spreadsheet_would_run_are_exported_as_text() {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    db.exec("CREATE TABLE events (id TEXT PRIMARY KEY, happened_at DATE)")
        .await;
    db.exec("INSERT INTO events VALUES ('=HYPERLINK(\"http://x\")', '2001-01-01'), ('plain', '2001-01-01')")
        .await;
    let config = config_with(&db, "0 30 2 * * *", purge(10, "0 ms"));
    run(&config, &["run", "--once"]).assert_code(0);
    let csv = run(&config, &["audit", "export", "--format", "csv"]);
    csv.assert_code(0);
    assert!(
        csv.stdout.contains("'=HYPERLINK"),
        "formula neutralised: {}",
        csv.stdout
    );
    assert!(!csv.stdout.contains(",=HYPERLINK"), "{}", csv.stdout);
    // JSON Lines keeps the key exactly.
    assert!(audit_keys(&config)
        .iter()
        .any(|(_, _, k)| k == "=HYPERLINK(\"http://x\")"));
}

#[tokio::test]
async fn check_and_plan_say_how_many_batches_are_in_doubt_and_the_next_pass_settles_them() {
    let db = events(Kind::Sqlite, 20).await.expect("sqlite");
    let config = config_with(&db, "0 30 2 * * *", purge(5, "0 ms"));
    run(&config, &["run", "--once"]).assert_code(0);
    // What a kill between an intent's fsync and the target's COMMIT leaves behind.
    let state = db.open_state().await;
    let lock = state.lock_pass().await.expect("pass lock");
    state
        .write_intent(&retentiond::state::Intent {
            batch_id: "20200101T000000Z-dead00-0-0".into(),
            run_id: "20200101T000000Z-dead00".into(),
            rule: "purge".into(),
            database: "main".into(),
            table: "events".into(),
            action: "delete".into(),
            legal_basis: "test".into(),
            keys: vec!["1".into(), "2".into()],
            created_at: retentiond::state::now_text(),
            request: None,
            children: Vec::new(),
        })
        .await
        .expect("intent");
    state.close().await;
    drop(lock);
    let plan = run(&config, &["plan", "--format", "json"]);
    plan.assert_code(0);
    assert_eq!(plan.json()["batches_in_doubt"], 1, "{plan}");
    let check = run(&config, &["check"]);
    check.assert_code(0);
    assert!(
        check
            .stdout
            .contains("1 batches from an interrupted pass are in doubt"),
        "{check}"
    );
    // The batch never committed (no journal row): the next pass drops it, writes nothing.
    let entries_before = audit_keys(&config).len();
    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(audit_keys(&config).len(), entries_before);
    let plan = run(&config, &["plan", "--format", "json"]);
    assert_eq!(plan.json()["batches_in_doubt"], 0, "{plan}");
}

/// A small tmpfs for a state directory, unmounted when dropped.
struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts one of `size` (e.g. "64m") at `dir`; `None` (loudly, or a failure under CI)
    /// where this process may not mount.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but a tmpfs cannot be mounted (needs root)"
            );
            eprintln!("\n!!!!! SKIPPING: cannot mount a tmpfs (needs root) !!!!!\n");
            return None;
        }
        Some(Tmpfs {
            dir: dir.to_owned(),
        })
    }

    /// Writes a file until the tmpfs is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 1 << 16];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.flush();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_disk_stops_every_batch_and_the_daemon_recovers_when_space_returns() {
    const ROWS: i64 = 20_000;
    if sqlite_state_only("fills the state_dir disk, where only state.db keeps the trail") {
        return;
    }
    let db = events(Kind::Sqlite, ROWS).await.expect("sqlite");
    db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, happened_at DATE)")
        .await;
    db.exec("INSERT INTO notes VALUES (1, '2001-01-01'), (2, '2001-01-01'), (3, '2001-01-01')")
        .await;
    let Some(disk) = Tmpfs::mount(&db.dir.path().join("statefs"), "64m") else {
        return;
    };
    let mut config = ConfigBuilder::new(&db);
    config.state_dir = disk.dir.join("state");
    config.schedule = Some("*/2 * * * * *".into());
    config.rules = vec![
        purge(200, "50 ms"),
        RuleSpec::delete("notes", "notes", "happened_at")
            .after("1 year")
            .max_fraction(1.0),
    ];
    let config = config.write(&db);
    let mut daemon = daemon(&config);
    eventually(Duration::from_secs(60), "the purge started", || async {
        remaining(&db).await < ROWS - 400
    })
    .await;
    let filler = disk.fill();
    // Deletions stop: nothing changes for three seconds (more than one tick).
    let mut last = remaining(&db).await;
    let mut still_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while still_since.elapsed() < Duration::from_secs(3) {
        assert!(
            Instant::now() < deadline,
            "deletions never stopped on a full disk"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = remaining(&db).await;
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    assert!(last > 0, "the disk filled before the purge ended");
    let notes = db.count("SELECT COUNT(*) FROM notes").await;
    assert_eq!(
        notes, 3,
        "no later rule acted while nothing could be audited"
    );
    let audited = audit_keys(&config).len() as i64;
    let deleted = ROWS - last;
    assert!(
        (0..=200).contains(&(deleted - audited)),
        "at most the one batch in doubt is unaudited: deleted {deleted}, audited {audited}"
    );

    std::fs::remove_file(filler).expect("free the disk");
    eventually(
        Duration::from_secs(60),
        "the next pass finished the job",
        || async { remaining(&db).await == 0 && db.count("SELECT COUNT(*) FROM notes").await == 0 },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "every deletion audited",
        || async { audit_keys(&config).len() as i64 == ROWS + 3 },
    )
    .await;
    daemon.kill().expect("stop");
    daemon.wait().expect("reap");
    run(&config, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn journal_rows_a_failed_pass_left_behind_are_removed_by_the_next_pass() {
    let db = events(Kind::Sqlite, 1000).await.expect("sqlite");
    // Deleting record 700 fails, so the rule fails after a few committed batches.
    db.exec("CREATE TRIGGER refuse BEFORE DELETE ON events WHEN OLD.id = 700 BEGIN SELECT RAISE(ABORT, 'refused'); END")
        .await;
    let config = config_with(&db, "0 30 2 * * *", purge(100, "0 ms"));
    run(&config, &["run", "--once"]).assert_code(1);
    let left = db.count("SELECT COUNT(*) FROM retentiond_journal").await;
    assert!(left > 0, "the failed pass left its journal rows");
    db.exec("DROP TRIGGER refuse").await;
    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(db.count("SELECT COUNT(*) FROM retentiond_journal").await, 0);
    assert_eq!(remaining(&db).await, 0);
    assert_eq!(audit_keys(&config).len(), 1000);
    run(&config, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn a_rule_that_does_not_fit_its_table_exits_78_before_the_state_directory_exists() {
    let db = events(Kind::Sqlite, 5).await.expect("sqlite");
    let config = config_with(
        &db,
        "0 30 2 * * *",
        RuleSpec::delete("purge", "no_such_table", "happened_at")
            .after("1 year")
            .max_fraction(1.0),
    );
    let r = run(&config, &["run", "--once"]);
    r.assert_code(78);
    assert!(!db.state_dir().exists(), "nothing was created: {r}");
    assert_eq!(remaining(&db).await, 5);
}

#[tokio::test]
async fn state_and_reports_are_private_and_a_newer_state_database_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let db = events(Kind::Sqlite, 5).await.expect("sqlite");
    let config = config_with(&db, "0 30 2 * * *", purge(10, "0 ms"));
    run(&config, &["run", "--once"]).assert_code(0);
    let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    if db.state_url.is_none() {
        assert_eq!(mode(&db.state_dir().join("state.db")), 0o600);
    }
    for report in std::fs::read_dir(db.state_dir().join("reports")).expect("reports") {
        let path = report.expect("entry").path();
        assert_eq!(mode(&path), 0o640, "{}", path.display());
    }
    // A state database from a future version: refused by every command, not misread.
    if db.state_url.is_some() {
        let state = db.state_sql().await;
        state
            .execute(&raw(
                &state,
                "UPDATE meta SET value = '99' WHERE key = 'schema'",
            ))
            .await
            .expect("version");
        state.close().await;
    } else {
        let pool = SqlitePoolOptions::new()
            .connect(&format!(
                "sqlite://{}",
                db.state_dir().join("state.db").display()
            ))
            .await
            .expect("state.db");
        sqlx::query("PRAGMA user_version = 99")
            .execute(&pool)
            .await
            .expect("version");
        pool.close().await;
    }
    for args in [
        &["run", "--once"][..],
        &["audit", "verify"],
        &["report", "--last"],
    ] {
        let r = run(&config, args);
        r.assert_code(1);
        assert!(r.stderr.contains("newer retentiond"), "{r}");
    }
}

#[tokio::test]
async fn an_export_whose_reader_goes_away_ends_quietly() {
    let db = events(Kind::Sqlite, 3000).await.expect("sqlite");
    let config = config_with(&db, "0 30 2 * * *", purge(1000, "0 ms"));
    run(&config, &["run", "--once"]).assert_code(0);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' --config '{}' audit export | head -n 1 >/dev/null",
            env!("CARGO_BIN_EXE_retentiond"),
            config.display()
        ))
        .output()
        .expect("pipeline");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("error"),
        "no error for a closed pipe: {stderr}"
    );
}

#[tokio::test]
async fn a_batch_already_settled_as_rolled_back_is_never_audited_later() {
    let db = events(Kind::Sqlite, 20).await.expect("sqlite");
    let config = config_with(&db, "0 30 2 * * *", purge(5, "0 ms"));
    run(&config, &["run", "--once"]).assert_code(0);
    db.exec("INSERT INTO events VALUES (101, '2001-01-01'), (102, '2001-01-01')")
        .await;
    // An earlier start settled this batch as rolled back, but could not drop its intent
    // (a full disk): the journal holds the settling row, the intent is still pending.
    let batch = "20200101T000000Z-beef00-0-0";
    db.exec(&format!(
        "INSERT INTO retentiond_journal (batch_id, rule) VALUES ('{batch}', '(rolled back)')"
    ))
    .await;
    let state = db.open_state().await;
    let lock = state.lock_pass().await.expect("pass lock");
    state
        .write_intent(&retentiond::state::Intent {
            batch_id: batch.into(),
            run_id: "20200101T000000Z-beef00".into(),
            rule: "purge".into(),
            database: "main".into(),
            table: "events".into(),
            action: "delete".into(),
            legal_basis: "test".into(),
            keys: vec!["101".into(), "102".into()],
            created_at: retentiond::state::now_text(),
            request: None,
            children: Vec::new(),
        })
        .await
        .expect("intent");
    state.close().await;
    drop(lock);
    run(&config, &["run", "--once"]).assert_code(0);
    // 101 and 102 are deleted by this pass — once each, not also by the phantom batch.
    let trail = audit_keys(&config);
    for key in ["101", "102"] {
        assert_eq!(
            trail.iter().filter(|(_, _, k)| k == key).count(),
            1,
            "{key} audited exactly once"
        );
    }
    run(&config, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn zero_in_a_unix_seconds_column_means_not_set_and_never_expires() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let Some(db) = TestDb::new(kind).await else {
            continue;
        };
        db.exec(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at BIGINT NOT NULL DEFAULT 0)",
        )
        .await;
        db.exec("INSERT INTO events VALUES (1, 0), (2, 1000000000), (3, 0)")
            .await;
        let config = config_with(&db, "0 30 2 * * *", purge(10, "0 ms"));
        run(&config, &["run", "--once"]).assert_code(0);
        let left = db
            .count("SELECT COUNT(*) FROM events WHERE id IN (1, 3)")
            .await;
        assert_eq!(left, 2, "{kind:?}: rows with 0 (not set) were kept");
        assert_eq!(remaining(&db).await, 2, "{kind:?}: the 2001 row went");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_without_room_for_its_trail_leaves_the_rules_on_other_databases_running() {
    let (Some(first), Some(second)) = (
        events(Kind::Sqlite, 1000).await,
        events(Kind::Sqlite, 20_000).await,
    ) else {
        return;
    };
    // 32 MB: room for the first rule's 1000 entries above the 16 MB floor, not for the
    // second's 20,000 (about 20 MB).
    let Some(disk) = Tmpfs::mount(&first.dir.path().join("statefs"), "32m") else {
        return;
    };
    let mut builder = ConfigBuilder::new(&first).rule(
        RuleSpec::delete("purge-first", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0)
            .batch_size(100)
            .batch_pause("200 ms"),
    );
    builder.state_dir = disk.dir.join("state");
    builder
        .databases
        .push(crate::helpers::DatabaseEntry::new("second", &second.url));
    let mut on_second = RuleSpec::delete("purge-second", "events", "happened_at")
        .after("1 year")
        .max_fraction(1.0);
    on_second.database = "second".into();
    builder = builder.rule(on_second);
    let text = builder
        .to_toml()
        .replacen("[daemon]\n", "[daemon]\nparallel = 2\n", 1);
    let config = crate::helpers::write_config(first.dir.path(), &text);

    let r = run(&config, &["run", "--once"]);
    r.assert_code(1);
    assert_eq!(
        second.count("SELECT COUNT(*) FROM events").await,
        20_000,
        "nothing done without room for its trail"
    );
    assert_eq!(
        first.count("SELECT COUNT(*) FROM events").await,
        0,
        "the rule on the other database ran to its end: {r}"
    );
    assert_eq!(audit_keys(&config).len(), 1000);
    let report = run(&config, &["report", "--last", "--format", "json"]).json();
    let failed = report.to_string();
    assert!(
        failed.contains("free space"),
        "the report says why: {failed}"
    );
}

//! Test helpers: a uniquely named database per test on PostgreSQL, MariaDB or SQLite
//! (dropped afterwards), a config writer, and a runner for the real binary.

use retentiond::config::{DatabaseSpec, Dialect, Secret};
use retentiond::db::{Db, Sql};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Which engine a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MySql,
    Sqlite,
}

/// A database made for one test, dropped when the test ends.
pub struct TestDb {
    pub kind: Kind,
    /// URL for retentiond's config.
    pub url: String,
    pub db: Db,
    admin_url: String,
    name: String,
    /// Holds the SQLite file and the test's state directory.
    pub dir: tempfile::TempDir,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("rtd_{}_{n}_{nanos}", std::process::id())
}

fn spec(name: &str, url: &str) -> DatabaseSpec {
    let dialect = match url.split("://").next() {
        Some("postgres") => Dialect::Postgres,
        Some("mysql") => Dialect::MySql,
        _ => Dialect::Sqlite,
    };
    DatabaseSpec {
        name: name.into(),
        dialect,
        url: url.into(),
        secret: Secret::None,
        timeouts: Default::default(),
        line: 0,
    }
}

fn server_missing(kind: Kind, url: &str, e: &dyn std::fmt::Display) -> Option<TestDb> {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but the {kind:?} test server at {url} is unreachable: {e}");
    }
    eprintln!("\n!!!!! SKIPPING: {kind:?} server at {url} unreachable ({e}); set CI=1 to make this a failure !!!!!\n");
    None
}

impl TestDb {
    /// A fresh database, or `None` (locally, with a loud message) if the server is down.
    pub async fn new(kind: Kind) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = unique_name();
        let (admin_url, url) = match kind {
            Kind::Postgres => {
                let base = std::env::var("RETENTIOND_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let root = base
                    .rsplit_once('/')
                    .map(|(r, _)| r.to_owned())
                    .unwrap_or(base.clone());
                (base, format!("{root}/{name}"))
            }
            Kind::MySql => {
                let base = std::env::var("RETENTIOND_TEST_MYSQL_URL")
                    .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into());
                let root = base
                    .rsplit_once('/')
                    .map(|(r, _)| r.to_owned())
                    .unwrap_or(base.clone());
                (base, format!("{root}/{name}"))
            }
            Kind::Sqlite => {
                let file = dir.path().join(format!("{name}.db"));
                std::fs::File::create(&file).expect("sqlite file");
                (String::new(), format!("sqlite://{}", file.display()))
            }
        };
        if kind != Kind::Sqlite {
            let admin = match Db::connect(&spec("admin", &admin_url)).await {
                Ok(a) => a,
                Err(e) => return server_missing(kind, &admin_url, &e),
            };
            admin
                .execute(&raw(&admin, &format!("CREATE DATABASE {name}")))
                .await
                .expect("create test database");
            admin.close().await;
        }
        let db = Db::connect(&spec("test", &url))
            .await
            .expect("connect to the test database");
        Some(TestDb {
            kind,
            url,
            db,
            admin_url,
            name,
            dir,
        })
    }

    /// Runs SQL statements separated by `;` (test fixtures only).
    pub async fn exec(&self, script: &str) {
        for stmt in script.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
            self.db
                .execute(&raw(&self.db, stmt))
                .await
                .unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
    }

    /// Every row of `table` as text, ordered by `id`.
    pub async fn rows(&self, table: &str, cols: &[&str]) -> Vec<Vec<Option<String>>> {
        let cast = |c: &str| match self.kind {
            Kind::MySql => format!("CAST({c} AS CHAR)"),
            _ => format!("CAST({c} AS TEXT)"),
        };
        let list: Vec<String> = cols.iter().map(|c| cast(c)).collect();
        let q = format!("SELECT {} FROM {table} ORDER BY id", list.join(", "));
        self.db
            .fetch_texts(&raw(&self.db, &q))
            .await
            .expect("read rows")
    }

    /// One integer.
    pub async fn count(&self, q: &str) -> i64 {
        self.db.fetch_i64(&raw(&self.db, q)).await.expect("count")
    }

    /// The test's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

/// Raw SQL for fixtures.
pub fn raw(db: &Db, s: &str) -> Sql {
    let mut sql = Sql::new(db.dialect);
    sql.push(s);
    sql
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.kind == Kind::Sqlite {
            return;
        }
        let (admin_url, name, kind) = (self.admin_url.clone(), self.name.clone(), self.kind);
        // Drop is synchronous; the database is dropped on a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(admin) = Db::connect(&spec("admin", &admin_url)).await {
                    let stmt = match kind {
                        Kind::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                        _ => format!("DROP DATABASE IF EXISTS {name}"),
                    };
                    let _ = admin.execute(&raw(&admin, &stmt)).await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// The `[daemon]` and `[databases.main]` header of a config for `db`.
pub fn config_head(db: &TestDb) -> String {
    format!(
        "[daemon]\nstate_dir = \"{}\"\nschedule = \"0 30 2 * * *\"\ntimezone = \"Europe/Brussels\"\nreport_language = \"en\"\n\n[databases.main]\nurl = \"{}\"\n\n",
        db.state_dir().display(),
        db.url
    )
}

/// Writes a config file into the test's directory.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("retentiond.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// What a run of the binary gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A command for the real binary with `--config`.
pub fn command(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_retentiond"));
    c.arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("JOURNAL_STREAM");
    c
}

/// Runs the binary to completion.
pub fn run(config: &Path, args: &[&str]) -> Run {
    command(config, args)
        .output()
        .expect("run retentiond")
        .into()
}

/// The audit trail as (rule, action, key) triples, in order.
pub fn audit_keys(config: &Path) -> Vec<(String, String, String)> {
    let r = run(config, &["audit", "export", "--format", "jsonl"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("jsonl");
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            (s("rule"), s("action"), s("key"))
        })
        .collect()
}

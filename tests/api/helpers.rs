//! Test helpers: a uniquely named database per test on PostgreSQL, MariaDB or SQLite
//! (dropped afterwards), configs built from typed values (`ConfigBuilder`, `RuleSpec`), and
//! a runner for the real binary whose `Run` explains any unexpected outcome in full.

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
    /// `[daemon] state_url`: a PostgreSQL database of the test's own for the state, under
    /// `RETENTIOND_TEST_STATE=postgres` (or [`TestDb::with_postgres_state`]); `None` keeps
    /// the state in `state_dir/state.db`.
    pub state_url: Option<String>,
    /// The name of that state database, dropped with the test.
    state_db: Option<String>,
}

/// Whether the suite keeps the state in PostgreSQL (`RETENTIOND_TEST_STATE=postgres`)
/// rather than `state_dir/state.db`.
pub fn postgres_state() -> bool {
    std::env::var("RETENTIOND_TEST_STATE").is_ok_and(|v| v == "postgres")
}

/// Skips the calling test (returns `true`, with one line saying why) when the suite keeps
/// the state in PostgreSQL and the test can only check `state.db`.
pub fn sqlite_state_only(why: &str) -> bool {
    if postgres_state() {
        eprintln!("skipped under RETENTIOND_TEST_STATE=postgres: {why}");
        return true;
    }
    false
}

/// The PostgreSQL server's admin URL for test databases, and the URL of a database `name`
/// on it.
fn postgres_urls(name: &str) -> (String, String) {
    let base = std::env::var("RETENTIOND_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let root = base
        .rsplit_once('/')
        .map(|(r, _)| r.to_owned())
        .unwrap_or(base.clone());
    (base, format!("{root}/{name}"))
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
    /// Under `RETENTIOND_TEST_STATE=postgres` the state is kept in a PostgreSQL database
    /// of its own too (`state_url`).
    pub async fn new(kind: Kind) -> Option<TestDb> {
        if postgres_state() {
            TestDb::with_postgres_state(kind).await
        } else {
            TestDb::target(kind).await
        }
    }

    /// A fresh database whose state is kept in a PostgreSQL database of its own
    /// (`[daemon] state_url`), whatever `RETENTIOND_TEST_STATE` says.
    pub async fn with_postgres_state(kind: Kind) -> Option<TestDb> {
        let mut db = TestDb::target(kind).await?;
        let name = unique_name();
        let (admin_url, url) = postgres_urls(&name);
        let admin = match Db::connect(&spec("admin", &admin_url)).await {
            Ok(a) => a,
            Err(e) => return server_missing(Kind::Postgres, &admin_url, &e),
        };
        admin
            .execute(&raw(&admin, &format!("CREATE DATABASE {name}")))
            .await
            .expect("create the test's state database");
        admin.close().await;
        db.state_url = Some(url);
        db.state_db = Some(name);
        Some(db)
    }

    /// A fresh database on `kind`, the state in `state_dir`.
    async fn target(kind: Kind) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = unique_name();
        let (admin_url, url) = match kind {
            Kind::Postgres => postgres_urls(&name),
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
            state_url: None,
            state_db: None,
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

    /// The URL of the store that holds the test's state: `state_dir/state.db`, or the
    /// PostgreSQL state database with its schema `retentiond` first on the search path.
    pub fn state_store_url(&self) -> String {
        match &self.state_url {
            Some(url) => format!("{url}?options[search_path]=retentiond"),
            None => format!("sqlite://{}", self.state_dir().join("state.db").display()),
        }
    }

    /// A connection to the test's state store, for tests that read or tamper with it in
    /// SQL both stores accept.
    pub async fn state_sql(&self) -> Db {
        Db::connect(&spec("state", &self.state_store_url()))
            .await
            .expect("connect to the test's state")
    }

    /// The test's state, opened as the binary opens it (`state_url`, else
    /// `state_dir/state.db`, created if missing).
    pub async fn open_state(&self) -> retentiond::state::State {
        let daemon = self.daemon_config();
        retentiond::state::State::open_for(&daemon)
            .await
            .expect("open the test's state")
    }

    /// The `[daemon]` settings `ConfigBuilder::new(self)` writes.
    fn daemon_config(&self) -> retentiond::config::Daemon {
        let path = self.dir.path().join("state-of-test.toml");
        retentiond::config::parse(&path, &ConfigBuilder::new(self).to_toml())
            .unwrap_or_else(|e| panic!("the test's config: {e}"))
            .daemon
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
        // (admin URL, database, kind) of each server database the test made.
        let mut made = Vec::new();
        if self.kind != Kind::Sqlite {
            made.push((self.admin_url.clone(), self.name.clone(), self.kind));
        }
        if let Some(name) = self.state_db.take() {
            made.push((postgres_urls(&name).0, name, Kind::Postgres));
        }
        if made.is_empty() {
            return;
        }
        // Drop is synchronous; the databases are dropped on a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                for (admin_url, name, kind) in made {
                    if let Ok(admin) = Db::connect(&spec("admin", &admin_url)).await {
                        let stmt = match kind {
                            Kind::Postgres => {
                                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                            }
                            _ => format!("DROP DATABASE IF EXISTS {name}"),
                        };
                        let _ = admin.execute(&raw(&admin, &stmt)).await;
                        admin.close().await;
                    }
                }
            });
        })
        .join();
    }
}

/// The `[daemon]` and `[databases.main]` header of a config for `db`.
pub fn config_head(db: &TestDb) -> String {
    ConfigBuilder::new(db).to_toml()
}

/// Writes a config file into the test's directory.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("retentiond.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

// ------------------------------------------------------------------ configs from values

/// A TOML string literal for `s`, quoted and escaped (for raw values in `extra` lists).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One `[databases.NAME]` table.
#[derive(Debug, Clone)]
pub struct DatabaseEntry {
    pub name: String,
    pub url: String,
    /// Further keys with raw TOML values, e.g. `("lock_timeout", quoted("1 s"))`.
    pub extra: Vec<(String, String)>,
}

impl DatabaseEntry {
    pub fn new(name: &str, url: &str) -> DatabaseEntry {
        DatabaseEntry {
            name: name.into(),
            url: url.into(),
            extra: Vec::new(),
        }
    }

    /// Adds `key = "value"` (a string option such as `lock_timeout`).
    pub fn option(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.into(), quoted(value)));
        self
    }
}

/// One `[[rule]]`, from typed values. Strings are quoted and escaped when written, so a
/// test can put any value (quotes, semicolons) into a field and get exactly that value.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub name: String,
    pub description: Option<String>,
    pub legal_basis: Option<String>,
    pub database: String,
    pub table: String,
    pub key: String,
    pub filter: Option<String>,
    /// `expires.since`.
    pub since: String,
    /// `expires.after`; absent means the default ("0 days").
    pub after: Option<String>,
    pub action: String,
    pub batch_size: Option<u64>,
    pub batch_pause: Option<String>,
    pub max_fraction: Option<f64>,
    pub max_records: Option<u64>,
    pub mode: Option<String>,
    /// Further keys with raw TOML values, written in order after the typed ones:
    /// `anonymize`, `flag`, `keep_while`, or a deliberately wrong key or value.
    pub extra: Vec<(String, String)>,
}

impl RuleSpec {
    /// A `delete` rule on `main`, key `id`, legal basis "test", expiring at `since`.
    pub fn delete(name: &str, table: &str, since: &str) -> RuleSpec {
        RuleSpec {
            name: name.into(),
            description: None,
            legal_basis: Some("test".into()),
            database: "main".into(),
            table: table.into(),
            key: "id".into(),
            filter: None,
            since: since.into(),
            after: None,
            action: "delete".into(),
            batch_size: None,
            batch_pause: None,
            max_fraction: None,
            max_records: None,
            mode: None,
            extra: Vec::new(),
        }
    }

    pub fn legal_basis(mut self, v: &str) -> Self {
        self.legal_basis = Some(v.into());
        self
    }
    pub fn filter(mut self, v: &str) -> Self {
        self.filter = Some(v.into());
        self
    }
    pub fn after(mut self, v: &str) -> Self {
        self.after = Some(v.into());
        self
    }
    pub fn batch_size(mut self, v: u64) -> Self {
        self.batch_size = Some(v);
        self
    }
    pub fn batch_pause(mut self, v: &str) -> Self {
        self.batch_pause = Some(v.into());
        self
    }
    pub fn max_fraction(mut self, v: f64) -> Self {
        self.max_fraction = Some(v);
        self
    }
    pub fn max_records(mut self, v: u64) -> Self {
        self.max_records = Some(v);
        self
    }
    pub fn mode(mut self, v: &str) -> Self {
        self.mode = Some(v.into());
        self
    }
    /// Adds `key = value` with `value` as raw TOML (`quoted(..)` for a string).
    pub fn raw(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    /// `(key, raw TOML value)` in the order they are written.
    fn entries(&self) -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = Vec::new();
        let mut s = |k: &str, v: &str| e.push((k.into(), quoted(v)));
        s("name", &self.name);
        if let Some(v) = &self.description {
            s("description", v);
        }
        if let Some(v) = &self.legal_basis {
            s("legal_basis", v);
        }
        s("database", &self.database);
        s("table", &self.table);
        s("key", &self.key);
        if let Some(v) = &self.filter {
            s("filter", v);
        }
        let expires = match &self.after {
            Some(after) => format!(
                "{{ since = {}, after = {} }}",
                quoted(&self.since),
                quoted(after)
            ),
            None => format!("{{ since = {} }}", quoted(&self.since)),
        };
        e.push(("expires".into(), expires));
        e.push(("action".into(), quoted(&self.action)));
        if let Some(v) = self.batch_size {
            e.push(("batch_size".into(), v.to_string()));
        }
        if let Some(v) = &self.batch_pause {
            e.push(("batch_pause".into(), quoted(v)));
        }
        if let Some(v) = self.max_fraction {
            e.push(("max_fraction".into(), format!("{v:?}")));
        }
        if let Some(v) = self.max_records {
            e.push(("max_records".into(), v.to_string()));
        }
        if let Some(v) = &self.mode {
            e.push(("mode".into(), quoted(v)));
        }
        e.extend(self.extra.iter().cloned());
        e
    }
}

/// A whole config from typed values: `to_toml()` writes it, `line(path)` says on which
/// line of that text a table or key stands, so a test can name the line an error must cite.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    pub state_dir: PathBuf,
    /// `[daemon] state_url`, written right after `state_dir` when set.
    pub state_url: Option<String>,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub report_language: Option<String>,
    pub metrics_listen: Option<String>,
    pub databases: Vec<DatabaseEntry>,
    /// Raw TOML between the databases and the rules (`[[hold]]`, `[report.email]`), each
    /// ending in a newline.
    pub sections: Vec<String>,
    pub rules: Vec<RuleSpec>,
}

impl ConfigBuilder {
    /// The config `config_head` writes for `db`: state in the test's directory, nightly
    /// schedule, Europe/Brussels, English, and `db` as database `main`; no rules.
    pub fn new(db: &TestDb) -> ConfigBuilder {
        ConfigBuilder {
            state_dir: db.state_dir(),
            state_url: db.state_url.clone(),
            schedule: Some("0 30 2 * * *".into()),
            timezone: Some("Europe/Brussels".into()),
            report_language: Some("en".into()),
            metrics_listen: None,
            databases: vec![DatabaseEntry::new("main", &db.url)],
            sections: Vec::new(),
            rules: Vec::new(),
        }
    }

    pub fn rule(mut self, rule: RuleSpec) -> Self {
        self.rules.push(rule);
        self
    }

    pub fn section(mut self, toml: &str) -> Self {
        self.sections.push(toml.into());
        self
    }

    /// The TOML text and, per path, its 1-based line. Paths: `daemon`, `daemon.schedule`,
    /// `databases.main`, `databases.main.url`, `rule[1]` (its `[[rule]]` line),
    /// `rule[1].table`, `rule[1].expires` (also `.expires.since`, `.expires.after`).
    fn render(&self) -> (String, Vec<(String, usize)>) {
        let mut w = Writer::default();
        w.put("daemon", "[daemon]");
        let state_dir = self.state_dir.display().to_string();
        let daemon = [
            ("state_dir", Some(&state_dir)),
            ("state_url", self.state_url.as_ref()),
            ("schedule", self.schedule.as_ref()),
            ("timezone", self.timezone.as_ref()),
            ("report_language", self.report_language.as_ref()),
            ("metrics_listen", self.metrics_listen.as_ref()),
        ];
        for (k, v) in daemon {
            if let Some(v) = v {
                w.put(&format!("daemon.{k}"), &format!("{k} = {}", quoted(v)));
            }
        }
        w.blank();
        for d in &self.databases {
            let at = format!("databases.{}", d.name);
            w.put(&at, &format!("[{at}]"));
            w.put(&format!("{at}.url"), &format!("url = {}", quoted(&d.url)));
            for (k, v) in &d.extra {
                w.put(&format!("{at}.{k}"), &format!("{k} = {v}"));
            }
            w.blank();
        }
        for s in &self.sections {
            w.text.push_str(s);
        }
        for (i, r) in self.rules.iter().enumerate() {
            w.put(&format!("rule[{i}]"), "[[rule]]");
            for (k, v) in r.entries() {
                if k == "expires" {
                    // `expires = { since = …, after = … }`: both on the expires line.
                    for sub in ["since", "after"] {
                        let line = w.next_line();
                        w.lines.push((format!("rule[{i}].expires.{sub}"), line));
                    }
                }
                w.put(&format!("rule[{i}].{k}"), &format!("{k} = {v}"));
            }
            w.blank();
        }
        (w.text, w.lines)
    }

    pub fn to_toml(&self) -> String {
        self.render().0
    }

    /// The 1-based line of `path` (see `render`) in `to_toml()`.
    pub fn line(&self, path: &str) -> usize {
        let (text, lines) = self.render();
        lines
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, l)| *l)
            .unwrap_or_else(|| panic!("no {path:?} in the config:\n{text}"))
    }

    /// Writes `to_toml()` as the test's config file.
    pub fn write(&self, db: &TestDb) -> PathBuf {
        write_config(db.dir.path(), &self.to_toml())
    }
}

/// TOML text written line by line, remembering which path stands on which line.
#[derive(Default)]
struct Writer {
    text: String,
    lines: Vec<(String, usize)>,
}

impl Writer {
    fn next_line(&self) -> usize {
        self.text.matches('\n').count() + 1
    }

    fn put(&mut self, path: &str, line: &str) {
        let at = self.next_line();
        self.lines.push((path.to_owned(), at));
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }
}

// ------------------------------------------------------------------ running the binary

/// What a run of the binary gave, and everything needed to explain it: the command line,
/// the working directory and the config as it was when the binary ran.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub command_line: String,
    pub cwd: PathBuf,
    pub config: PathBuf,
    /// The config file's text when the command ran (or why it could not be read).
    pub config_text: String,
}

impl Run {
    /// Builds a `Run` from the output of `command(config, args)` (for a spawned child).
    pub fn from_output(config: &Path, args: &[&str], o: Output) -> Run {
        let config_text = read_config_text(config);
        Run::new(config, args, config_text, o)
    }

    fn new(config: &Path, args: &[&str], config_text: String, o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            command_line: command_line(config, args),
            cwd: std::env::current_dir().unwrap_or_default(),
            config: config.to_path_buf(),
            config_text,
        }
    }

    /// Panics, with the whole story (see `Display`), unless the exit code is `want`.
    #[track_caller]
    pub fn assert_code(&self, want: i32) -> &Self {
        if self.code != want {
            panic!(
                "retentiond exited {}, expected {want}\n{self}",
                describe_code(self.code)
            );
        }
        self
    }

    /// Panics with `why` and the whole story.
    #[track_caller]
    pub fn fail(&self, why: &str) -> ! {
        panic!("{why}\n{self}")
    }

    /// Stdout parsed as JSON; panics with the whole story if it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| self.fail(&format!("stdout is not JSON: {e}")))
    }
}

fn describe_code(code: i32) -> String {
    match code {
        -1 => "without a code (killed by a signal)".into(),
        c => c.to_string(),
    }
}

impl std::fmt::Display for Run {
    /// The command line, working directory, config path and text (numbered, as error
    /// messages cite lines), the exit code, stdout and stderr.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "command:   {}", self.command_line)?;
        writeln!(f, "directory: {}", self.cwd.display())?;
        writeln!(f, "exit code: {}", describe_code(self.code))?;
        writeln!(f, "--- config {} ---", self.config.display())?;
        for (i, line) in self.config_text.lines().enumerate() {
            writeln!(f, "{:>4} | {line}", i + 1)?;
        }
        writeln!(f, "--- stdout ---")?;
        writeln!(f, "{}", self.stdout.trim_end())?;
        writeln!(f, "--- stderr ---")?;
        writeln!(f, "{}", self.stderr.trim_end())?;
        write!(f, "--- end ---")
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn read_config_text(config: &Path) -> String {
    std::fs::read_to_string(config).unwrap_or_else(|e| format!("(not readable: {e})"))
}

/// `args` as a shell would take them, with the environment `command` sets.
fn command_line(config: &Path, args: &[&str]) -> String {
    let quote = |s: &str| {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
        {
            s.to_owned()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let mut words = vec![
        "RUST_LOG=warn".to_owned(),
        quote(env!("CARGO_BIN_EXE_retentiond")),
        "--config".to_owned(),
        quote(&config.display().to_string()),
    ];
    words.extend(args.iter().map(|a| quote(a)));
    words.join(" ")
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

/// Runs the binary to completion. The `Run` explains itself: `r.assert_code(0)`.
pub fn run(config: &Path, args: &[&str]) -> Run {
    let config_text = read_config_text(config);
    let output = command(config, args)
        .output()
        .unwrap_or_else(|e| panic!("could not start `{}`: {e}", command_line(config, args)));
    Run::new(config, args, config_text, output)
}

/// The audit trail's entries about records and holds as (rule, action, key) triples, in
/// order. The rule-history entries (`rule-start`, `rule-change`, `rule-end`,
/// `rule-unlock`) every pass also writes are left out: `rules_history` tests those.
pub fn audit_keys(config: &Path) -> Vec<(String, String, String)> {
    let r = run(config, &["audit", "export", "--format", "jsonl"]);
    r.assert_code(0);
    r.stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| r.fail(&format!("not JSON Lines ({e}): {l}")));
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            (s("rule"), s("action"), s("key"))
        })
        .filter(|(_, action, _)| !action.starts_with("rule-"))
        .collect()
}

/// A database of kind `kind` with a table `events (id, happened_at)` of `n` rows, all from
/// 2001 (expired under any rule of a year or so); `None` when the server is missing and CI
/// is unset.
pub async fn events(kind: Kind, n: i64) -> Option<TestDb> {
    let db = TestDb::new(kind).await?;
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at DATE)")
        .await;
    for chunk in (1..=n).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| format!("({i}, '2001-01-01')"))
            .collect();
        db.exec(&format!("INSERT INTO events VALUES {}", rows.join(", ")))
            .await;
    }
    Some(db)
}

//! Nothing secret or personal leaves through a message. A password in a database URL —
//! with a '/' in it, percent-encoded, or as a `?password=` parameter — appears in no
//! output, report or byte of the state directory, whether the server is down, refuses it,
//! or accepts it. A database error that quotes a record (a trigger's RAISE naming the
//! e-mail address it protects) reaches the log only: the run summary, the reports and the
//! state database say the code and a class in plain words.

use crate::helpers::{raw, run, ConfigBuilder, DatabaseEntry, Kind, RuleSpec, Run, TestDb};
use std::path::{Path, PathBuf};

/// The password: its '/' ends the host for a URL parser, which is how it leaked.
const SECRET: &str = "S3cret/PW-never-shown";

/// What a partial leak would show: the whole password, and either side of its '/'.
const SECRET_PIECES: [&str; 3] = [SECRET, "S3cret", "PW-never-shown"];

/// The personal data a trigger quotes when it refuses a DELETE.
const EMAIL: &str = "jane.doe@example.org";

/// `url` with `password` in its userinfo (replacing any there), as written.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with ://");
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let (userinfo, host) = authority.rsplit_once('@').expect("a URL with a user");
    let user = userinfo.split(':').next().unwrap_or(userinfo);
    format!("{scheme}://{user}:{password}@{host}{path}")
}

/// `url` with `password` as a `password=` query parameter.
fn with_query_password(url: &str, password: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}password={password}")
}

/// The three forms of the secret in a URL to the server of `base`: in the userinfo as
/// written (the URL does not parse), percent-encoded (it parses; the driver sends the
/// decoded password), and as a query parameter.
fn secret_urls(base: &str) -> [(&'static str, String); 3] {
    [
        ("userinfo", with_password(base, SECRET)),
        ("encoded", with_password(base, &SECRET.replace('/', "%2F"))),
        ("query", with_query_password(base, SECRET)),
    ]
}

/// Every file under `dir`, recursively, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push((path, bytes));
            }
        }
    }
    out
}

/// Panics if any of `needles` is in any row of any table of the PostgreSQL state.
async fn assert_postgres_state_free_of(db: &TestDb, needles: &[&str]) {
    let state = db.state_sql().await;
    let tables = state
        .fetch_texts(&raw(
            &state,
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'retentiond' AND table_type = 'BASE TABLE'",
        ))
        .await
        .expect("the state's tables");
    assert!(
        tables
            .iter()
            .flatten()
            .flatten()
            .any(|t| t == "audit_entry"),
        "no trail in the PostgreSQL state: {tables:?}"
    );
    for table in tables.into_iter().flatten().flatten() {
        let rows = state
            .fetch_texts(&raw(
                &state,
                &format!("SELECT CAST(t AS TEXT) FROM {table} t"),
            ))
            .await
            .unwrap_or_else(|e| panic!("rows of {table}: {e}"));
        for row in rows.iter().flatten().flatten() {
            for needle in needles {
                assert!(
                    !row.contains(needle),
                    "{needle:?} is in the state table {table}: {row}"
                );
            }
        }
    }
    state.close().await;
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Panics if any of `needles` is in the state directory of `db` (the state database, its
/// journal files, the saved reports), or in the PostgreSQL state when it is kept there.
async fn assert_state_dir_free_of(db: &TestDb, needles: &[&str]) {
    let files = files_under(&db.state_dir());
    if db.state_url.is_some() {
        assert_postgres_state_free_of(db, needles).await;
    } else {
        assert!(
            files.iter().any(|(p, _)| p.ends_with("state.db")),
            "no state.db under {}",
            db.state_dir().display()
        );
    }
    assert!(
        files
            .iter()
            .any(|(p, _)| p.components().any(|c| c.as_os_str() == "reports")),
        "no saved report under {}",
        db.state_dir().display()
    );
    for (path, bytes) in &files {
        for needle in needles {
            assert!(!holds(bytes, needle), "{needle:?} is in {}", path.display());
        }
    }
}

/// `check`, `plan`, `run --once`, then `report --last` and `audit export` in every format.
fn every_command(config: &Path) -> Vec<Run> {
    let commands: [&[&str]; 10] = [
        &["check"],
        &["plan"],
        &["plan", "--format", "json"],
        &["run", "--once"],
        &["report", "--last"],
        &["report", "--last", "--format", "json"],
        &["report", "--last", "--format", "html"],
        &["audit", "export"],
        &["audit", "export", "--format", "csv"],
        &["audit", "verify"],
    ];
    commands.iter().map(|args| run(config, args)).collect()
}

/// Runs every command on `config` (whose `secret-*` databases hold the password in `forms`
/// and whose `main` database works) and finds the password nowhere, and its mask in
/// `check`.
async fn assert_password_never_shown(db: &TestDb, config: &Path, forms: &[&str]) {
    let runs = every_command(config);
    for r in &runs {
        for piece in SECRET_PIECES {
            if r.stdout.contains(piece) || r.stderr.contains(piece) {
                r.fail(&format!("the password (its piece {piece:?}) leaked"));
            }
        }
    }
    let (check, once) = (&runs[0], &runs[3]);
    if !check.stdout.contains("***") {
        check.fail("check does not show the masked URL");
    }
    if !once.stdout.contains("healthy") {
        once.fail("the healthy rule is not in the summary");
    }
    for form in forms {
        if !check.stdout.contains(&format!("secret-{form}")) {
            check.fail(&format!("check does not name database secret-{form}"));
        }
    }
    runs[4].assert_code(0);
    assert_state_dir_free_of(db, &SECRET_PIECES).await;
}

/// A config with `main` (`db`, one healthy rule) and one `secret-FORM` database per URL,
/// each with a rule on its own table `people_FORM`.
fn secret_config(db: &TestDb, main_table: &str, urls: &[(&str, String)]) -> PathBuf {
    let mut config = ConfigBuilder::new(db).rule(
        RuleSpec::delete("healthy", main_table, "left_at")
            .after("1 year")
            .max_fraction(1.0),
    );
    for (form, url) in urls {
        config.databases.push(
            DatabaseEntry::new(&format!("secret-{form}"), url).option("connect_timeout", "3 s"),
        );
        let mut rule = RuleSpec::delete(
            &format!("on-secret-{form}"),
            &format!("people_{form}"),
            "left_at",
        )
        .after("1 year")
        .max_fraction(1.0);
        rule.database = format!("secret-{form}");
        config = config.rule(rule);
    }
    config.write(db)
}

const PEOPLE: &str = "(id INTEGER PRIMARY KEY, email VARCHAR(100), left_at DATE)";
const PEOPLE_ROWS: &str = "(1, 'a@example.org', '2010-01-01'), (2, 'b@example.org', '2099-01-01')";

#[tokio::test]
async fn a_password_in_a_url_to_an_unreachable_server_is_never_shown() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    db.exec(&format!(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, left_at TEXT);
         INSERT INTO people VALUES {PEOPLE_ROWS}"
    ))
    .await;
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let urls = secret_urls("postgres://retentiond@127.0.0.1:1/hr");
    let config = secret_config(&db, "people", &urls);
    assert_password_never_shown(&db, &config, &["userinfo", "encoded", "query"]).await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM people").await,
        1,
        "healthy ran"
    );
}

/// A server that is up: PostgreSQL (trust: any password is let in, so a pass runs on the
/// URLs that parse) or MariaDB (root has no password: one given is refused).
async fn a_password_in_a_url_to_a_live_server_is_never_shown(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let urls = secret_urls(&db.url);
    db.exec(&format!("CREATE TABLE people {PEOPLE}")).await;
    db.exec(&format!("INSERT INTO people VALUES {PEOPLE_ROWS}"))
        .await;
    for (form, _) in &urls {
        db.exec(&format!("CREATE TABLE people_{form} {PEOPLE}"))
            .await;
        db.exec(&format!("INSERT INTO people_{form} VALUES {PEOPLE_ROWS}"))
            .await;
    }
    let config = secret_config(&db, "people", &urls);
    assert_password_never_shown(&db, &config, &["userinfo", "encoded", "query"]).await;
}

#[tokio::test]
async fn a_password_in_a_url_to_postgres_is_never_shown() {
    a_password_in_a_url_to_a_live_server_is_never_shown(Kind::Postgres).await;
}

#[tokio::test]
async fn a_password_in_a_url_to_mariadb_is_never_shown() {
    a_password_in_a_url_to_a_live_server_is_never_shown(Kind::MySql).await;
}

/// `people` with one expired row for `EMAIL`, and a trigger that refuses its deletion
/// with a message quoting the address (`trigger`: the engine's own statements).
async fn a_trigger_quoting_a_record_stays_in_the_log(kind: Kind, trigger: &[&str], code: &[&str]) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let date = if kind == Kind::Sqlite { "TEXT" } else { "DATE" };
    db.exec(&format!(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(100), left_at {date})"
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO people VALUES (1, '{EMAIL}', '2010-01-01'), (2, 'b@example.org', '2099-01-01')"
    ))
    .await;
    for stmt in trigger {
        db.exec(stmt).await;
    }
    let config = ConfigBuilder::new(&db)
        .rule(
            RuleSpec::delete("former-people", "people", "left_at")
                .after("1 year")
                .max_fraction(1.0),
        )
        .write(&db);
    let once = run(&config, &["run", "--once"]);
    once.assert_code(1);
    if !once.stderr.contains(EMAIL) {
        once.fail("the database's own words belong in the log (RUST_LOG=warn)");
    }
    let reports = [
        run(&config, &["report", "--last"]),
        run(&config, &["report", "--last", "--format", "json"]),
        run(&config, &["report", "--last", "--format", "html"]),
    ];
    for r in [&once].into_iter().chain(reports.iter()) {
        if r.stdout.contains(EMAIL) {
            r.fail("the record's e-mail address is in the output");
        }
    }
    for r in [&once, &reports[0], &reports[1]] {
        let said = code.iter().all(|c| r.stdout.contains(c))
            && r.stdout
                .contains("a trigger or function in the database raised an error");
        if !said {
            r.fail(&format!(
                "the output does not say the code {code:?} and the class"
            ));
        }
    }
    assert_state_dir_free_of(&db, &[EMAIL]).await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM people").await,
        2,
        "the trigger refused"
    );
}

#[tokio::test]
async fn a_postgres_trigger_quoting_a_record_stays_in_the_log() {
    a_trigger_quoting_a_record_stays_in_the_log(
        Kind::Postgres,
        &[
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no: %', OLD.email; END $$",
            "CREATE TRIGGER refuse BEFORE DELETE ON people FOR EACH ROW EXECUTE FUNCTION refuse()",
        ],
        &["SQLSTATE P0001"],
    )
    .await;
}

#[tokio::test]
async fn a_mariadb_trigger_quoting_a_record_stays_in_the_log() {
    // SIGNAL takes a variable, not an expression: the message is built first.
    a_trigger_quoting_a_record_stays_in_the_log(
        Kind::MySql,
        &["CREATE TRIGGER refuse BEFORE DELETE ON people FOR EACH ROW BEGIN DECLARE msg VARCHAR(255); SET msg = CONCAT('no: ', OLD.email); SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = msg; END"],
        &["MySQL error 1644", "SQLSTATE 45000"],
    )
    .await;
}

#[tokio::test]
async fn a_sqlite_trigger_quoting_a_record_stays_in_the_log() {
    // The bundled SQLite takes only a literal as RAISE's message: the trigger was written
    // with the address in it, as a generated trigger would be.
    a_trigger_quoting_a_record_stays_in_the_log(
        Kind::Sqlite,
        &[&format!(
            "CREATE TRIGGER refuse BEFORE DELETE ON people WHEN OLD.email = '{EMAIL}' BEGIN SELECT RAISE(ABORT, 'no: {EMAIL}'); END"
        )],
        &["SQLite error 1811"],
    )
    .await;
}

//! Rule history and locked rules against real PostgreSQL, MariaDB and SQLite: every start,
//! change and end of a rule is an audit entry keyed by the fingerprint of its definition,
//! `rules --history` says what each version said, and a `locked = true` rule refuses a
//! shorter period or its removal (exit 78 at the line) until `rules unlock` allows one change.

use crate::helpers::{command, quoted, run, ConfigBuilder, Kind, RuleSpec, Run, TestDb};
use chrono::{Duration, Utc};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The rule whose history the tests follow.
const RULE: &str = "former-staff";

fn years_ago(y: i64) -> String {
    (Utc::now() - Duration::days(y * 366))
        .format("%Y-%m-%d")
        .to_string()
}

/// `people` (1 left 20 years ago, 2 six years ago, 3 a year ago) and `applicants`.
async fn staff(kind: Kind) -> Option<TestDb> {
    let db = TestDb::new(kind).await?;
    db.exec(&format!(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, left_at DATE);
         CREATE TABLE applicants (id INTEGER PRIMARY KEY, decided_at DATE);
         INSERT INTO people VALUES (1, '{}'), (2, '{}'), (3, '{}')",
        years_ago(20),
        years_ago(6),
        years_ago(1)
    ))
    .await;
    Some(db)
}

/// The config: `former-staff` deleting after `after` (locked if asked; left out if
/// `after` is `None`), and an unlocked rule on `applicants` that stays throughout.
fn config(db: &TestDb, after: Option<&str>, locked: bool) -> ConfigBuilder {
    let mut c = ConfigBuilder::new(db);
    if let Some(after) = after {
        let mut r = RuleSpec::delete(RULE, "people", "left_at")
            .after(after)
            .max_fraction(1.0);
        r.description = Some("Former staff files go after their retention.".into());
        if locked {
            r = r.raw("locked", "true");
        }
        c = c.rule(r);
    }
    c.rule(
        RuleSpec::delete("applicants", "applicants", "decided_at")
            .after("1 year")
            .max_fraction(1.0),
    )
}

fn write(db: &TestDb, after: Option<&str>, locked: bool) -> (ConfigBuilder, PathBuf) {
    let c = config(db, after, locked);
    let path = c.write(db);
    (c, path)
}

/// The trail, one JSON object per entry.
fn trail(config: &Path) -> Vec<Value> {
    let r = run(config, &["audit", "export", "--format", "jsonl"]);
    r.assert_code(0);
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| r.fail(&format!("{e}: {l}"))))
        .collect()
}

/// `(action, key)` of the trail's rule-history entries of `former-staff`.
fn history_of(config: &Path) -> Vec<(String, String)> {
    trail(config)
        .iter()
        .filter(|e| {
            e["rule"] == RULE && e["action"].as_str().is_some_and(|a| a.starts_with("rule-"))
        })
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("action"), s("key"))
        })
        .collect()
}

fn ids(rows: Vec<Vec<Option<String>>>) -> Vec<i64> {
    rows.iter()
        .filter_map(|r| r[0].as_deref().and_then(|s| s.parse().ok()))
        .collect()
}

/// Asserts the run was refused as an invalid config naming `line` of the config file.
#[track_caller]
fn refused_at(r: &Run, line: usize, words: &str) {
    r.assert_code(78);
    if !r.stderr.contains(&format!("retentiond.toml:{line}:")) || !r.stderr.contains(words) {
        r.fail(&format!(
            "the refusal does not name line {line} and say '{words}'"
        ));
    }
}

async fn a_changed_rule_is_in_the_trail_with_both_versions_and_its_end(kind: Kind) {
    let Some(db) = staff(kind).await else {
        return;
    };
    let (_, path) = write(&db, Some("7 years"), false);
    run(&path, &["run", "--once"]).assert_code(0);
    run(&path, &["run", "--once"]).assert_code(0);
    let first = history_of(&path);
    assert_eq!(
        first.len(),
        1,
        "one rule-start, none for an unchanged rule: {first:?}"
    );
    assert_eq!(first[0].0, "rule-start");
    let start = trail(&path)
        .into_iter()
        .find(|e| e["action"] == "rule-start" && e["rule"] == RULE)
        .expect("a rule-start");
    assert_eq!(start["legal_basis"], "rule history");
    assert_eq!(start["table"], "people");
    assert_eq!(start["database"], "main");
    assert!(start["request"].is_null());

    let (_, path) = write(&db, Some("10 years"), false);
    let r = run(&path, &["run", "--once"]);
    r.assert_code(0);
    let two = history_of(&path);
    assert_eq!(
        two.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["rule-start", "rule-change"],
        "{r}"
    );
    assert_ne!(two[0].1, two[1].1, "a new fingerprint for the new version");
    assert!(
        r.stdout.contains(RULE) && r.stdout.contains("rule-change"),
        "{r}"
    );

    let h = run(&path, &["rules", "--history", "--format", "json"]);
    h.assert_code(0);
    let events: Vec<Value> = h.json()["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["rule"] == RULE)
        .collect();
    assert_eq!(events.len(), 2, "{h}");
    assert_eq!(events[0]["event"], "rule-start", "{h}");
    assert_eq!(events[0]["fingerprint"], two[0].1.as_str(), "{h}");
    assert_eq!(events[0]["definition"]["after"], "7 years", "{h}");
    assert_eq!(events[1]["event"], "rule-change", "{h}");
    assert_eq!(events[1]["definition"]["after"], "10 years", "{h}");
    let at = |e: &Value| e["at"].as_str().unwrap_or_default().to_owned();
    assert!(
        at(&events[0]).len() >= 20 && at(&events[0]) < at(&events[1]),
        "dated, in order: {h}"
    );
    let text = run(&path, &["rules", "--history"]);
    text.assert_code(0);
    assert!(
        text.stdout.contains("after 7 years") && text.stdout.contains("after 10 years"),
        "{text}"
    );

    let report = run(&path, &["report", "--last", "--format", "text"]);
    report.assert_code(0);
    for words in [
        "CHANGES TO THE RULES",
        "former-staff: changed",
        "10 years",
        "The retention rules last changed on",
    ] {
        assert!(report.stdout.contains(words), "{words}: {report}");
    }

    // A pass of one rule leaves the others as they are: nothing ends.
    run(&path, &["run", "--once", "--rule", "applicants"]).assert_code(0);
    assert_eq!(history_of(&path).len(), 2);

    let (_, path) = write(&db, None, false);
    run(&path, &["run", "--once"]).assert_code(0);
    let ended = history_of(&path);
    assert_eq!(ended.len(), 3, "{ended:?}");
    assert_eq!(ended[2], ("rule-end".to_owned(), two[1].1.clone()));
    run(&path, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn a_changed_rule_is_in_the_trail_with_both_versions_and_its_end_on_postgres() {
    a_changed_rule_is_in_the_trail_with_both_versions_and_its_end(Kind::Postgres).await;
}

#[tokio::test]
async fn a_changed_rule_is_in_the_trail_with_both_versions_and_its_end_on_mariadb() {
    a_changed_rule_is_in_the_trail_with_both_versions_and_its_end(Kind::MySql).await;
}

#[tokio::test]
async fn a_changed_rule_is_in_the_trail_with_both_versions_and_its_end_on_sqlite() {
    a_changed_rule_is_in_the_trail_with_both_versions_and_its_end(Kind::Sqlite).await;
}

async fn a_locked_rule_is_shortened_only_once_after_an_unlock(kind: Kind) {
    let Some(db) = staff(kind).await else {
        return;
    };
    let (_, path) = write(&db, Some("7 years"), true);
    run(&path, &["run", "--once"]).assert_code(0);
    assert_eq!(ids(db.rows("people", &["id"]).await), vec![2, 3]);

    // Shorter: refused everywhere, at the line of `expires`, and nothing is touched.
    let (c, path) = write(&db, Some("5 years"), true);
    let line = c.line("rule[0].expires");
    for args in [&["check"][..], &["plan"], &["run", "--once"]] {
        refused_at(&run(&path, args), line, "locked");
    }
    assert_eq!(ids(db.rows("people", &["id"]).await), vec![2, 3]);

    // Longer passes, and becomes the version the lock holds.
    let (_, path) = write(&db, Some("8 years"), true);
    run(&path, &["check"]).assert_code(0);
    run(&path, &["run", "--once"]).assert_code(0);

    // Unlocking: unknown and unlocked rules are usage errors; the reason stays out of the trail.
    run(&path, &["rules", "unlock", "no-such-rule", "--reason", "x"]).assert_code(2);
    run(&path, &["rules", "unlock", "applicants", "--reason", "x"]).assert_code(2);
    let reason = "DPO decision 2026-04 after the complaint of Jan Janssens";
    run(&path, &["rules", "unlock", RULE, "--reason", reason]).assert_code(0);
    let locked_version = history_of(&path)
        .last()
        .map(|(_, k)| k.clone())
        .unwrap_or_default();
    let entries = trail(&path);
    let unlock = entries.last().expect("the unlock's entry");
    assert_eq!(unlock["action"], "rule-unlock");
    assert_eq!(unlock["rule"], RULE);
    assert_eq!(unlock["key"], locked_version.as_str());
    let export = run(&path, &["audit", "export", "--format", "csv"]).stdout;
    assert!(
        !export.contains("Janssens"),
        "the unlock reason is in the trail"
    );

    // The one allowed change passes and is recorded.
    let (_, path) = write(&db, Some("5 years"), true);
    run(&path, &["check"]).assert_code(0);
    run(&path, &["run", "--once"]).assert_code(0);
    assert_eq!(ids(db.rows("people", &["id"]).await), vec![3]);
    let actions: Vec<String> = history_of(&path).into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        actions,
        ["rule-start", "rule-change", "rule-unlock", "rule-change"]
    );

    // A second shortening is refused again, and so is removing the rule.
    let (c, path) = write(&db, Some("4 years"), true);
    let line = c.line("rule[0].expires");
    refused_at(&run(&path, &["check"]), line, "locked");
    refused_at(&run(&path, &["run", "--once"]), line, "locked");
    let (c5, _) = write(&db, Some("5 years"), true);
    let (_, path) = write(&db, None, true);
    let r = run(&path, &["run", "--once"]);
    refused_at(&r, c5.line("rule[0]"), "no longer in the config");
    refused_at(
        &run(&path, &["check"]),
        c5.line("rule[0]"),
        "no longer in the config",
    );
    assert_eq!(
        history_of(&path).len(),
        4,
        "nothing recorded by refused passes"
    );
    run(&path, &["audit", "verify"]).assert_code(0);

    let listed = run(
        &write(&db, Some("5 years"), true).1,
        &["rules", "--format", "json"],
    );
    listed.assert_code(0);
    let v = listed.json();
    let mine = v["rules"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["rule"] == RULE).cloned())
        .unwrap_or_else(|| listed.fail("former-staff not listed"));
    assert_eq!(mine["locked"], true, "{listed}");
    assert_eq!(mine["recorded"], true, "{listed}");
    assert_eq!(mine["unlocked"], false, "the unlock was used up: {listed}");
}

#[tokio::test]
async fn a_locked_rule_is_shortened_only_once_after_an_unlock_on_postgres() {
    a_locked_rule_is_shortened_only_once_after_an_unlock(Kind::Postgres).await;
}

#[tokio::test]
async fn a_locked_rule_is_shortened_only_once_after_an_unlock_on_mariadb() {
    a_locked_rule_is_shortened_only_once_after_an_unlock(Kind::MySql).await;
}

#[tokio::test]
async fn a_locked_rule_is_shortened_only_once_after_an_unlock_on_sqlite() {
    a_locked_rule_is_shortened_only_once_after_an_unlock(Kind::Sqlite).await;
}

#[tokio::test]
async fn rules_lists_the_rules_in_force_and_whether_the_trail_knows_them() {
    let Some(db) = staff(Kind::Sqlite).await else {
        return;
    };
    let (_, path) = write(&db, Some("7 years"), true);
    let none = run(&path, &["rules", "--history"]);
    none.assert_code(0);
    assert!(none.stdout.contains("no rule history yet"), "{none}");
    let before = run(&path, &["rules", "--format", "json"]);
    before.assert_code(0);
    let v = before.json();
    let names: Vec<&str> = v["rules"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["rule"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, [RULE, "applicants"], "{before}");
    assert_eq!(v["rules"][0]["recorded"], false, "{before}");
    assert_eq!(v["rules"][0]["after"], "7 years", "{before}");
    assert_eq!(v["rules"][0]["since"], "left_at", "{before}");
    assert_eq!(v["rules"][0]["action"], "delete", "{before}");
    assert_eq!(v["rules"][0]["locked"], true, "{before}");
    assert_eq!(v["rules"][1]["locked"], false, "{before}");
    // Before any pass nothing is locked yet: there is nothing to unlock.
    run(&path, &["rules", "unlock", RULE, "--reason", "x"]).assert_code(2);

    run(&path, &["run", "--once"]).assert_code(0);
    let after = run(&path, &["rules", "--format", "json"]);
    after.assert_code(0);
    let v = after.json();
    assert_eq!(v["rules"][0]["recorded"], true, "{after}");
    let start = history_of(&path);
    assert_eq!(v["rules"][0]["fingerprint"], start[0].1.as_str(), "{after}");
    let text = run(&path, &["rules"]);
    text.assert_code(0);
    assert!(
        text.stdout.contains(RULE) && text.stdout.contains("[locked]"),
        "{text}"
    );
    // The description is not part of the definition: rewording it records nothing.
    let mut reworded = config(&db, Some("7 years"), true);
    reworded.rules[0].description = Some(format!("Reworded: {}", quoted("x")));
    let path = reworded.write(&db);
    run(&path, &["run", "--once"]).assert_code(0);
    assert_eq!(history_of(&path).len(), 1);
}

/// `retentiond run` (the daemon) with its log in a file; killed if the test ends early.
struct Daemon {
    child: std::process::Child,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let log = config.with_extension("log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = command(config, &["run"])
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn the daemon");
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit code, or `None` if it still runs after `limit`.
    fn exit_within(&mut self, limit: std::time::Duration) -> Option<i32> {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return Some(s.code().unwrap_or(-1));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    fn signal(&self, sig: &str) {
        let sent = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(sent.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_daemon_refuses_to_start_or_reload_with_a_shortened_locked_rule() {
    let Some(db) = staff(Kind::Sqlite).await else {
        return;
    };
    let nightly = |after: &str| {
        let mut c = config(&db, Some(after), true);
        c.schedule = Some("0 0 3 * * *".into());
        c.write(&db)
    };
    run(&nightly("7 years"), &["run", "--once"]).assert_code(0);

    let path = nightly("5 years");
    let mut refused = Daemon::start(&path);
    let code = refused.exit_within(std::time::Duration::from_secs(20));
    assert_eq!(code, Some(78), "log:\n{}", refused.log());
    assert!(refused.log().contains("locked"), "{}", refused.log());

    let mut d = Daemon::start(&nightly("7 years"));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    nightly("5 years");
    d.signal("HUP");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let log = d.log();
    assert!(
        log.contains("config reload refused") && log.contains("locked"),
        "{log}"
    );
    d.signal("TERM");
    assert_eq!(
        d.exit_within(std::time::Duration::from_secs(10)),
        Some(0),
        "{}",
        d.log()
    );
    assert_eq!(history_of(&path).len(), 1, "only the rule-start");
}

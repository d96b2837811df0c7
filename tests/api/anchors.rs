//! The trail anchored outside its own file: a trail rewritten from inside `state.db` (cut
//! with its head moved back, wiped, or edited with every hash recomputed, the run history
//! forged to match) still chains, and `audit verify` fails anyway — on the run history,
//! on the anchors each pass left in its target databases, or on a head printed in a report
//! (`--anchor`).

use crate::helpers::{run, sqlite_state_only, ConfigBuilder, Kind, RuleSpec, TestDb};
use retentiond::audit::chain::{hash_of, Fields, GENESIS};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Row, SqlitePool};

/// A SQLite table of 10 expired rows, one pass over it: 10 audit entries, anchored.
async fn audited_pass() -> (TestDb, std::path::PathBuf, String) {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at DATE)")
        .await;
    db.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) INSERT INTO events SELECT i, '2001-01-01' FROM n")
        .await;
    let config = ConfigBuilder::new(&db)
        .rule(
            RuleSpec::delete("purge", "events", "happened_at")
                .after("1 year")
                .max_fraction(1.0),
        )
        .write(&db);
    run(&config, &["run", "--once"]).assert_code(0);
    let report = run(&config, &["report", "--last", "--format", "json"]);
    report.assert_code(0);
    let verify = run(&config, &["audit", "verify"]);
    verify.assert_code(0);
    assert!(verify.stdout.contains("anchors in main (1)"), "{verify}");
    let head = run(&config, &["audit", "verify"])
        .stdout
        .split("head hash ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("head hash printed")
        .to_owned();
    (db, config, head)
}

async fn state_pool(db: &TestDb) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!(
            "sqlite://{}",
            db.state_dir().join("state.db").display()
        ))
        .await
        .expect("open state.db")
}

/// Recomputes every hash from entry `from` on and moves the head, as an attacker with a
/// copy of retentiond would: the chain verifies again.
async fn rechain(pool: &SqlitePool, from: i64) {
    let rows = sqlx::query("SELECT seq, at, run_id, rule, database, tbl, action, key, legal_basis FROM audit WHERE seq >= ?1 ORDER BY seq")
        .bind(from)
        .fetch_all(pool)
        .await
        .expect("entries");
    let mut prev: String = sqlx::query_scalar("SELECT hash FROM audit WHERE seq = ?1")
        .bind(from - 1)
        .fetch_optional(pool)
        .await
        .expect("prev")
        .unwrap_or_else(|| GENESIS.to_owned());
    let mut last = (from - 1, prev.clone());
    for r in rows {
        let text = |i: usize| r.get::<String, _>(i);
        let seq: i64 = r.get(0);
        let hash = hash_of(&Fields {
            seq,
            at: &text(1),
            run_id: &text(2),
            rule: &text(3),
            database: &text(4),
            table: &text(5),
            action: &text(6),
            key: &text(7),
            legal_basis: &text(8),
            prev_hash: &prev,
            request: None,
        });
        sqlx::query("UPDATE audit SET hash = ?1, prev_hash = ?2 WHERE seq = ?3")
            .bind(&hash)
            .bind(&prev)
            .bind(seq)
            .execute(pool)
            .await
            .expect("rehash");
        prev = hash.clone();
        last = (seq, hash);
    }
    sqlx::query("UPDATE chain_head SET seq = ?1, hash = ?2")
        .bind(last.0)
        .bind(&last.1)
        .execute(pool)
        .await
        .expect("head");
    // And the run history, to match.
    sqlx::query(
        "UPDATE runs SET summary = json_set(summary, '$.audit_entries', ?1, '$.audit_head', ?2)",
    )
    .bind(last.0)
    .bind(&last.1)
    .execute(pool)
    .await
    .expect("history");
}

fn broken(config: &std::path::Path, args: &[&str]) -> String {
    let r = run(config, args);
    r.assert_code(1);
    assert!(r.stdout.contains("BROKEN"), "{r}");
    r.stdout
}

#[tokio::test]
async fn a_trail_cut_with_its_head_moved_back_fails_on_the_history_and_the_anchor() {
    if sqlite_state_only("rewrites state.db in SQLite's SQL (the view's triggers, json_set)") {
        return;
    }
    let (db, config, _) = audited_pass().await;
    let pool = state_pool(&db).await;
    sqlx::query("DELETE FROM audit WHERE seq > 6")
        .execute(&pool)
        .await
        .expect("cut");
    sqlx::query("UPDATE chain_head SET seq = 6, hash = (SELECT hash FROM audit WHERE seq = 6)")
        .execute(&pool)
        .await
        .expect("head back");
    let out = broken(&config, &["audit", "verify"]);
    assert!(out.contains("run history") && out.contains("cut"), "{out}");
    // Forge the history too: the anchor in the target database still says 10.
    sqlx::query("UPDATE runs SET summary = json_set(summary, '$.audit_entries', 6, '$.audit_head', (SELECT hash FROM audit WHERE seq = 6))")
        .execute(&pool)
        .await
        .expect("forge history");
    pool.close().await;
    let out = broken(&config, &["audit", "verify"]);
    assert!(
        out.contains("anchor in database 'main'") && out.contains("cut"),
        "{out}"
    );
}

#[tokio::test]
async fn a_wiped_trail_and_history_fail_on_the_anchor() {
    if sqlite_state_only("rewrites state.db in SQLite's SQL (the view's triggers, json_set)") {
        return;
    }
    let (db, config, head) = audited_pass().await;
    let pool = state_pool(&db).await;
    for table in ["audit", "chain_head", "runs"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&pool)
            .await
            .expect("wipe");
    }
    pool.close().await;
    let out = broken(&config, &["audit", "verify"]);
    assert!(out.contains("anchor in database 'main'"), "{out}");
    let out = broken(&config, &["audit", "verify", "--anchor", &head]);
    assert!(out.contains(&head), "{out}");
}

#[tokio::test]
async fn an_entry_edited_with_every_hash_recomputed_fails_on_the_anchor_and_the_report_head() {
    if sqlite_state_only("rewrites state.db in SQLite's SQL (the view's triggers, json_set)") {
        return;
    }
    let (db, config, head) = audited_pass().await;
    let pool = state_pool(&db).await;
    sqlx::query("UPDATE audit SET key = '999' WHERE seq = 3")
        .execute(&pool)
        .await
        .expect("edit");
    rechain(&pool, 3).await;
    pool.close().await;
    let out = broken(&config, &["audit", "verify"]);
    assert!(
        out.contains("anchor in database 'main'") && out.contains("rewritten"),
        "{out}"
    );
    // An attacker who can also write the target database drops the anchors: the head a
    // report printed still catches it.
    db.exec("DROP TABLE retentiond_anchor").await;
    run(&config, &["audit", "verify"]).assert_code(0);
    let out = broken(&config, &["audit", "verify", "--anchor", &head]);
    assert!(out.contains("no entry with hash"), "{out}");
}

#[tokio::test]
async fn an_intact_trail_holds_the_head_its_report_printed() {
    let (_db, config, head) = audited_pass().await;
    let ok = run(&config, &["audit", "verify", "--anchor", &head]);
    ok.assert_code(0);
    assert!(ok.stdout.contains("holds the anchored entry"), "{ok}");
    let r = run(&config, &["audit", "verify", "--anchor", &"ab".repeat(32)]);
    r.assert_code(1);
    run(&config, &["audit", "verify", "--anchor", "not-a-hash"]).assert_code(2);
}

#[tokio::test]
async fn another_installation_on_the_same_database_does_not_break_this_trail() {
    let (db, config, _) = audited_pass().await;
    // A second installation (a staging copy with its own state directory) on the same
    // database anchors its own heads there.
    let mut staging = ConfigBuilder::new(&db).rule(
        RuleSpec::delete("purge", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0),
    );
    staging.state_dir = db.dir.path().join("staging-state");
    // Its own state: in its own state.db, also when this one's is in PostgreSQL.
    staging.state_url = None;
    let staging_text = staging.to_toml();
    let staging_path = db.dir.path().join("staging.toml");
    std::fs::write(&staging_path, staging_text).expect("staging config");
    run(&staging_path, &["run", "--once"]).assert_code(0);
    for c in [&config, &staging_path] {
        let r = run(c, &["audit", "verify"]);
        r.assert_code(0);
        assert!(r.stdout.contains("another installation"), "{r}");
    }
}

//! `audit verify` proves the trail whole, and names the first entry that was edited,
//! removed or reordered in the state database.

use crate::helpers::{raw, run, ConfigBuilder, Kind, RuleSpec, TestDb};

/// A trail of six: the rule's `rule-start` (entry 1), then five deletions (2 to 6).
async fn trail_of_five() -> Option<(TestDb, std::path::PathBuf)> {
    let db = TestDb::new(Kind::Sqlite).await?;
    db.exec(
        "CREATE TABLE applicants (id INTEGER PRIMARY KEY, decided_at TEXT);
         INSERT INTO applicants VALUES (1, '2020-01-01'), (2, '2020-01-02'), (3, '2020-01-03'), (4, '2020-01-04'), (5, '2020-01-05'), (6, NULL)",
    )
    .await;
    let config = ConfigBuilder::new(&db)
        .rule(
            RuleSpec::delete("old", "applicants", "decided_at")
                .after("1 year")
                .batch_size(2)
                // most of this table expires; the brake is tested in safeguards.rs
                .max_fraction(1.0),
        )
        .write(&db);
    run(&config, &["run", "--once"]).assert_code(0);
    let r = run(&config, &["audit", "verify"]);
    r.assert_code(0);
    if !r.stdout.contains("6 entries") {
        r.fail("audit verify does not count 6 entries (a rule-start and 5 deletions)");
    }
    Some((db, config))
}

/// Runs `sql` (statements separated by `; `) on the trail: through the view `audit` in
/// `state.db`; on the PostgreSQL state, whose view takes no writes, on `audit_entry`.
async fn tamper(db: &TestDb, sql: &str) {
    let state = db.state_sql().await;
    let sql = match db.state_url {
        Some(_) => sql
            .replace("UPDATE audit SET", "UPDATE audit_entry SET")
            .replace("DELETE FROM audit WHERE", "DELETE FROM audit_entry WHERE"),
        None => sql.to_owned(),
    };
    for stmt in sql.split("; ") {
        state
            .execute(&raw(&state, stmt))
            .await
            .unwrap_or_else(|e| panic!("tamper {stmt}: {e}"));
    }
    state.close().await;
}

fn broken_at(config: &std::path::Path, seq: i64) {
    let r = run(config, &["audit", "verify"]);
    r.assert_code(1);
    if !r.stdout.contains(&format!("BROKEN at entry {seq}")) {
        r.fail(&format!("audit verify does not name entry {seq}"));
    }
}

#[tokio::test]
async fn verify_names_an_edited_entry() {
    let Some((db, config)) = trail_of_five().await else {
        return;
    };
    tamper(&db, "UPDATE audit SET key = '99' WHERE seq = 3").await;
    broken_at(&config, 3);
}

#[tokio::test]
async fn verify_names_the_gap_of_a_removed_entry() {
    let Some((db, config)) = trail_of_five().await else {
        return;
    };
    tamper(&db, "DELETE FROM audit WHERE seq = 2").await;
    broken_at(&config, 3);
}

#[tokio::test]
async fn verify_names_reordered_entries() {
    let Some((db, config)) = trail_of_five().await else {
        return;
    };
    tamper(&db, "UPDATE audit SET seq = 100 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 100").await;
    broken_at(&config, 2);
}

#[tokio::test]
async fn verify_notices_entries_cut_from_the_end() {
    let Some((db, config)) = trail_of_five().await else {
        return;
    };
    tamper(&db, "DELETE FROM audit WHERE seq = 6").await;
    broken_at(&config, 6);
}

#[tokio::test]
async fn export_filters_by_time_and_writes_csv_with_a_header() {
    let Some((_db, config)) = trail_of_five().await else {
        return;
    };
    let r = run(
        &config,
        &[
            "audit",
            "export",
            "--format",
            "csv",
            "--since",
            "2000-01-01",
        ],
    );
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "seq,at,run_id,rule,database,table,action,key,legal_basis,hash,prev_hash,request"
    );
    assert_eq!(lines.len(), 7, "a header, the rule-start and 5 deletions");
    let r = run(&config, &["audit", "export", "--until", "2000-01-01"]);
    r.assert_code(0);
    assert_eq!(r.stdout, "", "nothing before 2000-01-01");
    run(&config, &["audit", "export", "--since", "yesterday"]).assert_code(2);
}

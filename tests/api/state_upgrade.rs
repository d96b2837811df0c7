//! A state database written by the release before state schema 3 (the audit trail stored
//! one full row per entry) is read as it is when opened read-only, converted to the
//! compact layout when a pass opens it, and verifies and exports byte for byte as before,
//! while new entries chain on to it.
//!
//! `tests/fixtures/state-schema-2/` holds a `state.db` that release (commit bd4ce17) wrote
//! running `retentiond demo` — entries of rules, of a legal hold, of the rule history and
//! of an erasure under a request — and what its own `audit export` printed for it.

use crate::helpers::{run, write_config};
use retentiond::state::State;
use std::path::{Path, PathBuf};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state-schema-2");

/// A copy of the fixture's state directory and a config that points at it.
fn copy() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::copy(Path::new(FIXTURE).join("state.db"), state.join("state.db"))
        .expect("copy state.db");
    let config = write_config(
        dir.path(),
        &format!("[daemon]\nstate_dir = {:?}\n", state.display().to_string()),
    );
    (dir, state, config)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURE).join(name)).expect("fixture export")
}

fn schema_version(state: &Path) -> i64 {
    rusqlite::Connection::open(state.join("state.db"))
        .expect("open")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version")
}

fn exported(config: &Path, format: &str) -> String {
    let r = run(config, &["audit", "export", "--format", format]);
    r.assert_code(0);
    r.stdout.clone()
}

#[tokio::test]
async fn a_schema_2_trail_is_converted_and_verifies_and_exports_as_before() {
    let (_dir, state, config) = copy();
    let jsonl = fixture("export.jsonl");
    let csv = fixture("export.csv");
    let entries = jsonl.lines().count();
    assert!(entries > 100, "the fixture holds a real trail");
    assert_eq!(schema_version(&state), 2);

    // Read as it is: nothing converted by reading.
    let r = run(&config, &["audit", "verify"]);
    r.assert_code(0);
    if !r.stdout.contains(&format!("{entries} entries")) {
        r.fail("audit verify does not count the fixture's entries");
    }
    assert_eq!(exported(&config, "jsonl"), jsonl);
    assert_eq!(schema_version(&state), 2, "reading converted the trail");

    // A pass opens it for writing: converted, in place.
    let opened = State::open(&state).await.expect("open and convert");
    let head_before = opened.head().await.expect("head").expect("a head");
    opened.close().await;
    assert_eq!(schema_version(&state), 3);
    let r = run(&config, &["audit", "verify"]);
    r.assert_code(0);
    if !r.stdout.contains(&format!("{entries} entries")) || !r.stdout.contains(&head_before.hash) {
        r.fail("the converted trail does not verify to the same head");
    }
    assert_eq!(exported(&config, "jsonl"), jsonl, "JSON Lines changed");
    assert_eq!(exported(&config, "csv"), csv, "CSV changed");

    // New entries chain on to the converted ones.
    let state_db = State::open(&state).await.expect("reopen");
    let intent = retentiond::state::Intent {
        batch_id: "after-upgrade".into(),
        run_id: "20261129T020000Z-upgrade".into(),
        rule: "lost-leads".into(),
        database: "crm".into(),
        table: "prospects".into(),
        action: "delete".into(),
        legal_basis: "GDPR art. 5(1)(e)".into(),
        keys: vec!["9001".into(), "9002".into(), "9003".into()],
        created_at: retentiond::state::now_text(),
        request: None,
        children: Vec::new(),
    };
    state_db.write_intent(&intent).await.expect("intent");
    retentiond::engine::journal::confirm(&state_db, &intent)
        .await
        .expect("append");
    state_db.close().await;
    let r = run(&config, &["audit", "verify"]);
    r.assert_code(0);
    if !r.stdout.contains(&format!("{} entries", entries + 3)) {
        r.fail("the entries appended after the conversion do not verify");
    }
    let after = exported(&config, "jsonl");
    assert!(after.starts_with(&jsonl), "the old entries changed");
    let first_new: serde_json::Value =
        serde_json::from_str(after.lines().nth(entries).expect("a new entry")).expect("json");
    assert_eq!(first_new["prev_hash"], head_before.hash.as_str());
    assert_eq!(first_new["key"], "9001");
}

#[tokio::test]
async fn tampering_through_the_audit_view_is_found_at_its_entry() {
    let (_dir, state, config) = copy();
    State::open(&state).await.expect("convert").close().await;
    let conn = rusqlite::Connection::open(state.join("state.db")).expect("open");
    conn.execute_batch("UPDATE audit SET rule = 'innocent' WHERE seq = 40")
        .expect("tamper");
    drop(conn);
    let r = run(&config, &["audit", "verify"]);
    r.assert_code(1);
    if !r.stdout.contains("BROKEN at entry 40") {
        r.fail("a shared field changed on one entry is not named at that entry");
    }
}

//! The register of data-subject requests: due dates in calendar months, overdue first,
//! one extension, closing, refusals with exit 2 — and the person's identity nowhere on
//! disk.

use crate::helpers::{run, ConfigBuilder, Kind, TestDb};
use std::path::PathBuf;

/// A SQLite CRM with prospects, and a config with one subject identified by e-mail.
async fn crm() -> (TestDb, PathBuf) {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    db.exec("CREATE TABLE prospects (id INTEGER PRIMARY KEY, name TEXT, email TEXT, phone TEXT)")
        .await;
    db.exec(
        "INSERT INTO prospects VALUES (1, 'Jane Doe', 'jane.doe@example.org', '+32 470 00 00 01')",
    )
    .await;
    let mut config = ConfigBuilder::new(&db);
    config.sections.push(
        "[[subject]]\nname = \"crm-prospects\"\ndatabase = \"main\"\ntable = \"prospects\"\nkey = \"id\"\nidentify = { email = \"email\", phone = \"phone\" }\nerase = \"anonymize\"\nanonymize = { name = \"null\", email = \"null\", phone = \"null\" }\n\n".to_owned(),
    );
    let path = config.write(&db);
    (db, path)
}

fn new_request(config: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["request", "new", "--format", "json"];
    all.extend_from_slice(args);
    let r = run(config, &all);
    r.assert_code(0);
    r.json()
}

#[tokio::test]
async fn a_request_is_due_one_calendar_month_after_it_was_received() {
    let (_db, config) = crm().await;
    let r = new_request(&config, &["--kind", "access", "--received", "2024-01-31"]);
    assert_eq!(r["kind"], "access");
    assert_eq!(r["received"], "2024-01-31");
    assert_eq!(r["due"], "2024-02-29", "a leap year's February");
    let r = new_request(&config, &["--kind", "erasure", "--received", "2025-01-31"]);
    assert_eq!(r["due"], "2025-02-28");
    let id = r["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("REQ-2025-"), "{id}");
}

#[tokio::test]
async fn the_list_shows_overdue_requests_first_and_one_extension_is_allowed() {
    let (_db, config) = crm().await;
    let today = chrono::Utc::now().date_naive();
    let recent = today.to_string();
    let old = (today - chrono::Duration::days(60)).to_string();
    let older = (today - chrono::Duration::days(45)).to_string();
    let a = new_request(&config, &["--kind", "access", "--received", &recent]);
    let b = new_request(
        &config,
        &[
            "--kind",
            "erasure",
            "--received",
            &old,
            "--reference",
            "T-17",
        ],
    );
    let c = new_request(&config, &["--kind", "access", "--received", &older]);
    let list = run(&config, &["request", "list", "--format", "json"]);
    list.assert_code(0);
    let listed = list.json();
    let ids: Vec<String> = listed["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let id = |v: &serde_json::Value| v["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(ids, [id(&b), id(&c), id(&a)], "most overdue first");
    assert_eq!(listed["requests"][0]["overdue"], true);
    assert_eq!(listed["requests"][2]["overdue"], false);
    let text = run(&config, &["request", "list"]);
    assert!(text.stdout.contains("OVERDUE"), "{text}");

    run(
        &config,
        &[
            "request",
            "extend",
            &id(&b),
            "--reason",
            "many requests this month",
        ],
    )
    .assert_code(0);
    let again = run(
        &config,
        &["request", "extend", &id(&b), "--reason", "still many"],
    );
    again.assert_code(1);
    assert!(again.stderr.contains("one extension"), "{again}");
    run(&config, &["request", "close", &id(&c)]).assert_code(0);
    run(&config, &["request", "close", &id(&c)]).assert_code(1);
    let after = run(&config, &["request", "list", "--format", "json"]).json();
    let ids: Vec<String> = after["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!ids.contains(&id(&c)), "closed requests are not listed");
    assert!(after["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .any(|r| r["id"] == id(&b) && r["extended"] == true));
}

#[tokio::test]
async fn unknown_ids_and_attributes_are_a_bad_command_line() {
    let (_db, config) = crm().await;
    run(&config, &["request", "close", "REQ-1999-0001"]).assert_code(2);
    run(
        &config,
        &["request", "extend", "REQ-1999-0001", "--reason", "x"],
    )
    .assert_code(2);
    let r = run(
        &config,
        &[
            "request",
            "new",
            "--kind",
            "access",
            "--match",
            "shoe_size=42",
        ],
    );
    r.assert_code(2);
    assert!(
        r.stderr.contains("email, phone"),
        "names the attributes there are: {r}"
    );
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(2)).to_string();
    run(
        &config,
        &[
            "request",
            "new",
            "--kind",
            "access",
            "--received",
            &tomorrow,
        ],
    )
    .assert_code(2);
}

#[tokio::test]
async fn the_identity_of_a_request_is_never_stored_in_clear() {
    let (db, config) = crm().await;
    let r = run(
        &config,
        &[
            "request",
            "new",
            "--kind",
            "erasure",
            "--match",
            "email= Jane.Doe@Example.org ",
            "--match",
            "phone=+32 470 00 00 01",
        ],
    );
    r.assert_code(0);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(db.state_dir()).expect("state dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            bytes.extend(std::fs::read(path).expect("read"));
        }
    }
    let text = String::from_utf8_lossy(&bytes).to_lowercase();
    for secret in ["jane.doe@example.org", "jane", "470 00 00 01"] {
        assert!(!text.contains(secret), "{secret} is in the state directory");
    }
    assert!(!r.stdout.to_lowercase().contains("jane") && !r.stderr.to_lowercase().contains("jane"));
}

#[tokio::test]
async fn open_and_overdue_requests_are_in_the_nightly_report() {
    let (db, config) = crm().await;
    let old = (chrono::Utc::now().date_naive() - chrono::Duration::days(40)).to_string();
    new_request(&config, &["--kind", "erasure", "--received", &old]);
    new_request(&config, &["--kind", "access"]);
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at DATE)")
        .await;
    run(&config, &["run", "--once"]).assert_code(0);
    let text = run(&config, &["report", "--last", "--format", "text"]);
    text.assert_code(0);
    assert!(
        text.stdout.contains("REQUESTS FROM PEOPLE") && text.stdout.contains("2 open"),
        "{text}"
    );
    assert!(text.stdout.contains("1 OVERDUE"), "{text}");
    let json = run(&config, &["report", "--last", "--format", "json"]).json();
    assert_eq!(json["requests"], serde_json::json!([2, 1]));
}

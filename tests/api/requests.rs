//! The register of data-subject requests: due dates in calendar months, overdue first,
//! one extension, closing, refusals with exit 2 — and the person's identity nowhere on
//! disk.

use crate::helpers::{command, run, ConfigBuilder, DatabaseEntry, Kind, RuleSpec, TestDb};
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

/// The person of the tests below, and look-alikes that must not be taken for her.
const JANE: &str = "jane.doe@example.org";

/// A CRM in SQLite (`main`: prospects found by e-mail, customers by e-mail and phone) and
/// bookkeeping in PostgreSQL (`books`: invoices reached through the customers; a second
/// SQLite file where no PostgreSQL server runs and CI is unset), with a rule on each of
/// customers and invoices. Returns both databases (kept alive) and the config.
async fn crm_and_books() -> (TestDb, TestDb, PathBuf) {
    let crm = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    crm.exec(
        "CREATE TABLE prospects (id INTEGER PRIMARY KEY, name TEXT, email TEXT, phone TEXT);\n\
         INSERT INTO prospects VALUES (1, 'Jane Doe', 'jane.doe@example.org', '+32 470 00 00 01');\n\
         INSERT INTO prospects VALUES (2, 'Jane Other', 'jane.doe@example.org.uk', NULL);\n\
         INSERT INTO prospects VALUES (3, 'J. Doe', '  JANE.Doe@Example.ORG ', NULL);\n\
         INSERT INTO prospects VALUES (4, 'X', 'xjane.doe@example.org', NULL);\n\
         INSERT INTO prospects VALUES (5, 'Y', 'jane.doe@example.or', NULL);\n\
         CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, phone TEXT, closed_at DATE);\n\
         INSERT INTO customers VALUES (10, 'Jane Doe', 'jane.doe@example.org', '+32 470 00 00 01', NULL);\n\
         INSERT INTO customers VALUES (11, 'Jane Doe', 'jane.doe@example.org', '+32 470 99 99 99', NULL);\n\
         INSERT INTO customers VALUES (12, 'Jane UK', 'jane.doe@example.org.uk', '+32 470 00 00 01', NULL)",
    )
    .await;
    let books = match TestDb::new(Kind::Postgres).await {
        Some(db) => db,
        None => TestDb::new(Kind::Sqlite).await.expect("sqlite"),
    };
    books
        .exec(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER, amount TEXT, issued_on DATE);\n\
             INSERT INTO invoices VALUES (100, 10, '120.00', '2024-03-01');\n\
             INSERT INTO invoices VALUES (101, 10, '80.50', '2024-04-01');\n\
             INSERT INTO invoices VALUES (102, 11, '9.99', '2024-05-01');\n\
             INSERT INTO invoices VALUES (103, 12, '1.00', '2024-06-01')",
        )
        .await;
    let mut config = ConfigBuilder::new(&crm);
    config
        .databases
        .push(DatabaseEntry::new("books", &books.url));
    config.sections.push(
        "[[subject]]\nname = \"crm-prospects\"\ndatabase = \"main\"\ntable = \"prospects\"\nkey = \"id\"\nidentify = { email = \"email\" }\nerase = \"delete\"\n\n\
         [[subject]]\nname = \"crm-customers\"\ndatabase = \"main\"\ntable = \"customers\"\nkey = \"id\"\nidentify = { email = \"email\", phone = \"phone\" }\nerase = \"anonymize\"\nanonymize = { name = \"null\", email = \"null\", phone = \"null\" }\n\n\
         [[subject]]\nname = \"books-invoices\"\ndatabase = \"books\"\ntable = \"invoices\"\nkey = \"id\"\nvia = { subject = \"crm-customers\", foreign_key = \"customer_id\" }\nerase = \"keep\"\nkeep_reason = \"Bookkeeping law: invoices are kept 7 years\"\n\n"
            .to_owned(),
    );
    let mut customers = RuleSpec::delete("closed-customers", "customers", "closed_at")
        .after("2 years")
        .legal_basis("contract (art. 6(1)(b) GDPR)");
    customers.description = Some("Serving our customers".into());
    let mut invoices = RuleSpec::delete("old-invoices", "invoices", "issued_on")
        .after("7 years")
        .legal_basis("legal obligation (art. 6(1)(c) GDPR)");
    invoices.database = "books".into();
    let config = config.rule(customers).rule(invoices);
    let path = config.write(&crm);
    (crm, books, path)
}

/// Every file of the state directory, as lowercase text.
fn state_text(db: &TestDb) -> String {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(db.state_dir()).expect("state dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            bytes.extend(std::fs::read(path).expect("read"));
        }
    }
    String::from_utf8_lossy(&bytes).to_lowercase()
}

/// `subject name → keys` from `request find --format json`.
fn keys_by_subject(found: &serde_json::Value) -> Vec<(String, Vec<i64>, bool)> {
    found["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .map(|s| {
            let keys: Vec<i64> = s["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .map(|k| k.as_i64().expect("integer key"))
                .collect();
            assert_eq!(s["count"].as_u64(), Some(keys.len() as u64), "{s}");
            (
                s["subject"].as_str().expect("subject").to_owned(),
                keys,
                s["searched"].as_bool().expect("searched"),
            )
        })
        .collect()
}

#[tokio::test]
async fn request_find_locates_a_person_exactly_in_three_tables_of_two_databases() {
    let (crm, _books, config) = crm_and_books().await;
    let r = new_request(&config, &["--kind", "access"]);
    let id = r["id"].as_str().expect("id").to_owned();
    let found = run(
        &config,
        &[
            "request",
            "find",
            &id,
            "--match",
            "email= Jane.Doe@Example.org ",
            "--match",
            "phone=+32 470 00 00 01",
            "--format",
            "json",
        ],
    );
    found.assert_code(0);
    let json = found.json();
    assert_eq!(json["request"], id.as_str());
    assert_eq!(
        keys_by_subject(&json),
        [
            ("crm-prospects".to_owned(), vec![1, 3], true),
            ("crm-customers".to_owned(), vec![10], true),
            ("books-invoices".to_owned(), vec![100, 101], true),
        ],
        "no look-alike (.org.uk, xjane…, .or), and both attributes must match: {found}"
    );
    assert_eq!(json["subjects"][2]["database"], "books");
    assert_eq!(json["subjects"][2]["table"], "invoices");
    for out in [&found.stdout, &found.stderr] {
        assert!(!out.to_lowercase().contains("jane"), "{found}");
        assert!(!out.contains("470"), "{found}");
    }
    // The same person again, in text: one line per subject, no values.
    let text = run(
        &config,
        &[
            "request",
            "find",
            &id,
            "--match",
            "phone=+32 470 00 00 01",
            "--match",
            "email=jane.doe@example.org",
        ],
    );
    text.assert_code(0);
    assert_eq!(text.stdout.lines().count(), 3, "{text}");
    assert!(text.stdout.contains("100, 101"), "{text}");
    assert!(!text.stdout.to_lowercase().contains("jane"), "{text}");
    let state = state_text(&crm);
    for secret in [JANE, "470 00 00 01"] {
        assert!(
            !state.contains(secret),
            "{secret} is in the state directory"
        );
    }
}

#[tokio::test]
async fn request_find_reports_subjects_it_cannot_search_with_the_attributes_given() {
    let (_crm, _books, config) = crm_and_books().await;
    let r = new_request(
        &config,
        &["--kind", "access", "--match", "phone= +32 470 00 00 01"],
    );
    let id = r["id"].as_str().expect("id").to_owned();
    let found = run(
        &config,
        &[
            "request",
            "find",
            &id,
            "--match",
            "phone=+32 470 00 00 01",
            "--format",
            "json",
        ],
    );
    found.assert_code(0);
    let json = found.json();
    assert_eq!(
        keys_by_subject(&json),
        [
            ("crm-prospects".to_owned(), vec![], false),
            ("crm-customers".to_owned(), vec![10, 12], true),
            ("books-invoices".to_owned(), vec![100, 101, 103], true),
        ],
        "{found}"
    );
    assert_eq!(json["subjects"][0]["needs"], serde_json::json!(["email"]));
    let text = run(
        &config,
        &["request", "find", &id, "--match", "phone=+32 470 00 00 01"],
    );
    text.assert_code(0);
    assert!(text.stdout.contains("not searched: needs email"), "{text}");
}

#[tokio::test]
async fn request_find_and_export_refuse_another_persons_values() {
    let (crm, _books, config) = crm_and_books().await;
    let r = new_request(
        &config,
        &["--kind", "access", "--match", &format!("email={JANE}")],
    );
    let id = r["id"].as_str().expect("id").to_owned();
    let other = run(
        &config,
        &["request", "find", &id, "--match", "email=john@example.org"],
    );
    other.assert_code(1);
    assert!(other.stderr.contains("another person"), "{other}");
    assert!(other.stdout.is_empty(), "{other}");
    // The same e-mail plus a phone is another identity too.
    run(
        &config,
        &[
            "request",
            "find",
            &id,
            "--match",
            &format!("email={JANE}"),
            "--match",
            "phone=+32 470 00 00 01",
        ],
    )
    .assert_code(1);
    let out = crm.dir.path().join("package");
    let export = run(
        &config,
        &[
            "request",
            "export",
            &id,
            "--match",
            "email=john@example.org",
            "--out",
            out.to_str().expect("utf-8"),
        ],
    );
    export.assert_code(1);
    assert!(
        !out.exists(),
        "nothing written for a refused export: {export}"
    );
    let state = state_text(&crm);
    assert!(
        !state.contains("john@example.org") && !state.contains(JANE),
        "no identity in the state directory"
    );
    // Unknown request, unknown attribute: a bad command line.
    run(
        &config,
        &[
            "request",
            "find",
            "REQ-1999-0001",
            "--match",
            &format!("email={JANE}"),
        ],
    )
    .assert_code(2);
    run(
        &config,
        &["request", "find", &id, "--match", "shoe_size=42"],
    )
    .assert_code(2);
    // The bound person is found.
    run(
        &config,
        &["request", "find", &id, "--match", &format!("email= {JANE}")],
    )
    .assert_code(0);
}

#[tokio::test]
async fn request_export_writes_exactly_the_persons_rows_with_each_tables_rules() {
    let (crm, _books, config) = crm_and_books().await;
    let r = new_request(&config, &["--kind", "access"]);
    let id = r["id"].as_str().expect("id").to_owned();
    let out = crm.dir.path().join("export").join("package");
    let args = [
        "request",
        "export",
        &id,
        "--match",
        "email=Jane.Doe@Example.org",
        "--match",
        "phone=+32 470 00 00 01",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    let export = run(&config, &args);
    export.assert_code(0);
    assert!(!export.stdout.to_lowercase().contains("jane"), "{export}");
    use std::os::unix::fs::PermissionsExt;
    for f in ["package.json", "package.html"] {
        let mode = std::fs::metadata(out.join(f))
            .expect(f)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("package.json")).expect("json"))
            .expect("valid json");
    assert_eq!(package["request"], id.as_str());
    let subjects = package["subjects"].as_array().expect("subjects");
    let ids = |i: usize| -> Vec<String> {
        subjects[i]["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["id"].as_str().expect("id as text").to_owned())
            .collect()
    };
    assert_eq!(subjects[0]["subject"], "crm-prospects");
    assert_eq!(ids(0), ["1", "3"]);
    assert_eq!(ids(1), ["10"]);
    assert_eq!(ids(2), ["100", "101"]);
    assert_eq!(subjects[0]["rows"][0]["email"], JANE);
    assert_eq!(subjects[0]["rows"][1]["phone"], serde_json::Value::Null);
    assert_eq!(subjects[2]["rows"][1]["amount"], "80.50");
    assert_eq!(subjects[2]["database"], "books");
    assert_eq!(
        subjects[1]["rules"][0]["legal_basis"],
        "contract (art. 6(1)(b) GDPR)"
    );
    assert_eq!(subjects[1]["rules"][0]["purpose"], "Serving our customers");
    assert_eq!(subjects[2]["rules"][0]["retention"], "7 years");
    let all = package.to_string();
    for other in ["example.org.uk", "xjane", "99 99 99", "9.99"] {
        assert!(!all.contains(other), "{other} is not Jane's: {all}");
    }
    let html = std::fs::read_to_string(out.join("package.html")).expect("html");
    for want in [
        "main.customers",
        "books.invoices",
        "Serving our customers",
        "legal obligation (art. 6(1)(c) GDPR)",
        "7 years",
        "80.50",
        JANE,
    ] {
        assert!(html.contains(want), "{want} missing from the page:\n{html}");
    }
    assert!(
        !html.contains("example.org.uk") && !html.contains("9.99"),
        "{html}"
    );
    // A package never goes into a directory that holds something.
    run(&config, &args).assert_code(2);
    // The most verbose logs of a find and an export hold no value of the person's.
    let traced_out = crm.dir.path().join("traced");
    let mut traced = args.to_vec();
    traced[8] = traced_out.to_str().expect("utf-8");
    let find = [
        "request",
        "find",
        &id,
        "--match",
        "email=Jane.Doe@Example.org",
        "--match",
        "phone=+32 470 00 00 01",
    ];
    for args in [&traced[..], &find[..]] {
        let o = command(&config, args)
            .env("RUST_LOG", "trace")
            .output()
            .expect("run");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let logs = String::from_utf8_lossy(&o.stderr).to_lowercase();
        for secret in ["jane", "470 00 00 01", "80.50"] {
            assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
        }
    }
    let state = state_text(&crm);
    for secret in [JANE, "470 00 00 01"] {
        assert!(
            !state.contains(secret),
            "{secret} is in the state directory"
        );
    }
}

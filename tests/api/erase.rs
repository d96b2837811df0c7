//! `request erase` on PostgreSQL, MariaDB and SQLite: exactly the person's records are
//! deleted or anonymized, children before parents; invoices stay under `keep`, a legal
//! hold wins; one audit entry per record carries the request's id; a second erasure acts
//! on nothing; the identity is nowhere on disk, in the logs or in the trail; and a
//! SIGKILL mid-erasure is settled by the next start.

use crate::helpers::{command, run, ConfigBuilder, DatabaseEntry, Kind, RuleSpec, Run, TestDb};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The person, and the look-alikes that must not be taken for her.
const JANE: &str = "jane.doe@example.org";

fn text_type(kind: Kind) -> &'static str {
    if kind == Kind::MySql {
        "VARCHAR(100)"
    } else {
        "TEXT"
    }
}

/// A CRM in `crm_kind` (`main`: prospects and their notes, with a foreign key; customers)
/// and bookkeeping in `books_kind` (`books`: invoices reached through the customers), a
/// legal hold on one prospect, and a rule on invoices. `None` when a server is missing
/// (and CI is unset).
async fn fixture(crm_kind: Kind, books_kind: Kind) -> Option<(TestDb, TestDb, PathBuf)> {
    let crm = TestDb::new(crm_kind).await?;
    let books = TestDb::new(books_kind).await?;
    let t = text_type(crm_kind);
    crm.exec(&format!(
        "CREATE TABLE prospects (id INTEGER PRIMARY KEY, name {t}, email {t}, phone {t});\n\
         INSERT INTO prospects VALUES (1, 'Jane Doe', 'jane.doe@example.org', '+32 470 00 00 01');\n\
         INSERT INTO prospects VALUES (2, 'Jane Other', 'jane.doe@example.org.uk', NULL);\n\
         INSERT INTO prospects VALUES (3, 'J. Doe', '  JANE.Doe@Example.ORG ', NULL);\n\
         INSERT INTO prospects VALUES (4, 'X', 'xjane.doe@example.org', NULL);\n\
         INSERT INTO prospects VALUES (5, 'Y', 'jane.doe@example.or', NULL);\n\
         INSERT INTO prospects VALUES (6, 'Held', 'jane.doe@example.org', NULL);\n\
         CREATE TABLE notes (id INTEGER PRIMARY KEY, prospect_id INTEGER NOT NULL REFERENCES prospects (id), body {t});\n\
         INSERT INTO notes VALUES (50, 1, 'called her');\n\
         INSERT INTO notes VALUES (51, 3, 'sent brochure');\n\
         INSERT INTO notes VALUES (52, 6, 'dispute');\n\
         INSERT INTO notes VALUES (53, 2, 'not her');\n\
         CREATE TABLE customers (id INTEGER PRIMARY KEY, name {t}, email {t}, phone {t});\n\
         INSERT INTO customers VALUES (10, 'Jane Doe', 'jane.doe@example.org', '+32 470 00 00 01');\n\
         INSERT INTO customers VALUES (11, 'Jane Doe', 'jane.doe@example.org', '+32 470 99 99 99');\n\
         INSERT INTO customers VALUES (12, 'Jane UK', 'jane.doe@example.org.uk', '+32 470 00 00 01')"
    ))
    .await;
    books
        .exec(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER, amount INTEGER, issued_on DATE);\n\
             INSERT INTO invoices VALUES (100, 10, 120, '2024-03-01');\n\
             INSERT INTO invoices VALUES (101, 10, 80, '2024-04-01');\n\
             INSERT INTO invoices VALUES (102, 11, 9, '2024-05-01');\n\
             INSERT INTO invoices VALUES (103, 12, 1, '2024-06-01')",
        )
        .await;
    let mut config = ConfigBuilder::new(&crm);
    config
        .databases
        .push(DatabaseEntry::new("books", &books.url));
    config.sections.push(
        "[[hold]]\nname = \"dispute-7\"\nreason = \"Dispute 2026/7\"\ndatabase = \"main\"\ntable = \"prospects\"\nfilter = \"name = 'Held'\"\n\n\
         [[subject]]\nname = \"crm-prospects\"\ndatabase = \"main\"\ntable = \"prospects\"\nkey = \"id\"\nidentify = { email = \"email\" }\nerase = \"delete\"\n\n\
         [[subject]]\nname = \"crm-notes\"\ndatabase = \"main\"\ntable = \"notes\"\nkey = \"id\"\nvia = { subject = \"crm-prospects\", foreign_key = \"prospect_id\" }\nerase = \"delete\"\n\n\
         [[subject]]\nname = \"crm-customers\"\ndatabase = \"main\"\ntable = \"customers\"\nkey = \"id\"\nidentify = { email = \"email\", phone = \"phone\" }\nerase = \"anonymize\"\nanonymize = { name = \"null\", email = \"null\", phone = \"null\" }\n\n\
         [[subject]]\nname = \"books-invoices\"\ndatabase = \"books\"\ntable = \"invoices\"\nkey = \"id\"\nvia = { subject = \"crm-customers\", foreign_key = \"customer_id\" }\nerase = \"keep\"\nkeep_reason = \"Bookkeeping law: invoices are kept 7 years\"\n\n"
            .to_owned(),
    );
    let mut invoices = RuleSpec::delete("old-invoices", "invoices", "issued_on")
        .after("7 years")
        .legal_basis("legal obligation (art. 6(1)(c) GDPR)");
    invoices.database = "books".into();
    let path = config.rule(invoices).write(&crm);
    Some((crm, books, path))
}

fn new_erasure(config: &Path) -> String {
    let r = run(
        config,
        &["request", "new", "--kind", "erasure", "--format", "json"],
    );
    r.assert_code(0);
    r.json()["id"].as_str().expect("id").to_owned()
}

fn erase(config: &Path, id: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "request",
        "erase",
        id,
        "--match",
        "email= Jane.Doe@Example.org ",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    run(config, &args)
}

/// The audit entries of the trail, as JSON.
fn trail(config: &Path) -> Vec<serde_json::Value> {
    let r = run(config, &["audit", "export", "--format", "jsonl"]);
    r.assert_code(0);
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect()
}

fn ids(rows: &[Vec<Option<String>>]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| r.first().cloned().flatten())
        .collect()
}

/// `(subject, action, count)` of an erasure's JSON.
fn erased(json: &serde_json::Value) -> Vec<(String, String, u64)> {
    json["erased"]
        .as_array()
        .expect("erased")
        .iter()
        .map(|e| {
            (
                e["subject"].as_str().unwrap_or_default().to_owned(),
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["count"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

async fn erases_exactly_the_person(crm_kind: Kind, books_kind: Kind) {
    let Some((crm, books, config)) = fixture(crm_kind, books_kind).await else {
        return;
    };
    let id = new_erasure(&config);
    let mut cmd = command(
        &config,
        &[
            "request",
            "erase",
            &id,
            "--match",
            "email= Jane.Doe@Example.org ",
            "--format",
            "json",
        ],
    );
    cmd.env("RUST_LOG", "debug");
    let first = Run::from_output(
        &config,
        &["request", "erase", &id],
        cmd.output().expect("run"),
    );
    first.assert_code(0);
    let json = first.json();
    assert_eq!(json["request"], id.as_str());
    assert_eq!(
        erased(&json),
        [
            ("crm-notes".to_owned(), "delete".to_owned(), 3),
            ("crm-prospects".to_owned(), "delete".to_owned(), 2),
            ("crm-customers".to_owned(), "anonymize".to_owned(), 2),
        ],
        "children (notes) before their parents: {first}"
    );
    let kept = json["kept"].as_array().expect("kept");
    let held = kept
        .iter()
        .find(|k| k["subject"] == "crm-prospects")
        .expect("the held prospect is listed as kept");
    assert_eq!(held["count"], 1);
    assert!(
        held["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("dispute-7"),
        "{held}"
    );
    let invoices = kept
        .iter()
        .find(|k| k["subject"] == "books-invoices")
        .expect("invoices kept");
    assert_eq!(invoices["count"], 3);
    assert!(invoices["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("Bookkeeping law"));
    assert_eq!(
        invoices["until"], "2031-05-01",
        "the newest invoice's date + 7 years"
    );

    // Exactly those records.
    assert_eq!(
        ids(&crm.rows("prospects", &["id"]).await),
        ["2", "4", "5", "6"]
    );
    assert_eq!(ids(&crm.rows("notes", &["id"]).await), ["53"]);
    let customers = crm
        .rows("customers", &["id", "name", "email", "phone"])
        .await;
    for c in &customers {
        let anonymized = c[1].is_none() && c[2].is_none() && c[3].is_none();
        let id = c[0].clone().unwrap_or_default();
        assert_eq!(anonymized, id != "12", "customer {id}: {c:?}");
    }
    assert_eq!(
        ids(&books.rows("invoices", &["id"]).await),
        ["100", "101", "102", "103"]
    );

    // One entry per record, each with the request's id and art. 17; rules' entries null.
    let entries = trail(&config);
    let mut keys = BTreeSet::new();
    for e in &entries {
        assert_eq!(e["request"], id.as_str(), "{e}");
        assert_eq!(e["legal_basis"], "GDPR art. 17", "{e}");
        assert!(
            keys.insert((
                e["rule"].as_str().unwrap_or_default().to_owned(),
                e["key"].as_str().unwrap_or_default().to_owned()
            )),
            "two entries for {e}"
        );
    }
    let want: BTreeSet<(String, String)> = [
        ("crm-notes", "50"),
        ("crm-notes", "51"),
        ("crm-notes", "52"),
        ("crm-prospects", "1"),
        ("crm-prospects", "3"),
        ("crm-customers", "10"),
        ("crm-customers", "11"),
    ]
    .iter()
    .map(|(s, k)| ((*s).to_owned(), (*k).to_owned()))
    .collect();
    assert_eq!(keys, want);
    run(&config, &["audit", "verify"]).assert_code(0);

    // Again: nothing left to act on.
    let second = erase(&config, &id, &[]);
    second.assert_code(0);
    assert!(
        erased(&second.json()).iter().all(|(_, _, n)| *n == 0),
        "{second}"
    );
    assert_eq!(
        trail(&config).len(),
        7,
        "no entry for a record not acted on"
    );
    // A retention pass writes entries with a null request.
    run(&config, &["run", "--once"]).assert_code(0);
    run(&config, &["audit", "verify"]).assert_code(0);

    // The identity is nowhere: output, debug logs, state directory, trail.
    let mut everything = String::new();
    for out in [&first.stdout, &first.stderr, &second.stdout, &second.stderr] {
        everything.push_str(out);
    }
    everything.push_str(&run(&config, &["audit", "export", "--format", "csv"]).stdout);
    // The state database, its WAL, the key, and every report (`reports/`).
    let mut dirs = vec![crm.state_dir()];
    let mut files = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).expect("state dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files += 1;
                everything.push_str(&String::from_utf8_lossy(
                    &std::fs::read(path).expect("read"),
                ));
            }
        }
    }
    assert!(
        crm.state_dir().join("reports").is_dir() && files > 3,
        "the reports were written and read"
    );
    let everything = everything.to_lowercase();
    assert!(
        first.stderr.contains("DEBUG") || first.stderr.contains("debug"),
        "debug logs were on: {first}"
    );
    for secret in [JANE, "jane.doe", "470 00 00 01"] {
        assert!(
            !everything.contains(secret),
            "{secret} was written somewhere"
        );
    }
}

#[tokio::test]
async fn erase_on_sqlite_with_books_in_postgres() {
    erases_exactly_the_person(Kind::Sqlite, Kind::Postgres).await;
}

#[tokio::test]
async fn erase_on_mariadb_with_books_in_sqlite() {
    erases_exactly_the_person(Kind::MySql, Kind::Sqlite).await;
}

#[tokio::test]
async fn erase_on_postgres_with_books_in_mariadb() {
    erases_exactly_the_person(Kind::Postgres, Kind::MySql).await;
}

#[tokio::test]
async fn erase_refuses_access_requests_other_people_and_counts_past_the_brake() {
    let Some((crm, _books, config)) = fixture(Kind::Sqlite, Kind::Sqlite).await else {
        return;
    };
    let access = run(
        &config,
        &["request", "new", "--kind", "access", "--format", "json"],
    );
    access.assert_code(0);
    let access = access.json()["id"].as_str().expect("id").to_owned();
    erase(&config, &access, &[]).assert_code(2);
    let id = new_erasure(&config);
    // Bind the request to Jane, then try someone else under it.
    run(
        &config,
        &[
            "request",
            "find",
            &id,
            "--match",
            "email=jane.doe@example.org",
        ],
    )
    .assert_code(0);
    let other = run(
        &config,
        &[
            "request",
            "erase",
            &id,
            "--match",
            "email=jane.doe@example.org.uk",
        ],
    );
    other.assert_code(1);
    assert_eq!(ids(&crm.rows("prospects", &["id"]).await).len(), 6);
    // Many records: the brake wants the exact count.
    let many: Vec<String> = (1000..1150)
        .map(|i| format!("({i}, 'Dup', 'jane.doe@example.org', NULL)"))
        .collect();
    crm.exec(&format!("INSERT INTO prospects VALUES {}", many.join(", ")))
        .await;
    // 152 prospects (not the held one), 3 notes, 2 customers.
    let braked = erase(&config, &id, &[]);
    braked.assert_code(1);
    assert!(braked.stderr.contains("--confirm 157"), "{braked}");
    erase(&config, &id, &["--confirm", "156"]).assert_code(1);
    assert_eq!(crm.count("SELECT COUNT(*) FROM prospects").await, 156);
    assert_eq!(crm.count("SELECT COUNT(*) FROM notes").await, 4);
    let done = erase(&config, &id, &["--confirm", "157"]);
    done.assert_code(0);
    assert_eq!(
        ids(&crm.rows("prospects", &["id"]).await),
        ["2", "4", "5", "6"]
    );
    erase(&config, "REQ-1999-0001", &[]).assert_code(2);
}

/// Kills `request erase` with SIGKILL again and again; the next erase settles every batch
/// in doubt, and in the end every record of the person is gone with exactly one entry.
async fn killed_mid_erasure(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let t = text_type(kind);
    db.exec(&format!(
        "CREATE TABLE prospects (id INTEGER PRIMARY KEY, name {t}, email {t})"
    ))
    .await;
    const ROWS: i64 = 9000;
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                let email = if i % 10 == 0 {
                    "someone@else.org"
                } else {
                    JANE
                };
                format!("({i}, 'n{i}', '{email}')")
            })
            .collect();
        db.exec(&format!("INSERT INTO prospects VALUES {}", rows.join(", ")))
            .await;
    }
    let config = ConfigBuilder::new(&db)
        .section(
            "[[subject]]\nname = \"prospects\"\ndatabase = \"main\"\ntable = \"prospects\"\nkey = \"id\"\nidentify = { email = \"email\" }\nerase = \"delete\"\n\n",
        )
        .write(&db);
    let id = new_erasure(&config);
    let person: BTreeSet<String> = (1..=ROWS)
        .filter(|i| i % 10 != 0)
        .map(|i| i.to_string())
        .collect();
    let mut rng = 0x2545_f491_u64;
    let mut kills = 0;
    for _ in 0..8 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let found = run(
            &config,
            &[
                "request",
                "find",
                &id,
                "--match",
                &format!("email={JANE}"),
                "--format",
                "json",
            ],
        );
        found.assert_code(0);
        let left = found.json()["subjects"][0]["count"]
            .as_u64()
            .unwrap_or_default();
        if left == 0 {
            break;
        }
        let confirm = left.to_string();
        let mut child = command(
            &config,
            &[
                "request",
                "erase",
                &id,
                "--match",
                &format!("email={JANE}"),
                "--confirm",
                &confirm,
            ],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
        // Killed once one to three batches of 500 are gone (the erasure is fast: a fixed
        // sleep let it finish before the kill), at a random moment after that.
        let before = db.count("SELECT COUNT(*) FROM prospects").await;
        let wanted = before - 500 * (1 + (rng % 3) as i64);
        let started = std::time::Instant::now();
        while child.try_wait().expect("wait").is_none()
            && started.elapsed() < Duration::from_secs(10)
            && db.count("SELECT COUNT(*) FROM prospects").await > wanted
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_micros(rng % 3000)).await;
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
    }
    // Finish: whatever is left, confirmed.
    let found = run(
        &config,
        &[
            "request",
            "find",
            &id,
            "--match",
            &format!("email={JANE}"),
            "--format",
            "json",
        ],
    );
    let left = found.json()["subjects"][0]["count"]
        .as_u64()
        .unwrap_or_default();
    let last = run(
        &config,
        &[
            "request",
            "erase",
            &id,
            "--match",
            &format!("email={JANE}"),
            "--confirm",
            &left.to_string(),
        ],
    );
    last.assert_code(0);
    assert!(
        kills >= 2,
        "killed mid-erasure only {kills} times; the test proves nothing"
    );
    let still: BTreeSet<String> = ids(&db.rows("prospects", &["id"]).await)
        .into_iter()
        .collect();
    assert!(
        person.is_disjoint(&still),
        "every record of the person is gone"
    );
    assert_eq!(still.len() as i64, ROWS / 10);
    let entries = trail(&config);
    let mut seen = BTreeSet::new();
    for e in &entries {
        assert_eq!(e["request"], id.as_str());
        let key = e["key"].as_str().unwrap_or_default().to_owned();
        assert!(person.contains(&key), "an entry for {key}, not hers");
        assert!(seen.insert(key.clone()), "two entries for {key}");
    }
    assert_eq!(seen, person, "one entry per record erased, none missing");
    run(&config, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn sigkill_mid_erasure_is_settled_on_sqlite() {
    killed_mid_erasure(Kind::Sqlite).await;
}

#[tokio::test]
async fn sigkill_mid_erasure_is_settled_on_postgres() {
    killed_mid_erasure(Kind::Postgres).await;
}

#[tokio::test]
async fn sigkill_mid_erasure_is_settled_on_mariadb() {
    killed_mid_erasure(Kind::MySql).await;
}

#[tokio::test]
async fn a_via_key_of_another_type_is_refused_before_anyone_is_looked_up() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    // Jane's customer key is the text '007', Bob's is '7'; invoices hold integers, so
    // comparing them would take Bob's invoice for Jane's.
    db.exec(
        "CREATE TABLE customers (id TEXT PRIMARY KEY NOT NULL, email TEXT);\n\
         INSERT INTO customers VALUES ('007', 'jane@example.org'), ('7', 'bob@example.org');\n\
         CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER);\n\
         INSERT INTO invoices VALUES (100, 7)",
    )
    .await;
    let config = ConfigBuilder::new(&db)
        .section(
            "[[subject]]\nname = \"customers\"\ndatabase = \"main\"\ntable = \"customers\"\nkey = \"id\"\nidentify = { email = \"email\" }\nerase = \"delete\"\n\n\
             [[subject]]\nname = \"invoices\"\ndatabase = \"main\"\ntable = \"invoices\"\nkey = \"id\"\nvia = { subject = \"customers\", foreign_key = \"customer_id\" }\nerase = \"delete\"\n\n",
        )
        .write(&db);
    let id = new_erasure(&config);
    for verb in ["find", "erase"] {
        let r = run(
            &config,
            &["request", verb, &id, "--match", "email=jane@example.org"],
        );
        r.assert_code(78);
        assert!(r.stderr.contains("via.foreign_key"), "{r}");
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM invoices").await, 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM customers").await, 2);
}

/// Rows that still refer to the person's records keep them: another customer she referred
/// (a key of the table into itself, which would cascade into him), and a young order under
/// a rule's `keep_while` (whose cutoff is a bound value: checked with PostgreSQL's and
/// SQLite's numbered placeholders too).
async fn references_keep_records(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let t = text_type(kind);
    let today = chrono::Utc::now().date_naive();
    db.exec(&format!(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email {t}, referred_by INTEGER REFERENCES customers (id) ON DELETE CASCADE, closed_on DATE);\n\
         INSERT INTO customers VALUES (1, 'jane.doe@example.org', NULL, '2001-01-01');\n\
         INSERT INTO customers VALUES (2, 'jane.doe@example.org', NULL, '2001-01-01');\n\
         INSERT INTO customers VALUES (3, 'jane.doe@example.org', NULL, '2001-01-01');\n\
         INSERT INTO customers VALUES (9, 'bob@example.org', 1, '2001-01-01');\n\
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, placed_on DATE);\n\
         INSERT INTO orders VALUES (50, 2, '{today}')"
    ))
    .await;
    if kind == Kind::MySql {
        // MariaDB ignores inline REFERENCES; declare the key as a table constraint.
        db.exec("ALTER TABLE customers ADD CONSTRAINT fk_ref FOREIGN KEY (referred_by) REFERENCES customers (id) ON DELETE CASCADE").await;
    }
    let config = ConfigBuilder::new(&db)
        .section(
            "[[subject]]\nname = \"customers\"\ndatabase = \"main\"\ntable = \"customers\"\nkey = \"id\"\nidentify = { email = \"email\" }\nerase = \"delete\"\n\n",
        )
        .rule(
            RuleSpec::delete("closed-customers", "customers", "closed_on")
                .after("100 years")
                .raw(
                    "keep_while",
                    "[{ table = \"orders\", foreign_key = \"customer_id\", since = \"placed_on\", after = \"7 years\" }]",
                ),
        )
        .write(&db);
    let id = new_erasure(&config);
    let r = erase(&config, &id, &[]);
    r.assert_code(0);
    let json = r.json();
    assert_eq!(
        erased(&json),
        [("customers".to_owned(), "delete".to_owned(), 1)],
        "only customer 3 goes: {r}"
    );
    let reasons: Vec<String> = json["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .map(|k| k["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("orders"))
            && reasons.iter().any(|r| r.contains("customers")),
        "kept for the young order and for the customer she referred: {reasons:?}"
    );
    assert_eq!(ids(&db.rows("customers", &["id"]).await), ["1", "2", "9"]);
    run(&config, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn references_keep_records_on_sqlite() {
    references_keep_records(Kind::Sqlite).await;
}

#[tokio::test]
async fn references_keep_records_on_postgres() {
    references_keep_records(Kind::Postgres).await;
}

#[tokio::test]
async fn references_keep_records_on_mariadb() {
    references_keep_records(Kind::MySql).await;
}

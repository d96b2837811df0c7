//! `request answer`: the letter to the person, in text and HTML, English and Dutch — what
//! was found (access), erased and kept with reason and end date (erasure), the complaint
//! paragraph, and never the person's identity; refused until there is something to say;
//! and its HTML renders in headless Chromium.
//!
//! Until `request erase` records its outcomes, the tests write what a search found and what
//! an erasure kept through the state API, and the erased records as audit entries under the
//! request (an intent confirmed into the trail, as an erasure batch would).

use crate::helpers::{run, ConfigBuilder, Kind, RuleSpec, TestDb};
use chrono::Datelike;
use retentiond::state::requests::{OutcomeRow, FOUND, KEPT};
use retentiond::state::Intent;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The person of these tests: her e-mail address and phone number must never reach a letter.
const JANE: &str = "jane.doe@example.org";
const JANE_PHONE: &str = "+32 470 00 00 01";

/// The reason the bookkeeping subject gives, and a legal hold's name.
const BOOKKEEPING: &str = "Bookkeeping law: invoices are kept 7 years";
const HOLD: &str = "labour-inspection";

/// Everything in a letter that the operator typed (config, reference, reasons): the only
/// text a Dutch letter may hold in English.
const OPERATOR_TEXT: &[&str] = &[
    BOOKKEEPING,
    HOLD,
    "Serving our customers",
    "Invoices for the tax office",
    "art. 6(1)(b)",
    "art. 6(1)(c)",
    "crm-prospects",
    "crm-customers",
    "books-invoices",
    "mail-newsletter",
    "main.prospects",
    "main.customers",
    "main.invoices",
    "T-17 <urgent> & \"soon\"",
    "many requests at once",
];

/// English words of the letter that a Dutch reader must not meet.
const ENGLISH: &[&str] = &[
    "record",
    "records",
    "dear",
    "regards",
    "purpose",
    "legal",
    "basis",
    "how",
    "long",
    "deleted",
    "anonymous",
    "category",
    "categories",
    "received",
    "reference",
    "complain",
    "until",
    "gdpr",
    "erase",
    "erased",
    "what",
    "your",
    "you",
    "request",
    "we",
    "the",
    "and",
    "stored",
    "kept",
    "why",
    "our",
    "data",
    "answer",
    "due",
    "date",
    "rights",
];

/// A shop in one SQLite file: prospects and newsletter readers found by e-mail, customers
/// by e-mail and phone, invoices through the customers and kept by law; a rule on the
/// customers and one on the invoices. Reports (and so letters) in `lang`.
async fn shop(lang: &str) -> (TestDb, PathBuf) {
    let db = TestDb::new(Kind::Sqlite).await.expect("sqlite");
    db.exec(&format!(
        "CREATE TABLE prospects (id INTEGER PRIMARY KEY, name TEXT, email TEXT);\n\
         INSERT INTO prospects VALUES (1, 'Jane Doe', '{JANE}');\n\
         INSERT INTO prospects VALUES (3, 'J. Doe', '{JANE}');\n\
         CREATE TABLE newsletter (id INTEGER PRIMARY KEY, email TEXT);\n\
         CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, phone TEXT, closed_at DATE);\n\
         INSERT INTO customers VALUES (10, 'Jane Doe', '{JANE}', '{JANE_PHONE}', NULL);\n\
         INSERT INTO customers VALUES (11, 'Jane Doe', '{JANE}', '{JANE_PHONE}', NULL);\n\
         CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER, amount TEXT, issued_on DATE);\n\
         INSERT INTO invoices VALUES (100, 10, '120.00', '2024-03-01');\n\
         INSERT INTO invoices VALUES (101, 11, '80.50', '2024-04-01')"
    ))
    .await;
    let mut config = ConfigBuilder::new(&db);
    config.report_language = Some(lang.into());
    config.sections.push(format!(
        "[[subject]]\nname = \"crm-prospects\"\ndatabase = \"main\"\ntable = \"prospects\"\nkey = \"id\"\nidentify = {{ email = \"email\" }}\nerase = \"delete\"\n\n\
         [[subject]]\nname = \"mail-newsletter\"\ndatabase = \"main\"\ntable = \"newsletter\"\nkey = \"id\"\nidentify = {{ email = \"email\" }}\nerase = \"delete\"\n\n\
         [[subject]]\nname = \"crm-customers\"\ndatabase = \"main\"\ntable = \"customers\"\nkey = \"id\"\nidentify = {{ email = \"email\", phone = \"phone\" }}\nerase = \"anonymize\"\nanonymize = {{ name = \"null\", email = \"null\", phone = \"null\" }}\n\n\
         [[subject]]\nname = \"books-invoices\"\ndatabase = \"main\"\ntable = \"invoices\"\nkey = \"id\"\nvia = {{ subject = \"crm-customers\", foreign_key = \"customer_id\" }}\nerase = \"keep\"\nkeep_reason = \"{BOOKKEEPING}\"\n\n"
    ));
    let mut customers = RuleSpec::delete("closed-customers", "customers", "closed_at")
        .after("2 years")
        .legal_basis("art. 6(1)(b)");
    customers.description = Some("Serving our customers".into());
    let mut invoices = RuleSpec::delete("old-invoices", "invoices", "issued_on")
        .after("7 years")
        .legal_basis("art. 6(1)(c)");
    invoices.description = Some("Invoices for the tax office".into());
    let path = config.rule(customers).rule(invoices).write(&db);
    (db, path)
}

/// Registers a request for Jane received on 31 October 2026 (due 30 November) and looks
/// her up, as an operator would; returns its id.
fn request_for_jane(config: &Path, kind: &str, reference: Option<&str>) -> String {
    let mut args = vec![
        "request",
        "new",
        "--kind",
        kind,
        "--received",
        "2026-10-31",
        "--match",
        "email=jane.doe@example.org",
        "--format",
        "json",
    ];
    if let Some(r) = reference {
        args.extend(["--reference", r]);
    }
    let new = run(config, &args);
    new.assert_code(0);
    let id = new.json()["id"].as_str().expect("id").to_owned();
    run(
        config,
        &[
            "request",
            "find",
            &id,
            "--match",
            "email=jane.doe@example.org",
        ],
    )
    .assert_code(0);
    id
}

fn outcome(subject: &str, reason: &str, count: i64, until: Option<&str>) -> OutcomeRow {
    OutcomeRow {
        subject: subject.into(),
        step: String::new(),
        reason: reason.into(),
        count,
        until: until.map(str::to_owned),
        at: String::new(),
    }
}

/// Records what the latest search found, per subject (as `find` and `erase` do).
async fn record_found(db: &TestDb, id: &str, found: &[(&str, i64)]) {
    let rows: Vec<OutcomeRow> = found
        .iter()
        .map(|(s, n)| outcome(s, "", *n, None))
        .collect();
    let state = db.open_state().await;
    state
        .record_outcomes(id, FOUND, &rows)
        .await
        .expect("found");
    state.close().await;
}

/// What an erasure of Jane does: her prospects deleted and one customer record made
/// anonymous (audit entries under the request), one customer record held and her
/// invoices kept by law (recorded as kept).
async fn erase_jane(db: &TestDb, id: &str) {
    let state = db.open_state().await;
    // Intents and appends are written under the pass lock (on PostgreSQL, through its session).
    let _lock = state.lock_pass().await.expect("pass lock");
    let batches = [
        ("crm-prospects", "prospects", "delete", vec!["1", "3"]),
        ("crm-customers", "customers", "anonymize", vec!["10"]),
    ];
    for (i, (subject, table, action, keys)) in batches.into_iter().enumerate() {
        let intent = Intent {
            batch_id: format!("20261129T120000Z-answer-{i}"),
            run_id: "20261129T120000Z-answer".into(),
            rule: subject.into(),
            database: "main".into(),
            table: table.into(),
            action: action.into(),
            legal_basis: "art. 17 GDPR".into(),
            keys: keys.into_iter().map(str::to_owned).collect(),
            created_at: retentiond::state::now_text(),
            request: Some(id.to_owned()),
            children: Vec::new(),
        };
        state.write_intent(&intent).await.expect("intent");
        retentiond::engine::journal::confirm(&state, &intent)
            .await
            .expect("audit entries");
    }
    let kept = [
        // As `request erase` records them (`engine::erase::Because::code`).
        outcome(
            "books-invoices",
            &format!("keep|{BOOKKEEPING}"),
            2,
            Some("2031-12-31"),
        ),
        outcome("crm-customers", &format!("hold|{HOLD}"), 1, None),
    ];
    state.record_outcomes(id, KEPT, &kept).await.expect("kept");
    state.close().await;
}

/// `request answer ID` with `args`, which must succeed.
fn answer(config: &Path, id: &str, args: &[&str]) -> String {
    let mut all = vec!["request", "answer", id];
    all.extend_from_slice(args);
    let r = run(config, &all);
    r.assert_code(0);
    for secret in [JANE, "jane", "example.org", "470 00 00 01"] {
        assert!(
            !r.stdout.to_lowercase().contains(secret) && !r.stderr.to_lowercase().contains(secret),
            "the letter holds the person's identity ({secret}): {r}"
        );
    }
    r.stdout
}

/// `letter` holds each of `wanted`, wherever the text letter's lines happen to wrap.
#[track_caller]
fn assert_has(letter: &str, wanted: &[&str]) {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = squash(letter);
    for w in wanted {
        assert!(
            text.contains(&squash(w)),
            "the letter lacks {w:?}:\n{letter}"
        );
    }
}

/// A text letter is lines for an e-mail: none wider than 72 columns.
#[track_caller]
fn assert_mail_lines(letter: &str) {
    for line in letter.lines() {
        assert!(
            line.chars().count() <= 72,
            "a line wider than 72 columns: {line:?}\n{letter}"
        );
    }
}

/// A Dutch letter holds no English word of its own: only what the operator typed.
#[track_caller]
fn assert_no_english(letter: &str) {
    let mut text = letter
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    for typed in OPERATOR_TEXT {
        text = text.replace(&typed.to_lowercase(), " ");
    }
    for word in text.split(|c: char| !c.is_alphabetic()) {
        assert!(
            !ENGLISH.contains(&word),
            "the Dutch letter says {word:?}:\n{letter}"
        );
    }
}

/// Today in Brussels (the config's timezone) as the letter writes it.
fn today(lang: &str) -> String {
    const NL: [&str; 12] = [
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ];
    let d = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Brussels)
        .date_naive();
    match lang {
        "nl" => format!("{} {} {}", d.day(), NL[d.month0() as usize], d.year()),
        _ => d.format("%-d %B %Y").to_string(),
    }
}

#[tokio::test]
async fn an_access_letter_lists_what_was_found_with_purposes_and_rights() {
    let (db, config) = shop("en").await;
    let id = request_for_jane(&config, "access", Some("T-17"));
    record_found(
        &db,
        &id,
        &[
            ("crm-prospects", 2),
            ("mail-newsletter", 0),
            ("crm-customers", 2),
            ("books-invoices", 2),
        ],
    )
    .await;

    let en = answer(&config, &id, &["--format", "text", "--lang", "en"]);
    assert_has(
        &en,
        &[
            "YOUR REQUEST ABOUT YOUR PERSONAL DATA",
            &format!("Our reference: {id}"),
            "Reference: T-17",
            "Request: Access to your personal data (article 15 GDPR)",
            "Received on: 31 October 2026",
            &format!("Date of this answer: {}", today("en")),
            "Answer due by: 30 November 2026",
            "found 6 records about you, in 3 categories:",
            "* crm-prospects: 2 records\n  Stored in: main.prospects\n  How long we keep them: No fixed period",
            "* crm-customers: 2 records",
            "Purpose: Serving our customers\n  Legal basis: art. 6(1)(b)\n  How long we keep them: 2 years, then deleted",
            "How long we keep them: 7 years, then deleted",
            &format!("We are required to keep these: {BOOKKEEPING}"),
            "correct them (article 16)",
            "object to the way we use them (article 21)",
            "Autoriteit Persoonsgegevens (autoriteitpersoonsgegevens.nl)",
            "Gegevensbeschermingsautoriteit\n(gegevensbeschermingsautoriteit.be)",
        ],
    );
    assert!(
        !en.contains("mail-newsletter"),
        "nothing was found there:\n{en}"
    );
    assert!(
        !en.contains("WHAT WE ERASED"),
        "an access letter erases nothing:\n{en}"
    );
    assert_mail_lines(&en);

    let nl = answer(&config, &id, &["--format", "text", "--lang", "nl"]);
    assert_has(
        &nl,
        &[
            "UW VERZOEK OVER UW PERSOONSGEGEVENS",
            &format!("Ons kenmerk: {id}"),
            "Verzoek: Inzage in uw persoonsgegevens (artikel 15 AVG)",
            "Ontvangen op: 31 oktober 2026",
            &format!("Datum van dit antwoord: {}", today("nl")),
            "Uiterste antwoorddatum: 30 november 2026",
            "vonden 6 vermeldingen over u, in 3 categorieën:",
            "* crm-prospects: 2 vermeldingen",
            "Hoe lang wij ze bewaren: Geen vaste termijn",
            "Doel: Serving our customers\n  Rechtsgrond: art. 6(1)(b)\n  Hoe lang wij ze bewaren: 2 jaar, daarna verwijderd",
            "7 jaar, daarna verwijderd",
            "Wij zijn verplicht deze te bewaren: Bookkeeping law",
            "te verbeteren (artikel 16)",
            "Autoriteit Persoonsgegevens",
            "Gegevensbeschermingsautoriteit",
        ],
    );
    assert_no_english(&nl);
    assert_mail_lines(&nl);

    let html = answer(&config, &id, &["--format", "html", "--lang", "en"]);
    assert_has(
        &html,
        &[
            "<html lang=\"en\">",
            "<h1>Your request about your personal data</h1>",
            "<div class=\"category\">crm-customers</div>",
            "<td class=\"n\">2</td>",
            "2 years, then deleted",
            "<h2>Your rights</h2>",
            "autoriteitpersoonsgegevens.nl",
        ],
    );
    let html = answer(&config, &id, &["--format", "html", "--lang", "nl"]);
    assert_has(
        &html,
        &[
            "<html lang=\"nl\">",
            "<h1>Uw verzoek over uw persoonsgegevens</h1>",
            "<h2>Wat wij vonden</h2>",
            "2 jaar, daarna verwijderd",
            "<h2>Uw rechten</h2>",
            "<h2>Niet tevreden?</h2>",
        ],
    );
}

#[tokio::test]
async fn an_erasure_letter_says_what_was_erased_and_what_was_kept_why_and_until_when() {
    let (db, config) = shop("en").await;
    let reference = "T-17 <urgent> & \"soon\"";
    let id = request_for_jane(&config, "erasure", Some(reference));
    run(
        &config,
        &[
            "request",
            "extend",
            &id,
            "--reason",
            "many requests at once",
        ],
    )
    .assert_code(0);
    record_found(
        &db,
        &id,
        &[
            ("crm-prospects", 2),
            ("crm-customers", 2),
            ("books-invoices", 2),
        ],
    )
    .await;
    erase_jane(&db, &id).await;

    let en = answer(&config, &id, &["--format", "text"]);
    assert_has(
        &en,
        &[
            &format!("Reference: {reference}"),
            "Request: Erasure of your personal data (article 17 GDPR)",
            "Answer due by: 30 January 2027",
            "for this reason: many requests at once",
            "WHAT WE ERASED\n\nWe erased 3 records:",
            "* crm-prospects: 2 records deleted",
            "* crm-customers: 1 record made anonymous",
            "Made anonymous means:",
            "WHAT WE KEPT, AND WHY",
            "* books-invoices: 2 records\n  Stored in: main.invoices\n  Why: Bookkeeping law: invoices are kept 7 years\n  Until: 31 December 2031 at the latest",
            "* crm-customers: 1 record\n  Stored in: main.customers\n  Why: A legal hold (labour-inspection) forbids us to erase these data while it lasts.\n  Until: No end date is known yet",
            &format!("mention our reference {id}"),
            "autoriteitpersoonsgegevens.nl",
        ],
    );
    assert!(!en.contains("YOUR RIGHTS"), "{en}");
    assert_mail_lines(&en);

    let nl = answer(&config, &id, &["--format", "text", "--lang", "nl"]);
    assert_has(
        &nl,
        &[
            "Verzoek: Wissen van uw persoonsgegevens (artikel 17 AVG)",
            "Uiterste antwoorddatum: 30 januari 2027",
            "WAT WIJ HEBBEN GEWIST\n\nWij hebben 3 vermeldingen gewist:",
            "* crm-prospects: 2 vermeldingen verwijderd",
            "* crm-customers: 1 vermelding geanonimiseerd",
            "Geanonimiseerd betekent:",
            "WAT WIJ HEBBEN BEWAARD, EN WAAROM",
            "  Waarom: Bookkeeping law: invoices are kept 7 years\n  Tot: uiterlijk 31 december 2031",
            "Tot: Nog geen einddatum bekend",
            "Een juridische blokkering (labour-inspection) verbiedt ons",
            "Autoriteit Persoonsgegevens",
        ],
    );
    assert_no_english(&nl);
    assert_mail_lines(&nl);

    // HTML: everything the operator typed is escaped.
    for lang in ["en", "nl"] {
        let html = answer(&config, &id, &["--format", "html", "--lang", lang]);
        assert_has(&html, &["T-17 &lt;urgent&gt; &amp; &quot;soon&quot;"]);
        assert!(!html.contains("<urgent>"), "unescaped:\n{html}");
    }
    let html = answer(&config, &id, &["--format", "html", "--lang", "nl"]);
    assert_has(
        &html,
        &[
            "<td>verwijderd</td>",
            "<td>geanonimiseerd</td>",
            "<td>uiterlijk 31 december 2031</td>",
        ],
    );
}

#[tokio::test]
async fn an_erasure_letter_for_a_person_not_found_says_so_in_the_configs_language() {
    let (db, config) = shop("nl").await;
    let id = request_for_jane(&config, "erasure", None);
    record_found(&db, &id, &[("crm-prospects", 0), ("crm-customers", 0)]).await;
    // No --lang: the config's report language.
    let nl = answer(&config, &id, &[]);
    assert_has(
        &nl,
        &[
            "vonden geen gegevens over u. Er was dus niets te wissen.",
            "Autoriteit Persoonsgegevens",
        ],
    );
    assert!(!nl.contains("GEWIST") && !nl.contains("BEWAARD"), "{nl}");
    assert!(!nl.contains("Referentie"), "no reference was given:\n{nl}");
    assert_no_english(&nl);
    let en = answer(&config, &id, &["--lang", "en", "--format", "html"]);
    assert_has(
        &en,
        &["and found no data about you. There was therefore nothing to erase."],
    );
}

#[tokio::test]
async fn a_letter_is_refused_until_there_is_something_true_to_say() {
    let (db, config) = shop("en").await;
    run(&config, &["request", "answer", "REQ-1999-0001"]).assert_code(2);

    let new = run(
        &config,
        &["request", "new", "--kind", "access", "--format", "json"],
    );
    new.assert_code(0);
    let id = new.json()["id"].as_str().expect("id").to_owned();
    let r = run(&config, &["request", "answer", &id]);
    r.assert_code(1);
    assert!(
        r.stderr
            .contains(&format!("run `retentiond request find {id} --match")),
        "{r}"
    );
    assert!(r.stdout.is_empty(), "no letter: {r}");

    // An erasure request whose person was found, but not yet erased.
    let id = request_for_jane(&config, "erasure", None);
    record_found(&db, &id, &[("crm-prospects", 2)]).await;
    let r = run(&config, &["request", "answer", &id, "--format", "html"]);
    r.assert_code(1);
    assert!(
        r.stderr
            .contains(&format!("run `retentiond request erase {id} --match")),
        "{r}"
    );
    assert!(r.stdout.is_empty(), "no letter: {r}");
}

/// Chromium, or `None` (locally, loudly) when it is not installed.
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but chromium is not installed (.ci/run installs it)"
        );
        eprintln!("\n!!!!! SKIPPING: chromium not installed (apt-get install chromium) !!!!!\n");
    }
    found
}

/// The DOM headless Chromium builds from the HTML file `page`.
fn rendered(browser: &Path, page: &Path, profile: &Path) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=900,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !dom.is_empty(),
        "chromium failed\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

#[tokio::test]
async fn the_html_letter_renders_in_headless_chromium_in_both_languages() {
    let Some(browser) = chromium() else { return };
    let (db, config) = shop("en").await;
    let id = request_for_jane(&config, "erasure", Some("T-17 <urgent> & \"soon\""));
    record_found(&db, &id, &[("crm-prospects", 2), ("crm-customers", 2)]).await;
    erase_jane(&db, &id).await;
    let expect = [
        (
            "en",
            vec![
                "<h1>Your request about your personal data</h1>",
                "<h2>What we erased</h2>",
                "<h2>What we kept, and why</h2>",
                "<td>31 December 2031 at the latest</td>",
                "<td>made anonymous</td>",
                "T-17 &lt;urgent&gt; &amp; \"soon\"",
                "gegevensbeschermingsautoriteit.be",
            ],
        ),
        (
            "nl",
            vec![
                "<h1>Uw verzoek over uw persoonsgegevens</h1>",
                "<h2>Wat wij hebben gewist</h2>",
                "<h2>Wat wij hebben bewaard, en waarom</h2>",
                "<td>uiterlijk 31 december 2031</td>",
                "<td>geanonimiseerd</td>",
                "T-17 &lt;urgent&gt; &amp; \"soon\"",
                "autoriteitpersoonsgegevens.nl",
            ],
        ),
    ];
    for (lang, needles) in expect {
        let html = answer(&config, &id, &["--format", "html", "--lang", lang]);
        let page = db.dir.path().join(format!("letter-{lang}.html"));
        std::fs::write(&page, &html).expect("write html");
        let dom = rendered(&browser, &page, &db.dir.path().join("chromium"));
        assert!(
            !dom.contains("<urgent>"),
            "the reference became markup:\n{dom}"
        );
        for needle in needles {
            assert!(
                dom.contains(needle),
                "the rendered {lang} DOM lacks {needle:?}\n--- DOM ---\n{dom}"
            );
        }
    }
}

//! `register`: the record of processing activities and the privacy statement's retention
//! paragraph, for the demo's rules and subjects — in English and Dutch, as HTML (checked in
//! headless Chromium, and printed on A4), Markdown, CSV (read back with a CSV reader) and
//! JSON — with only enforced rules promised; the config errors of its keys, with their
//! line; and `check`'s warning for a rule the register knows too little about.

use crate::helpers::{command, quoted, run, ConfigBuilder, Kind, RuleSpec, TestDb};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The demo, built by the real binary in `dir`; its config file.
fn demo(dir: &Path) -> PathBuf {
    let out = command(&dir.join("unused.toml"), &["demo", "--dir"])
        .arg(dir.join("demo"))
        .output()
        .expect("run retentiond demo");
    assert!(
        out.status.success(),
        "demo failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("demo").join("retentiond.toml")
}

/// `register` with `args`, which must succeed; its output.
fn register(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["register"];
    all.extend_from_slice(args);
    let r = run(config, &all);
    r.assert_code(0);
    r.stdout
}

/// The demo's five purposes, in config order.
const PURPOSES: [&str; 5] = [
    "Recruitment",
    "Personnel administration",
    "Bookkeeping",
    "Marketing to prospects",
    "Customer relations",
];

/// Config keys whose values are the config's own vocabulary rather than the operator's.
const CONFIG_WORDS: &[&str] = &[
    "action",
    "erase",
    "after",
    "mode",
    "schedule",
    "timezone",
    "report_language",
];

/// Every text the operator wrote in `config` (names, purposes, categories, legal bases,
/// tables, columns, filters…), longest first: the only text a Dutch register may hold in
/// English.
fn operator_text(config: &Path) -> Vec<String> {
    fn strings(v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::String(s) => out.push(s.clone()),
            toml::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            toml::Value::Table(t) => {
                for (k, v) in t {
                    // The config's own words (`delete`, `7 years`, `hash`) are ours, not
                    // the operator's: a Dutch register must write them in Dutch.
                    if CONFIG_WORDS.contains(&k.as_str()) {
                        continue;
                    }
                    // The keys the operator chose: database names and anonymized columns.
                    if matches!(k.as_str(), "databases" | "anonymize") {
                        let table = v.as_table().into_iter().flatten();
                        for (name, value) in table {
                            out.push(name.clone());
                            if value.is_table() {
                                strings(value, out);
                            }
                        }
                        if k == "anonymize" {
                            continue;
                        }
                    }
                    strings(v, out);
                }
            }
            _ => {}
        }
    }
    let text = std::fs::read_to_string(config).expect("read config");
    let value: toml::Value = toml::from_str(&text).expect("config is TOML");
    let mut out = vec![config.display().to_string(), "retentiond".to_owned()];
    strings(&value, &mut out);
    // The places the register names: `database.table`.
    let tables: Vec<(String, String)> = value["rule"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(value["subject"].as_array().into_iter().flatten())
        .filter_map(|t| Some((t.get("database")?.as_str()?, t.get("table")?.as_str()?)))
        .map(|(d, t)| (d.to_owned(), t.to_owned()))
        .collect();
    out.extend(tables.iter().map(|(d, t)| format!("{d}.{t}")));
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// English words of the register's own text that a Dutch reader must not meet.
const ENGLISH: &[&str] = &[
    "the",
    "and",
    "we",
    "keep",
    "kept",
    "until",
    "after",
    "then",
    "deleted",
    "anonymized",
    "flagged",
    "review",
    "record",
    "records",
    "purpose",
    "legal",
    "basis",
    "shared",
    "with",
    "responsible",
    "stored",
    "rule",
    "rules",
    "enforced",
    "personal",
    "data",
    "years",
    "not",
    "stated",
    "how",
    "long",
    "privacy",
    "statement",
    "for",
    "on",
    "request",
    "requests",
    "from",
    "people",
    "person",
    "drawn",
    "changed",
    "configuration",
    "activity",
    "activities",
    "about",
    "whom",
    "ready",
    "copy",
    "sentence",
    "each",
    "hold",
    "lasts",
    "writes",
    "when",
    "erasure",
    "report",
    "only",
    "where",
    "type",
    "status",
    "table",
];

/// The English words left in `text` once everything the operator wrote is taken out.
fn english_in(text: &str, operator: &[String]) -> Vec<String> {
    let mut rest = text.to_owned();
    for s in operator {
        rest = rest.replace(s.as_str(), " ");
    }
    let mut found: Vec<String> = rest
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| ENGLISH.contains(&w.as_str()))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The text a reader sees in an HTML page: no style sheet, no tags, entities decoded.
fn visible_text(html: &str) -> String {
    let mut rest = html;
    let mut out = String::new();
    if let (Some(a), Some(b)) = (html.find("<style>"), html.find("</style>")) {
        out.push_str(&html[..a]);
        rest = &html[b + "</style>".len()..];
    }
    out.push_str(rest);
    let mut text = String::new();
    let mut in_tag = false;
    for c in out.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    for (entity, c) in [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#x27;", "'"),
        ("&#x2f;", "/"),
        ("&amp;", "&"),
    ] {
        text = text.replace(entity, c);
    }
    text
}

/// Markdown as read: its escapes undone.
fn unescaped(md: &str) -> String {
    let mut out = String::new();
    let mut chars = md.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[test]
fn the_demo_register_says_what_why_for_whom_how_long_and_who_in_english() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = demo(dir.path());
    let md = unescaped(&register(&config, &["--format", "md", "--lang", "en"]));
    for needle in PURPOSES.map(|p| format!("### {p}\n")).iter().map(String::as_str).chain([
        "# Record of processing activities",
        "| Personal data | contact details, CV, position applied for |",
        "| About whom | job applicants who are not hired |",
        "| Legal basis | WER art. III.88 (7 years) |",
        "| Shared with | the accountant; the tax authority |",
        "| Responsible | Finance manager |",
        "| Stored in | books.ledger |",
        "| former-employee-files | retention rule | 7 years after left_at, then deleted | enforced |",
        "until decided_at, then deleted (only where decision = 'rejected')",
        "until consent_expires_at, then anonymized (email, name, phone)",
        "5 years after last_order_at, then flagged for review",
        "kept on a request for erasure: Bookkeeping law: accounting records are kept 7 years (WER art. III.88)",
        "## Retention in the privacy statement",
        "Recruitment: we keep the contact details, CV and position applied for of job applicants who are not hired until decided_at, and then we delete them.",
        "Bookkeeping: we keep the invoices and payments of customers and suppliers for 7 years after entry_date, and then we delete them.",
        "Marketing to prospects: we keep the name, contact details and company of prospects who consented to be contacted until consent_expires_at, and then we make them anonymous.",
        "Customer relations: we keep the name, contact details, city and order history of customers for 5 years after last_order_at, and then we review whether we still need them.",
        "A legal hold",
    ]) {
        assert!(md.contains(needle), "the register lacks {needle:?}:\n{md}");
    }
    // Grouped by purpose: the ledger rule and the ledger subject under one heading, in the
    // order the purposes first appear.
    let at: Vec<usize> = PURPOSES
        .iter()
        .map(|p| md.find(&format!("### {p}\n")).expect("heading"))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{md}");
    assert_eq!(md.matches("### Bookkeeping\n").count(), 1, "{md}");
    assert!(
        !md.contains("Not yet enforced"),
        "every demo rule is enforced:\n{md}"
    );
    // The config's language is the default.
    assert_eq!(
        register(&config, &["--format", "md"]),
        register(&config, &["--format", "md", "--lang", "en"])
    );
}

#[test]
fn the_dutch_register_speaks_dutch_except_for_what_the_operator_wrote() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = demo(dir.path());
    let operator = operator_text(&config);
    let md = unescaped(&register(&config, &["--format", "md", "--lang", "nl"]));
    for needle in [
        "# Verwerkingsregister",
        "| Persoonsgegevens | invoices, payments |",
        "| Ontvangers | the accountant; the tax authority |",
        "| Verantwoordelijke | Finance manager |",
        "| Opgeslagen in | books.ledger |",
        "7 jaar na left_at, daarna verwijderd",
        "tot consent_expires_at, daarna geanonimiseerd (email, name, phone)",
        "5 jaar na last_order_at, daarna gemarkeerd voor controle",
        "bewaard bij een verzoek tot wissen: Bookkeeping law",
        "## Bewaartermijnen in de privacyverklaring",
        "Personnel administration: wij bewaren de contact details, bank account en employment dates van former employees tot 7 jaar na left_at en verwijderen ze daarna.",
        "Marketing to prospects: wij bewaren de name, contact details en company van prospects who consented to be contacted tot consent_expires_at en maken ze daarna anoniem.",
        "Customer relations: wij bewaren de name, contact details, city en order history van customers tot 5 jaar na last_order_at en beoordelen daarna of wij ze nog nodig hebben.",
    ] {
        assert!(md.contains(needle), "the Dutch register lacks {needle:?}:\n{md}");
    }
    let english = english_in(&md, &operator);
    assert!(
        english.is_empty(),
        "English in the Dutch register: {english:?}\n{md}"
    );
    let html = register(&config, &["--format", "html", "--lang", "nl"]);
    let english = english_in(&visible_text(&html), &operator);
    assert!(
        english.is_empty(),
        "English in the Dutch HTML: {english:?}\n{html}"
    );
    let csv = register(&config, &["--format", "csv", "--lang", "nl"]);
    let english = english_in(&csv, &operator);
    assert!(
        english.is_empty(),
        "English in the Dutch CSV: {english:?}\n{csv}"
    );
}

/// The CSV's rows by activity name, each as header → value; and the header.
fn csv_rows(text: &str) -> (Vec<String>, BTreeMap<String, BTreeMap<String, String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = BTreeMap::new();
    for record in reader.records() {
        let record = record.unwrap_or_else(|e| panic!("not CSV ({e}):\n{text}"));
        assert_eq!(record.len(), header.len(), "{text}");
        let row: BTreeMap<String, String> = header
            .iter()
            .cloned()
            .zip(record.iter().map(str::to_owned))
            .collect();
        let name = record[1].to_owned();
        assert!(
            rows.insert(name, row).is_none(),
            "an activity twice:\n{text}"
        );
    }
    (header, rows)
}

#[test]
fn the_csv_has_a_header_and_one_row_per_rule_and_subject() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = demo(dir.path());
    let (header, rows) = csv_rows(&register(&config, &["--format", "csv", "--lang", "en"]));
    assert_eq!(
        header,
        [
            "purpose",
            "activity",
            "type",
            "personal data",
            "data subjects",
            "legal basis",
            "recipients",
            "retention",
            "status",
            "responsible",
            "database",
            "table"
        ]
    );
    let names: Vec<&str> = rows.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "books-ledger",
            "crm-customers",
            "crm-prospects",
            "dormant-customers",
            "former-employee-files",
            "hr-applicants",
            "hr-employees",
            "ledger-after-7-years",
            "prospects-without-consent",
            "rejected-applicants"
        ]
    );
    let ledger = &rows["ledger-after-7-years"];
    for (column, want) in [
        ("purpose", "Bookkeeping"),
        ("type", "retention rule"),
        ("personal data", "invoices; payments"),
        ("data subjects", "customers and suppliers"),
        ("legal basis", "WER art. III.88 (7 years)"),
        ("recipients", "the accountant; the tax authority"),
        ("retention", "7 years after entry_date, then deleted"),
        ("status", "enforced"),
        ("responsible", "Finance manager"),
        ("database", "books"),
        ("table", "ledger"),
    ] {
        assert_eq!(ledger[column], want, "{column}: {ledger:?}");
    }
    let subject = &rows["books-ledger"];
    assert_eq!(subject["type"], "requests from people");
    assert_eq!(subject["status"], "on a request from the person");
    assert_eq!(
        subject["retention"],
        "7 years after entry_date, then deleted; kept on a request for erasure: Bookkeeping law: accounting records are kept 7 years (WER art. III.88)"
    );
    assert_eq!(rows["rejected-applicants"]["recipients"], "");

    let (header, rows) = csv_rows(&register(&config, &["--format", "csv", "--lang", "nl"]));
    assert_eq!(header[0], "doel");
    assert_eq!(header[7], "bewaartermijn");
    assert_eq!(rows.len(), 10, "5 rules and 5 subjects");
    assert_eq!(
        rows["former-employee-files"]["bewaartermijn"],
        "7 jaar na left_at, daarna verwijderd"
    );
    assert_eq!(rows["former-employee-files"]["stand"], "afgedwongen");
}

#[tokio::test]
async fn a_csv_value_a_spreadsheet_would_run_is_written_as_text() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    let config = ConfigBuilder::new(&db)
        .rule(
            RuleSpec::delete("leads", "leads", "created_at")
                .raw("purpose", &quoted("=HYPERLINK(\"http://evil\")"))
                .raw("owner", &quoted("@SUM(A1)"))
                .raw("recipients", &quoted("+31 20 000 0000")),
        )
        .write(&db);
    let (_, rows) = csv_rows(&register(&config, &["--format", "csv"]));
    let leads = &rows["leads"];
    assert_eq!(leads["purpose"], "'=HYPERLINK(\"http://evil\")");
    assert_eq!(leads["responsible"], "'@SUM(A1)");
    assert_eq!(leads["recipients"], "'+31 20 000 0000");
}

#[test]
fn the_json_register_is_grouped_by_purpose_and_promises_only_enforced_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = demo(dir.path());
    // One rule only reports: it is listed apart, never promised.
    let text = std::fs::read_to_string(&config).expect("read config");
    let text = text.replacen(
        "action = \"flag\"\n",
        "action = \"flag\"\nmode = \"report\"\n",
        1,
    );
    std::fs::write(&config, text).expect("write config");
    let r = run(&config, &["register", "--format", "json", "--lang", "nl"]);
    r.assert_code(0);
    let v = r.json();
    assert_eq!(v["language"], "nl");
    let titles: Vec<&str> = v["purposes"]
        .as_array()
        .expect("purposes")
        .iter()
        .map(|p| p["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles, PURPOSES);
    let books = &v["purposes"][2];
    assert_eq!(books["recipients"][1], "the tax authority");
    let kinds: Vec<&str> = books["activities"]
        .as_array()
        .expect("activities")
        .iter()
        .map(|a| a["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["rule", "subject"]);
    let sentences = v["statement"]["sentences"].as_array().expect("sentences");
    // Four enforced rules and the legal hold; not the rule that only reports.
    assert_eq!(sentences.len(), 5, "{sentences:#?}");
    assert!(
        sentences.iter().all(|s| !s
            .as_str()
            .unwrap_or_default()
            .contains("Customer relations")),
        "{sentences:#?}"
    );
    let apart = v["statement"]["not_enforced"]
        .as_array()
        .expect("not_enforced");
    assert_eq!(apart.len(), 1);
    assert_eq!(
        apart[0],
        "dormant-customers (crm.customers): 5 jaar na last_order_at, daarna gemarkeerd voor controle"
    );
    let md = register(&config, &["--format", "md", "--lang", "en"]);
    assert!(md.contains("### Not yet enforced"), "{md}");
    assert!(md.contains("| dormant-customers | retention rule | 5 years after last\\_order\\_at, then flagged for review | not yet enforced (report only) |"), "{md}");
}

#[tokio::test]
async fn empty_register_keys_are_refused_at_their_line() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    for (key, value, words) in [
        ("categories", "[]", "is an empty list"),
        ("purpose", "\"\"", "is empty"),
        ("categories", "[\"CV\", 7]", "is the number 7, not a text"),
    ] {
        let builder = ConfigBuilder::new(&db)
            .rule(RuleSpec::delete("applicants", "applicants", "decided_at").raw(key, value));
        let config = builder.write(&db);
        let r = run(&config, &["register"]);
        r.assert_code(78);
        let line = builder.line(&format!("rule[0].{key}"));
        let at = format!("{}:{line}: rule \"applicants\" → {key}", config.display());
        assert!(r.stderr.contains(&at), "no {at:?}:\n{r}");
        assert!(r.stderr.contains(words), "no {words:?}:\n{r}");
        assert!(r.stdout.is_empty(), "{r}");
        run(&config, &["check"]).assert_code(78);
    }
}

#[tokio::test]
async fn check_warns_about_a_rule_the_register_knows_too_little_about() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    db.exec("CREATE TABLE applicants (id INTEGER PRIMARY KEY, decided_at TEXT)")
        .await;
    let complete = RuleSpec::delete("complete", "applicants", "decided_at")
        .raw("purpose", &quoted("Recruitment"))
        .raw("categories", "[\"CV\"]")
        .raw("data_subjects", &quoted("job applicants"))
        .raw("owner", &quoted("HR manager"));
    let lacking = RuleSpec::delete("lacking", "applicants", "decided_at")
        .raw("categories", "[\"CV\"]")
        .raw("data_subjects", &quoted("job applicants"));
    let builder = ConfigBuilder::new(&db).rule(complete).rule(lacking);
    let config = builder.write(&db);
    let r = run(&config, &["check"]);
    r.assert_code(0);
    let warnings: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains("processing register"))
        .collect();
    let want = format!(
        "warning: rule 'lacking' (line {}) has no purpose, owner; the processing register needs them",
        builder.line("rule[1]")
    );
    assert_eq!(warnings.len(), 1, "{r}");
    assert!(warnings[0].starts_with(&want), "{r}");
}

#[test]
fn the_demo_check_warns_about_nothing_the_register_needs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = demo(dir.path());
    let r = run(&config, &["check"]);
    r.assert_code(0);
    assert!(!r.stdout.contains("processing register"), "{r}");
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

/// Headless Chromium on the HTML file `page`, doing `what` (`--dump-dom`, `--print-to-pdf=…`).
fn headless(browser: &Path, page: &Path, profile: &Path, what: &str) -> std::process::Output {
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
            "--no-pdf-header-footer",
            "--window-size=900,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(what)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_html_register_renders_in_headless_chromium_and_prints_on_a4_in_both_languages() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = demo(dir.path());
    let operator = operator_text(&config);
    let expect = [
        (
            "en",
            vec![
                "<h1>Record of processing activities</h1>",
                "<h3>Bookkeeping</h3>",
                "<td>the accountant; the tax authority</td>",
                "7 years after entry_date, then deleted",
                "<h3>How long we keep your data</h3>",
                "<p>Personnel administration: we keep the contact details, bank account and employment dates of former employees for 7 years after left_at, and then we delete them.</p>",
            ],
        ),
        (
            "nl",
            vec![
                "<h1>Verwerkingsregister</h1>",
                "<h3>Bookkeeping</h3>",
                "<td>the accountant; the tax authority</td>",
                "7 jaar na entry_date, daarna verwijderd",
                "<h3>Hoe lang wij uw gegevens bewaren</h3>",
                "<p>Bookkeeping: wij bewaren de invoices en payments van customers and suppliers tot 7 jaar na entry_date en verwijderen ze daarna.</p>",
            ],
        ),
    ];
    for (lang, needles) in expect {
        let html = register(&config, &["--format", "html", "--lang", lang]);
        assert!(
            !html.contains("<script") && !html.contains("<link") && !html.contains("src="),
            "the page must stand alone:\n{html}"
        );
        let page = dir.path().join(format!("register-{lang}.html"));
        std::fs::write(&page, &html).expect("write html");
        let profile = dir.path().join("chromium");
        let out = headless(&browser, &page, &profile, "--dump-dom");
        let dom = String::from_utf8_lossy(&out.stdout);
        for needle in needles {
            assert!(
                dom.contains(needle),
                "the rendered {lang} DOM lacks {needle:?}\n--- DOM ---\n{dom}"
            );
        }
        for purpose in PURPOSES {
            assert!(
                dom.contains(&format!("<h3>{purpose}</h3>")),
                "{purpose}: {dom}"
            );
        }
        if lang == "nl" {
            let english = english_in(&visible_text(&dom), &operator);
            assert!(
                english.is_empty(),
                "English in the Dutch page: {english:?}\n{dom}"
            );
        }
        // Printed, it is A4 (595 × 842 points), and more than one page of content.
        let pdf = dir.path().join(format!("register-{lang}.pdf"));
        headless(
            &browser,
            &page,
            &profile,
            &format!("--print-to-pdf={}", pdf.display()),
        );
        let bytes = std::fs::read(&pdf).expect("a PDF");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("%PDF"), "not a PDF");
        let boxes: Vec<&str> = text
            .match_indices("/MediaBox [")
            .map(|(at, _)| {
                let rest = &text[at + "/MediaBox [".len()..];
                &rest[..rest.find(']').unwrap_or(0)]
            })
            .collect();
        assert!(!boxes.is_empty(), "no page in the PDF");
        for b in &boxes {
            let n: Vec<f64> = b
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            assert!(
                n.len() == 4 && (n[2] - 595.0).abs() < 1.0 && (n[3] - 842.0).abs() < 1.0,
                "a page that is not A4: [{b}]"
            );
        }
    }
}

//! The management report: its numbers in HTML, text and JSON agree with the audit trail in
//! English and Dutch; it is mailed through a real SMTP server on 127.0.0.1 (and retried when
//! the server is down); and its HTML renders in headless Chromium.

use crate::helpers::{audit_keys, run, ConfigBuilder, Kind, RuleSpec, TestDb};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

async fn purge_db() -> Option<TestDb> {
    let db = TestDb::new(Kind::Sqlite).await?;
    db.exec("CREATE TABLE people (id INTEGER PRIMARY KEY, left_at TEXT, review TEXT)")
        .await;
    for chunk in (1..=1300).collect::<Vec<i64>>().chunks(500) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "({i}, '{}', NULL)",
                    if *i <= 1234 {
                        "2010-01-01"
                    } else {
                        "2099-01-01"
                    }
                )
            })
            .collect();
        db.exec(&format!("INSERT INTO people VALUES {}", rows.join(", ")))
            .await;
    }
    Some(db)
}

/// The config: reports in `lang`, the raw TOML `sections` (e.g. `[report.email]`), and
/// one rule deleting former staff after 7 years.
fn config(db: &TestDb, lang: &str, sections: &str) -> PathBuf {
    let mut former_staff = RuleSpec::delete("former-staff", "people", "left_at")
        .legal_basis("WER art. III.88")
        .after("7 years")
        .max_fraction(1.0);
    former_staff.description = Some("Former staff files go after 7 years.".into());
    let mut config = ConfigBuilder::new(db).section(sections).rule(former_staff);
    config.report_language = Some(lang.into());
    config.write(db)
}

/// The Dutch name of the current month in Brussels, as the report writes dates.
fn dutch_month_now() -> &'static str {
    use chrono::Datelike;
    const MONTHS: [&str; 12] = [
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
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Brussels);
    MONTHS[now.month0() as usize]
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

#[tokio::test]
async fn the_numbers_agree_with_the_audit_trail_in_every_form_and_language() {
    for (lang, deleted_text, word) in [("en", "1,234", "deleted"), ("nl", "1.234", "verwijderd")] {
        let Some(db) = purge_db().await else { return };
        let config = config(&db, lang, "");
        run(&config, &["run", "--once"]).assert_code(0);
        let audited = audit_keys(&config)
            .iter()
            .filter(|(rule, action, _)| rule == "former-staff" && action == "delete")
            .count();
        assert_eq!(audited, 1234);

        let json = run(&config, &["report", "--last", "--format", "json"]);
        json.assert_code(0);
        let v = json.json();
        assert_eq!(v["rules"][0]["acted"], 1234);
        assert_eq!(v["totals"]["deleted"], 1234);
        assert_eq!(
            v["audit_entries"], 1235,
            "1234 deletions and the rule's rule-start"
        );
        assert_eq!(v["language"], lang);

        let text = run(&config, &["report", "--last", "--format", "text"]);
        text.assert_code(0);
        let text = text.stdout;
        assert!(
            text.contains(&format!("former-staff: {deleted_text} {word}")),
            "{lang}: {text}"
        );
        assert!(text.contains(&format!("{deleted_text} {word}")), "{text}");
        let html = run(&config, &["report", "--last", "--format", "html"]);
        html.assert_code(0);
        let html = html.stdout;
        assert!(
            html.contains(&format!("<b>{deleted_text}</b>")) && html.contains("<svg"),
            "{lang} html"
        );
        // Self-contained: nothing is loaded (the SVG namespace URI is a name, not a fetch).
        for loader in ["<script", "<link", "src=", "href=", "@import", "url("] {
            assert!(
                !html.contains(loader),
                "{lang}: the page loads something: {loader}"
            );
        }
        assert!(
            html.contains(v["audit_head"].as_str().unwrap_or("?")),
            "the head hash anchors the trail"
        );
        if lang == "nl" {
            assert!(
                html.contains("Rapport bewaartermijnen"),
                "Dutch words: {html}"
            );
            let month = dutch_month_now();
            assert!(
                text.contains(&format!(" {month} ")),
                "Dutch dates ({month}): {text}"
            );
        }
        // The saved copies are there, date-sortable, and --date finds the pass.
        let saved: Vec<String> = std::fs::read_dir(db.state_dir().join("reports"))
            .expect("reports")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(saved.len(), 3, "{saved:?}");
        assert!(saved
            .iter()
            .all(|n| n.starts_with(&chrono::Utc::now().format("%Y%m%d").to_string()[..6])));
        let today = chrono::Utc::now()
            .with_timezone(&chrono_tz::Europe::Brussels)
            .format("%Y-%m-%d")
            .to_string();
        run(&config, &["report", "--date", &today, "--format", "json"]).assert_code(0);
    }
}

/// aiosmtpd on 127.0.0.1 storing mail in a Maildir; killed on drop.
struct Smtp {
    child: Child,
    maildir: PathBuf,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtp(port: u16, dir: &Path) -> Option<Smtp> {
    let available = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but the aiosmtpd package is missing (.ci/run installs it)"
        );
        eprintln!("\n!!!!! SKIPPING: python3 -m pip install aiosmtpd to run the mail test !!!!!\n");
        return None;
    }
    let maildir = dir.join("maildir");
    let child = Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "aiosmtpd did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Smtp { child, maildir })
}

fn mails(maildir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn the_report_is_mailed_and_a_failed_mail_is_retried_next_pass() {
    let Some(db) = purge_db().await else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let email = format!("[report.email]\nsmtp_url = \"smtp://127.0.0.1:{port}\"\nfrom = \"retentiond <retentiond@example.org>\"\nto = [\"dpo@example.org\", \"Directie <directie@example.org>\"]\n\n");
    let config = config(&db, "nl", &email);
    // The server is down: the pass still succeeds, the mail waits.
    // A mail failure never fails enforcement.
    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(db.count("SELECT COUNT(*) FROM people").await, 66);
    let Some(smtp) = start_smtp(port, db.dir.path()) else {
        return;
    };
    db.exec("UPDATE people SET left_at = '2010-01-01' WHERE id = 1300")
        .await;
    run(&config, &["run", "--once"]).assert_code(0);
    let start = Instant::now();
    while mails(&smtp.maildir).len() < 2 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = mails(&smtp.maildir);
    assert_eq!(got.len(), 2, "the queued report and the new one");
    let all = got.join("\n");
    assert!(
        all.contains("Subject: retentiond: 1.234 records verwijderd, 0 fouten"),
        "{all}"
    );
    assert!(
        all.contains("Subject: retentiond: 1 records verwijderd, 0 fouten"),
        "{all}"
    );
    for mail in &got {
        assert!(
            mail.contains("dpo@example.org") && mail.contains("directie@example.org"),
            "both recipients: {mail}"
        );
        assert!(
            mail.contains("multipart/alternative")
                && mail.contains("text/plain")
                && mail.contains("text/html"),
            "both parts"
        );
    }
}

#[tokio::test]
async fn the_html_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else { return };
    let Some(db) = purge_db().await else { return };
    let config = config(&db, "en", "");
    run(&config, &["run", "--once"]).assert_code(0);
    let report = run(&config, &["report", "--last", "--format", "html"]);
    report.assert_code(0);
    let html = db.dir.path().join("report.html");
    std::fs::write(&html, &report.stdout).expect("write html");
    let headless = |what: &str| {
        Command::new(&browser)
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
            .arg(format!(
                "--user-data-dir={}",
                db.dir.path().join("chromium").display()
            ))
            .arg(what)
            .arg(format!("file://{}", html.display()))
            .output()
            .expect("run chromium")
    };

    // The DOM Chromium built from the page holds the report: the rule, the totals and the
    // trend chart with the rule's bar.
    let out = headless("--dump-dom");
    let dom = String::from_utf8_lossy(&out.stdout);
    let explain = |what: &str| {
        format!(
            "the rendered DOM lacks {what}\n--- DOM ---\n{dom}\n--- chromium stderr ---\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert!(
        out.status.success(),
        "{}",
        explain("nothing: chromium failed")
    );
    for (what, needle) in [
        (
            "the rule's name",
            r#"<div class="rname">former-staff</div>"#,
        ),
        ("the deleted total", "<b>1,234</b>"),
        ("the rule's count", r#"<td class="n">1,234</td>"#),
    ] {
        assert!(dom.contains(needle), "{}", explain(what));
    }
    // The totals row: its first number cell says 1,234.
    let cell = r#"<td class="n">"#;
    let total = dom
        .find(r#"<td class="rname">Total</td>"#)
        .and_then(|at| dom[at..].find(cell).map(|n| &dom[at + n + cell.len()..]));
    assert!(
        total.is_some_and(|t| t.starts_with("1,234</td>")),
        "{}",
        explain("a totals row with 1,234")
    );
    let chart = dom
        .find("<svg")
        .and_then(|start| {
            dom[start..]
                .find("</svg>")
                .map(|end| &dom[start..start + end])
        })
        .unwrap_or_else(|| panic!("{}", explain("the SVG trend chart")));
    assert!(
        chart.contains("<rect") && chart.contains("former-staff: 1,234</title>"),
        "{}",
        explain("the rule's bar in the trend chart")
    );

    // And the page paints: a screenshot that is not blank.
    let png = db.dir.path().join("report.png");
    let out = headless(&format!("--screenshot={}", png.display()));
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        bytes.len() > 30_000,
        "a blank page would be tiny: {} bytes",
        bytes.len()
    );
}

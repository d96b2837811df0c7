//! `retentiond demo`: a small, realistic company in three SQLite files — HR (applicants,
//! employees), CRM (prospects, customers) and bookkeeping (ledger) — with the retention
//! rules of the seed policies, and a config for them. Dates are relative to today, so the
//! demo always has something to do.

use chrono::{Duration, NaiveDateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;
use std::path::{Path, PathBuf};

/// Where the demo put its files.
pub struct Demo {
    /// The config file.
    pub config: PathBuf,
    /// The SQLite databases.
    pub databases: Vec<PathBuf>,
}

/// A tiny deterministic generator (xorshift64*), so every demo has the same shape.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
    fn days_ago(&mut self, max_days: u64) -> NaiveDateTime {
        let secs = self.below(max_days * 86_400) as i64;
        (Utc::now() - Duration::seconds(secs)).naive_utc()
    }
}

const FIRST: &[&str] = &[
    "Jan", "Els", "Pieter", "An", "Tom", "Sofie", "Wim", "Lotte", "Bram", "Noor", "Koen", "Lies",
    "Ruben", "Fien", "Joris", "Emma", "Arne", "Marie", "Sander", "Ine",
];
const LAST: &[&str] = &[
    "Peeters",
    "Janssens",
    "Maes",
    "Jacobs",
    "Mertens",
    "Willems",
    "Claes",
    "Goossens",
    "Wouters",
    "De Smet",
    "Dubois",
    "Vermeulen",
    "Van den Broeck",
    "de Vries",
    "Bakker",
    "Visser",
];
const CITIES: &[&str] = &[
    "Gent",
    "Antwerpen",
    "Leuven",
    "Brugge",
    "Hasselt",
    "Utrecht",
    "Eindhoven",
    "Mechelen",
];
const ROLES: &[&str] = &[
    "boekhouder",
    "verkoper",
    "projectleider",
    "technieker",
    "glasplaatser",
    "office manager",
];
const ACCOUNTS: &[&str] = &[
    "400000 Klanten",
    "440000 Leveranciers",
    "550000 Bank",
    "700000 Omzet",
    "604000 Aankopen",
];

fn ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

async fn open(path: &Path) -> Result<SqlitePool, String> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

async fn exec(pool: &SqlitePool, sql: &str) -> Result<(), String> {
    sqlx::raw_sql(sql)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Builds the demo in `dir` (which must be new or empty), or in a new directory under
/// the system's temporary directory.
pub async fn build(dir: Option<&Path>) -> Result<Demo, String> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => std::env::temp_dir().join(format!(
            "retentiond-demo-{}",
            crate::engine::pass::new_run_id(Utc::now())
        )),
    };
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .next()
            .is_some()
    {
        return Err(format!("{} is not empty; give a new or empty directory with --dir (the demo never overwrites files)", dir.display()));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = dir.canonicalize().map_err(|e| e.to_string())?;
    let mut rng = Rng(0x5eed_2026_1123);
    let hr = dir.join("hr.db");
    let crm = dir.join("crm.db");
    let books = dir.join("books.db");
    build_hr(&hr, &mut rng).await?;
    build_crm(&crm, &mut rng).await?;
    build_books(&books, &mut rng).await?;
    let config = dir.join("retentiond.toml");
    std::fs::write(&config, config_text(&dir, &hr, &crm, &books)).map_err(|e| e.to_string())?;
    Ok(Demo {
        config,
        databases: vec![hr, crm, books],
    })
}

fn name(rng: &mut Rng) -> (String, String) {
    let (f, l) = (rng.pick(FIRST), rng.pick(LAST));
    let email = format!(
        "{}.{}@example.be",
        f.to_lowercase(),
        l.to_lowercase().replace(' ', "")
    );
    (format!("{f} {l}"), email)
}

async fn build_hr(path: &Path, rng: &mut Rng) -> Result<(), String> {
    let pool = open(path).await?;
    exec(&pool, "CREATE TABLE applicants (id INTEGER PRIMARY KEY, full_name TEXT NOT NULL, email TEXT, phone TEXT, position TEXT, decision TEXT NOT NULL, decided_at TEXT);
                 CREATE TABLE employees (id INTEGER PRIMARY KEY, full_name TEXT NOT NULL, email TEXT, iban TEXT, hired_at TEXT NOT NULL, left_at TEXT);").await?;
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    for id in 1..=240 {
        let (n, e) = name(rng);
        let decision = rng.pick(&["rejected", "rejected", "hired", "pending"]);
        let decided = (decision != "pending").then(|| ts(rng.days_ago(900)));
        sqlx::query("INSERT INTO applicants VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .bind(id)
            .bind(n)
            .bind(e)
            .bind(format!("+32 4{:08}", rng.below(100_000_000)))
            .bind(rng.pick(ROLES))
            .bind(decision)
            .bind(decided)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    for id in 1..=80 {
        let (n, e) = name(rng);
        let hired = rng.days_ago(365 * 20);
        let left = (rng.below(2) == 0).then(|| ts(rng.days_ago(365 * 12)));
        sqlx::query("INSERT INTO employees VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(id)
            .bind(n)
            .bind(e)
            .bind(format!("BE{:014}", rng.below(100_000_000_000_000)))
            .bind(ts(hired))
            .bind(left)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    pool.close().await;
    Ok(())
}

async fn build_crm(path: &Path, rng: &mut Rng) -> Result<(), String> {
    let pool = open(path).await?;
    exec(&pool, "CREATE TABLE prospects (id INTEGER PRIMARY KEY, name TEXT, email TEXT, phone TEXT, company TEXT, consent_expires_at TEXT);
                 CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, city TEXT, last_order_at TEXT, retention_review TEXT);").await?;
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    for id in 1..=300 {
        let (n, e) = name(rng);
        // Consent runs two years from sign-up; some signed up long ago, some recently.
        let expires = rng.days_ago(1400) + Duration::days(730);
        sqlx::query("INSERT INTO prospects VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(id)
            .bind(n)
            .bind(e)
            .bind(format!("+32 9{:07}", rng.below(10_000_000)))
            .bind(format!("{} bv", rng.pick(LAST)))
            .bind(ts(expires))
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    for id in 1..=150 {
        let (n, e) = name(rng);
        sqlx::query("INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5, NULL)")
            .bind(id)
            .bind(n)
            .bind(e)
            .bind(rng.pick(CITIES))
            .bind(ts(rng.days_ago(365 * 9)))
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    // The customer who writes in to be forgotten (see `DEMO_PERSON`): a recent order,
    // so no rule has touched her yet.
    sqlx::query("INSERT INTO customers VALUES (151, 'Marie Claes', ?1, 'Gent', ?2, NULL)")
        .bind(DEMO_PERSON)
        .bind(ts(rng.days_ago(200)))
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    pool.close().await;
    Ok(())
}

/// The e-mail address of the demo's customer who asks to be erased: her customer record is
/// anonymized, and her invoices in the ledger are kept, as the bookkeeping law requires.
pub const DEMO_PERSON: &str = "marie.claes@example.be";

async fn build_books(path: &Path, rng: &mut Rng) -> Result<(), String> {
    let pool = open(path).await?;
    exec(&pool, "CREATE TABLE ledger (id INTEGER PRIMARY KEY, entry_date TEXT NOT NULL, account TEXT NOT NULL, description TEXT, amount_cents INTEGER NOT NULL, customer_ref INTEGER);
                 CREATE INDEX ledger_entry_date ON ledger (entry_date);").await?;
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    for id in 1..=2500 {
        let date = rng.days_ago(365 * 10).date();
        sqlx::query("INSERT INTO ledger VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(id)
            .bind(date.format("%Y-%m-%d").to_string())
            .bind(rng.pick(ACCOUNTS))
            .bind(format!("Factuur {}/{:05}", date.format("%Y"), id))
            .bind(rng.below(500_000) as i64 - 100_000)
            .bind(rng.below(150) as i64 + 1)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    // The demo person's three invoices, within the last two years.
    for (n, id) in (2501..=2503).enumerate() {
        let date = (Utc::now() - Duration::days(90 + 180 * n as i64)).date_naive();
        sqlx::query("INSERT INTO ledger VALUES (?1, ?2, '700000 Omzet', ?3, ?4, 151)")
            .bind(id)
            .bind(date.format("%Y-%m-%d").to_string())
            .bind(format!("Factuur {}/{:05}", date.format("%Y"), id))
            .bind(12_100 * (n as i64 + 1))
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    pool.close().await;
    Ok(())
}

fn config_text(dir: &Path, hr: &Path, crm: &Path, books: &Path) -> String {
    format!(
        r#"# retentiond demo config: the retention promises of a small Belgian firm.
[daemon]
state_dir = "{state}"
schedule = "0 30 2 * * *"        # every night at 02:30
timezone = "Europe/Brussels"
report_language = "en"

[databases.hr]
url = "sqlite://{hr}"

[databases.crm]
url = "sqlite://{crm}"

[databases.books]
url = "sqlite://{books}"

# A legal hold: the labour inspectorate asked for every application for a technician post.
[[hold]]
name = "inspection-2026-044"
reason = "Labour inspection 2026/044: keep all applications for technician posts until it closes"
database = "hr"
table = "applicants"
filter = "position = 'technieker'"
until = "2027-06-30"

[[rule]]
name = "rejected-applicants"
description = "Applicants are removed as soon as it is clear they will not be hired."
legal_basis = "GDPR art. 5(1)(e); privacy policy: applicants"
database = "hr"
table = "applicants"
key = "id"
filter = "decision = 'rejected'"
expires = {{ since = "decided_at", after = "0 days" }}
action = "delete"
purpose = "Recruitment"
categories = ["contact details", "CV", "position applied for"]
data_subjects = "job applicants who are not hired"
owner = "HR manager"

[[rule]]
name = "former-employee-files"
description = "Personnel files of former employees are kept as long as the books: 7 years."
legal_basis = "WER art. III.88 (7 years)"
database = "hr"
table = "employees"
key = "id"
expires = {{ since = "left_at", after = "7 years" }}
action = "delete"
purpose = "Personnel administration"
categories = ["contact details", "bank account", "employment dates"]
data_subjects = "former employees"
recipients = ["the payroll provider", "the social security office"]
owner = "HR manager"

[[rule]]
name = "ledger-after-7-years"
description = "Bookkeeping entries are deleted once the legal 7 years have passed."
legal_basis = "WER art. III.88 (7 years)"
database = "books"
table = "ledger"
key = "id"
expires = {{ since = "entry_date", after = "7 years" }}
action = "delete"
batch_size = 500
purpose = "Bookkeeping"
categories = ["invoices", "payments"]
data_subjects = "customers and suppliers"
recipients = ["the accountant", "the tax authority"]
owner = "Finance manager"

[[rule]]
name = "prospects-without-consent"
description = "Prospects are kept only while their consent lasts; then their contact details go."
legal_basis = "GDPR art. 6(1)(a), 7(3): consent withdrawn or expired"
database = "crm"
table = "prospects"
key = "id"
expires = {{ since = "consent_expires_at" }}
action = "anonymize"
anonymize = {{ name = "null", email = "hash", phone = "null" }}
purpose = "Marketing to prospects"
categories = ["name", "contact details", "company"]
data_subjects = "prospects who consented to be contacted"
owner = "Sales manager"

[[rule]]
name = "dormant-customers"
description = "Customers without an order for 5 years are put up for review."
legal_basis = "GDPR art. 5(1)(e); legitimate interest reviewed"
database = "crm"
table = "customers"
key = "id"
expires = {{ since = "last_order_at", after = "5 years" }}
action = "flag"
flag = {{ column = "retention_review", value = "due" }}
purpose = "Customer relations"
categories = ["name", "contact details", "city", "order history"]
data_subjects = "customers"
owner = "Sales manager"

# Where a person's data lives, for requests from people (`retentiond request …`).
[[subject]]
name = "crm-customers"
database = "crm"
table = "customers"
key = "id"
identify = {{ email = "email" }}
erase = "anonymize"
anonymize = {{ name = {{ replace = "Former customer" }}, email = "null", city = "null" }}
purpose = "Customer relations"
categories = ["name", "contact details", "city"]
data_subjects = "customers"
owner = "Sales manager"

[[subject]]
name = "books-ledger"
database = "books"
table = "ledger"
key = "id"
via = {{ subject = "crm-customers", foreign_key = "customer_ref" }}
erase = "keep"
keep_reason = "Bookkeeping law: accounting records are kept 7 years (WER art. III.88)"
purpose = "Bookkeeping"
categories = ["invoices", "payments"]
data_subjects = "customers"
recipients = ["the accountant", "the tax authority"]
owner = "Finance manager"

[[subject]]
name = "hr-applicants"
database = "hr"
table = "applicants"
key = "id"
identify = {{ email = "email", phone = "phone" }}
erase = "delete"
purpose = "Recruitment"
categories = ["contact details", "CV", "position applied for"]
data_subjects = "job applicants who are not hired"
owner = "HR manager"

[[subject]]
name = "hr-employees"
database = "hr"
table = "employees"
key = "id"
identify = {{ email = "email" }}
erase = "keep"
keep_reason = "Social and tax law: personnel files are kept 7 years after the employee leaves"
purpose = "Personnel administration"
categories = ["contact details", "bank account", "employment dates"]
data_subjects = "former employees"
owner = "HR manager"

[[subject]]
name = "crm-prospects"
database = "crm"
table = "prospects"
key = "id"
identify = {{ email = "email", phone = "phone" }}
erase = "delete"
purpose = "Marketing to prospects"
categories = ["name", "contact details", "company"]
data_subjects = "prospects who consented to be contacted"
owner = "Sales manager"
"#,
        state = dir.join("state").display(),
        hr = hr.display(),
        crm = crm.display(),
        books = books.display(),
    )
}

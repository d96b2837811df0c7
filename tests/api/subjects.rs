//! `[[subject]]` against real databases: valid subjects pass `check` on PostgreSQL and
//! SQLite; each kind of mistake, in the file or against the catalog, stops `check`, `plan`
//! and `run --once` with exit 78 at the offending key's line, before anything is touched;
//! and `check` warns about a table a rule acts on that no subject covers.

use crate::helpers::{run, ConfigBuilder, DatabaseEntry, Kind, RuleSpec, TestDb};

/// The tables every case starts from: customers (one of three expired for the rule), their
/// invoices (an integer foreign key), notes (a text one), and visits, which no subject
/// covers.
const TABLES: &str = "CREATE TABLE customers (id INTEGER PRIMARY KEY NOT NULL, name TEXT, email TEXT, phone TEXT, city TEXT NOT NULL, consent_until DATE);
CREATE TABLE invoices (id INTEGER PRIMARY KEY NOT NULL, customer_id INTEGER, total INTEGER);
CREATE TABLE notes (id INTEGER PRIMARY KEY NOT NULL, customer_ref TEXT, body TEXT);
CREATE TABLE visits (id INTEGER PRIMARY KEY NOT NULL, seen_at DATE);
INSERT INTO customers (id, name, email, phone, city, consent_until) VALUES (1, 'Ann', 'ann@example.be', '0470', 'Gent', '2020-01-01');
INSERT INTO customers (id, name, email, phone, city, consent_until) VALUES (2, 'Bob', 'bob@example.be', '0471', 'Luik', '2999-01-01');
INSERT INTO customers (id, name, email, phone, city, consent_until) VALUES (3, 'Cas', 'cas@example.be', '0472', 'Aalst', '2999-01-01');
INSERT INTO invoices (id, customer_id, total) VALUES (10, 1, 100)";

/// Two valid subjects on database `main`: customers found by email and phone, their
/// invoices reached through them.
const SUBJECTS: &str = r#"[[subject]]
name = "people"
database = "main"
table = "customers"
key = "id"
identify = { email = "email", phone = "phone" }
erase = "anonymize"
anonymize = { name = "null", email = "null", phone = "null" }

[[subject]]
name = "people-invoices"
database = "main"
table = "invoices"
key = "id"
via = { subject = "people", foreign_key = "customer_id" }
erase = "keep"
keep_reason = "Bookkeeping law: invoices are kept 7 years (WER art. III.88)"

"#;

/// A fresh database of `kind` holding [`TABLES`], or `None` where its server is missing
/// (locally; under CI=true that fails the test).
async fn database(kind: Kind) -> Option<TestDb> {
    let db = TestDb::new(kind).await?;
    db.exec(TABLES).await;
    Some(db)
}

/// The config of every case: a delete rule on `customers`, and `subjects` (raw TOML).
fn config(db: &TestDb, subjects: &str) -> ConfigBuilder {
    ConfigBuilder::new(db)
        .section(subjects)
        .rule(RuleSpec::delete("old-customers", "customers", "consent_until").max_fraction(1.0))
}

/// `text` with `old` (which must occur in it exactly once) replaced by `new`.
fn edit(text: &str, old: &str, new: &str) -> String {
    assert_eq!(
        text.matches(old).count(),
        1,
        "{old:?} must occur once in:\n{text}"
    );
    text.replacen(old, new, 1)
}

/// The 1-based line of `needle`, which must occur exactly once in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    assert_eq!(
        text.matches(needle).count(),
        1,
        "{needle:?} must occur once in:\n{text}"
    );
    let at = text.find(needle).unwrap_or_default();
    text[..at].matches('\n').count() + 1
}

/// Runs `check`, `plan` and `run --once` on `main` (of `kind`) with the subjects
/// [`SUBJECTS`] after `break_it`, and asserts for each: exit 78, `retentiond.toml:LINE: KEY:`
/// with the line of `needle`, `words` in the message, and no customer deleted.
async fn refused(
    kind: Kind,
    break_it: impl FnOnce(&str) -> String,
    needle: &str,
    key: &str,
    words: &str,
) {
    let Some(db) = database(kind).await else {
        return;
    };
    let config = config(&db, &break_it(SUBJECTS));
    let line = line_of(&config.to_toml(), needle);
    let path = config.write(&db);
    for verb in [&["check"][..], &["plan"][..], &["run", "--once"][..]] {
        let r = run(&path, verb);
        r.assert_code(78);
        let at = format!("retentiond.toml:{line}: {key}:");
        if !r.stderr.contains(&at) {
            r.fail(&format!("{verb:?}: the message does not name {at:?}"));
        }
        if !r.stderr.contains(words) {
            r.fail(&format!("{verb:?}: the message does not say {words:?}"));
        }
        assert_eq!(
            db.count("SELECT COUNT(*) FROM customers").await,
            3,
            "{verb:?} deleted a customer"
        );
    }
}

#[tokio::test]
async fn valid_subjects_on_postgres_and_sqlite_pass_check_and_uncovered_tables_are_warned() {
    let Some(pg) = database(Kind::Postgres).await else {
        return;
    };
    let Some(lite) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    lite.exec(
        "CREATE TABLE debtors (id TEXT PRIMARY KEY NOT NULL, mail TEXT, name TEXT);
         CREATE TABLE payments (id INTEGER PRIMARY KEY NOT NULL, debtor_id TEXT, paid_at TEXT);
         INSERT INTO debtors VALUES ('d-1', 'ann@example.be', 'Ann');
         INSERT INTO payments VALUES (1, 'd-1', '2030-01-01')",
    )
    .await;
    let books = r#"[[subject]]
name = "books-debtors"
database = "books"
table = "debtors"
key = "id"
identify = { email = "mail" }
erase = "keep"
keep_reason = "Bookkeeping law: debtors are kept 7 years (WER art. III.88)"

[[subject]]
name = "books-payments"
database = "books"
table = "payments"
key = "id"
via = { subject = "books-debtors", foreign_key = "debtor_id" }
erase = "delete"

"#;
    let mut config = config(&pg, &format!("{SUBJECTS}{books}"))
        .rule(RuleSpec::delete("old-visits", "visits", "seen_at").after("1 year"));
    config
        .databases
        .push(DatabaseEntry::new("books", &lite.url));
    config.rules.push(RuleSpec {
        database: "books".into(),
        ..RuleSpec::delete("old-payments", "payments", "paid_at").after("7 years")
    });
    let path = config.write(&pg);
    let r = run(&path, &["check"]);
    r.assert_code(0);
    let warning = "warning: rule \"old-visits\" acts on main.visits, which no [[subject]] covers: a data-subject request would not find a person there";
    if !r.stdout.contains(warning) {
        r.fail("check does not warn about the table no subject covers");
    }
    for covered in ["old-customers", "old-payments"] {
        if r.stdout.contains(&format!("rule \"{covered}\" acts on")) {
            r.fail(&format!(
                "check warns about {covered}, whose table a subject covers"
            ));
        }
    }
    if !r.stdout.contains("3 rules, 4 subjects, 2 databases") {
        r.fail("check does not count the subjects");
    }
    run(&path, &["plan"]).assert_code(0);
}

#[tokio::test]
async fn a_subject_on_a_missing_table_is_refused_at_its_table_key() {
    refused(
        Kind::Postgres,
        |s| edit(s, "table = \"customers\"", "table = \"clients\""),
        "table = \"clients\"",
        "subject \"people\" → table",
        "table 'clients' does not exist",
    )
    .await;
}

#[tokio::test]
async fn a_missing_identify_column_is_refused_at_its_attribute() {
    refused(
        Kind::Sqlite,
        |s| edit(s, "phone = \"phone\" }", "phone = \"mobile\" }"),
        "phone = \"mobile\"",
        "subject \"people\" → identify.phone",
        "column 'mobile' does not exist in table 'customers'",
    )
    .await;
}

#[tokio::test]
async fn a_missing_foreign_key_column_is_refused_at_its_via() {
    refused(
        Kind::MySql,
        |s| {
            edit(
                s,
                "foreign_key = \"customer_id\"",
                "foreign_key = \"client_id\"",
            )
        },
        "foreign_key = \"client_id\"",
        "subject \"people-invoices\" → via.foreign_key",
        "column 'client_id' does not exist in table 'invoices'",
    )
    .await;
}

#[tokio::test]
async fn a_key_that_is_not_unique_is_refused_at_its_key() {
    refused(
        Kind::MySql,
        |s| edit(s, "key = \"id\"\nvia", "key = \"total\"\nvia"),
        "key = \"total\"",
        "subject \"people-invoices\" → key",
        "is not unique",
    )
    .await;
}

#[tokio::test]
async fn a_foreign_key_of_another_type_than_its_key_is_refused() {
    refused(
        Kind::Postgres,
        |s| {
            let s = edit(s, "table = \"invoices\"", "table = \"notes\"");
            edit(
                &s,
                "foreign_key = \"customer_id\"",
                "foreign_key = \"customer_ref\"",
            )
        },
        "foreign_key = \"customer_ref\"",
        "subject \"people-invoices\" → via.foreign_key",
        "holds text, but the key 'id' of subject \"people\", which it refers to, holds integers",
    )
    .await;
}

#[tokio::test]
async fn nulling_a_not_null_column_is_refused_as_for_a_rule() {
    refused(
        Kind::Postgres,
        |s| {
            edit(
                s,
                "phone = \"null\" }",
                "phone = \"null\", city = \"null\" }",
            )
        },
        "city = \"null\"",
        "subject \"people\" → anonymize.city",
        "is NOT NULL, so it cannot be set to null",
    )
    .await;
}

#[tokio::test]
async fn a_circle_of_vias_is_refused_naming_the_circle() {
    refused(
        Kind::Sqlite,
        |s| {
            edit(
                s,
                "identify = { email = \"email\", phone = \"phone\" }",
                "via = { subject = \"people-invoices\", foreign_key = \"id\" }",
            )
        },
        "via = { subject = \"people-invoices\"",
        "subject \"people\" → via.subject",
        "people → people-invoices → people",
    )
    .await;
}

#[tokio::test]
async fn a_via_to_an_unknown_subject_is_refused() {
    refused(
        Kind::Sqlite,
        |s| edit(s, "subject = \"people\"", "subject = \"persons\""),
        "subject = \"persons\"",
        "subject \"people-invoices\" → via.subject",
        "no [[subject]] is named 'persons'",
    )
    .await;
}

#[tokio::test]
async fn anonymize_without_erase_anonymize_is_refused() {
    refused(
        Kind::Sqlite,
        |s| edit(s, "erase = \"anonymize\"", "erase = \"delete\""),
        "anonymize = { name",
        "subject \"people\" → anonymize",
        "belongs to erase = \"anonymize\" only",
    )
    .await;
}

#[tokio::test]
async fn keep_without_a_keep_reason_is_refused() {
    refused(
        Kind::Sqlite,
        |s| {
            edit(
                s,
                "keep_reason = \"Bookkeeping law: invoices are kept 7 years (WER art. III.88)\"\n",
                "",
            )
        },
        "erase = \"keep\"",
        "subject \"people-invoices\" → keep_reason",
        "needs keep_reason",
    )
    .await;
}

#[tokio::test]
async fn check_checks_the_subjects_of_a_database_no_rule_uses() {
    let Some(db) = database(Kind::Sqlite).await else {
        return;
    };
    let Some(other) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    other
        .exec("CREATE TABLE members (id INTEGER PRIMARY KEY NOT NULL, mail TEXT)")
        .await;
    let members = r#"[[subject]]
name = "club-members"
database = "club"
table = "members"
key = "id"
identify = { email = "mail" }
erase = "delete"

"#;
    let write = |subjects: &str| {
        let mut config = config(&db, &format!("{SUBJECTS}{subjects}"));
        config
            .databases
            .push(DatabaseEntry::new("club", &other.url));
        (config.to_toml(), config.write(&db))
    };
    let (_, path) = write(members);
    let r = run(&path, &["check"]);
    r.assert_code(0);
    if r.stdout.contains("database 'club' is reachable but") {
        r.fail("check calls a database that subjects use unused");
    }
    let (text, path) = write(&edit(members, "\"mail\"", "\"email\""));
    let line = line_of(
        &text,
        "identify = { email = \"email\" }\nerase = \"delete\"",
    );
    let r = run(&path, &["check"]);
    r.assert_code(78);
    let at = format!("retentiond.toml:{line}: subject \"club-members\" → identify.email:");
    if !r.stderr.contains(&at) {
        r.fail(&format!("the message does not name {at:?}"));
    }
}

//! Unit tests of `[[subject]]` validation: a valid example across two databases, and each
//! kind of mistake refused at its line and key.

use super::*;

/// Two databases; in each a subject found by `identify` and subjects reached through it,
/// one of them two links away.
const GOOD: &str = r#"[daemon]
state_dir = "/tmp/state"

[databases.crm]
url = "postgres://retentiond@localhost/crm"

[databases.books]
url = "sqlite:///srv/books/ledger.db"

[[rule]]
name = "prospects"
database = "crm"
table = "customers"
key = "id"
expires = { since = "consent_expires_at" }
action = "delete"

[[subject]]
name = "crm-customers"
database = "crm"
table = "customers"
key = "id"
identify = { email = "email", phone = "phone" }
erase = "anonymize"
anonymize = { name = "null", email = "hash", phone = { replace = "-" } }

[[subject]]
name = "crm-orders"
database = "crm"
table = "sales.orders"
key = "id"
via = { subject = "crm-customers", foreign_key = "customer_id" }
erase = "delete"

[[subject]]
name = "crm-order-lines"
database = "crm"
table = "order_lines"
key = "id"
via = { subject = "crm-orders", foreign_key = "order_id" }
erase = "delete"

[[subject]]
name = "books-debtors"
database = "books"
table = "debtors"
key = "id"
identify = { email = "mail", customer-number = "number" }
erase = "keep"
keep_reason = "Bookkeeping law: debtors are kept 7 years (WER art. III.88)"

[[subject]]
name = "books-invoices"
database = "books"
table = "invoices"
key = "number"
via = { subject = "books-debtors", foreign_key = "debtor_id" }
erase = "keep"
keep_reason = "Bookkeeping law: invoices are kept 7 years (WER art. III.88)"
"#;

fn load(src: &str) -> Result<Config, ConfigError> {
    parse(Path::new("retentiond.toml"), src)
}

/// The 1-based line of the first occurrence of `needle` in `src`.
fn line_of(src: &str, needle: &str) -> usize {
    let at = src.find(needle).expect("needle in source");
    src[..at].matches('\n').count() + 1
}

/// The 1-based line of the `nth` (0-based) occurrence of `needle` in `src`.
fn nth_line_of(src: &str, needle: &str, nth: usize) -> usize {
    let (at, _) = src
        .match_indices(needle)
        .nth(nth)
        .expect("needle in source");
    src[..at].matches('\n').count() + 1
}

/// `src` with `old` (which must occur exactly once) replaced by `new`.
fn edit(src: &str, old: &str, new: &str) -> String {
    assert_eq!(src.matches(old).count(), 1, "{old:?} must occur once");
    src.replace(old, new)
}

fn only_problem(src: &str) -> ConfigProblem {
    let e = load(src).expect_err("config should be refused");
    assert_eq!(e.problems.len(), 1, "{e}");
    e.problems[0].clone()
}

/// Asserts the one problem of `src` stands at `line` under `key`, with `words` in its
/// message.
#[track_caller]
fn refused_at(src: &str, line: usize, key: &str, words: &str) {
    let p = only_problem(src);
    assert_eq!((p.line, p.key.as_str()), (line, key), "{p}");
    assert!(p.message.contains(words), "{words:?} not in: {p}");
}

fn ident(s: &str) -> Ident {
    Ident::parse(s).unwrap()
}

#[test]
fn subjects_in_two_databases_load_with_their_links_and_lines() {
    let c = load(GOOD).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = c.subjects.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "crm-customers",
            "crm-orders",
            "crm-order-lines",
            "books-debtors",
            "books-invoices"
        ]
    );
    let customers = &c.subjects[0];
    assert_eq!(customers.database, "crm");
    assert_eq!(customers.key, ident("id"));
    assert_eq!(
        customers.find,
        Find::Identify(BTreeMap::from([
            ("email".to_owned(), ident("email")),
            ("phone".to_owned(), ident("phone")),
        ]))
    );
    assert_eq!(
        customers.erase,
        Erase::Anonymize(vec![
            (ident("email"), Strategy::Hash),
            (ident("name"), Strategy::Null),
            (ident("phone"), Strategy::Replace("-".into())),
        ])
    );
    let orders = &c.subjects[1];
    assert_eq!(orders.table.to_string(), "sales.orders");
    assert_eq!(
        orders.find,
        Find::Via {
            subject: "crm-customers".into(),
            foreign_key: ident("customer_id"),
        }
    );
    assert_eq!(orders.erase, Erase::Delete);
    let invoices = &c.subjects[4];
    assert_eq!(
        invoices.erase,
        Erase::Keep {
            reason: "Bookkeeping law: invoices are kept 7 years (WER art. III.88)".into()
        }
    );
    assert_eq!(
        c.identity_attributes().into_iter().collect::<Vec<_>>(),
        ["customer-number", "email", "phone"]
    );
    // Lines: the subject's own, and each key's (falling back to the enclosing key).
    assert_eq!(customers.line, nth_line_of(GOOD, "[[subject]]", 0));
    assert_eq!(
        customers.line_of("identify.phone"),
        line_of(GOOD, "identify = { email = \"email\"")
    );
    assert_eq!(
        customers.line_of("anonymize.name"),
        line_of(GOOD, "anonymize = { name")
    );
    assert_eq!(customers.line_of("nonsense"), customers.line);
    assert_eq!(
        orders.line_of("via.foreign_key"),
        line_of(GOOD, "foreign_key = \"customer_id\"")
    );
    assert_eq!(
        orders.line_of("table"),
        line_of(GOOD, "table = \"sales.orders\"")
    );
    assert_eq!(
        invoices.line_of("keep_reason"),
        nth_line_of(GOOD, "keep_reason", 1)
    );
    // A subject may share a rule's name: they are different things.
    let shared = edit(GOOD, "name = \"crm-orders\"", "name = \"prospects\"");
    let shared = edit(
        &shared,
        "subject = \"crm-orders\"",
        "subject = \"prospects\"",
    );
    load(&shared).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_config_without_subjects_has_none() {
    let end = GOOD.find("[[subject]]").expect("a subject");
    let c = load(&GOOD[..end]).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.subjects.is_empty());
    assert!(c.identity_attributes().is_empty());
}

#[test]
fn a_duplicate_subject_name_is_refused_at_the_second() {
    let src = edit(GOOD, "name = \"crm-order-lines\"", "name = \"crm-orders\"");
    // crm-order-lines' via now names a subject of the same name: itself, the first by name.
    let src = edit(
        &src,
        "subject = \"crm-orders\"",
        "subject = \"crm-customers\"",
    );
    refused_at(
        &src,
        nth_line_of(&src, "name = \"crm-orders\"", 1),
        "subject \"crm-orders\" → name",
        "duplicate subject name",
    );
}

#[test]
fn an_unknown_database_is_refused() {
    let src = edit(
        GOOD,
        "database = \"books\"\ntable = \"debtors\"",
        "database = \"boeken\"\ntable = \"debtors\"",
    );
    // books-invoices is reached through books-debtors, now (as written) in another database.
    let e = load(&src).expect_err("refused");
    let p = e
        .problems
        .iter()
        .find(|p| p.key == "subject \"books-debtors\" → database")
        .unwrap_or_else(|| panic!("{e}"));
    assert_eq!(p.line, line_of(&src, "database = \"boeken\""));
    assert!(p.message.contains("unknown database 'boeken'"), "{p}");
    assert!(p.message.contains("books, crm"), "{p}");
}

#[test]
fn identifiers_that_could_escape_quoting_are_refused() {
    let src = edit(
        GOOD,
        "table = \"order_lines\"",
        "table = \"order_lines; drop\"",
    );
    refused_at(
        &src,
        line_of(&src, "order_lines; drop"),
        "subject \"crm-order-lines\" → table",
        "not a plain SQL identifier",
    );
    let src = edit(GOOD, "key = \"number\"", "key = \"num\\\"ber\"");
    refused_at(
        &src,
        line_of(&src, "key = \"num"),
        "subject \"books-invoices\" → key",
        "not a plain SQL identifier",
    );
    let src = edit(GOOD, "phone = \"phone\"", "phone = \"phone number\"");
    refused_at(
        &src,
        line_of(&src, "phone number"),
        "subject \"crm-customers\" → identify.phone",
        "not a plain SQL identifier",
    );
    let src = edit(
        GOOD,
        "foreign_key = \"order_id\"",
        "foreign_key = \"order-id\"",
    );
    refused_at(
        &src,
        line_of(&src, "order-id"),
        "subject \"crm-order-lines\" → via.foreign_key",
        "not a plain SQL identifier",
    );
}

#[test]
fn a_subject_needs_exactly_one_of_identify_and_via() {
    let src = edit(
        GOOD,
        "identify = { email = \"mail\", customer-number = \"number\" }\n",
        "",
    );
    refused_at(
        &src,
        nth_line_of(&src, "[[subject]]", 3),
        "subject \"books-debtors\" → identify",
        "neither",
    );
    let src = edit(
        GOOD,
        "via = { subject = \"crm-orders\", foreign_key = \"order_id\" }",
        "via = { subject = \"crm-orders\", foreign_key = \"order_id\" }\nidentify = { email = \"email\" }",
    );
    refused_at(
        &src,
        line_of(&src, "subject = \"crm-orders\""),
        "subject \"crm-order-lines\" → via",
        "not both",
    );
}

#[test]
fn identify_names_attributes_plainly() {
    let src = edit(
        GOOD,
        "identify = { email = \"email\", phone = \"phone\" }",
        "identify = {}",
    );
    refused_at(
        &src,
        line_of(&src, "identify = {}"),
        "subject \"crm-customers\" → identify",
        "names no attribute",
    );
    let src = edit(
        GOOD,
        "customer-number = \"number\"",
        "\"Customer Number\" = \"number\"",
    );
    refused_at(
        &src,
        line_of(&src, "Customer Number"),
        "subject \"books-debtors\" → identify.Customer Number",
        "not an identity attribute name",
    );
}

#[test]
fn via_must_name_another_subject() {
    let src = edit(GOOD, "subject = \"crm-orders\"", "subject = \"crm-order\"");
    refused_at(
        &src,
        line_of(&src, "subject = \"crm-order\""),
        "subject \"crm-order-lines\" → via.subject",
        "no [[subject]] is named 'crm-order'",
    );
}

#[test]
fn a_circle_of_vias_is_refused_once_naming_the_circle() {
    // crm-customers → crm-order-lines → crm-orders → crm-customers.
    let src = edit(
        GOOD,
        "identify = { email = \"email\", phone = \"phone\" }",
        "via = { subject = \"crm-order-lines\", foreign_key = \"line_id\" }",
    );
    refused_at(
        &src,
        line_of(&src, "subject = \"crm-order-lines\""),
        "subject \"crm-customers\" → via.subject",
        "crm-customers → crm-order-lines → crm-orders → crm-customers",
    );
    // A subject reached through itself.
    let src = edit(
        GOOD,
        "subject = \"crm-orders\"",
        "subject = \"crm-order-lines\"",
    );
    refused_at(
        &src,
        line_of(&src, "subject = \"crm-order-lines\""),
        "subject \"crm-order-lines\" → via.subject",
        "(crm-order-lines → crm-order-lines)",
    );
}

#[test]
fn via_across_databases_is_accepted_as_the_product_writes_it() {
    // PRODUCT.md's own example reaches books-invoices through crm-customers: the keys
    // found in one database are looked up as values in the other.
    let src = edit(
        GOOD,
        "subject = \"books-debtors\"",
        "subject = \"crm-customers\"",
    );
    let config = load(&src).unwrap_or_else(|e| panic!("{e}"));
    let invoices = config
        .subjects
        .iter()
        .find(|s| s.name == "books-invoices")
        .expect("books-invoices");
    assert!(
        matches!(&invoices.find, crate::config::Find::Via { subject, .. } if subject == "crm-customers")
    );
}

#[test]
fn erase_is_one_of_three() {
    let src = edit(GOOD, "erase = \"anonymize\"", "erase = \"forget\"");
    refused_at(
        &src,
        line_of(&src, "erase = \"forget\""),
        "subject \"crm-customers\" → erase",
        "not a way to erase",
    );
}

#[test]
fn anonymize_goes_with_erase_anonymize_and_only_with_it() {
    let src = edit(GOOD, "erase = \"anonymize\"", "erase = \"delete\"");
    refused_at(
        &src,
        line_of(&src, "anonymize = {"),
        "subject \"crm-customers\" → anonymize",
        "belongs to erase = \"anonymize\" only",
    );
    let src = edit(
        GOOD,
        "anonymize = { name = \"null\", email = \"hash\", phone = { replace = \"-\" } }\n",
        "",
    );
    refused_at(
        &src,
        line_of(&src, "erase = \"anonymize\""),
        "subject \"crm-customers\" → anonymize",
        "needs an anonymize table",
    );
    // The rule's parser: the same strategies, the same refusals.
    let src = edit(GOOD, "email = \"hash\"", "email = \"scramble\"");
    refused_at(
        &src,
        line_of(&src, "scramble"),
        "subject \"crm-customers\" → anonymize.email",
        "not a strategy",
    );
    let src = edit(
        GOOD,
        "anonymize = { name = \"null\", email = \"hash\", phone = { replace = \"-\" } }",
        "anonymize = {}",
    );
    refused_at(
        &src,
        line_of(&src, "anonymize = {}"),
        "subject \"crm-customers\" → anonymize",
        "names no column",
    );
}

#[test]
fn the_key_column_cannot_be_anonymized() {
    let src = edit(
        GOOD,
        "anonymize = { name = \"null\"",
        "anonymize = { ID = \"null\", name = \"null\"",
    );
    refused_at(
        &src,
        line_of(&src, "anonymize = { ID"),
        "subject \"crm-customers\" → anonymize.ID",
        "key column cannot be anonymized",
    );
}

#[test]
fn keep_reason_goes_with_erase_keep_and_only_with_it() {
    let src = edit(
        GOOD,
        "keep_reason = \"Bookkeeping law: invoices are kept 7 years (WER art. III.88)\"\n",
        "",
    );
    refused_at(
        &src,
        nth_line_of(&src, "erase = \"keep\"", 1),
        "subject \"books-invoices\" → keep_reason",
        "needs keep_reason",
    );
    let src = edit(
        GOOD,
        "keep_reason = \"Bookkeeping law: invoices are kept 7 years (WER art. III.88)\"",
        "keep_reason = \"  \"",
    );
    refused_at(
        &src,
        line_of(&src, "keep_reason = \"  \""),
        "subject \"books-invoices\" → keep_reason",
        "is empty",
    );
    let src = edit(
        GOOD,
        "erase = \"delete\"\n\n[[subject]]\nname = \"crm-order-lines\"",
        "erase = \"delete\"\nkeep_reason = \"just because\"\n\n[[subject]]\nname = \"crm-order-lines\"",
    );
    refused_at(
        &src,
        line_of(&src, "just because"),
        "subject \"crm-orders\" → keep_reason",
        "belongs to erase = \"keep\" only",
    );
}

#[test]
fn an_unknown_subject_key_is_named_with_its_line() {
    let src = edit(
        GOOD,
        "erase = \"anonymize\"",
        "erase = \"anonymize\"\nforget = true",
    );
    let p = only_problem(&src);
    assert_eq!(p.line, line_of(&src, "forget = true"), "{p}");
    assert!(p.key.contains("forget"), "{p}");
}

#[test]
fn all_subject_problems_are_reported_at_once() {
    let src = edit(GOOD, "erase = \"anonymize\"", "erase = \"delete\"");
    let src = edit(&src, "subject = \"crm-orders\"", "subject = \"crm-order\"");
    let src = edit(
        &src,
        "keep_reason = \"Bookkeeping law: invoices are kept 7 years (WER art. III.88)\"\n",
        "",
    );
    let e = load(&src).expect_err("refused");
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "subject \"crm-order-lines\" → via.subject",
            "subject \"crm-customers\" → anonymize",
            "subject \"books-invoices\" → keep_reason",
        ],
        "{e}"
    );
}

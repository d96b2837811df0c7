//! Unit tests of config validation: every class of mistake names its line and key.

use super::*;

const GOOD: &str = r#"[daemon]
state_dir = "/tmp/state"
schedule = "0 30 2 * * *"
timezone = "Europe/Brussels"
report_language = "nl"

[databases.hr]
url = "postgres://retentiond:pw@localhost/hr"

[databases.crm]
url = "mysql://retentiond@localhost/crm"
password_file = "/run/credentials/crm"

[[rule]]
name = "rejected-applicants"
legal_basis = "GDPR art. 5(1)(e)"
database = "hr"
table = "applicants"
key = "id"
filter = "decision = 'rejected'"
expires = { since = "decided_at", after = "0 days" }
action = "delete"

[[rule]]
name = "prospects-without-consent"
database = "crm"
table = "prospects"
key = "id"
expires = { since = "consent_expires_at" }
action = "anonymize"
anonymize = { name = "null", email = "hash", city = { replace = "-" } }

[[rule]]
name = "dormant-customers"
database = "crm"
table = "customers"
key = "id"
expires = { since = "last_order_at", after = "5 years" }
action = "flag"
flag = { column = "retention_review", value = "due" }
"#;

fn load(src: &str) -> Result<Config, ConfigError> {
    parse(Path::new("retentiond.toml"), src)
}

/// The 1-based line of the first occurrence of `needle` in `src`.
fn line_of(src: &str, needle: &str) -> usize {
    let at = src.find(needle).expect("needle in source");
    src[..at].matches('\n').count() + 1
}

fn only_problem(src: &str) -> ConfigProblem {
    let e = load(src).expect_err("config should be refused");
    assert_eq!(e.problems.len(), 1, "{e}");
    e.problems[0].clone()
}

#[test]
fn the_product_example_loads_into_typed_rules() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.rules.len(), 3);
    assert_eq!(c.daemon.language, Language::Nl);
    assert_eq!(c.rules[0].after, Period::Days(0));
    assert_eq!(c.rules[0].line, line_of(GOOD, "[[rule]]"));
    assert_eq!(c.rules[1].after, Period::Days(0));
    assert_eq!(
        c.rules[1].action,
        Action::Anonymize(vec![
            (Ident::parse("city").unwrap(), Strategy::Replace("-".into())),
            (Ident::parse("email").unwrap(), Strategy::Hash),
            (Ident::parse("name").unwrap(), Strategy::Null),
        ])
    );
    assert_eq!(
        c.databases["crm"].secret,
        Secret::File("/run/credentials/crm".into())
    );
    assert!(!format!("{:?}", c.databases["hr"]).contains("pw"));
}

#[test]
fn a_read_url_is_kept_with_the_databases_secret_and_timeouts_and_masked() {
    let src = GOOD.replace(
        "password_file = \"/run/credentials/crm\"\n",
        "password_file = \"/run/credentials/crm\"\nread_url = \"mariadb://retentiond:s3cret@replica/crm\"\n",
    );
    let c = load(&src).unwrap();
    let read = c.read_spec("crm").expect("crm has a read_url");
    assert_eq!(read.url, "mysql://retentiond:s3cret@replica/crm");
    assert_eq!(read.secret, c.databases["crm"].secret);
    assert_eq!(read.timeouts, c.databases["crm"].timeouts);
    assert_eq!(read.name, "crm");
    assert!(c.read_spec("hr").is_none());
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn a_read_url_of_another_kind_or_on_sqlite_is_refused_at_its_line() {
    let other = GOOD.replace(
        "password_file = \"/run/credentials/crm\"\n",
        "password_file = \"/run/credentials/crm\"\nread_url = \"postgres://u:s3cret@replica/crm\"\n",
    );
    let p = only_problem(&other);
    assert_eq!(p.line, line_of(&other, "read_url"), "{p}");
    assert_eq!(p.key, "databases.crm.read_url");
    assert!(p.message.contains("MariaDB/MySQL"), "{p}");
    assert!(!p.message.contains("s3cret"), "{p}");
    let sqlite = GOOD.replace(
        "url = \"mysql://retentiond@localhost/crm\"\n",
        "url = \"sqlite:///srv/crm.db\"\nread_url = \"sqlite:///srv/copy.db\"\n",
    );
    let p = only_problem(&sqlite);
    assert_eq!(p.line, line_of(&sqlite, "read_url"), "{p}");
    assert!(p.message.contains("SQLite"), "{p}");
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let src = format!("{GOOD}bogus_key = 1\n");
    let p = only_problem(&src);
    assert_eq!(p.line, line_of(&src, "bogus_key"));
    assert!(p.key.contains("bogus_key"), "{p}");
}

#[test]
fn a_syntax_error_names_its_line() {
    let src = GOOD.replace("key = \"id\"\nfilter", "key = \"id\nfilter");
    let p = only_problem(&src);
    assert_eq!(p.line, line_of(&src, "key = \"id\n"), "{p}");
}

#[test]
fn a_bad_cron_is_refused() {
    let p = only_problem(&GOOD.replace("0 30 2 * * *", "30 2 * *"));
    assert_eq!((p.line, p.key.as_str()), (3, "daemon.schedule"));
}

#[test]
fn a_bad_duration_is_refused() {
    let p = only_problem(&GOOD.replace("5 years", "5 yrs"));
    assert_eq!(p.line, line_of(GOOD, "5 years"));
    assert_eq!(p.key, "rule \"dormant-customers\" → expires.after");
}

#[test]
fn batches_are_timed_unless_a_rule_fixes_their_size() {
    let c = load(GOOD).unwrap();
    let ms = std::time::Duration::from_millis;
    assert_eq!(c.rules[0].batch_sizing, BatchSizing::Timed(ms(100)));
    assert_eq!(c.rules[0].batch_pause_factor, 0.0);
    assert_eq!(c.daemon.parallel, DEFAULT_PARALLEL);
    let src = GOOD
        .replacen(
            "action = \"delete\"",
            "action = \"delete\"\nbatch_size = 250",
            1,
        )
        .replacen(
            "expires = { since = \"consent_expires_at\" }",
            "expires = { since = \"consent_expires_at\" }\nbatch_time = \"2 s\"\nbatch_pause_factor = 1.5",
            1,
        )
        .replacen("report_language", "parallel = 1\nreport_language", 1);
    let c = load(&src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.rules[0].batch_sizing, BatchSizing::Fixed(250));
    assert_eq!(
        c.rules[1].batch_sizing,
        BatchSizing::Timed(std::time::Duration::from_secs(2))
    );
    assert_eq!(c.rules[1].batch_pause_factor, 1.5);
    assert_eq!(c.daemon.parallel, 1);
}

#[test]
fn a_batch_time_or_pause_factor_out_of_bounds_is_refused_at_its_line() {
    let at_rule = |extra: &str| {
        GOOD.replacen(
            "action = \"delete\"",
            &format!("action = \"delete\"\n{extra}"),
            1,
        )
    };
    for (extra, key, says) in [
        ("batch_time = \"5 ms\"", "batch_time", "10 ms to 10 s"),
        ("batch_time = \"11 s\"", "batch_time", "10 ms to 10 s"),
        ("batch_time = \"fast\"", "batch_time", "not a duration"),
        ("batch_time = 5", "batch_time", "not a duration"),
        (
            "batch_size = 10\nbatch_time = \"1 s\"",
            "batch_time",
            "keep one",
        ),
        (
            "batch_pause_factor = -1",
            "batch_pause_factor",
            "from 0 to 100",
        ),
        (
            "batch_pause_factor = 100.5",
            "batch_pause_factor",
            "from 0 to 100",
        ),
        (
            "batch_pause_factor = \"2\"",
            "batch_pause_factor",
            "from 0 to 100",
        ),
    ] {
        let src = at_rule(extra);
        let p = only_problem(&src);
        assert_eq!(p.line, line_of(&src, &format!("{key} =")), "{extra}: {p}");
        assert_eq!(
            p.key,
            format!("rule \"rejected-applicants\" → {key}"),
            "{extra}"
        );
        assert!(p.message.contains(says), "{extra}: {p}");
    }
}

#[test]
fn a_batch_time_as_long_as_the_databases_statement_timeout_is_refused_at_its_line() {
    let with = |batch_time: &str| {
        GOOD.replacen(
            "url = \"postgres://retentiond:pw@localhost/hr\"",
            "url = \"postgres://retentiond:pw@localhost/hr\"\nstatement_timeout = \"2 s\"",
            1,
        )
        .replacen(
            "action = \"delete\"",
            &format!("action = \"delete\"\nbatch_time = \"{batch_time}\""),
            1,
        )
    };
    let src = with("2 s");
    let p = only_problem(&src);
    assert_eq!(p.line, line_of(&src, "batch_time ="), "{p}");
    assert_eq!(p.key, "rule \"rejected-applicants\" → batch_time");
    assert!(p.message.contains("statement_timeout"), "{p}");
    assert!(load(&with("1 s")).is_ok());
}

#[test]
fn parallel_is_a_whole_number_from_1_to_64() {
    for bad in ["0", "65", "-1", "\"four\"", "2.5"] {
        let src = GOOD.replacen(
            "report_language",
            &format!("parallel = {bad}\nreport_language"),
            1,
        );
        let e = load(&src).expect_err(bad);
        assert_eq!(e.problems.len(), 1, "{e}");
        let p = &e.problems[0];
        assert_eq!(p.line, line_of(&src, "parallel ="), "{bad}: {p}");
        assert!(p.key.contains("parallel"), "{bad}: {p}");
    }
    let src = GOOD.replacen("report_language", "parallel = 64\nreport_language", 1);
    assert_eq!(load(&src).unwrap().daemon.parallel, 64);
}

#[test]
fn an_unknown_database_is_refused() {
    let p = only_problem(&GOOD.replacen("database = \"hr\"", "database = \"hrr\"", 1));
    assert_eq!(p.line, line_of(GOOD, "database = \"hr\""));
    assert!(p.message.contains("unknown database 'hrr'"), "{p}");
}

#[test]
fn identifiers_with_quotes_or_semicolons_are_refused() {
    let p = only_problem(&GOOD.replace(
        "table = \"applicants\"",
        "table = \"applicants; drop table x\"",
    ));
    assert_eq!(
        (p.line, p.key.as_str()),
        (
            line_of(GOOD, "table = \"applicants\""),
            "rule \"rejected-applicants\" → table"
        )
    );
    let p = only_problem(&GOOD.replace("key = \"id\"\nfilter", "key = \"i\\\"d\"\nfilter"));
    assert_eq!(p.line, line_of(GOOD, "key = \"id\"\nfilter"));
}

#[test]
fn a_duplicate_rule_name_is_refused() {
    let p = only_problem(&GOOD.replace("dormant-customers", "rejected-applicants"));
    assert_eq!(p.line, line_of(GOOD, "name = \"dormant-customers\""));
    assert!(p.message.contains("duplicate"));
}

#[test]
fn filters_with_statements_or_comments_are_refused() {
    for bad in [
        "x = 1; delete from t",
        "x = 1 -- and",
        "x = 1 /* y */",
        "x = 'open",
    ] {
        let p = only_problem(&GOOD.replace("decision = 'rejected'", bad));
        assert_eq!(p.line, line_of(GOOD, "filter ="), "{bad}: {p}");
    }
    assert!(load(&GOOD.replace("decision = 'rejected'", "note = 'a;b -- c'")).is_ok());
}

#[test]
fn a_filter_is_parsed_in_its_databases_dialect_and_kept_as_rendered() {
    // Backticks quote a name in MySQL, and mean nothing to PostgreSQL.
    let backticks = GOOD.replace("decision = 'rejected'", "`decision`='rejected'");
    let p = only_problem(&backticks);
    assert_eq!(
        (p.line, p.key.as_str()),
        (
            line_of(GOOD, "filter ="),
            "rule \"rejected-applicants\" → filter"
        )
    );
    assert!(p.message.contains("is not one SQL condition"), "{p}");
    let on_mysql = backticks.replacen("database = \"hr\"", "database = \"crm\"", 1);
    let c = load(&on_mysql).unwrap_or_else(|e| panic!("{e}"));
    let f = c.rules[0].filter.as_ref().expect("a filter");
    assert_eq!(
        (f.sql(), f.dialect()),
        ("`decision` = 'rejected'", Dialect::MySql)
    );
}

#[test]
fn a_hold_filter_is_one_condition_and_its_fingerprint_follows_the_rendered_sql() {
    let hold = |filter: &str, database: &str| {
        format!(
            "{GOOD}\n[[hold]]\nname = \"case-17\"\nreason = \"Case 17\"\ndatabase = \"{database}\"\n\
             table = \"applicants\"\nfilter = \"{filter}\"\n"
        )
    };
    let src = hold("id = 1) OR (id = 2", "hr");
    let p = only_problem(&src);
    assert_eq!(p.line, line_of(&src, "filter = \"id"), "{p}");
    assert_eq!(p.key, "hold \"case-17\" → filter");
    // An unknown database is the one problem: there is no dialect to read the filter in.
    let p = only_problem(&hold("id = 1) OR (id = 2", "nowhere"));
    assert!(p.message.contains("unknown database"), "{p}");
    let spaced = load(&hold("id in (1,2)", "hr")).unwrap_or_else(|e| panic!("{e}"));
    let tidy = load(&hold("id IN (1, 2)", "hr")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spaced.holds[0].filter.sql(), "id IN (1, 2)");
    assert_eq!(
        spaced.holds[0].fingerprint(),
        tidy.holds[0].fingerprint(),
        "re-spacing a filter is no change of the hold"
    );
    let other = load(&hold("id IN (1, 3)", "hr")).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(spaced.holds[0].fingerprint(), other.holds[0].fingerprint());
}

#[test]
fn actions_need_their_settings_and_nothing_else() {
    let p = only_problem(&GOOD.replace("action = \"delete\"", "action = \"purge\""));
    assert!(p.message.contains("not an action"), "{p}");
    let p = only_problem(&GOOD.replace(
        "flag = { column = \"retention_review\", value = \"due\" }\n",
        "",
    ));
    assert!(p.message.contains("needs flag"), "{p}");
    let p = only_problem(&GOOD.replace("email = \"hash\"", "email = \"scramble\""));
    assert!(p.message.contains("not a strategy"), "{p}");
}

#[test]
fn several_problems_are_reported_at_once() {
    let e = load(
        &GOOD
            .replace("5 years", "5 yrs")
            .replace("Europe/Brussels", "Mars/Olympus"),
    )
    .unwrap_err();
    assert_eq!(e.problems.len(), 2, "{e}");
}

#[test]
fn the_shipped_example_config_is_valid() {
    let src = include_str!("../../config/retentiond.toml");
    let c = load(src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.rules.len(), 5);
    assert_eq!(c.subjects.len(), 2);
}

mod properties {
    //! Hostile input: whatever the file holds, the loader answers with a config or an
    //! error that names a line, and never panics.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_text_is_parsed_or_refused_without_panic(src in "\\PC{0,400}") {
            if let Err(e) = load(&src) {
                prop_assert!(!e.problems.is_empty());
            }
        }

        #[test]
        fn any_edit_of_a_valid_config_is_parsed_or_refused_with_a_line(at in 0usize..2000, text in "[\\[\\]{}=\"',;.#\\-a-z0-9 \\n]{0,12}") {
            let at = at.min(GOOD.len());
            let at = (0..=at).rev().find(|i| GOOD.is_char_boundary(*i)).unwrap_or(0);
            let src = format!("{}{}{}", &GOOD[..at], text, &GOOD[at..]);
            match load(&src) {
                Ok(c) => {
                    for r in &c.rules {
                        prop_assert!(Ident::parse(r.key.as_str()).is_ok());
                    }
                }
                Err(e) => {
                    let lines = src.lines().count().max(1);
                    for p in &e.problems {
                        prop_assert!(p.line >= 1 && p.line <= lines + 1, "line {} of {}", p.line, lines);
                    }
                }
            }
        }

        #[test]
        fn an_accepted_identifier_can_never_leave_its_quotes(s in "\\PC{0,40}") {
            if let Ok(i) = Ident::parse(&s) {
                prop_assert!(i.as_str().chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                for quoted in [crate::db::Dialect::Postgres.ident(&i), crate::db::Dialect::MySql.ident(&i), crate::db::Dialect::Sqlite.ident(&i)] {
                    let inner = &quoted[1..quoted.len() - 1];
                    prop_assert!(!inner.contains(['"', '`', '\'', ';', ' ', '-', '/', '*']));
                }
            }
        }
    }
}

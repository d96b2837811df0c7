//! A rule's related rows (`children`) on PostgreSQL, MariaDB and SQLite: a parent with
//! children at two levels is deleted with exactly one audit entry per row at every level,
//! in the same transaction and before its parent; SIGKILL mid-pass settles the children
//! too; and a cascading foreign key that no `children` entry names is refused by `check`
//! at its line (it would delete rows without an audit entry).

use crate::helpers::{command, run, ConfigBuilder, Kind, RuleSpec, TestDb};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// Applicants, each with two notes, each note with `attachments` attachments; every even
/// applicant was rejected long ago. Both foreign keys cascade.
async fn hr(kind: Kind, applicants: i64, attachments: i64) -> Option<TestDb> {
    let db = TestDb::new(kind).await?;
    let t = if kind == Kind::MySql {
        "VARCHAR(100)"
    } else {
        "TEXT"
    };
    db.exec(&format!(
        "CREATE TABLE applicants (id INTEGER PRIMARY KEY, name {t}, decided_at DATE);\n\
         CREATE TABLE applicant_notes (id INTEGER PRIMARY KEY, applicant_id INTEGER NOT NULL REFERENCES applicants (id) ON DELETE CASCADE, body {t});\n\
         CREATE TABLE note_attachments (id INTEGER PRIMARY KEY, note_id INTEGER NOT NULL REFERENCES applicant_notes (id) ON DELETE CASCADE, file {t})"
    ))
    .await;
    let ids: Vec<i64> = (1..=applicants).collect();
    for chunk in ids.chunks(500) {
        let a: Vec<String> = chunk
            .iter()
            .map(|i| {
                let day = if i % 2 == 0 {
                    "2001-01-01"
                } else {
                    "2999-01-01"
                };
                format!("({i}, 'applicant {i}', '{day}')")
            })
            .collect();
        db.exec(&format!("INSERT INTO applicants VALUES {}", a.join(", ")))
            .await;
        let n: Vec<String> = chunk
            .iter()
            .flat_map(|i| [(i * 10 + 1, i), (i * 10 + 2, i)])
            .map(|(n, i)| format!("({n}, {i}, 'note')"))
            .collect();
        db.exec(&format!(
            "INSERT INTO applicant_notes VALUES {}",
            n.join(", ")
        ))
        .await;
        let f: Vec<String> = chunk
            .iter()
            .flat_map(|i| [i * 10 + 1, i * 10 + 2])
            .flat_map(|n| (0..attachments).map(move |k| (n * 10 + k, n)))
            .map(|(f, n)| format!("({f}, {n}, 'cv.pdf')"))
            .collect();
        if !f.is_empty() {
            db.exec(&format!(
                "INSERT INTO note_attachments VALUES {}",
                f.join(", ")
            ))
            .await;
        }
    }
    Some(db)
}

/// The rule, with or without its `children`.
fn config(db: &TestDb, with_children: bool, batch_size: u64) -> (ConfigBuilder, PathBuf) {
    let mut rule = RuleSpec::delete("rejected-applicants", "applicants", "decided_at")
        .after("1 year")
        .batch_size(batch_size)
        .max_fraction(1.0);
    if with_children {
        rule = rule.raw(
            "children",
            "[{ table = \"applicant_notes\", foreign_key = \"applicant_id\", key = \"id\", children = [{ table = \"note_attachments\", foreign_key = \"note_id\", key = \"id\" }] }]",
        );
    }
    let builder = ConfigBuilder::new(db).rule(rule);
    let path = builder.write(db);
    (builder, path)
}

/// `(table, key, action)` of every entry about a record (not the history of rules and holds).
fn entries(config: &std::path::Path) -> Vec<(String, String, String)> {
    let r = run(config, &["audit", "export", "--format", "jsonl"]);
    r.assert_code(0);
    r.stdout
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).expect("jsonl");
            (
                e["table"].as_str().unwrap_or_default().to_owned(),
                e["key"].as_str().unwrap_or_default().to_owned(),
                e["action"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .filter(|(_, _, action)| !action.starts_with("rule-") && !action.starts_with("hold-"))
        .collect()
}

/// What the rule must delete: per table, the keys.
fn expected(applicants: i64, attachments: i64) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for i in (1..=applicants).filter(|i| i % 2 == 0) {
        out.insert(("applicants".to_owned(), i.to_string()));
        for n in [i * 10 + 1, i * 10 + 2] {
            out.insert(("applicant_notes".to_owned(), n.to_string()));
            for k in 0..attachments {
                out.insert(("note_attachments".to_owned(), (n * 10 + k).to_string()));
            }
        }
    }
    out
}

/// The trail's `(table, key)` set equals the rows deleted: one entry per row at every
/// level, none missing, none extra (the difference is printed, not the sets).
fn same(seen: &BTreeSet<(String, String)>, want: &BTreeSet<(String, String)>) {
    let missing: Vec<_> = want.difference(seen).take(10).collect();
    let extra: Vec<_> = seen.difference(want).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} entries for {} rows deleted; missing (first 10): {missing:?}; extra: {extra:?}",
        seen.len(),
        want.len()
    );
}

async fn remaining(db: &TestDb) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for table in ["applicants", "applicant_notes", "note_attachments"] {
        for r in db.rows(table, &["id"]).await {
            if let Some(id) = r.into_iter().next().flatten() {
                out.insert((table.to_owned(), id));
            }
        }
    }
    out
}

async fn children_are_deleted_first_with_their_own_entries(kind: Kind) {
    let Some(db) = hr(kind, 10, 2).await else {
        return;
    };
    // Without `children`, the cascade would delete notes and attachments unaudited.
    let (builder, bare) = config(&db, false, 3);
    let refused = run(&bare, &["check"]);
    refused.assert_code(78);
    let line = builder.line("rule[0].table");
    assert!(
        refused.stderr.contains(&format!(":{line}:"))
            && refused.stderr.contains("applicant_notes.applicant_id")
            && refused.stderr.contains("children"),
        "the unnamed cascade is named at the rule's table (line {line}): {refused}"
    );
    run(&bare, &["run", "--once"]).assert_code(78);
    assert_eq!(db.count("SELECT COUNT(*) FROM applicants").await, 10);

    let (_, path) = config(&db, true, 3);
    run(&path, &["check"]).assert_code(0);
    run(&path, &["run", "--once"]).assert_code(0);
    let want = expected(10, 2);
    let all = expected(100, 2);
    let left = remaining(&db).await;
    assert!(
        want.is_disjoint(&left),
        "every row of a rejected applicant is gone"
    );
    assert_eq!(left.len(), 5 + 10 + 20, "the others are untouched");
    let trail = entries(&path);
    let mut seen = BTreeSet::new();
    for (table, key, action) in &trail {
        assert_eq!(action, "delete");
        assert!(
            seen.insert((table.clone(), key.clone())),
            "two entries for {table} {key}"
        );
    }
    same(&seen, &want);
    assert!(all.is_superset(&seen));
    // Within the trail, each applicant's attachments and notes come before it.
    let pos = |t: &str, k: &str| {
        trail
            .iter()
            .position(|(tt, kk, _)| tt == t && kk == k)
            .expect("entry")
    };
    assert!(pos("note_attachments", "210") < pos("applicant_notes", "21"));
    assert!(pos("applicant_notes", "21") < pos("applicants", "2"));
    run(&path, &["audit", "verify"]).assert_code(0);
    // Again: nothing left.
    run(&path, &["run", "--once"]).assert_code(0);
    assert_eq!(entries(&path).len(), trail.len());
}

#[tokio::test]
async fn children_are_deleted_first_with_their_own_entries_on_sqlite() {
    children_are_deleted_first_with_their_own_entries(Kind::Sqlite).await;
}

#[tokio::test]
async fn children_are_deleted_first_with_their_own_entries_on_postgres() {
    children_are_deleted_first_with_their_own_entries(Kind::Postgres).await;
}

#[tokio::test]
async fn children_are_deleted_first_with_their_own_entries_on_mariadb() {
    children_are_deleted_first_with_their_own_entries(Kind::MySql).await;
}

/// Kills the pass with SIGKILL again and again; the final pass settles every batch, and
/// the trail holds exactly one entry per row deleted at every level.
async fn killed_mid_pass(kind: Kind) {
    const APPLICANTS: i64 = 1600;
    let Some(db) = hr(kind, APPLICANTS, 1).await else {
        return;
    };
    let (_, path) = config(&db, true, 7);
    let mut rng = 0x9e37_79b9_u64;
    let mut kills = 0;
    for _ in 0..8 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = command(&path, &["run", "--once"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        tokio::time::sleep(Duration::from_millis(60 + rng % 260)).await;
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
    }
    run(&path, &["run", "--once"]).assert_code(0);
    assert!(
        kills >= 2,
        "killed mid-pass only {kills} times; the test proves nothing"
    );
    let want = expected(APPLICANTS, 1);
    assert!(want.is_disjoint(&remaining(&db).await));
    let mut seen = BTreeSet::new();
    for (table, key, _) in entries(&path) {
        assert!(
            seen.insert((table.clone(), key.clone())),
            "two entries for {table} {key}"
        );
    }
    same(&seen, &want);
    run(&path, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn sigkill_mid_pass_settles_children_on_sqlite() {
    killed_mid_pass(Kind::Sqlite).await;
}

#[tokio::test]
async fn sigkill_mid_pass_settles_children_on_postgres() {
    killed_mid_pass(Kind::Postgres).await;
}

#[tokio::test]
async fn sigkill_mid_pass_settles_children_on_mariadb() {
    killed_mid_pass(Kind::MySql).await;
}

#[tokio::test]
async fn an_anonymizing_rule_anonymizes_the_columns_its_children_share() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    db.exec(
        "CREATE TABLE applicants (id INTEGER PRIMARY KEY, name TEXT, email TEXT, decided_at DATE);\n\
         CREATE TABLE applicant_notes (id INTEGER PRIMARY KEY, applicant_id INTEGER NOT NULL REFERENCES applicants (id), email TEXT, body TEXT);\n\
         CREATE TABLE note_tags (id INTEGER PRIMARY KEY, note_id INTEGER NOT NULL REFERENCES applicant_notes (id), tag TEXT);\n\
         INSERT INTO applicants VALUES (1, 'Ann', 'ann@example.org', '2001-01-01'), (2, 'Bob', 'bob@example.org', '2999-01-01');\n\
         INSERT INTO applicant_notes VALUES (11, 1, 'ann@example.org', 'met Ann'), (21, 2, 'bob@example.org', 'met Bob');\n\
         INSERT INTO note_tags VALUES (111, 11, 'x')",
    )
    .await;
    let mut rule = RuleSpec::delete("old-applicants", "applicants", "decided_at")
        .after("1 year")
        .max_fraction(1.0);
    rule.action = "anonymize".into();
    let rule = rule
        .raw("anonymize", "{ name = \"null\", email = \"hash\" }")
        .raw(
            "children",
            "[{ table = \"applicant_notes\", foreign_key = \"applicant_id\", key = \"id\", children = [{ table = \"note_tags\", foreign_key = \"note_id\", key = \"id\" }] }]",
        );
    let path = ConfigBuilder::new(&db).rule(rule).write(&db);
    run(&path, &["run", "--once"]).assert_code(0);
    let notes = db.rows("applicant_notes", &["id", "email", "body"]).await;
    let ann = &notes[0];
    assert!(
        ann[1].as_deref().is_some_and(|e| e.starts_with("anon-")),
        "the note's e-mail is hashed like the applicant's: {notes:?}"
    );
    assert_eq!(
        ann[2].as_deref(),
        Some("met Ann"),
        "columns the rule does not name stay"
    );
    assert_eq!(notes[1][1].as_deref(), Some("bob@example.org"));
    let trail = entries(&path);
    assert!(trail.contains(&("applicant_notes".into(), "11".into(), "anonymize".into())));
    assert!(trail.contains(&("applicants".into(), "1".into(), "anonymize".into())));
    assert!(
        !trail.iter().any(|(t, _, _)| t == "note_tags"),
        "a child table without any of the columns is only walked through: {trail:?}"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM note_tags").await, 1);
    run(&path, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn a_cascading_key_of_a_table_into_itself_is_refused() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    db.exec(
        "CREATE TABLE applicants (id INTEGER PRIMARY KEY, referred_by INTEGER REFERENCES applicants (id) ON DELETE CASCADE, decided_at DATE);\n\
         INSERT INTO applicants VALUES (1, NULL, '2001-01-01'), (2, 1, '2999-01-01')",
    )
    .await;
    let builder = ConfigBuilder::new(&db).rule(
        RuleSpec::delete("rejected-applicants", "applicants", "decided_at")
            .after("1 year")
            .max_fraction(1.0),
    );
    let line = builder.line("rule[0].table");
    let path = builder.write(&db);
    let r = run(&path, &["run", "--once"]);
    r.assert_code(78);
    assert!(
        r.stderr.contains(&format!(":{line}:")) && r.stderr.contains("applicants.referred_by"),
        "{r}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM applicants").await,
        2,
        "applicant 2 is not deleted along with the one who referred them"
    );
}

#[tokio::test]
async fn a_hold_on_a_child_row_keeps_the_record_and_all_its_children() {
    let Some(db) = hr(Kind::Sqlite, 10, 1).await else {
        return;
    };
    // Applicant 4's second note is disputed.
    let (mut builder, _) = config(&db, true, 3);
    builder.sections.push(
        "[[hold]]\nname = \"dispute-42\"\nreason = \"Dispute about note 42\"\ndatabase = \"main\"\ntable = \"applicant_notes\"\nfilter = \"id = 42\"\n\n"
            .to_owned(),
    );
    let path = builder.write(&db);
    run(&path, &["run", "--once"]).assert_code(0);
    let left = remaining(&db).await;
    for (table, key) in [
        ("applicants", "4"),
        ("applicant_notes", "41"),
        ("applicant_notes", "42"),
        ("note_attachments", "410"),
        ("note_attachments", "420"),
    ] {
        assert!(
            left.contains(&(table.to_owned(), key.to_owned())),
            "{table} {key} is kept whole under the hold on note 42"
        );
    }
    let mut want = expected(10, 1);
    want.retain(|(t, k)| {
        !matches!(
            (t.as_str(), k.as_str()),
            ("applicants", "4")
                | ("applicant_notes", "41" | "42")
                | ("note_attachments", "410" | "420")
        )
    });
    let seen: BTreeSet<(String, String)> =
        entries(&path).into_iter().map(|(t, k, _)| (t, k)).collect();
    same(&seen, &want);
    run(&path, &["audit", "verify"]).assert_code(0);
}

/// SQLite compares a bound value with a column after giving it the column's affinity: an
/// integer parent key finds the child rows whose TEXT foreign key holds '4'. A list of keys
/// given as one JSON array (`json_each`) would not (its values have no affinity), and the
/// children would be left behind — or cascade away unaudited. A regression test for that.
#[tokio::test]
async fn a_text_foreign_key_to_an_integer_key_finds_its_children_on_sqlite() {
    let Some(db) = TestDb::new(Kind::Sqlite).await else {
        return;
    };
    db.exec(
        "CREATE TABLE applicants (id INTEGER PRIMARY KEY, decided_at DATE);
         CREATE TABLE applicant_notes (id INTEGER PRIMARY KEY, applicant_id TEXT NOT NULL REFERENCES applicants (id) ON DELETE CASCADE, body TEXT);
         INSERT INTO applicants VALUES (1, '2999-01-01'), (2, '2001-01-01'), (3, '2999-01-01'), (4, '2001-01-01');
         INSERT INTO applicant_notes VALUES (11, '1', 'n'), (21, '2', 'n'), (22, '2', 'n'), (41, '4', 'n'), (31, '3', 'n');",
    )
    .await;
    let config = ConfigBuilder::new(&db)
        .rule(
            RuleSpec::delete("rejected-applicants", "applicants", "decided_at")
                .after("1 year")
                .max_fraction(1.0)
                .raw(
                    "children",
                    "[{ table = \"applicant_notes\", foreign_key = \"applicant_id\", key = \"id\" }]",
                ),
        )
        .write(&db);
    run(&config, &["run", "--once"]).assert_code(0);
    let seen: BTreeSet<(String, String)> = entries(&config)
        .into_iter()
        .map(|(t, k, _)| (t, k))
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("applicants", "2"),
        ("applicants", "4"),
        ("applicant_notes", "21"),
        ("applicant_notes", "22"),
        ("applicant_notes", "41"),
    ]
    .into_iter()
    .map(|(t, k)| (t.to_owned(), k.to_owned()))
    .collect();
    same(&seen, &want);
    let left: BTreeSet<String> = db
        .rows("applicant_notes", &["id"])
        .await
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    assert_eq!(
        left,
        ["11".to_owned(), "31".to_owned()].into_iter().collect()
    );
}

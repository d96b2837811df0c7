//! How fast a pass goes: batches sized by the time they hold their locks (`batch_time`,
//! unless `batch_size` fixes them), a pause in proportion to each batch
//! (`batch_pause_factor`), and several databases at once (`[daemon] parallel`).

use crate::helpers::*;
use std::collections::BTreeSet;

/// The records of each committed batch of a `run --once`, in order, from its debug log.
fn batch_rows(config: &std::path::Path) -> Vec<u64> {
    let args = ["--log-format", "json", "run", "--once"];
    let output = command(config, &args)
        .env("RUST_LOG", "retentiond=debug")
        .output()
        .expect("run retentiond");
    let r = Run::from_output(config, &args, output);
    r.assert_code(0);
    r.stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "batch committed")
        .map(|v| {
            v["fields"]["rows"]
                .as_u64()
                .unwrap_or_else(|| r.fail("a batch line without rows"))
        })
        .collect()
}

#[tokio::test]
async fn batches_without_batch_size_are_sized_by_time_and_delete_everything() {
    let Some(db) = events(Kind::Sqlite, 7000).await else {
        return;
    };
    let config = ConfigBuilder::new(&db)
        .rule(
            RuleSpec::delete("purge", "events", "happened_at")
                .after("1 year")
                .max_fraction(1.0)
                .raw("batch_pause_factor", "0.5"),
        )
        .write(&db);
    let rows = batch_rows(&config);
    assert_eq!(db.count("SELECT COUNT(*) FROM events").await, 0);
    assert_eq!(rows.iter().sum::<u64>(), 7000, "{rows:?}");
    assert_eq!(
        rows.first(),
        Some(&1000),
        "the first batch is 1000: {rows:?}"
    );
    assert!(
        rows.iter().any(|n| *n != 1000),
        "batches sized by time are not all 1000: {rows:?}"
    );
    assert_eq!(audit_keys(&config).len(), 7000);
}

#[tokio::test]
async fn a_fixed_batch_size_still_makes_every_batch_that_size() {
    let Some(db) = events(Kind::Sqlite, 250).await else {
        return;
    };
    let config = ConfigBuilder::new(&db)
        .rule(
            RuleSpec::delete("purge", "events", "happened_at")
                .after("1 year")
                .max_fraction(1.0)
                .batch_size(100),
        )
        .write(&db);
    assert_eq!(batch_rows(&config), vec![100, 100, 50]);
}

#[tokio::test]
async fn an_invalid_batch_time_or_batch_pause_factor_is_exit_78_at_its_line() {
    let Some(db) = events(Kind::Sqlite, 10).await else {
        return;
    };
    let builder = ConfigBuilder::new(&db).rule(
        RuleSpec::delete("purge", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0)
            .raw("batch_time", &quoted("1 ms"))
            .raw("batch_pause_factor", "500"),
    );
    let config = builder.write(&db);
    let r = run(&config, &["run", "--once"]);
    r.assert_code(78);
    for key in ["batch_time", "batch_pause_factor"] {
        let at = format!(
            "{}:{}: rule \"purge\" → {key}",
            config.display(),
            builder.line(&format!("rule[0].{key}"))
        );
        if !r.stderr.contains(&at) {
            r.fail(&format!("no problem at {at}"));
        }
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM events").await, 10);
}

#[tokio::test]
async fn parallel_rules_on_two_databases_purge_both_with_a_verified_trail() {
    let (Some(first), Some(second)) = (
        events(Kind::Sqlite, 300).await,
        events(Kind::Sqlite, 200).await,
    ) else {
        return;
    };
    let mut builder = ConfigBuilder::new(&first).rule(
        RuleSpec::delete("purge-first", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0)
            .batch_size(25),
    );
    builder
        .databases
        .push(DatabaseEntry::new("second", &second.url));
    let mut on_second = RuleSpec::delete("purge-second", "events", "happened_at")
        .after("1 year")
        .max_fraction(1.0)
        .batch_size(25);
    on_second.database = "second".into();
    builder = builder.rule(on_second);
    let text = builder
        .to_toml()
        .replacen("[daemon]\n", "[daemon]\nparallel = 2\n", 1);
    let config = write_config(first.dir.path(), &text);

    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(first.count("SELECT COUNT(*) FROM events").await, 0);
    assert_eq!(second.count("SELECT COUNT(*) FROM events").await, 0);
    run(&config, &["audit", "verify"]).assert_code(0);
    let entries = audit_keys(&config);
    for (rule, n) in [("purge-first", 300), ("purge-second", 200)] {
        let keys: BTreeSet<u64> = entries
            .iter()
            .filter(|(r, action, _)| r == rule && action == "delete")
            .map(|(_, _, k)| k.parse().expect("integer key"))
            .collect();
        assert_eq!(
            keys,
            (1..=n).collect(),
            "one entry per deleted row of {rule}"
        );
    }
    assert_eq!(entries.len(), 500, "no other entries");
    let report = run(&config, &["report", "--last", "--format", "json"]).json();
    assert_eq!(report["rules"][0]["rule"], "purge-first", "config order");
    assert_eq!(report["rules"][1]["rule"], "purge-second", "config order");
}

/// A table `people (id, email, left_on)` of `n` expired rows, each with two
/// `notes (id, person_id)`.
async fn people_with_notes(kind: Kind, n: i64) -> Option<TestDb> {
    let db = TestDb::new(kind).await?;
    db.exec(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(100), left_on DATE);\n\
         CREATE TABLE notes (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people (id))",
    )
    .await;
    for chunk in (1..=n).collect::<Vec<_>>().chunks(1000) {
        let people: Vec<String> = chunk
            .iter()
            .map(|i| format!("({i}, 'p{i}@example.org', '2001-01-01')"))
            .collect();
        db.exec(&format!("INSERT INTO people VALUES {}", people.join(", ")))
            .await;
        let notes: Vec<String> = chunk
            .iter()
            .flat_map(|i| [(2 * i, i), (2 * i + 1, i)])
            .map(|(n, i)| format!("({n}, {i})"))
            .collect();
        db.exec(&format!("INSERT INTO notes VALUES {}", notes.join(", ")))
            .await;
    }
    Some(db)
}

#[tokio::test]
async fn a_batch_larger_than_sqlites_placeholder_limit_deletes_its_children_and_records() {
    // 40,000 records with 80,000 child rows in one batch: more keys than SQLite binds in
    // one statement (32,766).
    let Some(db) = people_with_notes(Kind::Sqlite, 40_000).await else {
        return;
    };
    let config = ConfigBuilder::new(&db)
        .rule(
            RuleSpec::delete("purge", "people", "left_on")
                .after("1 year")
                .max_fraction(1.0)
                .batch_size(40_000)
                .raw(
                    "children",
                    "[{ table = \"notes\", foreign_key = \"person_id\", key = \"id\" }]",
                ),
        )
        .write(&db);
    assert_eq!(batch_rows(&config), vec![40_000]);
    assert_eq!(db.count("SELECT COUNT(*) FROM people").await, 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM notes").await, 0);
    assert_eq!(audit_keys(&config).len(), 120_000, "one entry per row");
}

/// A hash anonymization of `n` records in one batch: two placeholders per record for the
/// hash, one for the key, so more than one statement of every dialect may bind.
async fn a_hash_anonymization_of_one_large_batch_hashes_every_record(kind: Kind, n: i64) {
    let Some(db) = people_with_notes(kind, n).await else {
        return;
    };
    let mut rule = RuleSpec::delete("forget", "people", "left_on")
        .after("1 year")
        .max_fraction(1.0)
        .batch_size(n as u64)
        .raw("anonymize", "{ email = \"hash\" }");
    rule.action = "anonymize".into();
    let config = ConfigBuilder::new(&db).rule(rule).write(&db);
    assert_eq!(batch_rows(&config), vec![n as u64]);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM people WHERE email LIKE 'anon-%'")
            .await,
        n
    );
    run(&config, &["audit", "verify"]).assert_code(0);
}

#[tokio::test]
async fn a_hash_anonymization_larger_than_sqlites_placeholder_limit_hashes_every_record() {
    // 60,000 placeholders where SQLite binds 32,766.
    a_hash_anonymization_of_one_large_batch_hashes_every_record(Kind::Sqlite, 20_000).await;
}

#[tokio::test]
async fn a_hash_anonymization_larger_than_postgres_argument_limit_hashes_every_record() {
    // 80,001 arguments where PostgreSQL's protocol carries 65,535.
    a_hash_anonymization_of_one_large_batch_hashes_every_record(Kind::Postgres, 40_000).await;
}

#[tokio::test]
async fn a_hash_anonymization_larger_than_mariadbs_placeholder_limit_hashes_every_record() {
    // 120,000 placeholders where MariaDB binds 65,535.
    a_hash_anonymization_of_one_large_batch_hashes_every_record(Kind::MySql, 40_000).await;
}

#[tokio::test]
async fn no_pause_follows_the_last_batch() {
    let Some(db) = events(Kind::Sqlite, 100).await else {
        return;
    };
    let config = ConfigBuilder::new(&db)
        .rule(
            RuleSpec::delete("purge", "events", "happened_at")
                .after("1 year")
                .max_fraction(1.0)
                .batch_size(100)
                .batch_pause("20 s"),
        )
        .write(&db);
    let started = std::time::Instant::now();
    run(&config, &["run", "--once"]).assert_code(0);
    assert_eq!(db.count("SELECT COUNT(*) FROM events").await, 0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "the pass waited out a pause after its only batch: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn two_entries_for_one_database_run_one_after_the_other_even_in_parallel() {
    let Some(db) = events(Kind::Sqlite, 300).await else {
        return;
    };
    db.exec(
        "CREATE TABLE visits (id INTEGER PRIMARY KEY, happened_at DATE);\n\
         INSERT INTO visits SELECT * FROM events",
    )
    .await;
    let mut builder = ConfigBuilder::new(&db).rule(
        RuleSpec::delete("purge-events", "events", "happened_at")
            .after("1 year")
            .max_fraction(1.0)
            .batch_size(25)
            .batch_pause("50 ms"),
    );
    // The same SQLite file under a second name; run side by side, the other rule's
    // batches would come in during each pause.
    builder.databases.push(DatabaseEntry::new("alias", &db.url));
    let mut visits = RuleSpec::delete("purge-visits", "visits", "happened_at")
        .after("1 year")
        .max_fraction(1.0)
        .batch_size(25)
        .batch_pause("50 ms");
    visits.database = "alias".into();
    builder = builder.rule(visits);
    let text = builder
        .to_toml()
        .replacen("[daemon]\n", "[daemon]\nparallel = 2\n", 1);
    let config = write_config(db.dir.path(), &text);
    let args = ["--log-format", "json", "run", "--once"];
    let output = command(&config, &args)
        .env("RUST_LOG", "retentiond=debug")
        .output()
        .expect("run retentiond");
    let r = Run::from_output(&config, &args, output);
    r.assert_code(0);
    let rules: Vec<String> = r
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "batch committed")
        .map(|v| v["fields"]["rule"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(rules.len(), 24, "{rules:?}");
    let switches = rules.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(switches, 1, "the two rules' batches interleaved: {rules:?}");
    assert_eq!(db.count("SELECT COUNT(*) FROM events").await, 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM visits").await, 0);
}

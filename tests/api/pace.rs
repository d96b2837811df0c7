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

//! Any bytes as a config file: the loader must return a config or errors with lines, and
//! every identifier it accepts must stay inside its quotes in every dialect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retentiond::config::parse;
use retentiond::db::Dialect;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    match parse(Path::new("fuzz.toml"), src) {
        Ok(config) => {
            for rule in &config.rules {
                for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
                    let quoted = d.table(&rule.table);
                    assert!(!quoted.contains(';') && !quoted.contains('\''), "{quoted}");
                    let key = d.ident(&rule.key);
                    assert_eq!(key.matches(['"', '`']).count(), 2, "{key}");
                }
            }
        }
        Err(e) => assert!(!e.problems.is_empty()),
    }
});

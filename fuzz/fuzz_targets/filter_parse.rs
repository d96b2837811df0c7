//! Any text as a rule's or hold's `filter`, in every dialect: parsing must answer without
//! panicking, and an accepted filter's SQL must be a fixed point — parsed again, it is
//! accepted and renders to exactly the same SQL (`Filter::parse` itself checks that the
//! syntax trees are equal and that the SQL stays inside its parentheses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use retentiond::config::{Dialect, Filter};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
        if let Ok(f) = Filter::parse(text, d) {
            let again = Filter::parse(f.sql(), d);
            assert_eq!(again.as_ref(), Ok(&f), "{d:?}: {text:?} → {:?}", f.sql());
            assert!(!f.sql().trim().is_empty());
        }
    }
});

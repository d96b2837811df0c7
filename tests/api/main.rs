//! Integration tests: the real binary against real PostgreSQL, MariaDB and SQLite.
//! One test crate (one link step); each test makes its own database.

mod anchors;
mod answer;
mod architecture;
mod audit_trail;
mod bench_smoke;
mod children;
mod config_errors;
mod crash;
mod daemon;
mod edges;
mod enforcement;
mod erase;
mod failures;
mod faults;
mod filters;
mod helpers;
mod interrupt;
mod metrics;
mod pace;
mod packaging;
mod read_url;
mod register;
mod replicas;
mod report;
mod requests;
mod rules_history;
mod safeguards;
mod secrets;
mod state_migrate;
mod state_upgrade;
mod subjects;
mod takeover;
mod time_columns;
mod trust;

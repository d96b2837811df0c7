//! retentiond: keeps an organisation's written data-retention promises by itself.
//!
//! The layers, lowest first (a module uses only its own layer and those below; a test in
//! `tests/api/architecture.rs` holds the code to it; ARCHITECTURE.md draws it):
//! [`config`], [`signal`] and [`progress`] → [`db`] and [`state`] → [`audit`] → [`engine`] (plan,
//! execute, journal, outcome) → [`report`] → [`daemon`] → [`commands`] and [`demo`], the
//! verbs the binary (`main.rs`) calls.

pub mod audit;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod db;
pub mod demo;
pub mod engine;
pub mod progress;
pub mod report;
pub mod signal;
pub mod state;

//! retentiond: keeps an organisation's written data-retention promises by itself.
//!
//! The data path is the module list: [`config`] → [`db`] → [`engine`] (plan, execute) →
//! [`audit`] → [`report`]; [`app`] wires them into the commands of the binary.

pub mod app;
pub mod audit;
pub mod config;
pub mod daemon;
pub mod db;
pub mod demo;
pub mod engine;
pub mod exit;
pub mod report;
pub mod state;

//! Run summaries for people: plain text, JSON and a simple HTML page.

pub mod files;
pub mod render;
pub mod summary;

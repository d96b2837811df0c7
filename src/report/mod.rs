//! Reports for people. [`summary`] is what a pass did, as stored; [`render`] prints it
//! for the operator at the end of `run --once`; [`model`] and [`document`] make the
//! management report (HTML, text, JSON; English or Dutch) with [`locale`] and [`chart`];
//! [`files`] keeps reports on disk and [`mail`] sends them.

pub mod chart;
pub mod document;
pub mod files;
pub mod locale;
pub mod mail;
pub mod model;
pub mod render;
pub mod summary;

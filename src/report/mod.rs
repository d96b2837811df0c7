//! Reports for people. [`render`] prints a pass's summary for the operator at the end of
//! `run --once`; [`model`] and [`document`] make the management report (HTML, text, JSON;
//! English or Dutch) with [`locale`] and [`chart`], from a pass and its [`history`];
//! [`files`] keeps reports on disk, [`mail`] sends them, [`publish`] does both after a pass.
//! [`letter`] is the answer to a data-subject request, for the person who made it.
//! [`register`] is the record of processing activities and the privacy statement's
//! retention paragraph, written from the config.
//! What a pass did is the engine's (`engine::outcome`); this module only reads it.

pub mod chart;
pub mod document;
pub mod files;
pub mod history;
pub mod letter;
pub mod locale;
pub mod mail;
pub mod model;
pub mod publish;
pub mod register;
pub mod render;

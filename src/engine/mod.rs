//! Enforcement: which records each rule matches ([`matcher`], [`plan`]), checking rules
//! against their tables ([`prepare`]), acting in audited batches ([`execute`]), settling
//! batches a crash left in doubt ([`reconcile`]), and the whole pass ([`pass`]).

pub mod execute;
pub mod hasher;
pub mod holds;
pub mod matcher;
pub mod pass;
pub mod plan;
pub mod prepare;
pub mod reconcile;

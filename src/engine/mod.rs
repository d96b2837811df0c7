//! Enforcement: which records each rule matches ([`matcher`], [`plan`]), checking rules
//! against their tables ([`prepare`]), acting in audited batches ([`execute`], sized by [`batch_size`]), writing
//! what happened to the trail ([`journal`]), settling batches a crash left in doubt
//! ([`reconcile`]), legal holds over time ([`holds`]), rules over time and their locks
//! ([`rule_history`]), `[[subject]]`s against their tables
//! ([`subjects`]), where a person's records are for a request ([`find`]), and the whole pass
//! ([`pass`]). What a pass did is [`outcome`]: the engine owns it; reports and metrics
//! read it.

pub mod batch_size;
pub mod children;
pub mod erase;
pub mod execute;
pub mod find;
pub mod hasher;
pub mod holds;
pub mod journal;
pub mod matcher;
pub mod outcome;
pub mod pass;
pub mod plan;
pub mod prepare;
pub mod reconcile;
pub mod replicas;
pub mod requests;
pub mod rule_history;
pub mod statements;
pub mod subjects;
pub mod wait;

//! Erasing one person (GDPR art. 17): what each `[[subject]]` does with the records
//! [`find`](super::find) found — delete, anonymize, or keep — and the batches that do it.
//!
//! What stays, and why, is decided before anything is touched, and again for each subject
//! just before it is erased (the tables may have moved since):
//! - `erase = "keep"`: the subject's own reason (a law that requires the records);
//! - a legal hold in force whose filter covers the record (NULL counts as covered);
//! - a rule's `keep_while`: a young enough row elsewhere still refers to the record;
//! - for a deletion, any row still referring to the record, through a foreign key the
//!   database declares or through a subject reached `via` this one whose records stay:
//!   deleting it would fail, or cascade into rows nobody erased.
//!
//! Subjects reached through others go first (children before parents), so that a parent
//! is only deleted once what referred to it is gone. Every batch follows the rules' crash
//! protocol ([`commit_audited`]): each record erased gets exactly one audit entry, with
//! the request's id and the legal basis [`LEGAL_BASIS`]; a batch a crash left in doubt is
//! settled at the next start, by this command or the daemon.

use super::execute::{commit_audited, confirm_in, BatchError, Sink};
use super::find::Found;
use super::hasher::Hasher;
use super::matcher::push_not_anonymized;
use super::pass::room_for;
use super::reconcile::reconcile;
use crate::config::{Config, Erase, Find, Ident, Rule, Strategy, Subject};
use crate::db::schema::{self, SubjectShape};
use crate::db::{self, Db, Key, Sql, Value};
use crate::state::requests::{OutcomeRow, FOUND, KEPT};
use crate::state::{now_text, Intent, State};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The legal basis of every audit entry an erasure writes.
pub const LEGAL_BASIS: &str = "GDPR art. 17";

/// More records than this in one erasure need `--confirm` with the exact count: one person
/// rarely has a hundred records, and an identity that matches more may not be one person.
pub const BRAKE: u64 = 100;

/// Keys per batch (and per statement that lists keys).
const BATCH: usize = 500;

/// Why records stay after an erasure. Recorded as [`Because::code`] for the answer letter,
/// which words it in the reader's language; [`Because::describe`] is the operator's
/// English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Because {
    /// The subject's `erase = "keep"`, with its `keep_reason` as typed.
    Keep(String),
    /// A legal hold in force, by name.
    Hold(String),
    /// A rule's `keep_while`: rows of `table` younger than `after` refer to the records.
    KeepWhile {
        /// The referring table.
        table: String,
        /// How long a reference keeps them.
        after: crate::config::Period,
        /// The rule.
        rule: String,
    },
    /// Rows of this table still refer to the records through a declared foreign key.
    ReferencedBy(String),
    /// Records kept in this subject (reached through this one) need them.
    NeededBy(String),
}

impl Because {
    /// The operator's words (the command's output, logs).
    pub fn describe(&self) -> String {
        match self {
            Because::Keep(reason) => reason.clone(),
            Because::Hold(name) => format!("a legal hold ({name})"),
            Because::KeepWhile { table, after, rule } => {
                format!("still referred to by {table} younger than {after} (rule \"{rule}\")")
            }
            Because::ReferencedBy(table) => format!(
                "still referred to by records in {table}: deleting would fail or cascade into rows nobody erased"
            ),
            Because::NeededBy(subject) => format!("needed by records kept in {subject}"),
        }
    }

    /// As stored in the state database: a kind and its fields, `|`-separated (the
    /// `keep_reason`, which may hold anything, is last and taken whole).
    pub fn code(&self) -> String {
        match self {
            Because::Keep(reason) => format!("keep|{reason}"),
            Because::Hold(name) => format!("hold|{name}"),
            Because::KeepWhile { table, after, rule } => {
                format!("keep_while|{table}|{after}|{rule}")
            }
            Because::ReferencedBy(table) => format!("referenced|{table}"),
            Because::NeededBy(subject) => format!("needed_by|{subject}"),
        }
    }

    /// Reads [`Because::code`] back; `None` for anything else.
    pub fn parse(code: &str) -> Option<Because> {
        let (kind, rest) = code.split_once('|')?;
        Some(match kind {
            "keep" => Because::Keep(rest.to_owned()),
            "hold" => Because::Hold(rest.to_owned()),
            "referenced" => Because::ReferencedBy(rest.to_owned()),
            "needed_by" => Because::NeededBy(rest.to_owned()),
            "keep_while" => {
                let mut parts = rest.splitn(3, '|');
                let (Some(table), Some(after), Some(rule)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return None;
                };
                Because::KeepWhile {
                    table: table.to_owned(),
                    after: crate::config::Period::parse(after).ok()?,
                    rule: rule.to_owned(),
                }
            }
            _ => return None,
        })
    }
}

/// Records of one subject that stay, and why.
#[derive(Debug, Clone)]
pub struct Kept {
    /// Why.
    pub reason: Because,
    /// The records' keys.
    pub keys: Vec<Key>,
    /// The last day a retention rule keeps them, when one deletes them later.
    pub until: Option<NaiveDate>,
}

/// What an erasure does to one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act<'a> {
    /// Delete the records.
    Delete,
    /// Overwrite these columns.
    Anonymize(&'a [(Ident, Strategy)]),
    /// Keep them all (`erase = "keep"`).
    Keep,
}

impl Act<'_> {
    /// The trail's verb.
    pub fn verb(self) -> &'static str {
        match self {
            Act::Delete => "delete",
            Act::Anonymize(_) => "anonymize",
            Act::Keep => "keep",
        }
    }
}

/// One subject's part of an erasure.
#[derive(Debug, Clone)]
pub struct Part<'a> {
    /// The subject.
    pub subject: &'a Subject,
    /// What it does.
    pub act: Act<'a>,
    /// How many of the person's records were found there.
    pub found: usize,
    /// The keys to erase.
    pub erase: Vec<Key>,
    /// What stays.
    pub kept: Vec<Kept>,
    /// How the key is read and bound (`None`: nothing was found there).
    shape: Option<SubjectShape>,
    /// Where it stands in the config (part of batch ids).
    index: usize,
    /// Conditions under which its records stay, re-checked in every batch's lock.
    exclude: Vec<Exclusion<'a>>,
}

/// An erasure, planned: the subjects in the order they are erased (children first).
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// The parts, in erase order.
    pub parts: Vec<Part<'a>>,
}

impl Plan<'_> {
    /// How many records the erasure acts on at most.
    pub fn total(&self) -> u64 {
        self.parts.iter().map(|p| p.erase.len() as u64).sum()
    }
}

/// What an erasure did.
#[derive(Debug, Clone, Default)]
pub struct Erased {
    /// Per subject (erase order): its verb and how many records were erased now.
    pub erased: Vec<(String, &'static str, u64)>,
    /// Per subject: what stays.
    pub kept: Vec<(String, Kept)>,
    /// A signal stopped it between batches; the rest is left for the next `erase`.
    pub stopped: bool,
    /// It stopped at this error; what was done before it is audited.
    pub failed: Option<String>,
}

/// Why an erasure did not start.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// More than [`BRAKE`] records and no (or another) `--confirm`: nothing was done.
    #[error("{0}")]
    Brake(String),
    /// The state database, a database, or the tables did not allow it.
    #[error("{0}")]
    Other(String),
}

/// The depth of `subject` in the `via` tree: 0 for one found by `identify`.
fn depth(config: &Config, subject: &Subject) -> usize {
    let mut d = 0;
    let mut s = subject;
    while let Find::Via {
        subject: parent, ..
    } = &s.find
    {
        match config.subjects.iter().find(|x| &x.name == parent) {
            Some(p) if d < config.subjects.len() => {
                d += 1;
                s = p;
            }
            _ => break,
        }
    }
    d
}

/// Plans the erasure of what `found` holds: per subject what is erased and what stays,
/// in erase order. Reads only.
pub async fn plan<'a>(
    config: &'a Config,
    dbs: &BTreeMap<String, Db>,
    found: Vec<Found<'a>>,
    now: DateTime<Utc>,
) -> Result<Plan<'a>, String> {
    if let Some(f) = found.iter().find(|f| f.capped) {
        return Err(format!(
            "more than {} records of subject \"{}\" match: that is not one person's data; give more --match attributes. Nothing was done",
            super::find::KEY_CAP,
            f.subject.name
        ));
    }
    let mut parts: Vec<Part<'a>> = found
        .into_iter()
        .map(|f| {
            let index = config
                .subjects
                .iter()
                .position(|s| s.name == f.subject.name)
                .unwrap_or_default();
            let act = match &f.subject.erase {
                Erase::Delete => Act::Delete,
                Erase::Anonymize(cols) => Act::Anonymize(cols),
                Erase::Keep { .. } => Act::Keep,
            };
            Part {
                subject: f.subject,
                act,
                found: f.keys.len(),
                shape: f.shape(),
                erase: f.keys,
                kept: Vec::new(),
                index,
                exclude: Vec::new(),
            }
        })
        .collect();
    // Deepest first; config order among equals.
    parts.sort_by_key(|p| (std::cmp::Reverse(depth(config, p.subject)), p.index));
    for i in 0..parts.len() {
        let (done, rest) = parts.split_at_mut(i);
        let part = &mut rest[0];
        decide(config, dbs, part, done, now).await?;
    }
    Ok(Plan { parts })
}

/// Moves what must stay out of `part.erase`, with its reason. `done` are the parts erased
/// before it (its children among them).
async fn decide<'a>(
    config: &'a Config,
    dbs: &BTreeMap<String, Db>,
    part: &mut Part<'a>,
    done: &[Part<'a>],
    now: DateTime<Utc>,
) -> Result<(), String> {
    let subject = part.subject;
    let (Some(shape), Some(db)) = (part.shape, dbs.get(&subject.database)) else {
        return Ok(());
    };
    if part.erase.is_empty() {
        return Ok(());
    }
    if let Erase::Keep { reason } = &subject.erase {
        let keys = std::mem::take(&mut part.erase);
        let until = until(config, db, subject, shape, &keys).await?;
        part.kept.push(Kept {
            reason: Because::Keep(reason.clone()),
            keys,
            until,
        });
        return Ok(());
    }
    let on_table = |h_db: &str, h_table: &crate::config::TableName| {
        h_db == subject.database && *h_table == subject.table
    };
    // Legal holds in force.
    for hold in config
        .holds
        .iter()
        .filter(|h| on_table(&h.database, &h.table) && h.active(now))
    {
        let cond = Exclusion::Hold(hold);
        let held = select_keys(db, subject, shape, &part.erase, &cond).await?;
        part.exclude.push(cond);
        keep(config, db, part, held, Because::Hold(hold.name.clone())).await?;
    }
    // References that keep records alive (`keep_while` of a rule on this table).
    let tz = config.daemon.timezone;
    for rule in rules_on(config, subject) {
        for kw in &rule.keep_while {
            let Some(cutoff) = crate::config::Cutoff::at(now, kw.after, tz) else {
                continue;
            };
            let table = schema::describe(db, &kw.table)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!(
                        "rule \"{}\": keep_while table '{}' no longer exists; nothing was done",
                        rule.name, kw.table
                    )
                })?;
            let kind = schema::since_kind(&table, db.dialect, &kw.since, &kw.table)?;
            let cond = Exclusion::KeepWhile { kw, kind, cutoff };
            let held = select_keys(db, subject, shape, &part.erase, &cond).await?;
            part.exclude.push(cond);
            keep(
                config,
                db,
                part,
                held,
                Because::KeepWhile {
                    table: kw.table.to_string(),
                    after: kw.after,
                    rule: rule.name.clone(),
                },
            )
            .await?;
        }
    }
    if part.act != Act::Delete {
        return Ok(());
    }
    // Records that subjects reached through this one keep need their parent.
    for (child, held) in needed_by_kept_children(dbs, part, done).await? {
        keep(config, db, part, held, Because::NeededBy(child)).await?;
    }
    Ok(())
}

/// Moves `held` from `part.erase` to `part.kept` with `reason` (nothing if empty).
async fn keep(
    config: &Config,
    db: &Db,
    part: &mut Part<'_>,
    held: Vec<Key>,
    reason: Because,
) -> Result<(), String> {
    if held.is_empty() {
        return Ok(());
    }
    let set: BTreeSet<&Key> = held.iter().collect();
    part.erase.retain(|k| !set.contains(k));
    let until = match part.shape {
        Some(shape) => until(config, db, part.subject, shape, &held).await?,
        None => None,
    };
    part.kept.push(Kept {
        reason,
        keys: held,
        until,
    });
    Ok(())
}

/// Per subject reached through `part`'s (among `done`), the keys of `part`'s records that
/// the records it keeps still refer to ([`Because::NeededBy`]). Only records kept for their
/// own reason count; anonymized ones do not need their parent (a reference the database
/// declares is checked again just before deleting). Asked when the erasure is planned, and
/// again just before `part` is deleted, from what the children finally kept.
async fn needed_by_kept_children(
    dbs: &BTreeMap<String, Db>,
    part: &Part<'_>,
    done: &[Part<'_>],
) -> Result<Vec<(String, Vec<Key>)>, String> {
    let subject = part.subject;
    let mut out = Vec::new();
    for child in done
        .iter()
        .filter(|c| matches!(&c.subject.find, Find::Via { subject: p, .. } if *p == subject.name))
    {
        let Find::Via { foreign_key, .. } = &child.subject.find else {
            continue;
        };
        let (Some(child_db), Some(child_shape)) = (dbs.get(&child.subject.database), child.shape)
        else {
            continue;
        };
        let staying: Vec<Key> = child
            .kept
            .iter()
            .flat_map(|k| k.keys.iter().cloned())
            .collect();
        if staying.is_empty() {
            continue;
        }
        let referred =
            referred_keys(child_db, child.subject, child_shape, foreign_key, &staying).await?;
        let held: Vec<Key> = part
            .erase
            .iter()
            .filter(|k| referred.contains(&k.to_string()))
            .cloned()
            .collect();
        if !held.is_empty() {
            out.push((child.subject.name.clone(), held));
        }
    }
    Ok(out)
}

/// The rules acting on a subject's table.
pub fn rules_on<'c>(config: &'c Config, subject: &Subject) -> Vec<&'c Rule> {
    config
        .rules
        .iter()
        .filter(|r| r.database == subject.database && r.table == subject.table)
        .collect()
}

/// Of `keys`, those whose record satisfies `cond` (a condition over the subject's table
/// that keeps records), read in chunks.
async fn select_keys(
    db: &Db,
    subject: &Subject,
    shape: SubjectShape,
    keys: &[Key],
    cond: &Exclusion<'_>,
) -> Result<Vec<Key>, String> {
    let d = db.dialect;
    let key = d.ident(&subject.key);
    let mut out = Vec::new();
    for chunk in keys.chunks(BATCH) {
        let values: Vec<Value> = chunk.iter().map(Key::value).collect();
        let mut sql = Sql::new(d);
        sql.push("SELECT ")
            .push(&d.key_select(&key, shape.key))
            .push(" FROM ")
            .push(&d.table(&subject.table))
            .push(" WHERE ")
            .key_list(&key, &values, shape.key_unsigned)
            .push(" AND (");
        cond.push(&mut sql, subject);
        sql.push(")");
        let records = db
            .fetch_records(&sql, shape.key)
            .await
            .map_err(|e| e.to_string())?;
        out.extend(records.into_iter().map(|r| r.key));
    }
    Ok(out)
}

/// The values of `foreign_key` in the records `keys` of `subject`, as text.
async fn referred_keys(
    db: &Db,
    subject: &Subject,
    shape: SubjectShape,
    foreign_key: &Ident,
    keys: &[Key],
) -> Result<BTreeSet<String>, String> {
    let d = db.dialect;
    let key = d.ident(&subject.key);
    let mut out = BTreeSet::new();
    for chunk in keys.chunks(BATCH) {
        let values: Vec<Value> = chunk.iter().map(Key::value).collect();
        let mut sql = Sql::new(d);
        sql.push("SELECT DISTINCT ")
            .push(&d.any_as_text(&d.ident(foreign_key)))
            .push(" FROM ")
            .push(&d.table(&subject.table))
            .push(" WHERE ")
            .key_list(&key, &values, shape.key_unsigned);
        for row in db.fetch_texts(&sql).await.map_err(|e| e.to_string())? {
            if let Some(Some(v)) = row.into_iter().next() {
                out.insert(v.trim().to_owned());
            }
        }
    }
    Ok(out)
}

/// Keys of `subject`'s records that rows of another table of the same database still
/// refer to through a foreign key the database declares: deleting them would fail, or
/// cascade into rows nobody erased. Per referring table.
async fn referenced_in_database(
    db: &Db,
    part: &Part<'_>,
    shape: SubjectShape,
) -> Result<Vec<(Because, Vec<Key>, Exclusion<'static>)>, String> {
    let subject = part.subject;
    let refs = schema::referencing(db, &subject.table)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for r in refs {
        let (Ok(table), Ok(column)) = (
            crate::config::TableName::parse(&r.table),
            Ident::parse(&r.column),
        ) else {
            return Err(format!(
                "table {} refers to {} through a column whose name retentiond cannot quote; nothing was deleted there",
                r.table, subject.table
            ));
        };
        // A row of the table itself referring to the record (a referrer, a manager) counts
        // too: deleting the record would cascade into another person's row.
        let cond = Exclusion::Referenced {
            into_itself: table == subject.table,
            table,
            column,
        };
        let held = select_keys(db, subject, shape, &part.erase, &cond).await?;
        if !held.is_empty() {
            out.push((Because::ReferencedBy(r.table.clone()), held, cond));
        }
    }
    Ok(out)
}

/// A condition over a subject's table under which its records stay: checked when the
/// erasure is planned, and again in the statement that locks each batch, so that a record
/// that became held or referenced meanwhile is not erased.
#[derive(Debug, Clone)]
enum Exclusion<'a> {
    /// A legal hold in force (a NULL filter counts as held).
    Hold(&'a crate::config::Hold),
    /// A rule's `keep_while`: a young enough row elsewhere refers to the record.
    KeepWhile {
        kw: &'a crate::config::KeepWhile,
        kind: crate::db::SinceKind,
        cutoff: crate::config::Cutoff,
    },
    /// A row of `table` refers to the record through `column` (a key the database
    /// declares); `into_itself`: a row of the subject's own table, other than the record.
    Referenced {
        table: crate::config::TableName,
        column: Ident,
        into_itself: bool,
    },
}

impl Exclusion<'_> {
    /// Appends the condition (true: the record stays), its values bound in `sql`.
    fn push(&self, sql: &mut Sql, subject: &Subject) {
        let d = sql.dialect();
        let outer = format!("{}.{}", d.table(&subject.table), d.ident(&subject.key));
        match self {
            Exclusion::Hold(hold) => {
                sql.push("COALESCE((")
                    .push(hold.filter.sql())
                    .push("), TRUE)");
            }
            Exclusion::KeepWhile { kw, kind, cutoff } => {
                let since = format!("rtd_ref.{}", d.ident(&kw.since));
                sql.push("EXISTS (SELECT 1 FROM ")
                    .push(&d.table(&kw.table))
                    .push(" rtd_ref WHERE rtd_ref.")
                    .push(&d.ident(&kw.foreign_key))
                    .push(" = ")
                    .push(&outer)
                    .push(&format!(" AND ({since} IS NULL OR NOT COALESCE(("));
                d.push_expired(sql, &since, *kind, cutoff);
                sql.push("), FALSE)))");
            }
            Exclusion::Referenced {
                table,
                column,
                into_itself,
            } => {
                sql.push("EXISTS (SELECT 1 FROM ")
                    .push(&d.table(table))
                    .push(" rtd_ref WHERE rtd_ref.")
                    .push(&d.ident(column))
                    .push(" = ")
                    .push(&outer);
                if *into_itself {
                    sql.push(" AND rtd_ref.")
                        .push(&d.ident(&subject.key))
                        .push(" <> ")
                        .push(&outer);
                }
                sql.push(")");
            }
        }
    }
}

/// The last day a rule on the subject's table keeps the latest of `keys`: the shortest
/// unfiltered deleting rule's `after` past the newest `since` among them.
async fn until(
    config: &Config,
    db: &Db,
    subject: &Subject,
    shape: SubjectShape,
    keys: &[Key],
) -> Result<Option<NaiveDate>, String> {
    let mut best: Option<NaiveDate> = None;
    for rule in rules_on(config, subject)
        .into_iter()
        .filter(|r| r.filter.is_none() && r.action == crate::config::Action::Delete)
    {
        let d = db.dialect;
        let key = d.ident(&subject.key);
        let mut newest: Option<NaiveDate> = None;
        for chunk in keys.chunks(BATCH) {
            let values: Vec<Value> = chunk.iter().map(Key::value).collect();
            let mut sql = Sql::new(d);
            sql.push("SELECT ")
                .push(&d.any_as_text(&format!("MAX({})", d.ident(&rule.since))))
                .push(" FROM ")
                .push(&d.table(&subject.table))
                .push(" WHERE ")
                .key_list(&key, &values, shape.key_unsigned);
            let rows = db.fetch_texts(&sql).await.map_err(|e| e.to_string())?;
            let day = rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next().flatten())
                .and_then(|t| {
                    t.get(..10)
                        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                });
            newest = newest.max(day);
        }
        let Some(day) = newest.and_then(|n| rule.after.after_date(n)) else {
            continue;
        };
        best = Some(best.map_or(day, |b| b.min(day)));
    }
    Ok(best)
}

/// Whether `--confirm` lets an erasure of `total` records go ahead: always below the
/// brake (unless a different count was confirmed), above it only with the exact count.
pub fn brake(total: u64, confirm: Option<u64>) -> Result<(), EraseError> {
    match confirm {
        Some(n) if n == total => Ok(()),
        Some(n) => Err(EraseError::Brake(format!(
            "--confirm {n} does not match the {total} records the erasure acts on now; nothing was done. Check `retentiond request find`, then confirm the count"
        ))),
        None if total > BRAKE => Err(EraseError::Brake(format!(
            "the erasure would act on {total} records, more than one person usually has ({BRAKE}); nothing was done. Check `retentiond request find`; if it is right, run again with --confirm {total}"
        ))),
        None => Ok(()),
    }
}

/// What [`run`] needs besides the plan.
pub struct Job<'a> {
    /// The request's id.
    pub request: &'a str,
    /// The databases the subjects live in.
    pub dbs: &'a BTreeMap<String, Db>,
    /// The state database, under the pass lock.
    pub state: &'a State,
    /// The anonymization key (for `hash`).
    pub hasher: &'a Hasher,
    /// Checked between batches.
    pub stop: &'a CancellationToken,
    /// Told how many records are to be erased, then after every batch how many were.
    pub progress: &'a dyn crate::progress::Progress,
}

/// Settles what interrupted passes and erasures left in doubt, before anything else (the
/// caller holds the pass lock).
pub async fn settle(config: &Config, state: &State) -> Result<(), EraseError> {
    state
        .close_interrupted_runs()
        .await
        .map_err(|e| EraseError::Other(e.to_string()))?;
    let settled = reconcile(config, state)
        .await
        .map_err(|e| EraseError::Other(e.to_string()))?;
    if let Some(first) = settled.unresolved.first() {
        return Err(EraseError::Other(format!(
            "a batch an interrupted pass or erasure left in doubt cannot be settled yet ({first}); nothing was done. Make the database reachable and try again"
        )));
    }
    Ok(())
}

/// Erases what `plan` says, subject by subject, in audited batches; records what was
/// found and what stays for the answer letter.
pub async fn run(plan: &mut Plan<'_>, job: &Job<'_>) -> Erased {
    let mut out = Erased::default();
    if let Err(why) = room_for(job.state, plan.total()) {
        out.failed = Some(why);
        return out;
    }
    let run_id = format!(
        "erase-{}-{}",
        job.request,
        super::pass::new_run_id(Utc::now())
    );
    let mut counter = 0u64;
    job.progress.begin(job.request, Some(plan.total()));
    for i in 0..plan.parts.len() {
        if job.stop.is_cancelled() {
            out.stopped = true;
            break;
        }
        let (done, rest) = plan.parts.split_at_mut(i);
        let part = &mut rest[0];
        let span = tracing::info_span!(
            "erase",
            request = %job.request,
            run_id = %run_id,
            subject = %part.subject.name,
            database = %part.subject.database
        );
        let result = erase_part(part, done, job, &run_id, &mut counter)
            .instrument(span)
            .await;
        let count = match result {
            Ok((n, stopped)) => {
                out.stopped |= stopped;
                n
            }
            Err((n, e)) => {
                out.failed = Some(format!("subject \"{}\": {e}", part.subject.name));
                n
            }
        };
        if part.act != Act::Keep && (count > 0 || part.found > 0) {
            out.erased
                .push((part.subject.name.clone(), part.act.verb(), count));
        }
        if out.failed.is_some() || out.stopped {
            break;
        }
    }
    job.progress.finish();
    for part in &plan.parts {
        for k in &part.kept {
            out.kept.push((part.subject.name.clone(), k.clone()));
        }
    }
    // The journal rows are how the next start settles a batch whose audit entries are
    // not written yet: they stay while anything failed or any batch of this erasure is
    // still pending.
    let pending = match job.state.pending().await {
        Ok(p) => p.iter().any(|i| i.run_id == run_id),
        Err(_) => true,
    };
    // The entries must be on disk before the journal rows that could rewrite them go.
    let batches_ran = counter > 0 && job.state.flush().await.is_ok();
    for db in job
        .dbs
        .values()
        .filter(|_| batches_ran && out.failed.is_none() && !pending)
    {
        if let Err(e) = db::journal::clean(db, &format!("{run_id}-")).await {
            tracing::warn!(database = %db.name, error = %e, "could not clean up retentiond_journal; harmless");
        }
    }
    if let Err(e) = record(job, plan).await {
        out.failed.get_or_insert(format!(
            "the erasure is done and audited, but what it kept could not be recorded for the answer letter: {e}"
        ));
    }
    out
}

/// Records, for the answer letter, how many records each subject held and what stays.
async fn record(job: &Job<'_>, plan: &Plan<'_>) -> Result<(), crate::state::StateError> {
    let row = |subject: &str, reason: String, count: usize, until: Option<NaiveDate>| OutcomeRow {
        subject: subject.to_owned(),
        step: String::new(),
        reason,
        count: count as i64,
        until: until.map(|d| d.to_string()),
        at: String::new(),
    };
    // What was found first stays the answer's "found": a later erase finds less (what the
    // first one deleted is gone), and the person was told about all of it.
    let before: BTreeMap<String, i64> = job
        .state
        .outcomes(job.request)
        .await?
        .into_iter()
        .filter(|o| o.step == FOUND)
        .map(|o| (o.subject, o.count))
        .collect();
    let found: Vec<OutcomeRow> = plan
        .parts
        .iter()
        .map(|p| {
            let earlier = before.get(&p.subject.name).copied().unwrap_or(0);
            let count = usize::try_from(earlier).unwrap_or(0).max(p.found);
            row(&p.subject.name, String::new(), count, None)
        })
        .collect();
    let kept: Vec<OutcomeRow> = plan
        .parts
        .iter()
        .flat_map(|p| {
            p.kept
                .iter()
                .map(|k| row(&p.subject.name, k.reason.code(), k.keys.len(), k.until))
        })
        .collect();
    job.state
        .record_outcomes(job.request, FOUND, &found)
        .await?;
    job.state.record_outcomes(job.request, KEPT, &kept).await
}

/// Erases one subject's records; returns how many, and whether a stop ended it early. On
/// error, how many were erased (and audited) before it.
async fn erase_part(
    part: &mut Part<'_>,
    done: &[Part<'_>],
    job: &Job<'_>,
    run_id: &str,
    counter: &mut u64,
) -> Result<(u64, bool), (u64, String)> {
    let cols: &[(Ident, Strategy)] = match part.act {
        Act::Keep => return Ok((0, false)),
        Act::Delete => &[],
        Act::Anonymize(cols) => cols,
    };
    let subject = part.subject;
    let (Some(shape), Some(db)) = (part.shape, job.dbs.get(&subject.database)) else {
        return Ok((0, false));
    };
    if part.erase.is_empty() {
        return Ok((0, false));
    }
    if part.act == Act::Delete {
        // Children are erased now, and what they keep is final: whatever still refers to
        // these records keeps them.
        let needed = needed_by_kept_children(job.dbs, part, done)
            .await
            .map_err(|e| (0, e))?;
        for (child, held) in needed {
            let set: BTreeSet<&Key> = held.iter().collect();
            part.erase.retain(|k| !set.contains(k));
            part.kept.push(Kept {
                reason: Because::NeededBy(child),
                keys: held,
                until: None,
            });
        }
        let referenced = referenced_in_database(db, part, shape)
            .await
            .map_err(|e| (0, e))?;
        for (reason, keys, cond) in referenced {
            let set: BTreeSet<&Key> = keys.iter().collect();
            part.erase.retain(|k| !set.contains(k));
            part.exclude.push(cond);
            part.kept.push(Kept {
                reason,
                keys,
                until: None,
            });
        }
    }
    if let Err(e) = db::journal::ensure(db).await {
        return Err((0, format!(
            "{e} — retentiond keeps a small table retentiond_journal in each database to make every batch verifiable; grant CREATE (or create it as in the README)"
        )));
    }
    let d = db.dialect;
    let key = d.ident(&subject.key);
    let table = d.table(&subject.table);
    let hashed: Vec<&Ident> = cols
        .iter()
        .filter(|(_, s)| *s == Strategy::Hash)
        .map(|(c, _)| c)
        .collect();
    let sink = Sink {
        db,
        state: job.state,
        stop: job.stop,
    };
    let mut erased = 0u64;
    for chunk in part.erase.chunks(BATCH) {
        if job.stop.is_cancelled() {
            return Ok((erased, true));
        }
        let values: Vec<Value> = chunk.iter().map(Key::value).collect();
        let step: Result<u64, BatchError> = async {
            let mut tx = db.begin().await?;
            let mut lock = Sql::new(d);
            lock.push("SELECT ").push(&d.key_select(&key, shape.key));
            for c in &hashed {
                lock.push(", ").push(&d.text_select(&d.ident(c)));
            }
            lock.push(" FROM ").push(&table).push(" WHERE ").key_list(
                &key,
                &values,
                shape.key_unsigned,
            );
            if !cols.is_empty() {
                lock.push(" AND ");
                push_not_anonymized(&mut lock, cols);
            }
            for cond in &part.exclude {
                lock.push(" AND NOT (");
                cond.push(&mut lock, subject);
                lock.push(")");
            }
            // Wait for a record someone else holds (bounded by lock_timeout) rather than
            // skip it: a skipped record would be neither erased nor reported as kept.
            lock.push(&format!(" ORDER BY {key}"))
                .push(d.lock_all_suffix());
            let records = tx.fetch_records(&lock, shape.key).await?;
            if records.is_empty() {
                return Ok(0);
            }
            let locked: Vec<Value> = records.iter().map(|r| r.key.value()).collect();
            let mut act = Sql::new(d);
            if cols.is_empty() {
                act.push("DELETE FROM ").push(&table).push(" WHERE ");
            } else {
                act.push("UPDATE ").push(&table).push(" SET ");
                super::statements::push_anonymized(
                    &mut act,
                    &key,
                    shape.key_unsigned,
                    cols,
                    &records,
                    Some(job.hasher),
                )
                .map_err(|e| BatchError {
                    message: e,
                    failure: super::outcome::Failure::Other,
                    transient: false,
                })?;
                act.push(" WHERE ");
            }
            act.key_list(&key, &locked, shape.key_unsigned);
            act.push(&d.action_suffix(&key, locked.len()));
            *counter += 1;
            let intent = Intent {
                batch_id: format!("{run_id}-{}-{counter}", part.index),
                run_id: run_id.to_owned(),
                rule: subject.name.clone(),
                database: subject.database.clone(),
                table: subject.table.to_string(),
                action: part.act.verb().to_owned(),
                legal_basis: LEGAL_BASIS.to_owned(),
                keys: records.iter().map(|r| r.key.to_string()).collect(),
                created_at: now_text(),
                request: Some(job.request.to_owned()),
                children: Vec::new(),
            };
            let n = intent.keys.len() as u64;
            let unconfirmed = commit_audited(&sink, tx, intent, &[(act, Some(n))]).await?;
            confirm_in(job.state, unconfirmed).await?;
            Ok(n)
        }
        .await;
        match step {
            Ok(n) => {
                erased += n;
                job.progress.advance(n);
                tracing::debug!(subject = %subject.name, rows = n, "erasure batch committed");
            }
            Err(e) => return Err((erased, e.message)),
        }
    }
    Ok((erased, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Period;

    #[test]
    fn a_reason_reads_back_from_its_code() {
        for b in [
            Because::Keep("Bookkeeping law | 7 years".into()),
            Because::Hold("dispute-7".into()),
            Because::KeepWhile {
                table: "books.invoices".into(),
                after: Period::Years(7),
                rule: "customers".into(),
            },
            Because::ReferencedBy("orders".into()),
            Because::NeededBy("books-invoices".into()),
        ] {
            assert_eq!(Because::parse(&b.code()), Some(b.clone()), "{b:?}");
        }
        assert_eq!(Because::parse("a reason from before codes"), None);
    }

    #[test]
    fn the_brake_wants_the_exact_count_above_a_hundred() {
        assert!(brake(100, None).is_ok());
        assert!(brake(101, None).is_err());
        assert!(brake(101, Some(101)).is_ok());
        assert!(
            brake(5, Some(4)).is_err(),
            "a different count is refused even below the brake"
        );
    }
}

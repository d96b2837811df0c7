//! The management report as data: built from a pass's summary and the run history, in
//! the reader's language. Rendered as HTML or text by templates, or written as JSON.
//! Holds counts, rule names and explanations — never a record's values.

use super::chart::{trend_svg, Series};
use super::locale::{date_time, duration, number, period, words, Words};
use crate::config::{ActionKind, Language, Period};
use crate::engine::outcome::{
    Failure, HeldCount, HoldEvent, Reconciled, RuleEvent, RuleEventKind, RuleOutcome, RuleStatus,
    RunSummary,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::BTreeMap;

/// Totals over all rules.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Records acted on.
    pub acted: u64,
    /// Deleted.
    pub deleted: u64,
    /// Anonymized.
    pub anonymized: u64,
    /// Flagged for review.
    pub flagged: u64,
    /// Held back by legal holds.
    pub held: u64,
    /// Rules that failed or were braked.
    pub failures: u64,
    /// Due within the coming 30 days.
    pub forecast_30d: u64,
    /// Flagged records waiting for a decision.
    pub awaiting_review: u64,
}

/// A problem explained for a manager.
#[derive(Debug, Clone, Serialize)]
pub struct Attention {
    /// The rule.
    pub rule: String,
    /// What happened, in plain words.
    pub what: String,
    /// What to do about it.
    pub todo: String,
    /// The technical detail, for whoever fixes it.
    pub detail: String,
}

/// One rule's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct RuleRow {
    /// Name.
    pub rule: String,
    /// Its description.
    pub description: Option<String>,
    /// Its legal basis.
    pub legal_basis: String,
    /// `delete`, `anonymize`, `flag`.
    pub action: ActionKind,
    /// The action in the reader's words.
    pub action_label: String,
    /// Records acted on.
    pub acted: u64,
    /// Records matched at the start of the pass.
    pub matched: Option<u64>,
    /// Held back, per hold.
    pub held: Vec<HeldCount>,
    /// Busy, left for the next pass.
    pub deferred: u64,
    /// How long its batches waited for lagging replicas, in milliseconds; absent when
    /// they never waited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_wait_ms: Option<u64>,
    /// The same, in words ("12.5 s"), for the text and HTML report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_wait: Option<String>,
    /// Due within 30 days.
    pub forecast_30d: Option<u64>,
    /// Flagged, waiting for a decision.
    pub awaiting_review: Option<u64>,
    /// `ok`, `failed`, `stopped`, `braked`, `reported`.
    pub status: String,
    /// The status in the reader's words.
    pub status_label: String,
}

/// A rule that started, changed or ended at the pass, in the reader's words: management
/// sees when the organisation's promises changed, and what they say now.
#[derive(Debug, Clone, Serialize)]
pub struct RuleChangeRow {
    /// The rule.
    pub rule: String,
    /// `rule-start`, `rule-change`, `rule-end`.
    pub event: RuleEventKind,
    /// The event in the reader's words.
    pub event_label: String,
    /// The fingerprint of the version (as in the audit trail).
    pub fingerprint: String,
    /// What the rule does (since the event), in the reader's words.
    pub action_label: String,
    /// Its retention period, in the reader's words.
    pub after: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The report's language (`en` or `nl` in JSON).
    pub language: Language,
    /// The pass.
    pub run_id: String,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// End, RFC 3339 UTC.
    pub finished_at: String,
    /// Start in the reader's words and timezone.
    pub started_local: String,
    /// How long it took.
    pub duration: String,
    /// Whether anything needs attention.
    pub failed: bool,
    /// Totals.
    pub totals: Totals,
    /// Problems first, explained.
    pub attention: Vec<Attention>,
    /// Per rule, in config order.
    pub rules: Vec<RuleRow>,
    /// The 30 days of the trend, oldest first (YYYY-MM-DD).
    pub trend_days: Vec<String>,
    /// Per rule, records acted on per trend day.
    pub trend: BTreeMap<String, Vec<u64>>,
    /// Hold events of this pass.
    pub hold_events: Vec<HoldEvent>,
    /// Rules that started, changed or ended at this pass.
    pub rule_events: Vec<RuleChangeRow>,
    /// When the rules last changed (RFC 3339 UTC), per the trail.
    pub rules_changed_at: Option<String>,
    /// The same in the reader's words and timezone.
    pub rules_changed: Option<String>,
    /// Data-subject requests open when the report was made: (open, overdue).
    pub requests: Option<(usize, usize)>,
    /// Batches settled from an interrupted pass.
    pub reconciled: Reconciled,
    /// Audit trail length after the pass.
    pub audit_entries: i64,
    /// Audit trail head hash after the pass.
    pub audit_head: String,
    /// The mail subject: the outcome at a glance.
    pub subject: String,
    /// The chart (HTML only).
    #[serde(skip)]
    pub trend_svg: String,
    /// The words (templates only).
    #[serde(skip)]
    pub words: &'static Words,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn status(s: RuleStatus) -> &'static str {
    match s {
        RuleStatus::Ok => "ok",
        RuleStatus::Failed => "failed",
        RuleStatus::Stopped => "stopped",
        RuleStatus::Braked => "braked",
        RuleStatus::Reported => "reported",
    }
}

fn status_label(s: RuleStatus, w: &Words) -> &'static str {
    match s {
        RuleStatus::Ok => w.status_ok,
        RuleStatus::Failed => w.status_failed,
        RuleStatus::Stopped => w.status_stopped,
        RuleStatus::Braked => w.status_braked,
        RuleStatus::Reported => w.status_reported,
    }
}

fn action_label(action: ActionKind, w: &Words) -> &'static str {
    match action {
        ActionKind::Delete => w.deleted,
        ActionKind::Anonymize => w.anonymized,
        ActionKind::Flag => w.flagged,
    }
}

/// A rule event of the pass in the reader's words.
fn rule_change_row(e: &RuleEvent, w: &Words, lang: Language) -> RuleChangeRow {
    let action = match e.action.as_str() {
        "delete" => Some(ActionKind::Delete),
        "anonymize" => Some(ActionKind::Anonymize),
        "flag" => Some(ActionKind::Flag),
        _ => None,
    };
    RuleChangeRow {
        rule: e.rule.clone(),
        event: e.event,
        event_label: match e.event {
            RuleEventKind::Start => w.rule_start,
            RuleEventKind::Change => w.rule_change,
            RuleEventKind::End => w.rule_end,
        }
        .to_owned(),
        fingerprint: e.fingerprint.clone(),
        action_label: action.map_or_else(|| e.action.clone(), |a| action_label(a, w).to_owned()),
        after: Period::parse(&e.after).map_or_else(|_| e.after.clone(), |p| period(p, lang)),
    }
}

/// A failure in plain words, with what to do.
fn explain(o: &RuleOutcome, lang: Language) -> Option<Attention> {
    let detail = o.error.clone().unwrap_or_default();
    let kind = o.failure.unwrap_or(Failure::Other);
    let nl = lang == Language::Nl;
    let n = |v: u64| number(v as i64, lang);
    let (what, todo) = match o.status {
        RuleStatus::Ok | RuleStatus::Reported => return None,
        RuleStatus::Stopped => {
            if nl {
                (
                    "De doorloop werd gestopt (de dienst stopte) voor deze regel klaar was."
                        .to_owned(),
                    "Niets: de volgende doorloop gaat verder.".to_owned(),
                )
            } else {
                (
                    "The pass was stopped (the service stopped) before this rule finished."
                        .to_owned(),
                    "Nothing: the next pass carries on.".to_owned(),
                )
            }
        }
        RuleStatus::Braked if kind == Failure::ConfirmMismatch => {
            if nl {
                ("De bevestiging klopte niet met het aantal records dat de regel nu treft; er werd niets gedaan.".to_owned(), "Bekijk het aantal met retentiond plan en bevestig precies dat aantal.".to_owned())
            } else {
                ("The confirmation did not match the number of records the rule matches now; nothing was done.".to_owned(), "Look up the count with retentiond plan and confirm exactly that number.".to_owned())
            }
        }
        RuleStatus::Braked => {
            let (m, t) = (o.matched.unwrap_or(0), o.table_rows.unwrap_or(0));
            let cmd = format!("retentiond run --once --rule {} --confirm {m}", o.rule);
            if nl {
                (format!("De regel zou {} van de {} records behandelen, meer dan de veiligheidsgrens toelaat. Er werd niets gedaan.", n(m), n(t)),
                 format!("Laat nagaan of dit klopt. Zo ja: {cmd}, of verhoog de grens in de regel. Zo nee: pas de regel aan."))
            } else {
                (format!("The rule would act on {} of {} records, more than its safety limit allows. Nothing was done.", n(m), n(t)),
                 format!("Have it checked. If it is right: {cmd}, or raise the limit in the rule. If not: correct the rule."))
            }
        }
        RuleStatus::Failed if kind == Failure::Unreachable => {
            if nl {
                (format!("De database {} was niet bereikbaar.", o.database), "Controleer dat de databaseserver draait en verbindingen van deze machine aanvaardt. De volgende doorloop probeert opnieuw.".to_owned())
            } else {
                (format!("The database {} could not be reached.", o.database), "Check that the database server is running and accepts connections from this machine. The next pass tries again.".to_owned())
            }
        }
        RuleStatus::Failed if kind == Failure::CommitInDoubt => {
            if nl {
                ("De verbinding viel weg terwijl een reeks werd opgeslagen.".to_owned(), "Niets: de volgende doorloop vervolledigt de audittrail voor die reeks vanzelf.".to_owned())
            } else {
                (
                    "The connection was lost while a batch was being saved.".to_owned(),
                    "Nothing: the next pass completes the audit trail for that batch by itself."
                        .to_owned(),
                )
            }
        }
        RuleStatus::Failed if kind == Failure::Busy => {
            if nl {
                ("De database was te druk bezet (vergrendelingen of time-outs). Er bleef niets half afgewerkt.".to_owned(), "Blijft dit terugkomen, plan de doorloop dan op een rustiger uur of verhoog lock_timeout.".to_owned())
            } else {
                (
                    "The database was too busy (locks or timeouts). Nothing was left half-done."
                        .to_owned(),
                    "If this repeats, schedule the pass at a quieter hour or raise lock_timeout."
                        .to_owned(),
                )
            }
        }
        RuleStatus::Failed if kind == Failure::Audit => {
            if nl {
                ("Het auditspoor kon niet geschreven worden; de regel stopte meteen, zodat niets zonder bewijs gebeurde.".to_owned(), "Controleer de schijfruimte en rechten van de statusmap. De volgende start vervolledigt het auditspoor.".to_owned())
            } else {
                ("The audit trail could not be written; the rule stopped at once, so that nothing was done without proof.".to_owned(), "Check the disk space and permissions of the state directory. The next start completes the trail.".to_owned())
            }
        }
        RuleStatus::Failed if kind == Failure::NoRoom => {
            if nl {
                ("De statusmap had te weinig vrije ruimte voor het auditspoor van deze regel; de regel begon niet, er gebeurde niets.".to_owned(), "Maak ruimte vrij in de statusmap (of verplaats ze naar een grotere schijf). De volgende doorloop doet de regel dan alsnog.".to_owned())
            } else {
                ("The state directory had too little free space for this rule's audit trail; the rule did not start, and nothing was done.".to_owned(), "Free space in the state directory (or move it to a larger disk). The next pass then does the rule.".to_owned())
            }
        }
        RuleStatus::Failed if kind == Failure::ReplicaLag => {
            if nl {
                (format!("Een replica van de database {} liep te ver achter (of gaf niet aan hoever); de regel stopte, zodat de replica niet verder achterop raakte.", o.database), "Laat nagaan waarom de replica achterloopt of stilstaat. De volgende doorloop gaat verder waar deze stopte.".to_owned())
            } else {
                (format!("A replica of the database {} was too far behind (or could not tell how far); the rule stopped so as not to leave it further behind.", o.database), "Have the replica checked: why it lags or is paused. The next pass carries on where this one stopped.".to_owned())
            }
        }
        RuleStatus::Failed if kind == Failure::Journal => {
            if nl {
                ("retentiond kon zijn kleine boekhoudtabel niet aanmaken.".to_owned(), "Geef het recht CREATE op de database, of maak retentiond_journal aan zoals in de README.".to_owned())
            } else {
                ("retentiond could not create its small bookkeeping table.".to_owned(), "Grant CREATE on the database, or create retentiond_journal as the README shows.".to_owned())
            }
        }
        RuleStatus::Failed => {
            if nl {
                ("De regel kon niet afgewerkt worden.".to_owned(), "Vraag de beheerder retentiond check uit te voeren; de technische melding staat hieronder.".to_owned())
            } else {
                ("The rule could not finish.".to_owned(), "Ask the administrator to run retentiond check; the technical message is below.".to_owned())
            }
        }
    };
    Some(Attention {
        rule: o.rule.clone(),
        what,
        todo,
        detail,
    })
}

/// Builds the report of `summary`, with the trend from `history` (summaries of earlier
/// passes; any order, any range: only the 30 days up to this pass are used).
pub fn build(summary: &RunSummary, history: &[RunSummary], tz: Tz, lang: Language) -> Report {
    let w = words(lang);
    let started = parse_time(&summary.started_at).unwrap_or_else(Utc::now);
    let finished = parse_time(&summary.finished_at).unwrap_or(started);
    let mut totals = Totals::default();
    let mut rules = Vec::new();
    for o in &summary.rules {
        totals.acted += o.acted;
        match o.action {
            ActionKind::Delete => totals.deleted += o.acted,
            ActionKind::Anonymize => totals.anonymized += o.acted,
            ActionKind::Flag => totals.flagged += o.acted,
        }
        let held: u64 = o.held.iter().map(|h| h.records).sum();
        totals.held += held;
        totals.forecast_30d += o.forecast_30d.unwrap_or(0);
        totals.awaiting_review += o.awaiting_review.unwrap_or(0);
        if matches!(o.status, RuleStatus::Failed | RuleStatus::Braked) {
            totals.failures += 1;
        }
        rules.push(RuleRow {
            rule: o.rule.clone(),
            description: o.description.clone(),
            legal_basis: o.legal_basis.clone(),
            action: o.action,
            action_label: action_label(o.action, w).to_owned(),
            acted: o.acted,
            matched: o.matched,
            held: o.held.clone(),
            deferred: o.deferred,
            replica_wait_ms: (o.replica_wait_ms > 0).then_some(o.replica_wait_ms),
            replica_wait: (o.replica_wait_ms > 0).then(|| {
                super::locale::duration(i64::try_from(o.replica_wait_ms).unwrap_or(i64::MAX))
            }),
            forecast_30d: o.forecast_30d,
            awaiting_review: o.awaiting_review,
            status: status(o.status).to_owned(),
            status_label: status_label(o.status, w).to_owned(),
        });
    }
    let mut attention: Vec<Attention> = summary
        .rules
        .iter()
        .filter(|o| o.status == RuleStatus::Braked)
        .filter_map(|o| explain(o, lang))
        .collect();
    attention.extend(
        summary
            .rules
            .iter()
            .filter(|o| o.status != RuleStatus::Braked)
            .filter_map(|o| explain(o, lang)),
    );
    let (days, trend) = trend(summary, history, started, tz);
    // In config order, like the table above the chart.
    let series: Vec<Series> = summary
        .rules
        .iter()
        .filter_map(|r| {
            trend.get(&r.rule).map(|values| Series {
                name: r.rule.clone(),
                values: values.clone(),
            })
        })
        .collect();
    let removed = totals.deleted + totals.anonymized;
    let subject = match (lang, totals.failures) {
        (Language::En, 0) => format!(
            "retentiond: {} records removed, 0 failures",
            number(removed as i64, lang)
        ),
        (Language::En, f) => format!(
            "retentiond: {} records removed, {f} {}",
            number(removed as i64, lang),
            w.failures_word
        ),
        (Language::Nl, 0) => format!(
            "retentiond: {} records verwijderd, 0 fouten",
            number(removed as i64, lang)
        ),
        (Language::Nl, f) => format!(
            "retentiond: {} records verwijderd, {f} {}",
            number(removed as i64, lang),
            w.failures_word
        ),
    };
    Report {
        language: lang,
        run_id: summary.run_id.clone(),
        started_at: summary.started_at.clone(),
        finished_at: summary.finished_at.clone(),
        started_local: date_time(started, tz, lang),
        duration: duration((finished - started).num_milliseconds()),
        failed: summary.failed(),
        totals,
        attention,
        rules,
        trend_svg: trend_svg(&days, &series, lang),
        trend_days: days.iter().map(|d| d.to_string()).collect(),
        trend,
        hold_events: summary.hold_events.clone(),
        rule_events: summary
            .rule_events
            .iter()
            .map(|e| rule_change_row(e, w, lang))
            .collect(),
        rules_changed_at: summary.rules_changed_at.clone(),
        rules_changed: summary
            .rules_changed_at
            .as_deref()
            .and_then(parse_time)
            .map(|t| date_time(t, tz, lang)),
        requests: None,
        reconciled: summary.reconciled.clone(),
        audit_entries: summary.audit_entries,
        audit_head: summary.audit_head.clone(),
        subject,
        words: w,
    }
}

/// Records acted on per rule per local day, for the 30 days ending with this pass.
fn trend(
    summary: &RunSummary,
    history: &[RunSummary],
    at: DateTime<Utc>,
    tz: Tz,
) -> (Vec<NaiveDate>, BTreeMap<String, Vec<u64>>) {
    let last = at.with_timezone(&tz).date_naive();
    let days: Vec<NaiveDate> = (0..30).rev().map(|i| last - Duration::days(i)).collect();
    let mut trend: BTreeMap<String, Vec<u64>> = summary
        .rules
        .iter()
        .map(|r| (r.rule.clone(), vec![0; days.len()]))
        .collect();
    let mut seen = std::collections::HashSet::new();
    for run in history.iter().chain(std::iter::once(summary)) {
        if !seen.insert(run.run_id.as_str()) {
            continue;
        }
        let Some(t) = parse_time(&run.started_at) else {
            continue;
        };
        let day = t.with_timezone(&tz).date_naive();
        let Some(i) = days.iter().position(|d| *d == day) else {
            continue;
        };
        for r in &run.rules {
            if let Some(values) = trend.get_mut(&r.rule) {
                values[i] += r.acted;
            }
        }
    }
    (days, trend)
}

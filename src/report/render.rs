//! The operator's summary of a pass, as plain text: what `run --once` and `demo` print at
//! the end of a pass, with every rule's technical message. (The management report, with its
//! trend and plain-language explanations, is [`super::document`].) Words come from
//! [`Labels`] in the configured language.

use crate::config::{ActionKind, Language};
use crate::engine::outcome::{RuleStatus, RunSummary};
use std::fmt::Write;

/// The words of a summary in one language.
struct Labels {
    title: &'static str,
    pass: &'static str,
    started: &'static str,
    finished: &'static str,
    outcome_ok: &'static str,
    outcome_failed: &'static str,
    total: &'static str,
    deleted: &'static str,
    anonymized: &'static str,
    flagged: &'static str,
    ok: &'static str,
    failed: &'static str,
    stopped: &'static str,
    braked: &'static str,
    reported: &'static str,
    braked_banner: &'static str,
    held: &'static str,
    would: &'static str,
    deferred: &'static str,
    replica_wait: &'static str,
    holds: &'static str,
    rules: &'static str,
    trail: &'static str,
    entries: &'static str,
    settled: &'static str,
    unresolved: &'static str,
}

const EN: Labels = Labels {
    title: "retentiond purge summary",
    pass: "Pass",
    started: "started",
    finished: "finished",
    outcome_ok: "all rules completed",
    outcome_failed: "SOME RULES FAILED",
    total: "Total records acted on",
    deleted: "deleted",
    anonymized: "anonymized",
    flagged: "flagged for review",
    ok: "ok",
    failed: "FAILED",
    stopped: "stopped early (continues next pass)",
    braked: "STOPPED BY THE SAFETY BRAKE",
    reported: "report only (nothing done)",
    braked_banner: "ATTENTION: the safety brake stopped these rules; nothing was done for them",
    held: "held back by legal hold",
    would: "would act on",
    deferred: "busy (locked by another transaction), left for the next pass",
    replica_wait: "waited for lagging replicas",
    holds: "Legal holds",
    rules: "Rule history",
    trail: "Audit trail",
    entries: "entries, head hash",
    settled: "Settled from an interrupted pass",
    unresolved: "Still in doubt (settled at the next pass)",
};

const NL: Labels = Labels {
    title: "retentiond: overzicht van de opschoning",
    pass: "Doorloop",
    started: "gestart",
    finished: "beëindigd",
    outcome_ok: "alle regels uitgevoerd",
    outcome_failed: "SOMMIGE REGELS MISLUKT",
    total: "Totaal aantal behandelde records",
    deleted: "verwijderd",
    anonymized: "geanonimiseerd",
    flagged: "gemarkeerd voor controle",
    ok: "ok",
    failed: "MISLUKT",
    stopped: "vroegtijdig gestopt (loopt verder bij de volgende doorloop)",
    braked: "TEGENGEHOUDEN DOOR DE VEILIGHEIDSREM",
    reported: "enkel rapport (niets uitgevoerd)",
    braked_banner:
        "LET OP: de veiligheidsrem hield deze regels tegen; er werd niets voor uitgevoerd",
    held: "tegengehouden door juridische blokkering",
    would: "zou behandelen",
    deferred: "bezet (vergrendeld door een andere transactie), voor de volgende doorloop",
    replica_wait: "gewacht op achterlopende replica's",
    holds: "Juridische blokkeringen",
    rules: "Geschiedenis van de regels",
    trail: "Audittrail",
    entries: "regels, laatste hash",
    settled: "Afgehandeld uit een onderbroken doorloop",
    unresolved: "Nog onzeker (afgehandeld bij de volgende doorloop)",
};

fn labels(lang: Language) -> &'static Labels {
    match lang {
        Language::En => &EN,
        Language::Nl => &NL,
    }
}

impl Labels {
    fn action(&self, action: ActionKind) -> &'static str {
        match action {
            ActionKind::Delete => self.deleted,
            ActionKind::Anonymize => self.anonymized,
            ActionKind::Flag => self.flagged,
        }
    }

    fn status(&self, s: RuleStatus) -> &'static str {
        match s {
            RuleStatus::Ok => self.ok,
            RuleStatus::Failed => self.failed,
            RuleStatus::Stopped => self.stopped,
            RuleStatus::Braked => self.braked,
            RuleStatus::Reported => self.reported,
        }
    }
}

/// The summary of `s` as text, in `lang`.
pub fn text(s: &RunSummary, lang: Language) -> String {
    let l = labels(lang);
    let mut o = String::new();
    let outcome = if s.failed() {
        l.outcome_failed
    } else {
        l.outcome_ok
    };
    let _ = writeln!(o, "{} — {} {} ({outcome})", l.title, l.pass, s.run_id);
    let _ = writeln!(
        o,
        "{} {}, {} {}",
        l.started, s.started_at, l.finished, s.finished_at
    );
    let _ = writeln!(o);
    let braked: Vec<_> = s
        .rules
        .iter()
        .filter(|r| r.status == RuleStatus::Braked)
        .collect();
    if !braked.is_empty() {
        let _ = writeln!(o, "{}:", l.braked_banner);
        for r in braked {
            let _ = writeln!(o, "  {}: {}", r.rule, r.error.as_deref().unwrap_or(""));
        }
        let _ = writeln!(o);
    }
    for r in &s.rules {
        let _ = writeln!(
            o,
            "{:<32} {:>8} {:<20} {}",
            r.rule,
            r.acted,
            l.action(r.action),
            l.status(r.status)
        );
        if r.status == RuleStatus::Reported {
            let _ = writeln!(o, "    {} {} records", l.would, r.matched.unwrap_or(0));
        }
        for h in &r.held {
            let _ = writeln!(o, "    {} {}: {} ({})", l.held, h.hold, h.records, h.reason);
        }
        if r.deferred > 0 {
            let _ = writeln!(o, "    {}: {}", l.deferred, r.deferred);
        }
        if r.replica_wait_ms > 0 {
            let ms = i64::try_from(r.replica_wait_ms).unwrap_or(i64::MAX);
            let _ = writeln!(o, "    {}: {}", l.replica_wait, super::locale::duration(ms));
        }
        if let Some(d) = &r.description {
            let _ = writeln!(o, "    {d}");
        }
        if !r.legal_basis.is_empty() {
            let _ = writeln!(o, "    ({})", r.legal_basis);
        }
        if let Some(e) = &r.error {
            let _ = writeln!(o, "    ! {e}");
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "{}: {}", l.total, s.total_acted());
    if s.reconciled.confirmed_batches + s.reconciled.dropped_batches > 0 {
        let _ = writeln!(
            o,
            "{}: {} batches confirmed ({} records), {} rolled back",
            l.settled,
            s.reconciled.confirmed_batches,
            s.reconciled.confirmed_entries,
            s.reconciled.dropped_batches
        );
    }
    for e in &s.hold_events {
        let _ = writeln!(o, "{}: {} {}", l.holds, e.hold, e.event);
    }
    for e in &s.rule_events {
        let _ = writeln!(o, "{}: {} {} ({})", l.rules, e.rule, e.event, e.fingerprint);
    }
    for u in &s.reconciled.unresolved {
        let _ = writeln!(o, "{}: {u}", l.unresolved);
    }
    let _ = writeln!(
        o,
        "{}: {} {} {}",
        l.trail, s.audit_entries, l.entries, s.audit_head
    );
    o
}

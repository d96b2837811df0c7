//! A run summary as plain text (terminal, mail), JSON (tools) or a self-contained HTML page.
//! Words come from [`Labels`] in the configured language.

use super::summary::{RuleStatus, RunSummary};
use crate::config::Language;
use std::fmt::Write;

/// Output formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text.
    Text,
    /// JSON.
    Json,
    /// HTML page.
    Html,
}

/// The words of a summary in one language.
struct Labels {
    title: &'static str,
    pass: &'static str,
    started: &'static str,
    finished: &'static str,
    outcome_ok: &'static str,
    outcome_failed: &'static str,
    rule: &'static str,
    action: &'static str,
    records: &'static str,
    status: &'static str,
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
    holds: &'static str,
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
    rule: "Rule",
    action: "Action",
    records: "Records",
    status: "Status",
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
    holds: "Legal holds",
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
    rule: "Regel",
    action: "Actie",
    records: "Records",
    status: "Status",
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
    holds: "Juridische blokkeringen",
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
    fn action(&self, verb: &str) -> &'static str {
        match verb {
            "delete" => self.deleted,
            "anonymize" => self.anonymized,
            _ => self.flagged,
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

/// Renders `s` in `format` and `lang`.
pub fn render(s: &RunSummary, format: Format, lang: Language) -> String {
    match format {
        Format::Json => {
            serde_json::to_string_pretty(s).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        }
        Format::Text => text(s, labels(lang)),
        Format::Html => html(s, labels(lang)),
    }
}

fn text(s: &RunSummary, l: &Labels) -> String {
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
            l.action(&r.action),
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(s: &RunSummary, l: &Labels) -> String {
    let mut rows = String::new();
    for r in &s.rules {
        let class = match r.status {
            RuleStatus::Ok => "ok",
            RuleStatus::Failed => "bad",
            RuleStatus::Stopped | RuleStatus::Reported => "warn",
            RuleStatus::Braked => "bad",
        };
        let _ = write!(
            rows,
            "<tr class=\"{class}\"><td><strong>{}</strong><br><small>{}</small><br><small>{}</small>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&r.rule),
            esc(r.description.as_deref().unwrap_or("")),
            esc(&r.legal_basis),
            r.error.as_deref().map(|e| format!("<div class=\"err\">{}</div>", esc(e))).unwrap_or_default()
                + &r.held.iter().map(|h| format!("<div>{} {}: {}</div>", l.held, esc(&h.hold), h.records)).collect::<String>(),
            l.action(&r.action),
            r.acted,
            l.status(r.status)
        );
    }
    let outcome = if s.failed() {
        l.outcome_failed
    } else {
        l.outcome_ok
    };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title><style>\
body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}}table{{border-collapse:collapse;width:100%}}\
td,th{{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}}.n{{text-align:right}}\
tr.bad td{{background:#fde8e8}}tr.warn td{{background:#fff6dd}}.err{{color:#a00}}code{{font-size:.8em}}\
</style></head><body><h1>{title}</h1><p>{pass} {run} — {started} {st}, {finished} {fi} — <strong>{outcome}</strong></p>\
<table><tr><th>{rule}</th><th>{action}</th><th class=\"n\">{records}</th><th>{status}</th></tr>{rows}</table>\
<p>{total}: <strong>{n}</strong></p><p>{trail}: {entries} {entries_l} <code>{head}</code></p></body></html>\n",
        title = l.title,
        pass = l.pass,
        run = esc(&s.run_id),
        started = l.started,
        st = esc(&s.started_at),
        finished = l.finished,
        fi = esc(&s.finished_at),
        rule = l.rule,
        action = l.action,
        records = l.records,
        status = l.status,
        total = l.total,
        n = s.total_acted(),
        trail = l.trail,
        entries = s.audit_entries,
        entries_l = l.entries,
        head = esc(&s.audit_head),
    )
}

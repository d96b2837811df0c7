//! Words, numbers, dates and periods for the management report and the answer letter, in
//! English or Dutch as a Dutch reader writes them (23 november 2026; 1.234; 7 jaar).

use crate::config::{Language, Period};
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// Every word the report templates use.
#[derive(Debug, Clone, Serialize)]
pub struct Words {
    pub lang: &'static str,
    pub title: &'static str,
    pub subtitle: &'static str,
    pub pass: &'static str,
    pub ran: &'static str,
    pub took: &'static str,
    pub all_kept: &'static str,
    pub attention_needed: &'static str,
    pub failures_word: &'static str,
    pub deleted: &'static str,
    pub anonymized: &'static str,
    pub flagged: &'static str,
    pub held_back: &'static str,
    pub failures: &'static str,
    pub attention: &'static str,
    pub what_to_do: &'static str,
    pub per_rule: &'static str,
    pub rule: &'static str,
    pub action: &'static str,
    pub records: &'static str,
    pub status: &'static str,
    pub legal_basis: &'static str,
    pub held_by: &'static str,
    pub deferred: &'static str,
    pub replica_wait: &'static str,
    pub trend: &'static str,
    pub trend_note: &'static str,
    pub outlook: &'static str,
    pub forecast: &'static str,
    pub awaiting_review: &'static str,
    pub nothing_ahead: &'static str,
    pub holds: &'static str,
    pub requests: &'static str,
    pub requests_open: &'static str,
    pub requests_overdue: &'static str,
    pub hold_start: &'static str,
    pub hold_change: &'static str,
    pub hold_end: &'static str,
    pub rule_changes: &'static str,
    pub rule_start: &'static str,
    pub rule_change: &'static str,
    pub rule_end: &'static str,
    pub rule_now: &'static str,
    pub after: &'static str,
    pub rules_changed: &'static str,
    pub settled: &'static str,
    pub unresolved: &'static str,
    pub trail: &'static str,
    pub trail_note: &'static str,
    pub entries: &'static str,
    pub head_hash: &'static str,
    pub footer: &'static str,
    pub status_ok: &'static str,
    pub status_failed: &'static str,
    pub status_stopped: &'static str,
    pub status_braked: &'static str,
    pub status_reported: &'static str,
    pub would_act: &'static str,
    pub total: &'static str,
}

const EN: Words = Words {
    lang: "en",
    title: "Retention report",
    subtitle: "What retentiond did to keep the organisation's retention promises",
    pass: "Pass",
    ran: "Ran on",
    took: "took",
    all_kept: "All retention rules were kept",
    attention_needed: "Attention needed",
    failures_word: "FAILURES",
    deleted: "deleted",
    anonymized: "anonymized",
    flagged: "flagged for review",
    held_back: "held back",
    failures: "failures",
    attention: "Needs your attention",
    what_to_do: "What to do",
    per_rule: "Per rule",
    rule: "Rule",
    action: "Action",
    records: "Records",
    status: "Status",
    legal_basis: "Legal basis",
    held_by: "Held back by legal hold",
    deferred: "Busy at the time, taken next pass",
    replica_wait: "Waited for lagging replicas",
    trend: "The last 30 days",
    trend_note: "Records acted on per day, per rule",
    outlook: "The coming 30 days",
    forecast: "will be due",
    awaiting_review: "flagged records wait for a decision",
    nothing_ahead: "Nothing is due in the coming 30 days.",
    holds: "Legal holds",
    requests: "Requests from people (GDPR)",
    requests_open: "open",
    requests_overdue: "OVERDUE: past the month the law allows",
    hold_start: "started",
    hold_change: "changed",
    hold_end: "ended",
    rule_changes: "Changes to the rules",
    rule_start: "came into force",
    rule_change: "changed",
    rule_end: "ended: removed from the configuration",
    rule_now: "now",
    after: "after",
    rules_changed: "The retention rules last changed on",
    settled: "Completed from an interrupted pass",
    unresolved: "Still to be settled at the next pass",
    trail: "Audit trail",
    trail_note: "Keep this report: anyone can later check that the audit trail still leads to this hash (retentiond audit verify).",
    entries: "entries",
    head_hash: "latest hash",
    footer: "This report holds no personal data: only rule names, counts and record keys in the audit trail.",
    status_ok: "done",
    status_failed: "FAILED",
    status_stopped: "stopped early, continues next pass",
    status_braked: "STOPPED BY THE SAFETY BRAKE",
    status_reported: "report only",
    would_act: "would act on",
    total: "Total",
};

const NL: Words = Words {
    lang: "nl",
    title: "Rapport bewaartermijnen",
    subtitle: "Wat retentiond deed om de bewaartermijnen van de organisatie na te leven",
    pass: "Doorloop",
    ran: "Uitgevoerd op",
    took: "duur",
    all_kept: "Alle bewaartermijnen werden nageleefd",
    attention_needed: "Aandacht nodig",
    failures_word: "FOUTEN",
    deleted: "verwijderd",
    anonymized: "geanonimiseerd",
    flagged: "gemarkeerd voor controle",
    held_back: "tegengehouden",
    failures: "fouten",
    attention: "Vraagt uw aandacht",
    what_to_do: "Wat te doen",
    per_rule: "Per regel",
    rule: "Regel",
    action: "Actie",
    records: "Records",
    status: "Status",
    legal_basis: "Rechtsgrond",
    held_by: "Tegengehouden door juridische blokkering",
    deferred: "Op dat moment in gebruik, volgende doorloop behandeld",
    replica_wait: "Gewacht op achterlopende replica's",
    trend: "De voorbije 30 dagen",
    trend_note: "Behandelde records per dag, per regel",
    outlook: "De komende 30 dagen",
    forecast: "worden opeisbaar",
    awaiting_review: "gemarkeerde records wachten op een beslissing",
    nothing_ahead: "De komende 30 dagen wordt niets opeisbaar.",
    holds: "Juridische blokkeringen",
    requests: "Verzoeken van betrokkenen (AVG)",
    requests_open: "open",
    requests_overdue: "TE LAAT: langer dan de maand die de wet toelaat",
    hold_start: "gestart",
    hold_change: "gewijzigd",
    hold_end: "beëindigd",
    rule_changes: "Wijzigingen in de regels",
    rule_start: "in werking getreden",
    rule_change: "gewijzigd",
    rule_end: "beëindigd: uit de configuratie verwijderd",
    rule_now: "nu",
    after: "na",
    rules_changed: "De bewaarregels werden laatst gewijzigd op",
    settled: "Afgewerkt uit een onderbroken doorloop",
    unresolved: "Nog af te handelen bij de volgende doorloop",
    trail: "Audittrail",
    trail_note: "Bewaar dit rapport: iedereen kan later nagaan dat de audittrail nog naar deze hash leidt (retentiond audit verify).",
    entries: "regels",
    head_hash: "laatste hash",
    footer: "Dit rapport bevat geen persoonsgegevens: enkel namen van regels, aantallen en in de audittrail de sleutels van records.",
    status_ok: "uitgevoerd",
    status_failed: "MISLUKT",
    status_stopped: "vroegtijdig gestopt, loopt verder bij de volgende doorloop",
    status_braked: "TEGENGEHOUDEN DOOR DE VEILIGHEIDSREM",
    status_reported: "enkel rapport",
    would_act: "zou behandelen",
    total: "Totaal",
};

/// The words for `lang`.
pub fn words(lang: Language) -> &'static Words {
    match lang {
        Language::En => &EN,
        Language::Nl => &NL,
    }
}

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_NL: [&str; 12] = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
];

/// 1234567 → "1,234,567" (en) or "1.234.567" (nl).
pub fn number(n: i64, lang: Language) -> String {
    let sep = match lang {
        Language::En => ',',
        Language::Nl => '.',
    };
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

fn month(m: u32, lang: Language) -> &'static str {
    let i = (m.clamp(1, 12) - 1) as usize;
    match lang {
        Language::En => MONTHS_EN[i],
        Language::Nl => MONTHS_NL[i],
    }
}

/// "23 November 2026, 02:30" / "23 november 2026, 02:30" in `tz`.
pub fn date_time(t: DateTime<Utc>, tz: Tz, lang: Language) -> String {
    let l = t.with_timezone(&tz);
    format!(
        "{} {} {}, {:02}:{:02}",
        l.day(),
        month(l.month(), lang),
        l.year(),
        l.hour(),
        l.minute()
    )
}

/// "23 November 2026" / "23 november 2026": a day in a letter or a due date.
pub fn date(d: NaiveDate, lang: Language) -> String {
    format!("{} {} {}", d.day(), month(d.month(), lang), d.year())
}

/// A retention period in words: "7 years", "1 month" / "7 jaar", "1 maand" (the config
/// writes periods in English; a Dutch reader should not have to).
pub fn period(p: Period, lang: Language) -> String {
    if lang == Language::En {
        return p.to_string();
    }
    let (n, one, many) = match p {
        Period::Days(n) => (n, "dag", "dagen"),
        Period::Weeks(n) => (n, "week", "weken"),
        Period::Months(n) => (n, "maand", "maanden"),
        Period::Years(n) => (n, "jaar", "jaar"),
    };
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "23 nov" for chart labels.
pub fn short_date(d: chrono::NaiveDate, lang: Language) -> String {
    let m: String = month(d.month(), lang).chars().take(3).collect();
    format!("{} {m}", d.day())
}

/// "2 min 14 s", "850 ms".
pub fn duration(ms: i64) -> String {
    match ms {
        ..=999 => format!("{} ms", ms.max(0)),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_dates_follow_the_language() {
        assert_eq!(number(1234, Language::Nl), "1.234");
        assert_eq!(number(1234567, Language::En), "1,234,567");
        assert_eq!(number(999, Language::Nl), "999");
        assert_eq!(number(0, Language::En), "0");
        let t: DateTime<Utc> = "2026-11-23T01:30:00Z".parse().unwrap();
        let tz: Tz = "Europe/Brussels".parse().unwrap();
        assert_eq!(date_time(t, tz, Language::Nl), "23 november 2026, 02:30");
        assert_eq!(date_time(t, tz, Language::En), "23 November 2026, 02:30");
        assert_eq!(duration(134_000), "2 min 14 s");
        let d = NaiveDate::from_ymd_opt(2031, 12, 31).unwrap();
        assert_eq!(date(d, Language::Nl), "31 december 2031");
        assert_eq!(date(d, Language::En), "31 December 2031");
    }

    #[test]
    fn periods_are_written_in_the_readers_language() {
        assert_eq!(period(Period::Years(7), Language::Nl), "7 jaar");
        assert_eq!(period(Period::Months(1), Language::Nl), "1 maand");
        assert_eq!(period(Period::Weeks(2), Language::Nl), "2 weken");
        assert_eq!(period(Period::Days(30), Language::Nl), "30 dagen");
        assert_eq!(period(Period::Years(7), Language::En), "7 years");
    }
}

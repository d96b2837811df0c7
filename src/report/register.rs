//! The record of processing activities (GDPR art. 30) and the retention paragraph of the
//! privacy statement, written from the rules and subjects of the config, so that what the
//! DPO files and what the public reads say what the machine really does. HTML (one page,
//! prints on A4), Markdown, CSV and JSON; English or Dutch.

use super::locale::{date, period};
use crate::audit::export::cell;
use crate::config::{Action, Config, Erase, Language, Mode, Period, Rule, Subject};
use chrono::NaiveDate;
use minijinja::Environment;
use serde::Serialize;

/// Register formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A self-contained HTML page that prints on A4.
    Html,
    /// Markdown: headings and tables, for a wiki or a repository.
    Markdown,
    /// CSV: a header and one row per processing activity, for a spreadsheet.
    Csv,
    /// JSON: the whole register as data, for other tools.
    Json,
}

/// Every word of the register in one language. Sentences with `{name}` get a value filled
/// in; everything else in the output is the operator's own text from the config.
#[derive(Debug, Serialize)]
struct Words {
    lang: &'static str,
    title: &'static str,
    subtitle: &'static str,
    generated: &'static str,
    changed: &'static str,
    config: &'static str,
    by_purpose: &'static str,
    no_purpose: &'static str,
    categories: &'static str,
    data_subjects: &'static str,
    legal_basis: &'static str,
    recipients: &'static str,
    retention: &'static str,
    owner: &'static str,
    stored_in: &'static str,
    only_where: &'static str,
    not_stated: &'static str,
    no_activities: &'static str,
    kind_rule: &'static str,
    kind_subject: &'static str,
    enforced: &'static str,
    report_only: &'static str,
    on_request: &'static str,
    until: &'static str,
    after: &'static str,
    then_deleted: &'static str,
    then_anonymized: &'static str,
    then_flagged: &'static str,
    keep_while: &'static str,
    erase_keep: &'static str,
    erase_delete: &'static str,
    erase_anonymize: &'static str,
    no_rule: &'static str,
    statement_heading: &'static str,
    statement_intro: &'static str,
    statement_title: &'static str,
    statement_none: &'static str,
    sentence: &'static str,
    span_after: &'static str,
    span_until: &'static str,
    longer: &'static str,
    verb_delete: &'static str,
    verb_anonymize: &'static str,
    verb_flag: &'static str,
    all_data: &'static str,
    what: &'static str,
    everyone: &'static str,
    holds: &'static str,
    not_enforced_heading: &'static str,
    not_enforced_intro: &'static str,
    and: &'static str,
    footer: &'static str,
    csv_header: [&'static str; 12],
}

const EN: Words = Words {
    lang: "en",
    title: "Record of processing activities",
    subtitle: "GDPR article 30, written from the retention rules and the data of people that retentiond knows",
    generated: "Drawn up on",
    changed: "Rules last changed on",
    config: "Configuration",
    by_purpose: "Processing activities by purpose",
    no_purpose: "Purpose not stated",
    categories: "Personal data",
    data_subjects: "About whom",
    legal_basis: "Legal basis",
    recipients: "Shared with",
    retention: "Kept how long",
    owner: "Responsible",
    stored_in: "Stored in",
    only_where: "only where",
    not_stated: "Not stated",
    no_activities: "The configuration has no rules and no subjects yet: there is nothing to register.",
    kind_rule: "retention rule",
    kind_subject: "requests from people",
    enforced: "enforced",
    report_only: "not yet enforced (report only)",
    on_request: "on a request from the person",
    until: "until {since}",
    after: "{period} after {since}",
    then_deleted: "{span}, then deleted",
    then_anonymized: "{span}, then anonymized ({columns})",
    then_flagged: "{span}, then flagged for review",
    keep_while: "longer while {table} refers to it with a row less than {period} old",
    erase_keep: "kept on a request for erasure: {reason}",
    erase_delete: "deleted on a request for erasure",
    erase_anonymize: "anonymized on a request for erasure",
    no_rule: "no retention rule",
    statement_heading: "Retention in the privacy statement",
    statement_intro: "Ready to copy into the privacy statement: one sentence for each rule that retentiond enforces, and nothing it does not.",
    statement_title: "How long we keep your data",
    statement_none: "No rule is enforced yet, so the privacy statement cannot promise a retention period.",
    sentence: "{purpose}we keep {what} of {whom} {span}{longer}, and then we {verb}.",
    span_after: "for {period} after {since}",
    span_until: "until {since}",
    longer: " (longer while other data we must keep still refer to them)",
    verb_delete: "delete them",
    verb_anonymize: "make them anonymous",
    verb_flag: "review whether we still need them",
    all_data: "the personal data",
    what: "the {categories}",
    everyone: "the people concerned",
    holds: "A legal hold (during an inspection or a dispute, for example) can keep data longer, for as long as it lasts.",
    not_enforced_heading: "Not yet enforced",
    not_enforced_intro: "These rules only report what they would do (mode = \"report\"). They are not enforced yet, so the privacy statement must not promise them:",
    and: "and",
    footer: "retentiond writes this register from its configuration: when the rules change, so does the register. It holds no personal data.",
    csv_header: [
        "purpose",
        "activity",
        "type",
        "personal data",
        "data subjects",
        "legal basis",
        "recipients",
        "retention",
        "status",
        "responsible",
        "database",
        "table",
    ],
};

const NL: Words = Words {
    lang: "nl",
    title: "Verwerkingsregister",
    subtitle: "Artikel 30 AVG, opgesteld uit de bewaarregels en de gegevens van betrokkenen die retentiond kent",
    generated: "Opgesteld op",
    changed: "Regels laatst gewijzigd op",
    config: "Configuratie",
    by_purpose: "Verwerkingen per doel",
    no_purpose: "Doel niet opgegeven",
    categories: "Persoonsgegevens",
    data_subjects: "Betrokkenen",
    legal_basis: "Rechtsgrond",
    recipients: "Ontvangers",
    retention: "Bewaartermijn",
    owner: "Verantwoordelijke",
    stored_in: "Opgeslagen in",
    only_where: "alleen waar",
    not_stated: "Niet opgegeven",
    no_activities: "De configuratie bevat nog geen bewaarregels en geen betrokkenen: er valt niets te registreren.",
    kind_rule: "bewaarregel",
    kind_subject: "verzoeken van betrokkenen",
    enforced: "afgedwongen",
    report_only: "nog niet afgedwongen (enkel rapport)",
    on_request: "op verzoek van de betrokkene",
    until: "tot {since}",
    after: "{period} na {since}",
    then_deleted: "{span}, daarna verwijderd",
    then_anonymized: "{span}, daarna geanonimiseerd ({columns})",
    then_flagged: "{span}, daarna gemarkeerd voor controle",
    keep_while: "langer zolang {table} ernaar verwijst met een rij jonger dan {period}",
    erase_keep: "bewaard bij een verzoek tot wissen: {reason}",
    erase_delete: "verwijderd bij een verzoek tot wissen",
    erase_anonymize: "geanonimiseerd bij een verzoek tot wissen",
    no_rule: "geen bewaarregel",
    statement_heading: "Bewaartermijnen in de privacyverklaring",
    statement_intro: "Klaar om over te nemen in de privacyverklaring: één zin voor elke bewaarregel die retentiond afdwingt, en niets wat het niet doet.",
    statement_title: "Hoe lang wij uw gegevens bewaren",
    statement_none: "Nog geen enkele bewaarregel wordt afgedwongen; de privacyverklaring kan dus nog geen bewaartermijn beloven.",
    sentence: "{purpose}wij bewaren {what} van {whom} {span}{longer} en {verb}.",
    span_after: "tot {period} na {since}",
    span_until: "tot {since}",
    longer: " (langer zolang andere gegevens die wij moeten bewaren er nog naar verwijzen)",
    verb_delete: "verwijderen ze daarna",
    verb_anonymize: "maken ze daarna anoniem",
    verb_flag: "beoordelen daarna of wij ze nog nodig hebben",
    all_data: "de persoonsgegevens",
    what: "de {categories}",
    everyone: "de betrokkenen",
    holds: "Een juridische blokkering (bijvoorbeeld tijdens een inspectie of een geschil) kan gegevens langer bewaren, zolang die geldt.",
    not_enforced_heading: "Nog niet afgedwongen",
    not_enforced_intro: "Deze bewaarregels melden alleen wat ze zouden doen (mode = \"report\"). Ze worden nog niet afgedwongen; beloof ze dus niet in de privacyverklaring:",
    and: "en",
    footer: "retentiond stelt dit register op uit zijn configuratie: wijzigen de bewaarregels, dan wijzigt ook het register. Het bevat geen persoonsgegevens.",
    csv_header: [
        "doel",
        "verwerking",
        "soort",
        "persoonsgegevens",
        "betrokkenen",
        "rechtsgrond",
        "ontvangers",
        "bewaartermijn",
        "stand",
        "verantwoordelijke",
        "gegevensbank",
        "tabel",
    ],
};

/// The words for `lang`.
fn words(lang: Language) -> &'static Words {
    match lang {
        Language::En => &EN,
        Language::Nl => &NL,
    }
}

/// What a processing activity is in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A `[[rule]]`: retention the machine enforces (or reports).
    Rule,
    /// A `[[subject]]`: where a person's data live, for requests.
    Subject,
}

/// Whether what the register says of an activity happens by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// A rule with `mode = "enforce"`: its retention is kept every pass.
    Enforced,
    /// A rule with `mode = "report"`: it only reports, so nothing may promise it.
    ReportOnly,
    /// A subject: erased (or kept) when the person asks.
    OnRequest,
}

/// One processing activity: a rule or a subject, with what the register says of it.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    /// The rule's or subject's name.
    pub name: String,
    /// Rule or subject.
    pub kind: Kind,
    /// The kind in the reader's words.
    pub kind_label: &'static str,
    /// Why the data are processed.
    pub purpose: Option<String>,
    /// The categories of personal data.
    pub categories: Vec<String>,
    /// About whom.
    pub data_subjects: Option<String>,
    /// The rule's legal basis; for a subject, those of the rules on its table.
    pub legal_bases: Vec<String>,
    /// Who the data are shared with.
    pub recipients: Vec<String>,
    /// Who is responsible.
    pub owner: Option<String>,
    /// The database's config name.
    pub database: String,
    /// The table.
    pub table: String,
    /// `database.table`.
    pub place: String,
    /// A rule's filter (the records it is about), as the database reads it.
    pub scope: Option<String>,
    /// How long the data are kept and what happens then, one line per rule (and, for a
    /// subject, what an erasure does), in the reader's words.
    pub retention: Vec<String>,
    /// Enforced, report only, or on request.
    pub status: Status,
    /// The status in the reader's words.
    pub status_label: &'static str,
    /// The line of its `[[rule]]` or `[[subject]]` in the config.
    pub line: usize,
}

/// The activities that share one purpose, and what they say together.
#[derive(Debug, Clone, Serialize)]
pub struct Purpose {
    /// The purpose as written, or `None` for the activities that state none.
    pub purpose: Option<String>,
    /// Its heading: the purpose, or "Purpose not stated".
    pub title: String,
    /// Every category of personal data, each once, in config order.
    pub categories: Vec<String>,
    /// Every group of people, each once.
    pub data_subjects: Vec<String>,
    /// Every legal basis, each once.
    pub legal_bases: Vec<String>,
    /// Every recipient, each once.
    pub recipients: Vec<String>,
    /// Everyone responsible, each once.
    pub owners: Vec<String>,
    /// Every `database.table`, each once.
    pub places: Vec<String>,
    /// The activities, in config order (rules first).
    pub activities: Vec<Activity>,
}

/// The retention paragraph of the privacy statement.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// Its heading, for the privacy statement.
    pub title: &'static str,
    /// One sentence per enforced rule, in config order (and one on legal holds, if the
    /// config has any): the only retention the statement promises.
    pub sentences: Vec<String>,
    /// The report-only rules, "name (database.table): retention": never promised.
    pub not_enforced: Vec<String>,
}

/// The whole register, every sentence already in the reader's language; the templates
/// only lay it out (and escape it, in HTML).
#[derive(Debug, Serialize)]
pub struct Record {
    /// `en` or `nl`.
    pub language: Language,
    /// The day it was drawn up (`YYYY-MM-DD`).
    pub generated: NaiveDate,
    /// The same in words.
    pub generated_text: String,
    /// The day the config file was last changed, if the file system says.
    pub config_changed: Option<NaiveDate>,
    /// The same in words.
    pub config_changed_text: Option<String>,
    /// The config file.
    pub config: String,
    /// The activities grouped by purpose, in order of first appearance; the ones without
    /// a purpose last.
    pub purposes: Vec<Purpose>,
    /// The retention paragraph of the privacy statement.
    pub statement: Statement,
    /// The words of the headings and labels.
    #[serde(skip)]
    words: &'static Words,
}

/// `items` as a reader lists them: "a", "a and b", "a, b and c".
fn listed(items: &[String], and: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {and} {last}", init.join(", ")),
    }
}

/// `text` with its first letter a capital.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Adds the items of `from` that `to` does not hold yet, keeping the order.
fn merge(to: &mut Vec<String>, from: impl IntoIterator<Item = String>) {
    for item in from {
        if !to.contains(&item) {
            to.push(item);
        }
    }
}

/// "7 years after left_at" / "until decided_at": when a rule's retention ends.
fn span(rule: &Rule, w: &Words, lang: Language) -> String {
    let since = rule.since.to_string();
    match rule.after {
        p if is_zero(p) => w.until.replace("{since}", &since),
        p => w
            .after
            .replace("{period}", &period(p, lang))
            .replace("{since}", &since),
    }
}

/// Whether a period is no time at all (a rule that acts at its `since` moment).
fn is_zero(p: Period) -> bool {
    matches!(
        p,
        Period::Days(0) | Period::Weeks(0) | Period::Months(0) | Period::Years(0)
    )
}

/// A rule's retention in the register's words: "7 years after left_at, then deleted",
/// with what keeps a record longer (`keep_while`).
fn retention(rule: &Rule, w: &Words, lang: Language) -> String {
    let span = span(rule, w, lang);
    let mut text = match &rule.action {
        Action::Delete => w.then_deleted.replace("{span}", &span),
        Action::Anonymize(cols) => {
            let cols: Vec<String> = cols.iter().map(|(c, _)| c.to_string()).collect();
            w.then_anonymized
                .replace("{span}", &span)
                .replace("{columns}", &cols.join(", "))
        }
        Action::Flag { .. } => w.then_flagged.replace("{span}", &span),
    };
    for k in &rule.keep_while {
        text.push_str("; ");
        text.push_str(
            &w.keep_while
                .replace("{table}", &k.table.to_string())
                .replace("{period}", &period(k.after, lang)),
        );
    }
    text
}

/// The register's view of one rule.
fn rule_activity(rule: &Rule, w: &Words, lang: Language) -> Activity {
    let r = &rule.register;
    let status = match rule.mode {
        Mode::Enforce => Status::Enforced,
        Mode::Report => Status::ReportOnly,
    };
    Activity {
        name: rule.name.clone(),
        kind: Kind::Rule,
        kind_label: w.kind_rule,
        purpose: r.purpose.clone(),
        categories: r.categories.clone(),
        data_subjects: r.data_subjects.clone(),
        legal_bases: (!rule.legal_basis.is_empty())
            .then(|| rule.legal_basis.clone())
            .into_iter()
            .collect(),
        recipients: r.recipients.clone(),
        owner: r.owner.clone(),
        database: rule.database.clone(),
        table: rule.table.to_string(),
        place: format!("{}.{}", rule.database, rule.table),
        scope: rule.filter.as_ref().map(|f| f.sql().to_owned()),
        retention: vec![retention(rule, w, lang)],
        status,
        status_label: match status {
            Status::Enforced => w.enforced,
            _ => w.report_only,
        },
        line: rule.line,
    }
}

/// The register's view of one subject: the retention of the rules on its table, and what
/// an erasure does there (with the law that makes it keep the data, if one does).
fn subject_activity(subject: &Subject, config: &Config, w: &Words, lang: Language) -> Activity {
    let s = &subject.register;
    let rules: Vec<&Rule> = config
        .rules
        .iter()
        .filter(|r| r.database == subject.database && r.table == subject.table)
        .collect();
    let mut lines: Vec<String> = rules.iter().map(|r| retention(r, w, lang)).collect();
    if lines.is_empty() {
        lines.push(w.no_rule.to_owned());
    }
    lines.push(match &subject.erase {
        Erase::Keep { reason } => w.erase_keep.replace("{reason}", reason),
        Erase::Delete => w.erase_delete.to_owned(),
        Erase::Anonymize(_) => w.erase_anonymize.to_owned(),
    });
    let mut legal_bases = Vec::new();
    merge(
        &mut legal_bases,
        rules
            .iter()
            .filter(|r| !r.legal_basis.is_empty())
            .map(|r| r.legal_basis.clone()),
    );
    Activity {
        name: subject.name.clone(),
        kind: Kind::Subject,
        kind_label: w.kind_subject,
        purpose: s.purpose.clone(),
        categories: s.categories.clone(),
        data_subjects: s.data_subjects.clone(),
        legal_bases,
        recipients: s.recipients.clone(),
        owner: s.owner.clone(),
        database: subject.database.clone(),
        table: subject.table.to_string(),
        place: format!("{}.{}", subject.database, subject.table),
        scope: None,
        retention: lines,
        status: Status::OnRequest,
        status_label: w.on_request,
        line: subject.line,
    }
}

/// The activities grouped by purpose: in order of first appearance, those without one last.
fn by_purpose(activities: Vec<Activity>, w: &Words) -> Vec<Purpose> {
    let mut groups: Vec<Purpose> = Vec::new();
    for a in activities {
        let i = match groups.iter().position(|g| g.purpose == a.purpose) {
            Some(i) => i,
            None => {
                groups.push(Purpose {
                    purpose: a.purpose.clone(),
                    title: a.purpose.clone().unwrap_or_else(|| w.no_purpose.to_owned()),
                    categories: Vec::new(),
                    data_subjects: Vec::new(),
                    legal_bases: Vec::new(),
                    recipients: Vec::new(),
                    owners: Vec::new(),
                    places: Vec::new(),
                    activities: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        merge(&mut g.categories, a.categories.iter().cloned());
        merge(&mut g.data_subjects, a.data_subjects.iter().cloned());
        merge(&mut g.legal_bases, a.legal_bases.iter().cloned());
        merge(&mut g.recipients, a.recipients.iter().cloned());
        merge(&mut g.owners, a.owner.iter().cloned());
        merge(&mut g.places, [a.place.clone()]);
        g.activities.push(a);
    }
    groups.sort_by_key(|g| g.purpose.is_none());
    groups
}

/// The privacy statement's sentence for one enforced rule: "Recruitment: we keep the CV of
/// job applicants until decided_at, and then we delete them."
fn sentence(rule: &Rule, w: &Words, lang: Language) -> String {
    let r = &rule.register;
    let what = if r.categories.is_empty() {
        w.all_data.to_owned()
    } else {
        w.what
            .replace("{categories}", &listed(&r.categories, w.and))
    };
    let since = rule.since.to_string();
    let span = if is_zero(rule.after) {
        w.span_until.replace("{since}", &since)
    } else {
        w.span_after
            .replace("{period}", &period(rule.after, lang))
            .replace("{since}", &since)
    };
    let verb = match rule.action {
        Action::Delete => w.verb_delete,
        Action::Anonymize(_) => w.verb_anonymize,
        Action::Flag { .. } => w.verb_flag,
    };
    let text = w
        .sentence
        .replace(
            "{purpose}",
            &r.purpose
                .as_ref()
                .map(|p| format!("{}: ", p.trim_end_matches(['.', ':'])))
                .unwrap_or_default(),
        )
        .replace("{what}", &what)
        .replace("{whom}", r.data_subjects.as_deref().unwrap_or(w.everyone))
        .replace("{span}", &span)
        .replace(
            "{longer}",
            if rule.keep_while.is_empty() {
                ""
            } else {
                w.longer
            },
        )
        .replace("{verb}", verb);
    capitalized(&text)
}

/// The retention paragraph: a sentence per enforced rule, the report-only ones apart.
fn statement(config: &Config, w: &'static Words, lang: Language) -> Statement {
    let mut sentences: Vec<String> = config
        .rules
        .iter()
        .filter(|r| r.mode == Mode::Enforce)
        .map(|r| sentence(r, w, lang))
        .collect();
    if !sentences.is_empty() && !config.holds.is_empty() {
        sentences.push(w.holds.to_owned());
    }
    let not_enforced = config
        .rules
        .iter()
        .filter(|r| r.mode == Mode::Report)
        .map(|r| {
            format!(
                "{} ({}.{}): {}",
                r.name,
                r.database,
                r.table,
                retention(r, w, lang)
            )
        })
        .collect();
    Statement {
        title: w.statement_title,
        sentences,
        not_enforced,
    }
}

impl Record {
    /// The register of `config` in `lang`, drawn up on `today`, from a config file last
    /// changed on `changed` (if known).
    pub fn new(
        config: &Config,
        lang: Language,
        today: NaiveDate,
        changed: Option<NaiveDate>,
    ) -> Record {
        let w = words(lang);
        let activities: Vec<Activity> = config
            .rules
            .iter()
            .map(|r| rule_activity(r, w, lang))
            .chain(
                config
                    .subjects
                    .iter()
                    .map(|s| subject_activity(s, config, w, lang)),
            )
            .collect();
        Record {
            language: lang,
            generated: today,
            generated_text: date(today, lang),
            config_changed: changed,
            config_changed_text: changed.map(|d| date(d, lang)),
            config: config.path.display().to_string(),
            purposes: by_purpose(activities, w),
            statement: statement(config, w, lang),
            words: w,
        }
    }

    /// Every activity, purpose by purpose (the CSV's rows).
    pub fn activities(&self) -> impl Iterator<Item = &Activity> {
        self.purposes.iter().flat_map(|p| &p.activities)
    }
}

/// Warnings for `check`: one per rule that lacks a key the register needs, naming them
/// all, so that the register and the privacy statement are complete before anyone asks.
pub fn gaps(config: &Config) -> Vec<String> {
    config
        .rules
        .iter()
        .filter_map(|r| {
            let missing = r.register.missing();
            (!missing.is_empty()).then(|| {
                format!(
                    "rule '{}' (line {}) has no {}; the processing register needs them \
                     (retentiond register): add them to the [[rule]]",
                    r.name,
                    r.line,
                    missing.join(", ")
                )
            })
        })
        .collect()
}

#[derive(Serialize)]
struct Context<'a> {
    r: &'a Record,
    w: &'a Words,
}

fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    // Templates ending in .html are escaped automatically; the Markdown one is not, and
    // escapes table cells with the `cell` filter instead.
    env.add_template("register.html", include_str!("templates/register.html"))?;
    env.add_template("register.md", include_str!("templates/register.md"))?;
    env.add_filter("cell", |v: String| md_cell(&v));
    Ok(env)
}

/// Text made safe for a Markdown table cell: one line, `|` and markup characters escaped.
fn md_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
    {
        if matches!(c, '|' | '\\' | '*' | '_' | '`' | '<' | '>' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The CSV: a header and one row per activity, each value a spreadsheet shows as text.
fn csv(record: &Record) -> Result<String, String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let w = record.words;
    out.write_record(w.csv_header).map_err(|e| e.to_string())?;
    for a in record.activities() {
        let values = [
            a.purpose.clone().unwrap_or_default(),
            a.name.clone(),
            a.kind_label.to_owned(),
            a.categories.join("; "),
            a.data_subjects.clone().unwrap_or_default(),
            a.legal_bases.join("; "),
            a.recipients.join("; "),
            a.retention.join("; "),
            a.status_label.to_owned(),
            a.owner.clone().unwrap_or_default(),
            a.database.clone(),
            a.table.clone(),
        ];
        out.write_record(values.iter().map(|v| cell(v).into_owned()))
            .map_err(|e| e.to_string())?;
    }
    let bytes = out.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

/// Renders `record` in `format`.
pub fn render(record: &Record, format: Format) -> Result<String, String> {
    let name = match format {
        Format::Json => {
            return serde_json::to_string_pretty(record)
                .map(|s| s + "\n")
                .map_err(|e| e.to_string())
        }
        Format::Csv => return csv(record),
        Format::Html => "register.html",
        Format::Markdown => "register.md",
    };
    let env = environment().map_err(|e| format!("register template: {e}"))?;
    let ctx = Context {
        r: record,
        w: record.words,
    };
    env.get_template(name)
        .and_then(|t| t.render(&ctx))
        .map_err(|e| format!("register template {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CONFIG: &str = r#"
[databases.hr]
url = "sqlite:///tmp/hr.db"

[[rule]]
name = "rejected"
legal_basis = "GDPR art. 5(1)(e)"
database = "hr"
table = "applicants"
key = "id"
filter = "decision = 'rejected'"
expires = { since = "decided_at" }
action = "delete"
purpose = "Recruitment"
categories = ["contact details", "CV", "=cmd|' /C calc'!A0"]
data_subjects = "job applicants who are not hired"
recipients = "<b>the recruiter</b>"
owner = "HR manager"

[[rule]]
name = "staff"
legal_basis = "WER art. III.88"
database = "hr"
table = "employees"
key = "id"
expires = { since = "left_at", after = "7 years" }
action = "anonymize"
anonymize = { iban = "null" }
keep_while = [{ table = "payslips", foreign_key = "employee_id", since = "paid_at", after = "10 years" }]
mode = "report"

[[subject]]
name = "hr-applicants"
database = "hr"
table = "applicants"
key = "id"
identify = { email = "email" }
erase = "keep"
keep_reason = "Labour law"
purpose = "Recruitment"
categories = ["CV", "references"]
owner = "HR manager"
"#;

    fn record(lang: Language) -> Record {
        let config = crate::config::parse(Path::new("r.toml"), CONFIG).unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        Record::new(&config, lang, today, Some(today))
    }

    #[test]
    fn activities_are_grouped_by_purpose_with_those_without_one_last() {
        let r = record(Language::En);
        let titles: Vec<&str> = r.purposes.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, ["Recruitment", "Purpose not stated"]);
        let recruitment = &r.purposes[0];
        assert_eq!(
            recruitment.categories,
            ["contact details", "CV", "=cmd|' /C calc'!A0", "references"]
        );
        assert_eq!(recruitment.owners, ["HR manager"]);
        assert_eq!(recruitment.places, ["hr.applicants"]);
        let subject = &recruitment.activities[1];
        assert_eq!(subject.status, Status::OnRequest);
        assert_eq!(
            subject.retention,
            [
                "until decided_at, then deleted",
                "kept on a request for erasure: Labour law"
            ]
        );
        assert_eq!(subject.legal_bases, ["GDPR art. 5(1)(e)"]);
        let staff = &r.purposes[1].activities[0];
        assert_eq!(
            staff.retention,
            ["7 years after left_at, then anonymized (iban); longer while payslips refers to it with a row less than 10 years old"]
        );
        assert_eq!(staff.status, Status::ReportOnly);
    }

    #[test]
    fn the_statement_promises_only_enforced_rules_in_the_readers_language() {
        let en = record(Language::En).statement;
        assert_eq!(
            en.sentences,
            ["Recruitment: we keep the contact details, CV and =cmd|' /C calc'!A0 of job applicants who are not hired until decided_at, and then we delete them."]
        );
        assert_eq!(en.not_enforced.len(), 1);
        assert!(en.not_enforced[0].starts_with("staff (hr.employees): 7 years after left_at"));
        let nl = record(Language::Nl).statement;
        assert_eq!(
            nl.sentences,
            ["Recruitment: wij bewaren de contact details, CV en =cmd|' /C calc'!A0 van job applicants who are not hired tot decided_at en verwijderen ze daarna."]
        );
        assert!(nl.not_enforced[0].contains("7 jaar na left_at, daarna geanonimiseerd (iban)"));
    }

    #[test]
    fn what_the_operator_wrote_is_escaped_in_html_and_neutralised_in_csv() {
        let r = record(Language::En);
        let html = render(&r, Format::Html).unwrap();
        assert!(
            html.contains("&lt;b&gt;the recruiter&lt;&#x2f;b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>the recruiter"), "{html}");
        let csv = render(&r, Format::Csv).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 3, "{csv}");
        // Only a cell's first character makes a formula; inside a list it is text.
        assert_eq!(&rows[0][3], "contact details; CV; =cmd|' /C calc'!A0");
        assert_eq!(&rows[0][6], "<b>the recruiter</b>");
        let md = render(&r, Format::Markdown).unwrap();
        assert!(md.contains("=cmd\\|' /C calc'!A0"), "{md}");
    }

    #[test]
    fn a_cell_a_spreadsheet_would_run_is_written_as_text() {
        let config = CONFIG.replace(
            "purpose = \"Recruitment\"\ncategories",
            "purpose = \"=HYPERLINK()\"\ncategories",
        );
        let config = crate::config::parse(Path::new("r.toml"), &config).unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let r = Record::new(&config, Language::En, today, None);
        let csv = render(&r, Format::Csv).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let first = reader.records().next().unwrap().unwrap();
        assert_eq!(&first[0], "'=HYPERLINK()");
    }

    #[test]
    fn lists_read_as_a_reader_writes_them() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(listed(&s(&[]), "and"), "");
        assert_eq!(listed(&s(&["a"]), "and"), "a");
        assert_eq!(listed(&s(&["a", "b"]), "en"), "a en b");
        assert_eq!(listed(&s(&["a", "b", "c"]), "and"), "a, b and c");
        assert_eq!(md_cell("a | b\nc_d"), "a \\| b c\\_d");
    }

    #[test]
    fn every_dutch_word_differs_from_the_english_one() {
        // A sentence left untranslated would show up in a Dutch register as English.
        let en = serde_json::to_value(&EN).unwrap();
        let nl = serde_json::to_value(&NL).unwrap();
        let (en, nl) = (en.as_object().unwrap(), nl.as_object().unwrap());
        for (key, value) in en {
            if key == "lang" {
                continue;
            }
            assert_ne!(Some(value), nl.get(key), "{key} is not translated");
        }
        let (en_head, nl_head) = (EN.csv_header, NL.csv_header);
        for (e, n) in en_head.iter().zip(nl_head) {
            assert_ne!(*e, n, "the CSV header {e} is not translated");
        }
    }
}

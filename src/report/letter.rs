//! The answer to a data-subject request (GDPR art. 12): a letter to the person in plain
//! English or Dutch, as a printable HTML page or as text for an e-mail. Written from counts,
//! categories and reasons only — never a record's values or keys, never the identity.

use super::locale::{date, number, period};
use crate::config::{ActionKind, Erase, Language, Rule, Subject};
use crate::engine::requests::Kind;
use crate::state::requests::{OutcomeRow, RequestRow, FOUND, KEPT};
use chrono::NaiveDate;
use minijinja::Environment;
use serde::Serialize;

/// Letter formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text, wrapped for an e-mail.
    Text,
    /// A self-contained HTML page that prints on A4.
    Html,
}

/// What the config says about one `[[subject]]`: the category the letter names, and the
/// rules that state why and how long its records are kept.
#[derive(Debug, Clone)]
pub struct Category<'a> {
    /// The subject.
    pub subject: &'a Subject,
    /// The retention rules on its table.
    pub rules: Vec<&'a Rule>,
}

/// Everything a letter is written from; all of it comes from the register, the trail and
/// the config, none of it from the target databases.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The request as registered.
    pub request: &'a RequestRow,
    /// Access or erasure.
    pub kind: Kind,
    /// The day of the answer, in the configured timezone.
    pub today: NaiveDate,
    /// Every subject of the config, in config order (the order of the letter).
    pub categories: &'a [Category<'a>],
    /// What the request's steps recorded (`found`, `kept`).
    pub outcomes: &'a [OutcomeRow],
    /// Per subject and action, the records erased under the request (from the trail).
    pub erased: &'a [(String, String, i64)],
}

/// Every word of the letter in one language. Sentences with `{name}` get a value filled in.
#[derive(Debug, Serialize)]
struct Words {
    lang: &'static str,
    title: &'static str,
    our_reference: &'static str,
    reference: &'static str,
    request: &'static str,
    kind_access: &'static str,
    kind_erasure: &'static str,
    received: &'static str,
    answered: &'static str,
    due: &'static str,
    salutation: &'static str,
    intro_access: &'static str,
    intro_erasure: &'static str,
    extended: &'static str,
    found_heading: &'static str,
    found_some: &'static str,
    found_none: &'static str,
    nothing_to_erase: &'static str,
    category: &'static str,
    records: &'static str,
    purpose: &'static str,
    legal_basis: &'static str,
    retention: &'static str,
    stored_in: &'static str,
    obligation: &'static str,
    no_period: &'static str,
    then_deleted: &'static str,
    then_anonymized: &'static str,
    then_reviewed: &'static str,
    copy: &'static str,
    rights_heading: &'static str,
    rights: [&'static str; 4],
    reply: &'static str,
    erased_heading: &'static str,
    erased_some: &'static str,
    erased_none: &'static str,
    done: &'static str,
    deleted: &'static str,
    anonymized: &'static str,
    erased_other: &'static str,
    anonymous_means: &'static str,
    kept_heading: &'static str,
    kept_some: &'static str,
    kept_none: &'static str,
    reason: &'static str,
    until: &'static str,
    until_date: &'static str,
    until_unknown: &'static str,
    because_hold: &'static str,
    because_keep_while: &'static str,
    because_referenced: &'static str,
    because_needed_by: &'static str,
    until_note: &'static str,
    complaint_heading: &'static str,
    complaint: &'static str,
    closing: &'static str,
    record_one: &'static str,
    record_many: &'static str,
    category_one: &'static str,
    category_many: &'static str,
}

const EN: Words = Words {
    lang: "en",
    title: "Your request about your personal data",
    our_reference: "Our reference",
    reference: "Reference",
    request: "Request",
    kind_access: "Access to your personal data (article 15 GDPR)",
    kind_erasure: "Erasure of your personal data (article 17 GDPR)",
    received: "Received on",
    answered: "Date of this answer",
    due: "Answer due by",
    salutation: "Dear Sir or Madam,",
    intro_access: "On {received} you asked us which personal data we keep about you. Article 15 of the General Data Protection Regulation (GDPR) gives you the right to know. This letter is our answer.",
    intro_erasure: "On {received} you asked us to erase your personal data. Article 17 of the General Data Protection Regulation (GDPR) gives you that right for data we no longer need or may no longer keep. This letter tells you what we did.",
    extended: "The law allows us two more months to answer when a request is complex or when we receive many requests (article 12(3) GDPR). We needed that time, for this reason: {reason}",
    found_heading: "What we found",
    found_some: "We searched every system in which we keep personal data, and found {records} about you, in {categories}:",
    found_none: "We searched every system in which we keep personal data, and found no data about you.",
    nothing_to_erase: "There was therefore nothing to erase.",
    category: "Category",
    records: "Records",
    purpose: "Purpose",
    legal_basis: "Legal basis",
    retention: "How long we keep them",
    stored_in: "Stored in",
    obligation: "We are required to keep these",
    no_period: "No fixed period",
    then_deleted: "{period}, then deleted",
    then_anonymized: "{period}, then made anonymous",
    then_reviewed: "{period}, then reviewed by one of our staff",
    copy: "You are entitled to a free copy of these data. We send it to you as a separate document.",
    rights_heading: "Your rights",
    rights: [
        "If any of these data are wrong or incomplete, you can ask us to correct them (article 16).",
        "You can ask us to erase them (article 17), or to use them only in a limited way (article 18).",
        "You can object to the way we use them (article 21).",
        "You can ask for the data you gave us in a common, machine-readable form, to pass them on to someone else (article 20).",
    ],
    reply: "To do so, reply to this letter and mention our reference {id}.",
    erased_heading: "What we erased",
    erased_some: "We erased {records}:",
    erased_none: "We could not erase any of your data yet, for the reasons below.",
    done: "What we did",
    deleted: "deleted",
    anonymized: "made anonymous",
    erased_other: "erased",
    anonymous_means: "Made anonymous means: everything that could identify you was removed; what is left can no longer be linked to you.",
    kept_heading: "What we kept, and why",
    kept_some: "We could not erase some of your data yet. Here is why, and until when we keep them:",
    kept_none: "We kept nothing: all the data we found about you have been erased.",
    reason: "Why",
    until: "Until",
    until_date: "{date} at the latest",
    until_unknown: "No end date is known yet",
    because_hold: "A legal hold ({name}) forbids us to erase these data while it lasts.",
    because_keep_while: "Other records of ours ({table}) that are less than {period} old still refer to these data.",
    because_referenced: "Other records of ours ({table}) still refer to these data; they cannot be erased before those.",
    because_needed_by: "Records we must keep ({subject}) still need these data.",
    until_note: "On the date shown at the latest, our retention rules erase these data automatically.",
    complaint_heading: "Not satisfied?",
    complaint: "If you do not agree with this answer, please tell us first: reply to this letter and mention our reference {id}. You also have the right to complain to a data protection supervisory authority, in particular in the country where you live or work: in the Netherlands the Autoriteit Persoonsgegevens (autoriteitpersoonsgegevens.nl), in Belgium the Gegevensbeschermingsautoriteit (gegevensbeschermingsautoriteit.be). You can also go to court.",
    closing: "Kind regards,",
    record_one: "record",
    record_many: "records",
    category_one: "category",
    category_many: "categories",
};

const NL: Words = Words {
    lang: "nl",
    title: "Uw verzoek over uw persoonsgegevens",
    our_reference: "Ons kenmerk",
    reference: "Referentie",
    request: "Verzoek",
    kind_access: "Inzage in uw persoonsgegevens (artikel 15 AVG)",
    kind_erasure: "Wissen van uw persoonsgegevens (artikel 17 AVG)",
    received: "Ontvangen op",
    answered: "Datum van dit antwoord",
    due: "Uiterste antwoorddatum",
    salutation: "Geachte heer, mevrouw,",
    intro_access: "Op {received} vroeg u ons welke persoonsgegevens wij over u bewaren. Artikel 15 van de Algemene Verordening Gegevensbescherming (AVG) geeft u het recht dat te weten. Deze brief is ons antwoord.",
    intro_erasure: "Op {received} vroeg u ons uw persoonsgegevens te wissen. Artikel 17 van de Algemene Verordening Gegevensbescherming (AVG) geeft u dat recht voor gegevens die wij niet meer nodig hebben of niet langer mogen bewaren. In deze brief leest u wat wij hebben gedaan.",
    extended: "De wet geeft ons twee maanden extra om te antwoorden wanneer een verzoek ingewikkeld is of wanneer wij veel verzoeken ontvangen (artikel 12, lid 3, AVG). Wij hadden die tijd nodig, om deze reden: {reason}",
    found_heading: "Wat wij vonden",
    found_some: "Wij hebben alle systemen doorzocht waarin wij persoonsgegevens bewaren, en vonden {records} over u, in {categories}:",
    found_none: "Wij hebben alle systemen doorzocht waarin wij persoonsgegevens bewaren, en vonden geen gegevens over u.",
    nothing_to_erase: "Er was dus niets te wissen.",
    category: "Categorie",
    records: "Aantal",
    purpose: "Doel",
    legal_basis: "Rechtsgrond",
    retention: "Hoe lang wij ze bewaren",
    stored_in: "Opgeslagen in",
    obligation: "Wij zijn verplicht deze te bewaren",
    no_period: "Geen vaste termijn",
    then_deleted: "{period}, daarna verwijderd",
    then_anonymized: "{period}, daarna geanonimiseerd",
    then_reviewed: "{period}, daarna beoordeeld door een medewerker",
    copy: "U hebt recht op een kosteloze kopie van deze gegevens. Wij sturen u die als afzonderlijk document.",
    rights_heading: "Uw rechten",
    rights: [
        "Kloppen deze gegevens niet of zijn ze onvolledig, dan kunt u ons vragen ze te verbeteren (artikel 16).",
        "U kunt ons vragen ze te wissen (artikel 17), of ze slechts beperkt te gebruiken (artikel 18).",
        "U kunt bezwaar maken tegen de manier waarop wij ze gebruiken (artikel 21).",
        "U kunt de gegevens die u ons gaf opvragen in een gangbare, digitale vorm, om ze aan een ander door te geven (artikel 20).",
    ],
    reply: "Antwoord daarvoor op deze brief en vermeld ons kenmerk {id}.",
    erased_heading: "Wat wij hebben gewist",
    erased_some: "Wij hebben {records} gewist:",
    erased_none: "Wij konden nog geen van uw gegevens wissen, om de redenen hieronder.",
    done: "Wat wij deden",
    deleted: "verwijderd",
    anonymized: "geanonimiseerd",
    erased_other: "gewist",
    anonymous_means: "Geanonimiseerd betekent: alles waarmee u kan worden herkend, is verwijderd; wat overblijft, kan niet meer aan u worden gekoppeld.",
    kept_heading: "Wat wij hebben bewaard, en waarom",
    kept_some: "Sommige van uw gegevens konden wij nog niet wissen. Hieronder leest u waarom, en tot wanneer wij ze bewaren:",
    kept_none: "Wij hebben niets bewaard: alle gegevens die wij over u vonden, zijn gewist.",
    reason: "Waarom",
    until: "Tot",
    until_date: "uiterlijk {date}",
    until_unknown: "Nog geen einddatum bekend",
    because_hold: "Een juridische blokkering ({name}) verbiedt ons deze gegevens te wissen zolang die geldt.",
    because_keep_while: "Andere gegevens van ons ({table}) die minder dan {period} oud zijn, verwijzen nog naar deze gegevens.",
    because_referenced: "Andere gegevens van ons ({table}) verwijzen nog naar deze gegevens; die moeten eerst gewist worden.",
    because_needed_by: "Gegevens die wij moeten bewaren ({subject}) hebben deze gegevens nog nodig.",
    until_note: "Uiterlijk op de vermelde datum wissen onze bewaarregels deze gegevens automatisch.",
    complaint_heading: "Niet tevreden?",
    complaint: "Bent u het niet eens met dit antwoord, laat het ons dan eerst weten: antwoord op deze brief en vermeld ons kenmerk {id}. U hebt ook het recht een klacht in te dienen bij een toezichthoudende autoriteit voor gegevensbescherming, in het bijzonder in het land waar u woont of werkt: in Nederland de Autoriteit Persoonsgegevens (autoriteitpersoonsgegevens.nl), in België de Gegevensbeschermingsautoriteit (gegevensbeschermingsautoriteit.be). U kunt ook naar de rechter stappen.",
    closing: "Met vriendelijke groet,",
    record_one: "vermelding",
    record_many: "vermeldingen",
    category_one: "categorie",
    category_many: "categorieën",
};

/// The words for `lang`.
fn words(lang: Language) -> &'static Words {
    match lang {
        Language::En => &EN,
        Language::Nl => &NL,
    }
}

/// What the rules on a category say: why it is kept, on what basis, how long.
#[derive(Debug, Clone, Serialize)]
pub struct Use {
    /// The rule's description, if it has one.
    pub purpose: Option<String>,
    /// The rule's legal basis.
    pub legal_basis: String,
    /// "7 years, then deleted", in the reader's language.
    pub retention: String,
}

/// One category the person's records were found in (access letter).
#[derive(Debug, Clone, Serialize)]
pub struct FoundRow {
    /// The subject's name.
    pub category: String,
    /// `database.table`, when the subject is still in the config.
    pub place: Option<String>,
    /// The number of records, written for the reader.
    pub count: String,
    /// The same with its noun ("2 records").
    pub count_text: String,
    /// Purpose, legal basis and retention per rule on the table.
    pub uses: Vec<Use>,
    /// The subject's `keep_reason`, if the law makes it keep the records.
    pub obligation: Option<String>,
}

/// One category and action of an erasure.
#[derive(Debug, Clone, Serialize)]
pub struct ErasedRow {
    /// The subject's name.
    pub category: String,
    /// `database.table`, when the subject is still in the config.
    pub place: Option<String>,
    /// The number of records, written for the reader.
    pub count: String,
    /// The same with its noun.
    pub count_text: String,
    /// "deleted" / "made anonymous", in the reader's language.
    pub action: &'static str,
}

/// One category and reason of what an erasure left.
#[derive(Debug, Clone, Serialize)]
pub struct KeptRow {
    /// The subject's name.
    pub category: String,
    /// `database.table`, when the subject is still in the config.
    pub place: Option<String>,
    /// The number of records, written for the reader.
    pub count: String,
    /// The same with its noun.
    pub count_text: String,
    /// Why, as the erasure recorded it.
    pub reason: String,
    /// Until when, in the reader's words.
    pub until: String,
}

/// The letter as data, every sentence already in the reader's language; the templates
/// only lay it out (and escape it, in HTML).
#[derive(Debug, Serialize)]
pub struct Letter {
    /// `en` or `nl`.
    pub language: Language,
    /// `access` or `erasure`: which sections the letter has.
    pub kind: &'static str,
    /// The request's id: our reference.
    pub id: String,
    /// The operator's reference, if one was given.
    pub reference: Option<String>,
    /// The kind of request, with its article.
    pub kind_label: &'static str,
    /// Received on, in words.
    pub received: String,
    /// Today, in words.
    pub answered: String,
    /// The due date, in words.
    pub due: String,
    /// The opening paragraph.
    pub intro: String,
    /// Why the answer took longer, if the request was extended.
    pub extension: Option<String>,
    /// Whether no record of the person was found at all.
    pub nothing_found: bool,
    /// The sentence over the categories found (access) or that nothing was found.
    pub found_text: String,
    /// Per category, what was found (access letters).
    pub found: Vec<FoundRow>,
    /// The sentence over what was erased.
    pub erased_text: String,
    /// Per category and action, what was erased.
    pub erased: Vec<ErasedRow>,
    /// Whether anything was anonymized (then the letter says what that means).
    pub anonymized: bool,
    /// The sentence over what was kept.
    pub kept_text: String,
    /// Per category and reason, what was kept.
    pub kept: Vec<KeptRow>,
    /// Whether any kept record has an end date (then the letter says what happens then).
    pub kept_until: bool,
    /// How to use the rights: reply with our reference.
    pub reply: String,
    /// How to complain.
    pub complaint: String,
    /// The words of the headings and labels.
    #[serde(skip)]
    words: &'static Words,
}

/// `YYYY-MM-DD` in words; anything else as it is.
fn day(text: &str, lang: Language) -> String {
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(d) => date(d, lang),
        Err(_) => text.to_owned(),
    }
}

/// `text` ending as a sentence does (the operator may leave the full stop out).
fn sentence(text: &str) -> String {
    let text = text.trim();
    if text.ends_with(['.', '!', '?']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// "1 record", "1.234 vermeldingen".
fn counted(n: i64, one: &str, many: &str, lang: Language) -> String {
    format!("{} {}", number(n, lang), if n == 1 { one } else { many })
}

/// The config's view of a subject by name, if it is still in the config.
fn category<'c>(categories: &'c [Category<'c>], name: &str) -> Option<&'c Category<'c>> {
    categories.iter().find(|c| c.subject.name == name)
}

/// `database.table` of a subject.
fn place(c: Option<&Category<'_>>) -> Option<String> {
    c.map(|c| format!("{}.{}", c.subject.database, c.subject.table))
}

/// The position of a subject in the config (unknown subjects last, by name).
fn order(categories: &[Category<'_>], name: &str) -> (usize, String) {
    let i = categories
        .iter()
        .position(|c| c.subject.name == name)
        .unwrap_or(usize::MAX);
    (i, name.to_owned())
}

/// Purpose, legal basis and retention of one rule.
fn use_of(rule: &Rule, w: &Words, lang: Language) -> Use {
    let then = match rule.action.kind() {
        ActionKind::Delete => w.then_deleted,
        ActionKind::Anonymize => w.then_anonymized,
        ActionKind::Flag => w.then_reviewed,
    };
    Use {
        purpose: rule.description.clone(),
        legal_basis: rule.legal_basis.clone(),
        retention: then.replace("{period}", &period(rule.after, lang)),
    }
}

impl Letter {
    /// Writes the letter for `facts` in `lang`.
    pub fn new(facts: &Facts<'_>, lang: Language) -> Letter {
        let w = words(lang);
        let r = facts.request;
        let records = |n: i64| counted(n, w.record_one, w.record_many, lang);
        let found = found_rows(facts, w, lang);
        let erased = erased_rows(facts, w, lang);
        let kept = kept_rows(facts, w, lang);
        let found_total: i64 = facts
            .outcomes
            .iter()
            .filter(|o| o.step == FOUND)
            .map(|o| o.count)
            .sum();
        let nothing_found = found_total == 0 && erased.is_empty() && kept.is_empty();
        let found_text = if nothing_found {
            match facts.kind {
                Kind::Access => w.found_none.to_owned(),
                Kind::Erasure => format!("{} {}", w.found_none, w.nothing_to_erase),
            }
        } else {
            w.found_some
                .replace("{records}", &records(found_total))
                .replace(
                    "{categories}",
                    &counted(found.len() as i64, w.category_one, w.category_many, lang),
                )
        };
        let erased_total: i64 = facts.erased.iter().map(|e| e.2).sum();
        Letter {
            language: lang,
            kind: facts.kind.as_str(),
            id: r.id.clone(),
            reference: r.reference.clone(),
            kind_label: match facts.kind {
                Kind::Access => w.kind_access,
                Kind::Erasure => w.kind_erasure,
            },
            received: day(&r.received, lang),
            answered: date(facts.today, lang),
            due: day(&r.due, lang),
            intro: match facts.kind {
                Kind::Access => w.intro_access,
                Kind::Erasure => w.intro_erasure,
            }
            .replace("{received}", &day(&r.received, lang)),
            extension: r
                .extension_reason
                .as_deref()
                .map(|reason| w.extended.replace("{reason}", &sentence(reason))),
            nothing_found,
            found_text,
            found,
            erased_text: if erased.is_empty() {
                w.erased_none.to_owned()
            } else {
                w.erased_some.replace("{records}", &records(erased_total))
            },
            anonymized: facts.erased.iter().any(|e| e.1 == "anonymize"),
            kept_text: if kept.is_empty() {
                w.kept_none.to_owned()
            } else {
                w.kept_some.to_owned()
            },
            kept_until: facts
                .outcomes
                .iter()
                .any(|o| o.step == KEPT && o.count > 0 && o.until.is_some()),
            kept,
            erased,
            reply: w.reply.replace("{id}", &r.id),
            complaint: w.complaint.replace("{id}", &r.id),
            words: w,
        }
    }
}

/// Per category with records found, in config order, with what its rules say.
fn found_rows(facts: &Facts<'_>, w: &Words, lang: Language) -> Vec<FoundRow> {
    let mut rows: Vec<&OutcomeRow> = facts
        .outcomes
        .iter()
        .filter(|o| o.step == FOUND && o.count > 0)
        .collect();
    rows.sort_by_key(|o| order(facts.categories, &o.subject));
    rows.iter()
        .map(|o| {
            let c = category(facts.categories, &o.subject);
            let uses: Vec<Use> = c
                .map(|c| c.rules.iter().map(|r| use_of(r, w, lang)).collect())
                .unwrap_or_default();
            let obligation = c.and_then(|c| match &c.subject.erase {
                Erase::Keep { reason } => Some(reason.clone()),
                _ => None,
            });
            FoundRow {
                category: o.subject.clone(),
                place: place(c),
                count: number(o.count, lang),
                count_text: counted(o.count, w.record_one, w.record_many, lang),
                uses,
                obligation,
            }
        })
        .collect()
}

/// Per category and action, what the trail says was erased under the request.
fn erased_rows(facts: &Facts<'_>, w: &Words, lang: Language) -> Vec<ErasedRow> {
    let mut rows: Vec<&(String, String, i64)> = facts.erased.iter().filter(|e| e.2 > 0).collect();
    rows.sort_by_key(|e| (order(facts.categories, &e.0), e.1.clone()));
    rows.iter()
        .map(|(subject, action, n)| ErasedRow {
            category: subject.clone(),
            place: place(category(facts.categories, subject)),
            count: number(*n, lang),
            count_text: counted(*n, w.record_one, w.record_many, lang),
            action: match action.as_str() {
                "delete" => w.deleted,
                "anonymize" => w.anonymized,
                _ => w.erased_other,
            },
        })
        .collect()
}

/// Per category and reason, what the latest erasure left, and until when.
fn kept_rows(facts: &Facts<'_>, w: &Words, lang: Language) -> Vec<KeptRow> {
    let mut rows: Vec<&OutcomeRow> = facts
        .outcomes
        .iter()
        .filter(|o| o.step == KEPT && o.count > 0)
        .collect();
    rows.sort_by_key(|o| (order(facts.categories, &o.subject), o.reason.clone()));
    rows.iter()
        .map(|o| KeptRow {
            category: o.subject.clone(),
            place: place(category(facts.categories, &o.subject)),
            count: number(o.count, lang),
            count_text: counted(o.count, w.record_one, w.record_many, lang),
            reason: because(&o.reason, w, lang),
            until: match &o.until {
                Some(u) => w.until_date.replace("{date}", &day(u, lang)),
                None => w.until_unknown.to_owned(),
            },
        })
        .collect()
}

/// Why records were kept, in the reader's language: the erasure records the reason as a
/// code (`engine::erase::Because`); a `keep_reason` is quoted as the operator typed it.
fn because(code: &str, w: &Words, lang: Language) -> String {
    use crate::engine::erase::Because;
    match Because::parse(code) {
        Some(Because::Keep(reason)) => reason,
        Some(Because::Hold(name)) => w.because_hold.replace("{name}", &name),
        Some(Because::KeepWhile { table, after, .. }) => w
            .because_keep_while
            .replace("{table}", &table)
            .replace("{period}", &super::locale::period(after, lang)),
        Some(Because::ReferencedBy(table)) => w.because_referenced.replace("{table}", &table),
        Some(Because::NeededBy(subject)) => w.because_needed_by.replace("{subject}", &subject),
        None => code.to_owned(),
    }
}

/// Lines of an e-mail are at most this wide.
const WIDTH: usize = 72;

/// `text` wrapped at [`WIDTH`] columns for a line that starts at column `indent`: the
/// lines after the first are indented by `indent` spaces (the template writes the first
/// line's). A word longer than a line stays whole.
fn wrap(text: &str, indent: usize) -> String {
    let room = WIDTH.saturating_sub(indent).max(20);
    let mut out = String::new();
    let mut len = 0;
    for word in text.split_whitespace() {
        let n = word.chars().count();
        if len > 0 && len + 1 + n > room {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            len = 0;
        } else if len > 0 {
            out.push(' ');
            len += 1;
        }
        out.push_str(word);
        len += n;
    }
    out
}

#[derive(Serialize)]
struct Context<'a> {
    l: &'a Letter,
    w: &'a Words,
}

fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    // Block tags on lines of their own leave no blank lines in the text letter.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    // Templates ending in .html are escaped automatically; the text one is not.
    env.add_template("letter.html", include_str!("templates/letter.html"))?;
    env.add_template("letter.txt", include_str!("templates/letter.txt"))?;
    env.add_filter("wrap", |v: String, indent: Option<usize>| {
        wrap(&v, indent.unwrap_or(0))
    });
    Ok(env)
}

/// Renders `letter` in `format`.
pub fn render(letter: &Letter, format: Format) -> Result<String, String> {
    let name = match format {
        Format::Html => "letter.html",
        Format::Text => "letter.txt",
    };
    let env = environment().map_err(|e| format!("letter template: {e}"))?;
    let ctx = Context {
        l: letter,
        w: letter.words,
    };
    env.get_template(name)
        .and_then(|t| t.render(&ctx))
        .map_err(|e| format!("letter template {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_wrapped_for_an_email_with_the_indent_kept() {
        let long = "word ".repeat(40);
        let wrapped = wrap(&long, 4);
        assert!(wrapped.lines().all(|l| l.chars().count() <= WIDTH - 4 + 4));
        assert!(wrapped.lines().skip(1).all(|l| l.starts_with("    word")));
        assert_eq!(wrap("a  b\n c", 0), "a b c");
    }

    #[test]
    fn what_the_operator_typed_is_escaped_in_html_and_kept_in_text() {
        let request = RequestRow {
            id: "REQ-2026-0001".into(),
            kind: "erasure".into(),
            received: "2026-10-31".into(),
            due: "2026-11-30".into(),
            reference: Some("<b>T-1</b>".into()),
            identity: Some("tag".into()),
            extension_reason: None,
            closed_at: None,
        };
        let kept = [OutcomeRow {
            subject: "books".into(),
            step: KEPT.into(),
            reason: "law <script>alert(1)</script> & co".into(),
            count: 1234,
            until: Some("2031-12-31".into()),
            at: String::new(),
        }];
        let facts = Facts {
            request: &request,
            kind: Kind::Erasure,
            today: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            categories: &[],
            outcomes: &kept,
            erased: &[],
        };
        let letter = Letter::new(&facts, Language::Nl);
        let html = render(&letter, Format::Html).unwrap();
        assert!(html.contains("&lt;b&gt;T-1&lt;&#x2f;b&gt;"), "{html}");
        assert!(html.contains("law &lt;script&gt;"), "{html}");
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
        assert!(html.contains("<td class=\"n\">1.234</td>"), "{html}");
        assert!(html.contains("uiterlijk 31 december 2031"), "{html}");
        let text = render(&letter, Format::Text).unwrap();
        assert!(text.contains("Referentie: <b>T-1</b>"), "{text}");
        assert!(text.contains("* books: 1.234 vermeldingen"), "{text}");
        // The identity tag is the register's, never the letter's.
        assert!(!html.contains("tag") && !text.contains("tag"));
    }

    #[test]
    fn every_dutch_sentence_differs_from_the_english_one() {
        // A sentence left untranslated would show up in a Dutch letter as English.
        let en = serde_json::to_value(&EN).unwrap();
        let nl = serde_json::to_value(&NL).unwrap();
        let (en, nl) = (en.as_object().unwrap(), nl.as_object().unwrap());
        for (key, value) in en {
            if key == "lang" {
                continue;
            }
            assert_ne!(Some(value), nl.get(key), "{key} is not translated");
        }
    }
}

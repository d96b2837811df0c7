//! The keys of the record of processing activities (GDPR art. 30) that a `[[rule]]` or a
//! `[[subject]]` may carry — `purpose`, `categories`, `data_subjects`, `recipients`, `owner`
//! — checked once here, so that `register` writes the register from values that exist.

use super::error::{ConfigProblem, Lines};
use super::raw::{RawRule, RawSubject};
use serde_spanned::Spanned;
use std::collections::BTreeMap;

/// What the register says about one rule or subject. Every key is optional in the config;
/// one that is written is never empty, so the register never shows a blank as an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Register {
    /// Why the data are processed (`purpose`): the register groups activities by it.
    pub purpose: Option<String>,
    /// The categories of personal data (`categories`): what is processed.
    pub categories: Vec<String>,
    /// About whom (`data_subjects`).
    pub data_subjects: Option<String>,
    /// Who the data are shared with (`recipients`; one text or a list).
    pub recipients: Vec<String>,
    /// Who is responsible (`owner`).
    pub owner: Option<String>,
}

impl Register {
    /// The keys the register needs and this one lacks, in the order the config reference
    /// lists them, for `check` to warn about (`recipients` is not among them: sharing the
    /// data with nobody is a fine answer).
    pub fn missing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.purpose.is_none() {
            out.push("purpose");
        }
        if self.categories.is_empty() {
            out.push("categories");
        }
        if self.data_subjects.is_none() {
            out.push("data_subjects");
        }
        if self.owner.is_none() {
            out.push("owner");
        }
        out
    }
}

/// The register keys as written, taken out of a raw `[[rule]]` or `[[subject]]`.
pub(super) struct RawRegister {
    purpose: Option<Spanned<String>>,
    categories: Option<Spanned<toml::Value>>,
    data_subjects: Option<Spanned<String>>,
    recipients: Option<Spanned<toml::Value>>,
    owner: Option<Spanned<String>>,
}

impl RawRegister {
    /// Takes the register keys out of a raw rule (the rest of it is validated elsewhere).
    pub(super) fn take_rule(r: &mut RawRule) -> RawRegister {
        RawRegister {
            purpose: r.purpose.take(),
            categories: r.categories.take(),
            data_subjects: r.data_subjects.take(),
            recipients: r.recipients.take(),
            owner: r.owner.take(),
        }
    }

    /// Takes the register keys out of a raw subject.
    pub(super) fn take_subject(s: &mut RawSubject) -> RawRegister {
        RawRegister {
            purpose: s.purpose.take(),
            categories: s.categories.take(),
            data_subjects: s.data_subjects.take(),
            recipients: s.recipients.take(),
            owner: s.owner.take(),
        }
    }
}

/// What each key is for, said in the message when it is empty.
const PURPOSE_HINT: &str = "say why the data are processed, e.g. purpose = \"Recruitment\"";
const SUBJECTS_HINT: &str = "say about whom, e.g. data_subjects = \"job applicants\"";
const OWNER_HINT: &str = "name who is responsible, e.g. owner = \"HR manager\"";
const CATEGORIES_HINT: &str =
    "list the categories of personal data, e.g. categories = [\"contact details\", \"CV\"]";
const RECIPIENTS_HINT: &str = "name who the data are shared with, e.g. recipients = \
     [\"the accountant\", \"the tax authority\"], or leave the key out if nobody";

/// The register keys of one rule or subject (`key` names them for messages), each written
/// key's line recorded in `key_lines`; or every problem with them, each at its line: an
/// empty text or list, or a list element that is not a text.
pub(super) fn validate(
    raw: RawRegister,
    lines: &Lines,
    key: &dyn Fn(&str) -> String,
    key_lines: &mut BTreeMap<String, usize>,
) -> Result<Register, Vec<ConfigProblem>> {
    let mut check = Check {
        lines,
        problems: Vec::new(),
    };
    match check.register(raw, key, key_lines) {
        Some(register) if check.problems.is_empty() => Ok(register),
        _ => Err(check.problems),
    }
}

/// The problems found so far in one rule's or subject's register keys.
struct Check<'a> {
    lines: &'a Lines,
    problems: Vec<ConfigProblem>,
}

impl Check<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, key: impl Into<String>, message: impl Into<String>) {
        self.problems
            .push(self.lines.problem(at.span().start, key, message));
    }

    fn register(
        &mut self,
        raw: RawRegister,
        key: &dyn Fn(&str) -> String,
        key_lines: &mut BTreeMap<String, usize>,
    ) -> Option<Register> {
        let mut note = |k: &str, span: std::ops::Range<usize>| {
            key_lines.insert(k.to_owned(), self.lines.line_of(span.start));
        };
        if let Some(v) = &raw.purpose {
            note("purpose", v.span());
        }
        if let Some(v) = &raw.categories {
            note("categories", v.span());
        }
        if let Some(v) = &raw.data_subjects {
            note("data_subjects", v.span());
        }
        if let Some(v) = &raw.recipients {
            note("recipients", v.span());
        }
        if let Some(v) = &raw.owner {
            note("owner", v.span());
        }
        let purpose = self.register_text(raw.purpose, &key("purpose"), PURPOSE_HINT);
        let data_subjects =
            self.register_text(raw.data_subjects, &key("data_subjects"), SUBJECTS_HINT);
        let owner = self.register_text(raw.owner, &key("owner"), OWNER_HINT);
        let categories = match raw.categories {
            None => Some(Vec::new()),
            Some(v) => self.register_list(v, &key("categories"), CATEGORIES_HINT, Single::Refused),
        };
        let recipients = match raw.recipients {
            None => Some(Vec::new()),
            Some(v) => self.register_list(v, &key("recipients"), RECIPIENTS_HINT, Single::Allowed),
        };
        Some(Register {
            purpose: purpose?,
            categories: categories?,
            data_subjects: data_subjects?,
            recipients: recipients?,
            owner: owner?,
        })
    }

    /// An optional text key: absent is fine, empty (or only spaces) is not.
    fn register_text(
        &mut self,
        value: Option<Spanned<String>>,
        key: &str,
        hint: &str,
    ) -> Option<Option<String>> {
        let Some(v) = value else {
            return Some(None);
        };
        let text = v.get_ref().trim();
        if text.is_empty() {
            self.err(&v, key, format!("is empty; {hint}, or leave the key out"));
            return None;
        }
        Some(Some(text.to_owned()))
    }

    /// A list of texts (or, where `single` allows it, one text): never empty, every
    /// element a text that is not empty. Every wrong element is reported.
    fn register_list(
        &mut self,
        value: Spanned<toml::Value>,
        key: &str,
        hint: &str,
        single: Single,
    ) -> Option<Vec<String>> {
        let items = match (value.get_ref(), single) {
            (toml::Value::String(s), Single::Allowed) => vec![toml::Value::String(s.clone())],
            (toml::Value::Array(items), _) => items.clone(),
            (toml::Value::String(s), Single::Refused) => {
                let msg = format!(
                    "must be a list of texts, not one text; write {} = [{}]",
                    key.rsplit(' ').next().unwrap_or(key),
                    toml::Value::String(s.clone())
                );
                self.err(&value, key, msg);
                return None;
            }
            (other, _) => {
                let msg = format!("must be a list of texts, not {}; {hint}", describe(other));
                self.err(&value, key, msg);
                return None;
            }
        };
        if items.is_empty() {
            self.err(
                &value,
                key,
                format!("is an empty list; {hint}, or leave the key out"),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item {
                toml::Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
                toml::Value::String(_) => {
                    self.err(&value, format!("{key}[{i}]"), format!("is empty; {hint}"));
                    ok = false;
                }
                other => {
                    let msg = format!("is {}, not a text; {hint}", describe(other));
                    self.err(&value, format!("{key}[{i}]"), msg);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

/// Whether a list key also takes a single text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Single {
    /// `recipients = "the accountant"` means a list of one.
    Allowed,
    /// `categories` is always a list.
    Refused,
}

/// A TOML value's kind, for a message: "a number", "a table".
fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(_) => "a text".into(),
        toml::Value::Integer(i) => format!("the number {i}"),
        toml::Value::Float(f) => format!("the number {f}"),
        toml::Value::Boolean(b) => format!("{b}"),
        toml::Value::Datetime(d) => format!("the date {d}"),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    const HEAD: &str = r#"
[databases.hr]
url = "sqlite:///tmp/hr.db"

[[rule]]
name = "applicants"
legal_basis = "GDPR art. 5(1)(e)"
database = "hr"
table = "applicants"
key = "id"
expires = { since = "decided_at" }
action = "delete"
"#;

    fn problems(extra: &str) -> Vec<String> {
        match parse(Path::new("r.toml"), &format!("{HEAD}{extra}")) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn the_register_keys_are_read_trimmed_with_their_lines() {
        let text = format!(
            "{HEAD}purpose = \" Recruitment \"\ncategories = [\"contact details\", \"CV\"]\n\
             data_subjects = \"job applicants\"\nrecipients = \"the recruiter\"\nowner = \"HR\"\n"
        );
        let config = parse(Path::new("r.toml"), &text).unwrap();
        let r = &config.rules[0];
        assert_eq!(r.register.purpose.as_deref(), Some("Recruitment"));
        assert_eq!(r.register.categories, ["contact details", "CV"]);
        assert_eq!(r.register.data_subjects.as_deref(), Some("job applicants"));
        assert_eq!(r.register.recipients, ["the recruiter"]);
        assert_eq!(r.register.owner.as_deref(), Some("HR"));
        assert!(r.register.missing().is_empty());
        let first = HEAD.lines().count() + 1;
        assert_eq!(r.line_of("purpose"), first);
        assert_eq!(r.line_of("owner"), first + 4);
    }

    #[test]
    fn a_rule_without_register_keys_lacks_the_four_the_register_needs() {
        let config = parse(Path::new("r.toml"), HEAD).unwrap();
        assert_eq!(
            config.rules[0].register.missing(),
            ["purpose", "categories", "data_subjects", "owner"]
        );
    }

    #[test]
    fn empty_texts_lists_and_elements_that_are_not_texts_are_refused_at_their_line() {
        let at = HEAD.lines().count() + 1;
        for (extra, key, words) in [
            ("purpose = \"  \"", "purpose", "is empty"),
            ("owner = \"\"", "owner", "is empty"),
            ("data_subjects = \"\"", "data_subjects", "is empty"),
            ("categories = []", "categories", "is an empty list"),
            ("categories = \"CV\"", "categories", "categories = [\"CV\"]"),
            (
                "categories = [\"CV\", 3]",
                "categories[1]",
                "the number 3, not a text",
            ),
            ("categories = [\"CV\", \"\"]", "categories[1]", "is empty"),
            ("recipients = []", "recipients", "is an empty list"),
            ("recipients = 7", "recipients", "not the number 7"),
            (
                "recipients = [\"a\", true]",
                "recipients[1]",
                "is true, not a text",
            ),
        ] {
            let found = problems(&format!("{extra}\n"));
            assert_eq!(found.len(), 1, "{extra}: {found:?}");
            let want = format!("r.toml:{at}: rule \"applicants\" → {key}: ");
            assert!(found[0].starts_with(&want), "{extra}: {found:?}");
            assert!(found[0].contains(words), "{extra}: {found:?}");
        }
    }

    #[test]
    fn a_subject_takes_the_same_keys() {
        let text = format!(
            "{HEAD}\n[[subject]]\nname = \"cv\"\ndatabase = \"hr\"\ntable = \"applicants\"\n\
             key = \"id\"\nidentify = {{ email = \"email\" }}\nerase = \"delete\"\n\
             purpose = \"Recruitment\"\nrecipients = [\"x\", \"y\"]\ncategories = []\n"
        );
        let err = parse(Path::new("r.toml"), &text).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].key, "subject \"cv\" → categories");
        let ok = text.replace("categories = []", "categories = [\"CV\"]");
        let config = parse(Path::new("r.toml"), &ok).unwrap();
        let s = &config.subjects[0];
        assert_eq!(s.register.recipients, ["x", "y"]);
        assert_eq!(s.register.categories, ["CV"]);
        assert_eq!(s.line_of("categories"), text.lines().count());
    }

    #[test]
    fn an_unknown_register_key_is_still_refused() {
        let found = problems("purposes = \"x\"\n");
        assert!(found[0].contains("unknown key 'purposes'"), "{found:?}");
    }
}

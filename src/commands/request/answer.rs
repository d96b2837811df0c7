//! `request answer ID`: the letter to the person (GDPR art. 12), from what the request's
//! steps recorded and the trail says was erased — refused until there is something true to
//! say. The words and layout are `report::letter`'s.

use super::super::{load, CommandError, Out, Status};
use super::{find_request, rules_on, today};
use crate::config::{Config, Language};
use crate::engine::requests::Kind;
use crate::report::letter::{self, Category, Facts, Letter};
use crate::state::requests::{OutcomeRow, RequestRow, FOUND, KEPT};
use crate::state::State;
use std::path::Path;

/// The letter's formats (`--format text|html`); the letter module renders both.
pub use crate::report::letter::Format;

/// What the state database holds about one request.
struct Recorded {
    request: RequestRow,
    outcomes: Vec<OutcomeRow>,
    erased: Vec<(String, String, i64)>,
}

/// `request answer`: the letter in `format`, in `lang` (default: the config's report
/// language), written to `out`. Reads the state database only; touches no target database.
pub async fn answer(
    path: &Path,
    id: &str,
    format: Format,
    lang: Option<Language>,
    out: Out<'_>,
) -> Result<Status, CommandError> {
    let config = load(path)?;
    let lang = lang.unwrap_or(config.daemon.language);
    let state = State::open_for(&config.daemon)
        .await
        .map_err(CommandError::runtime)?;
    let recorded = read(&state, id).await;
    state.close().await;
    let recorded = recorded?;
    let kind = kind_of(&recorded.request)?;
    ready(id, kind, &recorded.outcomes, &recorded.erased).map_err(CommandError::Runtime)?;
    let text = write_letter(&config, &recorded, kind, lang, format)?;
    write!(out, "{text}")?;
    Ok(Status::Success)
}

/// The request (an unknown id is exit 2), its recorded outcomes and its erased records.
async fn read(state: &State, id: &str) -> Result<Recorded, CommandError> {
    let request = find_request(state, id).await?;
    let outcomes = state.outcomes(id).await.map_err(CommandError::runtime)?;
    let erased = state
        .erased_under(id)
        .await
        .map_err(CommandError::runtime)?;
    Ok(Recorded {
        request,
        outcomes,
        erased,
    })
}

/// The register's kind as the engine's type: the letter's sections depend on it.
fn kind_of(request: &RequestRow) -> Result<Kind, CommandError> {
    match request.kind.as_str() {
        "access" => Ok(Kind::Access),
        "erasure" => Ok(Kind::Erasure),
        other => Err(CommandError::Runtime(format!(
            "request {} has kind '{other}', which this retentiond does not know; is the state database from a newer version?",
            request.id
        ))),
    }
}

/// Whether the letter can be written truthfully: something must have been looked up, and
/// an erasure letter for a person who was found must follow the erasure. `Err` says which
/// command to run first.
fn ready(
    id: &str,
    kind: Kind,
    outcomes: &[OutcomeRow],
    erased: &[(String, String, i64)],
) -> Result<(), String> {
    let searched = outcomes.iter().any(|o| o.step == FOUND);
    let acted = !erased.is_empty() || outcomes.iter().any(|o| o.step == KEPT);
    if !searched && !acted {
        return Err(format!(
            "nothing is recorded for request {id} yet, so there is nothing to answer: run `retentiond request find {id} --match ATTR=VALUE…` first"
        ));
    }
    let found: i64 = outcomes
        .iter()
        .filter(|o| o.step == FOUND)
        .map(|o| o.count)
        .sum();
    if kind == Kind::Erasure && found > 0 && !acted {
        return Err(format!(
            "request {id} asks for erasure and {found} record(s) of the person were found, but nothing was erased yet: run `retentiond request erase {id} --match ATTR=VALUE…` first, then answer"
        ));
    }
    Ok(())
}

/// The letter from what was recorded and what the config says about each subject.
fn write_letter(
    config: &Config,
    recorded: &Recorded,
    kind: Kind,
    lang: Language,
    format: Format,
) -> Result<String, CommandError> {
    let categories: Vec<Category<'_>> = config
        .subjects
        .iter()
        .map(|subject| Category {
            subject,
            rules: rules_on(config, subject),
        })
        .collect();
    let facts = Facts {
        request: &recorded.request,
        kind,
        today: today(config),
        categories: &categories,
        outcomes: &recorded.outcomes,
        erased: &recorded.erased,
    };
    letter::render(&Letter::new(&facts, lang), format).map_err(CommandError::Runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: &str, step: &str, count: i64) -> OutcomeRow {
        OutcomeRow {
            subject: subject.into(),
            step: step.into(),
            reason: String::new(),
            count,
            until: None,
            at: String::new(),
        }
    }

    #[test]
    fn nothing_recorded_asks_for_a_find_first() {
        for kind in [Kind::Access, Kind::Erasure] {
            let e = ready("REQ-2026-0001", kind, &[], &[]).unwrap_err();
            assert!(
                e.contains("run `retentiond request find REQ-2026-0001 --match"),
                "{e}"
            );
        }
    }

    #[test]
    fn an_erasure_letter_waits_for_the_erasure_of_a_person_found() {
        let found = [row("crm", FOUND, 2)];
        let e = ready("R", Kind::Erasure, &found, &[]).unwrap_err();
        assert!(e.contains("run `retentiond request erase R --match"), "{e}");
        // An access letter needs only the search.
        assert!(ready("R", Kind::Access, &found, &[]).is_ok());
        // Once something was erased, or only kept, the letter can be written.
        let erased = [("crm".to_owned(), "delete".to_owned(), 2)];
        assert!(ready("R", Kind::Erasure, &found, &erased).is_ok());
        let kept = [row("crm", FOUND, 2), row("crm", KEPT, 2)];
        assert!(ready("R", Kind::Erasure, &kept, &[]).is_ok());
        // Nobody found: nothing to erase, and the letter says so.
        assert!(ready("R", Kind::Erasure, &[row("crm", FOUND, 0)], &[]).is_ok());
    }
}

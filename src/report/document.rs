//! The management report rendered: HTML (self-contained: inline CSS and SVG, no scripts,
//! fonts or files; prints on A4) and plain text from templates, JSON from the data.

use super::locale::number;
use super::model::Report;
use crate::config::Language;
use minijinja::{Environment, Value};
use serde::Serialize;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A self-contained HTML page.
    Html,
    /// Plain text for mail and terminals.
    Text,
    /// JSON for other tools.
    Json,
}

#[derive(Serialize)]
struct Context<'a> {
    r: &'a Report,
    w: &'a super::locale::Words,
    svg: &'a str,
}

fn environment(lang: Language) -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    // Templates ending in .html are escaped automatically; the text one is not.
    env.add_template("report.html", include_str!("templates/report.html"))?;
    env.add_template("report.txt", include_str!("templates/report.txt"))?;
    env.add_filter("num", move |v: Value| match i64::try_from(v) {
        Ok(n) => number(n, lang),
        Err(_) => "—".to_owned(),
    });
    Ok(env)
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: Format) -> Result<String, String> {
    let lang = report.language;
    let name = match format {
        Format::Json => return serde_json::to_string_pretty(report).map_err(|e| e.to_string()),
        Format::Html => "report.html",
        Format::Text => "report.txt",
    };
    let env = environment(lang).map_err(|e| format!("report template: {e}"))?;
    let ctx = Context {
        r: report,
        w: report.words,
        svg: &report.trend_svg,
    };
    env.get_template(name)
        .and_then(|t| t.render(&ctx))
        .map_err(|e| format!("report template {name}: {e}"))
}

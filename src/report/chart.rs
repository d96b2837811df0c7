//! The 30-day trend as an inline SVG: one stacked bar per day, one colour per rule, with
//! a light grid and a legend. Drawn here, by code, so that it needs no scripts, fonts or
//! files and prints as sharply as the text around it.

use super::locale::{number, short_date};
use crate::config::Language;
use chrono::NaiveDate;
use std::fmt::Write;

/// Colours that stay apart in print and for common colour blindness (Okabe–Ito).
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

/// One rule's daily counts.
pub struct Series {
    /// The rule.
    pub name: String,
    /// One value per day, oldest first.
    pub values: Vec<u64>,
}

fn nice_ceiling(max: u64) -> u64 {
    let max = max.max(1);
    let magnitude = 10u64.pow((max as f64).log10().floor() as u32);
    [1, 2, 5, 10]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(max)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart for `days` (oldest first) and `series`.
pub fn trend_svg(days: &[NaiveDate], series: &[Series], lang: Language) -> String {
    let (w, h, left, top, bottom) = (680.0, 230.0, 48.0, 12.0, 28.0);
    let legend_rows = series.len().div_ceil(3);
    let total_h = h + 8.0 + 18.0 * legend_rows as f64;
    let plot_w = w - left - 8.0;
    let plot_h = h - top - bottom;
    let per_day: Vec<u64> = (0..days.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let ceiling = nice_ceiling(per_day.iter().copied().max().unwrap_or(0));
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {total_h}" width="100%" role="img" font-family="Helvetica, Arial, sans-serif" font-size="11">"#
    );
    for step in 0..=4 {
        let value = ceiling * step / 4;
        let y = top + plot_h - plot_h * step as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
            w - 8.0,
            left - 6.0,
            y + 4.0,
            number(value as i64, lang)
        );
    }
    let slot = plot_w / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    for (i, day) in days.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = top + plot_h;
        for (k, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let bh = plot_h * v as f64 / ceiling as f64;
            y -= bh;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{bh:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                PALETTE[k % PALETTE.len()],
                short_date(*day, lang),
                esc(&s.name),
                number(v as i64, lang)
            );
        }
        if i % 5 == 4 || i + 1 == days.len() {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
                x + bar / 2.0,
                h - 10.0,
                short_date(*day, lang)
            );
        }
    }
    let _ = write!(
        svg,
        r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#888"/>"##,
        w - 8.0,
        top + plot_h,
        top + plot_h
    );
    for (k, s) in series.iter().enumerate() {
        let (col, row) = (k % 3, k / 3);
        let x = left + col as f64 * 210.0;
        let y = h + 8.0 + row as f64 * 18.0;
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{y}" width="10" height="10" fill="{}"/><text x="{}" y="{}" fill="#222">{}</text>"##,
            PALETTE[k % PALETTE.len()],
            x + 14.0,
            y + 9.0,
            esc(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_a_round_ceiling_and_every_rule_is_in_the_legend() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(1234), 2000);
        let days: Vec<NaiveDate> = (1..=30)
            .map(|d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap())
            .collect();
        let series = vec![
            Series {
                name: "a<b".into(),
                values: vec![5; 30],
            },
            Series {
                name: "c".into(),
                values: vec![0; 30],
            },
        ];
        let svg = trend_svg(&days, &series, Language::Nl);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 30 + 2);
        assert!(svg.contains("a&lt;b") && svg.contains("30 nov"));
    }
}

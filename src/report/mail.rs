//! Mailing the report: one multipart message (text and HTML) per pass, to every recipient,
//! over SMTP with STARTTLS or TLS as the URL says. Queued reports are sent oldest first; one
//! that cannot be sent stays queued for the next pass.

use super::document::{render, Format};
use super::history::report_of;
use crate::config::{mask_url, Config, EmailSettings};
use crate::engine::outcome::RunSummary;
use crate::state::State;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Sends every queued report. Never fails: problems are logged and the mail stays queued.
pub async fn deliver(config: &Config, state: &State) {
    let Some(email) = &config.report.email else {
        return;
    };
    let queued = match state.outbox().await {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the mail queue");
            return;
        }
    };
    for run_id in queued {
        let summary = match state.run(Some(&run_id)).await {
            Ok(Some(row)) => row
                .summary
                .and_then(|s| serde_json::from_str::<RunSummary>(&s).ok()),
            _ => None,
        };
        let Some(summary) = summary else {
            let _ = state.mail_sent(&run_id).await;
            continue;
        };
        let sent = match report_of(config, state, &summary).await {
            Ok(report) => send(email, &report).await,
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(()) => {
                tracing::info!(run_id = %run_id, to = email.to.len(), "report mailed");
                let _ = state.mail_sent(&run_id).await;
            }
            Err(e) => {
                tracing::warn!(run_id = %run_id, server = %mask_url(&email.smtp_url), error = %e, "report mail not sent; retried at the next pass");
                return;
            }
        }
    }
}

/// The user name in `smtp://user@host…`, if any.
fn url_user(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    Some(userinfo.split(':').next().unwrap_or(userinfo).to_owned())
}

/// Sends one report.
pub async fn send(email: &EmailSettings, report: &super::model::Report) -> Result<(), String> {
    let text = render(report, Format::Text)?;
    let html = render(report, Format::Html)?;
    let mut message = Message::builder()
        .subject(report.subject.clone())
        .from(email.from.parse::<Mailbox>().map_err(|e| e.to_string())?);
    for to in &email.to {
        message = message.to(to.parse::<Mailbox>().map_err(|e| e.to_string())?);
    }
    let message = message
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| e.to_string())?;
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&email.smtp_url)
        .map_err(|e| format!("SMTP URL: {e}"))?
        .timeout(Some(Duration::from_secs(30)));
    if let Some(file) = &email.password_file {
        let password = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the SMTP password from {}: {e}", file.display()))?;
        let user = url_user(&email.smtp_url).unwrap_or_else(|| email.from.clone());
        transport = transport.credentials(Credentials::new(
            user,
            password.trim_end_matches(['\n', '\r']).to_owned(),
        ));
    }
    transport
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

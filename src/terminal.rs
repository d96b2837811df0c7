//! The progress bar on stderr for a person at a terminal (`run --once`, `request erase`,
//! `audit verify`), and the log writer that steps around it. Never drawn into a pipe, a
//! file or the journal: [`reporter`] adds it only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use retentiond::daemon::notify::StatusProgress;
use retentiond::progress::{Progress, Reporter};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// The bar on screen, if any: log lines are written around it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Where progress goes for a long command: the bar when stderr is a terminal, `STATUS=`
/// when systemd listens, both, or neither.
pub fn reporter() -> Reporter {
    let mut listeners = Vec::new();
    if std::io::stderr().is_terminal() {
        listeners.push(Reporter::new(Bar));
    }
    let status = StatusProgress::new();
    if status.enabled() {
        listeners.push(Reporter::new(status));
    }
    Reporter::all(listeners)
}

/// One bar per stage (rule, subject, trail): records done of the total.
struct Bar;

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg:24!} [{bar:32.cyan/blue}] {human_pos:>9}/{human_len:9} records {percent:>3}%  {elapsed} elapsed, eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

impl Progress for Bar {
    fn begin(&self, what: &str, total: Option<u64>) {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr_with_hz(10));
        bar.set_style(style());
        bar.set_message(what.to_owned());
        if let Ok(mut active) = ACTIVE.lock() {
            if let Some(old) = active.replace(bar) {
                old.finish_and_clear();
            }
        }
    }

    fn advance(&self, records: u64) {
        if let Ok(active) = ACTIVE.lock() {
            if let Some(bar) = active.as_ref() {
                bar.inc(records);
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut active) = ACTIVE.lock() {
            if let Some(bar) = active.take() {
                bar.finish_and_clear();
            }
        }
    }
}

/// stderr for log lines: with a bar on screen, the bar is lifted for the line and drawn
/// again below it, so neither garbles the other.
#[derive(Debug, Clone, Copy)]
pub struct StderrAroundBar;

impl Write for StderrAroundBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE.lock().ok().and_then(|a| a.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrAroundBar {
    type Writer = StderrAroundBar;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

//! Talking to systemd (`Type=notify`). Every call is a no-op outside systemd (no
//! `NOTIFY_SOCKET`), and a failed notification is logged, never fatal.

use crate::progress::Progress;
use sd_notify::NotifyState;
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// The config is loaded and checked; the daemon is serving.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// A human-readable status line (`systemctl status` shows it).
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// A reload has begun (systemd ≥ 253 wants the monotonic time with it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Pings the watchdog at half its interval for as long as the process lives, when
/// `WatchdogSec=` is set. A stalled runtime stops the pings and systemd restarts us.
pub fn spawn_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    });
}

/// At most one progress `STATUS=` a second: systemd keeps every one, and a fast pass
/// would send thousands.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Progress as `STATUS=` lines (`systemctl status` shows them): "rule R: 1200 of 5000
/// records". Rate-limited to one a second, and silent outside systemd.
#[derive(Debug)]
pub struct StatusProgress {
    stage: Mutex<Stage>,
    enabled: bool,
}

#[derive(Debug, Default)]
struct Stage {
    what: String,
    total: Option<u64>,
    done: u64,
    sent: Option<Instant>,
}

impl Stage {
    fn line(&self) -> String {
        match self.total {
            Some(total) => format!("{}: {} of {total} records", self.what, self.done),
            None => format!("{}: {} records", self.what, self.done),
        }
    }
}

impl StatusProgress {
    /// Sends only under systemd (`NOTIFY_SOCKET` set).
    pub fn new() -> StatusProgress {
        StatusProgress {
            stage: Mutex::default(),
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    /// Whether a `STATUS=` would reach systemd.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn update(&self, change: impl FnOnce(&mut Stage), force: bool) {
        if !self.enabled {
            return;
        }
        // A poisoned lock only means another thread panicked mid-update: skip the line.
        let Ok(mut stage) = self.stage.lock() else {
            return;
        };
        change(&mut stage);
        let due = stage.sent.is_none_or(|t| t.elapsed() >= STATUS_EVERY);
        if force || due {
            stage.sent = Some(Instant::now());
            status(&stage.line());
        }
    }
}

impl Default for StatusProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for StatusProgress {
    fn begin(&self, what: &str, total: Option<u64>) {
        self.update(
            |s| {
                s.what = what.to_owned();
                s.total = total;
                s.done = 0;
            },
            false,
        );
    }

    fn advance(&self, records: u64) {
        self.update(|s| s.done += records, false);
    }

    fn finish(&self) {}
}

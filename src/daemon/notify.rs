//! Talking to systemd (`Type=notify`). Every call is a no-op outside systemd (no
//! `NOTIFY_SOCKET`), and a failed notification is logged, never fatal.

use sd_notify::NotifyState;

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

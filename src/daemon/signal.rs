//! The one place that touches OS signals: SIGHUP, SIGTERM and SIGINT become typed messages
//! for the daemon's root loop, which alone decides what they mean.

use tokio::sync::mpsc;

/// What a signal asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalTo {
    /// SIGHUP: read the config again (validated before it replaces the running one).
    Reload,
    /// SIGTERM or SIGINT: stop after the batch in flight.
    Shutdown,
}

/// Starts listening; messages arrive on the returned channel for the daemon's lifetime.
pub fn listen() -> std::io::Result<mpsc::UnboundedReceiver<SignalTo>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                Some(()) = hup.recv() => SignalTo::Reload,
                Some(()) = term.recv() => SignalTo::Shutdown,
                Some(()) = int.recv() => SignalTo::Shutdown,
                else => break,
            };
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

//! The one place that touches OS signals, for every command: SIGHUP, SIGTERM and SIGINT
//! become a typed [`SignalTo`] on one stream, and the root of each command decides what it
//! means (the daemon reloads on SIGHUP; every command stops on SIGTERM/SIGINT, finishing
//! and auditing the batch in flight first). Nothing else in the codebase handles signals.

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::sync::mpsc;

/// Which stop signal arrived: the exit status of a command it interrupts is 128 + its
/// number, as shells report it (130 for Ctrl-C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`systemctl stop`, `kill`).
    Terminate,
}

impl Stop {
    /// 128 + the signal's number.
    pub fn exit_code(self) -> u8 {
        match self {
            Stop::Interrupt => 128 + SIGINT as u8,
            Stop::Terminate => 128 + SIGTERM as u8,
        }
    }
}

/// What a signal asks the running command to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalTo {
    /// SIGHUP: read the config again (validated before it replaces the running one).
    Reload,
    /// SIGTERM or SIGINT: stop after the batch in flight. A second one while stopping
    /// means "stop now": the batch in flight is abandoned (it rolls back, or is settled
    /// against its journal at the next start).
    Shutdown(Stop),
}

/// The signal stream of this process.
pub struct Listener {
    rx: mpsc::UnboundedReceiver<SignalTo>,
    handle: signal_hook_tokio::Handle,
}

/// Starts listening. From now on SIGINT and SIGTERM no longer kill the process: they
/// arrive here, for as long as the process runs.
pub fn listen() -> std::io::Result<Listener> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    let handle = signals.handle();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(n) = signals.next().await {
            let msg = match n {
                SIGHUP => SignalTo::Reload,
                SIGINT => SignalTo::Shutdown(Stop::Interrupt),
                _ => SignalTo::Shutdown(Stop::Terminate),
            };
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
    Ok(Listener { rx, handle })
}

impl Listener {
    /// The next signal; `None` once the stream has ended.
    pub async fn recv(&mut self) -> Option<SignalTo> {
        self.rx.recv().await
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.handle.close();
    }
}

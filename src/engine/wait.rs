//! Every wait in the engine (the pause between batches, the backoff before a retry, the
//! wait before settling a commit in doubt) ends early when the stop signal arrives: a pause
//! may be an hour, and systemd gives a stopping service 60 seconds.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Whether a wait ran its course or was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The whole duration passed.
    Elapsed,
    /// The stop signal arrived first.
    Stopped,
}

/// Sleeps for `d`, or until `stop` is cancelled, whichever comes first.
pub async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> Waited {
    if d.is_zero() {
        return Waited::Elapsed;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => Waited::Elapsed,
        () = stop.cancelled() => Waited::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_hour_long_pause_ends_when_the_stop_signal_arrives() {
        let stop = CancellationToken::new();
        let waiter = stop.clone();
        let started = std::time::Instant::now();
        let wait =
            tokio::spawn(async move { sleep_or_stop(Duration::from_secs(3600), &waiter).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.cancel();
        assert_eq!(wait.await.unwrap(), Waited::Stopped);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_short_pause_runs_its_course() {
        let stop = CancellationToken::new();
        assert_eq!(
            sleep_or_stop(Duration::from_millis(5), &stop).await,
            Waited::Elapsed
        );
    }
}

//! `retentiond run`: the long-running daemon. It runs passes on the schedule (per rule, if
//! a rule has its own), catches up a pass missed while it was down, never overlaps passes,
//! reloads on SIGHUP (validating first), stops cleanly on SIGTERM/SIGINT, and tells systemd
//! and Prometheus how it is doing. Idle between passes, it sleeps.

pub mod metrics;
pub mod notify;
pub mod schedule;

use crate::config::{self, Config};
use crate::engine::outcome::RunSummary;
use crate::engine::pass::{run_pass, settle, PassError, PassOptions};
use crate::engine::prepare::prepare;
use crate::signal::{Listener, SignalTo, Stop};
use crate::state::{Lease, State, StateError, LEASE_POLL, TAKEOVER_BOUND};
use chrono::{DateTime, Utc};
use metrics::Metrics;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// How the daemon ended, when it ended by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A stop signal: the batch in flight finished and was audited (exit 0, so that
    /// systemd records a clean stop).
    Stopped(Stop),
    /// A second stop signal during a pass: the batch in flight was abandoned; the next
    /// start settles it against its journal.
    Aborted(Stop),
}

/// Why the daemon could not run (or go on running).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state database could not be opened.
    #[error("cannot open the state database: {0}")]
    State(#[from] StateError),
    /// The metrics address could not be bound.
    #[error("cannot listen for metrics on {addr} (daemon.metrics_listen): {reason}")]
    Metrics {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
    /// No rule's schedule ticks again.
    #[error("no schedule has a future tick; nothing to do")]
    NoSchedule,
}

/// The next pass: when, and which rules (all rules sharing the earliest tick).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// When it is due.
    pub at: DateTime<Utc>,
    /// The rules due then.
    pub rules: Vec<String>,
}

fn schedule_of<'a>(config: &'a Config, rule: &'a config::Rule) -> &'a cron::Schedule {
    rule.schedule
        .as_ref()
        .map_or(&config.daemon.schedule, |(s, _)| s)
}

/// The earliest tick after `now` over every rule's schedule.
pub fn next_due(config: &Config, now: DateTime<Utc>) -> Option<Due> {
    let tz = config.daemon.timezone;
    let ticks: Vec<(DateTime<Utc>, &str)> = config
        .rules
        .iter()
        .filter_map(|r| {
            schedule::next_tick(schedule_of(config, r), tz, now).map(|t| (t, r.name.as_str()))
        })
        .collect();
    let at = ticks.iter().map(|(t, _)| *t).min()?;
    Some(Due {
        at,
        rules: ticks
            .iter()
            .filter(|(t, _)| *t == at)
            .map(|(_, n)| (*n).to_owned())
            .collect(),
    })
}

/// Rules whose schedule ticked since they last ran (the daemon was down), or whose last
/// pass was interrupted (`interrupted`: the start times of passes that never finished):
/// due now, once.
async fn missed(
    config: &Config,
    state: &State,
    now: DateTime<Utc>,
    interrupted: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for rule in &config.rules {
        let last_text = state.rule_last_started(&rule.name).await.ok().flatten();
        if last_text.as_ref().is_some_and(|t| interrupted.contains(t)) {
            out.push(rule.name.clone());
            continue;
        }
        let Some(last) = last_text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()) else {
            continue;
        };
        if schedule::missed(
            schedule_of(config, rule),
            config.daemon.timezone,
            last.with_timezone(&Utc),
            now,
        ) {
            out.push(rule.name.clone());
        }
    }
    out
}

/// How often the instance that acts checks that it still holds the lease while it waits
/// for a tick (a pass checks it again before it starts).
const LEASE_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// How a pass ended, for the loop that runs them.
enum PassEnd {
    /// On to the next tick.
    Done,
    /// A stop signal.
    Ended(Ended),
    /// The lease was lost during the pass (which stopped after its batch in flight).
    LostLease,
}

/// How acting ended.
enum Acting {
    /// A stop signal.
    Ended(Ended),
    /// The lease was lost: wait as a standby again.
    LostLease,
}

/// What the daemon keeps between passes.
struct Daemon<'p> {
    path: &'p Path,
    config: Config,
    state: State,
    metrics: Metrics,
    signals: &'p mut Listener,
    last: String,
}

/// Runs the daemon with an already validated `config` (read from `path`, re-read on SIGHUP)
/// until a stop signal, answering `signals`.
pub async fn run(
    path: &Path,
    config: Config,
    signals: &mut Listener,
) -> Result<Ended, DaemonError> {
    let state = State::open_for(&config.daemon).await?;
    let last_success = state.last_success().await.ok().flatten();
    let metrics = Metrics::new(last_success.as_deref());
    if let Some(addr) = config.daemon.metrics_listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "serving Prometheus metrics on /metrics");
                metrics.clone().serve(l);
            }
            Err(e) => {
                state.close().await;
                return Err(DaemonError::Metrics {
                    addr,
                    reason: e.to_string(),
                });
            }
        }
    }
    notify::spawn_watchdog();
    let mut d = Daemon {
        path,
        config,
        state,
        metrics,
        signals,
        last: "no pass yet".into(),
    };
    tracing::info!(schedule = %d.config.daemon.schedule_text, timezone = %d.config.daemon.timezone, rules = d.config.rules.len(), "retentiond started");
    notify::ready();
    let ended = d.serve().await;
    d.state.close().await;
    ended
}

impl Daemon<'_> {
    /// Waits as a standby until this instance holds the lease, acts while it holds it, and
    /// goes back to waiting if it loses it — until a stop signal.
    async fn serve(&mut self) -> Result<Ended, DaemonError> {
        loop {
            let lease = match self.standby().await {
                Ok(lease) => lease,
                Err(ended) => return Ok(ended),
            };
            match self.act(lease).await? {
                Acting::Ended(ended) => return Ok(ended),
                Acting::LostLease => continue,
            }
        }
    }

    /// Until this instance holds the lease: tries to take it every [`LEASE_POLL`], answering
    /// signals, and says so to systemd (`STATUS=standby …`) and in the metrics
    /// (`retentiond_active 0`). With `state.db`, the lease is granted at once.
    async fn standby(&mut self) -> Result<Lease, Ended> {
        let mut said = String::new();
        loop {
            // Trying may take seconds when the state's host does not answer: signals are
            // answered meanwhile.
            let attempt = tokio::select! {
                r = self.state.try_lease() => Ok(r),
                sig = self.signals.recv() => Err(sig),
            };
            let attempt = match attempt {
                Ok(r) => r,
                Err(sig) => {
                    self.standby_signal(sig).await?;
                    continue;
                }
            };
            let why = match attempt {
                Ok(Some(lease)) => {
                    if said.is_empty() {
                        tracing::info!(state = %self.state.location(), "holding the lease: this instance acts");
                    } else {
                        tracing::info!(state = %self.state.location(), "took over the lease: this instance acts");
                    }
                    self.metrics.set_active(true);
                    return Ok(lease);
                }
                Ok(None) => format!(
                    "another instance holds the lease on {}; this one takes over within {} s of it stopping",
                    self.state.location(),
                    TAKEOVER_BOUND.as_secs()
                ),
                Err(e) => format!("cannot reach the state to take the lease: {e}"),
            };
            self.metrics.set_active(false);
            if why != said {
                tracing::info!("standby: {why}");
                notify::status(&format!("standby: {why}"));
                said = why;
            }
            tokio::select! {
                sig = self.signals.recv() => self.standby_signal(sig).await?,
                () = tokio::time::sleep(LEASE_POLL) => {}
            }
        }
    }

    /// A signal to a standby: reload, or stop (`Err`).
    async fn standby_signal(&mut self, sig: Option<SignalTo>) -> Result<(), Ended> {
        match sig {
            Some(SignalTo::Reload) => {
                self.reload().await;
                Ok(())
            }
            Some(SignalTo::Shutdown(stop)) => {
                notify::stopping();
                tracing::info!("stopping (standby)");
                Err(Ended::Stopped(stop))
            }
            None => {
                notify::stopping();
                Err(Ended::Stopped(Stop::Terminate))
            }
        }
    }

    /// Runs passes on the schedule while this instance holds `lease`: first settles what
    /// an interrupted pass (this instance's, or the one it took over from) left in doubt,
    /// catches up missed passes, then waits for each tick, checking the lease every
    /// [`LEASE_CHECK`].
    async fn act(&mut self, mut lease: Lease) -> Result<Acting, DaemonError> {
        let interrupted = self.settle_at_start().await;
        self.count_requests().await;
        let caught_up = missed(&self.config, &self.state, Utc::now(), &interrupted).await;
        let mut due = if caught_up.is_empty() {
            next_due(&self.config, Utc::now())
        } else {
            tracing::info!(rules = ?caught_up, "a pass was due or interrupted while retentiond was down: running it now");
            Some(Due {
                at: Utc::now(),
                rules: caught_up,
            })
        };
        loop {
            let Some(next) = due.clone() else {
                lease.release().await;
                return Err(DaemonError::NoSchedule);
            };
            let when = next.at.with_timezone(&self.config.daemon.timezone);
            notify::status(&format!(
                "next pass {} ({} rules); last: {}",
                when.format("%Y-%m-%d %H:%M:%S %Z"),
                next.rules.len(),
                self.last
            ));
            tracing::info!(next = %when.to_rfc3339(), rules = next.rules.len(), "waiting for the next pass");
            let wait = (next.at - Utc::now()).to_std().unwrap_or_default();
            let deadline = tokio::time::Instant::now() + wait;
            let tick = loop {
                tokio::select! {
                    sig = self.signals.recv() => match sig {
                        Some(SignalTo::Reload) => {
                            self.reload().await;
                            break false;
                        }
                        Some(SignalTo::Shutdown(stop)) => {
                            notify::stopping();
                            tracing::info!("stopping");
                            lease.release().await;
                            return Ok(Acting::Ended(Ended::Stopped(stop)));
                        }
                        None => {
                            notify::stopping();
                            tracing::info!("signal stream closed; stopping");
                            lease.release().await;
                            return Ok(Acting::Ended(Ended::Stopped(Stop::Terminate)));
                        }
                    },
                    () = tokio::time::sleep(LEASE_CHECK) => {
                        if !lease.holds().await {
                            return Ok(self.lost_lease());
                        }
                    }
                    () = tokio::time::sleep_until(deadline) => break true,
                }
            };
            if !tick {
                due = next_due(&self.config, Utc::now());
                continue;
            }
            if !lease.holds().await {
                return Ok(self.lost_lease());
            }
            match self.pass(&next.rules, &mut lease).await {
                PassEnd::Done => {}
                PassEnd::LostLease => return Ok(self.lost_lease()),
                PassEnd::Ended(ended) => {
                    if matches!(ended, Ended::Stopped(_)) {
                        lease.release().await;
                    }
                    return Ok(Acting::Ended(ended));
                }
            }
            due = next_due(&self.config, Utc::now());
        }
    }

    /// The lease's session stopped answering: another instance may take over (or already
    /// has), so this one stops acting and waits as a standby.
    fn lost_lease(&mut self) -> Acting {
        tracing::error!(state = %self.state.location(), "lost the lease (its session with the state database stopped answering): this instance stops acting and waits as a standby");
        self.metrics.set_active(false);
        Acting::LostLease
    }

    /// Before anything else: settle the batches an interrupted pass left in doubt (so that
    /// what a killed daemon deleted is audited now, not at the next tick). Returns the start
    /// times of interrupted passes. A failure here is logged; the first pass tries again.
    async fn settle_at_start(&mut self) -> Vec<String> {
        // Just after a takeover, the instance that was acting may still hold the pass lock
        // for as long as the server takes to notice it is gone.
        let patience = tokio::time::Instant::now() + TAKEOVER_BOUND + LEASE_POLL * 5;
        let settled = loop {
            match settle(&self.config, &self.state).await {
                Err(PassError::State(StateError::BusyElsewhere(_)))
                    if tokio::time::Instant::now() < patience =>
                {
                    tokio::time::sleep(LEASE_POLL).await;
                }
                other => break other,
            }
        };
        match settled {
            Ok(s) => {
                let r = &s.reconciled;
                if r.confirmed_batches + r.dropped_batches > 0 || !r.unresolved.is_empty() {
                    tracing::warn!(
                        confirmed_batches = r.confirmed_batches,
                        confirmed_entries = r.confirmed_entries,
                        dropped_batches = r.dropped_batches,
                        unresolved = r.unresolved.len(),
                        "settled the batches an interrupted pass left in doubt"
                    );
                }
                s.interrupted_starts
            }
            Err(e) => {
                tracing::error!(error = %e.to_string().trim(), "could not settle the batches in doubt at start; the next pass tries again");
                Vec::new()
            }
        }
    }

    /// Runs one pass while still answering signals. `Some(ended)` when the daemon must stop.
    async fn pass(&mut self, rules: &[String], lease: &mut Lease) -> PassEnd {
        let stop = CancellationToken::new();
        let mut reload = false;
        let mut stopped_by: Option<Stop> = None;
        let mut lost_lease = false;
        let result = {
            let options = PassOptions {
                rules: rules.to_vec(),
                confirm: None,
                progress: crate::progress::Reporter::new(notify::StatusProgress::new()),
            };
            let pass = run_pass(&self.config, &self.state, &options, &stop);
            tokio::pin!(pass);
            loop {
                tokio::select! {
                    r = &mut pass => break r,
                    sig = self.signals.recv() => match sig {
                        Some(SignalTo::Reload) => reload = true,
                        Some(SignalTo::Shutdown(again)) if stop.is_cancelled() => {
                            // Dropping the pass rolls back the batch in flight (or leaves
                            // its intent to be settled against the journal at next start).
                            tracing::warn!("second stop signal: stopping at once; the next start settles the batch in flight");
                            return PassEnd::Ended(Ended::Aborted(again));
                        }
                        Some(SignalTo::Shutdown(s)) => {
                            notify::stopping();
                            tracing::info!("stop signal: finishing the batch in flight, then stopping");
                            stopped_by = Some(s);
                            stop.cancel();
                        }
                        None if !stop.is_cancelled() => {
                            stopped_by = Some(Stop::Terminate);
                            stop.cancel();
                        }
                        None => break (&mut pass).await,
                    },
                    () = tokio::time::sleep(LEASE_CHECK), if !stop.is_cancelled() => {
                        if !lease.holds().await {
                            // Another instance may take over: it cannot write while this
                            // pass holds the pass lock, but it should not have to wait.
                            tracing::error!("lost the lease during a pass: finishing the batch in flight, then stopping this pass");
                            lost_lease = true;
                            stop.cancel();
                        }
                    }
                }
            }
        };
        self.after_pass(rules, result).await;
        if let Some(s) = stopped_by {
            return PassEnd::Ended(Ended::Stopped(s));
        }
        if lost_lease {
            return PassEnd::LostLease;
        }
        if reload {
            self.reload().await;
        }
        PassEnd::Done
    }

    /// Counts open and overdue requests for the metrics (best effort).
    async fn count_requests(&self) {
        if let Ok(open) = self.state.open_requests().await {
            let today = Utc::now()
                .with_timezone(&self.config.daemon.timezone)
                .date_naive();
            let (open, overdue) = crate::engine::requests::open_and_overdue(&open, today);
            self.metrics.record_requests(open, overdue);
        }
    }

    async fn after_pass(&mut self, rules: &[String], result: Result<RunSummary, PassError>) {
        self.count_requests().await;
        match result {
            Ok(s) => {
                crate::report::publish::publish(&self.config, &self.state, &s).await;
                self.metrics.record(&s);
                self.last = format!(
                    "{} {} at {}, {} records",
                    s.run_id,
                    s.status,
                    s.finished_at,
                    s.total_acted()
                );
                tracing::info!(run_id = %s.run_id, rows = s.total_acted(), status = %s.status, "pass done");
            }
            Err(e) => {
                let names: Vec<String> = if rules.is_empty() {
                    self.config.rules.iter().map(|r| r.name.clone()).collect()
                } else {
                    rules.to_vec()
                };
                self.metrics.record_refused(&names);
                self.last = format!(
                    "pass refused at {}: {}",
                    Utc::now().to_rfc3339(),
                    e.to_string().trim()
                );
                tracing::error!(error = %e.to_string().trim(), "pass could not run; next pass on schedule");
            }
        }
    }

    /// Reads the config again; swaps it in only if it is valid and every rule fits its
    /// table. Otherwise says exactly why and keeps running on the old one.
    async fn reload(&mut self) {
        notify::reloading();
        match self.validate_new().await {
            Ok(new) => {
                tracing::info!(rules = new.rules.len(), schedule = %new.daemon.schedule_text, "config reloaded");
                self.config = new;
            }
            Err(why) => tracing::error!(
                "config reload refused, still running on the previous config: {why}"
            ),
        }
        notify::ready();
    }

    async fn validate_new(&self) -> Result<Config, String> {
        let new = config::load(self.path).map_err(|e| e.to_string())?;
        if new.daemon.state_dir != self.config.daemon.state_dir {
            return Err(format!(
                "daemon.state_dir changed ({} → {}); that needs a restart",
                self.config.daemon.state_dir.display(),
                new.daemon.state_dir.display()
            ));
        }
        if new.daemon.state_url != self.config.daemon.state_url {
            return Err("daemon.state_url changed; that needs a restart".into());
        }
        if new.daemon.metrics_listen != self.config.daemon.metrics_listen {
            return Err("daemon.metrics_listen changed; that needs a restart".into());
        }
        if let Some(refused) = crate::engine::rule_history::refused(&new, &self.state)
            .await
            .map_err(|e| e.to_string())?
        {
            return Err(refused.to_string());
        }
        let prepared = prepare(&new, &[]).await.map_err(|e| e.to_string())?;
        prepared.close().await;
        Ok(new)
    }
}

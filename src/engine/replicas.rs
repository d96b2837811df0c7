//! The wait before a batch while a database's replicas lag more than its
//! `max_replica_lag`: a purge must not leave the replicas (read traffic, the fail-over
//! target) far behind, and deleting cannot be undone, so a lag that cannot be told counts
//! as too much. The wait ends at once on the stop signal, and after `max_replica_wait`.

use super::wait::{sleep_or_stop, Waited};
use crate::config::{mask_url, DatabaseSpec, ReplicaPolicy};
use crate::db::replicas::{lag_of_replica, standbys_of, Behind, Reading};
use crate::db::Db;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the replicas are asked again while a batch waits: often enough that a
/// replica that has caught up lets the purge go on within a second, seldom enough not to
/// load the primary or the replicas.
pub const POLL: Duration = Duration::from_millis(500);

/// The longest a replica may take to accept a connection before it counts as unreachable
/// for that poll (or less, when the database's `connect_timeout` is shorter): a replica
/// that does not answer must not make each poll as long as a whole wait.
pub const MAX_CONNECT: Duration = Duration::from_secs(2);

/// The longest a replica may take to answer how far behind it is: a replica that accepts
/// connections but hangs would otherwise hold a poll (and a stop signal) for as long as
/// its `statement_timeout`.
pub const MAX_ANSWER: Duration = Duration::from_secs(5);

/// What a rule's batches need to watch its database's replicas: the policy and the
/// database (whose secret and timeouts the replica connections share).
#[derive(Debug, Clone, Copy)]
pub struct Replicas<'a> {
    /// `max_replica_lag`, `max_replica_wait`, `replicas`.
    pub policy: &'a ReplicaPolicy,
    /// The primary's `[databases.NAME]`.
    pub spec: &'a DatabaseSpec,
    /// The standbys seen so far in this pass, shared by the rules of the pass.
    pub seen: &'a SeenStandbys,
}

/// The primary's standbys seen connected so far in a pass, per database and per standby
/// (by name and address, not pid, which changes when one reconnects), with the most seen
/// at once under one name: a standby that disconnects leaves `pg_stat_replication`, and
/// is then not caught up but gone — it counts as unknown for the rest of the pass, for
/// every rule on that database, also when another standby shares its name and address.
#[derive(Debug, Default)]
pub struct SeenStandbys(std::sync::Mutex<BTreeMap<String, BTreeMap<String, usize>>>);

impl SeenStandbys {
    /// Records the standbys connected now to `target` and returns, per name, how many
    /// seen before are missing now.
    fn missing(&self, target: &str, connected: &[String]) -> Vec<(String, usize)> {
        let mut now: BTreeMap<&str, usize> = BTreeMap::new();
        for key in connected {
            *now.entry(key.as_str()).or_default() += 1;
        }
        let Ok(mut all) = self.0.lock() else {
            return Vec::new();
        };
        let seen = all.entry(target.to_owned()).or_default();
        let mut missing = Vec::new();
        for (key, most) in seen.iter_mut() {
            let here = now.get(key.as_str()).copied().unwrap_or(0);
            if here < *most {
                missing.push((key.clone(), *most - here));
            }
        }
        for (key, n) in now {
            let most = seen.entry(key.to_owned()).or_default();
            *most = (*most).max(n);
        }
        missing
    }
}

/// How a wait for the replicas ended.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitEnd {
    /// Every replica is within the limit; the batch may go. Holds how long it waited
    /// (zero when no replica lagged).
    Go(Duration),
    /// The stop signal came during the wait, after this long.
    Stopped(Duration),
    /// The replicas stayed behind for all of `max_replica_wait`: why, for the report.
    TooLong(Duration, String),
}

/// The replicas of one rule's database, with a connection to each listed replica, made
/// when first needed and made again after it failed.
pub struct Watch<'a> {
    replicas: Replicas<'a>,
    connections: Vec<Option<Db>>,
}

impl<'a> Watch<'a> {
    /// A watch on `replicas`; connects to none yet.
    pub fn new(replicas: Replicas<'a>) -> Watch<'a> {
        Watch {
            connections: replicas.policy.replicas.iter().map(|_| None).collect(),
            replicas,
        }
    }

    /// Waits until no replica lags more than `max_replica_lag`, asking every [`POLL`],
    /// given what [`Watch::lagging`] found at `since` (the wait counts from there).
    /// Returns at once when nothing lagged. Never called with a target transaction open:
    /// a wait may last minutes, and must hold no lock meanwhile.
    pub async fn wait(
        &mut self,
        primary: &Db,
        (since, first): (Instant, Vec<Reading>),
        rule: &str,
        stop: &CancellationToken,
    ) -> WaitEnd {
        let started = since;
        let policy = self.replicas.policy;
        let (mut told, mut warned) = (false, false);
        let mut lagging = first;
        loop {
            if lagging.is_empty() {
                if told {
                    tracing::info!(
                        rule,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "replicas caught up; going on"
                    );
                    return WaitEnd::Go(started.elapsed());
                }
                return WaitEnd::Go(Duration::ZERO);
            }
            let why = describe(&lagging, policy.max_lag);
            if started.elapsed() >= policy.max_wait {
                return WaitEnd::TooLong(
                    started.elapsed(),
                    format!(
                        "stopped before the next batch: {why} for {} (max_replica_wait); the rest is left for the next pass",
                        seconds(started.elapsed())
                    ),
                );
            }
            // Said once per wait, and once more if a replica becomes unreachable or
            // unreadable during it: that is worth a warning, a lag alone is not.
            let unknown = lagging
                .iter()
                .any(|r| matches!(r.behind, Behind::Unknown(_)));
            if unknown && !warned {
                tracing::warn!(rule, replicas = %why, "cannot tell how far a replica is behind; waiting before the next batch");
                warned = true;
            } else if !told {
                tracing::info!(rule, replicas = %why, "replicas lag; waiting before the next batch");
            }
            told = true;
            if sleep_or_stop(POLL, stop).await == Waited::Stopped {
                return WaitEnd::Stopped(started.elapsed());
            }
            lagging = tokio::select! {
                read = self.lagging(primary) => read,
                () = stop.cancelled() => return WaitEnd::Stopped(started.elapsed()),
            };
        }
    }

    /// The replicas that lag more than the limit now, or whose lag cannot be told.
    pub async fn lagging(&mut self, primary: &Db) -> Vec<Reading> {
        let max_lag = self.replicas.policy.max_lag;
        let mut readings = self.readings(primary).await;
        readings.retain(|r| match &r.behind {
            Behind::By(d) => *d > max_lag,
            Behind::Unknown(_) => true,
        });
        readings
    }

    /// How far behind every replica is now: the primary's standbys (PostgreSQL) and each
    /// of `replicas`, for `check` to show and for [`Watch::lagging`] to judge.
    pub async fn readings(&mut self, primary: &Db) -> Vec<Reading> {
        let policy = self.replicas.policy;
        let mut readings = match standbys_of(primary, &policy.ignore_walsenders).await {
            Ok(r) => r,
            // A lag that cannot be told counts as too much (max_replica_wait bounds it).
            Err(e) => vec![Reading {
                replica: "the primary's standbys".to_owned(),
                behind: Behind::Unknown(format!("pg_stat_replication could not be read: {e}")),
            }],
        };
        let connected: Vec<String> = readings
            .iter()
            .filter(|r| !matches!(&r.behind, Behind::Unknown(why) if why.starts_with("pg_stat_replication could not be read")))
            .map(|r| standby_key(&r.replica))
            .collect();
        let target = crate::db::target_of(self.replicas.spec);
        for (gone, n) in self.replicas.seen.missing(&target, &connected) {
            readings.push(Reading {
                replica: if n > 1 { format!("{gone} (×{n})") } else { gone },
                behind: Behind::Unknown(
                    "it was connected to the primary earlier in this pass and is no longer (pg_stat_replication)".to_owned(),
                ),
            });
        }
        for (url, slot) in policy.replicas.iter().zip(self.connections.iter_mut()) {
            let name = mask_url(url);
            if slot.is_none() {
                let primary = self.replicas.spec;
                let mut timeouts = primary.timeouts;
                timeouts.connect = timeouts.connect.min(MAX_CONNECT);
                let spec = DatabaseSpec {
                    name: primary.name.clone(),
                    url: url.clone(),
                    timeouts,
                    ..primary.clone()
                };
                match Db::connect(&spec).await {
                    Ok(db) => *slot = Some(db),
                    Err(e) => {
                        readings.push(Reading {
                            replica: name,
                            behind: Behind::Unknown(e.to_string()),
                        });
                        continue;
                    }
                }
            }
            let Some(db) = slot.as_ref() else { continue };
            let why = match tokio::time::timeout(MAX_ANSWER, lag_of_replica(db, &name)).await {
                Ok(Ok(r)) => {
                    readings.push(r);
                    continue;
                }
                // Kept: its pool reconnects by itself after a broken connection, and an
                // error that stays (a missing grant) must not cost a new login every poll.
                Ok(Err(e)) => format!("could not be asked: {e}"),
                Err(_) => {
                    // A connection that hung is dropped (closing it could hang as well)
                    // and made again at the next poll.
                    drop(slot.take());
                    format!("did not answer within {}", seconds(MAX_ANSWER))
                }
            };
            readings.push(Reading {
                replica: name,
                behind: Behind::Unknown(why),
            });
        }
        readings
    }

    /// Closes the connections to the replicas.
    pub async fn close(self) {
        for db in self.connections.into_iter().flatten() {
            db.close().await;
        }
    }
}

/// A standby's name without its pid (`walreceiver at 10.0.0.2`), which stays the same
/// when it reconnects.
fn standby_key(name: &str) -> String {
    match name.rfind(" (pid ") {
        Some(i) => name[..i].to_owned(),
        None => name.to_owned(),
    }
}

/// `replica X is 12.3 s behind (max_replica_lag 10 s); replica Y: unknown (why)`.
fn describe(lagging: &[Reading], limit: Duration) -> String {
    lagging
        .iter()
        .map(|r| match &r.behind {
            Behind::By(d) => format!(
                "replica {} is {} behind (max_replica_lag {})",
                r.replica,
                seconds(*d),
                seconds(limit)
            ),
            Behind::Unknown(why) => format!(
                "replica {}: how far it is behind cannot be told ({why})",
                r.replica
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A duration as `12.3 s`.
fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_keeps_its_key_when_it_reconnects_under_another_pid() {
        assert_eq!(
            standby_key("walreceiver at 10.0.0.2 (pid 4242)"),
            standby_key("walreceiver at 10.0.0.2 (pid 77)")
        );
        assert_eq!(standby_key("dr-site"), "dr-site");
    }

    #[test]
    fn a_standby_that_leaves_is_missing_for_the_rest_of_the_pass_also_beside_a_namesake() {
        let seen = SeenStandbys::default();
        let two = [
            "walreceiver at 10.0.0.2".to_owned(),
            "walreceiver at 10.0.0.2".to_owned(),
        ];
        assert!(seen.missing("pg://db/hr", &two).is_empty());
        // One of the two leaves: its namesake still connected does not hide it.
        assert_eq!(
            seen.missing("pg://db/hr", &two[..1]),
            vec![("walreceiver at 10.0.0.2".to_owned(), 1)]
        );
        // A later rule of the pass still sees it missing; another database does not.
        assert_eq!(seen.missing("pg://db/hr", &[]).len(), 1);
        assert!(seen.missing("pg://other/crm", &[]).is_empty());
        // Back: nothing missing.
        assert!(seen.missing("pg://db/hr", &two).is_empty());
    }

    #[test]
    fn a_description_names_each_replica_and_why_it_holds_the_purge_back() {
        let text = describe(
            &[
                Reading {
                    replica: "a".into(),
                    behind: Behind::By(Duration::from_millis(12_340)),
                },
                Reading {
                    replica: "b".into(),
                    behind: Behind::Unknown("paused".into()),
                },
            ],
            Duration::from_secs(10),
        );
        assert_eq!(text, "replica a is 12.3 s behind (max_replica_lag 10.0 s); replica b: how far it is behind cannot be told (paused)");
    }
}

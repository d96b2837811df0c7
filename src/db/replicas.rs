//! How far behind a database's replicas are, read the way each engine can tell it: a
//! PostgreSQL primary from `pg_stat_replication`; any replica (PostgreSQL standby, MariaDB
//! or MySQL replica) by asking it directly. What "behind" means per engine, and why, is
//! written on [`standbys_of`] and [`lag_of_replica`].

use super::{Db, DbError, Dialect, Sql, Value};
use std::time::Duration;

/// How far one replica is behind its primary, as far as can be told.
#[derive(Debug, Clone, PartialEq)]
pub enum Behind {
    /// Its replay is this far behind (zero: caught up).
    By(Duration),
    /// It cannot be told, and why (paused replication, a replica that does not report, no
    /// permission to see it). Callers count it as too far behind: deleting is
    /// irreversible, so a batch never starts blind.
    Unknown(String),
}

/// One replica's lag, with the name it is reported under (never a password).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The standby's `application_name` and address, or the replica's masked URL.
    pub replica: String,
    /// How far behind it is.
    pub behind: Behind,
}

/// Seconds as written by the database (`extract(epoch …)`, `Seconds_Behind_Master`) to a
/// duration; `None` for anything that is not a finite number (a negative one, from clocks
/// that disagree, is zero).
fn seconds(text: Option<&str>) -> Option<Duration> {
    let s: f64 = text?.trim().parse().ok()?;
    s.is_finite().then(|| Duration::from_secs_f64(s.max(0.0)))
}

/// The standbys a PostgreSQL primary streams to, from `pg_stat_replication` (an empty list
/// for the other engines, whose primaries cannot tell; they need `replicas`).
///
/// Lag of a standby, on the primary, is defined as:
/// - **0** when its `replay_lsn` has reached `pg_current_wal_lsn()`: it has replayed
///   everything the primary wrote. This rule comes first because `replay_lag` is stale
///   on an idle primary: it keeps the last value measured (or goes NULL) until new WAL
///   arrives, so a caught-up standby could read as lagging, or a lagging one as NULL;
/// - otherwise **`replay_lag`**: the primary's own measure of how long ago it wrote what
///   the standby has now replayed. Measured on this machine (PostgreSQL 15) with
///   `pg_wal_replay_pause()`: while the standby is paused `replay_lag` keeps growing with
///   every status message the standby sends (each time it receives WAL, and every
///   `wal_receiver_status_interval`, 10 s by default), because the primary interpolates
///   towards the next WAL sample it has not seen replayed. So a paused standby reads as
///   ever further behind, which is what must stop the purge;
/// - **unknown** when `replay_lsn` is NULL (the standby has not reported yet, or
///   retentiond's role lacks `pg_read_all_stats`/`pg_monitor` and sees NULLs), or when it
///   is behind and `replay_lag` is NULL (the primary has no measure yet: it gets one with
///   the standby's next reply).
///
/// Sessions in state `backup` (a `pg_basebackup` running) are not standbys and are left
/// out, and so are logical walsenders (a subscriber, change data capture: connected to a
/// database, `datid` set): they may acknowledge only the changes they care about, or
/// belong to another database of the cluster, and would hold every purge back for good.
/// A standby that disconnects leaves `pg_stat_replication`; one seen earlier in a wait
/// then counts as unknown (`engine::replicas`), and a standby listed in `replicas` is
/// asked directly.
pub async fn standbys_of(primary: &Db, ignore: &[String]) -> Result<Vec<Reading>, DbError> {
    if primary.dialect != Dialect::Postgres {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(primary.dialect);
    sql.push(
        "SELECT coalesce(nullif(application_name, ''), 'standby') || ' at ' \
         || coalesce(host(client_addr), 'local socket') || ' (pid ' || pid::text || ')', \
         (replay_lsn IS NULL)::text, \
         (replay_lsn >= pg_current_wal_lsn())::text, \
         extract(epoch FROM replay_lag)::text \
         FROM pg_stat_replication WHERE state IS DISTINCT FROM 'backup' \
         AND pid IN (SELECT pid FROM pg_stat_activity WHERE datid IS NULL) \
         AND NOT (coalesce(application_name, '') = ANY(",
    );
    sql.bind(Value::TextArray(ignore.to_vec()))
        .push(")) ORDER BY pid");
    let rows = primary.fetch_texts(&sql).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let col = |i: usize| row.get(i).cloned().flatten();
            let replica = col(0).unwrap_or_else(|| "standby".to_owned());
            let behind = if col(1).as_deref() != Some("false") {
                Behind::Unknown("it has not reported a replay position (or retentiond's role cannot see it: GRANT pg_monitor)".to_owned())
            } else if col(2).as_deref() == Some("true") {
                Behind::By(Duration::ZERO)
            } else {
                match seconds(col(3).as_deref()) {
                    Some(d) => Behind::By(d),
                    None => Behind::Unknown(
                        "it is behind and the primary has no measure of its lag yet".to_owned(),
                    ),
                }
            };
            Reading { replica, behind }
        })
        .collect())
}

/// How far the replica `db` (reported as `name`) is behind, asked on the replica itself.
///
/// - **PostgreSQL standby**: 0 when it has replayed all the WAL it received
///   (`pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()`) *and* its WAL receiver is
///   streaming; otherwise `now() - pg_last_xact_replay_timestamp()`, the age of the last
///   transaction it replayed, which grows for as long as replay is paused or slow. A
///   standby that is not streaming (its primary unreachable) or not in recovery at all is
///   unknown: it may be missing WAL it cannot know about.
/// - **MariaDB/MySQL replica**: `Seconds_Behind_Master` (`Seconds_Behind_Source`) of
///   `SHOW REPLICA STATUS` (`SHOW SLAVE STATUS` on servers before it). It is NULL when the
///   SQL or I/O thread is stopped (`STOP SLAVE SQL_THREAD`), and that is unknown, never
///   0; an empty answer means the server is not a replica, also unknown.
pub async fn lag_of_replica(db: &Db, name: &str) -> Result<Reading, DbError> {
    let behind = match db.dialect {
        Dialect::Postgres => postgres_standby(db).await?,
        Dialect::MySql => mysql_replica(db).await?,
        Dialect::Sqlite => Behind::Unknown("SQLite has no replicas".to_owned()),
    };
    Ok(Reading {
        replica: name.to_owned(),
        behind,
    })
}

async fn postgres_standby(db: &Db) -> Result<Behind, DbError> {
    let mut sql = Sql::new(db.dialect);
    sql.push(
        "SELECT pg_is_in_recovery()::text, \
         (SELECT coalesce(status, CASE WHEN pid IS NOT NULL THEN 'hidden' END) FROM pg_stat_wal_receiver LIMIT 1), \
         (pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn())::text, \
         extract(epoch FROM now() - pg_last_xact_replay_timestamp())::text",
    );
    let rows = db.fetch_texts(&sql).await?;
    let row = rows.into_iter().next().unwrap_or_default();
    let col = |i: usize| row.get(i).cloned().flatten();
    Ok(if col(0).as_deref() != Some("true") {
        Behind::Unknown("it is not a standby (pg_is_in_recovery() is false)".to_owned())
    } else if col(1).as_deref() == Some("hidden") {
        Behind::Unknown(
            "its WAL receiver's state is hidden from this role: GRANT pg_monitor to it on the standby".to_owned(),
        )
    } else if col(1).as_deref() != Some("streaming") {
        Behind::Unknown(format!(
            "it is not streaming from its primary (WAL receiver: {})",
            col(1).as_deref().unwrap_or("not running")
        ))
    } else if col(2).as_deref() == Some("true") {
        Behind::By(Duration::ZERO)
    } else {
        match seconds(col(3).as_deref()) {
            Some(d) => Behind::By(d),
            None => Behind::Unknown("it has replayed no transaction since it started".to_owned()),
        }
    })
}

async fn mysql_replica(db: &Db) -> Result<Behind, DbError> {
    let statement = |text: &str| {
        let mut sql = Sql::new(db.dialect);
        sql.push(text);
        sql
    };
    // MySQL 8.4 knows only the first; MariaDB before 10.5 only the second.
    let rows = match db.fetch_named(&statement("SHOW REPLICA STATUS")).await {
        Ok(rows) => rows,
        Err(_) => db.fetch_named(&statement("SHOW SLAVE STATUS")).await?,
    };
    let Some(row) = rows.into_iter().next() else {
        return Ok(Behind::Unknown(
            "it is not a replica (SHOW REPLICA STATUS is empty)".to_owned(),
        ));
    };
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| row.get(*n).cloned().flatten())
            .unwrap_or_else(|| "?".to_owned())
    };
    let lag = ["Seconds_Behind_Master", "Seconds_Behind_Source"]
        .iter()
        .find_map(|n| row.get(*n).cloned().flatten());
    Ok(match seconds(lag.as_deref()) {
        Some(d) => Behind::By(d),
        None => Behind::Unknown(format!(
            "replication is not running (I/O thread: {}, SQL thread: {}), so Seconds_Behind_Master is NULL",
            field(&["Slave_IO_Running", "Replica_IO_Running"]),
            field(&["Slave_SQL_Running", "Replica_SQL_Running"])
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_read_from_the_database_text_and_nonsense_is_unknown() {
        assert_eq!(seconds(Some("2.5")), Some(Duration::from_millis(2500)));
        assert_eq!(seconds(Some("12")), Some(Duration::from_secs(12)));
        assert_eq!(seconds(Some("-0.3")), Some(Duration::ZERO));
        assert_eq!(seconds(None), None);
        assert_eq!(seconds(Some("NaN")), None);
        assert_eq!(seconds(Some("")), None);
    }
}

//! The run history: one row per pass (start, end, status, summary), and when each rule last
//! started a pass (so the daemon can catch up a pass it missed while down).

use super::{now_text, State, StateError};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// One pass in the run history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    /// The pass id.
    pub run_id: String,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, if it ended.
    pub finished_at: Option<String>,
    /// `running`, `ok`, `failed`.
    pub status: String,
    /// The run summary (JSON), when finished.
    pub summary: Option<String>,
}

impl State {
    /// Records the start of a pass.
    pub async fn start_run(&self, run_id: &str, started_at: &str) -> Result<(), StateError> {
        super::on_pool!(self, pool => {
        sqlx::query("INSERT INTO runs (run_id, started_at, status) VALUES ($1, $2, 'running')")
            .bind(run_id)
            .bind(started_at)
            .execute(pool)
            .await?;
        Ok(())
        })
    }

    /// Records that `rules` started in a pass (for catching up missed passes per rule).
    pub async fn mark_rules_started(
        &self,
        rules: &[&str],
        started_at: &str,
    ) -> Result<(), StateError> {
        super::on_pool!(self, pool => {
        let mut tx = pool.begin().await?;
        for rule in rules {
            sqlx::query("INSERT INTO rule_runs (rule, last_started_at) VALUES ($1, $2) ON CONFLICT (rule) DO UPDATE SET last_started_at = excluded.last_started_at")
                .bind(rule)
                .bind(started_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
        })
    }

    /// When `rule` last started a pass, if ever.
    pub async fn rule_last_started(&self, rule: &str) -> Result<Option<String>, StateError> {
        super::on_pool!(self, pool => {
        let r = sqlx::query("SELECT last_started_at FROM rule_runs WHERE rule = $1")
            .bind(rule)
            .fetch_optional(pool)
            .await?;
        Ok(r.map(|r| r.try_get(0)).transpose()?)
        })
    }

    /// When the last pass that ended `ok` finished, if ever.
    pub async fn last_success(&self) -> Result<Option<String>, StateError> {
        super::on_pool!(self, pool => {
        let r = sqlx::query("SELECT MAX(finished_at) FROM runs WHERE status = 'ok'")
            .fetch_one(pool)
            .await?;
        Ok(r.try_get(0)?)
        })
    }

    /// Records the end of a pass with its summary.
    ///
    /// Written with a full fsync: in WAL mode that makes every earlier commit durable too
    /// (the audit appends of the pass are not fsynced one by one), so the head this pass
    /// anchors elsewhere right after is on disk here first.
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: &str,
        summary_json: &str,
    ) -> Result<(), StateError> {
        super::on_pool!(self, pool => {
        let mut conn = pool.acquire().await?;
        if !self.is_postgres() {
            sqlx::query("PRAGMA synchronous = FULL")
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query(
            "UPDATE runs SET finished_at = $2, status = $3, summary = $4 WHERE run_id = $1",
        )
        .bind(run_id)
        .bind(now_text())
        .bind(status)
        .bind(summary_json)
        .execute(&mut *conn)
        .await?;
        Ok(())
        })
    }

    /// Replaces the stored summary of a finished pass (what it learnt after finishing:
    /// where its head was anchored).
    pub async fn update_summary(&self, run_id: &str, summary_json: &str) -> Result<(), StateError> {
        super::on_pool!(self, pool => {
        sqlx::query("UPDATE runs SET summary = $2 WHERE run_id = $1")
            .bind(run_id)
            .bind(summary_json)
            .execute(pool)
            .await?;
        Ok(())
        })
    }

    /// The last pass that finished with a summary, or a given one.
    pub async fn run(&self, run_id: Option<&str>) -> Result<Option<RunRow>, StateError> {
        super::on_pool!(self, pool => {
        let q = match run_id {
            Some(_) => "SELECT run_id, started_at, finished_at, status, summary FROM runs WHERE run_id = $1",
            // PostgreSQL has no `rowid`: passes that started in the same microsecond are
            // told apart by when they finished there.
            None if self.is_postgres() => "SELECT run_id, started_at, finished_at, status, summary FROM runs WHERE summary IS NOT NULL ORDER BY started_at DESC, finished_at DESC, run_id DESC LIMIT 1",
            None => "SELECT run_id, started_at, finished_at, status, summary FROM runs WHERE summary IS NOT NULL ORDER BY started_at DESC, rowid DESC LIMIT 1",
        };
        let mut query = sqlx::query(q);
        if let Some(id) = run_id {
            query = query.bind(id);
        }
        let row = query.fetch_optional(pool).await?;
        row.map(|r| {
            Ok(RunRow {
                run_id: r.try_get(0)?,
                started_at: r.try_get(1)?,
                finished_at: r.try_get(2)?,
                status: r.try_get(3)?,
                summary: r.try_get(4)?,
            })
        })
        .transpose()
        .map_err(StateError::Db)
        })
    }

    /// Marks passes that never finished (the process died) as interrupted, and returns
    /// their start times: a rule that last started in one of them did not really run.
    pub async fn close_interrupted_runs(&self) -> Result<Vec<String>, StateError> {
        super::on_pool!(self, pool => {
        let mut tx = pool.begin().await?;
        let starts: Vec<String> =
            sqlx::query_scalar("SELECT started_at FROM runs WHERE finished_at IS NULL")
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query(
            "UPDATE runs SET status = 'interrupted', finished_at = $1 WHERE finished_at IS NULL",
        )
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(starts)
        })
    }

    /// Summaries of passes that started at or after `from` and before `until` (RFC 3339).
    pub async fn summaries_between(
        &self,
        from: &str,
        until: &str,
    ) -> Result<Vec<String>, StateError> {
        super::on_pool!(self, pool => {
        let rows = sqlx::query("SELECT summary FROM runs WHERE started_at >= $1 AND started_at < $2 AND summary IS NOT NULL ORDER BY started_at")
            .bind(from)
            .bind(until)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(StateError::Db))
            .collect()
        })
    }
}

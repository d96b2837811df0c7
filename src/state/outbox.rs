//! The mail outbox: reports queued for mailing, kept until they are sent, so a mail server
//! that is down never loses a report and never fails enforcement.

use super::{now_text, State, StateError};
use sqlx::Row;

impl State {
    /// Queues the report of `run_id` for mailing (kept until it is sent).
    pub async fn queue_mail(&self, run_id: &str) -> Result<(), StateError> {
        super::on_pool!(self, pool => {
        sqlx::query("INSERT INTO mail_outbox (run_id, queued_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(run_id)
            .bind(now_text())
            .execute(pool)
            .await?;
        Ok(())
        })
    }

    /// Reports waiting to be mailed, oldest first.
    pub async fn outbox(&self) -> Result<Vec<String>, StateError> {
        super::on_pool!(self, pool => {
        let rows = sqlx::query("SELECT run_id FROM mail_outbox ORDER BY queued_at, run_id")
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(StateError::Db))
            .collect()
        })
    }

    /// The report of `run_id` was mailed.
    pub async fn mail_sent(&self, run_id: &str) -> Result<(), StateError> {
        super::on_pool!(self, pool => {
        sqlx::query("DELETE FROM mail_outbox WHERE run_id = $1")
            .bind(run_id)
            .execute(pool)
            .await?;
        Ok(())
        })
    }
}

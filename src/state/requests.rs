//! The register of data-subject requests: kind, dates, an optional reference, and a keyed
//! tag of the person's identity — never the identity itself (see `engine::requests`).

use super::{now_text, State, StateError};
use sqlx::Row;

/// One request as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    /// `REQ-2026-0001`.
    pub id: String,
    /// `access` or `erasure`.
    pub kind: String,
    /// The day it was received (`YYYY-MM-DD`).
    pub received: String,
    /// The day the answer is due (`YYYY-MM-DD`), extended or not.
    pub due: String,
    /// The operator's reference (a ticket number; never the person's name).
    pub reference: Option<String>,
    /// The keyed tag of the identity it is bound to, once bound.
    pub identity: Option<String>,
    /// Why it was extended, if it was (once, by two months).
    pub extension_reason: Option<String>,
    /// When it was closed, if it was.
    pub closed_at: Option<String>,
}

const COLUMNS: &str = "id, kind, received, due, reference, identity, extension_reason, closed_at";

/// Adds an outcome to the ones already recorded for its request, subject and step: the
/// later of two dates is kept (SQLite's two-argument `MAX` is PostgreSQL's `GREATEST`).
const OUTCOME_UPSERT: &str = "INSERT INTO request_outcomes (request, subject, step, reason, count, until, at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (request, subject, step, reason) DO UPDATE SET count = request_outcomes.count + excluded.count, until = {LATER}(COALESCE(request_outcomes.until, ''), COALESCE(excluded.until, ''))";

fn row_of<'r, R: Row>(r: &'r R) -> Result<RequestRow, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RequestRow {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        received: r.try_get(2)?,
        due: r.try_get(3)?,
        reference: r.try_get(4)?,
        identity: r.try_get(5)?,
        extension_reason: r.try_get(6)?,
        closed_at: r.try_get(7)?,
    })
}

impl State {
    /// Registers a request under the next free id of `year` (`REQ-YYYY-NNNN`); returns it.
    pub async fn add_request(
        &self,
        year: i32,
        kind: &str,
        received: &str,
        due: &str,
        reference: Option<&str>,
        identity: Option<&str>,
    ) -> Result<RequestRow, StateError> {
        super::on_pool!(self, pool => {
        let mut tx = pool.begin_with(self.write_transaction()).await?;
        if self.is_postgres() {
            // Two hosts registering at once must not count the same ids (SQLite's
            // BEGIN IMMEDIATE serializes them; this does in PostgreSQL).
            sqlx::query("LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let prefix = format!("REQ-{year}-");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE id LIKE $1")
            .bind(format!("{prefix}%"))
            .fetch_one(&mut *tx)
            .await?;
        let id = format!("{prefix}{:04}", n + 1);
        sqlx::query("INSERT INTO requests (id, kind, received, due, reference, identity, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&id)
            .bind(kind)
            .bind(received)
            .bind(due)
            .bind(reference)
            .bind(identity)
            .bind(now_text())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RequestRow {
            id,
            kind: kind.to_owned(),
            received: received.to_owned(),
            due: due.to_owned(),
            reference: reference.map(str::to_owned),
            identity: identity.map(str::to_owned),
            extension_reason: None,
            closed_at: None,
        })
        })
    }

    /// One request by id.
    pub async fn request(&self, id: &str) -> Result<Option<RequestRow>, StateError> {
        super::on_pool!(self, pool => {
        let r = sqlx::query(&format!("SELECT {COLUMNS} FROM requests WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
        Ok(r.as_ref().map(row_of).transpose()?)
        })
    }

    /// Every open request, earliest due first.
    pub async fn open_requests(&self) -> Result<Vec<RequestRow>, StateError> {
        super::on_pool!(self, pool => {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM requests WHERE closed_at IS NULL ORDER BY due, id"
        ))
        .fetch_all(pool)
        .await?;
        Ok(rows.iter().map(row_of).collect::<Result<_, _>>()?)
        })
    }

    /// Binds an unbound request to an identity tag. `false` if it was bound meanwhile.
    pub async fn bind_identity(&self, id: &str, identity: &str) -> Result<bool, StateError> {
        super::on_pool!(self, pool => {
        let r = sqlx::query("UPDATE requests SET identity = $2 WHERE id = $1 AND identity IS NULL")
            .bind(id)
            .bind(identity)
            .execute(pool)
            .await?;
        Ok(r.rows_affected() == 1)
        })
    }

    /// Extends an open, not yet extended request to `due`. `false` if it was closed or
    /// extended meanwhile.
    pub async fn extend_request(
        &self,
        id: &str,
        due: &str,
        reason: &str,
    ) -> Result<bool, StateError> {
        super::on_pool!(self, pool => {
        let r = sqlx::query("UPDATE requests SET due = $2, extension_reason = $3 WHERE id = $1 AND extension_reason IS NULL AND closed_at IS NULL")
            .bind(id)
            .bind(due)
            .bind(reason)
            .execute(pool)
            .await?;
        Ok(r.rows_affected() == 1)
        })
    }

    /// Closes an open request. `false` if it was already closed.
    pub async fn close_request(&self, id: &str) -> Result<bool, StateError> {
        super::on_pool!(self, pool => {
        let r =
            sqlx::query("UPDATE requests SET closed_at = $2 WHERE id = $1 AND closed_at IS NULL")
                .bind(id)
                .bind(now_text())
                .execute(pool)
                .await?;
        Ok(r.rows_affected() == 1)
        })
    }
}

/// What one step of a request found or left in one subject: counts and reasons, never
/// values or keys. `request answer` writes the letter from these and from the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRow {
    /// The `[[subject]]`.
    pub subject: String,
    /// [`FOUND`] or [`KEPT`].
    pub step: String,
    /// Why the records were kept (empty for [`FOUND`]).
    pub reason: String,
    /// How many records.
    pub count: i64,
    /// For kept records a rule will delete later: the last day it does (`YYYY-MM-DD`).
    pub until: Option<String>,
    /// When it was recorded.
    pub at: String,
}

/// The step of a search: how many of the person's records each subject holds.
pub const FOUND: &str = "found";

/// The step of an erasure: what it left, and why.
pub const KEPT: &str = "kept";

impl State {
    /// Replaces what `request` last recorded for `step` with `rows` (their `step` and `at`
    /// are set here): the latest search, or what the latest erasure left.
    pub async fn record_outcomes(
        &self,
        request: &str,
        step: &str,
        rows: &[OutcomeRow],
    ) -> Result<(), StateError> {
        super::on_pool!(self, pool => {
        let at = now_text();
        let upsert = OUTCOME_UPSERT.replace("{LATER}", if self.is_postgres() { "GREATEST" } else { "MAX" });
        let mut tx = pool.begin_with(self.write_transaction()).await?;
        sqlx::query("DELETE FROM request_outcomes WHERE request = $1 AND step = $2")
            .bind(request)
            .bind(step)
            .execute(&mut *tx)
            .await?;
        for r in rows {
            sqlx::query(&upsert)
                .bind(request)
                .bind(&r.subject)
                .bind(step)
                .bind(&r.reason)
                .bind(r.count)
                .bind(&r.until)
                .bind(&at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
        })
    }

    /// Everything recorded for `request`, by step, subject and reason.
    pub async fn outcomes(&self, request: &str) -> Result<Vec<OutcomeRow>, StateError> {
        super::on_pool!(self, pool => {
        let rows = sqlx::query("SELECT subject, step, reason, count, NULLIF(until, ''), at FROM request_outcomes WHERE request = $1 ORDER BY step, subject, reason")
            .bind(request)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OutcomeRow {
                    subject: r.try_get(0)?,
                    step: r.try_get(1)?,
                    reason: r.try_get(2)?,
                    count: r.try_get(3)?,
                    until: r.try_get(4)?,
                    at: r.try_get(5)?,
                })
            })
            .collect()
        })
    }
}

//! Legal holds as last seen by a pass, so the next pass can tell which began, changed or
//! ended. Written only together with the audit entry of that event (see `trail`).

use super::{State, StateError};
use sqlx::Row;

/// A hold as the trail last recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldSeen {
    /// The hold's name.
    pub name: String,
    /// The fingerprint of its definition then.
    pub fingerprint: String,
    /// The database it covered.
    pub database: String,
    /// The table it covered.
    pub table: String,
    /// Whether it was in force.
    pub active: bool,
}

impl State {
    /// Every hold the trail has seen, by name.
    pub async fn holds_seen(&self) -> Result<Vec<HoldSeen>, StateError> {
        super::on_pool!(self, pool => {
        let rows = sqlx::query(
            "SELECT name, fingerprint, database, tbl, active FROM holds_seen ORDER BY name",
        )
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HoldSeen {
                    name: r.try_get(0)?,
                    fingerprint: r.try_get(1)?,
                    database: r.try_get(2)?,
                    table: r.try_get(3)?,
                    active: r.try_get::<i64, _>(4)? != 0,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StateError::Db)
        })
    }
}

//! Intents: the keys of a batch about to be committed in a target database, written (and
//! fsynced) before that commit, turned into audit entries after it (see
//! `engine::journal`), or dropped if the commit never happened.

use super::postgres::PgStore;
use super::{State, StateError};
use sqlx::Row;

/// A batch about to be committed in a target database: written before that commit, turned
/// into audit entries after it, or dropped if the commit never happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// Unique across all runs (`run_id` is random), also the journal row in the target.
    pub batch_id: String,
    /// The pass.
    pub run_id: String,
    /// The rule.
    pub rule: String,
    /// The database's config name.
    pub database: String,
    /// The table.
    pub table: String,
    /// The action verb.
    pub action: String,
    /// The rule's legal basis.
    pub legal_basis: String,
    /// The keys the batch acts on.
    pub keys: Vec<String>,
    /// When the intent was written.
    pub created_at: String,
    /// The data-subject request an erasure batch acts under; `None` for a rule's batch.
    pub request: Option<String>,
    /// The rule's related rows the batch acts on too, before `keys`, in that order.
    pub children: Vec<ChildKeys>,
}

/// Related rows (a rule's `children`) of one table that a batch acts on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChildKeys {
    /// The child table.
    pub table: String,
    /// The action verb.
    pub action: String,
    /// The rows' keys.
    pub keys: Vec<String>,
}

impl State {
    /// Writes an intent durably (fsync) before the target database commits.
    pub async fn write_intent(&self, i: &Intent) -> Result<(), StateError> {
        let keys = serde_json::to_string(&i.keys).map_err(StateError::io)?;
        let children = if i.children.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&i.children).map_err(StateError::io)?)
        };
        let fields = [
            i.batch_id.clone(),
            i.run_id.clone(),
            i.rule.clone(),
            i.database.clone(),
            i.table.clone(),
            i.action.clone(),
            i.legal_basis.clone(),
            keys,
            i.created_at.clone(),
        ];
        let request = i.request.clone();
        let writer = match &self.store {
            super::Store::Sqlite { writer, .. } => writer,
            super::Store::Postgres(pg) => {
                return write_intent_pg(pg, fields, request, children).await
            }
        };
        writer
            .run(super::writer::Durability::Fsynced, move |conn| {
                conn.prepare_cached("INSERT INTO pending (batch_id, run_id, rule, database, tbl, action, legal_basis, keys, created_at, request, children) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
                    .and_then(|mut s| {
                        let [a, b, c, d, e, f, g, h, k] = &fields;
                        s.execute(rusqlite::params![a, b, c, d, e, f, g, h, k, request, children])
                    })
                    .map(|_| ())
                    .map_err(|e| StateError::Io(format!("writing an intent: {e}")))
            })
            .await
    }

    /// The batch did not commit: its intent is dropped, no entry is written.
    pub async fn drop_intent(&self, batch_id: &str) -> Result<(), StateError> {
        super::on_pool!(self, pool => {
            sqlx::query("DELETE FROM pending WHERE batch_id = $1")
                .bind(batch_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Intents whose outcome is not yet known (after a crash or a lost connection).
    pub async fn pending(&self) -> Result<Vec<Intent>, StateError> {
        const SQL: &str = "SELECT batch_id, run_id, rule, database, tbl, action, legal_basis, keys, created_at, request, children FROM pending ORDER BY created_at, batch_id";
        super::on_pool!(self, pool => sqlx::query(SQL)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                let keys: String = r.try_get(7)?;
                Ok(Intent {
                    batch_id: r.try_get(0)?,
                    run_id: r.try_get(1)?,
                    rule: r.try_get(2)?,
                    database: r.try_get(3)?,
                    table: r.try_get(4)?,
                    action: r.try_get(5)?,
                    legal_basis: r.try_get(6)?,
                    keys: serde_json::from_str(&keys).map_err(StateError::io)?,
                    created_at: r.try_get(8)?,
                    request: r.try_get(9)?,
                    children: match r.try_get::<Option<String>, _>(10)? {
                        Some(c) => serde_json::from_str(&c).map_err(StateError::io)?,
                        None => Vec::new(),
                    },
                })
            })
            .collect())
    }
}

/// [`State::write_intent`] on the PostgreSQL state: committed (durable) through the pass
/// session.
async fn write_intent_pg(
    pg: &PgStore,
    fields: [String; 9],
    request: Option<String>,
    children: Option<String>,
) -> Result<(), StateError> {
    pg.through_pass("writing an intent", move |conn| {
        Box::pin(async move {
            let [a, b, c, d, e, f, g, h, k] = fields;
            sqlx::query("INSERT INTO pending (batch_id, run_id, rule, database, tbl, action, legal_basis, keys, created_at, request, children) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .bind(a).bind(b).bind(c).bind(d).bind(e).bind(f).bind(g).bind(h).bind(k)
                .bind(request)
                .bind(children)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    })
    .await
}

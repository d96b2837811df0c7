//! Acting on one rule, batch by batch. Each batch is one short transaction in the target
//! database, and follows the protocol that keeps the audit invariant under any crash:
//!
//! 1. lock the next batch of matching records (`FOR UPDATE SKIP LOCKED`; SQLite:
//!    `BEGIN IMMEDIATE`), walking the key range once (keyset, never rescanning);
//! 2. write the batch's *intent* (its keys) to the state database, durably;
//! 3. act on exactly those keys, and insert the batch's row in `retentiond_journal`;
//! 4. commit the target transaction;
//! 5. *confirm*: turn the intent into audit entries, atomically.
//!
//! A crash before 4 leaves an intent without a journal row: dropped at the next start.
//! A crash after 4 leaves an intent with a journal row: confirmed at the next start.
//! See `reconcile`.

use super::hasher::Hasher;
use super::matcher::{flag_value, Matcher};
use crate::config::{Action, Cutoff, Strategy};
use crate::db::{Db, Record, Sql, Value};
use crate::report::summary::{RuleOutcome, RuleStatus};
use crate::state::{now_text, Intent, State};
use tokio_util::sync::CancellationToken;

/// What a batch loop needs besides the rule.
pub struct Context<'a> {
    /// The target database.
    pub db: &'a Db,
    /// The state database.
    pub state: &'a State,
    /// The pass.
    pub run_id: &'a str,
    /// Position of the rule in the config (part of batch ids).
    pub rule_index: usize,
    /// The anonymization key, when a rule hashes.
    pub hasher: Option<&'a Hasher>,
    /// Checked between batches, never inside one.
    pub stop: &'a CancellationToken,
}

/// Runs all batches of one rule and says how it went.
pub async fn execute_rule(m: &Matcher<'_>, cutoff: &Cutoff, ctx: &Context<'_>) -> RuleOutcome {
    let rule = m.rule;
    let mut outcome = RuleOutcome {
        rule: rule.name.clone(),
        description: rule.description.clone(),
        legal_basis: rule.legal_basis.clone(),
        database: rule.database.clone(),
        table: rule.table.to_string(),
        action: rule.action.verb().to_owned(),
        cutoff: Some(cutoff.utc.to_rfc3339()),
        acted: 0,
        batches: 0,
        status: RuleStatus::Ok,
        error: None,
    };
    let mut journal = Sql::new(m.dialect);
    journal.push(m.dialect.journal_ddl());
    if let Err(e) = ctx.db.execute(&journal).await {
        outcome.status = RuleStatus::Failed;
        outcome.error = Some(format!(
            "{e} — retentiond keeps a small table retentiond_journal in each database to make every batch verifiable; grant CREATE (or create it as in the README)"
        ));
        return outcome;
    }
    let mut after: Option<Value> = None;
    loop {
        if ctx.stop.is_cancelled() {
            outcome.status = RuleStatus::Stopped;
            break;
        }
        match run_batch(m, cutoff, ctx, after.as_ref(), outcome.batches).await {
            Ok(None) => break,
            Ok(Some((n, last))) => {
                outcome.acted += n;
                outcome.batches += 1;
                after = Some(last);
                tracing::debug!(rule = %rule.name, batch = outcome.batches, rows = n, "batch committed and audited");
            }
            Err(e) => {
                tracing::error!(rule = %rule.name, error = %e, "rule failed");
                outcome.status = RuleStatus::Failed;
                outcome.error = Some(e);
                break;
            }
        }
        if !rule.batch_pause.is_zero() {
            tokio::time::sleep(rule.batch_pause).await;
        }
    }
    if outcome.status != RuleStatus::Failed && outcome.batches > 0 {
        cleanup_journal(m, ctx).await;
    }
    outcome
}

/// One batch. `Ok(None)` when nothing is left to do.
async fn run_batch(
    m: &Matcher<'_>,
    cutoff: &Cutoff,
    ctx: &Context<'_>,
    after: Option<&Value>,
    n: u64,
) -> Result<Option<(u64, Value)>, String> {
    let rule = m.rule;
    let mut tx = ctx.db.begin().await.map_err(|e| e.to_string())?;
    let records = tx
        .fetch_records(&m.batch(cutoff, after, rule.batch_size), m.shape.key)
        .await
        .map_err(|e| e.to_string())?;
    let Some(last) = records.last().map(|r| r.key.value()) else {
        return Ok(None);
    };
    let intent = Intent {
        batch_id: format!("{}-{}-{n}", ctx.run_id, ctx.rule_index),
        run_id: ctx.run_id.to_owned(),
        rule: rule.name.clone(),
        database: rule.database.clone(),
        table: rule.table.to_string(),
        action: rule.action.verb().to_owned(),
        legal_basis: rule.legal_basis.clone(),
        keys: records.iter().map(|r| r.key.to_string()).collect(),
        created_at: now_text(),
    };
    // The intent must be on disk before the target can commit; if it cannot be written,
    // the open transaction is rolled back when `tx` is dropped.
    ctx.state
        .write_intent(&intent)
        .await
        .map_err(|e| e.to_string())?;
    let act = action_sql(m, &records, ctx.hasher)?;
    let outcome = async {
        let affected = tx.execute(&act).await.map_err(|e| e.to_string())?;
        if affected != records.len() as u64 {
            return Err(format!(
                "the {} statement changed {affected} records where {} were locked; nothing was committed (is a trigger or a cascade rewriting the table?)",
                rule.action.verb(),
                records.len()
            ));
        }
        let mut mark = Sql::new(m.dialect);
        mark.push("INSERT INTO retentiond_journal (batch_id, rule) VALUES (")
            .bind(Value::Text(intent.batch_id.clone()))
            .push(", ")
            .bind(Value::Text(rule.name.clone()))
            .push(")");
        tx.execute(&mark).await.map_err(|e| e.to_string())?;
        Ok(tx)
    }
    .await;
    let tx = match outcome {
        Ok(tx) => tx,
        Err(e) => {
            // Nothing committed: the transaction rolled back when it was dropped.
            ctx.state
                .drop_intent(&intent.batch_id)
                .await
                .map_err(|e2| format!("{e}; and {e2}"))?;
            return Err(e);
        }
    };
    if let Err(e) = tx.commit().await {
        return Err(format!(
            "commit failed ({e}); whether batch {} happened is settled against the database at the next start, and the audit trail follows it",
            intent.batch_id
        ));
    }
    ctx.state
        .confirm(&intent, &now_text())
        .await
        .map_err(|e| format!("batch {} committed but its audit entries could not be written yet ({e}); they are written at the next start", intent.batch_id))?;
    Ok(Some((records.len() as u64, last)))
}

/// The DELETE or UPDATE for exactly the locked keys.
fn action_sql(m: &Matcher<'_>, records: &[Record], hasher: Option<&Hasher>) -> Result<Sql, String> {
    let d = m.dialect;
    let key = m.key();
    let keys: Vec<Value> = records.iter().map(|r| r.key.value()).collect();
    let mut sql = Sql::new(d);
    match &m.rule.action {
        Action::Delete => {
            sql.push("DELETE FROM ").push(&m.table()).push(" WHERE ");
        }
        Action::Flag { column, value } => {
            sql.push("UPDATE ")
                .push(&m.table())
                .push(" SET ")
                .push(&d.ident(column))
                .push(" = ")
                .bind(flag_value(value))
                .push(" WHERE ");
        }
        Action::Anonymize(cols) => {
            sql.push("UPDATE ").push(&m.table()).push(" SET ");
            let mut hashed = 0;
            for (i, (col, strategy)) in cols.iter().enumerate() {
                let c = d.ident(col);
                if i > 0 {
                    sql.push(", ");
                }
                sql.push(&c).push(" = ");
                match strategy {
                    Strategy::Null => {
                        sql.push("NULL");
                    }
                    Strategy::Replace(v) => {
                        sql.bind(Value::Text(v.clone()));
                    }
                    Strategy::Hash => {
                        let hasher = hasher.ok_or("internal: a hash rule ran without its key")?;
                        sql.push("CASE ").push(&key);
                        for r in records {
                            if let Some(Some(v)) = r.texts.get(hashed) {
                                sql.push(" WHEN ")
                                    .bind(r.key.value())
                                    .push(" THEN ")
                                    .bind(Value::Text(hasher.hash(v)));
                            }
                        }
                        sql.push(" ELSE ").push(&c).push(" END");
                        hashed += 1;
                    }
                }
            }
            sql.push(" WHERE ");
        }
    }
    sql.in_list(&key, &keys);
    Ok(sql)
}

/// Removes this rule's journal rows once all its batches are confirmed; they are only
/// needed while a batch's outcome could be in doubt.
async fn cleanup_journal(m: &Matcher<'_>, ctx: &Context<'_>) {
    let mut sql = Sql::new(m.dialect);
    sql.push("DELETE FROM retentiond_journal WHERE batch_id LIKE ")
        .bind(Value::Text(format!("{}-{}-%", ctx.run_id, ctx.rule_index)));
    if let Err(e) = ctx.db.execute(&sql).await {
        tracing::warn!(rule = %m.rule.name, error = %e, "could not clean up retentiond_journal; harmless, retried next pass");
    }
}

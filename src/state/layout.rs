//! How the audit trail is laid out on disk (state schema 3), and the migration to it.
//!
//! An entry's fields are mostly shared by its whole batch (time, pass, rule, database,
//! table, verb, legal basis, request): they are stored once per batch in `audit_batch`,
//! and each entry keeps only its `seq`, its batch, its key and its hash as 32 raw bytes in
//! `audit_entry`. `prev_hash` is not stored at all: it is by definition the hash of the
//! entry before. That is about a fifth of the bytes per entry of schema 2, which is what
//! lets a pass append a million entries a second (BENCHMARKS.md).
//!
//! The view `audit` shows the trail exactly as schema 2 stored it (hex hashes, `prev_hash`
//! included), so `audit export`, reports and anyone who queries the trail by hand see the
//! same rows; the hash definition (`audit::chain`) is unchanged, and a trail migrated from
//! schema 2 verifies and exports byte for byte as before. Writes through the view (a
//! tamper test, an auditor's experiment on a copy) reach the tables underneath, so that
//! `audit verify` sees them; a change to `prev_hash`, which is not stored, is refused
//! rather than silently dropped. The triggers convert hex with `unhex()`, which needs
//! SQLite 3.41 or later (the bundled one is; Debian 12's `sqlite3` shell is 3.40: edit
//! `audit_entry` and `audit_batch` directly there).

use super::{State, StateError, GENESIS};

impl State {
    /// The view and its triggers. Created after the old `audit` table of schema 2 is gone.
    pub(super) fn audit_view() -> String {
        format!(
        "
CREATE VIEW IF NOT EXISTS audit AS
SELECT e.seq AS seq, b.at AS at, b.run_id AS run_id, b.rule AS rule, b.database AS database,
       b.tbl AS tbl, b.action AS action, e.key AS key, b.legal_basis AS legal_basis,
       lower(hex(e.hash)) AS hash,
       CASE WHEN e.seq = 1 THEN '{GENESIS}'
            ELSE COALESCE((SELECT lower(hex(p.hash)) FROM audit_entry p WHERE p.seq = e.seq - 1), '')
       END AS prev_hash,
       b.request AS request
FROM audit_entry e JOIN audit_batch b ON b.id = e.batch;
CREATE TRIGGER IF NOT EXISTS audit_delete INSTEAD OF DELETE ON audit BEGIN
    DELETE FROM audit_entry WHERE seq = OLD.seq;
END;
CREATE TRIGGER IF NOT EXISTS audit_insert INSTEAD OF INSERT ON audit BEGIN
    SELECT RAISE(ABORT, 'prev_hash is not stored: it is the hash of the entry before; insert without it, or with exactly that hash')
    WHERE NEW.prev_hash IS NOT NULL AND NEW.prev_hash IS NOT (CASE WHEN NEW.seq = 1 THEN '{GENESIS}' ELSE (SELECT lower(hex(p.hash)) FROM audit_entry p WHERE p.seq = NEW.seq - 1) END);
    INSERT INTO audit_batch (first_seq, last_seq, at, run_id, rule, database, tbl, action, legal_basis, request)
    VALUES (NEW.seq, NEW.seq, NEW.at, NEW.run_id, NEW.rule, NEW.database, NEW.tbl, NEW.action, NEW.legal_basis, NEW.request);
    INSERT INTO audit_entry (seq, batch, key, hash) VALUES (NEW.seq, last_insert_rowid(), NEW.key, unhex(NEW.hash));
END;
CREATE TRIGGER IF NOT EXISTS audit_update INSTEAD OF UPDATE ON audit BEGIN
    SELECT RAISE(ABORT, 'prev_hash is not stored: it is the hash of the entry before; change that entry''s hash instead')
    WHERE NEW.prev_hash IS NOT OLD.prev_hash;
    INSERT INTO audit_batch (first_seq, last_seq, at, run_id, rule, database, tbl, action, legal_basis, request)
    VALUES (NEW.seq, NEW.seq, NEW.at, NEW.run_id, NEW.rule, NEW.database, NEW.tbl, NEW.action, NEW.legal_basis, NEW.request);
    UPDATE audit_entry SET seq = NEW.seq, batch = last_insert_rowid(), key = NEW.key, hash = unhex(NEW.hash) WHERE seq = OLD.seq;
END;
"
    )
    }

    /// Whether `audit` is still schema 2's table (a state database written before schema 3).
    pub(super) async fn has_old_audit_table(&self) -> Result<bool, StateError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit'",
        )
        .fetch_one(self.sqlite()?)
        .await?;
        Ok(n > 0)
    }

    /// Moves the entries of schema 2's `audit` table into the compact tables, in one
    /// transaction, and replaces the table with the view. Refuses (changing nothing) when the
    /// stored trail is not consistent as stored — a `prev_hash` that is not the hash before it,
    /// a hash that is not 64 lowercase hex digits — because the compact layout does not keep
    /// `prev_hash`, and the evidence of such a break would be lost.
    pub(super) async fn convert_trail(&self) -> Result<(), StateError> {
        let file = self.dir.join("state.db").display().to_string();
        let mut conn = self.sqlite()?.acquire().await?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        let bad: Option<i64> = sqlx::query_scalar(
            "SELECT a.seq FROM audit a LEFT JOIN audit p ON p.seq = a.seq - 1
         WHERE a.hash IS NOT lower(hex(unhex(a.hash))) OR length(a.hash) != 64
            OR a.prev_hash IS NOT (CASE WHEN a.seq = 1 THEN ?1 ELSE p.hash END)
         ORDER BY a.seq LIMIT 1",
        )
        .bind(GENESIS)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(seq) = bad {
            return Err(StateError::Io(format!(
            "{file}: the audit trail is not intact at entry {seq} (`retentiond audit verify` says why), so it is not converted to the new storage layout, which would lose the evidence; keep a copy of the state directory for your auditors, then restore state.db from a backup or run the previous release"
        )));
        }
        sqlx::raw_sql(
        "
INSERT INTO audit_batch (id, first_seq, last_seq, at, run_id, rule, database, tbl, action, legal_basis, request)
SELECT g.seq, g.seq, COALESCE(g.next_start, m.max_seq + 1) - 1, g.at, g.run_id, g.rule, g.database, g.tbl, g.action, g.legal_basis, g.request
FROM (
    SELECT s.*, LEAD(s.seq) OVER (ORDER BY s.seq) AS next_start FROM (
        SELECT a.*, COALESCE(LAG(a.at) OVER w IS a.at AND LAG(a.run_id) OVER w IS a.run_id
               AND LAG(a.rule) OVER w IS a.rule AND LAG(a.database) OVER w IS a.database
               AND LAG(a.tbl) OVER w IS a.tbl AND LAG(a.action) OVER w IS a.action
               AND LAG(a.legal_basis) OVER w IS a.legal_basis AND LAG(a.request) OVER w IS a.request, 0) AS same
        FROM audit a WINDOW w AS (ORDER BY a.seq)
    ) s WHERE NOT s.same
) g, (SELECT MAX(seq) AS max_seq FROM audit) m;
INSERT INTO audit_entry (seq, batch, key, hash)
SELECT a.seq, (SELECT MAX(b.id) FROM audit_batch b WHERE b.id <= a.seq), a.key, unhex(a.hash) FROM audit a ORDER BY a.seq;
DROP TABLE audit;
",
    )
    .execute(&mut *tx)
    .await?;
        sqlx::raw_sql(&Self::audit_view()).execute(&mut *tx).await?;
        let moved: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM audit_entry), (SELECT COUNT(*) FROM audit_batch)",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            entries = moved.0,
            batches = moved.1,
            "audit trail converted to state schema 3 (shared fields once per batch, binary hashes)"
        );
        Ok(())
    }
}

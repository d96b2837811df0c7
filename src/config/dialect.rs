//! Which SQL dialect a database speaks: known from its URL, needed by the config (to parse
//! each `filter` in its database's own SQL) and by everything that writes SQL.

/// Which SQL dialect a database speaks, parsed once from its URL scheme. The one type for
/// "which engine" everywhere: the SQL each dialect needs is written in `db::dialect` (an
/// inherent `impl Dialect` there), so nothing outside `db` tests the engine — except
/// `config::filter`, which must read an operator's `filter` with the grammar of the database
/// it will run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `mysql://` or `mariadb://`.
    MySql,
    /// `sqlite://PATH`.
    Sqlite,
}

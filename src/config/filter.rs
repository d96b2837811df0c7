//! A rule's or hold's `filter`: operator SQL that retentiond splices into its own `WHERE`
//! clause, between its own parentheses and next to the conditions that keep held records
//! safe. Text that is checked but sent as written can close those parentheses, comment out
//! the rest of the statement or end it; so a filter is parsed with the grammar of its
//! database (sqlparser's PostgreSQL, MySQL or SQLite dialect), must be exactly one
//! expression, and what is sent is that expression as sqlparser writes it back, never the
//! text as written.
//!
//! The written-back SQL is checked again, independently of sqlparser: it must parse back to
//! the same expression, and a scan that splits it the way the database's own lexer does must
//! find every quote closed, every parenthesis matched, and no `;` or comment outside the
//! literals. Backslashes inside quotes are refused for PostgreSQL and MySQL/MariaDB: whether
//! they escape depends on server settings (`standard_conforming_strings`,
//! `NO_BACKSLASH_ESCAPES`), so where such a string ends cannot be known here.
//!
//! sqlparser walks its syntax tree recursively (comparing, visiting, dropping), so the work
//! runs on a thread of its own with a large stack, and the text is bounded in length.

use super::dialect::Dialect;
use sqlparser::ast::{Expr, Query, Value, ValueWithSpan, Visit, Visitor};
use sqlparser::dialect::{Dialect as SqlDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::{Parser, ParserError, ParserOptions};
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use std::fmt;
use std::ops::{ControlFlow, Deref};

/// The longest filter accepted, in characters. A filter is one condition; this bounds the
/// depth of its syntax tree (and so the stack it needs) and the time spent reading it.
pub const MAX_FILTER_CHARS: usize = 10_000;

/// The stack of the thread that parses a filter: ample for the deepest tree that
/// [`MAX_FILTER_CHARS`] allows (about 2.5 KB per level in a debug build). Only the part
/// that is used is ever backed by memory.
const PARSE_STACK_BYTES: usize = 64 << 20;

/// The example every message ends with: what a good filter looks like.
const EXAMPLE: &str = "write a single condition such as decision = 'rejected'";

/// A validated `filter`: exactly one SQL condition in its database's dialect, without
/// subqueries or placeholders, kept as sqlparser re-rendered it. Only [`Filter::sql`] ever
/// reaches a database, so nothing the operator typed outside the parsed expression (a
/// comment, a `;`, a stray parenthesis) can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    sql: String,
    dialect: Dialect,
}

impl Filter {
    /// Parses `text` as one condition in `dialect`'s SQL, or says what is wrong with it and
    /// what to write instead.
    pub fn parse(text: &str, dialect: Dialect) -> Result<Filter, String> {
        if text.trim().is_empty() {
            return Err(format!("is empty; {EXAMPLE}, or remove the key"));
        }
        let chars = text.chars().count();
        if chars > MAX_FILTER_CHARS {
            return Err(format!(
                "is {chars} characters long, more than the {MAX_FILTER_CHARS} a filter may \
                 have; {EXAMPLE} (a long list of keys belongs in a column or table of its own)"
            ));
        }
        let sql = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("filter-parse".into())
                .stack_size(PARSE_STACK_BYTES)
                .spawn_scoped(scope, || render(text, dialect))
                .map_err(|e| format!("could not be checked (no thread to parse it in: {e})"))?
                .join()
                .unwrap_or_else(|_| {
                    Err(format!(
                        "could not be read (the SQL parser failed on it); {EXAMPLE}"
                    ))
                })
        })?;
        Ok(Filter { sql, dialect })
    }

    /// The condition as sent to the database: re-rendered from its syntax tree, to be put
    /// between parentheses by the caller.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The dialect it was parsed in (that of its rule's or hold's database).
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

/// Shows the SQL that is sent (`holds` prints it), not the text as written.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql)
    }
}

/// A filter reads as its re-rendered SQL wherever text is expected, so no code path that
/// takes a `&str` can reach the text as written.
impl Deref for Filter {
    type Target = str;

    fn deref(&self) -> &str {
        &self.sql
    }
}

/// sqlparser's grammar for `dialect`.
fn grammar(dialect: Dialect) -> &'static dyn SqlDialect {
    match dialect {
        Dialect::Postgres => &PostgreSqlDialect {},
        Dialect::MySql => &MySqlDialect {},
        Dialect::Sqlite => &SQLiteDialect {},
    }
}

/// Literals are kept as written (`'it''s'` stays `'it''s'`): re-rendered, each string then
/// ends exactly where the tokenizer said it did.
fn options() -> ParserOptions {
    ParserOptions::new().with_unescape(false)
}

/// Parses, checks and re-renders `text`; on success, the SQL to send.
fn render(text: &str, dialect: Dialect) -> Result<String, String> {
    let g = grammar(dialect);
    let expr = one_expression(text, g)?;
    if let ControlFlow::Break(why) = expr.visit(&mut Refused) {
        return Err(why);
    }
    let sql = expr.to_string();
    match one_expression(&sql, g) {
        Ok(again) if again == expr => {}
        _ => {
            return Err(format!(
                "cannot be re-written faithfully: retentiond would send `{sql}`, which does \
                 not read the same; {EXAMPLE} (and please report this filter)"
            ))
        }
    }
    lexically_contained(&sql, dialect)?;
    Ok(sql)
}

/// `text` as exactly one expression: no comment or `;` anywhere, nothing after it.
fn one_expression(text: &str, g: &dyn SqlDialect) -> Result<Expr, String> {
    let tokens = Tokenizer::new(g, text)
        .with_unescape(false)
        .tokenize_with_location()
        .map_err(|e| format!("is not one SQL condition ({e}); {EXAMPLE}"))?;
    for t in &tokens {
        match &t.token {
            Token::Whitespace(
                Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_),
            ) => {
                return Err(format!(
                    "contains a comment (at {}), which could hide the rest of retentiond's own \
                     condition; remove it and {EXAMPLE}",
                    where_in(t.span.start)
                ))
            }
            Token::SemiColon => {
                return Err(format!(
                    "contains ';' (at {}): a filter is one condition, not a statement; {EXAMPLE}",
                    where_in(t.span.start)
                ))
            }
            _ => {}
        }
    }
    let mut parser = Parser::new(g)
        .with_options(options())
        .with_tokens_with_locations(tokens);
    let expr = parser.parse_expr().map_err(|e| {
        let detail = match e {
            ParserError::RecursionLimitExceeded => "it is nested too deeply".to_owned(),
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        };
        format!("is not one SQL condition ({detail}); {EXAMPLE}")
    })?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!(
            "is not one SQL condition: the condition ends before `{}` (at {}), so the rest \
             would be SQL of its own (an unbalanced ')', or a second condition without AND \
             or OR); {EXAMPLE}, joining several with AND or OR inside it",
            next.token,
            where_in(next.span.start)
        ));
    }
    Ok(expr)
}

/// "column C" of a one-line filter, "line L, column C" of a longer one.
fn where_in(at: sqlparser::tokenizer::Location) -> String {
    if at.line <= 1 {
        format!("column {}", at.column)
    } else {
        format!("line {}, column {} of the filter", at.line, at.column)
    }
}

/// Finds what a filter may not contain anywhere in its tree.
struct Refused;

impl Visitor for Refused {
    type Break = String;

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<String> {
        ControlFlow::Break(format!(
            "contains a subquery (SELECT …): a filter tests the columns of the record itself, \
             so that it cannot read or lock other tables while records are deleted; use \
             keep_while for a condition on another table, or {EXAMPLE}"
        ))
    }

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<String> {
        match &value.value {
            Value::Placeholder(p) => ControlFlow::Break(format!(
                "contains the placeholder {p}, which would take one of the values retentiond \
                 binds to its own query; write the value itself, e.g. decision = 'rejected'"
            )),
            _ => ControlFlow::Continue(()),
        }
    }
}

/// Splits `sql` the way `dialect`'s database lexes it, independently of sqlparser, and
/// refuses anything that could end retentiond's parentheses or statement: an unclosed
/// quote, an unmatched parenthesis, `;`, a comment marker, or a quote whose end depends on
/// server settings (a backslash inside quotes, a PostgreSQL `$` quote).
fn lexically_contained(sql: &str, dialect: Dialect) -> Result<(), String> {
    let quotes: &[char] = match dialect {
        Dialect::Postgres => &['\'', '"'],
        Dialect::MySql | Dialect::Sqlite => &['\'', '"', '`'],
    };
    let backslash_escapes = dialect != Dialect::Sqlite;
    let mut depth = 0usize;
    let mut chars = sql.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        if quotes.contains(&c) {
            loop {
                match chars.next() {
                    None => return Err(format!("has an unclosed {c} quote; {EXAMPLE}")),
                    Some('\\') if backslash_escapes => {
                        return Err(
                            "has a backslash inside quotes: whether it escapes the next \
                             character depends on the server's settings (PostgreSQL \
                             standard_conforming_strings, MySQL/MariaDB NO_BACKSLASH_ESCAPES), \
                             so where the text ends cannot be known; write a quote inside a \
                             string by doubling it ('O''Brien'), and for LIKE pick another \
                             escape character (code LIKE 'A!_%' ESCAPE '!')"
                                .into(),
                        )
                    }
                    Some(q) if q == c => {
                        if chars.peek() == Some(&c) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    Some(_) => {}
                }
            }
            prev = c;
            continue;
        }
        let next = chars.peek().copied();
        match (c, next) {
            (';', _) => {
                return Err(format!(
                    "contains ';': a filter is one condition, not a statement; {EXAMPLE}"
                ))
            }
            ('-', Some('-')) | ('/', Some('*')) | ('*', Some('/')) => {
                return Err(format!(
                    "would be sent with '{c}{}', which starts or ends a comment; put a space \
                     or parentheses between the two characters",
                    next.unwrap_or(' ')
                ))
            }
            ('#', _) if dialect == Dialect::MySql => {
                return Err(format!(
                    "contains '#', which starts a comment in MySQL/MariaDB; {EXAMPLE}"
                ))
            }
            ('$', _)
                if dialect == Dialect::Postgres
                    && !(prev.is_alphanumeric() || prev == '_' || prev == '$') =>
            {
                return Err(format!(
                    "has a '$' outside quotes, which PostgreSQL reads as a $$dollar-quoted$$ \
                     string or a $1 parameter; write text as 'text'; {EXAMPLE}"
                ))
            }
            ('\\', _) => {
                return Err(format!("has a backslash outside quotes; {EXAMPLE}"));
            }
            ('(', _) => depth += 1,
            (')', _) => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("closes a parenthesis it did not open; {EXAMPLE}"))?;
            }
            _ => {}
        }
        prev = c;
    }
    if depth > 0 {
        return Err(format!("leaves a parenthesis open; {EXAMPLE}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Dialect; 3] = [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];

    /// The attack reproduced on PostgreSQL: closes retentiond's parenthesis, so the legal
    /// hold's `AND NOT …` bound only the second half and 10 held rows were deleted.
    const PG_ATTACK: &str = "decision = 'rejected') OR (decision = 'rejected'";
    /// The attack reproduced on MariaDB (the TOML `'x\\''` is `'x\''`): the backslash hides
    /// a quote from a quote-counting check, and `-- '` comments out the hold, LIMIT and lock.
    const MARIADB_ATTACK: &str = r"decision = 'x\'' OR TRUE) -- '";

    fn sql(text: &str, d: Dialect) -> String {
        match Filter::parse(text, d) {
            Ok(f) => f.sql().to_owned(),
            Err(e) => panic!("{d:?} refused {text:?}: {e}"),
        }
    }

    fn refusal(text: &str, d: Dialect) -> String {
        match Filter::parse(text, d) {
            Ok(f) => panic!("{d:?} accepted {text:?} as {:?}", f.sql()),
            Err(e) => e,
        }
    }

    #[test]
    fn the_postgres_attack_is_refused_in_every_dialect() {
        for d in ALL {
            let e = refusal(PG_ATTACK, d);
            assert!(
                e.contains("is not one SQL condition") && e.contains("`)`"),
                "{d:?}: {e}"
            );
            assert!(
                e.contains("decision = 'rejected'"),
                "says what to write: {e}"
            );
        }
    }

    #[test]
    fn the_mariadb_attack_is_refused_where_a_backslash_escapes_and_harmless_elsewhere() {
        // MySQL/MariaDB read `\'` as a quote inside the string: the string ends after
        // `x'`, and `-- '` is a comment.
        let e = refusal(MARIADB_ATTACK, Dialect::MySql);
        assert!(e.contains("comment"), "{e}");
        // PostgreSQL reads the backslash literally (standard_conforming_strings = on), but
        // a server with it off would not: refused as ambiguous.
        let e = refusal(MARIADB_ATTACK, Dialect::Postgres);
        assert!(e.contains("backslash"), "{e}");
        // SQLite never escapes with a backslash: the whole tail is one string literal, and
        // the condition compares `decision` with it, nothing else.
        let sent = sql(MARIADB_ATTACK, Dialect::Sqlite);
        assert_eq!(sent, MARIADB_ATTACK);
        let expr = one_expression(&sent, grammar(Dialect::Sqlite)).unwrap();
        let Expr::BinaryOp { left, op, right } = expr else {
            panic!("not a comparison: {sent}")
        };
        assert_eq!(left.to_string(), "decision");
        assert_eq!(op, sqlparser::ast::BinaryOperator::Eq);
        assert!(
            matches!(&*right, Expr::Value(v) if v.value == Value::SingleQuotedString(r"x\'' OR TRUE) -- ".into())),
            "{right:?}"
        );
    }

    #[test]
    fn ordinary_conditions_are_accepted_and_rerendered() {
        for d in ALL {
            for (text, want) in [
                ("decision = 'rejected'", "decision = 'rejected'"),
                ("decision='rejected'", "decision = 'rejected'"),
                ("x in (1,2,3)", "x IN (1, 2, 3)"),
                ("kind in ('temp', 'trial')", "kind IN ('temp', 'trial')"),
                ("closed_on is null", "closed_on IS NULL"),
                ("closed_on is not null", "closed_on IS NOT NULL"),
                (
                    "decided_at between '2020-01-01' and '2021-01-01'",
                    "decided_at BETWEEN '2020-01-01' AND '2021-01-01'",
                ),
                (
                    "lower(email) like '%@example.be'",
                    "lower(email) LIKE '%@example.be'",
                ),
                ("decided_at < '2020-01-01'", "decided_at < '2020-01-01'"),
                ("id % 2 = 0", "id % 2 = 0"),
                (
                    "(decision = 'rejected' or decision = 'withdrawn') and not (id = 3)",
                    "(decision = 'rejected' OR decision = 'withdrawn') AND NOT (id = 3)",
                ),
                (
                    "note = 'a;b -- c /* d */ # e )'",
                    "note = 'a;b -- c /* d */ # e )'",
                ),
                ("name = 'O''Brien'", "name = 'O''Brien'"),
                ("code LIKE 'A!_%' ESCAPE '!'", "code LIKE 'A!_%' ESCAPE '!'"),
            ] {
                assert_eq!(sql(text, d), want, "{d:?}");
            }
        }
        assert_eq!(
            sql("decided_at < DATE '2020-01-01'", Dialect::Postgres),
            "decided_at < DATE '2020-01-01'"
        );
        assert_eq!(
            sql("decided_at < now() - interval '1 year'", Dialect::Postgres),
            "decided_at < now() - INTERVAL '1 year'"
        );
        assert_eq!(
            sql("decided_at < NOW() - INTERVAL 1 YEAR", Dialect::MySql),
            "decided_at < NOW() - INTERVAL 1 YEAR"
        );
        assert_eq!(
            sql("decided_at < date('now', '-1 year')", Dialect::Sqlite),
            "decided_at < date('now', '-1 year')"
        );
        assert_eq!(
            sql("\"Decision\" = 'x'", Dialect::Postgres),
            "\"Decision\" = 'x'"
        );
        assert_eq!(sql("`Decision` = 'x'", Dialect::MySql), "`Decision` = 'x'");
        // SQLite has no backslash escapes: a backslash is an ordinary character there.
        assert_eq!(
            sql(r"path LIKE 'C:\%'", Dialect::Sqlite),
            r"path LIKE 'C:\%'"
        );
    }

    #[test]
    fn anything_but_one_condition_is_refused_with_what_to_do() {
        for d in ALL {
            for (text, says) in [
                ("", "is empty"),
                ("   \n", "is empty"),
                ("1; DROP TABLE x", "';'"),
                ("decision = 'rejected';", "';'"),
                ("a = 1 -- x", "comment"),
                ("a = 1 /* x */", "comment"),
                ("a = 1) OR (1 = 1", "is not one SQL condition"),
                ("(a = 1", "is not one SQL condition"),
                ("a = 1 b = 2", "is not one SQL condition"),
                ("a = 1, b = 2", "is not one SQL condition"),
                ("x = 'open", "is not one SQL condition"),
                ("id IN (SELECT id FROM t)", "subquery"),
                ("EXISTS (SELECT 1 FROM t)", "subquery"),
                ("NOT EXISTS (SELECT 1)", "subquery"),
                ("(SELECT max(id) FROM t) = id", "subquery"),
                ("lower((SELECT 'a')) = 'a'", "subquery"),
                ("DELETE FROM t", "is not one SQL condition"),
            ] {
                let e = refusal(text, d);
                assert!(e.contains(says), "{d:?} {text:?}: {e}");
                assert!(
                    e.contains("write") || e.contains("remove") || e.contains("use"),
                    "{d:?} {text:?} says what to do: {e}"
                );
            }
        }
        assert!(refusal("x = ANY(SELECT id FROM t)", Dialect::Postgres).contains("subquery"));
        assert!(refusal("a = 1 # x", Dialect::MySql).contains("comment"));
        assert!(refusal("decision = ?", Dialect::MySql).contains("placeholder"));
        assert!(refusal("decision = ?", Dialect::Sqlite).contains("placeholder"));
        assert!(refusal("decision = :d", Dialect::Sqlite).contains("placeholder"));
        assert!(refusal("decision = $1", Dialect::Postgres).contains("placeholder"));
        assert!(refusal("decision = $$x$$", Dialect::Postgres).contains('$'));
        assert!(refusal(r"code LIKE 'A\_%'", Dialect::MySql).contains("backslash"));
        assert!(refusal(r"code = E'a\'b'", Dialect::Postgres).contains("backslash"));
        assert!(refusal(r#"code = "a\"b""#, Dialect::MySql).contains("backslash"));
        let long = format!("id IN ({})", vec!["1"; MAX_FILTER_CHARS / 2].join(","));
        assert!(refusal(&long, Dialect::Postgres).contains("characters long"));
    }

    #[test]
    fn an_error_points_at_where_the_condition_ends() {
        let e = refusal("decision = 'rejected') OR (1 = 1", Dialect::Postgres);
        assert!(e.contains("column 22"), "{e}");
        let e = refusal("decision = 'rejected'\n  OR 1 = 1)", Dialect::Postgres);
        assert!(e.contains("line 2, column 11 of the filter"), "{e}");
    }

    #[test]
    fn deep_conditions_within_the_limit_neither_overflow_nor_hang() {
        let ors = vec!["a = 1"; MAX_FILTER_CHARS / 10].join(" OR ");
        let sums = format!("{} = 1", vec!["1"; MAX_FILTER_CHARS / 2 - 4].join("+"));
        let casts = format!("a{} = 1", "::int".repeat(MAX_FILTER_CHARS / 5 - 2));
        for (text, d) in [
            (&ors, Dialect::MySql),
            (&sums, Dialect::Sqlite),
            (&casts, Dialect::Postgres),
        ] {
            let started = std::time::Instant::now();
            let f = Filter::parse(text, d).unwrap_or_else(|e| panic!("{e}"));
            assert!(f.sql().len() >= text.len() / 2);
            assert!(started.elapsed() < std::time::Duration::from_secs(20));
        }
        // Nested parentheses hit sqlparser's recursion limit: refused, not a crash.
        let nested = format!("{}a = 1{}", "(".repeat(500), ")".repeat(500));
        assert!(refusal(&nested, Dialect::Postgres).contains("nested too deeply"));
    }

    #[test]
    fn a_filter_reads_as_its_rendered_sql() {
        let f = Filter::parse("decision  in ('a','b')", Dialect::Sqlite).unwrap();
        assert_eq!(f.to_string(), "decision IN ('a', 'b')");
        assert_eq!(&*f, "decision IN ('a', 'b')");
        assert_eq!(f.dialect(), Dialect::Sqlite);
    }

    #[test]
    fn the_lexical_check_refuses_what_could_leave_the_parentheses() {
        for d in ALL {
            for bad in [
                "a = 'x", "a = 1)", "(a = 1", "a = 1; b", "a --1", "a /* b", "a */ b", r"a \ b",
            ] {
                assert!(lexically_contained(bad, d).is_err(), "{d:?} {bad:?}");
            }
            for good in [
                "a = 'x)'",
                "a = 'it''s'",
                "(a) = ('-- ;')",
                "\"a\"\"b\" = 1",
            ] {
                assert!(lexically_contained(good, d).is_ok(), "{d:?} {good:?}");
            }
        }
        assert!(lexically_contained("a = 1 # b", Dialect::MySql).is_err());
        assert!(lexically_contained("a = 1 # b", Dialect::Postgres).is_ok());
        assert!(lexically_contained("a = `x)`", Dialect::MySql).is_ok());
        assert!(lexically_contained("a$b = 1", Dialect::Postgres).is_ok());
        assert!(lexically_contained("a = $$x$$", Dialect::Postgres).is_err());
        assert!(lexically_contained(r"a = 'x\'", Dialect::Sqlite).is_ok());
        assert!(lexically_contained(r"a = 'x\'", Dialect::MySql).is_err());
    }

    /// A test oracle written apart from the code under test: strips the quoted parts of
    /// `sql` (doubled quotes stay inside; SQLite has no backslash escapes, and the other two
    /// must have no backslash inside quotes) and returns the rest, or `None` if a quote is
    /// left open.
    fn outside_literals(sql: &str, d: Dialect) -> Option<String> {
        let quotes = if d == Dialect::Postgres {
            "'\""
        } else {
            "'\"`"
        };
        let mut out = String::new();
        let mut open: Option<char> = None;
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            match open {
                Some(q) if c == q && chars.peek() == Some(&q) => {
                    chars.next();
                }
                Some(q) if c == q => {
                    open = None;
                    out.push(' ');
                }
                Some(_) => assert!(c != '\\' || d == Dialect::Sqlite, "backslash in {sql}"),
                None if quotes.contains(c) => open = Some(c),
                None => out.push(c),
            }
        }
        open.is_none().then_some(out)
    }

    /// Checks what must hold of every accepted filter: the rendered SQL parses back to the
    /// same expression (and renders to itself), and outside its literals it has balanced
    /// parentheses and no `;` or comment marker.
    fn holds_for_accepted(text: &str, d: Dialect) -> Result<(), TestCaseError> {
        let Ok(f) = Filter::parse(text, d) else {
            return Ok(());
        };
        let g = grammar(d);
        let original = one_expression(text, g).map_err(TestCaseError::fail)?;
        let again = one_expression(f.sql(), g).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&original, &again, "{:?} → {:?}", text, f.sql());
        let rendered_again = Filter::parse(f.sql(), d);
        prop_assert_eq!(rendered_again.as_ref(), Ok(&f));
        let rest = outside_literals(f.sql(), d);
        prop_assert!(rest.is_some(), "an open quote in {:?}", f.sql());
        let rest = rest.unwrap_or_default();
        for marker in [";", "--", "/*", "*/"] {
            prop_assert!(!rest.contains(marker), "{marker} in {:?}", f.sql());
        }
        if d == Dialect::MySql {
            prop_assert!(!rest.contains('#'), "# in {:?}", f.sql());
        }
        let mut depth = 0i64;
        for c in rest.chars() {
            depth += match c {
                '(' => 1,
                ')' => -1,
                _ => 0,
            };
            prop_assert!(depth >= 0, "')' closes too much in {:?}", f.sql());
        }
        prop_assert_eq!(depth, 0, "'(' left open in {:?}", f.sql());
        Ok(())
    }

    /// SQL-like text: words, literals, operators and the characters attacks are made of,
    /// glued together with or without spaces.
    fn sqlish() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "a", "decision", "1", "0.5", "'x'", "'it''s'", "'a;b'", "'--'", "\"c\"", "`c`", "=",
            "<>", "<", "-", "+", "*", "/", "%", "||", "::", "(", ")", ",", "AND", "OR", "NOT",
            "IN", "IS", "NULL", "TRUE", "LIKE", "BETWEEN", "SELECT", "FROM", "EXISTS", "lower(",
            "DATE", "INTERVAL", "CASE", "WHEN", "THEN", "ELSE", "END", "'", "\"", "`", "\\", "\\'",
            ";", "--", "-- ", "/*", "*/", "#", "$", "$1", "?", ":x", "@x", "$$", "E'", "\n", "[",
            "]",
        ]);
        (prop::collection::vec(piece, 0..16), any::<bool>())
            .prop_map(|(v, spaced)| v.join(if spaced { " " } else { "" }))
    }

    /// Valid conditions built from the grammar most filters use, with literals that hold
    /// the characters attacks are made of.
    fn condition() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            prop::sample::select(vec!["a", "decision", "closed_on", "\"Kind\"", "`k`"])
                .prop_map(String::from),
            (0u32..1000).prop_map(|n| n.to_string()),
            "[a-z;()#*/\\-]{0,6}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
            Just("'it''s'".to_owned()),
            Just("NULL".to_owned()),
        ];
        leaf.prop_recursive(4, 24, 3, |inner| {
            let op = prop::sample::select(vec![
                "=", "<>", "<", ">=", "+", "-", "*", "AND", "OR", "LIKE",
            ]);
            prop_oneof![
                (inner.clone(), op.clone(), inner.clone())
                    .prop_map(|(a, o, b)| format!("{a} {o} {b}")),
                (inner.clone(), op, inner.clone()).prop_map(|(a, o, b)| format!("({a} {o} {b})")),
                inner.clone().prop_map(|a| format!("NOT ({a})")),
                inner.clone().prop_map(|a| format!("{a} IS NOT NULL")),
                inner.clone().prop_map(|a| format!("lower({a})")),
                (inner.clone(), inner.clone(), inner.clone())
                    .prop_map(|(a, b, c)| format!("{a} IN ({b}, {c})")),
                (inner.clone(), inner.clone(), inner.clone())
                    .prop_map(|(a, b, c)| format!("{a} BETWEEN ({b}) AND ({c})")),
                (inner.clone(), inner.clone(), inner)
                    .prop_map(|(a, b, c)| format!("CASE WHEN {a} THEN {b} ELSE {c} END")),
            ]
        })
    }

    /// A valid condition with an attack's piece put in at some character.
    fn tampered() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            ")",
            "(",
            "'",
            "\\'",
            "\\",
            "--",
            "-- ",
            "/*",
            "*/",
            "#",
            ";",
            ") OR (",
            "' OR '",
            ") OR TRUE -- ",
            "\"",
            "`",
            "$$",
            "?",
            "$1",
            "\n",
        ]);
        (condition(), any::<prop::sample::Index>(), piece).prop_map(|(c, at, p)| {
            let cut = at.index(c.len() + 1);
            let cut = (0..=cut)
                .rev()
                .find(|i| c.is_char_boundary(*i))
                .unwrap_or(0);
            format!("{}{p}{}", &c[..cut], &c[cut..])
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn conditions_are_parsed_or_refused_and_accepted_sql_stays_contained(text in condition()) {
            for d in ALL {
                holds_for_accepted(&text, d)?;
            }
        }

        #[test]
        fn tampered_conditions_are_refused_or_stay_contained(text in tampered()) {
            for d in ALL {
                holds_for_accepted(&text, d)?;
            }
        }

        #[test]
        fn any_text_is_parsed_or_refused_and_accepted_sql_stays_contained(text in "\\PC{0,200}") {
            for d in ALL {
                holds_for_accepted(&text, d)?;
            }
        }

        #[test]
        fn sql_like_text_is_parsed_or_refused_and_accepted_sql_stays_contained(text in sqlish()) {
            for d in ALL {
                holds_for_accepted(&text, d)?;
            }
        }
    }
}

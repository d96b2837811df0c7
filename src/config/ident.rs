//! Checked SQL identifiers. Config names reach SQL only through [`Ident`], which admits
//! letters, digits and underscores alone, so no quoting trick can escape it; the dialect
//! still quotes it (reserved words such as `order` stay usable).

use std::fmt;

/// A SQL identifier that is safe to quote in any dialect: `[A-Za-z_][A-Za-z0-9_]*`, at
/// most 63 bytes (PostgreSQL's limit, the smallest of the three).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Parses `s`, or says why it is not an identifier retentiond will put into SQL.
    pub fn parse(s: &str) -> Result<Ident, String> {
        if s.is_empty() {
            return Err("is empty; write the column or table name".into());
        }
        if s.len() > 63 {
            return Err(format!("'{s}' is longer than 63 characters"));
        }
        let mut chars = s.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "'{s}' is not a plain SQL identifier: use letters, digits and underscores only, \
                 starting with a letter or underscore (no quotes, spaces, dots or semicolons)"
            ));
        }
        Ok(Ident(s.to_owned()))
    }

    /// The bare name, for messages and catalog lookups (never spliced into SQL unquoted).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A table, optionally qualified by its schema (`hr.applicants`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    /// The schema (PostgreSQL) or database (MySQL); `None` means the connection's default.
    pub schema: Option<Ident>,
    /// The table itself.
    pub name: Ident,
}

impl TableName {
    /// Parses `table` or `schema.table`.
    pub fn parse(s: &str) -> Result<TableName, String> {
        match s.split_once('.') {
            Some((schema, name)) => Ok(TableName {
                schema: Some(Ident::parse(schema)?),
                name: Ident::parse(name)?,
            }),
            None => Ok(TableName {
                schema: None,
                name: Ident::parse(s)?,
            }),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_accepted() {
        assert_eq!(Ident::parse("decided_at").unwrap().as_str(), "decided_at");
        assert!(Ident::parse("_x9").is_ok());
        let t = TableName::parse("hr.applicants").unwrap();
        assert_eq!(t.schema.unwrap().as_str(), "hr");
    }

    #[test]
    fn names_that_could_escape_quoting_are_refused() {
        for bad in [
            "",
            "a\"b",
            "a`b",
            "a;drop",
            "a b",
            "9a",
            "a-b",
            "a'b",
            "a.b.c",
            "tab\u{e9}",
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Ident::parse(&"x".repeat(64)).is_err());
    }
}

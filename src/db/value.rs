//! Values bound to SQL placeholders, and record keys as read back. One small closed set of
//! types that every dialect can bind, so the engine never builds SQL with values in it.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use std::fmt;

/// A value to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A text.
    Text(String),
    /// A calendar date.
    Date(NaiveDate),
    /// Wall-clock time without zone.
    Naive(NaiveDateTime),
    /// An instant.
    Instant(DateTime<Utc>),
    /// A boolean, for a flag on a boolean column: PostgreSQL will not compare or store an
    /// integer or a text parameter in a `boolean` column without a cast.
    Bool(bool),
    /// PostgreSQL only: an array of integers for `= ANY($n)`.
    IntArray(Vec<i64>),
    /// PostgreSQL only: an array of texts for `= ANY($n)`.
    TextArray(Vec<String>),
}

impl Value {
    /// Packs scalar keys into one PostgreSQL array value.
    pub fn array(keys: &[Value]) -> Value {
        if keys.iter().all(|k| matches!(k, Value::Int(_))) {
            Value::IntArray(
                keys.iter()
                    .filter_map(|k| match k {
                        Value::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect(),
            )
        } else {
            Value::TextArray(keys.iter().map(|k| k.to_string()).collect())
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Text(s) => f.write_str(s),
            Value::Date(d) => write!(f, "{d}"),
            Value::Naive(t) => write!(f, "{t}"),
            Value::Instant(t) => write!(f, "{}", t.to_rfc3339()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::IntArray(a) => write!(f, "{a:?}"),
            Value::TextArray(a) => write!(f, "{a:?}"),
        }
    }
}

/// A record's key, as it appears in the audit trail (as text) and as it is bound again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// An integer key.
    Int(i64),
    /// A text key.
    Text(String),
}

impl Key {
    /// The key as a bind value.
    pub fn value(&self) -> Value {
        match self {
            Key::Int(i) => Value::Int(*i),
            Key::Text(s) => Value::Text(s.clone()),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Text(s) => f.write_str(s),
        }
    }
}

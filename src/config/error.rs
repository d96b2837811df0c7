//! Config errors: each names the file, the line and the key, and says what to do.

use std::fmt;
use std::path::PathBuf;

/// One problem in the config file, pinned to a line and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line number (0 when the file could not be read at all).
    pub line: usize,
    /// The key, as a sysadmin would search for it: `rule "x" → expires.after`.
    pub key: String,
    /// What is wrong and, when possible, what to write instead.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file.display(),
                self.line,
                self.key,
                self.message
            )
        }
    }
}

/// All the problems found in one config file. Loading reports every problem it can find
/// at once, so that a sysadmin fixes the file in one go rather than one error per try.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// Never empty.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "invalid config ({n} problem{}); nothing was touched:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// Turns byte offsets into 1-based line numbers for one source text.
#[derive(Debug, Clone)]
pub struct Lines {
    file: PathBuf,
    starts: Vec<usize>,
}

impl Lines {
    /// Indexes the line starts of `source`, read from `file`.
    pub fn new(file: PathBuf, source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Lines { file, starts }
    }

    /// The 1-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    /// A problem at byte `offset` under `key`.
    pub fn problem(
        &self,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigProblem {
        ConfigProblem {
            file: self.file.clone(),
            line: self.line_of(offset),
            key: key.into(),
            message: message.into(),
        }
    }

    /// The config file these lines belong to.
    pub fn file(&self) -> &std::path::Path {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_lines() {
        let l = Lines::new("x.toml".into(), "a\nbb\n\nc");
        assert_eq!(l.line_of(0), 1);
        assert_eq!(l.line_of(1), 1);
        assert_eq!(l.line_of(2), 2);
        assert_eq!(l.line_of(5), 3);
        assert_eq!(l.line_of(6), 4);
    }
}

//! Exit statuses: fixed by the product's interface (PRODUCT.md).

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success,
    /// 1: a runtime failure (a rule failed, a database unreachable, the trail broken).
    Failure,
    /// 2: bad command line.
    Usage,
    /// 78: invalid config; nothing was touched.
    Config,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Config => 78,
        }
    }
}

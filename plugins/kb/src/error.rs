//! The crate's error type: what can go wrong loading or indexing a knowledge base.
//!
//! Content problems are collected, not reported one at a time: an editor fixing a knowledge
//! base wants every `file:line` at once, as `kefu check` does for flows.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a knowledge-base file, at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file at fault (relative to the knowledge-base directory when loaded from one).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    /// What is wrong, in words an editor understands.
    pub message: String,
}

impl Problem {
    /// A problem at `file:line`.
    pub fn new(file: &Path, line: usize, message: impl Into<String>) -> Problem {
        Problem {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// Why a knowledge base could not be loaded or searched.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// What we tried to read.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The content has problems; every one found is listed.
    #[error("{}", list(problems))]
    Invalid {
        /// Each problem with its position.
        problems: Vec<Problem>,
    },
    /// The search index could not be built (a tantivy failure, not a content problem).
    #[error("search index: {what}: {source}")]
    Index {
        /// The step that failed.
        what: &'static str,
        /// tantivy's error.
        source: tantivy::TantivyError,
    },
}

fn list(problems: &[Problem]) -> String {
    let mut s = format!(
        "the knowledge base has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str("\n  ");
        s.push_str(&p.to_string());
    }
    s
}

impl KbError {
    pub(crate) fn index(what: &'static str) -> impl FnOnce(tantivy::TantivyError) -> KbError {
        move |source| KbError::Index { what, source }
    }
}

/// The crate's result type.
pub type Result<T, E = KbError> = std::result::Result<T, E>;

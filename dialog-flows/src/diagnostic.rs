//! Load-time diagnostics: one [`Diagnostic`] per problem found in a bot's YAML files.
//!
//! Invariants: `line` and `col` are 1-based and count Unicode scalar values (what editors
//! show), and always point at the offending key or value — never at the file start unless
//! the file itself is the problem. The loader collects every diagnostic it can instead of
//! stopping at the first, so a designer fixes a whole batch per `kefu check` run.

use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The bot cannot be loaded until this is fixed.
    Error,
    /// The bot loads, but this is probably a mistake (see [`crate::Bot::warnings`]).
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem in a bot's files, with the position of the offending key or value.
///
/// `Display` renders `file:line:col: error: message`, followed by an indented
/// `hint: ...` line when there is a hint — the format compilers use, so editors and
/// terminals turn it into a link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostic {
    /// The file the problem is in (as given to the loader: relative paths stay relative).
    pub file: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, one sentence without a trailing period.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.severity,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// A 1-based position inside one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
}

/// Collects the diagnostics of one load, tagging each with the file currently being read.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records an error at `pos` in `file`.
    pub(crate) fn error(
        &mut self,
        file: &Path,
        pos: Pos,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(file, pos, Severity::Error, message.into(), hint);
    }

    /// Records a warning at `pos` in `file`.
    pub(crate) fn warning(
        &mut self,
        file: &Path,
        pos: Pos,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(file, pos, Severity::Warning, message.into(), hint);
    }

    fn push(
        &mut self,
        file: &Path,
        pos: Pos,
        severity: Severity,
        message: String,
        hint: Option<String>,
    ) {
        self.items.push(Diagnostic {
            file: file.to_path_buf(),
            line: pos.line,
            col: pos.col,
            severity,
            message,
            hint,
        });
    }

    /// True when at least one error (not warning) was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// All diagnostics, sorted by file then position so output reads top to bottom.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items
            .sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        self.items
    }
}

/// Suggests the closest of `candidates` to `got` when it is a plausible typo.
///
/// Why: most unknown-key and undefined-name errors are typos (`promt`, `order_idd`), and
/// "did you mean" saves the designer a trip to the reference.
pub(crate) fn did_you_mean<'a>(
    got: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for cand in candidates {
        let d = edit_distance(got, cand);
        // Allow roughly one typo per three characters, at least one; a name that extends
        // or shortens another (`greeting` for `greet`) is also a likely slip.
        let limit = (cand.chars().count() / 3).max(1);
        let affix =
            got.len().min(cand.len()) >= 3 && (got.starts_with(cand) || cand.starts_with(got));
        if (d <= limit || affix) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Optimal-string-alignment distance over characters: Levenshtein plus adjacent
/// transpositions (`sya` -> `say` is one edit). Inputs are short names, so O(n·m) is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_position_and_indented_hint() {
        let d = Diagnostic {
            file: PathBuf::from("bots/shop/flows.yaml"),
            line: 3,
            col: 7,
            severity: Severity::Error,
            message: "unknown step kind `sya`".into(),
            hint: Some("did you mean `say`?".into()),
        };
        assert_eq!(
            d.to_string(),
            "bots/shop/flows.yaml:3:7: error: unknown step kind `sya`\n  hint: did you mean `say`?"
        );
    }

    #[test]
    fn suggestions_only_for_close_names() {
        assert_eq!(
            did_you_mean("promt", ["prompt", "reprompt"]).as_deref(),
            Some("did you mean `prompt`?")
        );
        assert_eq!(did_you_mean("xyz", ["prompt", "say"]), None);
        assert_eq!(
            did_you_mean("sya", ["say", "set"]).as_deref(),
            Some("did you mean `say`?")
        );
        assert_eq!(
            did_you_mean("greeting", ["greet"]).as_deref(),
            Some("did you mean `greet`?")
        );
    }
}

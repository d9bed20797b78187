//! Rendering test results for people: one line per test, then for each failure the
//! `file:line:col` of the expectation, the user's message, and expected vs actual — a line
//! diff for exact `bot:` texts — and a final `N passed, N failed` line.

use std::fmt::Write as _;

use super::{CaseResult, Failure, Summary};

/// The whole report.
pub(crate) fn render_summary(summary: &Summary) -> String {
    let mut out = String::new();
    for r in &summary.results {
        let status = if r.passed() { "ok  " } else { "FAIL" };
        let _ = writeln!(out, "{status} {} › {}", file_name(r), r.name);
    }
    let failed: Vec<&CaseResult> = summary.results.iter().filter(|r| !r.passed()).collect();
    for r in &failed {
        let _ = writeln!(out, "\n── {} › {}", file_name(r), r.name);
        for f in &r.failures {
            out.push_str(&render_failure(f));
        }
        if r.skipped_turns > 0 {
            let _ = writeln!(out, "  ({} later turn(s) not run)", r.skipped_turns);
        }
    }
    let _ = writeln!(
        out,
        "\n{} passed, {} failed",
        summary.passed(),
        summary.failed()
    );
    out
}

fn file_name(r: &CaseResult) -> String {
    r.file.file_name().map_or_else(
        || r.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// One failed expectation: where, what the user said, expected vs actual.
pub fn render_failure(f: &Failure) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {}:{}:{}: turn {}: `{}` failed",
        f.file.display(),
        f.pos.line,
        f.pos.col,
        f.turn,
        f.key
    );
    let _ = writeln!(out, "    user:     {}", f.user_text);
    if f.key == "bot" {
        let _ = writeln!(out, "    expected (-) vs actual (+):");
        for line in line_diff(&f.expected, &f.actual) {
            let _ = writeln!(out, "    {line}");
        }
    } else {
        let _ = writeln!(out, "    expected: {}", f.expected);
        let _ = writeln!(out, "    actual:   {}", f.actual);
    }
    out
}

/// A line diff of `expected` and `actual` (longest common subsequence of lines): `  ` for
/// common lines, `- ` for expected only, `+ ` for actual only. For a single changed line it
/// also marks the first differing character, which is what one hunts for in long replies.
fn line_diff(expected: &str, actual: &str) -> Vec<String> {
    let a: Vec<&str> = expected.split('\n').collect();
    let b: Vec<&str> = actual.split('\n').collect();
    // lcs[i][j]: length of the LCS of a[i..] and b[j..]. Replies are a few lines.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    if a.len() == 1 && b.len() == 1 && a[0] != b[0] {
        let at = a[0]
            .chars()
            .zip(b[0].chars())
            .take_while(|(x, y)| x == y)
            .count();
        out.push(format!("  (first difference at character {})", at + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        assert_eq!(
            line_diff("a\nb\nc", "a\nx\nc"),
            vec!["  a", "- b", "+ x", "  c"]
        );
        let one = line_diff("hello world", "hello there");
        assert_eq!(one[0], "- hello world");
        assert_eq!(one[1], "+ hello there");
        assert_eq!(one[2], "  (first difference at character 7)");
    }
}

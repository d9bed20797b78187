//! Synonym groups and query expansion.
//!
//! A knowledge base may ship `synonyms.txt`: one group per line, terms separated by commas
//! (`发票, fapiao, invoice, receipt`); `#` starts a comment. When a query mentions any term of a
//! group, the other terms are added to the BM25 query at a lower weight, so "can I get a
//! fapiao" finds the entry that only says "invoice".
//!
//! Matching is on the normalised query text rather than on its tokens: jieba may cut a Chinese
//! synonym differently inside a sentence than alone, and multi-word synonyms ("return
//! shipping") must match too. Latin terms must match whole words ("in" does not fire inside
//! "invoice"); Han terms match anywhere, as Chinese has no word boundaries.

use crate::analyze::{is_han, normalize};
use crate::{Problem, Source};

/// The synonym groups of one knowledge base.
#[derive(Debug, Clone, Default)]
pub struct Synonyms {
    /// Each group's normalised terms.
    groups: Vec<Vec<String>>,
}

impl Synonyms {
    /// Groups given directly (for tests and embedding).
    pub fn from_groups<I, G, S>(groups: I) -> Synonyms
    where
        I: IntoIterator<Item = G>,
        G: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let groups = groups
            .into_iter()
            .map(|g| {
                g.into_iter()
                    .map(|t| normalize(t.as_ref().trim()))
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|g| g.len() >= 2)
            .collect();
        Synonyms { groups }
    }

    /// Parses the `synonyms.txt` format; a line with fewer than two terms is a problem.
    pub(crate) fn parse(src: &str, file: &Source) -> (Synonyms, Vec<Problem>) {
        let mut groups = Vec::new();
        let mut problems = Vec::new();
        for (i, line) in src.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let terms: Vec<&str> = line
                .split([',', '，', '、', '|'])
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect();
            if terms.len() < 2 {
                problems.push(Problem::new(
                    &file.file,
                    i + 1,
                    "a synonym group needs at least two terms separated by commas",
                ));
                continue;
            }
            groups.push(terms);
        }
        (Synonyms::from_groups(groups), problems)
    }

    /// Adds the groups of `other`.
    pub(crate) fn extend(&mut self, other: Synonyms) {
        self.groups.extend(other.groups);
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True without any group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The terms to add to `query`: the other members of every group the query mentions, minus
    /// the terms it already contains.
    pub fn expand(&self, query: &str) -> Vec<String> {
        let q = normalize(query);
        let mut out: Vec<String> = Vec::new();
        for group in &self.groups {
            if group.iter().any(|t| mentions(&q, t)) {
                for t in group {
                    if !mentions(&q, t) && !out.contains(t) {
                        out.push(t.clone());
                    }
                }
            }
        }
        out
    }
}

/// Whether normalised `text` mentions normalised `term` (whole words for Latin edges).
fn mentions(text: &str, term: &str) -> bool {
    let wordy = |c: char| c.is_alphanumeric() && !is_han(c);
    text.match_indices(term).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + term.len()..].chars().next();
        let starts_wordy = term.chars().next().is_some_and(wordy);
        let ends_wordy = term.chars().next_back().is_some_and(wordy);
        let glued_before = starts_wordy && before.is_some_and(wordy);
        let glued_after = ends_wordy && after.is_some_and(wordy);
        !glued_before && !glued_after
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_whole_words_and_chinese_substrings() {
        let s = Synonyms::from_groups([vec!["发票", "fapiao", "invoice"], vec!["in", "inside"]]);
        let e = s.expand("Can I get a FAPIAO?");
        assert_eq!(e, vec!["发票".to_owned(), "invoice".to_owned()]);
        assert_eq!(s.expand("我要开发票"), vec!["fapiao", "invoice"]);
        assert!(s.expand("invoices please").is_empty(), "no partial words");
    }

    #[test]
    fn parse_reports_lines() {
        let src = Source {
            file: "synonyms.txt".into(),
            line: 1,
        };
        let (s, problems) = Synonyms::parse("# c\n退货, 退回，return\nlonely\n", &src);
        assert_eq!(s.len(), 1);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 3);
    }
}

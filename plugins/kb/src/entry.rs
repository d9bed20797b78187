//! One knowledge-base entry and where it came from.
//!
//! An entry is what the search returns: a canonical question, the other ways users ask it, the
//! answer, topic tags and a language. Every entry carries its [`Source`] (file and line) so that
//! an answer shown to a user can always be traced back to the file an editor has to fix.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The language of an entry. The analyser handles both in any text; the language is used to
/// filter (a Chinese conversation should not get an English answer) and for the per-language
/// defaults of the loaders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Chinese (Simplified or Traditional).
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Parses `zh`, `zh-CN`, `zh_TW`, `en`, `en-US`, ... (case-insensitive); `None` otherwise.
    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        let primary = s.split(['-', '_']).next().unwrap_or("");
        match primary {
            "zh" | "cn" | "chinese" => Some(Lang::Zh),
            "en" | "english" => Some(Lang::En),
            _ => None,
        }
    }

    /// Guesses the language of a text: Chinese as soon as it holds any Han character, since
    /// Chinese support questions routinely mix in Latin words ("iPhone 能用吗").
    pub fn detect(text: &str) -> Lang {
        if text.chars().any(crate::analyze::is_han) {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    /// `zh` or `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an entry was defined.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// The file, relative to the knowledge-base directory when loaded from one.
    pub file: PathBuf,
    /// The 1-based line where the entry starts.
    pub line: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One question-and-answer pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unique within the knowledge base; flows and logs refer to it.
    pub id: String,
    /// The canonical question.
    pub question: String,
    /// Other ways users ask the same thing; searched like the question.
    #[serde(default)]
    pub phrasings: Vec<String>,
    /// The answer shown to the user.
    pub answer: String,
    /// Topic tags for filtering (`shipping`, `returns`); lower-case.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The entry's language.
    pub lang: Lang,
    /// Where it was defined.
    pub source: Source,
}

impl Entry {
    /// The question followed by its phrasings: every text a query is compared with.
    pub fn questions(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.question.as_str()).chain(self.phrasings.iter().map(String::as_str))
    }

    /// `file#id`, the citation flows show or log.
    pub fn citation(&self) -> String {
        format!("{}#{}", self.source.file.display(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_parse_and_detect() {
        assert_eq!(Lang::parse("zh-CN"), Some(Lang::Zh));
        assert_eq!(Lang::parse("EN_us"), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::detect("iPhone 能用吗"), Lang::Zh);
        assert_eq!(Lang::detect("can I get a fapiao"), Lang::En);
    }
}

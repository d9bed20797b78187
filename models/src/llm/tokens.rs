//! Counting tokens to fit a conversation into a model's context.
//!
//! Invariants: a [`TokenCounter`] may over-count but should never badly under-count, because an
//! under-count lets a prompt overflow the context; [`CharEstimate`] is deliberately
//! conservative (a CJK character is one token, other text one token per `bytes_per_token`
//! bytes, plus a per-message overhead) and the in-process back-end counts with the model's own
//! tokenizer instead.

/// Counts tokens of text, for windowing and budgets.
pub trait TokenCounter: Send + Sync {
    /// Tokens `text` takes.
    fn count(&self, text: &str) -> usize;

    /// Tokens one chat message takes: its text plus the chat template's framing.
    fn count_message(&self, text: &str) -> usize {
        self.count(text).saturating_add(4)
    }
}

/// A tokenizer-free, conservative estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CharEstimate {
    /// Bytes of non-CJK text per token. BPE vocabularies average about 4 bytes of English per
    /// token; 3 leaves a margin for digits, punctuation and rare words.
    pub bytes_per_token: f32,
}

impl Default for CharEstimate {
    fn default() -> Self {
        Self {
            bytes_per_token: 3.0,
        }
    }
}

impl TokenCounter for CharEstimate {
    fn count(&self, text: &str) -> usize {
        let mut cjk = 0usize;
        let mut other_bytes = 0usize;
        for c in text.chars() {
            if crate::is_cjk(c) {
                cjk += 1;
            } else {
                other_bytes += c.len_utf8();
            }
        }
        let per = if self.bytes_per_token.is_finite() && self.bytes_per_token >= 1.0 {
            self.bytes_per_token
        } else {
            1.0
        };
        // Precision loss is irrelevant at prompt sizes; the cast back saturates.
        let other = (other_bytes as f32 / per).ceil() as usize;
        cjk.saturating_add(other)
    }
}

/// Exact counts with a model's Hugging Face `tokenizer.json`, through the `tokenizers` crate:
/// for a remote model whose tokenizer file the operator has (`[llm.remote] tokenizer`), so the
/// conversation window is cut by real tokens instead of the conservative estimate.
pub struct HfTokenCounter {
    tokenizer: tokenizers::Tokenizer,
}

impl std::fmt::Debug for HfTokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenCounter")
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .finish()
    }
}

impl HfTokenCounter {
    /// Loads `tokenizer.json`; a missing or malformed file is an error naming the path.
    pub fn from_file(path: &std::path::Path) -> Result<Self, crate::llm::LlmError> {
        let tokenizer =
            tokenizers::Tokenizer::from_file(path).map_err(|e| crate::llm::LlmError::Config {
                backend: "tokenizer",
                field: "tokenizer",
                reason: format!("cannot load {}: {e}", path.display()),
            })?;
        Ok(Self { tokenizer })
    }

    /// The tokenizer's vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
}

impl TokenCounter for HfTokenCounter {
    fn count(&self, text: &str) -> usize {
        match self.tokenizer.encode(text, false) {
            Ok(encoding) => encoding.len(),
            // A tokenizer that refuses a text (a pathological pre-tokenizer pattern) must not
            // make the window under-count: fall back to the conservative estimate.
            Err(e) => {
                tracing::debug!(error = %e, "tokenizer failed; estimating");
                CharEstimate::default().count(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> HfTokenCounter {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_tokenizer.json");
        HfTokenCounter::from_file(&path).unwrap()
    }

    #[test]
    fn a_tokenizer_file_counts_like_the_python_library_that_made_it() {
        // Counts printed by the Python `tokenizers` package for the same file
        // (models/scripts/make_tiny_gguf.py --tokenizer-json, seed 0).
        let t = tiny();
        assert_eq!(t.vocab_size(), 400);
        assert_eq!(t.count("你好，我的订单到哪了？"), 19);
        assert_eq!(t.count("Where is my order A12345678?"), 18);
        assert_eq!(t.count(""), 0);
        assert_eq!(t.count_message("你好，我的订单到哪了？"), 23);
    }

    #[test]
    fn a_missing_tokenizer_file_is_a_clear_error() {
        let err = HfTokenCounter::from_file(std::path::Path::new("no/such/tokenizer.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no/such/tokenizer.json"), "{err}");
    }

    #[test]
    fn estimates_are_conservative_for_both_languages() {
        let c = CharEstimate::default();
        assert_eq!(c.count(""), 0);
        assert_eq!(c.count("你好世界"), 4);
        // "hello world" is 2 tokens in real vocabularies; the estimate says more, never less.
        assert!(c.count("hello world") >= 2);
        assert_eq!(c.count("abc"), 1);
        assert_eq!(c.count("abcd"), 2);
        assert_eq!(c.count_message("你好"), 6);
    }

    #[test]
    fn a_nonsense_ratio_falls_back_to_one_byte_per_token() {
        let c = CharEstimate {
            bytes_per_token: f32::NAN,
        };
        assert_eq!(c.count("abcd"), 4);
    }
}

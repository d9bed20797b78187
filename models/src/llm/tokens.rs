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

#[cfg(test)]
mod tests {
    use super::*;

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

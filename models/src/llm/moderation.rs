//! Output moderation: every answer is checked before any of it reaches a user.
//!
//! Two checks: a blocklist of words and phrases the operator never wants said, and a leak
//! check — planted secrets (canary strings, internal codes) and any run of
//! `leak_window_chars` consecutive characters of the system prompt. Texts are compared after
//! [`crate::normalize`] with whitespace removed, so spacing, case and full-width tricks do not
//! slip through.
//!
//! Invariants: a verdict's reason names the category, never the matched secret; streamed text
//! is released only up to [`Moderator::holdback_chars`] before its end, so a secret split over
//! two deltas is caught before its first half is sent.

use std::collections::HashSet;

use serde::Deserialize;

/// Settings of the moderator (`[llm.moderation]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModeratorConfig {
    /// Words and phrases that block an answer.
    pub blocklist: Vec<String>,
    /// Strings that must never appear in an answer (canaries, internal codes, keys).
    pub secrets: Vec<String>,
    /// Length of the system-prompt runs that count as a leak; 0 means the default (16).
    pub leak_window_chars: usize,
}

/// What the moderator decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModerationVerdict {
    /// The text may be sent.
    Allow,
    /// The text must not be sent.
    Block {
        /// Why (`blocklist`, `secret`, `system_prompt_leak`), never the matched text.
        reason: &'static str,
    },
}

/// The output moderator of one bot.
#[derive(Debug, Clone)]
pub struct Moderator {
    blocklist: Vec<String>,
    secrets: Vec<String>,
    prompt_windows: HashSet<String>,
    window: usize,
    holdback: usize,
}

const DEFAULT_LEAK_WINDOW: usize = 16;

fn squash(text: &str) -> String {
    crate::normalize(text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

impl Moderator {
    /// A moderator for `config`, guarding `system_prompt` against leaks.
    pub fn new(config: &ModeratorConfig, system_prompt: &str) -> Self {
        let window = if config.leak_window_chars == 0 {
            DEFAULT_LEAK_WINDOW
        } else {
            config.leak_window_chars
        };
        let clean = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|s| squash(s))
                .filter(|s| !s.is_empty())
                .collect()
        };
        let blocklist = clean(&config.blocklist);
        let secrets = clean(&config.secrets);
        let prompt: Vec<char> = squash(system_prompt).chars().collect();
        let prompt_windows = prompt
            .windows(window)
            .map(|w| w.iter().collect::<String>())
            .collect();
        let longest = blocklist
            .iter()
            .chain(&secrets)
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0);
        Self {
            blocklist,
            secrets,
            prompt_windows,
            window,
            // Raw text may carry whitespace that squashing removes: keep a generous margin.
            holdback: longest.max(window) * 2,
        }
    }

    /// Checks a whole text (or everything generated so far).
    pub fn check(&self, text: &str) -> ModerationVerdict {
        let text = squash(text);
        if self.secrets.iter().any(|s| text.contains(s.as_str())) {
            return ModerationVerdict::Block { reason: "secret" };
        }
        if self.blocklist.iter().any(|s| text.contains(s.as_str())) {
            return ModerationVerdict::Block {
                reason: "blocklist",
            };
        }
        if !self.prompt_windows.is_empty() {
            let chars: Vec<char> = text.chars().collect();
            let leaked = chars
                .windows(self.window)
                .any(|w| self.prompt_windows.contains(&w.iter().collect::<String>()));
            if leaked {
                return ModerationVerdict::Block {
                    reason: "system_prompt_leak",
                };
            }
        }
        ModerationVerdict::Allow
    }

    /// How many characters at the end of a streamed text to hold back until more arrives.
    pub fn holdback_chars(&self) -> usize {
        self.holdback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moderator() -> Moderator {
        Moderator::new(
            &ModeratorConfig {
                blocklist: vec!["傻瓜".into(), "free money".into()],
                secrets: vec!["CANARY-7f3a9".into()],
                leak_window_chars: 0,
            },
            "You are ShopBot. Internal discount code policy: never offer more than 5%.",
        )
    }

    #[test]
    fn allows_ordinary_answers() {
        let m = moderator();
        assert_eq!(
            m.check("您好，退货请在7天内申请。"),
            ModerationVerdict::Allow
        );
        assert_eq!(
            m.check("I am ShopBot, happy to help."),
            ModerationVerdict::Allow
        );
    }

    #[test]
    fn blocks_secrets_blocklist_and_prompt_leaks_despite_disguise() {
        let m = moderator();
        let block = |t: &str| match m.check(t) {
            ModerationVerdict::Block { reason } => reason,
            ModerationVerdict::Allow => "allowed",
        };
        assert_eq!(block("the code is canary-7F3A9"), "secret");
        assert_eq!(block("the code is ＣＡＮＡＲＹ－７ｆ３ａ９"), "secret");
        assert_eq!(block("你这个傻 瓜"), "blocklist");
        assert_eq!(block("FREE   MONEY!"), "blocklist");
        assert_eq!(
            block("My instructions say: internal discount code policy: never offer"),
            "system_prompt_leak"
        );
        assert!(m.holdback_chars() >= 16);
    }
}

//! Loader passes for `settings:` and `responses:` — bot-wide keys, each set at most once
//! across all files of a bot.
//!
//! Invariant: values are range-checked here (thresholds in 0..=1, `max_stack_depth` at most
//! [`MAX_STACK_DEPTH`](crate::model::MAX_STACK_DEPTH)), so the interpreter can trust them.

use std::path::Path;

use crate::load::{Loader, Origin, RESPONSE_KEYS};
use crate::model::Lang;
use crate::yaml::{self, Node};

impl Loader {
    /// Records a bot-wide key (in `settings`/`responses`) and reports one set twice.
    pub(crate) fn first_time(
        &mut self,
        section: &str,
        file: &Path,
        key_node: &Node,
        key: &str,
    ) -> bool {
        let seen = if section == "settings" {
            &mut self.settings_seen
        } else {
            &mut self.responses_seen
        };
        if let Some(first) = seen.get(key) {
            let hint = Some(first.describe());
            self.err(
                file,
                key_node,
                format!("`{section}.{key}` is set twice"),
                hint,
            );
            return false;
        }
        seen.insert(
            key.to_string(),
            Origin {
                file: file.to_path_buf(),
                pos: yaml::pos(key_node),
            },
        );
        true
    }

    pub(crate) fn settings_section(&mut self, file: &Path, node: &Node) {
        const KEYS: [&str; 7] = [
            "default_language",
            "languages",
            "max_fallbacks",
            "intent_threshold",
            "digression_threshold",
            "max_stack_depth",
            "max_call_depth",
        ];
        for (key, k, v) in self.map(file, node, "settings", Some(&KEYS)) {
            if !self.first_time("settings", file, k, &key) {
                continue;
            }
            match key.as_str() {
                "default_language" => {
                    if let Some(l) = self.lang(file, v) {
                        self.settings.default_language = l;
                    }
                }
                "languages" => match yaml::items(v) {
                    Some(items) if !items.is_empty() => {
                        let langs: Vec<Lang> =
                            items.iter().filter_map(|i| self.lang(file, i)).collect();
                        self.settings.languages = langs;
                    }
                    _ => self.err(
                        file,
                        v,
                        "`languages` must be a non-empty list such as [zh, en]",
                        None,
                    ),
                },
                "max_fallbacks" => {
                    if let Some(n) = self.int_in(file, v, "max_fallbacks", 1, 20) {
                        self.settings.max_fallbacks = n;
                    }
                }
                "max_stack_depth" => {
                    if let Some(n) = self.int_in(
                        file,
                        v,
                        "max_stack_depth",
                        0,
                        u64::from(crate::model::MAX_STACK_DEPTH),
                    ) {
                        self.settings.max_stack_depth = n;
                    }
                }
                "max_call_depth" => {
                    if let Some(n) = self.int_in(
                        file,
                        v,
                        "max_call_depth",
                        1,
                        u64::from(crate::model::MAX_CALL_DEPTH),
                    ) {
                        self.settings.max_call_depth = n;
                    }
                }
                "intent_threshold" | "digression_threshold" => match yaml::as_f64(v) {
                    #[allow(clippy::cast_possible_truncation)] // in 0..=1, f32 is plenty
                    Some(x) if (0.0..=1.0).contains(&x) => {
                        if key == "intent_threshold" {
                            self.settings.intent_threshold = x as f32;
                        } else {
                            self.settings.digression_threshold = x as f32;
                        }
                    }
                    _ => self.err(
                        file,
                        v,
                        format!("`{key}` must be a number between 0 and 1"),
                        None,
                    ),
                },
                _ => {}
            }
        }
    }

    pub(crate) fn lang(&mut self, file: &Path, node: &Node) -> Option<Lang> {
        let l = yaml::as_str(node).and_then(Lang::from_code);
        if l.is_none() {
            self.err(
                file,
                node,
                "unknown language",
                Some("use `zh` or `en`".into()),
            );
        }
        l
    }

    /// An integer in `lo..=hi`, converted to `u8` (all such settings fit).
    pub(crate) fn int_in(
        &mut self,
        file: &Path,
        node: &Node,
        what: &str,
        lo: u64,
        hi: u64,
    ) -> Option<u8> {
        match yaml::as_u64(node)
            .filter(|n| (lo..=hi).contains(n))
            .and_then(|n| u8::try_from(n).ok())
        {
            Some(n) => Some(n),
            None => {
                self.err(
                    file,
                    node,
                    format!("`{what}` must be a whole number from {lo} to {hi}"),
                    None,
                );
                None
            }
        }
    }

    pub(crate) fn responses_section(&mut self, file: &Path, node: &Node) {
        for (key, k, v) in self.map(file, node, "responses", Some(&RESPONSE_KEYS)) {
            if !self.first_time("responses", file, k, &key) {
                continue;
            }
            if let Some(t) = self.text(file, v, &format!("`responses.{key}`")) {
                self.responses.insert(key, t);
            }
        }
    }
}

//! Loader pass for texts: a plain template, a per-language map with optional per-channel
//! versions, or an A/B-tested text with one version per variant of a declared experiment.
//!
//! ```yaml
//! say: 您好                                      # every language
//! say: {zh: 您好, en: Hello}                     # per language
//! say:                                           # per language, shorter for SMS
//!   zh: 您好，欢迎光临……
//!   en: Hello and welcome ...
//!   channels:
//!     sms: {zh: 您好, en: Hi}
//! say:                                           # A/B test
//!   experiment: greeting_tone
//!   variants:
//!     formal: {zh: 您好, en: Good day}
//!     casual: {zh: 嗨, en: Hi}
//! ```
//!
//! Invariants on success: at least one language has a template; an A/B text names a
//! declared experiment and has exactly its variants.

use std::path::Path;

use crate::diagnostic::did_you_mean;
use crate::load::Loader;
use crate::model::{Lang, Localized, PerLang, Text, TextExperiment};
use crate::template::TemplateId;
use crate::yaml::{self, Node};

/// Channels with a length limit, in characters: the checker warns about longer versions.
pub(crate) const CHANNEL_LIMITS: [(&str, usize); 1] = [("sms", 140)];

const LOCALIZED_KEYS: [&str; 3] = ["zh", "en", "channels"];
const AB_KEYS: [&str; 2] = ["experiment", "variants"];

impl Loader {
    /// A reply text (see the module docs for the forms).
    pub(crate) fn text(&mut self, file: &Path, node: &Node, what: &str) -> Option<Text> {
        let is_ab = yaml::entries(node).is_some_and(|e| {
            e.iter()
                .any(|(k, _)| yaml::as_str(k).is_some_and(|k| AB_KEYS.contains(&k)))
        });
        if is_ab {
            return self.ab_text(file, node, what);
        }
        let base = self.localized(file, node, what, true)?;
        Some(Text {
            base,
            experiment: None,
        })
    }

    fn ab_text(&mut self, file: &Path, node: &Node, what: &str) -> Option<Text> {
        let entries = self.map(file, node, what, Some(&AB_KEYS));
        let get = |k: &str| entries.iter().find(|(n, _, _)| n == k).map(|(_, _, v)| *v);
        let (Some(exp_node), Some(variants_node)) = (get("experiment"), get("variants")) else {
            self.err(
                file,
                node,
                format!("an A/B-tested {what} needs both `experiment` and `variants`"),
                Some(
                    "e.g. {experiment: greeting_tone, variants: {formal: ..., casual: ...}}".into(),
                ),
            );
            return None;
        };
        if entries.len() < yaml::entries(node).map_or(0, |e| e.len()) {
            return None; // unknown keys next to `experiment` were reported by `map`
        }
        let name = self.string(file, exp_node, "`experiment`")?;
        let Some(declared) = self.experiments.get(&name).cloned() else {
            let hint = did_you_mean(&name, self.experiments.keys().map(String::as_str))
                .or_else(|| Some("declare it under `experiments:`".into()));
            self.err(
                file,
                exp_node,
                format!("undefined experiment `{name}`"),
                hint,
            );
            return None;
        };
        let mut variants: Vec<(String, Localized)> = Vec::new();
        let mut ok = true;
        for (variant, k, v) in self.map(file, variants_node, "`variants`", None) {
            if !declared.variants.iter().any(|(d, _)| *d == variant) {
                let hint =
                    did_you_mean(&variant, declared.variants.iter().map(|(d, _)| d.as_str()))
                        .or_else(|| {
                            let names: Vec<&str> =
                                declared.variants.iter().map(|(d, _)| d.as_str()).collect();
                            Some(format!("its variants are: {}", names.join(", ")))
                        });
                self.err(
                    file,
                    k,
                    format!("experiment `{name}` has no variant `{variant}`"),
                    hint,
                );
                ok = false;
                continue;
            }
            if yaml::entries(v).is_some_and(|e| {
                e.iter()
                    .any(|(k, _)| yaml::as_str(k).is_some_and(|k| AB_KEYS.contains(&k)))
            }) {
                self.err(file, v, "A/B texts cannot be nested", None);
                ok = false;
                continue;
            }
            match self.localized(file, v, what, true) {
                Some(l) => variants.push((variant, l)),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let missing: Vec<&str> = declared
            .variants
            .iter()
            .map(|(d, _)| d.as_str())
            .filter(|d| !variants.iter().any(|(v, _)| v == d))
            .collect();
        if !missing.is_empty() {
            self.err(
                file,
                variants_node,
                format!(
                    "{what} has no text for variant `{}` of experiment `{name}`",
                    missing.join("`, `")
                ),
                Some("every variant of the experiment needs its own text".into()),
            );
            return None;
        }
        // Declaration order, so the base text (for tooling) is always the first variant.
        variants.sort_by_key(|(v, _)| declared.variants.iter().position(|(d, _)| d == v));
        let base = variants.first().map(|(_, l)| l.clone()).unwrap_or_default();
        Some(Text {
            base,
            experiment: Some(Box::new(TextExperiment { name, variants })),
        })
    }

    /// A per-language text, with `channels:` versions when `with_channels`.
    fn localized(
        &mut self,
        file: &Path,
        node: &Node,
        what: &str,
        with_channels: bool,
    ) -> Option<Localized> {
        let mut out = Localized::default();
        if yaml::entries(node).is_none() {
            let src = self.string(file, node, what)?;
            let id = self.compile_text(file, node, &src)?;
            out.by_lang = PerLang {
                zh: Some(id),
                en: Some(id),
            };
            return Some(out);
        }
        let keys: &[&str] = if with_channels {
            &LOCALIZED_KEYS
        } else {
            &LOCALIZED_KEYS[..2]
        };
        let entries = self.map(file, node, what, Some(keys));
        if entries.is_empty() {
            // Bad keys were reported by `map`; an empty `{}` needs its own message.
            if yaml::entries(node).is_some_and(|e| e.is_empty()) {
                self.err(
                    file,
                    node,
                    format!("{what} has no text in any language"),
                    None,
                );
            }
            return None;
        }
        for (key, _, v) in entries {
            if key == "channels" {
                out.channels = self.channels(file, v, what);
                continue;
            }
            let Some(lang) = Lang::from_code(&key) else {
                continue;
            };
            let Some(src) = self.string(file, v, what) else {
                continue;
            };
            *out.by_lang.get_mut(lang) = self.compile_text(file, v, &src);
        }
        if Lang::ALL.iter().all(|l| out.by_lang.get(*l).is_none()) {
            if !out.channels.is_empty() {
                self.err(
                    file,
                    node,
                    format!("{what} has channel versions but no main text"),
                    Some("add `zh:`/`en:` next to `channels:`".into()),
                );
            }
            return None;
        }
        let missing: Vec<&str> = self
            .settings
            .languages
            .iter()
            .filter(|l| out.by_lang.get(**l).is_none())
            .map(|l| l.as_str())
            .collect();
        if !missing.is_empty() {
            self.diags.warning(
                file,
                yaml::pos(node),
                format!("{what} has no `{}` text", missing.join("`, `")),
                Some(format!(
                    "the `{}` text is used instead",
                    self.settings.default_language
                )),
            );
        }
        Some(out)
    }

    /// `channels: {sms: <text>, ...}`, warning about versions over a channel's limit.
    fn channels(
        &mut self,
        file: &Path,
        node: &Node,
        what: &str,
    ) -> Vec<(String, PerLang<Option<TemplateId>>)> {
        let mut out = Vec::new();
        for (channel, k, v) in self.map(file, node, "`channels`", None) {
            if !self.check_name(file, k, &channel, "channel") {
                continue;
            }
            let Some(version) = self.localized(file, v, what, false) else {
                continue;
            };
            if let Some((_, limit)) = CHANNEL_LIMITS.iter().find(|(c, _)| *c == channel) {
                for lang in Lang::ALL {
                    let Some(id) = *version.by_lang.get(lang) else {
                        continue;
                    };
                    let chars = fixed_chars(self.templates.source(id.0));
                    if chars > *limit {
                        let at = yaml::entries(v)
                            .and_then(|e| {
                                e.into_iter()
                                    .find(|(k, _)| yaml::as_str(k) == Some(lang.as_str()))
                                    .map(|(_, n)| yaml::pos(n))
                            })
                            .unwrap_or_else(|| yaml::pos(v));
                        self.diags.warning(
                            file,
                            at,
                            format!(
                                "the `{channel}` version ({lang}) has {chars} characters besides template values; `{channel}` replies should have at most {limit}"
                            ),
                            Some("shorten it: longer SMS are split and cost more".into()),
                        );
                    }
                }
            }
            out.push((channel, version.by_lang));
        }
        out
    }

    pub(crate) fn compile_text(
        &mut self,
        file: &Path,
        node: &Node,
        src: &str,
    ) -> Option<TemplateId> {
        match self.templates.compile_text(src) {
            Ok(id) => {
                self.check_template_vars(file, node, id.0);
                Some(id)
            }
            Err(e) => {
                self.template_error(file, node, "template", &e);
                None
            }
        }
    }
}

/// Characters of a template's fixed text: `{{ ... }}`, `{% ... %}` and `{# ... #}` are not
/// counted (their output is unknown at load time; the limit check is about what the designer
/// wrote around them).
pub(crate) fn fixed_chars(src: &str) -> usize {
    let mut n = 0;
    let mut rest = src;
    while !rest.is_empty() {
        let open = ["{{", "{%", "{#"]
            .iter()
            .filter_map(|o| rest.find(o).map(|i| (i, *o)))
            .min_by_key(|(i, _)| *i);
        let Some((i, o)) = open else {
            n += rest.chars().count();
            break;
        };
        n += rest[..i].chars().count();
        let close = match o {
            "{{" => "}}",
            "{%" => "%}",
            _ => "#}",
        };
        match rest[i + 2..].find(close) {
            Some(j) => rest = &rest[i + 2 + j + 2..],
            None => break,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::fixed_chars;

    #[test]
    fn fixed_text_leaves_template_code_out() {
        assert_eq!(fixed_chars("订单{{ slots.x }}：{% if a %}好{% endif %}"), 4);
        assert_eq!(fixed_chars("plain"), 5);
        assert_eq!(fixed_chars("a {{ unclosed"), 2);
    }
}

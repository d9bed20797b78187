//! Loader passes for `slots:` and `intents:` — the declarations flows refer to.
//!
//! Invariants: a slot's type-specific keys (`values`, `pattern`, `min`/`max`) are only
//! accepted on the types they apply to; regexes are compiled here (with a size limit, so a
//! pathological pattern is a load error, not a slow turn); names are unique across files.

use std::collections::HashMap;
use std::path::Path;

use crate::diagnostic::did_you_mean;
use crate::entity::BuiltinEntity;
use crate::load::{Loader, Origin};
use crate::model::{IntentDef, Lang, SlotDef};
use crate::slot::{EnumValue, SLOT_TYPE_NAMES, SlotType};
use crate::yaml::{self, Node};

/// Compiled regex size limit (bytes of program); generous for real patterns.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

const SLOT_KEYS: [&str; 6] = ["type", "description", "values", "pattern", "min", "max"];
const INTENT_KEYS: [&str; 3] = ["description", "examples", "synonyms"];

impl Loader {
    /// Registers the definition `name` of `kind` (`slot`, `intent`, ...) in the origins map
    /// `origins` picks; a second definition (also in another file) is reported at `key`, with
    /// the first one's position as the hint, and false is returned.
    pub(crate) fn declare(
        &mut self,
        origins: fn(&mut Loader) -> &mut HashMap<String, Origin>,
        kind: &str,
        file: &Path,
        key: &Node,
        name: &str,
    ) -> bool {
        let map = origins(self);
        if let Some(first) = map.get(name) {
            let hint = Some(first.describe());
            self.err(file, key, format!("{kind} `{name}` is defined twice"), hint);
            return false;
        }
        map.insert(
            name.to_string(),
            Origin {
                file: file.to_path_buf(),
                pos: yaml::pos(key),
            },
        );
        true
    }

    pub(crate) fn slots_section(&mut self, file: &Path, node: &Node) {
        for (name, k, v) in self.map(file, node, "slots", None) {
            if !self.check_name(file, k, &name, "slot") {
                continue;
            }
            if !self.declare(|l| &mut l.slot_origins, "slot", file, k, &name) {
                continue;
            }
            if let Some(def) = self.slot(file, k, v, &name) {
                self.slots.insert(name, def);
            }
        }
    }

    fn slot(&mut self, file: &Path, key: &Node, node: &Node, name: &str) -> Option<SlotDef> {
        let what = format!("slot `{name}`");
        let entries = self.map(file, node, &what, Some(&SLOT_KEYS));
        let get = |k: &str| {
            entries
                .iter()
                .find(|(n, _, _)| n == k)
                .map(|(_, kn, v)| (*kn, *v))
        };
        let Some((_, ty_node)) = get("type") else {
            self.err(
                file,
                key,
                format!("{what} has no `type`"),
                Some(format!("one of: {}", SLOT_TYPE_NAMES.join(", "))),
            );
            return None;
        };
        let ty_name = yaml::as_str(ty_node).unwrap_or("");
        // Keys that only make sense for some types.
        let allowed_extra: &[&str] = match ty_name {
            "enum" => &["values"],
            "regex" => &["pattern"],
            "integer" | "number" => &["min", "max"],
            _ => &[],
        };
        for (k, kn, _) in &entries {
            if !["type", "description"].contains(&k.as_str())
                && !allowed_extra.contains(&k.as_str())
                && (SLOT_TYPE_NAMES.contains(&ty_name) || self.entities.contains_key(ty_name))
            {
                self.err(
                    file,
                    kn,
                    format!("`{k}` does not apply to `{ty_name}` slots"),
                    None,
                );
            }
        }
        let description =
            get("description").and_then(|(_, d)| self.string(file, d, "`description`"));
        let ty = match ty_name {
            "text" => SlotType::Text,
            "bool" => SlotType::Bool,
            "order_id" => SlotType::OrderId,
            "phone" => SlotType::Phone,
            "email" => SlotType::Email,
            "date" => SlotType::Date,
            "amount" => SlotType::Amount,
            "id_card" => SlotType::IdCard,
            "bank_card" => SlotType::BankCard,
            "json" => SlotType::Json,
            "integer" => {
                let (min, max) = self.bounds(
                    file,
                    get("min").map(|(_, n)| n),
                    get("max").map(|(_, n)| n),
                    "an integer slot must be a whole number",
                    |n| yaml::scalar_json(n).and_then(|j| j.as_i64()),
                )?;
                SlotType::Integer { min, max }
            }
            "number" => {
                let (min, max) = self.bounds(
                    file,
                    get("min").map(|(_, n)| n),
                    get("max").map(|(_, n)| n),
                    "a number slot must be a number",
                    yaml::as_f64,
                )?;
                SlotType::Number { min, max }
            }
            "enum" => {
                let Some((_, values)) = get("values") else {
                    self.err(
                        file,
                        key,
                        format!("{what} is an `enum` but has no `values`"),
                        None,
                    );
                    return None;
                };
                SlotType::Enum {
                    values: self.enum_values(file, values)?,
                }
            }
            "regex" => {
                let Some((_, p)) = get("pattern") else {
                    self.err(
                        file,
                        key,
                        format!("{what} is a `regex` but has no `pattern`"),
                        None,
                    );
                    return None;
                };
                let src = self.string(file, p, "`pattern`")?;
                match regex::RegexBuilder::new(&src)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                {
                    Ok(pattern) => SlotType::Regex { pattern },
                    Err(e) => {
                        self.err(
                            file,
                            p,
                            format!("invalid regex: {}", regex_error_line(&e)),
                            None,
                        );
                        return None;
                    }
                }
            }
            other if self.entities.contains_key(other) => {
                // A slot typed by an entity: built-in or declared under `entities:`.
                let ty = self.entities.get(other).map(|e| e.slot_type())?;
                return Some(SlotDef {
                    description,
                    ty,
                    entity: Some(other.to_string()),
                });
            }
            other => {
                let names = SLOT_TYPE_NAMES
                    .iter()
                    .copied()
                    .chain(self.entities.keys().map(String::as_str));
                let hint = did_you_mean(other, names)
                    .or_else(|| Some(format!("one of: {}", SLOT_TYPE_NAMES.join(", "))));
                self.err(
                    file,
                    ty_node,
                    format!(
                        "unknown slot type `{}`",
                        yaml::scalar_text(ty_node).unwrap_or_default()
                    ),
                    hint,
                );
                return None;
            }
        };
        // Built-in types are also built-in entities: the NLU's value for them is used.
        let entity = match &ty {
            SlotType::OrderId => Some(BuiltinEntity::OrderNumber),
            SlotType::Phone => Some(BuiltinEntity::Mobile),
            SlotType::Email => Some(BuiltinEntity::Email),
            SlotType::Date => Some(BuiltinEntity::Date),
            SlotType::Amount => Some(BuiltinEntity::Amount),
            SlotType::IdCard => Some(BuiltinEntity::IdCard),
            SlotType::BankCard => Some(BuiltinEntity::BankCard),
            _ => None,
        }
        .map(|b| b.name().to_string());
        Some(SlotDef {
            description,
            ty,
            entity,
        })
    }

    /// `values:` items are `value` or `{value: [synonym, ...]}`.
    /// Reads a slot's `min`/`max` with `parse`; `None` when either is malformed (reported).
    /// `must` completes "`min` of ..." in the error, e.g. "an integer slot must be a whole number".
    fn bounds<T: PartialOrd + Copy>(
        &mut self,
        file: &Path,
        min: Option<&Node>,
        max: Option<&Node>,
        must: &str,
        parse: impl Fn(&Node) -> Option<T>,
    ) -> Option<(Option<T>, Option<T>)> {
        let mut read = |k: &str, node: Option<&Node>| -> Option<Option<T>> {
            let Some(n) = node else { return Some(None) };
            match parse(n) {
                Some(v) => Some(Some(v)),
                None => {
                    self.err(file, n, format!("`{k}` of {must}"), None);
                    None
                }
            }
        };
        let (lo, hi) = (read("min", min)?, read("max", max)?);
        if let (Some(a), Some(b), Some(n)) = (lo, hi, max)
            && a > b
        {
            self.err(file, n, "`max` is smaller than `min`", None);
        }
        Some((lo, hi))
    }

    pub(crate) fn enum_values(&mut self, file: &Path, node: &Node) -> Option<Vec<EnumValue>> {
        let Some(items) = yaml::items(node).filter(|i| !i.is_empty()) else {
            self.err(
                file,
                node,
                "`values` must be a non-empty list",
                Some("e.g. values: [small, medium, large]".into()),
            );
            return None;
        };
        let mut out: Vec<EnumValue> = Vec::new();
        let mut ok = true;
        for item in items {
            let (value_node, value, synonyms) = if let Some(entries) = yaml::entries(item) {
                let [(k, v)] = entries.as_slice() else {
                    self.err(
                        file,
                        item,
                        "an enum value with synonyms is written `value: [synonym, ...]`",
                        None,
                    );
                    ok = false;
                    continue;
                };
                let Some(value) = yaml::scalar_text(k) else {
                    ok = false;
                    continue;
                };
                let syns: Vec<String> = match yaml::items(v) {
                    Some(list) => list.iter().filter_map(yaml::scalar_text).collect(),
                    None => {
                        self.err(file, v, "synonyms must be a list", None);
                        ok = false;
                        continue;
                    }
                };
                (*k, value, syns)
            } else if let Some(value) = yaml::scalar_text(item) {
                (item, value, Vec::new())
            } else {
                self.err(
                    file,
                    item,
                    format!(
                        "an enum value must be text, found {}",
                        yaml::kind_name(item)
                    ),
                    None,
                );
                ok = false;
                continue;
            };
            if out.iter().any(|e| e.value == value) {
                self.err(
                    file,
                    value_node,
                    format!("duplicate enum value `{value}`"),
                    None,
                );
                ok = false;
                continue;
            }
            out.push(EnumValue { value, synonyms });
        }
        ok.then_some(out)
    }

    pub(crate) fn intents_section(&mut self, file: &Path, node: &Node) {
        for (name, k, v) in self.map(file, node, "intents", None) {
            if !self.check_name(file, k, &name, "intent") {
                continue;
            }
            if !self.declare(|l| &mut l.intent_origins, "intent", file, k, &name) {
                continue;
            }
            let def = self.intent(file, k, v, &name);
            self.intents.insert(name, def);
        }
    }

    fn intent(&mut self, file: &Path, key: &Node, node: &Node, name: &str) -> IntentDef {
        let what = format!("intent `{name}`");
        let mut def = IntentDef::default();
        let mut has_examples = false;
        for (k, _, v) in self.map(file, node, &what, Some(&INTENT_KEYS)) {
            match k.as_str() {
                "description" => def.description = self.string(file, v, "`description`"),
                "examples" => {
                    let langs: Vec<&str> = Lang::ALL.iter().map(|l| l.as_str()).collect();
                    for (lang, _, list) in self.map(file, v, "`examples`", Some(&langs)) {
                        let Some(lang) = Lang::from_code(&lang) else {
                            continue;
                        };
                        let Some(items) = yaml::items(list) else {
                            self.err(file, list, "examples must be a list of phrases", None);
                            continue;
                        };
                        let out = def.examples.get_mut(lang);
                        for item in items {
                            match yaml::scalar_text(item) {
                                Some(s) if !s.trim().is_empty() => {
                                    let s = s.trim().to_string();
                                    if out.contains(&s) {
                                        self.diags.warning(
                                            file,
                                            yaml::pos(item),
                                            format!("duplicate example `{s}`"),
                                            None,
                                        );
                                    } else {
                                        out.push(s);
                                    }
                                }
                                _ => self.err(
                                    file,
                                    item,
                                    "an example must be a non-empty phrase",
                                    None,
                                ),
                            }
                        }
                        has_examples |= !out.is_empty();
                    }
                }
                "synonyms" => {
                    for (colloquial, _, canonical) in self.map(file, v, "`synonyms`", None) {
                        if let Some(c) =
                            self.string(file, canonical, "a synonym's canonical phrase")
                        {
                            def.synonyms.push((colloquial, c));
                        }
                    }
                }
                _ => {}
            }
        }
        if !has_examples {
            self.err(
                file,
                key,
                format!("{what} has no examples"),
                Some("add `examples: {zh: [...], en: [...]}`".into()),
            );
        }
        def
    }
}

/// The one-line core of a regex error (the crate's syntax errors span several lines).
pub(crate) fn regex_error_line(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().next().unwrap_or("invalid pattern"))
        .to_string()
}

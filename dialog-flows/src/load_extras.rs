//! Loader passes for `entities:`, `experiments:` and `policies:`.
//!
//! Invariants on success: custom entity names clash with no built-in entity and no slot
//! type; every experiment has at least two variants with positive weights; every policy
//! has a compiled `when` condition and a valid action.

use std::path::Path;

use crate::diagnostic::did_you_mean;
use crate::entity::{BuiltinEntity, EntityDef, EntityKind};
use crate::load::Loader;
use crate::load_defs::{REGEX_SIZE_LIMIT, regex_error_line};
use crate::model::{ExperimentDef, PolicyAction, PolicyDef, PolicyThen};
use crate::slot::SLOT_TYPE_NAMES;
use crate::yaml::{self, Node};

const ENTITY_KEYS: [&str; 3] = ["description", "regex", "lookup"];
const EXPERIMENT_KEYS: [&str; 2] = ["description", "variants"];
const POLICY_KEYS: [&str; 7] = [
    "description",
    "when",
    "say",
    "then",
    "first",
    "reason",
    "queue",
];
const ACTION_KEYS: [&str; 2] = ["say", "then"];
const THEN_VALUES: [&str; 3] = ["handoff", "continue", "reply"];
/// Largest weight of one variant (weights are relative; this keeps the sum far from overflow).
const MAX_WEIGHT: u64 = 1_000_000;

impl Loader {
    pub(crate) fn entities_section(&mut self, file: &Path, node: &Node) {
        for (name, k, v) in self.map(file, node, "entities", None) {
            if !self.check_name(file, k, &name, "entity") {
                continue;
            }
            if BuiltinEntity::from_name(&name).is_some() || SLOT_TYPE_NAMES.contains(&name.as_str())
            {
                self.err(
                    file,
                    k,
                    format!("`{name}` is a built-in type; a custom entity needs another name"),
                    Some(
                        "built-in entities need no declaration: use `type: name` in a slot".into(),
                    ),
                );
                continue;
            }
            if !self.declare(|l| &mut l.entity_origins, "entity", file, k, &name) {
                continue;
            }
            if let Some(def) = self.entity(file, k, v, &name) {
                self.entities.insert(name, def);
            }
        }
    }

    fn entity(&mut self, file: &Path, key: &Node, node: &Node, name: &str) -> Option<EntityDef> {
        let what = format!("entity `{name}`");
        let entries = self.map(file, node, &what, Some(&ENTITY_KEYS));
        let mut description = None;
        let mut kind = None;
        let mut kinds = 0;
        for (k, kn, v) in &entries {
            match k.as_str() {
                "description" => description = self.string(file, v, "`description`"),
                "regex" => {
                    kinds += 1;
                    if kinds > 1 {
                        self.err(
                            file,
                            kn,
                            format!("{what} has both `regex` and `lookup`"),
                            Some("an entity is one or the other".into()),
                        );
                        return None;
                    }
                    let src = self.string(file, v, "`regex`")?;
                    match regex::RegexBuilder::new(&src)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                    {
                        Ok(re) => kind = Some(EntityKind::Regex(re)),
                        Err(e) => {
                            self.err(
                                file,
                                v,
                                format!("invalid regex: {}", regex_error_line(&e)),
                                None,
                            );
                            return None;
                        }
                    }
                }
                _ if k == "lookup" => {
                    kinds += 1;
                    if kinds > 1 {
                        self.err(
                            file,
                            kn,
                            format!("{what} has both `regex` and `lookup`"),
                            Some("an entity is one or the other".into()),
                        );
                        return None;
                    }
                    kind = Some(EntityKind::Lookup(self.enum_values(file, v)?));
                }
                _ => {}
            }
        }
        let Some(kind) = kind else {
            if entries.len() == yaml::entries(node).map_or(0, |e| e.len()) {
                self.err(
                    file,
                    key,
                    format!("{what} has neither `regex` nor `lookup`"),
                    Some("e.g. `regex: 'SKU-\\d{6}'` or `lookup: [beijing: [北京, 京]]`".into()),
                );
            }
            return None;
        };
        Some(EntityDef { description, kind })
    }

    pub(crate) fn experiments_section(&mut self, file: &Path, node: &Node) {
        for (name, k, v) in self.map(file, node, "experiments", None) {
            if !self.check_name(file, k, &name, "experiment") {
                continue;
            }
            if self.experiments.contains_key(&name) {
                self.err(
                    file,
                    k,
                    format!("experiment `{name}` is defined twice"),
                    None,
                );
                continue;
            }
            if let Some(def) = self.experiment(file, k, v, &name) {
                self.experiments.insert(name, def);
            }
        }
    }

    fn experiment(
        &mut self,
        file: &Path,
        key: &Node,
        node: &Node,
        name: &str,
    ) -> Option<ExperimentDef> {
        let what = format!("experiment `{name}`");
        let mut def = ExperimentDef {
            description: None,
            variants: Vec::new(),
        };
        let mut variants_node = None;
        for (k, _, v) in self.map(file, node, &what, Some(&EXPERIMENT_KEYS)) {
            match k.as_str() {
                "description" => def.description = self.string(file, v, "`description`"),
                _ => variants_node = Some(v),
            }
        }
        let Some(vn) = variants_node else {
            self.err(
                file,
                key,
                format!("{what} has no `variants`"),
                Some("e.g. `variants: {a: 50, b: 50}` or `variants: [a, b]`".into()),
            );
            return None;
        };
        let mut ok = true;
        if let Some(items) = yaml::items(vn) {
            for item in items {
                match yaml::as_str(item) {
                    Some(v) if self.check_name(file, item, v, "variant") => {
                        def.variants.push((v.to_string(), 1))
                    }
                    Some(_) => ok = false,
                    None => {
                        self.err(
                            file,
                            item,
                            format!(
                                "a variant name must be text, found {}",
                                yaml::kind_name(item)
                            ),
                            None,
                        );
                        ok = false;
                    }
                }
            }
        } else {
            for (v, k, w) in self.map(file, vn, "`variants`", None) {
                if !self.check_name(file, k, &v, "variant") {
                    ok = false;
                    continue;
                }
                match yaml::as_u64(w)
                    .filter(|w| (1..=MAX_WEIGHT).contains(w))
                    .and_then(|w| u32::try_from(w).ok())
                {
                    Some(w) => def.variants.push((v, w)),
                    None => {
                        self.err(file, w, format!("the weight of variant `{v}` must be a whole number from 1 to {MAX_WEIGHT}"), None);
                        ok = false;
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (v, _) in &def.variants {
            if !seen.insert(v.clone()) {
                self.err(
                    file,
                    vn,
                    format!("variant `{v}` is listed twice in {what}"),
                    None,
                );
                ok = false;
            }
        }
        if ok && def.variants.len() < 2 {
            self.err(
                file,
                vn,
                format!("{what} needs at least two variants"),
                None,
            );
            return None;
        }
        ok.then_some(def)
    }

    pub(crate) fn policies_section(&mut self, file: &Path, node: &Node) {
        for (name, k, v) in self.map(file, node, "policies", None) {
            if !self.check_name(file, k, &name, "policy") {
                continue;
            }
            if !self.declare(|l| &mut l.policy_origins, "policy", file, k, &name) {
                continue;
            }
            if let Some(p) = self.policy(file, k, v, &name) {
                self.policies.push(p);
            }
        }
    }

    fn policy(&mut self, file: &Path, key: &Node, node: &Node, name: &str) -> Option<PolicyDef> {
        let what = format!("policy `{name}`");
        let entries = self.map(file, node, &what, Some(&POLICY_KEYS));
        let mut ok = entries.len() == yaml::entries(node).map_or(0, |e| e.len());
        let get = |k: &str| {
            entries
                .iter()
                .find(|(n, _, _)| n == k)
                .map(|(_, kn, v)| (*kn, *v))
        };
        let when = match get("when") {
            Some((_, cond)) => self.condition(file, cond),
            None => {
                self.err(
                    file,
                    key,
                    format!("{what} has no `when` condition"),
                    Some("e.g. `when: emotion.negative_streak >= 3`".into()),
                );
                None
            }
        };
        let action = self.policy_action(file, node, &entries_of(&entries, &ACTION_KEYS), name);
        let first = match get("first") {
            Some((_, f)) => {
                let fe = self.map(file, f, "`first`", Some(&ACTION_KEYS));
                if fe.len() < yaml::entries(f).map_or(0, |e| e.len()) {
                    ok = false;
                }
                if fe.is_empty() {
                    ok = false;
                    None
                } else {
                    let a = self.policy_action(file, f, &fe, name);
                    ok &= a.is_some();
                    a
                }
            }
            None => None,
        };
        let action = action?;
        let handoff = action.then == PolicyThen::Handoff
            || first
                .as_ref()
                .is_some_and(|f| f.then == PolicyThen::Handoff);
        for k in ["reason", "queue"] {
            if let Some((kn, _)) = get(k)
                && !handoff
            {
                self.err(
                    file,
                    kn,
                    format!("`{k}` only applies to a policy that hands off"),
                    Some("add `then: handoff` or remove it".into()),
                );
                ok = false;
            }
        }
        let reason = match get("reason") {
            Some((_, r)) => self.string(file, r, "`reason`")?,
            None => format!("policy `{name}`"),
        };
        let queue = match get("queue") {
            Some((_, q)) => Some(self.string(file, q, "`queue`")?),
            None => None,
        };
        if !ok {
            return None;
        }
        Some(PolicyDef {
            name: name.to_string(),
            when: when?,
            first,
            action,
            reason,
            queue,
        })
    }

    /// `say:` and `then:` of a policy or of its `first:`; `then` defaults to `handoff`.
    fn policy_action(
        &mut self,
        file: &Path,
        node: &Node,
        entries: &[(String, &Node, &Node)],
        name: &str,
    ) -> Option<PolicyAction> {
        let mut say = None;
        let mut then = PolicyThen::Handoff;
        let mut ok = true;
        for (k, _, v) in entries {
            match k.as_str() {
                "say" => {
                    say = self.text(file, v, "`say`");
                    ok &= say.is_some();
                }
                _ => match yaml::as_str(v) {
                    Some("handoff") => then = PolicyThen::Handoff,
                    Some("continue") => then = PolicyThen::Continue,
                    Some("reply") => then = PolicyThen::Reply,
                    other => {
                        let got = other
                            .map_or_else(|| yaml::kind_name(v).to_string(), |s| format!("`{s}`"));
                        let hint = other
                            .and_then(|s| did_you_mean(s, THEN_VALUES))
                            .or_else(|| Some(format!("one of: {}", THEN_VALUES.join(", "))));
                        self.err(file, v, format!("unknown policy action {got}"), hint);
                        ok = false;
                    }
                },
            }
        }
        if ok && say.is_none() && then != PolicyThen::Handoff {
            self.err(
                file,
                node,
                format!("policy `{name}` would do nothing: it neither says anything nor hands off"),
                Some("add `say:` or use `then: handoff`".into()),
            );
            return None;
        }
        ok.then_some(PolicyAction { say, then })
    }

    /// Compiles a condition and checks its variables.
    pub(crate) fn condition(
        &mut self,
        file: &Path,
        cond: &Node,
    ) -> Option<crate::template::CondId> {
        match yaml::scalar_text(cond) {
            Some(src) => match self.templates.compile_condition(&src) {
                Ok(id) => {
                    self.check_template_vars(file, cond, id.0);
                    Some(id)
                }
                Err(e) => {
                    self.template_error(file, cond, "condition", &e);
                    None
                }
            },
            None => {
                self.err(
                    file,
                    cond,
                    format!("a condition must be text, found {}", yaml::kind_name(cond)),
                    None,
                );
                None
            }
        }
    }
}

/// The entries among `all` whose key is in `keys`.
fn entries_of<'n>(
    all: &[(String, &'n Node, &'n Node)],
    keys: &[&str],
) -> Vec<(String, &'n Node, &'n Node)> {
    all.iter()
        .filter(|(k, _, _)| keys.contains(&k.as_str()))
        .map(|(k, kn, v)| (k.clone(), *kn, *v))
        .collect()
}

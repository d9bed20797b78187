//! [`Bot`]: a loaded, validated bot — the immutable input of every interpreter step.
//!
//! A bot is a directory of `*.yaml`/`*.yml` files, merged in file-name order (sub-folders
//! such as `tests/` are not part of it). A `Bot` is immutable after loading and cheap to
//! share (`Arc<Bot>`); hot reload builds a new one and swaps it. `version()` is a content
//! hash of the files, so two loads of the same files report the same version.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Severity};
use crate::entity::EntityDef;
use crate::load;
use crate::model::{
    ExperimentDef, FlowDef, IntentDef, Lang, PolicyDef, Responses, Settings, SlotDef,
};
use crate::template::Templates;

/// A loaded bot. Build it with [`Bot::load_dir`] or [`Bot::load_str`].
#[derive(Debug)]
pub struct Bot {
    name: String,
    version: String,
    pub(crate) settings: Settings,
    pub(crate) responses: Responses,
    pub(crate) intents: BTreeMap<String, IntentDef>,
    pub(crate) slots: BTreeMap<String, SlotDef>,
    pub(crate) flows: BTreeMap<String, FlowDef>,
    /// intent -> the flow it starts.
    pub(crate) triggers: HashMap<String, String>,
    pub(crate) templates: Templates,
    /// Escalation policies, in evaluation order.
    pub(crate) policies: Vec<PolicyDef>,
    pub(crate) experiments: BTreeMap<String, ExperimentDef>,
    /// Declared and built-in entities.
    pub(crate) entities: BTreeMap<String, EntityDef>,
    warnings: Vec<Diagnostic>,
}

/// Options for loading a bot.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// The skills the runtime has; a `call:` naming another one is an error. `None` skips
    /// the check (e.g. when the plugins are not known at check time).
    pub known_skills: Option<Vec<String>>,
}

impl LoadOptions {
    /// Options that check `call:` steps against these skill names.
    pub fn with_known_skills<I, S>(skills: I) -> LoadOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        LoadOptions {
            known_skills: Some(skills.into_iter().map(Into::into).collect()),
        }
    }
}

impl Bot {
    /// Loads every `*.yaml`/`*.yml` file directly in `dir` (sorted by name) as one bot.
    ///
    /// Returns every error found (with `file:line:col`), not just the first; file paths in
    /// diagnostics are `dir` joined with the file name.
    pub fn load_dir(dir: &Path) -> Result<Bot, Vec<Diagnostic>> {
        Bot::load_dir_with(dir, &LoadOptions::default())
    }

    /// [`Bot::load_dir`] with options (e.g. the skills the runtime knows).
    pub fn load_dir_with(dir: &Path, opts: &LoadOptions) -> Result<Bot, Vec<Diagnostic>> {
        let io_error = |file: &Path, what: String| Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            severity: Severity::Error,
            message: what,
            hint: None,
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|e| vec![io_error(dir, format!("cannot read the bot directory: {e}"))])?;
        let mut paths: Vec<PathBuf> = Vec::new();
        let mut errors = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => {
                    let path = e.path();
                    let is_yaml = path.extension().is_some_and(|x| x == "yaml" || x == "yml");
                    if is_yaml && path.is_file() {
                        paths.push(path);
                    }
                }
                Err(e) => errors.push(io_error(dir, format!("cannot list the bot directory: {e}"))),
            }
        }
        paths.sort();
        if paths.is_empty() && errors.is_empty() {
            let mut d = io_error(dir, "the bot directory has no .yaml files".into());
            d.hint =
                Some("a bot is a directory of YAML files with intents, slots and flows".into());
            errors.push(d);
        }
        let mut files = Vec::new();
        for path in paths {
            match std::fs::read_to_string(&path) {
                Ok(src) => files.push((path, src)),
                Err(e) => errors.push(io_error(&path, format!("cannot read the file: {e}"))),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let name = dir
            .file_name()
            .map_or_else(|| "bot".to_string(), |n| n.to_string_lossy().into_owned());
        Bot::load_files_with(&name, &files, opts)
    }

    /// Loads a bot from one YAML text; `name` is used as the file name in diagnostics.
    pub fn load_str(name: &str, yaml: &str) -> Result<Bot, Vec<Diagnostic>> {
        Bot::load_files(name, &[(PathBuf::from(name), yaml.to_string())])
    }

    /// Loads a bot from `(file name, YAML text)` pairs merged in the given order (what
    /// `load_dir` does after reading the files; useful for editors and hot reload).
    pub fn load_files(name: &str, files: &[(PathBuf, String)]) -> Result<Bot, Vec<Diagnostic>> {
        Bot::load_files_with(name, files, &LoadOptions::default())
    }

    /// [`Bot::load_files`] with options.
    pub fn load_files_with(
        name: &str,
        files: &[(PathBuf, String)],
        opts: &LoadOptions,
    ) -> Result<Bot, Vec<Diagnostic>> {
        let loaded = load::load(files, opts)?;
        Ok(Bot {
            name: name.to_string(),
            version: content_hash(files),
            settings: loaded.settings,
            responses: loaded.responses,
            intents: loaded.intents,
            slots: loaded.slots,
            flows: loaded.flows,
            triggers: loaded.triggers,
            templates: loaded.templates,
            policies: loaded.policies,
            experiments: loaded.experiments,
            entities: loaded.entities,
            warnings: loaded.warnings,
        })
    }

    /// The bot's name (its directory name, or the name given to `load_str`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A content hash of the bot's files (16 hex digits); equal files give equal versions.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Warnings found while loading (the bot works, but something looks wrong).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Bot-wide settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every intent with its examples and synonyms, by name — training data for the
    /// classifier, which lives outside this crate.
    pub fn intents(&self) -> impl Iterator<Item = (&str, &IntentDef)> {
        self.intents.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Every `(colloquial, canonical)` synonym pair of every intent, for the normaliser.
    pub fn synonyms(&self) -> impl Iterator<Item = (&str, &str)> {
        self.intents
            .values()
            .flat_map(|i| i.synonyms.iter().map(|(a, b)| (a.as_str(), b.as_str())))
    }

    /// Every slot, by name.
    pub fn slots(&self) -> impl Iterator<Item = (&str, &SlotDef)> {
        self.slots.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Every flow, by name.
    pub fn flows(&self) -> impl Iterator<Item = (&str, &FlowDef)> {
        self.flows.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Every entity (declared under `entities:`, and the built-ins), by name — what the
    /// NLU should look for.
    pub fn entities(&self) -> impl Iterator<Item = (&str, &EntityDef)> {
        self.entities.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Every A/B experiment, by name.
    pub fn experiments(&self) -> impl Iterator<Item = (&str, &ExperimentDef)> {
        self.experiments.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The variant of `experiment` that `user` sees (stable), if the experiment exists.
    pub fn variant_for(&self, experiment: &str, user: &str) -> Option<&str> {
        self.experiments
            .get(experiment)
            .map(|e| e.assign(experiment, user))
    }

    /// The escalation policies, in evaluation order.
    pub fn policies(&self) -> &[PolicyDef] {
        &self.policies
    }

    /// Skill names used by `call:` steps (sorted, without duplicates), so the runtime can
    /// check it has them all.
    pub fn skills(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .flows
            .values()
            .flat_map(|f| f.steps.iter())
            .filter_map(|s| match &s.kind {
                crate::model::StepKind::Call(c) => Some(c.skill.as_str()),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The flow `intent` starts, if any.
    pub fn flow_for_intent(&self, intent: &str) -> Option<&str> {
        self.triggers.get(intent).map(String::as_str)
    }

    /// The designer's template source behind `text` for `lang` (after language fallback),
    /// for tooling such as `kefu chat --explain`.
    pub fn text_source(&self, text: &crate::model::Text, lang: Lang) -> Option<&str> {
        text.pick(lang, self.settings.default_language)
            .map(|id| self.templates.source(id.0))
    }

    /// The out-of-scope reply in `lang` (rendered with no slots).
    pub fn fallback_text(&self, lang: Lang) -> String {
        let ctx = crate::template::simple_context(&BTreeMap::new(), lang.as_str(), "", "");
        self.responses
            .fallback
            .pick(lang, self.settings.default_language)
            .and_then(|id| self.templates.render(id, &ctx).ok())
            .unwrap_or_default()
    }
}

/// FNV-1a (64 bit) over file names and contents. Not cryptographic: it only has to tell
/// versions apart and be stable across builds and platforms (std's hasher is neither
/// guaranteed stable nor meant for persisted ids).
fn content_hash(files: &[(PathBuf, String)]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
        // Separator, so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(PRIME);
    };
    let mut sorted: Vec<&(PathBuf, String)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, src) in sorted {
        let name = path
            .file_name()
            .map_or_else(|| path.to_string_lossy(), |n| n.to_string_lossy());
        feed(name.as_bytes());
        feed(src.as_bytes());
    }
    format!("{h:016x}")
}

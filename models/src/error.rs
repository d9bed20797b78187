//! The crate's one error type.
//!
//! Every fallible operation in `kefu-models` returns [`ModelError`]; each variant names what
//! was wrong and where (example index, config field), so a bot designer can fix the flow file
//! without reading our code. Classification itself never fails: odd input yields a low
//! confidence prediction, not an error.

use thiserror::Error;

/// Errors from training a model or validating its configuration.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelError {
    /// Training was asked to learn from an empty example list.
    #[error("no training examples were given")]
    NoExamples,
    /// A classifier needs at least two classes (the `oos` class counts) to tell apart.
    #[error("training needs at least two distinct intents, found {found}")]
    TooFewIntents {
        /// How many distinct intents the examples had.
        found: usize,
    },
    /// An example has an empty (or whitespace-only) intent label.
    #[error("training example #{index} has an empty intent label")]
    EmptyIntent {
        /// Zero-based index of the example in the training list.
        index: usize,
    },
    /// An example's text has no usable features after normalisation (empty, only
    /// punctuation or emoji): it would teach the model nothing.
    #[error("training example #{index} (intent `{intent}`) has no usable text: {text:?}")]
    EmptyExample {
        /// Zero-based index of the example in the training list.
        index: usize,
        /// The example's intent label.
        intent: String,
        /// The example's text as given.
        text: String,
    },
    /// A configuration value is out of its allowed range.
    #[error("invalid classifier config `{field}`: {reason}")]
    InvalidConfig {
        /// The offending field name.
        field: &'static str,
        /// What is allowed.
        reason: String,
    },
    /// A synonym entry cannot be used (its phrase is empty after normalisation).
    #[error("synonym #{index} has an empty phrase after normalisation: {phrase:?}")]
    EmptySynonym {
        /// Zero-based index of the entry.
        index: usize,
        /// The phrase as given.
        phrase: String,
    },
    /// An intent rule's pattern is not a valid regular expression.
    #[error("intent rule #{index} for `{intent}` has an invalid pattern: {reason}")]
    InvalidRule {
        /// Zero-based index of the rule.
        index: usize,
        /// The rule's intent.
        intent: String,
        /// The regex compiler's message.
        reason: String,
    },
    /// An entity definition cannot be used (bad pattern, empty list or name).
    #[error("entity `{name}` is invalid: {reason}")]
    InvalidEntity {
        /// The entity's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A label name that is not one of ours (e.g. an emotion dataset's `surprise`).
    #[error("unknown label `{label}` (known: {known}); map it with --map {label}=...")]
    UnknownLabel {
        /// The label as given.
        label: String,
        /// The labels we know.
        known: String,
    },
    /// An evaluation data file cannot be read or parsed.
    #[error("{path}:{line}: {reason}")]
    Data {
        /// The file.
        path: String,
        /// One-based line number (0: the file as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

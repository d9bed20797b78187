//! kefu's knowledge base: FAQ entries loaded from files, searched by fusing BM25 over words
//! with character n-gram similarity, served to flows as the `kb` skill.
//!
//! ```no_run
//! use kefu_kb::{KnowledgeBase, SearchOptions};
//!
//! let kb = KnowledgeBase::open("dialog-flows/bots/shop/kb")?;
//! for hit in kb.search("啥时候发货", &SearchOptions::default()) {
//!     println!("{} {:.2} {}", hit.entry.citation(), hit.confidence, hit.entry.answer);
//! }
//! # Ok::<(), kefu_kb::KbError>(())
//! ```
//!
//! - Files: see [`formats`](crate#formats) — YAML, CSV, Markdown FAQ, JSONL; problems are
//!   reported as `file:line`.
//! - Search: [`KnowledgeBase::search`] with [`SearchOptions`] (limit, tags, language); each
//!   [`Hit`] carries its [`Entry`] (with [`Source`]), a ranking score and a confidence.
//! - Hot reload: [`KnowledgeBase::reload`] and [`KnowledgeBase::watch`]; a failed reload keeps
//!   the previous index.
//! - Skill: [`KbSkill`] implements `kefu_plugin::Skill`.
//! - Evaluation: [`eval`] computes top-1/top-5/MRR@10 and latency for `kefu kb eval`.
//!
//! # Formats
//! See the `formats` module source for the exact grammar of each file type.

mod analyze;
mod chargram;
mod entry;
mod error;
pub mod eval;
mod formats;
mod index;
mod kb;
mod load;
mod skill;
mod synonyms;
mod topscore;

pub use entry::{Entry, Lang, Source};
pub use error::{KbError, Problem, Result};
pub use index::{Hit, SearchOptions, Tuning};
pub use kb::{KnowledgeBase, Watcher};
pub use skill::KbSkill;
pub use synonyms::Synonyms;

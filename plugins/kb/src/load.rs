//! Loading a knowledge base from a directory (or one file): which files count, in what order,
//! and the checks that span files (unique ids).
//!
//! A directory is walked recursively in sorted order, so the result does not depend on the
//! file system's listing order. Hidden files (editor swap files, `.git`) and `README*` are
//! skipped; `synonyms*.txt` holds synonym groups; `.yaml`/`.yml`, `.csv`, `.md`/`.markdown` and
//! `.jsonl` hold entries; anything else is ignored. Paths in sources and problems are relative
//! to the directory, so they read the same on every machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::formats::{FileDefaults, parse_csv, parse_jsonl, parse_markdown, parse_yaml};
use crate::{Entry, KbError, Problem, Result, Source, Synonyms};

/// What a load produced.
pub(crate) struct Loaded {
    pub(crate) entries: Vec<Entry>,
    pub(crate) synonyms: Synonyms,
}

/// What the files looked like when loaded: (path, modification time, length) of each file that
/// counts. The watcher reloads when this changes.
pub(crate) type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

enum Kind {
    Entries,
    Synonyms,
}

fn kind(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.') || name.to_ascii_lowercase().starts_with("readme") {
        return None;
    }
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "yaml" | "yml" | "csv" | "md" | "markdown" | "jsonl" => Some(Kind::Entries),
        "txt" if name.to_ascii_lowercase().starts_with("synonyms") => Some(Kind::Synonyms),
        _ => None,
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| KbError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        paths.push(entry.map_err(io)?.path());
    }
    paths.sort();
    for p in paths {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if p.is_dir() && !hidden {
            walk(&p, out)?;
        } else if p.is_file() && kind(&p).is_some() {
            out.push(p);
        }
    }
    Ok(())
}

/// The files of the knowledge base at `root` (a directory or a single file).
pub(crate) fn files(root: &Path) -> Result<Vec<PathBuf>> {
    if root.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    walk(root, &mut out)?;
    Ok(out)
}

/// The fingerprint of the knowledge base at `root`.
pub(crate) fn fingerprint(root: &Path) -> Result<Fingerprint> {
    files(root)?
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).map_err(|source| KbError::Io {
                path: p.clone(),
                source,
            })?;
            Ok((p, meta.modified().ok(), meta.len()))
        })
        .collect()
}

/// Parses one file's text, as `display` names it in sources and problems.
pub(crate) fn parse_file(src: &str, path: &Path, display: &Path) -> (Vec<Entry>, Vec<Problem>) {
    let defaults = FileDefaults::from_name(path);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "yaml" | "yml" => parse_yaml(src, display, defaults),
        "csv" => parse_csv(src, display, defaults),
        "md" | "markdown" => parse_markdown(src, display, defaults),
        _ => parse_jsonl(src, display, defaults),
    }
}

/// Loads every file of the knowledge base at `root`; all problems are reported together.
pub(crate) fn load(root: &Path) -> Result<Loaded> {
    let base = if root.is_file() {
        root.parent().unwrap_or(Path::new(""))
    } else {
        root
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut synonyms = Synonyms::default();
    let mut problems = Vec::new();
    for path in files(root)? {
        let src = std::fs::read_to_string(&path).map_err(|source| KbError::Io {
            path: path.clone(),
            source,
        })?;
        let display = path.strip_prefix(base).unwrap_or(&path).to_path_buf();
        match kind(&path) {
            Some(Kind::Synonyms) => {
                let at = Source {
                    file: display,
                    line: 0,
                };
                let (s, p) = Synonyms::parse(&src, &at);
                synonyms.extend(s);
                problems.extend(p);
            }
            _ => {
                let (e, p) = parse_file(&src, &path, &display);
                entries.extend(e);
                problems.extend(p);
            }
        }
    }
    problems.extend(duplicate_ids(&entries));
    if problems.is_empty() {
        Ok(Loaded { entries, synonyms })
    } else {
        Err(KbError::Invalid { problems })
    }
}

/// A problem for every id already used by an earlier entry.
pub(crate) fn duplicate_ids(entries: &[Entry]) -> Vec<Problem> {
    let mut seen: HashMap<&str, &Source> = HashMap::new();
    let mut problems = Vec::new();
    for e in entries {
        if let Some(first) = seen.insert(&e.id, &e.source) {
            problems.push(Problem::new(
                &e.source.file,
                e.source.line,
                format!("duplicate id `{}` (first defined at {first})", e.id),
            ));
            seen.insert(&e.id, first);
        }
    }
    problems
}

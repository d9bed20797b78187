//! Reading labelled evaluation data: JSONL or CSV, and relabelling with a `--map`.
//!
//! Formats, chosen by content rather than by file name (a `.txt` of JSON lines works):
//! - **JSONL**: one object per line with a text field, the first present of [`TEXT_FIELDS`]
//!   (`text`, `instruction`, `utterance`, `query`, `sentence`), and a label field, the first
//!   present of [`LABEL_FIELDS`] (`intent`, `label`, `category`, `emotion`). Blank lines are
//!   skipped.
//! - **CSV** (first non-blank line does not start with `{`): a header naming a text column
//!   and a label column (same names, case-insensitive), RFC 4180 quoting, e.g. Banking77's
//!   `text,category` or Bitext's `flags,instruction,category,intent,response` (which reads
//!   `instruction` and `intent`). Other columns are ignored.
//!
//! [`stratified_split`] makes a seeded train/test split of one file, per label.
//!
//! Errors name the file and the line, so a designer can fix the data.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use serde_json::Value;

use crate::error::{ModelError, Result};

/// Accepted names of the label field/column, in order of preference.
pub const LABEL_FIELDS: [&str; 4] = ["intent", "label", "category", "emotion"];
/// Accepted names of the text field/column, in order of preference.
pub const TEXT_FIELDS: [&str; 5] = ["text", "instruction", "utterance", "query", "sentence"];

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    /// The text.
    pub text: String,
    /// Its label, after mapping.
    pub label: String,
}

/// A label renaming table, parsed from `from=to,from2=to2`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelMap {
    map: HashMap<String, String>,
}

impl LabelMap {
    /// Parses `from=to` pairs separated by commas (whitespace around names is ignored; an
    /// empty string is an empty map).
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for a pair without `=` or with an empty side.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut map = HashMap::new();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (from, to) = pair
                .split_once('=')
                .map(|(f, t)| (f.trim(), t.trim()))
                .filter(|(f, t)| !f.is_empty() && !t.is_empty())
                .ok_or_else(|| ModelError::InvalidConfig {
                    field: "map",
                    reason: format!("`{pair}` is not `from=to`"),
                })?;
            map.insert(from.to_owned(), to.to_owned());
        }
        Ok(Self { map })
    }

    /// The label after mapping (unchanged when not in the table).
    pub fn apply(&self, label: &str) -> String {
        self.map
            .get(label)
            .cloned()
            .unwrap_or_else(|| label.to_owned())
    }
}

fn data_err(path: &Path, line: usize, reason: impl Into<String>) -> ModelError {
    ModelError::Data {
        path: path.display().to_string(),
        line,
        reason: reason.into(),
    }
}

/// Reads a labelled file (JSONL or CSV, see the module docs) and maps its labels.
///
/// # Errors
/// [`ModelError::Data`] when the file cannot be read, a line is not valid, a field is
/// missing, or the file holds no examples.
pub fn load_labelled(path: &Path, map: &LabelMap) -> Result<Vec<Labelled>> {
    let content = std::fs::read_to_string(path).map_err(|e| data_err(path, 0, e.to_string()))?;
    let content = content.strip_prefix('\u{FEFF}').unwrap_or(&content);
    let first = content.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let rows = if first.trim_start().starts_with('{') {
        parse_jsonl(path, content)?
    } else {
        parse_csv(path, content)?
    };
    if rows.is_empty() {
        return Err(data_err(path, 0, "no examples"));
    }
    Ok(rows
        .into_iter()
        .map(|(text, label)| Labelled {
            label: map.apply(&label),
            text,
        })
        .collect())
}

fn parse_jsonl(path: &Path, content: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| data_err(path, i + 1, e.to_string()))?;
        let text = TEXT_FIELDS
            .iter()
            .find_map(|f| v.get(*f).and_then(Value::as_str))
            .ok_or_else(|| {
                data_err(
                    path,
                    i + 1,
                    format!("no text field (one of {})", TEXT_FIELDS.join(", ")),
                )
            })?;
        let label = LABEL_FIELDS
            .iter()
            .find_map(|f| v.get(*f).and_then(Value::as_str))
            .ok_or_else(|| {
                data_err(
                    path,
                    i + 1,
                    format!("no label field (one of {})", LABEL_FIELDS.join(", ")),
                )
            })?;
        out.push((text.to_owned(), label.trim().to_owned()));
    }
    Ok(out)
}

fn parse_csv(path: &Path, content: &str) -> Result<Vec<(String, String)>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(content.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| data_err(path, 1, e.to_string()))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let text_col = TEXT_FIELDS.iter().find_map(|f| column(f)).ok_or_else(|| {
        data_err(
            path,
            1,
            format!("no text column (one of {})", TEXT_FIELDS.join(", ")),
        )
    })?;
    let label_col = LABEL_FIELDS.iter().find_map(|f| column(f)).ok_or_else(|| {
        data_err(
            path,
            1,
            format!("no label column (one of {})", LABEL_FIELDS.join(", ")),
        )
    })?;
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            data_err(path, line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let (Some(text), Some(label)) = (record.get(text_col), record.get(label_col)) else {
            return Err(data_err(path, line, "missing column"));
        };
        if text.trim().is_empty() && label.trim().is_empty() {
            continue;
        }
        out.push((text.to_owned(), label.trim().to_owned()));
    }
    Ok(out)
}

/// Splits `rows` into (train, test) per label: each label's rows are shuffled with `seed`
/// and `round(n · test_fraction)` of them go to the test side (never all of a label, and
/// none of a label with a single row). Deterministic for the same rows, fraction and seed.
pub fn stratified_split(
    rows: Vec<Labelled>,
    test_fraction: f64,
    seed: u64,
) -> (Vec<Labelled>, Vec<Labelled>) {
    let mut by_label: BTreeMap<String, Vec<Labelled>> = BTreeMap::new();
    for row in rows {
        by_label.entry(row.label.clone()).or_default().push(row);
    }
    let fraction = if test_fraction.is_finite() {
        test_fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (_, mut list) in by_label {
        list.shuffle(&mut rng);
        let n = list.len();
        let k = ((n as f64 * fraction).round() as usize).min(n.saturating_sub(1));
        let rest = list.split_off(k);
        test.extend(list);
        train.extend(rest);
    }
    (train, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let path = dir.path().join("data");
        if let Err(e) = std::fs::write(&path, content) {
            panic!("{e}");
        }
        (dir, path)
    }

    #[test]
    fn reads_banking77_style_csv() {
        let (_d, p) = write(
            "text,category\n\"I am still waiting on my card, help\",card_arrival\nhow do I top up?,top_up\n",
        );
        let rows = match load_labelled(&p, &LabelMap::default()) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text, "I am still waiting on my card, help");
        assert_eq!(rows[0].label, "card_arrival");
    }

    #[test]
    fn reads_jsonl_and_maps_labels() {
        let (_d, p) = write(
            "{\"text\": \"好气\", \"label\": \"angry\"}\n\n{\"text\": \"ok\", \"label\": \"none\"}\n",
        );
        let map = match LabelMap::parse("angry=anger, none = neutral") {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        let rows = match load_labelled(&p, &map) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(rows[0].label, "anger");
        assert_eq!(rows[1].label, "neutral");
    }

    #[test]
    fn reads_bitext_style_csv() {
        let (_d, p) = write(
            "flags,instruction,category,intent,response\nB,cancel order 123,ORDER,cancel_order,\"Sure, ...\"\n",
        );
        let rows = match load_labelled(&p, &LabelMap::default()) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(rows[0].text, "cancel order 123");
        assert_eq!(rows[0].label, "cancel_order");
    }

    #[test]
    fn split_is_stratified_and_seeded() {
        let rows: Vec<Labelled> = (0..100)
            .map(|i| Labelled {
                text: format!("t{i}"),
                label: if i % 4 == 0 { "a" } else { "b" }.to_owned(),
            })
            .chain(std::iter::once(Labelled {
                text: "lonely".into(),
                label: "c".into(),
            }))
            .collect();
        let (train, test) = stratified_split(rows.clone(), 0.2, 7);
        assert_eq!(test.iter().filter(|r| r.label == "a").count(), 5);
        assert_eq!(test.iter().filter(|r| r.label == "b").count(), 15);
        assert!(train.iter().any(|r| r.label == "c"));
        assert_eq!(train.len() + test.len(), 101);
        assert_eq!(stratified_split(rows, 0.2, 7).1, test);
    }

    #[test]
    fn errors_name_the_line() {
        let (_d, p) = write("{\"text\": \"a\", \"intent\": \"x\"}\n{\"text\": \"b\"}\n");
        match load_labelled(&p, &LabelMap::default()) {
            Err(ModelError::Data { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
        let (_d, p) = write("words,category\na,b\n");
        assert!(matches!(
            load_labelled(&p, &LabelMap::default()),
            Err(ModelError::Data { line: 1, .. })
        ));
        assert!(LabelMap::parse("a=b,c").is_err());
        assert!(load_labelled(Path::new("/nonexistent/x.jsonl"), &LabelMap::default()).is_err());
    }
}

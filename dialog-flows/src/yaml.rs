//! Thin helpers over saphyr's position-carrying YAML tree.
//!
//! The loader walks `MarkedYamlOwned` nodes directly (instead of deserialising through
//! serde) because every diagnostic needs the position of the exact key or value at fault,
//! and serde's data model loses positions. saphyr reports lines 1-based and columns
//! 0-based; [`pos`] converts to the 1-based columns editors show.

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use crate::diagnostic::Pos;

/// A YAML node with its source span.
pub(crate) type Node = MarkedYamlOwned;

/// Position of the first character of `node`.
pub(crate) fn pos(node: &Node) -> Pos {
    marker_pos(&node.span.start)
}

fn marker_pos(m: &saphyr::Marker) -> Pos {
    Pos {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
        col: u32::try_from(m.col().saturating_add(1)).unwrap_or(u32::MAX),
    }
}

/// A YAML syntax problem: where and what.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
}

/// Parses one file. `Ok(None)` for a file without any document (empty or comments only).
///
/// Several documents (`---`) in one file are rejected: a bot is already split into files,
/// and silently ignoring the second document would hide content from the designer.
pub(crate) fn parse(src: &str) -> Result<Option<Node>, SyntaxError> {
    let mut docs = Node::load_from_str(src).map_err(|e| SyntaxError {
        pos: marker_pos(e.marker()),
        message: e.info().to_string(),
    })?;
    if docs.len() > 1 {
        return Err(SyntaxError {
            pos: pos(&docs[1]),
            message: "a bot file holds one YAML document; found a second one".into(),
        });
    }
    Ok(docs.pop().filter(|d| !is_null(d)))
}

/// True for `~`, `null` and empty values.
pub(crate) fn is_null(node: &Node) -> bool {
    matches!(node.data, YamlDataOwned::Value(ScalarOwned::Null))
}

/// The mapping entries of `node`, in source order, or `None` when it is not a mapping.
pub(crate) fn entries(node: &Node) -> Option<Vec<(&Node, &Node)>> {
    match &node.data {
        YamlDataOwned::Mapping(m) => Some(m.iter().collect()),
        _ => None,
    }
}

/// The items of a sequence node, or `None` when it is not a sequence.
pub(crate) fn items(node: &Node) -> Option<&[Node]> {
    match &node.data {
        YamlDataOwned::Sequence(s) => Some(s.as_slice()),
        _ => None,
    }
}

/// The text of a string scalar (not of numbers or booleans).
pub(crate) fn as_str(node: &Node) -> Option<&str> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.as_str()),
        YamlDataOwned::Representation(s, _, _) => Some(s.as_str()),
        _ => None,
    }
}

/// A YAML boolean (`true`/`false`); anything else, including the text "yes", is `None`.
pub(crate) fn as_bool(node: &Node) -> Option<bool> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(*b),
        _ => None,
    }
}

/// Any scalar rendered as text: designers write `- 12` as an example and mean the text "12".
pub(crate) fn scalar_text(node: &Node) -> Option<String> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
        YamlDataOwned::Representation(s, _, _) => Some(s.clone()),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(i.to_string()),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => Some(f.to_string()),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(b.to_string()),
        _ => None,
    }
}

/// A scalar as a typed JSON value (`null`, bool, integer, float or string).
pub(crate) fn scalar_json(node: &Node) -> Option<serde_json::Value> {
    use serde_json::Value;
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Null) => Some(Value::Null),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(Value::Bool(*b)),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(Value::from(*i)),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => {
            serde_json::Number::from_f64(f.into_inner()).map(Value::Number)
        }
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(Value::String(s.clone())),
        YamlDataOwned::Representation(s, _, _) => Some(Value::String(s.clone())),
        _ => None,
    }
}

/// A non-negative integer scalar.
pub(crate) fn as_u64(node: &Node) -> Option<u64> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => u64::try_from(*i).ok(),
        _ => None,
    }
}

/// A number scalar (integer or float) as `f64`.
pub(crate) fn as_f64(node: &Node) -> Option<f64> {
    match &node.data {
        // i64 -> f64 may round above 2^53; bounds and thresholds never get near that.
        #[allow(clippy::cast_precision_loss)]
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(*i as f64),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => Some(f.into_inner()),
        _ => None,
    }
}

/// A short description of what kind of node this is, for "expected X, found Y" messages.
pub(crate) fn kind_name(node: &Node) -> &'static str {
    match &node.data {
        YamlDataOwned::Mapping(_) => "a mapping",
        YamlDataOwned::Sequence(_) => "a list",
        YamlDataOwned::Value(ScalarOwned::Null) => "nothing",
        YamlDataOwned::Value(ScalarOwned::Boolean(_)) => "a boolean",
        YamlDataOwned::Value(ScalarOwned::Integer(_)) => "an integer",
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(_)) => "a number",
        YamlDataOwned::Value(ScalarOwned::String(_)) | YamlDataOwned::Representation(..) => "text",
        YamlDataOwned::Tagged(..) => "a tagged value",
        YamlDataOwned::Alias(_) => "an alias",
        YamlDataOwned::BadValue => "an invalid value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let doc = parse("a:\n  b: 1\n").unwrap().unwrap();
        let (k, v) = entries(&doc).unwrap()[0];
        assert_eq!(pos(k), Pos { line: 1, col: 1 });
        let (k2, _) = entries(v).unwrap()[0];
        assert_eq!(pos(k2), Pos { line: 2, col: 3 });
    }

    #[test]
    fn empty_file_is_no_document() {
        assert!(parse("# only a comment\n").unwrap().is_none());
        assert!(parse("").unwrap().is_none());
    }

    #[test]
    fn second_document_is_rejected() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.pos.line, 3);
    }
}

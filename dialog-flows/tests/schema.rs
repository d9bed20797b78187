//! The JSON Schema (`schema/kefu-flows.schema.json`) stays in sync with the loader, and the
//! shipped bot's files validate against it.
//!
//! The validator below implements only the JSON Schema keywords our schema uses; it rejects
//! any other keyword, so the schema cannot quietly grow beyond what this test checks.

use std::collections::BTreeSet;
use std::path::Path;

use kefu_flows::{RESPONSE_KEYS, SLOT_TYPE_NAMES, STEP_KINDS, TOP_LEVEL_KEYS};
use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};
use serde_json::{Map, Value, json};

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/kefu-flows.schema.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn top_level_keys_match_the_loader() {
    let s = schema();
    assert_eq!(keys(&s["properties"]), set(&TOP_LEVEL_KEYS));
    assert_eq!(s["additionalProperties"], json!(false));
    assert_eq!(
        keys(&s["$defs"]["responses"]["properties"]),
        set(&RESPONSE_KEYS)
    );
}

#[test]
fn step_kinds_and_slot_types_match_the_loader() {
    let s = schema();
    let mut kinds = BTreeSet::new();
    for variant in s["$defs"]["step"]["oneOf"].as_array().unwrap() {
        if let Some(req) = variant.get("required") {
            kinds.insert(req[0].as_str().unwrap().to_string());
        }
    }
    assert_eq!(kinds, set(&STEP_KINDS));
    let mut types = BTreeSet::new();
    for variant in s["$defs"]["slot"]["oneOf"].as_array().unwrap() {
        let t = &variant["properties"]["type"];
        if t.get("$ref").is_some() {
            continue; // the entity-typed slot: any name that is not a built-in type
        }
        match (t.get("enum"), t.get("const")) {
            (Some(list), _) => types.extend(
                list.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string()),
            ),
            (_, Some(c)) => {
                types.insert(c.as_str().unwrap().to_string());
            }
            _ => panic!("slot variant without a type: {variant}"),
        }
    }
    assert_eq!(types, set(&SLOT_TYPE_NAMES));
}

#[test]
fn shipped_bot_files_validate() {
    let s = schema();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bots/shop");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = MarkedYamlOwned::load_from_str(&text).unwrap();
        let doc = to_json(&docs[0]);
        let mut errors = Vec::new();
        validate(&s, &s, &doc, "$", &mut errors);
        assert!(
            errors.is_empty(),
            "{}: {}",
            path.display(),
            errors.join("\n")
        );
        n += 1;
    }
    assert!(n >= 4, "found {n} files");
}

#[test]
fn the_validator_rejects_bad_files() {
    let s = schema();
    for bad in [
        json!({"flow": {}}),
        json!({"flows": {"f": {"steps": []}}}),
        json!({"flows": {"f": {"steps": [{"sya": "hi"}]}}}),
        json!({"flows": {"f": {"steps": [{"ask": "x"}]}}}),
        json!({"slots": {"s": {"type": "regex"}}}),
        json!({"slots": {"订单": {"type": "text"}}}),
        json!({"settings": {"max_fallbacks": 0}}),
        json!({"flows": {"f": {"steps": [{"generate": "p"}]}}}),
        json!({"flows": {"f": {"steps": [{"call": "kb", "on": {"timeout": "x"}}]}}}),
        json!({"slots": {"s": {"type": "enum"}}}),
        json!({"experiments": {"e": {"variants": ["only_one"]}}}),
        json!({"policies": {"p": {"say": "hi"}}}),
        json!({"entities": {"e": {"regex": "x", "lookup": ["a"]}}}),
        json!({"flows": {"f": {"steps": [{"say": {"experiment": "e"}}]}}}),
    ] {
        let mut errors = Vec::new();
        validate(&s, &s, &bad, "$", &mut errors);
        assert!(!errors.is_empty(), "accepted {bad}");
    }
}

fn to_json(node: &MarkedYamlOwned) -> Value {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Null) => Value::Null,
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => json!(b),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => json!(i),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => json!(f.into_inner()),
        YamlDataOwned::Value(ScalarOwned::String(s)) => json!(s),
        YamlDataOwned::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        YamlDataOwned::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.data.as_str().unwrap().to_string(), to_json(v));
            }
            Value::Object(out)
        }
        other => panic!("unexpected YAML node {other:?}"),
    }
}

/// Minimal JSON Schema (2020-12 subset) validator: the keywords used by our schema only.
fn validate(root: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    const KNOWN: [&str; 22] = [
        "$schema",
        "$id",
        "title",
        "description",
        "type",
        "properties",
        "additionalProperties",
        "required",
        "$ref",
        "$defs",
        "oneOf",
        "not",
        "items",
        "enum",
        "const",
        "minItems",
        "minProperties",
        "maxProperties",
        "pattern",
        "propertyNames",
        "minimum",
        "maximum",
    ];
    let Some(obj) = schema.as_object() else {
        return;
    };
    for key in obj.keys() {
        assert!(
            KNOWN.contains(&key.as_str()),
            "schema keyword `{key}` is not checked by this test"
        );
    }
    let mut fail = |msg: String| errors.push(format!("{at}: {msg}"));
    if let Some(t) = obj.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            return fail(format!("expected {t}, found {v}"));
        }
    }
    if let Some(e) = obj.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        fail(format!("{v} is not one of {}", Value::Array(e.clone())));
    }
    if let Some(c) = obj.get("const")
        && c != v
    {
        fail(format!("expected {c}, found {v}"));
    }
    if let (Some(p), Some(s)) = (obj.get("pattern").and_then(Value::as_str), v.as_str())
        && !regex::Regex::new(p).unwrap().is_match(s)
    {
        fail(format!("`{s}` does not match {p}"));
    }
    if let (Some(lo), Some(x)) = (obj.get("minimum").and_then(Value::as_f64), v.as_f64())
        && x < lo
    {
        fail(format!("{x} is below the minimum {lo}"));
    }
    if let (Some(hi), Some(x)) = (obj.get("maximum").and_then(Value::as_f64), v.as_f64())
        && x > hi
    {
        fail(format!("{x} is above the maximum {hi}"));
    }
    if let Some(one_of) = obj.get("oneOf").and_then(Value::as_array) {
        let matching = one_of
            .iter()
            .filter(|s| {
                let mut e = Vec::new();
                validate(root, s, v, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            fail(format!("{matching} of the oneOf alternatives match {v}"));
        }
    }
    if let Some(not) = obj.get("not") {
        let mut e = Vec::new();
        validate(root, not, v, at, &mut e);
        if e.is_empty() {
            fail(format!("{v} matches a `not` schema"));
        }
    }
    if let Some(map) = v.as_object() {
        let n = map.len() as u64;
        if obj
            .get("minProperties")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            fail("too few properties".into());
        }
        if obj
            .get("maxProperties")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            fail("too many properties".into());
        }
        for r in obj
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = r.as_str()
                && !map.contains_key(r)
            {
                fail(format!("missing `{r}`"));
            }
        }
    }
    if let Some(items) = v.as_array()
        && obj
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| (items.len() as u64) < m)
    {
        fail("too few items".into());
    }
    // Recursive checks push into `errors` directly, so they come after `fail`'s last use.
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local $ref");
        validate(root, &root["$defs"][name], v, at, errors);
    }
    if let (Some(items), Some(item_schema)) = (v.as_array(), obj.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(root, item_schema, item, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(map) = v.as_object() {
        let props = obj.get("properties").and_then(Value::as_object);
        for (k, val) in map {
            let here = format!("{at}.{k}");
            if let Some(names) = obj.get("propertyNames") {
                validate(root, names, &json!(k), &here, errors);
            }
            match (
                props.and_then(|p| p.get(k)),
                obj.get("additionalProperties"),
            ) {
                (Some(s), _) => validate(root, s, val, &here, errors),
                (None, Some(Value::Bool(false))) => errors.push(format!("{here}: unknown key")),
                (None, Some(extra)) => validate(root, extra, val, &here, errors),
                (None, None) => {}
            }
        }
    }
}

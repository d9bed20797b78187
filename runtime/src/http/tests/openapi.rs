//! The OpenAPI document matches the router: same routes, same methods, same auth.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

use super::{call, get, test_app};
use crate::http::handlers::OPENAPI_JSON;
use crate::http::{Access, HttpConfig, routes};

fn document() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json parses")
}

#[test]
fn document_is_openapi_3_1_with_resolvable_refs() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string());
    // Every local $ref points at something that exists.
    fn walk(node: &Value, doc: &Value) {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let pointer = target.strip_prefix('#').expect("local ref");
                    assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
                }
                map.values().for_each(|v| walk(v, doc));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, doc)),
            _ => {}
        }
    }
    walk(&doc, &doc);
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let doc = document();
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let mut routed = BTreeSet::new();
    for (spec, _) in routes() {
        routed.insert((spec.method.to_string(), spec.path.to_owned()));
        let operation = &paths[spec.path][spec.method.as_str().to_lowercase()];
        let security = operation["security"].as_array();
        match spec.access {
            Access::Open => assert_eq!(
                security.map(Vec::len),
                Some(0),
                "{} must declare `security: []`",
                spec.path
            ),
            Access::ApiKey | Access::ApiKeyOrQuery => assert!(
                security.is_some_and(|s| !s.is_empty()),
                "{} must declare its security",
                spec.path
            ),
        }
        let has_query_key =
            security.is_some_and(|s| s.iter().any(|r| r.get("apiKeyQuery").is_some()));
        assert_eq!(
            has_query_key,
            spec.access == Access::ApiKeyOrQuery,
            "{}",
            spec.path
        );
    }
    // The tickets API is mounted beside ours by `kefu serve` (behind the same keys; header
    // only, no `?api_key=`).
    for (method, path) in kefu_tickets::api::ROUTES {
        routed.insert(((*method).to_owned(), (*path).to_owned()));
        let operation = &paths[*path][method.to_lowercase()];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let security = operation["security"].as_array();
        assert!(
            security
                .is_some_and(|s| !s.is_empty() && s.iter().all(|r| r.get("apiKeyQuery").is_none())),
            "{method} {path} must declare header API-key security"
        );
        let responses = operation["responses"].as_object().unwrap();
        for status in ["401", "422", "500", "503"] {
            assert!(
                responses.contains_key(status),
                "{method} {path} does not document {status}"
            );
        }
    }
    assert_eq!(documented, routed);
}

#[tokio::test]
async fn tickets_routes_are_behind_the_api_key() {
    let key = "k".repeat(20);
    let config = HttpConfig {
        api_keys: vec![key.clone()],
        ..HttpConfig::default()
    };
    let store: std::sync::Arc<dyn kefu_tickets::TicketStore> =
        std::sync::Arc::new(kefu_tickets::MemoryTicketStore::new());
    let (app, _) = test_app(config.clone());
    let app = app.merge(crate::http::protect(
        kefu_tickets::api::router(store),
        &config,
    ));
    for (method, path) in kefu_tickets::api::ROUTES {
        let uri = path.replace("{id}", "T-000001");
        let request = |auth: Option<&str>| {
            let mut builder = Request::builder()
                .method(*method)
                .uri(&uri)
                .header("content-type", "application/json");
            if let Some(k) = auth {
                builder = builder.header("x-api-key", k);
            }
            builder.body(Body::from("{}")).unwrap()
        };
        let answer = call(&app, request(None)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(answer.body["error"]["code"], "unauthorized");
        let answer = call(&app, request(Some(&key))).await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert!(!answer.status.is_server_error(), "{method} {uri}");
    }
}

#[tokio::test]
async fn every_route_is_served_by_the_router() {
    let (app, _) = test_app(HttpConfig::default());
    for (spec, _) in routes() {
        let uri = spec.path.replace("{key}", "probe");
        let request = Request::builder()
            .method(spec.method.clone())
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let answer = call(&app, request).await;
        let code = answer.body["error"]["code"].as_str().unwrap_or("");
        assert!(
            code != "not_found" && code != "method_not_allowed",
            "{} {uri} is not routed: {}",
            spec.method,
            answer.body
        );
        assert!(!answer.status.is_server_error(), "{uri}: {}", answer.status);
    }
}

#[tokio::test]
async fn the_document_is_served() {
    let (app, _) = test_app(HttpConfig::default());
    let answer = call(&app, get("/openapi.json")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, document());
}

//! A demo order back-end for the shipped shop bot: an axum router over a JSON fixture.
//!
//! It behaves like a small real back-end so that the skill's configuration and failure handling
//! are exercised for real: it requires a token header ([`DEMO_AUTH_HEADER`], compared in
//! constant time), answers `GET /demo/orders/{id}` with the order as stored in the fixture (its
//! own field names: `order_no`, `customer_id`, `state`, ...; see [`OrdersConfig::for_demo`]), and,
//! when the caller's user id is passed ([`DEMO_USER_HEADER`] or `?user=`), answers 404 for
//! orders of other users — the same as for unknown ids. Errors are JSON
//! `{"error": {"code", "message"}}`.
//!
//! The fixture is `{"orders": [ ... ]}` where each order has a unique string `order_no` and a
//! string `customer_id`; it is read once when the router is built.
//!
//! [`OrdersConfig::for_demo`]: crate::OrdersConfig::for_demo

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

/// The header the demo back-end requires, carrying its token.
pub const DEMO_AUTH_HEADER: &str = "X-Demo-Orders-Token";
/// The header the demo back-end reads the caller's user id from (optional).
pub const DEMO_USER_HEADER: &str = "X-Kefu-User";
/// Where the shipped fixture lives, relative to the shop bot's directory.
pub const DEMO_FIXTURE: &str = "data/demo_orders.json";

/// The demo back-end's data and token. Cheap to clone.
#[derive(Clone)]
pub struct DemoOrders {
    inner: Arc<Inner>,
}

struct Inner {
    /// Orders by `order_no`.
    orders: HashMap<String, Value>,
    token: String,
}

impl std::fmt::Debug for DemoOrders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoOrders")
            .field("orders", &self.inner.orders.len())
            .finish_non_exhaustive()
    }
}

/// A fixture that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The fixture file could not be read.
    #[error("demo orders fixture {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The fixture is not JSON of the expected shape.
    #[error("demo orders fixture: {0}")]
    Invalid(String),
    /// The token is empty (the demo must not run unauthenticated).
    #[error("the demo orders token must not be empty")]
    EmptyToken,
}

#[derive(Deserialize)]
struct Fixture {
    orders: Vec<Value>,
}

impl DemoOrders {
    /// Parses a fixture (`{"orders": [...]}`) and requires `token` on every request.
    pub fn from_json(json: &str, token: impl Into<String>) -> Result<Self, DemoError> {
        let token = token.into();
        if token.is_empty() {
            return Err(DemoError::EmptyToken);
        }
        let fixture: Fixture =
            serde_json::from_str(json).map_err(|e| DemoError::Invalid(e.to_string()))?;
        let mut orders = HashMap::with_capacity(fixture.orders.len());
        for (index, order) in fixture.orders.into_iter().enumerate() {
            let id = order
                .get("order_no")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    DemoError::Invalid(format!("order #{index} has no string `order_no`"))
                })?
                .to_owned();
            if order.get("customer_id").and_then(Value::as_str).is_none() {
                return Err(DemoError::Invalid(format!(
                    "order {id} has no string `customer_id`"
                )));
            }
            if orders.insert(id.clone(), order).is_some() {
                return Err(DemoError::Invalid(format!("order {id} appears twice")));
            }
        }
        Ok(DemoOrders {
            inner: Arc::new(Inner { orders, token }),
        })
    }

    /// Reads and parses the fixture at `path`.
    pub fn load(path: &Path, token: impl Into<String>) -> Result<Self, DemoError> {
        let text = std::fs::read_to_string(path).map_err(|source| DemoError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text, token)
    }

    /// How many orders the fixture holds.
    pub fn len(&self) -> usize {
        self.inner.orders.len()
    }

    /// Whether the fixture holds no orders.
    pub fn is_empty(&self) -> bool {
        self.inner.orders.is_empty()
    }

    /// The ids of `user`'s orders, sorted (for demos and tests).
    pub fn order_ids_of(&self, user: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .inner
            .orders
            .iter()
            .filter(|(_, o)| o.get("customer_id").and_then(Value::as_str) == Some(user))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// The demo back-end's routes: `GET /demo/orders/{id}`.
pub fn router(demo: DemoOrders) -> Router {
    Router::new()
        .route("/demo/orders/{id}", get(orders_get))
        .with_state(demo)
}

#[derive(Deserialize)]
struct UserQuery {
    user: Option<String>,
}

async fn orders_get(
    State(demo): State<DemoOrders>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<UserQuery>,
    headers: HeaderMap,
) -> Response {
    let presented = headers
        .get(DEMO_AUTH_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !bool::from(presented.ct_eq(demo.inner.token.as_bytes())) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid token is required",
        );
    }
    let user = headers
        .get(DEMO_USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.user);
    let order = demo.inner.orders.get(&id).filter(|order| {
        user.as_deref()
            .is_none_or(|u| order.get("customer_id").and_then(Value::as_str) == Some(u))
    });
    match order {
        Some(order) => axum::Json(order.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "order_not_found", "no such order"),
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_fixture_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../dialog-flows/bots/shop")
            .join(DEMO_FIXTURE);
        let demo = DemoOrders::load(&path, "t").unwrap();
        assert!(demo.len() >= 20, "{}", demo.len());
        assert!(!demo.order_ids_of("u-alice").is_empty());
        assert!(!demo.order_ids_of("u-bob").is_empty());
    }

    #[test]
    fn bad_fixtures_are_refused() {
        assert!(matches!(
            DemoOrders::from_json(r#"{"orders": []}"#, ""),
            Err(DemoError::EmptyToken)
        ));
        let dup = r#"{"orders": [{"order_no": "A1", "customer_id": "u"}, {"order_no": "A1", "customer_id": "v"}]}"#;
        assert!(
            DemoOrders::from_json(dup, "t")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let no_owner = r#"{"orders": [{"order_no": "A1"}]}"#;
        assert!(DemoOrders::from_json(no_owner, "t").is_err());
        assert!(DemoOrders::from_json("[]", "t").is_err());
    }
}

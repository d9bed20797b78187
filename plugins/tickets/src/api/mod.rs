//! The tickets REST API: an axum [`Router`] over any [`TicketStore`].
//!
//! | method and path | does | success |
//! |---|---|---|
//! | `POST /v1/tickets` | open a ticket | 201 + ticket, `Location` |
//! | `GET /v1/tickets?user=&status=&assignee=&tenant=&limit=&cursor=` | list, newest first | 200 `{tickets, next_cursor}` |
//! | `GET /v1/tickets/{id}` | one ticket | 200 ticket |
//! | `PATCH /v1/tickets/{id}` | change title, description, status, priority, tags | 200 ticket |
//! | `POST /v1/tickets/{id}/comments` | add a comment | 201 event |
//! | `POST /v1/tickets/{id}/assign` | set (`"assignee": "x"`) or clear (`null`) the assignee | 200 ticket |
//! | `POST /v1/tickets/{id}/close` | close, optional `resolution` | 200 ticket |
//! | `POST /v1/tickets/{id}/reopen` | reopen a closed ticket, optional `reason` | 200 ticket |
//! | `GET /v1/tickets/{id}/events?after=&limit=` | the ticket's history, oldest first | 200 `{events}` |
//!
//! Every write body may carry `actor` (who does it, recorded in the event; `api` otherwise).
//! Bodies are strict (`deny_unknown_fields`), at most [`MAX_BODY_BYTES`]. Errors are
//! [`ApiError`]s. The router has no authentication and no fallback of its own: the runtime
//! mounts it behind its API-key layer and next to its own routes.

mod error;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Deserializer};
use serde_json::json;

pub use error::{ApiError, ApiJson, ApiQuery};

use crate::error::TicketError;
use crate::model::{Change, NewTicket, TicketId, TicketPatch};
use crate::store::{TicketQuery, TicketStore};

/// Largest accepted request body, in bytes (a description or comment is at most 10,000
/// characters, which is under 40 KB of UTF-8).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Who a change is recorded as when the body names nobody.
const DEFAULT_ACTOR: &str = "api";

type Store = Arc<dyn TicketStore>;

/// Every route of [`router`] as `(method, path)`, in axum's and OpenAPI's `{param}` syntax. The
/// runtime's OpenAPI test checks its document against this table, and this crate's tests check
/// the table against the router, so the document cannot drift from what is served.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/tickets"),
    ("GET", "/v1/tickets"),
    ("GET", "/v1/tickets/{id}"),
    ("PATCH", "/v1/tickets/{id}"),
    ("POST", "/v1/tickets/{id}/comments"),
    ("POST", "/v1/tickets/{id}/assign"),
    ("POST", "/v1/tickets/{id}/close"),
    ("POST", "/v1/tickets/{id}/reopen"),
    ("GET", "/v1/tickets/{id}/events"),
];

/// The tickets API routes, with `store` as state. See the module docs.
pub fn router(store: Arc<dyn TicketStore>) -> Router {
    Router::new()
        .route("/v1/tickets", post(tickets_create).get(tickets_list))
        .route("/v1/tickets/{id}", get(tickets_get).patch(tickets_update))
        .route("/v1/tickets/{id}/comments", post(comments_post))
        .route("/v1/tickets/{id}/assign", post(tickets_assign))
        .route("/v1/tickets/{id}/close", post(tickets_close))
        .route("/v1/tickets/{id}/reopen", post(tickets_reopen))
        .route("/v1/tickets/{id}/events", get(events_list))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(store)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    user: String,
    title: String,
    #[serde(default)]
    description: String,
    priority: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    tenant: Option<String>,
    session: Option<String>,
    channel: Option<String>,
    actor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    title: Option<String>,
    description: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    tags: Option<Vec<String>>,
    actor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    body: String,
    author: Option<String>,
    #[serde(default)]
    internal: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    /// Absent: an error (so `{}` does not silently unassign); `null`: unassign.
    #[serde(default, deserialize_with = "present")]
    assignee: Option<Option<String>>,
    actor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    resolution: Option<String>,
    actor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReopenBody {
    reason: Option<String>,
    actor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    tenant: Option<String>,
    user: Option<String>,
    status: Option<String>,
    assignee: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// Distinguishes a present `null` (`Some(None)`) from an absent field (`None`, via `default`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn ticket_id(path: Result<Path<String>, PathRejection>) -> Result<TicketId, ApiError> {
    let Path(raw) = path.map_err(|_| TicketError::InvalidId(String::new()))?;
    Ok(raw.parse::<TicketId>()?)
}

fn actor(actor: Option<String>) -> String {
    actor
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ACTOR.to_owned())
}

fn blank_to_none(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

async fn tickets_create(
    State(store): State<Store>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let new = NewTicket {
        tenant: body.tenant.unwrap_or_default(),
        user: body.user,
        title: body.title,
        description: body.description,
        priority: body.priority.as_deref().map(str::parse).transpose()?,
        tags: body.tags,
        session: body.session,
        channel: body.channel,
    };
    let ticket = store.create(new, &actor(body.actor)).await?;
    let location = HeaderValue::from_str(&format!("/v1/tickets/{}", ticket.id))
        .unwrap_or_else(|_| HeaderValue::from_static("/v1/tickets"));
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(ticket),
    )
        .into_response())
}

async fn tickets_get(
    State(store): State<Store>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let ticket = store.get(ticket_id(path)?).await?;
    Ok(axum::Json(ticket).into_response())
}

async fn tickets_list(
    State(store): State<Store>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let query = TicketQuery {
        tenant: blank_to_none(q.tenant),
        user: blank_to_none(q.user),
        status: blank_to_none(q.status)
            .as_deref()
            .map(str::parse)
            .transpose()?,
        assignee: blank_to_none(q.assignee),
        limit: q.limit.unwrap_or(0),
        cursor: blank_to_none(q.cursor)
            .map(|c| c.parse().map_err(|_| TicketError::InvalidCursor))
            .transpose()?,
    };
    let page = store.list(&query).await?;
    Ok(axum::Json(page).into_response())
}

async fn tickets_update(
    State(store): State<Store>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Response, ApiError> {
    let id = ticket_id(path)?;
    let patch = TicketPatch {
        title: body.title,
        description: body.description,
        status: body.status.as_deref().map(str::parse).transpose()?,
        priority: body.priority.as_deref().map(str::parse).transpose()?,
        tags: body.tags,
    };
    let changed = store
        .change(id, &actor(body.actor), Change::Update(patch))
        .await?;
    Ok(axum::Json(changed.ticket).into_response())
}

async fn comments_post(
    State(store): State<Store>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<CommentBody>,
) -> Result<Response, ApiError> {
    let id = ticket_id(path)?;
    let change = Change::Comment {
        body: body.body,
        internal: body.internal,
    };
    let changed = store.change(id, &actor(body.author), change).await?;
    Ok((StatusCode::CREATED, axum::Json(changed.event)).into_response())
}

async fn tickets_assign(
    State(store): State<Store>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<AssignBody>,
) -> Result<Response, ApiError> {
    let id = ticket_id(path)?;
    let Some(assignee) = body.assignee else {
        return Err(ApiError::InvalidRequest {
            detail: "missing field `assignee` (null to unassign)".to_owned(),
        });
    };
    let changed = store
        .change(id, &actor(body.actor), Change::Assign(assignee))
        .await?;
    Ok(axum::Json(changed.ticket).into_response())
}

async fn tickets_close(
    State(store): State<Store>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<CloseBody>,
) -> Result<Response, ApiError> {
    let id = ticket_id(path)?;
    let change = Change::Close {
        resolution: body.resolution,
    };
    let changed = store.change(id, &actor(body.actor), change).await?;
    Ok(axum::Json(changed.ticket).into_response())
}

async fn tickets_reopen(
    State(store): State<Store>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<ReopenBody>,
) -> Result<Response, ApiError> {
    let id = ticket_id(path)?;
    let change = Change::Reopen {
        reason: body.reason,
    };
    let changed = store.change(id, &actor(body.actor), change).await?;
    Ok(axum::Json(changed.ticket).into_response())
}

async fn events_list(
    State(store): State<Store>,
    path: Result<Path<String>, PathRejection>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let id = ticket_id(path)?;
    let events = store
        .events(id, q.after.unwrap_or(0), q.limit.unwrap_or(usize::MAX))
        .await?;
    Ok(axum::Json(json!({ "events": events })).into_response())
}

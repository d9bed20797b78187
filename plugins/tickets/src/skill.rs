//! [`TicketsSkill`]: the flows' way to open a ticket (`tickets.create`) and to tell a customer
//! where their tickets stand (`tickets.status`).
//!
//! Identity invariant: the ticket's customer is the [`kefu_plugin::Caller`] (tenant and user, set
//! by the runtime), never an argument, and `tickets.status` only ever shows the caller's own
//! tickets: someone else's ticket id is answered exactly like an unknown one, and logged.
//! Internal comments and the assignee are not part of what the skill returns (flows may show
//! the data to the customer).

use std::sync::Arc;

use kefu_plugin::{Caller, Skill, SkillError, SkillInfo, SkillOutcome, SkillRequest, async_trait};
use serde_json::{Value, json};

use crate::error::TicketError;
use crate::model::{NewTicket, Priority, Ticket, TicketId};
use crate::store::{TicketQuery, TicketStore};

/// The name of the skill that opens a ticket.
pub const CREATE_SKILL: &str = "tickets.create";
/// The name of the skill that reports on the caller's tickets.
pub const STATUS_SKILL: &str = "tickets.status";
/// How many tickets `tickets.status` lists when no id is given.
const STATUS_LIST_SIZE: usize = 5;
/// The reason for both "no such ticket" and "not this customer's ticket", identical on purpose.
const NOT_FOUND_REASON: &str = "no ticket with this number for this customer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Status,
}

/// One of the two ticket skills over a shared store. Build with [`TicketsSkill::create`],
/// [`TicketsSkill::status`] or both with [`TicketsSkill::all`].
pub struct TicketsSkill {
    store: Arc<dyn TicketStore>,
    kind: Kind,
}

impl std::fmt::Debug for TicketsSkill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketsSkill")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

impl TicketsSkill {
    /// `tickets.create`: opens a ticket for the caller. Arguments: `title` (required),
    /// `description`, `priority` (low, normal, high, urgent), `tags` (list or comma-separated).
    pub fn create(store: Arc<dyn TicketStore>) -> Self {
        TicketsSkill {
            store,
            kind: Kind::Create,
        }
    }

    /// `tickets.status`: one of the caller's tickets (`ticket_id`) or their latest ones.
    pub fn status(store: Arc<dyn TicketStore>) -> Self {
        TicketsSkill {
            store,
            kind: Kind::Status,
        }
    }

    /// Both skills, ready to register.
    pub fn all(store: Arc<dyn TicketStore>) -> [TicketsSkill; 2] {
        [Self::create(store.clone()), Self::status(store)]
    }

    async fn create_ticket(&self, req: &SkillRequest) -> Result<SkillOutcome, SkillError> {
        let title = req.arg_str("title")?;
        let priority = req
            .opt_str("priority")
            .map(|p| p.parse::<Priority>())
            .transpose()
            .map_err(|e| bad_argument("priority", &e))?;
        let new = NewTicket {
            tenant: req.caller.tenant.clone(),
            user: req.caller.user.clone(),
            title,
            description: req.opt_str("description").unwrap_or_default(),
            priority,
            tags: tags(req)?,
            session: Some(req.caller.session.clone()),
            channel: Some(req.caller.channel.clone()),
        };
        let ticket = self
            .store
            .create(new, "bot")
            .await
            .map_err(|e| skill_error(&e))?;
        Ok(SkillOutcome::found(customer_view(&ticket)))
    }

    async fn ticket_status(&self, req: &SkillRequest) -> Result<SkillOutcome, SkillError> {
        let tenant = tenant_of(&req.caller);
        let Some(raw_id) = req.opt_str("ticket_id") else {
            let query = TicketQuery {
                tenant: Some(tenant.to_owned()),
                user: Some(req.caller.user.clone()),
                limit: STATUS_LIST_SIZE,
                ..TicketQuery::default()
            };
            let page = self.store.list(&query).await.map_err(|e| skill_error(&e))?;
            if page.tickets.is_empty() {
                return Ok(SkillOutcome::not_found("this customer has no tickets"));
            }
            let tickets: Vec<Value> = page.tickets.iter().map(customer_view).collect();
            return Ok(SkillOutcome::found(
                json!({ "count": tickets.len(), "tickets": tickets }),
            ));
        };
        let id: TicketId = raw_id
            .parse()
            .map_err(|e: TicketError| bad_argument("ticket_id", &e))?;
        let ticket = match self.store.get(id).await {
            Ok(ticket) => ticket,
            Err(TicketError::NotFound(_)) => return Ok(SkillOutcome::not_found(NOT_FOUND_REASON)),
            Err(e) => return Err(skill_error(&e)),
        };
        if ticket.user != req.caller.user || ticket.tenant != tenant {
            tracing::warn!(
                ticket = %id,
                user = %req.caller.user,
                tenant,
                session = %req.caller.session,
                "Ticket belongs to another customer; answered not found"
            );
            return Ok(SkillOutcome::not_found(NOT_FOUND_REASON));
        }
        Ok(SkillOutcome::found(customer_view(&ticket)))
    }
}

/// The tenant tickets are filed under: the model stores `default` for an empty one.
fn tenant_of(caller: &Caller) -> &str {
    let tenant = caller.tenant.trim();
    if tenant.is_empty() { "default" } else { tenant }
}

/// `tags` as a list of strings or one comma-separated string.
fn tags(req: &SkillRequest) -> Result<Vec<String>, SkillError> {
    match req.arg("tags") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split([',', '，'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| SkillError::BadArgument {
                        name: "tags".to_owned(),
                        reason: "expected a list of strings".to_owned(),
                    })
            })
            .collect(),
        Some(_) => Err(SkillError::BadArgument {
            name: "tags".to_owned(),
            reason: "expected a list of strings or a comma-separated string".to_owned(),
        }),
    }
}

/// What a customer may see of a ticket.
fn customer_view(ticket: &Ticket) -> Value {
    json!({
        "id": ticket.id,
        "title": ticket.title,
        "description": ticket.description,
        "status": ticket.status,
        "priority": ticket.priority,
        "tags": ticket.tags,
        "created_at_ms": ticket.created_at_ms,
        "updated_at_ms": ticket.updated_at_ms,
        "closed_at_ms": ticket.closed_at_ms,
    })
}

fn bad_argument(name: &str, err: &TicketError) -> SkillError {
    SkillError::BadArgument {
        name: name.to_owned(),
        reason: err.to_string(),
    }
}

/// Input errors are the flow's arguments (or the caller's identity) being wrong; anything
/// else is the store failing.
fn skill_error(err: &TicketError) -> SkillError {
    match err {
        TicketError::EmptyTitle => bad_argument("title", err),
        TicketError::TooLong { field, .. } | TicketError::InvalidField { field, .. } => {
            bad_argument(field, err)
        }
        e if e.is_bad_input() => bad_argument("arguments", e),
        other => SkillError::Backend(other.to_string()),
    }
}

#[async_trait]
impl Skill for TicketsSkill {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Create => CREATE_SKILL,
            Kind::Status => STATUS_SKILL,
        }
    }

    fn info(&self) -> SkillInfo {
        match self.kind {
            Kind::Create => SkillInfo {
                description: "Opens a ticket for the customer (e.g. a complaint that needs \
                              follow-up); answers the new ticket's id and status."
                    .to_owned(),
                required_args: vec!["title".to_owned()],
                optional_args: vec![
                    "description".to_owned(),
                    "priority".to_owned(),
                    "tags".to_owned(),
                ],
            },
            Kind::Status => SkillInfo {
                description: "The status of one of the customer's tickets, or their latest \
                              tickets when no id is given. Other customers' tickets are not found."
                    .to_owned(),
                required_args: Vec::new(),
                optional_args: vec!["ticket_id".to_owned()],
            },
        }
    }

    async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
        if req.caller.user.trim().is_empty() {
            return Ok(SkillOutcome::declined(
                "tickets need an identified customer",
            ));
        }
        match self.kind {
            Kind::Create => self.create_ticket(&req).await,
            Kind::Status => self.ticket_status(&req).await,
        }
    }
}

//! Tickets, their events and the lifecycle rules, as pure data and functions (no storage).
//!
//! Every store applies changes through [`Ticket::create`] and [`Ticket::apply`], so the rules
//! live in one place: validation of every text field, and the lifecycle
//! (`open`/`in_progress`/`pending`/`resolved` freely among themselves, `closed` only through
//! [`Change::Close`], and a closed ticket accepts nothing but [`Change::Reopen`]).
//!
//! Invariants: a ticket's `version` counts its events (the creation is event 1); an event's
//! `seq` is the ticket version it produced, so events of one ticket are numbered 1, 2, 3, ...
//! without gaps. A change that changes nothing produces no event and no new version.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Result, TicketError};

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest description or comment, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Longest identifier (user, tenant, assignee, actor, session, channel), in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Most tags on one ticket.
pub const MAX_TAGS: usize = 20;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 50;

/// A ticket's id: a number shown as `T-000123` (at least six digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TicketId(pub u64);

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T-{:06}", self.0)
    }
}

impl FromStr for TicketId {
    type Err = TicketError;

    /// Accepts `T-000123`, `t-123` and surrounding blanks; the number must be positive.
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || TicketError::InvalidId(s.chars().take(40).collect());
        let trimmed = s.trim();
        let digits = trimmed
            .strip_prefix("T-")
            .or_else(|| trimmed.strip_prefix("t-"))
            .ok_or_else(invalid)?;
        if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        match digits.parse::<u64>() {
            Ok(n) if n > 0 => Ok(TicketId(n)),
            _ => Err(invalid()),
        }
    }
}

impl Serialize for TicketId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TicketId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a ticket is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// New, nobody working on it yet.
    Open,
    /// Someone is working on it.
    InProgress,
    /// Waiting for the customer or a third party.
    Pending,
    /// A solution was given; waiting to be closed.
    Resolved,
    /// Done. Only reopening changes a closed ticket.
    Closed,
}

impl Status {
    /// The wire name (`in_progress`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::Pending => "pending",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "open" => Ok(Status::Open),
            "in_progress" => Ok(Status::InProgress),
            "pending" => Ok(Status::Pending),
            "resolved" => Ok(Status::Resolved),
            "closed" => Ok(Status::Closed),
            other => Err(TicketError::UnknownStatus(other.chars().take(40).collect())),
        }
    }
}

/// How urgent a ticket is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Whenever there is time.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Before normal ones.
    High,
    /// Now (complaints with strong negative emotion, outages).
    Urgent,
}

impl FromStr for Priority {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            "urgent" => Ok(Priority::Urgent),
            other => Err(TicketError::UnknownPriority(
                other.chars().take(40).collect(),
            )),
        }
    }
}

/// A ticket as stored and served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// `T-000123`.
    pub id: TicketId,
    /// The tenant the customer belongs to.
    pub tenant: String,
    /// The customer the ticket is for (the conversation's authenticated user).
    pub user: String,
    /// One line saying what it is about.
    pub title: String,
    /// The details.
    pub description: String,
    /// Where it is in its lifecycle.
    pub status: Status,
    /// How urgent.
    pub priority: Priority,
    /// Who works on it, if anyone.
    pub assignee: Option<String>,
    /// Free labels (`complaint`, `refund`).
    pub tags: Vec<String>,
    /// The conversation it came from, if any.
    pub session: Option<String>,
    /// The channel it came from, if any.
    pub channel: Option<String>,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Time of the last change, ms since the Unix epoch.
    pub updated_at_ms: u64,
    /// When it was last closed, if it is closed.
    pub closed_at_ms: Option<u64>,
    /// How many events the ticket has (1 after creation).
    pub version: u64,
}

/// What is needed to open a ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTicket {
    /// The tenant; `default` when empty.
    pub tenant: String,
    /// The customer.
    pub user: String,
    /// One line saying what it is about.
    pub title: String,
    /// The details (may be empty).
    pub description: String,
    /// How urgent (normal when absent).
    pub priority: Option<Priority>,
    /// Free labels.
    pub tags: Vec<String>,
    /// The conversation it came from.
    pub session: Option<String>,
    /// The channel it came from.
    pub channel: Option<String>,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketPatch {
    /// A new title.
    pub title: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// A new status (not `closed`: use [`Change::Close`]).
    pub status: Option<Status>,
    /// A new priority.
    pub priority: Option<Priority>,
    /// New tags (replacing the old ones).
    pub tags: Option<Vec<String>>,
}

/// One change to an existing ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Change fields.
    Update(TicketPatch),
    /// Give the ticket to someone (`None`: to nobody).
    Assign(Option<String>),
    /// Add a comment.
    Comment {
        /// The text.
        body: String,
        /// An internal note (not shown to the customer).
        internal: bool,
    },
    /// Close it.
    Close {
        /// How it was resolved.
        resolution: Option<String>,
    },
    /// Open a closed ticket again.
    Reopen {
        /// Why.
        reason: Option<String>,
    },
}

/// Something that happened to a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEvent {
    /// The ticket.
    pub ticket_id: TicketId,
    /// Its number among the ticket's events, from 1.
    pub seq: u64,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Who did it (`api`, `agent:alice`, `bot`, a user id).
    pub actor: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, with the facts a dashboard needs without re-reading the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The ticket was opened.
    Created {
        /// The customer.
        user: String,
        /// The title.
        title: String,
        /// The priority.
        priority: Priority,
    },
    /// Fields changed.
    Updated {
        /// Each changed field with its old and new value.
        changes: Vec<FieldChange>,
    },
    /// The assignee changed.
    Assigned {
        /// The previous assignee.
        from: Option<String>,
        /// The new assignee.
        to: Option<String>,
    },
    /// A comment was added.
    Commented {
        /// The text.
        body: String,
        /// An internal note.
        internal: bool,
    },
    /// The ticket was closed.
    Closed {
        /// How it was resolved.
        resolution: Option<String>,
    },
    /// The ticket was opened again.
    Reopened {
        /// Why.
        reason: Option<String>,
    },
}

/// One changed field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field name.
    pub field: String,
    /// The old value.
    pub from: Value,
    /// The new value.
    pub to: Value,
}

/// The current time in ms since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn check_len(field: &'static str, text: &str, max: usize) -> Result<()> {
    if text.chars().count() > max {
        return Err(TicketError::TooLong { field, max });
    }
    Ok(())
}

/// A trimmed identifier: non-empty, bounded, no control characters (also keeps NUL out of the
/// storage index keys).
pub(crate) fn check_name(field: &'static str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(TicketError::InvalidField {
            field,
            reason: "must not be empty".to_owned(),
        });
    }
    check_len(field, value, MAX_NAME_CHARS)?;
    if value.chars().any(char::is_control) {
        return Err(TicketError::InvalidField {
            field,
            reason: "must not contain control characters".to_owned(),
        });
    }
    Ok(value.to_owned())
}

fn check_title(title: &str) -> Result<String> {
    let title = title.trim();
    if title.is_empty() {
        return Err(TicketError::EmptyTitle);
    }
    check_len("title", title, MAX_TITLE_CHARS)?;
    if title.chars().any(char::is_control) {
        return Err(TicketError::InvalidField {
            field: "title",
            reason: "must be one line without control characters".to_owned(),
        });
    }
    Ok(title.to_owned())
}

fn check_text(field: &'static str, text: &str) -> Result<String> {
    check_len(field, text, MAX_TEXT_CHARS)?;
    Ok(text.trim().to_owned())
}

fn check_tags(tags: &[String]) -> Result<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(TicketError::InvalidField {
            field: "tags",
            reason: format!("at most {MAX_TAGS} tags"),
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = check_name("tags", tag)?;
        check_len("tags", &tag, MAX_TAG_CHARS)?;
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

fn optional_name(field: &'static str, value: Option<&str>) -> Result<Option<String>> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| check_name(field, v))
        .transpose()
}

/// The result of applying a change: the new ticket, and what happened (`None`: nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The ticket after the change.
    pub ticket: Ticket,
    /// The event to record, if anything changed.
    pub event: Option<TicketEvent>,
}

impl Ticket {
    /// A new ticket with id `id` and its creation event, after validating `new`.
    pub fn create(id: TicketId, new: NewTicket, actor: &str, now: u64) -> Result<Applied> {
        let actor = check_name("actor", actor)?;
        let tenant = if new.tenant.trim().is_empty() {
            "default".to_owned()
        } else {
            check_name("tenant", &new.tenant)?
        };
        let ticket = Ticket {
            id,
            tenant,
            user: check_name("user", &new.user)?,
            title: check_title(&new.title)?,
            description: check_text("description", &new.description)?,
            status: Status::Open,
            priority: new.priority.unwrap_or_default(),
            assignee: None,
            tags: check_tags(&new.tags)?,
            session: optional_name("session", new.session.as_deref())?,
            channel: optional_name("channel", new.channel.as_deref())?,
            created_at_ms: now,
            updated_at_ms: now,
            closed_at_ms: None,
            version: 1,
        };
        let event = TicketEvent {
            ticket_id: id,
            seq: 1,
            at_ms: now,
            actor,
            kind: EventKind::Created {
                user: ticket.user.clone(),
                title: ticket.title.clone(),
                priority: ticket.priority,
            },
        };
        Ok(Applied {
            ticket,
            event: Some(event),
        })
    }

    /// The ticket after `change` by `actor` at `now`, or why the change is not allowed.
    pub fn apply(&self, actor: &str, change: Change, now: u64) -> Result<Applied> {
        let actor = check_name("actor", actor)?;
        let mut next = self.clone();
        let kind = match change {
            Change::Reopen { reason } => {
                if self.status != Status::Closed {
                    return Err(TicketError::NotClosed(self.id));
                }
                next.status = Status::Open;
                next.closed_at_ms = None;
                Some(EventKind::Reopened {
                    reason: reason.map(|r| check_text("reason", &r)).transpose()?,
                })
            }
            _ if self.status == Status::Closed => return Err(TicketError::Closed(self.id)),
            Change::Update(patch) => self.patch(&mut next, patch)?,
            Change::Assign(assignee) => {
                let to = optional_name("assignee", assignee.as_deref())?;
                (to != self.assignee).then(|| {
                    next.assignee.clone_from(&to);
                    EventKind::Assigned {
                        from: self.assignee.clone(),
                        to,
                    }
                })
            }
            Change::Comment { body, internal } => {
                let body = check_text("body", &body)?;
                if body.is_empty() {
                    return Err(TicketError::InvalidField {
                        field: "body",
                        reason: "a comment must not be empty".to_owned(),
                    });
                }
                Some(EventKind::Commented { body, internal })
            }
            Change::Close { resolution } => {
                next.status = Status::Closed;
                next.closed_at_ms = Some(now);
                Some(EventKind::Closed {
                    resolution: resolution
                        .map(|r| check_text("resolution", &r))
                        .transpose()?
                        .filter(|r| !r.is_empty()),
                })
            }
        };
        let Some(kind) = kind else {
            return Ok(Applied {
                ticket: self.clone(),
                event: None,
            });
        };
        next.version = self.version + 1;
        next.updated_at_ms = now;
        let event = TicketEvent {
            ticket_id: self.id,
            seq: next.version,
            at_ms: now,
            actor,
            kind,
        };
        Ok(Applied {
            ticket: next,
            event: Some(event),
        })
    }

    /// Applies a field patch to `next`; the `Updated` event, or `None` if nothing changed.
    fn patch(&self, next: &mut Ticket, patch: TicketPatch) -> Result<Option<EventKind>> {
        if patch == TicketPatch::default() {
            return Err(TicketError::EmptyPatch);
        }
        let mut changes = Vec::new();
        let mut record = |field: &str, from: Value, to: Value| {
            if from != to {
                changes.push(FieldChange {
                    field: field.to_owned(),
                    from,
                    to,
                });
            }
        };
        if let Some(title) = patch.title {
            next.title = check_title(&title)?;
            record(
                "title",
                self.title.clone().into(),
                next.title.clone().into(),
            );
        }
        if let Some(description) = patch.description {
            next.description = check_text("description", &description)?;
            record(
                "description",
                self.description.clone().into(),
                next.description.clone().into(),
            );
        }
        if let Some(status) = patch.status {
            if status == Status::Closed {
                return Err(TicketError::IllegalTransition {
                    from: self.status,
                    to: status,
                    hint: "close a ticket with the close action, which records a resolution",
                });
            }
            next.status = status;
            record("status", status_value(self.status), status_value(status));
        }
        if let Some(priority) = patch.priority {
            next.priority = priority;
            record(
                "priority",
                serde_json::to_value(self.priority).unwrap_or(Value::Null),
                serde_json::to_value(priority).unwrap_or(Value::Null),
            );
        }
        if let Some(tags) = patch.tags {
            next.tags = check_tags(&tags)?;
            record("tags", self.tags.clone().into(), next.tags.clone().into());
        }
        Ok((!changes.is_empty()).then_some(EventKind::Updated { changes }))
    }
}

fn status_value(status: Status) -> Value {
    Value::String(status.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_ticket() -> Ticket {
        let new = NewTicket {
            user: "u-1".into(),
            title: "  Parcel arrived damaged ".into(),
            tags: vec!["complaint".into(), "complaint".into()],
            ..NewTicket::default()
        };
        Ticket::create(TicketId(7), new, "bot", 1).unwrap().ticket
    }

    #[test]
    fn ids_print_and_parse() {
        assert_eq!(TicketId(123).to_string(), "T-000123");
        assert_eq!(TicketId(12_345_678).to_string(), "T-12345678");
        assert_eq!("T-000123".parse::<TicketId>().unwrap(), TicketId(123));
        assert_eq!(" t-5 ".parse::<TicketId>().unwrap(), TicketId(5));
        for bad in [
            "",
            "T-",
            "T-0",
            "123",
            "T-12a",
            "T--1",
            "T-99999999999999999999",
        ] {
            assert!(bad.parse::<TicketId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn creation_validates_and_normalises() {
        let t = new_ticket();
        assert_eq!(t.title, "Parcel arrived damaged");
        assert_eq!(t.tenant, "default");
        assert_eq!(t.tags, vec!["complaint"]);
        assert_eq!((t.status, t.version), (Status::Open, 1));
        let bad = |new: NewTicket| Ticket::create(TicketId(1), new, "api", 1).unwrap_err();
        let base = NewTicket {
            user: "u".into(),
            title: "t".into(),
            ..NewTicket::default()
        };
        assert_eq!(
            bad(NewTicket {
                title: " ".into(),
                ..base.clone()
            }),
            TicketError::EmptyTitle
        );
        assert_eq!(
            bad(NewTicket {
                title: "x".repeat(201),
                ..base.clone()
            })
            .code(),
            "too_long"
        );
        assert_eq!(
            bad(NewTicket {
                user: "".into(),
                ..base.clone()
            })
            .code(),
            "invalid_field"
        );
        assert_eq!(
            bad(NewTicket {
                user: "a\0b".into(),
                ..base.clone()
            })
            .code(),
            "invalid_field"
        );
        assert_eq!(
            bad(NewTicket {
                tags: vec!["t".into(); 21],
                ..base
            })
            .code(),
            "invalid_field"
        );
    }

    #[test]
    fn the_lifecycle_is_enforced() {
        let t = new_ticket();
        let c = t
            .apply(
                "agent",
                Change::Comment {
                    body: "hi".into(),
                    internal: false,
                },
                2,
            )
            .unwrap();
        assert_eq!(c.ticket.version, 2);
        assert_eq!(c.event.as_ref().unwrap().seq, 2);
        let closed = c
            .ticket
            .apply(
                "agent",
                Change::Close {
                    resolution: Some("refunded".into()),
                },
                3,
            )
            .unwrap()
            .ticket;
        assert_eq!(closed.status, Status::Closed);
        assert_eq!(closed.closed_at_ms, Some(3));
        let comment = Change::Comment {
            body: "more".into(),
            internal: false,
        };
        assert_eq!(
            closed.apply("u", comment.clone(), 4).unwrap_err(),
            TicketError::Closed(TicketId(7))
        );
        assert_eq!(
            closed
                .apply("u", Change::Close { resolution: None }, 4)
                .unwrap_err()
                .code(),
            "ticket_closed"
        );
        assert_eq!(
            t.apply("u", Change::Reopen { reason: None }, 4)
                .unwrap_err()
                .code(),
            "ticket_not_closed"
        );
        let reopened = closed
            .apply("u", Change::Reopen { reason: None }, 5)
            .unwrap()
            .ticket;
        assert_eq!(
            (reopened.status, reopened.closed_at_ms),
            (Status::Open, None)
        );
        assert!(reopened.apply("u", comment, 6).is_ok());
    }

    #[test]
    fn updates_record_what_changed_and_refuse_closing() {
        let t = new_ticket();
        let patch = TicketPatch {
            status: Some(Status::InProgress),
            priority: Some(Priority::Normal),
            ..TicketPatch::default()
        };
        let applied = t.apply("agent", Change::Update(patch), 2).unwrap();
        let Some(TicketEvent {
            kind: EventKind::Updated { changes },
            ..
        }) = applied.event
        else {
            panic!("expected an update event");
        };
        assert_eq!(changes.len(), 1, "priority did not change: {changes:?}");
        assert_eq!(changes[0].field, "status");
        assert_eq!(changes[0].to, "in_progress");
        let noop = t
            .apply(
                "agent",
                Change::Update(TicketPatch {
                    title: Some(t.title.clone()),
                    ..TicketPatch::default()
                }),
                2,
            )
            .unwrap();
        assert_eq!((noop.event, noop.ticket.version), (None, 1));
        assert_eq!(
            t.apply("a", Change::Update(TicketPatch::default()), 2)
                .unwrap_err(),
            TicketError::EmptyPatch
        );
        let close = TicketPatch {
            status: Some(Status::Closed),
            ..TicketPatch::default()
        };
        assert_eq!(
            t.apply("a", Change::Update(close), 2).unwrap_err().code(),
            "illegal_transition"
        );
    }

    #[test]
    fn events_serialise_flat_with_a_type() {
        let t = new_ticket();
        let e = t
            .apply("agent:alice", Change::Assign(Some("alice".into())), 9)
            .unwrap()
            .event
            .unwrap();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ticket_id": "T-000007", "seq": 2, "at_ms": 9, "actor": "agent:alice",
                               "type": "assigned", "from": null, "to": "alice"})
        );
        assert_eq!(serde_json::from_value::<TicketEvent>(v).unwrap(), e);
    }
}

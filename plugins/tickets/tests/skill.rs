//! `tickets.create` and `tickets.status` as flows call them: the ticket belongs to the caller,
//! and a caller naming someone else's ticket learns nothing about it.

use std::sync::Arc;

use kefu_plugin::{Caller, Skill, SkillError, SkillOutcome, SkillRequest};
use kefu_tickets::{MemoryTicketStore, TicketId, TicketStore, TicketsSkill};
use serde_json::json;

fn caller(user: &str) -> Caller {
    Caller {
        tenant: "shop".into(),
        user: user.into(),
        session: format!("s-{user}"),
        channel: "web".into(),
        locale: "zh".into(),
    }
}

fn skills() -> (Arc<dyn TicketStore>, TicketsSkill, TicketsSkill) {
    let store: Arc<dyn TicketStore> = Arc::new(MemoryTicketStore::new());
    let [create, status] = TicketsSkill::all(store.clone());
    (store, create, status)
}

#[tokio::test]
async fn create_files_a_ticket_for_the_caller() {
    let (store, create, _) = skills();
    assert_eq!(create.name(), "tickets.create");
    assert_eq!(create.info().required_args, ["title"]);
    let req = SkillRequest::new("tickets.create", caller("u-alice"))
        .with_arg("title", "投诉：包裹破损")
        .with_arg("description", "收到时外箱压坏")
        .with_arg("priority", "high")
        .with_arg("tags", "complaint, 物流")
        // An argument cannot redirect the ticket to someone else.
        .with_arg("user", "u-mallory");
    let outcome = create.call(req).await.unwrap();
    let SkillOutcome::Found { data, .. } = outcome else {
        panic!("expected found, got {outcome:?}");
    };
    assert_eq!(data["id"], "T-000001");
    assert_eq!(data["status"], "open");
    assert!(data.get("assignee").is_none() && data.get("user").is_none());
    let ticket = store.get(TicketId(1)).await.unwrap();
    assert_eq!(ticket.user, "u-alice");
    assert_eq!(ticket.tenant, "shop");
    assert_eq!(ticket.session.as_deref(), Some("s-u-alice"));
    assert_eq!(ticket.tags, ["complaint", "物流"]);
}

#[tokio::test]
async fn create_reports_bad_arguments() {
    let (_, create, _) = skills();
    let no_title = SkillRequest::new("tickets.create", caller("u"));
    assert!(matches!(
        create.call(no_title).await,
        Err(SkillError::BadArgument { name, .. }) if name == "title"
    ));
    let bad_priority = SkillRequest::new("tickets.create", caller("u"))
        .with_arg("title", "x")
        .with_arg("priority", "asap");
    assert!(matches!(
        create.call(bad_priority).await,
        Err(SkillError::BadArgument { name, .. }) if name == "priority"
    ));
    let long = SkillRequest::new("tickets.create", caller("u")).with_arg("title", "x".repeat(300));
    assert!(matches!(
        create.call(long).await,
        Err(SkillError::BadArgument { name, .. }) if name == "title"
    ));
    let anonymous = SkillRequest::new("tickets.create", caller("")).with_arg("title", "x");
    assert_eq!(create.call(anonymous).await.unwrap().kind(), "declined");
}

#[tokio::test]
async fn status_shows_only_the_callers_own_tickets() {
    let (_, create, status) = skills();
    for (user, title) in [("u-alice", "A1"), ("u-bob", "B1"), ("u-alice", "A2")] {
        let req = SkillRequest::new("tickets.create", caller(user)).with_arg("title", title);
        create.call(req).await.unwrap();
    }
    // Own ticket by id.
    let own =
        SkillRequest::new("tickets.status", caller("u-bob")).with_arg("ticket_id", "T-000002");
    let SkillOutcome::Found { data, .. } = status.call(own).await.unwrap() else {
        panic!("expected found");
    };
    assert_eq!(data["title"], "B1");

    // Someone else's ticket, named with its real id: same answer as an unknown id.
    let theirs =
        SkillRequest::new("tickets.status", caller("u-bob")).with_arg("ticket_id", "T-000001");
    let unknown =
        SkillRequest::new("tickets.status", caller("u-bob")).with_arg("ticket_id", "T-000099");
    let (theirs, unknown) = (
        status.call(theirs).await.unwrap(),
        status.call(unknown).await.unwrap(),
    );
    assert_eq!(theirs.kind(), "not_found");
    assert_eq!(theirs, unknown);

    // The same user in another tenant is another customer.
    let mut elsewhere = caller("u-bob");
    elsewhere.tenant = "other-shop".into();
    let req = SkillRequest::new("tickets.status", elsewhere).with_arg("ticket_id", "T-000002");
    assert_eq!(status.call(req).await.unwrap().kind(), "not_found");

    // Without an id: the caller's latest tickets, newest first.
    let mine = SkillRequest::new("tickets.status", caller("u-alice"));
    let SkillOutcome::Found { data, .. } = status.call(mine).await.unwrap() else {
        panic!("expected found");
    };
    assert_eq!(data["count"], 2);
    assert_eq!(data["tickets"][0]["title"], "A2");
    assert_eq!(data["tickets"][1]["title"], "A1");
    let none = SkillRequest::new("tickets.status", caller("u-carol"));
    assert_eq!(status.call(none).await.unwrap().kind(), "not_found");

    let garbage =
        SkillRequest::new("tickets.status", caller("u-bob")).with_arg("ticket_id", json!("../T-1"));
    assert!(matches!(
        status.call(garbage).await,
        Err(SkillError::BadArgument { name, .. }) if name == "ticket_id"
    ));
}

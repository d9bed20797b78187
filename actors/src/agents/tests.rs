//! Routing tests: priority, skill/tier/language match, capacity, least busy and round robin,
//! requeue on disconnect, durability across a reopen, transfers, SLA alerts with a
//! controlled clock.

use std::sync::Arc;

use super::*;

fn account(id: &str, skills: &[&str], tier: u8, capacity: u32) -> AgentAccount {
    AgentAccount {
        id: id.into(),
        name: id.to_uppercase(),
        skills: skills.iter().map(|s| (*s).to_owned()).collect(),
        tier,
        languages: Vec::new(),
        capacity,
        secret: "secret-123".into(),
    }
}

fn esc(session: &str, skill: Option<&str>, tier: u8) -> Escalation {
    Escalation {
        session: session.into(),
        user: format!("user-{session}"),
        skill: skill.map(str::to_owned),
        tier,
        context: HandoverContext {
            reason: "customer asked for a human".into(),
            lang: "zh".into(),
            ..HandoverContext::default()
        },
    }
}

fn config(agents: Vec<AgentAccount>) -> DeskConfig {
    DeskConfig {
        agents,
        ..DeskConfig::default()
    }
}

fn router(agents: Vec<AgentAccount>) -> (Router, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    (Router::in_memory(config(agents), clock.clone()), clock)
}

fn holder(r: &Router, session: &str) -> Option<String> {
    r.ticket(session).and_then(|t| t.agent)
}

#[test]
fn a_vip_waits_ahead_of_earlier_normal_customers() {
    let (r, clock) = router(vec![account("a", &[], 3, 1)]);
    r.escalate(esc("n1", None, 0)).unwrap();
    clock.advance_ms(1_000);
    r.escalate(esc("n2", None, 0)).unwrap();
    clock.advance_ms(1_000);
    let vip = r.escalate(esc("vip", None, 2)).unwrap().unwrap();
    assert_eq!(vip.position, 1, "the VIP goes first");
    let order: Vec<String> = r
        .queue()
        .into_iter()
        .map(|t| t.escalation.session)
        .collect();
    assert_eq!(order, ["vip", "n1", "n2"]);
    // The first free agent takes the VIP.
    r.set_presence("a", Presence::Online).unwrap();
    assert_eq!(holder(&r, "vip").as_deref(), Some("a"));
    assert_eq!(r.position("n1").unwrap().position, 1);
}

#[test]
fn long_waits_eventually_outrank_a_small_credit() {
    let (r, clock) = router(vec![]);
    r.escalate(esc("old", None, 0)).unwrap();
    // One tier is worth 600 s by default; after 601 s the old ticket is ahead of a new VIP.
    clock.advance_ms(601_000);
    r.escalate(esc("vip", None, 1)).unwrap();
    let order: Vec<String> = r
        .queue()
        .into_iter()
        .map(|t| t.escalation.session)
        .collect();
    assert_eq!(order, ["old", "vip"]);
}

#[test]
fn conversations_go_to_agents_with_the_skill_the_tier_and_the_language() {
    let mut en_only = account("en", &["returns"], 0, 5);
    en_only.languages = vec!["en".into()];
    let (r, _) = router(vec![
        account("billing", &["billing"], 0, 5),
        account("returns", &["returns"], 0, 5),
        account("senior", &["returns"], 2, 5),
        en_only,
    ]);
    for id in ["billing", "returns", "senior", "en"] {
        r.set_presence(id, Presence::Online).unwrap();
    }
    r.escalate(esc("s1", Some("returns"), 0)).unwrap();
    r.escalate(esc("s2", Some("billing"), 0)).unwrap();
    r.escalate(esc("s3", Some("returns"), 2)).unwrap();
    assert_eq!(holder(&r, "s2").as_deref(), Some("billing"));
    assert_eq!(
        holder(&r, "s3").as_deref(),
        Some("senior"),
        "tier 2 needs a tier-2 agent"
    );
    // s1 (zh) never goes to the English-only agent.
    assert_ne!(holder(&r, "s1").as_deref(), Some("en"));
    // Nobody has this skill: it waits.
    r.escalate(esc("s4", Some("legal"), 0)).unwrap();
    assert_eq!(r.position("s4").unwrap().position, 1);
}

#[test]
fn capacity_is_respected_and_the_rest_waits() {
    let (r, _) = router(vec![account("a", &[], 0, 2)]);
    r.set_presence("a", Presence::Online).unwrap();
    for s in ["s1", "s2", "s3"] {
        r.escalate(esc(s, None, 0)).unwrap();
    }
    assert_eq!(r.agent("a").unwrap().conversations, ["s1", "s2"]);
    assert_eq!(r.position("s3").unwrap().position, 1);
    assert_eq!(
        r.accept("a", "s3").unwrap_err(),
        DeskError::AtCapacity { agent: "a".into() }
    );
    // A slot frees up: the next waiting conversation gets it.
    r.end("a", "s1", Outcome::Closed).unwrap();
    assert_eq!(holder(&r, "s3").as_deref(), Some("a"));
    assert!(!r.is_human("s1"));
}

#[test]
fn the_least_busy_agent_gets_it_and_equals_take_turns() {
    let (r, _) = router(vec![
        account("a", &[], 0, 5),
        account("b", &[], 0, 5),
        account("c", &[], 0, 5),
    ]);
    r.set_presence("a", Presence::Online).unwrap();
    r.escalate(esc("s0", None, 0)).unwrap();
    r.escalate(esc("s1", None, 0)).unwrap();
    assert_eq!(r.agent("a").unwrap().conversations.len(), 2);
    r.set_presence("b", Presence::Online).unwrap();
    r.set_presence("c", Presence::Online).unwrap();
    // b and c hold less than a: they get the next four, taking turns.
    let mut got = Vec::new();
    for s in ["s2", "s3", "s4", "s5"] {
        r.escalate(esc(s, None, 0)).unwrap();
        got.push(holder(&r, s).unwrap());
    }
    assert!(!got.contains(&"a".to_owned()), "{got:?}");
    assert!(got.windows(2).all(|w| w[0] != w[1]), "round robin: {got:?}");
    // Now all hold 2: the one assigned longest ago (a) is next.
    r.escalate(esc("s6", None, 0)).unwrap();
    assert_eq!(holder(&r, "s6").as_deref(), Some("a"));
}

#[test]
fn conversations_are_requeued_when_their_agent_disconnects() {
    let clock = Arc::new(ManualClock::new(0));
    let r = Router::in_memory(
        DeskConfig {
            agents: vec![account("a", &[], 0, 3), account("b", &[], 0, 3)],
            auto_assign: false,
            ..DeskConfig::default()
        },
        clock.clone(),
    );
    r.set_presence("a", Presence::Online).unwrap();
    r.escalate(esc("s1", None, 0)).unwrap();
    clock.advance_ms(5_000);
    r.escalate(esc("s2", None, 0)).unwrap();
    r.accept("a", "s1").unwrap();
    r.accept("a", "s2").unwrap();
    r.set_presence("a", Presence::Offline).unwrap();
    let order: Vec<String> = r
        .queue()
        .into_iter()
        .map(|t| t.escalation.session)
        .collect();
    assert_eq!(order, ["s1", "s2"], "requeued at their original places");
    assert!(r.agent("a").unwrap().conversations.is_empty());
    r.set_presence("b", Presence::Online).unwrap();
    r.accept("b", "s1").unwrap();
    assert!(
        r.accept("a", "s2").is_err(),
        "an offline agent cannot take conversations"
    );
}

#[test]
fn queue_and_assignments_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10_000));
    let agents = || vec![account("a", &[], 0, 1)];
    {
        let db = sled::open(dir.path()).unwrap();
        let r = Router::open(config(agents()), db, clock.clone()).unwrap();
        r.set_presence("a", Presence::Online).unwrap();
        r.escalate(esc("s1", None, 0)).unwrap();
        r.escalate(esc("s2", None, 1)).unwrap();
        r.escalate(esc("s3", None, 0)).unwrap();
        assert_eq!(holder(&r, "s1").as_deref(), Some("a"));
        r.record_reply("a", "s1").unwrap();
        futures::executor::block_on(r.flush()).unwrap();
    }
    let db = sled::open(dir.path()).unwrap();
    let r = Router::open(config(agents()), db, clock.clone()).unwrap();
    assert!(r.is_human("s1") && r.is_human("s2") && r.is_human("s3"));
    let order: Vec<String> = r
        .queue()
        .into_iter()
        .map(|t| t.escalation.session)
        .collect();
    assert_eq!(order, ["s2", "s3"]);
    let s1 = r.ticket("s1").unwrap();
    assert_eq!(s1.agent.as_deref(), Some("a"));
    assert!(s1.first_reply_ms.is_some());
    // The agent is offline after the restart; within the grace they keep it...
    r.tick().unwrap();
    assert_eq!(holder(&r, "s1").as_deref(), Some("a"));
    // ... after it, it waits again at its old place: behind the VIP, ahead of s3.
    clock.advance_ms(61_000);
    r.tick().unwrap();
    let order: Vec<String> = r
        .queue()
        .into_iter()
        .map(|t| t.escalation.session)
        .collect();
    assert_eq!(order, ["s2", "s1", "s3"]);
    // Recorded figures survive too.
    assert!(
        r.recorded_events(100)
            .iter()
            .any(|e| matches!(e, DeskEvent::FirstReply { session, .. } if session == "s1"))
    );
}

#[test]
fn the_sla_alert_fires_at_the_configured_time_and_once() {
    let clock = Arc::new(ManualClock::new(0));
    let r = Router::in_memory(
        DeskConfig {
            agents: vec![account("a", &[], 0, 1)],
            first_reply_sla_secs: 30.0,
            ..DeskConfig::default()
        },
        clock.clone(),
    );
    let mut events = r.subscribe();
    r.escalate(esc("late", None, 0)).unwrap();
    r.escalate(esc("quick", None, 0)).unwrap();
    r.set_presence("a", Presence::Online).unwrap();
    clock.advance_ms(10_000);
    let holder_late = holder(&r, "late");
    assert_eq!(holder_late.as_deref(), Some("a"));
    // "late" has an agent but no reply; "quick" waits.
    clock.advance_ms(19_999);
    assert!(r.tick().unwrap().is_empty(), "29.999 s: no alert yet");
    clock.advance_ms(1);
    let alerts = r.tick().unwrap();
    let sessions: Vec<&str> = alerts
        .iter()
        .filter_map(|e| match e {
            DeskEvent::SlaBreached {
                session, waited_ms, ..
            } => {
                assert_eq!(*waited_ms, 30_000);
                Some(session.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(sessions.len(), 2, "{alerts:?}");
    clock.advance_ms(10_000);
    assert!(r.tick().unwrap().is_empty(), "raised once");
    let mut seen = false;
    while let Ok(e) = events.try_recv() {
        seen |= matches!(e, DeskEvent::SlaBreached { .. });
    }
    assert!(seen, "broadcast to the dashboard");
}

#[test]
fn a_first_reply_before_the_sla_raises_nothing() {
    let clock = Arc::new(ManualClock::new(0));
    let r = Router::in_memory(config(vec![account("a", &[], 0, 1)]), clock.clone());
    r.set_presence("a", Presence::Online).unwrap();
    r.escalate(esc("s", None, 0)).unwrap();
    clock.advance_ms(5_000);
    assert!(r.record_reply("a", "s").unwrap());
    assert!(!r.record_reply("a", "s").unwrap(), "only the first counts");
    clock.advance_ms(60_000);
    assert!(r.tick().unwrap().is_empty());
}

#[test]
fn transfers_move_to_a_named_agent_or_a_skill_queue() {
    let (r, _) = router(vec![
        account("a", &["general"], 0, 2),
        account("b", &["billing"], 0, 2),
        account("c", &["legal"], 0, 2),
    ]);
    r.set_presence("a", Presence::Online).unwrap();
    r.escalate(esc("s", Some("general"), 0)).unwrap();
    assert_eq!(holder(&r, "s").as_deref(), Some("a"));
    r.set_presence("b", Presence::Online).unwrap();
    r.transfer("a", "s", TransferTarget::Agent("b".into()))
        .unwrap();
    assert_eq!(holder(&r, "s").as_deref(), Some("b"));
    assert_eq!(r.ticket("s").unwrap().transfers, 1);
    // To a team nobody of which is online: waits for that skill only.
    r.transfer("b", "s", TransferTarget::Skill("legal".into()))
        .unwrap();
    assert!(holder(&r, "s").is_none());
    r.set_presence("c", Presence::Online).unwrap();
    assert_eq!(holder(&r, "s").as_deref(), Some("c"));
    assert!(matches!(
        r.transfer("a", "s", TransferTarget::Skill("x".into())),
        Err(DeskError::NotAssigned { .. })
    ));
}

#[test]
fn escalating_twice_keeps_one_ticket_and_its_place() {
    let (r, _) = router(vec![]);
    r.escalate(esc("s1", None, 0)).unwrap();
    r.escalate(esc("s2", None, 0)).unwrap();
    r.escalate(esc("s1", None, 0)).unwrap();
    assert_eq!(r.queue().len(), 2);
    assert_eq!(r.position("s1").unwrap().position, 1);
}

#[test]
fn the_config_is_validated() {
    let mut c = config(vec![account("a", &[], 0, 1), account("a", &[], 0, 1)]);
    assert!(c.validate().unwrap_err().contains("twice"));
    c.agents.pop();
    c.agents[0].secret = "short".into();
    assert!(c.validate().unwrap_err().contains("secret"));
    c.agents[0].secret = "long-enough".into();
    c.first_reply_sla_secs = 0.0;
    assert!(c.validate().unwrap_err().contains("first_reply_sla_secs"));
}

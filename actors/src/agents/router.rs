//! The router: agents and their presence, the priority queue of escalated conversations,
//! assignment, transfers, requeue, SLA timers, and the figures recorded for the dashboard.
//!
//! Invariants:
//! - **One ticket per conversation.** A conversation is in the desk (queued or assigned) or not;
//!   escalating it again updates its context and keeps its place.
//! - **Capacity holds.** An agent never holds more conversations than their capacity, except
//!   after a restart when capacity was lowered in the configuration (they then get no new ones
//!   until they are under it again).
//! - **Queue order is time-invariant.** Priority is "waited longer" plus credits (tier,
//!   negative emotion), so a ticket's rank is `queued_ms - credits` and never needs recomputing
//!   as time passes: the queue is a `BTreeSet` ordered by rank, then arrival.
//! - **Durable before acknowledged.** Every change of a ticket is written to the `tickets` tree
//!   before the call returns; callers that acknowledge to a person (HTTP handlers, the desk)
//!   call [`Router::flush`] first. Agent presence is not durable: after a restart every agent
//!   is offline, and their conversations are requeued unless they sign in within
//!   `restart_grace_secs`.
//! - **Clock injected.** Every time comes from [`Clock`], so SLA tests control it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::broadcast;
use tracing::{info, warn};

pub use super::clock::{Clock, ManualClock, SystemClock};
pub use super::error::{DeskError, DeskResult};
use super::model::{
    AgentProfile, DeskConfig, DeskEvent, Escalation, Outcome, Presence, StoredSummary, Ticket,
    TicketState,
};
pub use super::model::{AgentView, QueuePosition, TransferTarget};

struct AgentSlot {
    profile: AgentProfile,
    presence: Presence,
    held: HashSet<String>,
    /// Assignment counter value at their last assignment: round robin among equally busy.
    last_assigned: u64,
    /// Since when offline (requeue after the restart grace).
    offline_since_ms: u64,
}

impl AgentSlot {
    fn has_room(&self) -> bool {
        self.presence == Presence::Online && (self.held.len() as u32) < self.profile.capacity
    }
}

#[derive(Default)]
struct Inner {
    agents: HashMap<String, AgentSlot>,
    tickets: HashMap<String, Ticket>,
    /// Waiting tickets: (rank, seq, session).
    queue: BTreeSet<(i64, u64, String)>,
    next_seq: u64,
    assignments: u64,
    /// Moving average of handling time, ms.
    handle_avg_ms: f64,
}

struct Trees {
    db: sled::Db,
    tickets: sled::Tree,
    events: sled::Tree,
}

/// The router. Cheap operations under one short lock; see the module docs.
pub struct Router {
    config: DeskConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    /// Conversations in the desk, readable without the lock: every turn of every session asks.
    human: DashMap<String, ()>,
    trees: Option<Trees>,
    events: broadcast::Sender<DeskEvent>,
}

impl Router {
    /// A router over `db` (trees `desk_tickets` and `desk_events`), reloading the queue and
    /// assignments stored there.
    pub fn open(config: DeskConfig, db: sled::Db, clock: Arc<dyn Clock>) -> DeskResult<Self> {
        let storage = |op| {
            move |e: sled::Error| DeskError::Storage {
                op,
                detail: e.to_string(),
            }
        };
        let tickets = db.open_tree("desk_tickets").map_err(storage("open"))?;
        let events = db.open_tree("desk_events").map_err(storage("open"))?;
        let router = Self::build(
            config,
            clock,
            Some(Trees {
                db,
                tickets,
                events,
            }),
        );
        router.reload()?;
        Ok(router)
    }

    /// A router over a sled database in `dir` (created if missing), opened for the desk alone.
    pub fn open_dir(
        config: DeskConfig,
        dir: &std::path::Path,
        clock: Arc<dyn Clock>,
    ) -> DeskResult<Self> {
        let db = sled::open(dir).map_err(|e| DeskError::Storage {
            op: "open",
            detail: format!("{}: {e}", dir.display()),
        })?;
        Self::open(config, db, clock)
    }

    /// A router that keeps everything in memory (tests, benchmarks).
    pub fn in_memory(config: DeskConfig, clock: Arc<dyn Clock>) -> Self {
        Self::build(config, clock, None)
    }

    fn build(config: DeskConfig, clock: Arc<dyn Clock>, trees: Option<Trees>) -> Self {
        let now = clock.now_ms();
        let mut inner = Inner {
            handle_avg_ms: config.default_handle_secs * 1000.0,
            ..Inner::default()
        };
        for account in &config.agents {
            let profile = account.profile();
            inner.agents.insert(
                profile.id.clone(),
                AgentSlot {
                    profile,
                    presence: Presence::Offline,
                    held: HashSet::new(),
                    last_assigned: 0,
                    offline_since_ms: now,
                },
            );
        }
        let (events, _) = broadcast::channel(1024);
        Self {
            config,
            clock,
            inner: Mutex::new(inner),
            human: DashMap::new(),
            trees,
            events,
        }
    }

    fn reload(&self) -> DeskResult<()> {
        let Some(trees) = &self.trees else {
            return Ok(());
        };
        let mut inner = self.inner.lock();
        let mut orphans = Vec::new();
        for item in trees.tickets.iter() {
            let (_, bytes) = item.map_err(|e| DeskError::Storage {
                op: "reload",
                detail: e.to_string(),
            })?;
            let ticket: Ticket = match serde_json::from_slice(&bytes) {
                Ok(t) => t,
                Err(e) => {
                    warn!(error = %e, "Unreadable desk ticket skipped");
                    continue;
                }
            };
            let session = ticket.escalation.session.clone();
            inner.next_seq = inner.next_seq.max(ticket.seq + 1);
            match (&ticket.state, &ticket.agent) {
                (TicketState::Assigned, Some(agent)) => match inner.agents.get_mut(agent) {
                    Some(slot) => {
                        slot.held.insert(session.clone());
                    }
                    None => orphans.push(session.clone()),
                },
                _ => {
                    let key = self.queue_key(&ticket);
                    inner.queue.insert(key);
                }
            }
            self.human.insert(session.clone(), ());
            inner.tickets.insert(session, ticket);
        }
        drop(inner);
        // Agents removed from the configuration since: their conversations wait again.
        for session in orphans {
            self.requeue(&session, "agent no longer configured")?;
        }
        info!(
            conversations = self.human.len(),
            "Desk reloaded its queue and assignments"
        );
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &DeskConfig {
        &self.config
    }

    /// Live figures and happenings (also persisted, see [`Router::recorded_events`]).
    pub fn subscribe(&self) -> broadcast::Receiver<DeskEvent> {
        self.events.subscribe()
    }

    /// The clock's time.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// True while a person handles (or is about to handle) the conversation.
    pub fn is_human(&self, session: &str) -> bool {
        self.human.contains_key(session)
    }

    /// Makes every change so far durable (sled's flush); call before acknowledging.
    pub async fn flush(&self) -> DeskResult<()> {
        if let Some(trees) = &self.trees {
            trees
                .db
                .flush_async()
                .await
                .map_err(|e| DeskError::Storage {
                    op: "flush",
                    detail: e.to_string(),
                })?;
        }
        Ok(())
    }

    fn rank(&self, ticket: &Ticket) -> i64 {
        let mut credit = f64::from(ticket.escalation.tier) * self.config.tier_credit_secs;
        if ticket
            .escalation
            .context
            .emotions
            .last()
            .is_some_and(|e| is_negative(e))
        {
            credit += self.config.negative_emotion_credit_secs;
        }
        ticket.queued_ms as i64 - (credit * 1000.0) as i64
    }

    fn queue_key(&self, ticket: &Ticket) -> (i64, u64, String) {
        (
            self.rank(ticket),
            ticket.seq,
            ticket.escalation.session.clone(),
        )
    }

    fn save(&self, ticket: &Ticket) -> DeskResult<()> {
        if let Some(trees) = &self.trees {
            let bytes = serde_json::to_vec(ticket).map_err(|e| DeskError::Storage {
                op: "encode",
                detail: e.to_string(),
            })?;
            trees
                .tickets
                .insert(ticket.escalation.session.as_bytes(), bytes)
                .map_err(|e| DeskError::Storage {
                    op: "save ticket",
                    detail: e.to_string(),
                })?;
        }
        Ok(())
    }

    fn delete(&self, session: &str) -> DeskResult<()> {
        if let Some(trees) = &self.trees {
            trees
                .tickets
                .remove(session.as_bytes())
                .map_err(|e| DeskError::Storage {
                    op: "delete ticket",
                    detail: e.to_string(),
                })?;
        }
        Ok(())
    }

    fn emit(&self, event: DeskEvent) {
        if let Some(trees) = &self.trees {
            let stored = trees.db.generate_id().and_then(|id| {
                let bytes = serde_json::to_vec(&event).unwrap_or_default();
                trees.events.insert(id.to_be_bytes(), bytes)
            });
            // Figures are for the dashboard; losing one must not fail a conversation.
            if let Err(e) = stored {
                warn!(error = %e, "Desk event not recorded");
            }
        }
        let _ = self.events.send(event);
    }

    /// The latest `limit` recorded events, oldest first.
    pub fn recorded_events(&self, limit: usize) -> Vec<DeskEvent> {
        let Some(trees) = &self.trees else {
            return Vec::new();
        };
        let mut out: Vec<DeskEvent> = trees
            .events
            .iter()
            .rev()
            .take(limit)
            .filter_map(|item| item.ok())
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect();
        out.reverse();
        out
    }

    /// Puts a conversation in the queue (or updates the context of one already in the desk)
    /// and assigns what can be assigned. Returns its queue position (`None` once assigned).
    pub fn escalate(&self, escalation: Escalation) -> DeskResult<Option<QueuePosition>> {
        let now = self.clock.now_ms();
        let session = escalation.session.clone();
        {
            let mut inner = self.inner.lock();
            if let Some(existing) = inner.tickets.get(&session) {
                let mut updated = existing.clone();
                let old_key = self.queue_key(existing);
                updated.escalation.tier = updated.escalation.tier.max(escalation.tier);
                updated.escalation.context = escalation.context;
                self.save(&updated)?;
                if updated.state == TicketState::Queued {
                    inner.queue.remove(&old_key);
                    inner.queue.insert(self.queue_key(&updated));
                }
                inner.tickets.insert(session.clone(), updated);
                self.dispatch_ticket(&mut inner, &session)?;
            } else {
                let seq = inner.next_seq;
                inner.next_seq += 1;
                let ticket = Ticket {
                    escalation,
                    state: TicketState::Queued,
                    agent: None,
                    target_agent: None,
                    escalated_ms: now,
                    queued_ms: now,
                    seq,
                    assigned_ms: None,
                    first_reply_ms: None,
                    sla_alerted: false,
                    transfers: 0,
                    summary: None,
                };
                self.save(&ticket)?;
                let key = self.queue_key(&ticket);
                let (tier, skill) = (ticket.escalation.tier, ticket.escalation.skill.clone());
                inner.queue.insert(key.clone());
                inner.tickets.insert(session.clone(), ticket);
                self.human.insert(session.clone(), ());
                let position = inner.queue.range(..=key).count();
                self.emit(DeskEvent::Queued {
                    session: session.clone(),
                    tier,
                    skill,
                    position,
                    at_ms: now,
                });
                self.dispatch_ticket(&mut inner, &session)?;
            }
        }
        Ok(self.position(&session))
    }

    /// Stores the hand-off summary with the conversation's ticket (durable like every ticket
    /// change; call [`Router::flush`] to make it so now). Returns the updated ticket, or `None`
    /// when the conversation left the desk meanwhile (the summary is then dropped).
    pub fn set_summary(&self, session: &str, summary: StoredSummary) -> DeskResult<Option<Ticket>> {
        let mut inner = self.inner.lock();
        let Some(ticket) = inner.tickets.get(session) else {
            return Ok(None);
        };
        let mut t = ticket.clone();
        t.summary = Some(summary);
        self.save(&t)?;
        inner.tickets.insert(session.to_owned(), t.clone());
        Ok(Some(t))
    }

    /// The conversation's place in the queue; `None` when it is not waiting.
    pub fn position(&self, session: &str) -> Option<QueuePosition> {
        let inner = self.inner.lock();
        let ticket = inner.tickets.get(session)?;
        if ticket.state != TicketState::Queued {
            return None;
        }
        let key = self.queue_key(ticket);
        let position = inner.queue.range(..=key).count();
        // Agents who could serve, and the rate at which they free up.
        let servers: u32 = inner
            .agents
            .values()
            .filter(|a| a.presence != Presence::Offline)
            .map(|a| a.profile.capacity)
            .sum();
        let per_slot_secs = inner.handle_avg_ms / 1000.0;
        let estimated_wait_secs = if servers == 0 {
            (position as f64 * per_slot_secs) as u64
        } else {
            (position as f64 * per_slot_secs / f64::from(servers)).ceil() as u64
        };
        Some(QueuePosition {
            position,
            estimated_wait_secs,
        })
    }

    /// The ticket of a conversation in the desk.
    pub fn ticket(&self, session: &str) -> Option<Ticket> {
        self.inner.lock().tickets.get(session).cloned()
    }

    /// Waiting tickets, next first.
    pub fn queue(&self) -> Vec<Ticket> {
        let inner = self.inner.lock();
        inner
            .queue
            .iter()
            .filter_map(|(_, _, s)| inner.tickets.get(s).cloned())
            .collect()
    }

    /// One agent now.
    pub fn agent(&self, agent: &str) -> DeskResult<AgentView> {
        let inner = self.inner.lock();
        let slot = inner
            .agents
            .get(agent)
            .ok_or_else(|| DeskError::UnknownAgent {
                agent: agent.to_owned(),
            })?;
        Ok(view(slot))
    }

    /// Every agent now, by id.
    pub fn agents(&self) -> Vec<AgentView> {
        let inner = self.inner.lock();
        let mut out: Vec<AgentView> = inner.agents.values().map(view).collect();
        out.sort_by(|a, b| a.profile.id.cmp(&b.profile.id));
        out
    }

    /// Changes an agent's presence. Offline requeues their conversations; online may give
    /// them waiting ones. Returns the conversations assigned to anyone as a result.
    pub fn set_presence(
        &self,
        agent: &str,
        presence: Presence,
    ) -> DeskResult<Vec<(String, String)>> {
        let now = self.clock.now_ms();
        let held: Vec<String> = {
            let mut inner = self.inner.lock();
            let slot = inner
                .agents
                .get_mut(agent)
                .ok_or_else(|| DeskError::UnknownAgent {
                    agent: agent.to_owned(),
                })?;
            if slot.presence != Presence::Offline && presence == Presence::Offline {
                slot.offline_since_ms = now;
            }
            slot.presence = presence;
            let load = slot.held.len();
            self.emit(DeskEvent::Presence {
                agent: agent.to_owned(),
                presence,
                load,
                at_ms: now,
            });
            if presence == Presence::Offline {
                let mut held: Vec<String> = slot.held.iter().cloned().collect();
                held.sort();
                held
            } else {
                Vec::new()
            }
        };
        for session in &held {
            self.requeue(session, "agent went offline")?;
        }
        let mut inner = self.inner.lock();
        let mut assigned = Vec::new();
        for session in &held {
            if let Some(to) = self.dispatch_ticket(&mut inner, session)? {
                assigned.push((session.clone(), to));
            }
        }
        assigned.extend(self.fill_agent(&mut inner, agent)?);
        Ok(assigned)
    }

    /// Puts an assigned conversation back in the queue at its original place.
    fn requeue(&self, session: &str, why: &str) -> DeskResult<()> {
        let now = self.clock.now_ms();
        let mut inner = self.inner.lock();
        let Some(ticket) = inner.tickets.get(session).cloned() else {
            return Ok(());
        };
        let Some(agent) = ticket.agent.clone() else {
            return Ok(());
        };
        let mut t = ticket;
        t.state = TicketState::Queued;
        t.agent = None;
        t.assigned_ms = None;
        // Keeps `queued_ms`: the user has waited all along and keeps their place.
        self.save(&t)?;
        if let Some(slot) = inner.agents.get_mut(&agent) {
            slot.held.remove(session);
        }
        inner.queue.insert(self.queue_key(&t));
        inner.tickets.insert(session.to_owned(), t);
        info!(session, agent = %agent, why, "Conversation requeued");
        self.emit(DeskEvent::Requeued {
            session: session.to_owned(),
            agent,
            at_ms: now,
        });
        Ok(())
    }

    /// Assigns waiting conversations to agents with room (auto-assign mode only).
    pub fn dispatch(&self) -> DeskResult<Vec<(String, String)>> {
        let mut inner = self.inner.lock();
        self.dispatch_locked(&mut inner)
    }

    /// Gives one waiting conversation to the best agent with room, if any (auto-assign).
    ///
    /// Together with [`Router::fill_agent`] this keeps the invariant "in auto-assign mode no
    /// waiting conversation is eligible for an agent with room" incrementally: a new or
    /// requeued ticket can only match agents who already had room, and a freed slot can only
    /// be filled by its own agent. So neither needs the whole queue against every agent.
    fn dispatch_ticket(&self, inner: &mut Inner, session: &str) -> DeskResult<Option<String>> {
        if !self.config.auto_assign {
            return Ok(None);
        }
        let Some(ticket) = inner.tickets.get(session) else {
            return Ok(None);
        };
        if ticket.state != TicketState::Queued {
            return Ok(None);
        }
        let Some(agent) = best_agent(inner, ticket) else {
            return Ok(None);
        };
        self.assign_locked(inner, session, &agent)?;
        Ok(Some(agent))
    }

    /// Fills `agent`'s free slots with the first waiting conversations they may take.
    fn fill_agent(&self, inner: &mut Inner, agent: &str) -> DeskResult<Vec<(String, String)>> {
        let mut assigned = Vec::new();
        if !self.config.auto_assign {
            return Ok(assigned);
        }
        while let Some(slot) = inner.agents.get(agent).filter(|a| a.has_room()) {
            let next = inner
                .queue
                .iter()
                .find(|(_, _, s)| inner.tickets.get(s).is_some_and(|t| eligible(slot, t)))
                .map(|(_, _, s)| s.clone());
            let Some(session) = next else { break };
            self.assign_locked(inner, &session, agent)?;
            assigned.push((session, agent.to_owned()));
        }
        Ok(assigned)
    }

    fn dispatch_locked(&self, inner: &mut Inner) -> DeskResult<Vec<(String, String)>> {
        let mut assigned = Vec::new();
        if !self.config.auto_assign {
            return Ok(assigned);
        }
        let keys: Vec<(i64, u64, String)> = inner.queue.iter().cloned().collect();
        for key in keys {
            if !inner.agents.values().any(AgentSlot::has_room) {
                break;
            }
            let Some(ticket) = inner.tickets.get(&key.2) else {
                inner.queue.remove(&key);
                continue;
            };
            let Some(agent) = best_agent(inner, ticket) else {
                continue;
            };
            self.assign_locked(inner, &key.2, &agent)?;
            assigned.push((key.2.clone(), agent));
        }
        Ok(assigned)
    }

    fn assign_locked(&self, inner: &mut Inner, session: &str, agent: &str) -> DeskResult<()> {
        let now = self.clock.now_ms();
        let Some(ticket) = inner.tickets.get(session) else {
            return Err(DeskError::UnknownConversation {
                session: session.to_owned(),
            });
        };
        let key = self.queue_key(ticket);
        let mut t = ticket.clone();
        t.state = TicketState::Assigned;
        t.agent = Some(agent.to_owned());
        t.target_agent = None;
        t.assigned_ms = Some(now);
        self.save(&t)?;
        inner.queue.remove(&key);
        inner.assignments += 1;
        let counter = inner.assignments;
        if let Some(slot) = inner.agents.get_mut(agent) {
            slot.held.insert(session.to_owned());
            slot.last_assigned = counter;
        }
        let queue_wait_ms = now.saturating_sub(t.queued_ms);
        inner.tickets.insert(session.to_owned(), t);
        self.emit(DeskEvent::Assigned {
            session: session.to_owned(),
            agent: agent.to_owned(),
            queue_wait_ms,
            at_ms: now,
        });
        Ok(())
    }

    /// An agent takes a waiting conversation from the queue.
    pub fn accept(&self, agent: &str, session: &str) -> DeskResult<Ticket> {
        let mut inner = self.inner.lock();
        let slot = inner
            .agents
            .get(agent)
            .ok_or_else(|| DeskError::UnknownAgent {
                agent: agent.to_owned(),
            })?;
        let ticket = inner
            .tickets
            .get(session)
            .ok_or_else(|| DeskError::UnknownConversation {
                session: session.to_owned(),
            })?;
        if ticket.state != TicketState::Queued {
            return Err(DeskError::NotWaiting {
                session: session.to_owned(),
            });
        }
        if slot.presence == Presence::Offline {
            return Err(DeskError::NotEligible {
                agent: agent.to_owned(),
                reason: "the agent is offline",
            });
        }
        if slot.held.len() as u32 >= slot.profile.capacity {
            return Err(DeskError::AtCapacity {
                agent: agent.to_owned(),
            });
        }
        if slot.profile.tier < ticket.escalation.tier {
            return Err(DeskError::NotEligible {
                agent: agent.to_owned(),
                reason: "the customer's tier is above the agent's",
            });
        }
        if ticket.target_agent.as_deref().is_some_and(|t| t != agent) {
            return Err(DeskError::NotEligible {
                agent: agent.to_owned(),
                reason: "the conversation was transferred to another agent",
            });
        }
        self.assign_locked(&mut inner, session, agent)?;
        inner
            .tickets
            .get(session)
            .cloned()
            .ok_or_else(|| DeskError::UnknownConversation {
                session: session.to_owned(),
            })
    }

    /// Checks `session` is assigned to `agent` and returns its ticket.
    pub fn assigned(&self, agent: &str, session: &str) -> DeskResult<Ticket> {
        let inner = self.inner.lock();
        assigned_ticket(&inner, agent, session).cloned()
    }

    /// Records a reply of the agent; returns true for the conversation's first human reply.
    pub fn record_reply(&self, agent: &str, session: &str) -> DeskResult<bool> {
        let now = self.clock.now_ms();
        let mut inner = self.inner.lock();
        let ticket = assigned_ticket(&inner, agent, session)?;
        if ticket.first_reply_ms.is_some() {
            return Ok(false);
        }
        let mut t = ticket.clone();
        t.first_reply_ms = Some(now);
        self.save(&t)?;
        let first_reply_ms = now.saturating_sub(t.escalated_ms);
        inner.tickets.insert(session.to_owned(), t);
        self.emit(DeskEvent::FirstReply {
            session: session.to_owned(),
            agent: agent.to_owned(),
            first_reply_ms,
            at_ms: now,
        });
        Ok(true)
    }

    /// Moves an assigned conversation to another agent or a skill's queue.
    pub fn transfer(
        &self,
        agent: &str,
        session: &str,
        target: TransferTarget,
    ) -> DeskResult<Vec<(String, String)>> {
        let now = self.clock.now_ms();
        let mut inner = self.inner.lock();
        let ticket = assigned_ticket(&inner, agent, session)?.clone();
        if let TransferTarget::Agent(to) = &target
            && !inner.agents.contains_key(to)
        {
            return Err(DeskError::UnknownAgent { agent: to.clone() });
        }
        let mut t = ticket;
        t.state = TicketState::Queued;
        t.agent = None;
        t.assigned_ms = None;
        t.transfers += 1;
        t.queued_ms = t.queued_ms.min(now);
        let (to_agent, to_skill) = match target {
            TransferTarget::Agent(to) => {
                t.target_agent = Some(to.clone());
                (Some(to), None)
            }
            TransferTarget::Skill(skill) => {
                t.target_agent = None;
                t.escalation.skill = Some(skill.clone());
                (None, Some(skill))
            }
        };
        self.save(&t)?;
        if let Some(slot) = inner.agents.get_mut(agent) {
            slot.held.remove(session);
        }
        inner.queue.insert(self.queue_key(&t));
        inner.tickets.insert(session.to_owned(), t);
        self.emit(DeskEvent::Transferred {
            session: session.to_owned(),
            from: agent.to_owned(),
            to_agent: to_agent.clone(),
            to_skill,
            at_ms: now,
        });
        // A named agent with room gets it now, even in pull mode: the sender chose them.
        if let Some(to) = to_agent
            && inner.agents.get(&to).is_some_and(AgentSlot::has_room)
        {
            self.assign_locked(&mut inner, session, &to)?;
        }
        let mut assigned = Vec::new();
        if let Some(to) = self.dispatch_ticket(&mut inner, session)? {
            assigned.push((session.to_owned(), to));
        }
        assigned.extend(self.fill_agent(&mut inner, agent)?);
        Ok(assigned)
    }

    /// Ends the human part of a conversation (hand back to the bot, or close).
    pub fn end(&self, agent: &str, session: &str, outcome: Outcome) -> DeskResult<Ticket> {
        let now = self.clock.now_ms();
        let mut inner = self.inner.lock();
        let ticket = assigned_ticket(&inner, agent, session)?.clone();
        self.delete(session)?;
        inner.tickets.remove(session);
        self.human.remove(session);
        if let Some(slot) = inner.agents.get_mut(agent) {
            slot.held.remove(session);
        }
        let handle_ms = now.saturating_sub(ticket.assigned_ms.unwrap_or(now));
        // Exponential moving average: recent shifts matter more for the wait estimate.
        inner.handle_avg_ms = inner.handle_avg_ms * 0.9 + handle_ms as f64 * 0.1;
        self.emit(DeskEvent::Ended {
            session: session.to_owned(),
            agent: agent.to_owned(),
            outcome,
            handle_ms,
            at_ms: now,
        });
        self.fill_agent(&mut inner, agent)?;
        Ok(ticket)
    }

    /// Periodic work: SLA alerts, and requeue of conversations whose agent stayed away
    /// after a restart. Returns the alerts raised.
    pub fn tick(&self) -> DeskResult<Vec<DeskEvent>> {
        let now = self.clock.now_ms();
        let sla_ms = (self.config.first_reply_sla_secs * 1000.0) as u64;
        let grace_ms = (self.config.restart_grace_secs * 1000.0) as u64;
        let mut alerts = Vec::new();
        let stale: Vec<String> = {
            let mut inner = self.inner.lock();
            let due: Vec<String> = inner
                .tickets
                .values()
                .filter(|t| {
                    !t.sla_alerted
                        && t.first_reply_ms.is_none()
                        && now.saturating_sub(t.escalated_ms) >= sla_ms
                })
                .map(|t| t.escalation.session.clone())
                .collect();
            for session in due {
                let Some(mut t) = inner.tickets.get(&session).cloned() else {
                    continue;
                };
                t.sla_alerted = true;
                self.save(&t)?;
                let event = DeskEvent::SlaBreached {
                    session: session.clone(),
                    agent: t.agent.clone(),
                    waited_ms: now.saturating_sub(t.escalated_ms),
                    sla_ms,
                    at_ms: now,
                };
                warn!(session = %session, agent = ?t.agent, "First-reply SLA exceeded");
                inner.tickets.insert(session, t);
                self.emit(event.clone());
                alerts.push(event);
            }
            inner
                .agents
                .values()
                .filter(|a| {
                    a.presence == Presence::Offline
                        && now.saturating_sub(a.offline_since_ms) >= grace_ms
                })
                .flat_map(|a| a.held.iter().cloned())
                .collect()
        };
        for session in &stale {
            self.requeue(session, "agent did not come back after a restart")?;
        }
        if !stale.is_empty() {
            self.dispatch()?;
        }
        Ok(alerts)
    }
}

fn view(slot: &AgentSlot) -> AgentView {
    let mut conversations: Vec<String> = slot.held.iter().cloned().collect();
    conversations.sort();
    AgentView {
        profile: slot.profile.clone(),
        presence: slot.presence,
        conversations,
    }
}

fn assigned_ticket<'a>(inner: &'a Inner, agent: &str, session: &str) -> DeskResult<&'a Ticket> {
    let ticket = inner
        .tickets
        .get(session)
        .ok_or_else(|| DeskError::UnknownConversation {
            session: session.to_owned(),
        })?;
    if ticket.agent.as_deref() != Some(agent) {
        return Err(DeskError::NotAssigned {
            session: session.to_owned(),
            agent: agent.to_owned(),
        });
    }
    Ok(ticket)
}

/// True for emotions that move a conversation up the queue.
fn is_negative(emotion: &str) -> bool {
    matches!(
        emotion,
        "angry" | "anger" | "negative" | "frustrated" | "upset" | "sad"
    )
}

/// True when `agent` may take `ticket` now: online with room, not reserved for someone else,
/// tier high enough, has the skill, writes the language.
fn eligible(agent: &AgentSlot, ticket: &Ticket) -> bool {
    let esc = &ticket.escalation;
    agent.has_room()
        && ticket
            .target_agent
            .as_deref()
            .is_none_or(|t| t == agent.profile.id)
        && agent.profile.tier >= esc.tier
        && esc
            .skill
            .as_deref()
            .is_none_or(|s| agent.profile.skills.iter().any(|k| k == s))
        && (agent.profile.languages.is_empty()
            || esc.context.lang.is_empty()
            || agent.profile.languages.contains(&esc.context.lang))
}

/// The agent who should get `ticket` among those eligible: least busy first, then the one
/// assigned longest ago (round robin among equals), then by id for determinism.
fn best_agent(inner: &Inner, ticket: &Ticket) -> Option<String> {
    inner
        .agents
        .values()
        .filter(|a| eligible(a, ticket))
        .min_by(|a, b| {
            (a.held.len(), a.last_assigned, &a.profile.id).cmp(&(
                b.held.len(),
                b.last_assigned,
                &b.profile.id,
            ))
        })
        .map(|a| a.profile.id.clone())
}

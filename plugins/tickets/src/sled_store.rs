//! [`SledTicketStore`]: tickets in their own trees of a sled database — usually the runtime's.
//!
//! Layout (all keys big-endian so that byte order is numeric order):
//! - `kefu.tickets.v1`: ticket number (u64) → ticket JSON.
//! - `kefu.tickets.events.v1`: ticket number ++ seq (u64, u64) → event JSON; one ticket's events
//!   are one contiguous key range, oldest first.
//! - `kefu.tickets.index.v1`: kind byte (`u` user, `a` assignee, `s` status) ++ value ++ `0x00` ++
//!   ticket number → empty. Values never contain NUL (the model refuses control characters),
//!   so a value's entries form one range, ordered by ticket number.
//! - `kefu.tickets.meta.v1`: `last_id` → the last ticket number handed out (u64).
//!
//! Write path: one sled transaction over the four trees reads the ticket, applies the change
//! through the model, writes ticket, event and index entries (and for a creation the counter),
//! so they commit together or not at all; then `flush_async` makes them durable, and only then
//! is the write acknowledged and the event broadcast. Flushes are one at a time and shared: a
//! writer whose commit an earlier flush already covered does not flush again (group commit).
//!
//! sled 0.34 has deadlocks under concurrency (concurrent `flush_async` calls starving its I/O
//! pool while a transaction waits for its global lock; transactions against iterators), so
//! transactions run exclusive of our reads and of each other behind one `RwLock`, never held
//! across an `.await`, and flushes are serialised. If the flush fails the write may still
//! become durable later; the caller gets a storage error and should re-read before retrying.
//!
//! Ticket numbers come from our own counter inside the creation transaction, not from sled's
//! `generate_id`: that one jumps by millions after every restart, which makes ugly ticket ids.

use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use tokio::sync::broadcast;

use crate::error::{Result, TicketError};
use crate::model::{Applied, Change, NewTicket, Ticket, TicketEvent, TicketId, now_ms};
use crate::store::{
    Changed, EVENT_CHANNEL_CAPACITY, TicketPage, TicketQuery, TicketStore, events_page_size,
};

const TICKETS_TREE: &str = "kefu.tickets.v1";
const EVENTS_TREE: &str = "kefu.tickets.events.v1";
const INDEX_TREE: &str = "kefu.tickets.index.v1";
const META_TREE: &str = "kefu.tickets.meta.v1";
const LAST_ID_KEY: &[u8] = b"last_id";

const INDEX_USER: u8 = b'u';
const INDEX_ASSIGNEE: u8 = b'a';
const INDEX_STATUS: u8 = b's';

/// Tickets in sled. See the module docs. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SledTicketStore {
    db: sled::Db,
    tickets: sled::Tree,
    events: sled::Tree,
    index: sled::Tree,
    meta: sled::Tree,
    events_tx: broadcast::Sender<TicketEvent>,
    /// Writers (transactions) exclusive, readers shared. sled 0.34 transactions can deadlock
    /// when they contend with each other or with iterators over the same trees (sled issues
    /// #1301, #1412), so we never let them: ticket writes are flush-bound anyway, and the
    /// lock is held only for the in-memory transaction or read, never across an `.await`.
    gate: RwLock<()>,
    /// Commits so far (a commit's number is its value after the increment).
    commits: AtomicU64,
    /// One flush at a time; holds the number of the last commit known durable. Concurrent
    /// `flush_async` calls starve sled 0.34's I/O thread pool and deadlock (seen in our
    /// concurrency test), and one flush covers every commit before it, so writers queue here
    /// and a writer whose commit an earlier flush already covered returns without flushing.
    flushed: tokio::sync::Mutex<u64>,
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<TicketError>>;

impl SledTicketStore {
    /// Opens (creating if needed) the ticket trees in `db`. Pass the runtime's database so that
    /// tickets live in the runtime's store; the trees do not touch its other data.
    pub fn new(db: sled::Db) -> Result<Self> {
        let open = |name: &str| {
            db.open_tree(name).map_err(|e| TicketError::Storage {
                op: "open ticket trees",
                detail: e.to_string(),
            })
        };
        Ok(SledTicketStore {
            tickets: open(TICKETS_TREE)?,
            events: open(EVENTS_TREE)?,
            index: open(INDEX_TREE)?,
            meta: open(META_TREE)?,
            events_tx: broadcast::channel(EVENT_CHANNEL_CAPACITY).0,
            gate: RwLock::new(()),
            commits: AtomicU64::new(0),
            flushed: tokio::sync::Mutex::new(0),
            db,
        })
    }

    /// Opens a database of its own in directory `path` (for tools and tests; the runtime passes
    /// its database to [`SledTicketStore::new`] instead).
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let db = sled::open(path).map_err(|e| TicketError::Storage {
            op: "open ticket database",
            detail: e.to_string(),
        })?;
        Self::new(db)
    }

    /// Runs `body` as one transaction over the four trees, then flushes and broadcasts.
    async fn commit<F>(&self, op: &'static str, body: F) -> Result<Applied>
    where
        F: Fn(&Trees<'_>) -> TxResult<Applied>,
    {
        let gate = self.gate.write();
        let result = (&self.tickets, &self.events, &self.index, &self.meta)
            .transaction(|(tickets, events, index, meta)| {
                let trees = Trees {
                    tickets,
                    events,
                    index,
                    meta,
                };
                let applied = body(&trees)?;
                if let Some(event) = &applied.event {
                    trees.write(&applied.ticket, event)?;
                }
                Ok(applied)
            })
            .map_err(|e| match e {
                TransactionError::Abort(err) => err,
                TransactionError::Storage(err) => storage(op, &err),
            });
        // Numbered under the gate, so commit numbers follow commit order.
        let number = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        drop(gate);
        let applied = result?;
        if applied.event.is_some() {
            self.make_durable(number).await?;
        }
        if let Some(event) = &applied.event {
            // No receivers is fine: nobody is watching.
            let _ = self.events_tx.send(event.clone());
        }
        Ok(applied)
    }

    /// Returns once commit `number` is on disk, flushing unless a flush started after it.
    async fn make_durable(&self, number: u64) -> Result<()> {
        let mut flushed = self.flushed.lock().await;
        if *flushed >= number {
            return Ok(());
        }
        // Everything committed up to now is covered by the flush below.
        let covers = self.commits.load(Ordering::SeqCst);
        self.db
            .flush_async()
            .await
            .map_err(|e| storage("flush tickets", &e))?;
        *flushed = covers;
        Ok(())
    }

    /// Reads one ticket; the caller holds the gate (shared).
    fn load(&self, id: TicketId) -> Result<Option<Ticket>> {
        self.tickets
            .get(id.0.to_be_bytes())
            .map_err(|e| storage("read ticket", &e))?
            .map(|bytes| decode(&id.to_string(), &bytes))
            .transpose()
    }

    /// Ticket numbers from the most selective index the query allows, newest first, below the
    /// cursor; `None` when no index applies (scan the tickets tree instead).
    fn indexed_ids(&self, query: &TicketQuery) -> Option<impl Iterator<Item = Result<TicketId>>> {
        let (kind, value) = if let Some(user) = &query.user {
            (INDEX_USER, user.as_str())
        } else if let Some(assignee) = &query.assignee {
            (INDEX_ASSIGNEE, assignee.as_str())
        } else {
            (INDEX_STATUS, query.status?.as_str())
        };
        let prefix = index_prefix(kind, value);
        let upper = match query.cursor {
            Some(cursor) => [prefix.as_slice(), &cursor.0.to_be_bytes()].concat(),
            None => {
                let mut end = prefix.clone();
                // The prefix ends in the 0x00 separator: 0x01 there is the first key after it.
                if let Some(last) = end.last_mut() {
                    *last = 1;
                }
                end
            }
        };
        Some(self.index.range(prefix..upper).rev().map(|entry| {
            let (key, _) = entry.map_err(|e| storage("read ticket index", &e))?;
            id_suffix(&key)
        }))
    }
}

/// The four trees inside one transaction.
struct Trees<'a> {
    tickets: &'a TransactionalTree,
    events: &'a TransactionalTree,
    index: &'a TransactionalTree,
    meta: &'a TransactionalTree,
}

impl Trees<'_> {
    fn ticket(&self, id: TicketId) -> TxResult<Ticket> {
        let bytes =
            self.tickets
                .get(id.0.to_be_bytes())?
                .ok_or(ConflictableTransactionError::Abort(TicketError::NotFound(
                    id,
                )))?;
        decode(&id.to_string(), &bytes).map_err(ConflictableTransactionError::Abort)
    }

    fn next_id(&self) -> TxResult<TicketId> {
        let last = match self.meta.get(LAST_ID_KEY)? {
            Some(bytes) => u64::from_be_bytes(bytes.as_ref().try_into().map_err(|_| {
                ConflictableTransactionError::Abort(TicketError::Corrupt {
                    what: "ticket counter".to_owned(),
                    detail: format!("{} bytes instead of 8", bytes.len()),
                })
            })?),
            None => 0,
        };
        let id = last.checked_add(1).ok_or_else(|| {
            ConflictableTransactionError::Abort(TicketError::Storage {
                op: "create ticket",
                detail: "ticket numbers exhausted".to_owned(),
            })
        })?;
        self.meta.insert(LAST_ID_KEY, &id.to_be_bytes())?;
        Ok(TicketId(id))
    }

    /// Writes the ticket and its event and moves index entries from the stored version.
    fn write(&self, ticket: &Ticket, event: &TicketEvent) -> TxResult<()> {
        let key = ticket.id.0.to_be_bytes();
        let before: Option<Ticket> = match self.tickets.get(key)? {
            Some(bytes) => Some(
                decode(&ticket.id.to_string(), &bytes)
                    .map_err(ConflictableTransactionError::Abort)?,
            ),
            None => None,
        };
        let entries = |t: &Ticket| -> Vec<Vec<u8>> {
            let mut keys = vec![
                index_key(INDEX_USER, &t.user, t.id),
                index_key(INDEX_STATUS, t.status.as_str(), t.id),
            ];
            if let Some(a) = &t.assignee {
                keys.push(index_key(INDEX_ASSIGNEE, a, t.id));
            }
            keys
        };
        let old = before.as_ref().map(entries).unwrap_or_default();
        let new = entries(ticket);
        for stale in old.iter().filter(|k| !new.contains(k)) {
            self.index.remove(stale.as_slice())?;
        }
        for fresh in new.iter().filter(|k| !old.contains(k)) {
            self.index.insert(fresh.as_slice(), &[])?;
        }
        self.tickets.insert(&key, encode(ticket)?)?;
        let event_key = [key, event.seq.to_be_bytes()].concat();
        self.events.insert(event_key, encode(event)?)?;
        Ok(())
    }
}

fn index_prefix(kind: u8, value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 2);
    key.push(kind);
    key.extend_from_slice(value.as_bytes());
    key.push(0);
    key
}

fn index_key(kind: u8, value: &str, id: TicketId) -> Vec<u8> {
    let mut key = index_prefix(kind, value);
    key.extend_from_slice(&id.0.to_be_bytes());
    key
}

fn id_suffix(key: &[u8]) -> Result<TicketId> {
    key.len()
        .checked_sub(8)
        .and_then(|start| key[start..].try_into().ok())
        .map(|b| TicketId(u64::from_be_bytes(b)))
        .ok_or_else(|| TicketError::Corrupt {
            what: "ticket index".to_owned(),
            detail: "key shorter than a ticket number".to_owned(),
        })
}

fn encode<T: Serialize>(value: &T) -> TxResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| {
        ConflictableTransactionError::Abort(TicketError::Corrupt {
            what: "encoding".to_owned(),
            detail: e.to_string(),
        })
    })
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| TicketError::Corrupt {
        what: what.to_owned(),
        detail: e.to_string(),
    })
}

fn storage(op: &'static str, err: &sled::Error) -> TicketError {
    TicketError::Storage {
        op,
        detail: err.to_string(),
    }
}

#[async_trait]
impl TicketStore for SledTicketStore {
    async fn create(&self, new: NewTicket, actor: &str) -> Result<Ticket> {
        let now = now_ms();
        let applied = self
            .commit("create ticket", |trees| {
                let id = trees.next_id()?;
                Ticket::create(id, new.clone(), actor, now)
                    .map_err(ConflictableTransactionError::Abort)
            })
            .await?;
        tracing::info!(ticket = %applied.ticket.id, user = %applied.ticket.user, "Ticket created");
        Ok(applied.ticket)
    }

    async fn get(&self, id: TicketId) -> Result<Ticket> {
        let _gate = self.gate.read();
        self.load(id)?.ok_or(TicketError::NotFound(id))
    }

    async fn change(&self, id: TicketId, actor: &str, change: Change) -> Result<Changed> {
        let now = now_ms();
        let applied = self
            .commit("change ticket", |trees| {
                let ticket = trees.ticket(id)?;
                ticket
                    .apply(actor, change.clone(), now)
                    .map_err(ConflictableTransactionError::Abort)
            })
            .await?;
        Ok(Changed {
            ticket: applied.ticket,
            event: applied.event,
        })
    }

    async fn list(&self, query: &TicketQuery) -> Result<TicketPage> {
        let size = query.page_size();
        let mut matches = Vec::with_capacity(size + 1);
        let _gate = self.gate.read();
        if let Some(ids) = self.indexed_ids(query) {
            for id in ids {
                let id = id?;
                let ticket = self.load(id)?.ok_or_else(|| TicketError::Corrupt {
                    what: "ticket index".to_owned(),
                    detail: format!("entry for missing ticket {id}"),
                })?;
                if query.matches(&ticket) {
                    matches.push(ticket);
                    if matches.len() > size {
                        break;
                    }
                }
            }
        } else {
            let upper = query.cursor.map_or(u64::MAX, |c| c.0).to_be_bytes();
            for entry in self.tickets.range(..upper).rev() {
                let (key, bytes) = entry.map_err(|e| storage("list tickets", &e))?;
                let ticket: Ticket = decode(&format!("ticket key {key:?}"), &bytes)?;
                if query.matches(&ticket) {
                    matches.push(ticket);
                    if matches.len() > size {
                        break;
                    }
                }
            }
        }
        Ok(TicketPage::from_matches(matches, size))
    }

    async fn events(&self, id: TicketId, after: u64, limit: usize) -> Result<Vec<TicketEvent>> {
        let _gate = self.gate.read();
        if self.load(id)?.is_none() {
            return Err(TicketError::NotFound(id));
        }
        let key = id.0.to_be_bytes();
        let start = [key, after.saturating_add(1).to_be_bytes()].concat();
        let end = [key, u64::MAX.to_be_bytes()].concat();
        self.events
            .range(start..=end)
            .take(events_page_size(limit))
            .map(|entry| {
                let (_, bytes) = entry.map_err(|e| storage("read ticket events", &e))?;
                decode(&format!("event of {id}"), &bytes)
            })
            .collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<TicketEvent> {
        self.events_tx.subscribe()
    }
}

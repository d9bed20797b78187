//! The [`TicketStore`] contract, checked against both back-ends with the same scenarios, and
//! a model test: random operations against the sled store (with reopening the database as one
//! of them) and against the memory store, which must agree.

use std::sync::Arc;

use kefu_tickets::{
    Change, EventKind, MemoryTicketStore, NewTicket, SledTicketStore, Status, TicketError,
    TicketId, TicketPatch, TicketQuery, TicketStore,
};

fn new(user: &str, title: &str) -> NewTicket {
    NewTicket {
        user: user.into(),
        title: title.into(),
        ..NewTicket::default()
    }
}

async fn contract(store: Arc<dyn TicketStore>) {
    let mut feed = store.subscribe();
    let a = store.create(new("u-1", "A"), "bot").await.unwrap();
    let b = store.create(new("u-2", "B"), "bot").await.unwrap();
    assert_eq!((a.id, b.id), (TicketId(1), TicketId(2)));
    assert_eq!(store.get(a.id).await.unwrap(), a);
    assert_eq!(
        store.get(TicketId(99)).await.unwrap_err(),
        TicketError::NotFound(TicketId(99))
    );

    // A no-op change records nothing and bumps nothing.
    let same = store.change(a.id, "x", Change::Assign(None)).await.unwrap();
    assert_eq!((same.event, same.ticket.version), (None, 1));

    let changed = store
        .change(a.id, "agent", Change::Assign(Some("ann".into())))
        .await
        .unwrap();
    assert_eq!(changed.ticket.assignee.as_deref(), Some("ann"));
    let err = store
        .change(a.id, "agent", Change::Update(TicketPatch::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "empty_patch");
    // A refused change leaves no trace.
    assert_eq!(store.get(a.id).await.unwrap().version, 2);

    store
        .change(b.id, "agent", Change::Close { resolution: None })
        .await
        .unwrap();
    let closed = TicketQuery {
        status: Some(Status::Closed),
        ..TicketQuery::default()
    };
    let page = store.list(&closed).await.unwrap();
    assert_eq!(
        page.tickets.iter().map(|t| t.id).collect::<Vec<_>>(),
        [b.id]
    );
    let by_ann = TicketQuery {
        assignee: Some("ann".into()),
        ..TicketQuery::default()
    };
    assert_eq!(store.list(&by_ann).await.unwrap().tickets.len(), 1);
    // Moving the assignee moves the index entry.
    store
        .change(a.id, "agent", Change::Assign(Some("bob".into())))
        .await
        .unwrap();
    assert!(store.list(&by_ann).await.unwrap().tickets.is_empty());

    let events = store.events(a.id, 0, 100).await.unwrap();
    assert_eq!(events.len(), 3);
    assert!(matches!(events[0].kind, EventKind::Created { .. }));
    assert_eq!(store.events(a.id, 2, 100).await.unwrap().len(), 1);
    assert!(matches!(
        store.events(TicketId(42), 0, 10).await,
        Err(TicketError::NotFound(_))
    ));

    let mut seen = 0;
    while let Ok(event) = feed.try_recv() {
        assert!(event.seq >= 1);
        seen += 1;
    }
    assert_eq!(seen, 5, "2 created, 2 assigned, 1 closed");
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    contract(Arc::new(MemoryTicketStore::new())).await;
}

#[tokio::test]
async fn the_sled_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(SledTicketStore::open(dir.path()).unwrap())).await;
}

#[tokio::test]
async fn the_sled_store_shares_a_database_without_touching_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    db.insert(b"session/1", b"runtime data").unwrap();
    let store = SledTicketStore::new(db.clone()).unwrap();
    store.create(new("u", "t"), "bot").await.unwrap();
    assert_eq!(db.len(), 1, "tickets live in their own trees");
    assert_eq!(
        db.get(b"session/1").unwrap().unwrap().as_ref(),
        b"runtime data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creations_get_distinct_consecutive_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn TicketStore> = Arc::new(SledTicketStore::open(dir.path()).unwrap());
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create(new(&format!("u-{}", i % 3), "t"), "bot")
                    .await
                    .unwrap()
                    .id
                    .0
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=40).collect::<Vec<u64>>());
}

/// Opens the store again after a drop. sled's background threads let go of the database (and
/// its file lock) a moment after the last handle is dropped, so an in-process reopen retries.
async fn reopen(path: &std::path::Path) -> SledTicketStore {
    for _ in 0..200 {
        match SledTicketStore::open(path) {
            Ok(store) => return store,
            Err(TicketError::Storage { detail, .. }) if detail.contains("lock") => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(other) => panic!("reopen failed: {other}"),
        }
    }
    panic!("the database stayed locked after its store was dropped");
}

/// A tiny deterministic generator, so the model test needs no extra crate and replays exactly.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

#[tokio::test]
async fn sled_agrees_with_memory_under_random_operations_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [1_u64, 7, 42] {
        let path = dir.path().join(seed.to_string());
        let model = MemoryTicketStore::new();
        let mut sled = Some(SledTicketStore::open(&path).unwrap());
        let mut rng = Lcg(seed);
        let users = ["u-a", "u-b", "u-c"];
        let assignees = [None, Some("ann"), Some("bob")];
        let statuses = [
            Status::Open,
            Status::InProgress,
            Status::Pending,
            Status::Resolved,
        ];
        for _ in 0..200 {
            let real = sled.as_ref().unwrap();
            let id = TicketId(1 + rng.next(12));
            let op = rng.next(8);
            let (want, got) = match op {
                0 => {
                    let n = new(users[rng.next(3) as usize], "title");
                    (
                        model.create(n.clone(), "m").await.map(|t| t.id),
                        real.create(n, "m").await.map(|t| t.id),
                    )
                }
                1 => {
                    let c = Change::Assign(assignees[rng.next(3) as usize].map(str::to_owned));
                    (
                        model.change(id, "m", c.clone()).await.map(|c| c.ticket.id),
                        real.change(id, "m", c).await.map(|c| c.ticket.id),
                    )
                }
                2 => {
                    let c = Change::Update(TicketPatch {
                        status: Some(statuses[rng.next(4) as usize]),
                        ..TicketPatch::default()
                    });
                    (
                        model.change(id, "m", c.clone()).await.map(|c| c.ticket.id),
                        real.change(id, "m", c).await.map(|c| c.ticket.id),
                    )
                }
                3 => {
                    let c = Change::Comment {
                        body: "c".into(),
                        internal: false,
                    };
                    (
                        model.change(id, "m", c.clone()).await.map(|c| c.ticket.id),
                        real.change(id, "m", c).await.map(|c| c.ticket.id),
                    )
                }
                4 => {
                    let c = Change::Close { resolution: None };
                    (
                        model.change(id, "m", c.clone()).await.map(|c| c.ticket.id),
                        real.change(id, "m", c).await.map(|c| c.ticket.id),
                    )
                }
                5 => {
                    let c = Change::Reopen { reason: None };
                    (
                        model.change(id, "m", c.clone()).await.map(|c| c.ticket.id),
                        real.change(id, "m", c).await.map(|c| c.ticket.id),
                    )
                }
                6 => {
                    let q = TicketQuery {
                        user: (rng.next(2) == 0).then(|| users[rng.next(3) as usize].to_owned()),
                        assignee: (rng.next(2) == 0).then(|| "ann".to_owned()),
                        status: (rng.next(2) == 0).then(|| statuses[rng.next(4) as usize]),
                        limit: 1 + rng.next(4) as usize,
                        cursor: (rng.next(2) == 0).then_some(id),
                        ..TicketQuery::default()
                    };
                    let (want, got) = (model.list(&q).await.unwrap(), real.list(&q).await.unwrap());
                    // Timestamps differ between the two stores; compare ids and states.
                    let shape = |p: &kefu_tickets::TicketPage| {
                        (
                            p.tickets
                                .iter()
                                .map(|t| (t.id, t.status, t.assignee.clone(), t.version))
                                .collect::<Vec<_>>(),
                            p.next_cursor,
                        )
                    };
                    assert_eq!(shape(&want), shape(&got), "seed {seed}, query {q:?}");
                    continue;
                }
                _ => {
                    // Reboot: drop the store (and its database) and open the directory again.
                    drop(sled.take());
                    sled = Some(reopen(&path).await);
                    continue;
                }
            };
            assert_eq!(want, got, "seed {seed}, op {op}, ticket {id}");
        }
        let real = sled.as_ref().unwrap();
        for n in 1..=12 {
            let id = TicketId(n);
            match (model.get(id).await, real.get(id).await) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(
                        (a.status, a.assignee, a.version),
                        (b.status, b.assignee, b.version)
                    );
                    let (ea, eb) = (
                        model.events(id, 0, 1000).await.unwrap(),
                        real.events(id, 0, 1000).await.unwrap(),
                    );
                    assert_eq!(
                        ea.iter()
                            .map(|e| (e.seq, e.kind.clone()))
                            .collect::<Vec<_>>(),
                        eb.iter()
                            .map(|e| (e.seq, e.kind.clone()))
                            .collect::<Vec<_>>()
                    );
                }
                (a, b) => assert_eq!(a.map(|t| t.id), b.map(|t| t.id)),
            }
        }
    }
}

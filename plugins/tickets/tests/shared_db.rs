//! Tickets in the runtime's own database: the runtime's session store and the ticket store
//! share one sled `Db` (as the runtime wires them), write concurrently without deadlocking or
//! disturbing each other, and both come back after a restart.

use std::sync::Arc;
use std::time::Duration;

use kefu_store::{AppendOutcome, AppendRequest, SledStore, Store};
use kefu_tickets::{NewTicket, SledTicketStore, TicketId, TicketQuery, TicketStore};

async fn open_retrying(path: &std::path::Path) -> SledStore {
    for _ in 0..300 {
        match SledStore::open(path) {
            Ok(store) => return store,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("the store did not reopen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_and_tickets_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let sessions = Arc::new(SledStore::open(dir.path()).unwrap());
        let tickets: Arc<dyn TicketStore> =
            Arc::new(SledTicketStore::new(sessions.db().clone()).unwrap());
        let mut tasks = Vec::new();
        for w in 0..6 {
            let sessions = sessions.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20_u64 {
                    let req = AppendRequest {
                        expected_seq: i,
                        idempotency_key: Some(format!("m-{i}")),
                        user: format!("u-{w}"),
                        events: vec![b"event".to_vec()],
                        snapshot: None,
                    };
                    let out = sessions.append(&format!("s-{w}"), req).await.unwrap();
                    assert!(matches!(out, AppendOutcome::Appended { .. }), "{out:?}");
                }
            }));
            let tickets = tickets.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    let new = NewTicket {
                        user: format!("u-{w}"),
                        title: format!("ticket {i}"),
                        ..NewTicket::default()
                    };
                    tickets.create(new, "bot").await.unwrap();
                }
            }));
        }
        let all = futures_join(tasks);
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("concurrent writers deadlocked");
    }
    let sessions = open_retrying(dir.path()).await;
    let tickets = SledTicketStore::new(sessions.db().clone()).unwrap();
    assert_eq!(sessions.session_count().await.unwrap(), 6);
    assert_eq!(sessions.load("s-3").await.unwrap().unwrap().seq, 20);
    let all = TicketQuery {
        limit: 100,
        ..TicketQuery::default()
    };
    assert_eq!(tickets.list(&all).await.unwrap().tickets.len(), 60);
    assert_eq!(tickets.get(TicketId(60)).await.unwrap().version, 1);
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        task.await.unwrap();
    }
}

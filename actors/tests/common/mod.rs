//! Test helpers: a counting handler with failure triggers, and polling.

#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod llm;
pub mod probe;

use std::time::Duration;

use kefu_actors::{HandledTurn, HandlerError, Reply, TurnContext, TurnHandler};
use serde::{Deserialize, Serialize};

/// Dialog state of the test handler: how many turns it has seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub count: u64,
}

/// Replies `"<n>: <text>"`. `panic` panics, `fail` errors, `sleep:<ms>` awaits that long (as a
/// slow skill would), `late-panic` panics after an await, `tenant` answers the turn's tenant.
pub struct CountingHandler;

impl TurnHandler for CountingHandler {
    type State = Count;

    async fn handle(
        &self,
        state: &mut Count,
        turn: &TurnContext<'_>,
    ) -> Result<HandledTurn, HandlerError> {
        state.count += 1;
        if turn.text == "panic" {
            panic!("test panic on purpose");
        }
        if turn.text == "fail" {
            return Err(HandlerError("test failure on purpose".into()));
        }
        if turn.text == "late-panic" {
            tokio::time::sleep(Duration::from_millis(5)).await;
            panic!("test panic after an await");
        }
        if turn.text == "tenant" {
            return Ok(HandledTurn {
                replies: vec![Reply {
                    text: turn.tenant.to_owned(),
                }],
                ..HandledTurn::default()
            });
        }
        if let Some(ms) = turn.text.strip_prefix("sleep:") {
            let ms: u64 = ms.parse().unwrap_or(10);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(HandledTurn {
            replies: vec![Reply {
                text: format!("{}: {}", state.count, turn.text),
            }],
            ..HandledTurn::default()
        })
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub async fn periodic_check(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

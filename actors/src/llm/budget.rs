//! Token budgets per session and per tenant over a fixed window, so one runaway conversation
//! (or one tenant) cannot spend the model's capacity or the operator's money.
//!
//! Invariants: a generation is only started when the budget left covers its prompt plus at
//! least `min_reply` tokens, and its `max_tokens` is cut to what is left, so a session can
//! overshoot its budget by at most the counting error of one prompt; usage is charged after
//! each generation (also a failed or cancelled one, by what was generated); windows restart
//! lazily and stale entries are pruned so the map does not grow without bound.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Which budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetScope {
    /// The session's.
    Session,
    /// The tenant's.
    Tenant,
}

/// Entries kept before stale windows are pruned.
const PRUNE_AT: usize = 10_000;

/// The budgets of one LLM service.
#[derive(Debug)]
pub struct TokenBudgets {
    session_limit: u64,
    tenant_limit: u64,
    window: Duration,
    used: Mutex<HashMap<(bool, String), (Instant, u64)>>,
}

impl TokenBudgets {
    /// Budgets of `session_limit` and `tenant_limit` tokens per `window`.
    pub fn new(session_limit: u64, tenant_limit: u64, window: Duration) -> Self {
        Self {
            session_limit,
            tenant_limit,
            window,
            used: Mutex::new(HashMap::new()),
        }
    }

    fn left(
        &self,
        map: &mut HashMap<(bool, String), (Instant, u64)>,
        key: (bool, String),
        limit: u64,
    ) -> u64 {
        let now = Instant::now();
        let entry = map.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        limit.saturating_sub(entry.1)
    }

    /// Tokens the session may still use now: the smaller of its own and its tenant's budget;
    /// `Err` names the one that is exhausted below `needed`.
    pub fn available(&self, tenant: &str, session: &str, needed: u64) -> Result<u64, BudgetScope> {
        let mut map = self.used.lock();
        if map.len() > PRUNE_AT {
            let now = Instant::now();
            map.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let tenant_left = self.left(&mut map, (true, tenant.to_owned()), self.tenant_limit);
        let session_left = self.left(
            &mut map,
            (false, format!("{tenant}/{session}")),
            self.session_limit,
        );
        if session_left < needed {
            return Err(BudgetScope::Session);
        }
        if tenant_left < needed {
            return Err(BudgetScope::Tenant);
        }
        Ok(session_left.min(tenant_left))
    }

    /// Charges `tokens` to the session and its tenant.
    pub fn charge(&self, tenant: &str, session: &str, tokens: u64) {
        let mut map = self.used.lock();
        for key in [
            (true, tenant.to_owned()),
            (false, format!("{tenant}/{session}")),
        ] {
            let now = Instant::now();
            let entry = map.entry(key).or_insert((now, 0));
            if now.duration_since(entry.0) >= self.window {
                *entry = (now, 0);
            }
            entry.1 = entry.1.saturating_add(tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn session_and_tenant_budgets_run_out_and_refill() {
        let b = TokenBudgets::new(100, 150, Duration::from_secs(60));
        assert_eq!(b.available("t", "s1", 10), Ok(100));
        b.charge("t", "s1", 95);
        assert_eq!(b.available("t", "s1", 10), Err(BudgetScope::Session));
        assert_eq!(b.available("t", "s2", 10), Ok(55));
        b.charge("t", "s2", 50);
        assert_eq!(b.available("t", "s3", 10), Err(BudgetScope::Tenant));
        assert_eq!(b.available("other", "s1", 10), Ok(100));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(b.available("t", "s1", 10), Ok(100));
    }
}

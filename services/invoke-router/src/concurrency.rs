//! Per-account concurrency slots, released on drop whatever way an invocation ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// In-memory counters of in-flight invocations per account (embedded mode).
#[derive(Clone, Default)]
pub struct Concurrency {
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// One held slot; dropping it frees the slot.
pub struct Slot {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    account_id: String,
}

impl Concurrency {
    /// Takes a slot if fewer than `limit` are held by the account.
    pub fn try_acquire(&self, account_id: &str, limit: usize) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(account_id.to_owned()).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Slot { counts: self.counts.clone(), account_id: account_id.to_owned() })
    }

    /// Slots held by the account now.
    pub fn in_flight(&self, account_id: &str) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).get(account_id).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.account_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.account_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Concurrency;

    #[test]
    fn slots_are_bounded_and_released_on_drop() {
        let c = Concurrency::default();
        let a = c.try_acquire("a", 2).expect("first");
        let _b = c.try_acquire("a", 2).expect("second");
        assert!(c.try_acquire("a", 2).is_none(), "third is over the limit");
        assert!(c.try_acquire("other", 2).is_some(), "accounts are independent");
        drop(a);
        assert_eq!(c.in_flight("a"), 1);
        assert!(c.try_acquire("a", 2).is_some());
    }
}

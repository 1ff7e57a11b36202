//! The warm pool: live sandboxes, idle ones by key, the memory budget and uid allocation.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::ExecError;
use crate::sandbox::{Sandbox, SandboxKey};

/// First uid (and gid) given to sandboxes.
const UID_BASE: u32 = 10_000;
const UID_RANGE: u32 = 50_000;

/// What `acquire` found.
pub(crate) enum Acquired {
    /// An idle sandbox of the same key, now busy.
    Warm(Arc<Sandbox>),
    /// Capacity reserved for a new sandbox with this id and uid.
    Cold { id: u64, uid: u32 },
}

struct Live {
    memory_mb: u64,
    uid: u32,
    sandbox: Option<Arc<Sandbox>>,
    account_id: String,
    runtime: String,
    /// Running an invocation (or starting for one): counted in its account's share.
    busy: bool,
}

/// What an account's busy sandboxes hold on this host.
#[derive(Default, Clone, Copy)]
struct Busy {
    memory_mb: u64,
    sandboxes: usize,
}

struct Idle {
    sandbox: Arc<Sandbox>,
    since: Instant,
}

#[derive(Default)]
struct State {
    live: HashMap<u64, Live>,
    idle: Vec<Idle>,
    used_mb: u64,
    uids: HashSet<u32>,
    uid_cursor: u32,
    next_id: u64,
    busy: HashMap<String, Busy>,
}

impl State {
    fn mark_busy(&mut self, id: u64) {
        if let Some(l) = self.live.get_mut(&id)
            && !l.busy
        {
            l.busy = true;
            let b = self.busy.entry(l.account_id.clone()).or_default();
            b.memory_mb += l.memory_mb;
            b.sandboxes += 1;
        }
    }

    fn mark_not_busy(&mut self, id: u64) {
        if let Some(l) = self.live.get_mut(&id)
            && l.busy
        {
            l.busy = false;
            if let Some(b) = self.busy.get_mut(&l.account_id) {
                b.memory_mb = b.memory_mb.saturating_sub(l.memory_mb);
                b.sandboxes = b.sandboxes.saturating_sub(1);
                if b.sandboxes == 0 {
                    self.busy.remove(&l.account_id);
                }
            }
        }
    }
}

/// Sandboxes of one runtime at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RuntimeUsage {
    /// Alive: starting, busy or idle.
    pub(crate) live: usize,
    /// Waiting for an invocation (warm).
    pub(crate) idle: usize,
    /// Function versions with at least one idle sandbox.
    pub(crate) warm_functions: usize,
}

/// Tracks every live sandbox of the host.
pub(crate) struct Pool {
    state: Mutex<State>,
    budget_mb: u64,
    max_sandboxes: usize,
}

impl Pool {
    pub(crate) fn new(budget_mb: u64, max_sandboxes: usize) -> Self {
        Pool { state: Mutex::default(), budget_mb, max_sandboxes }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes an idle sandbox of `key`, or reserves room for a new one (evicting idle sandboxes
    /// of other keys when that frees enough). The evicted sandboxes are returned for destruction.
    ///
    /// The account's busy sandboxes may hold at most `share_percent` % of the memory budget and
    /// of the sandbox count (always at least one sandbox): beyond that the account is refused
    /// even when the host has room, so one tenant cannot take the whole host.
    pub(crate) fn acquire(
        &self,
        key: &SandboxKey,
        memory_mb: u64,
        share_percent: u32,
    ) -> Result<(Acquired, Vec<Arc<Sandbox>>), ExecError> {
        let mut st = self.state();
        let share = u64::from(share_percent.clamp(1, 100));
        let used = st.busy.get(&key.account_id).copied().unwrap_or_default();
        let cap_mb = self.budget_mb * share / 100;
        let cap_n = (self.max_sandboxes as u64 * share / 100).max(1);
        if used.sandboxes > 0 && (used.memory_mb + memory_mb > cap_mb || used.sandboxes as u64 + 1 > cap_n) {
            tracing::debug!(account = %key.account_id, busy_mb = used.memory_mb, cap_mb, "account is at its host share");
            return Err(ExecError::NoCapacity);
        }
        if let Some(pos) = st.idle.iter().rposition(|i| &i.sandbox.key == key) {
            let idle = st.idle.remove(pos);
            st.mark_busy(idle.sandbox.id);
            return Ok((Acquired::Warm(idle.sandbox), Vec::new()));
        }
        let fits = |st: &State, freed_mb: u64, freed_n: usize| {
            st.used_mb - freed_mb + memory_mb <= self.budget_mb && st.live.len() - freed_n < self.max_sandboxes
        };
        let mut evicted = Vec::new();
        if !fits(&st, 0, 0) {
            // Oldest idle first; only evict if that is enough.
            let mut candidates: Vec<usize> = (0..st.idle.len()).collect();
            candidates.sort_by_key(|&i| st.idle[i].since);
            let (mut freed_mb, mut chosen) = (0, Vec::new());
            for i in candidates {
                if fits(&st, freed_mb, chosen.len()) {
                    break;
                }
                freed_mb += st.idle[i].sandbox.memory_mb;
                chosen.push(i);
            }
            if !fits(&st, freed_mb, chosen.len()) {
                return Err(ExecError::NoCapacity);
            }
            chosen.sort_unstable_by(|a, b| b.cmp(a));
            for i in chosen {
                let idle = st.idle.remove(i);
                Self::forget_locked(&mut st, idle.sandbox.id);
                evicted.push(idle.sandbox);
            }
        }
        let Some(uid) = Self::alloc_uid(&mut st) else {
            return Err(ExecError::NoCapacity);
        };
        st.next_id += 1;
        let id = st.next_id;
        st.used_mb += memory_mb;
        let runtime = key.runtime.clone();
        st.live.insert(
            id,
            Live { memory_mb, uid, sandbox: None, account_id: key.account_id.clone(), runtime, busy: false },
        );
        st.mark_busy(id);
        Ok((Acquired::Cold { id, uid }, evicted))
    }

    fn alloc_uid(st: &mut State) -> Option<u32> {
        for _ in 0..UID_RANGE {
            st.uid_cursor = (st.uid_cursor + 1) % UID_RANGE;
            let uid = UID_BASE + st.uid_cursor;
            if st.uids.insert(uid) {
                return Some(uid);
            }
        }
        None
    }

    /// Records the started sandbox of a reservation.
    pub(crate) fn started(&self, sandbox: &Arc<Sandbox>) {
        if let Some(l) = self.state().live.get_mut(&sandbox.id) {
            l.sandbox = Some(sandbox.clone());
        }
    }

    /// Returns a healthy sandbox to the idle set.
    pub(crate) fn release_idle(&self, sandbox: Arc<Sandbox>) {
        let mut st = self.state();
        st.mark_not_busy(sandbox.id);
        st.idle.push(Idle { sandbox, since: Instant::now() });
    }

    /// Drops a sandbox (or an unused reservation) from the books, freeing its memory and uid.
    pub(crate) fn forget(&self, id: u64) {
        Self::forget_locked(&mut self.state(), id);
    }

    fn forget_locked(st: &mut State, id: u64) {
        st.mark_not_busy(id);
        st.idle.retain(|i| i.sandbox.id != id);
        if let Some(l) = st.live.remove(&id) {
            st.used_mb -= l.memory_mb;
            st.uids.remove(&l.uid);
        }
    }

    /// Removes and returns the idle sandbox unused for longest (to free what it holds).
    pub(crate) fn take_oldest_idle(&self) -> Option<Arc<Sandbox>> {
        let mut st = self.state();
        let pos = st.idle.iter().enumerate().min_by_key(|(_, i)| i.since).map(|(pos, _)| pos)?;
        let idle = st.idle.remove(pos);
        Self::forget_locked(&mut st, idle.sandbox.id);
        Some(idle.sandbox)
    }

    /// Removes and returns idle sandboxes unused for at least `idle_timeout`.
    pub(crate) fn take_expired(&self, idle_timeout: Duration) -> Vec<Arc<Sandbox>> {
        let mut st = self.state();
        let now = Instant::now();
        let (expired, keep): (Vec<Idle>, Vec<Idle>) =
            std::mem::take(&mut st.idle).into_iter().partition(|i| now.duration_since(i.since) >= idle_timeout);
        st.idle = keep;
        let out: Vec<Arc<Sandbox>> = expired.into_iter().map(|i| i.sandbox).collect();
        for sb in &out {
            Self::forget_locked(&mut st, sb.id);
        }
        out
    }

    /// Removes and returns every live sandbox (shutdown).
    pub(crate) fn take_all(&self) -> Vec<Arc<Sandbox>> {
        let mut st = self.state();
        st.idle.clear();
        let all: Vec<Arc<Sandbox>> = st.live.values().filter_map(|l| l.sandbox.clone()).collect();
        st.live.clear();
        st.busy.clear();
        st.uids.clear();
        st.used_mb = 0;
        all
    }

    /// (live sandboxes, idle sandboxes, memory reserved in MB).
    pub(crate) fn usage(&self) -> (usize, usize, u64) {
        let st = self.state();
        (st.live.len(), st.idle.len(), st.used_mb)
    }

    pub(crate) fn budget_mb(&self) -> u64 {
        self.budget_mb
    }

    /// Sandboxes of each runtime that has any now (`/metrics`).
    pub(crate) fn by_runtime(&self) -> HashMap<String, RuntimeUsage> {
        let st = self.state();
        let mut out: HashMap<String, RuntimeUsage> = HashMap::new();
        for l in st.live.values() {
            out.entry(l.runtime.clone()).or_default().live += 1;
        }
        let mut warm: HashSet<&SandboxKey> = HashSet::new();
        for i in &st.idle {
            let usage = out.entry(i.sandbox.key.runtime.clone()).or_default();
            usage.idle += 1;
            if warm.insert(&i.sandbox.key) {
                usage.warm_functions += 1;
            }
        }
        out
    }

    /// Keys with at least one idle sandbox (what a router prefers to send here).
    pub(crate) fn idle_keys(&self) -> Vec<SandboxKey> {
        let mut keys: Vec<SandboxKey> = self.state().idle.iter().map(|i| i.sandbox.key.clone()).collect();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(account: &str) -> SandboxKey {
        SandboxKey {
            account_id: account.into(),
            function_name: "f".into(),
            version: "$LATEST".into(),
            revision_id: "r".into(),
            runtime: "python3.11".into(),
        }
    }

    fn cold_id(acquired: Result<(Acquired, Vec<Arc<Sandbox>>), ExecError>) -> Option<u64> {
        match acquired {
            Ok((Acquired::Cold { id, .. }, _)) => Some(id),
            _ => None,
        }
    }

    #[test]
    fn an_account_is_held_to_its_share_of_the_host() {
        let pool = Pool::new(1024, 100);
        let a: Vec<_> = (0..4).map(|_| cold_id(pool.acquire(&key("a"), 128, 50))).collect();
        assert!(a.iter().all(Option::is_some), "512 MB of 1024 fit in a 50 % share");
        assert!(cold_id(pool.acquire(&key("a"), 128, 50)).is_none(), "the fifth is beyond the share");
        assert!(cold_id(pool.acquire(&key("b"), 128, 50)).is_some(), "another account still runs");
        assert!(cold_id(pool.acquire(&key("a"), 128, 100)).is_some(), "a raised share lets it grow");
        pool.forget(a[0].unwrap_or_default());
        assert!(cold_id(pool.acquire(&key("a"), 128, 70)).is_some(), "a finished run frees its part");
        // One sandbox is always allowed, however small the share.
        assert!(cold_id(pool.acquire(&key("c"), 128, 1)).is_some());
        assert!(cold_id(pool.acquire(&key("c"), 128, 1)).is_none());
    }

    #[test]
    fn sandboxes_are_counted_per_runtime() {
        let pool = Pool::new(1024, 8);
        let node = SandboxKey { runtime: "nodejs20.x".into(), ..key("a") };
        let a = cold_id(pool.acquire(&key("a"), 128, 100)).expect("room");
        cold_id(pool.acquire(&key("b"), 128, 100)).expect("room");
        cold_id(pool.acquire(&node, 128, 100)).expect("room");
        let usage = pool.by_runtime();
        assert_eq!(usage["python3.11"], RuntimeUsage { live: 2, idle: 0, warm_functions: 0 });
        assert_eq!(usage["nodejs20.x"].live, 1);
        pool.forget(a);
        assert_eq!(pool.by_runtime()["python3.11"].live, 1);
    }
}

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
        self.state.lock().expect("pool state poisoned")
    }

    /// Takes an idle sandbox of `key`, or reserves room for a new one (evicting idle sandboxes
    /// of other keys when that frees enough). The evicted sandboxes are returned for destruction.
    pub(crate) fn acquire(&self, key: &SandboxKey, memory_mb: u64) -> Result<(Acquired, Vec<Arc<Sandbox>>), ExecError> {
        let mut st = self.state();
        if let Some(pos) = st.idle.iter().rposition(|i| &i.sandbox.key == key) {
            let idle = st.idle.remove(pos);
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
        st.live.insert(id, Live { memory_mb, uid, sandbox: None });
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
        self.state().idle.push(Idle { sandbox, since: Instant::now() });
    }

    /// Drops a sandbox (or an unused reservation) from the books, freeing its memory and uid.
    pub(crate) fn forget(&self, id: u64) {
        Self::forget_locked(&mut self.state(), id);
    }

    fn forget_locked(st: &mut State, id: u64) {
        st.idle.retain(|i| i.sandbox.id != id);
        if let Some(l) = st.live.remove(&id) {
            st.used_mb -= l.memory_mb;
            st.uids.remove(&l.uid);
        }
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

    /// Removes and returns the idle sandboxes of `key`'s function version that run another
    /// revision: the function was updated, so they would only hold memory and their old code.
    pub(crate) fn take_superseded(&self, key: &SandboxKey) -> Vec<Arc<Sandbox>> {
        let mut st = self.state();
        let stale = |k: &SandboxKey| {
            k.revision_id != key.revision_id
                && k.function_name == key.function_name
                && k.version == key.version
                && k.account_id == key.account_id
        };
        if !st.idle.iter().any(|i| stale(&i.sandbox.key)) {
            return Vec::new();
        }
        let (gone, keep): (Vec<Idle>, Vec<Idle>) =
            std::mem::take(&mut st.idle).into_iter().partition(|i| stale(&i.sandbox.key));
        st.idle = keep;
        let out: Vec<Arc<Sandbox>> = gone.into_iter().map(|i| i.sandbox).collect();
        for sb in &out {
            Self::forget_locked(&mut st, sb.id);
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

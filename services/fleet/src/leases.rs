//! Concurrency slots as leases: at most `limit` holders per key, shared by every router.
//!
//! In Redis a key's slots are a sorted set `{prefix}:lease:{key}` of lease ids scored by their
//! expiry (server time, in ms). Acquiring runs one Lua script that drops expired ids, checks the
//! count against the limit and adds the new id, so routers never race each other, and it reads
//! the clock with `TIME` on the server, so clock skew between routers does not matter.
//!
//! A held [`Lease`] is renewed every TTL/3 by a task it owns. Releasing removes the id at once;
//! dropping a lease without releasing it removes the id in a spawned task (best effort). If the
//! process crashes, or loses Redis for longer than the TTL, its leases are not renewed and their
//! slots come back once the TTL has passed: that is the only cost of a dead router.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use redis::Script;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::connection::normalize_prefix;

/// Drops expired ids, then adds ARGV[1] if fewer than ARGV[2] ids remain. The set expires with
/// its last lease, so keys of idle accounts do not pile up.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2])))
return 1
",
    )
});

/// Pushes the expiry of a live lease ARGV[1] to now + ARGV[2]. Returns 0 when the lease has
/// expired already: its slot may have gone to someone else, so it must not come back.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2])))
return 1
",
    )
});

/// Counts the ids that have not expired.
static LIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
",
    )
});

/// Settings of the Redis backend.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Prefix of every key (`{prefix}:lease:{key}`).
    pub prefix: String,
    /// How long a lease outlives its last renewal; renewals run every `ttl / 3`. This is how long
    /// a crashed router's slots stay taken.
    pub ttl: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self { prefix: "lamina".to_owned(), ttl: Duration::from_secs(10) }
    }
}

/// Where the slots are counted. Cheap to clone; clones share the slots.
#[derive(Clone)]
pub enum Leases {
    /// In this process only (`lamina serve`). Leases never expire; they end when released or dropped.
    Memory(MemoryLeases),
    /// In Redis, shared by every process that uses the same prefix.
    Redis(RedisLeases),
}

/// In-process slot counts per key.
#[derive(Clone, Default)]
pub struct MemoryLeases {
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

/// Slots in Redis sorted sets.
#[derive(Clone)]
pub struct RedisLeases {
    conn: crate::metrics::Timed<ConnectionManager>,
    prefix: Arc<str>,
    ttl: Duration,
}

impl Leases {
    /// In-process slots.
    pub fn memory() -> Self {
        Self::Memory(MemoryLeases::default())
    }

    /// Slots in Redis through `conn`, with `config`'s prefix and TTL.
    pub fn redis(conn: ConnectionManager, config: LeaseConfig) -> Self {
        // A zero TTL would expire every lease at once; whole milliseconds are what Redis stores.
        let ttl = config.ttl.max(Duration::from_millis(3));
        Self::Redis(RedisLeases {
            conn: crate::metrics::Timed::new(conn, "leases"),
            prefix: normalize_prefix(&config.prefix).into(),
            ttl,
        })
    }

    /// Takes a slot under `key` if fewer than `limit` are held, or returns `None` when full.
    ///
    /// The lease is renewed in the background until it is released, abandoned or dropped.
    pub async fn try_acquire(&self, key: &str, limit: u32) -> anyhow::Result<Option<Lease>> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match self {
            Self::Memory(m) => {
                let mut counts = m.counts.lock().unwrap_or_else(|p| p.into_inner());
                let n = counts.entry(key.to_owned()).or_insert(0);
                if *n >= limit {
                    if *n == 0 {
                        counts.remove(key);
                    }
                    return Ok(None);
                }
                *n += 1;
                Ok(Some(Lease { id, key: key.to_owned(), held: Some(Held::Memory(m.clone())) }))
            }
            Self::Redis(r) => {
                let acquired: i64 = ACQUIRE
                    .key(r.set_key(key))
                    .arg(&id)
                    .arg(limit)
                    .arg(r.ttl_ms())
                    .invoke_async(&mut r.conn.clone())
                    .await
                    .context("acquire lease")?;
                if acquired == 0 {
                    return Ok(None);
                }
                let renewal = CancellationToken::new();
                tokio::spawn(
                    renew_until_cancelled(r.clone(), key.to_owned(), id.clone(), renewal.clone()).in_current_span(),
                );
                Ok(Some(Lease { id, key: key.to_owned(), held: Some(Held::Redis { leases: r.clone(), renewal }) }))
            }
        }
    }

    /// Slots held under `key` now (leases that have not expired).
    pub async fn in_flight(&self, key: &str) -> anyhow::Result<u32> {
        match self {
            Self::Memory(m) => Ok(m.counts.lock().unwrap_or_else(|p| p.into_inner()).get(key).copied().unwrap_or(0)),
            Self::Redis(r) => {
                LIVE.key(r.set_key(key)).invoke_async(&mut r.conn.clone()).await.context("count live leases")
            }
        }
    }
}

impl RedisLeases {
    fn set_key(&self, key: &str) -> String {
        format!("{}:lease:{key}", self.prefix)
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    async fn renew(&self, key: &str, id: &str) -> anyhow::Result<bool> {
        let renewed: i64 = RENEW
            .key(self.set_key(key))
            .arg(id)
            .arg(self.ttl_ms())
            .invoke_async(&mut self.conn.clone())
            .await
            .context("renew lease")?;
        Ok(renewed == 1)
    }

    async fn release(&self, key: &str, id: &str) -> anyhow::Result<()> {
        redis::cmd("ZREM")
            .arg(self.set_key(key))
            .arg(id)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .context("release lease")
    }
}

/// Renews every TTL/3 until `cancel` fires or the lease turns out lost. A failed renewal is
/// retried at the next tick: two may fail in a row before the lease expires.
async fn renew_until_cancelled(leases: RedisLeases, key: String, id: String, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(leases.ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // The first tick is immediate; the lease was just written.
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let renewed = tokio::select! {
            () = cancel.cancelled() => return,
            renewed = leases.renew(&key, &id) => renewed,
        };
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                // The invocation goes on; only the slot accounting is off until it ends.
                tracing::warn!(lease.key = %key, lease.id = %id, "lease expired before renewal; its slot may be reused");
                return;
            }
            Err(err) => tracing::warn!(lease.key = %key, lease.id = %id, "renew lease: {err:#}"),
        }
    }
}

/// One held slot. Release it with [`Lease::release`]; dropping it also frees the slot (in Redis,
/// from a spawned task, best effort). While held, a Redis lease is renewed in the background.
///
/// Do not `std::mem::forget` a Redis lease: its renewal would go on for the life of the process.
/// Use [`Lease::abandon`] to stop renewing without releasing.
pub struct Lease {
    id: String,
    key: String,
    /// `None` once released or abandoned.
    held: Option<Held>,
}

enum Held {
    Memory(MemoryLeases),
    Redis { leases: RedisLeases, renewal: CancellationToken },
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("id", &self.id).field("key", &self.key).finish_non_exhaustive()
    }
}

impl Lease {
    /// This lease's unique id (the sorted-set member in Redis).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key the slot was taken under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Pushes the expiry to now + TTL. Returns `false` when the lease had expired already (its slot
    /// may have been handed out again); the background task calls this, callers rarely need to.
    pub async fn renew(&self) -> anyhow::Result<bool> {
        match &self.held {
            None => Ok(false),
            Some(Held::Memory(_)) => Ok(true),
            Some(Held::Redis { leases, .. }) => leases.renew(&self.key, &self.id).await,
        }
    }

    /// Stops the renewal and frees the slot now.
    pub async fn release(mut self) -> anyhow::Result<()> {
        match self.held.take() {
            None => Ok(()),
            Some(Held::Memory(m)) => {
                release_memory(&m, &self.key);
                Ok(())
            }
            Some(Held::Redis { leases, renewal }) => {
                renewal.cancel();
                leases.release(&self.key, &self.id).await
            }
        }
    }

    /// Stops the renewal without freeing the slot, leaving what a crashed process leaves: in Redis
    /// the slot comes back after the TTL. In memory there is nothing to outlive the process, so
    /// the slot is freed at once.
    pub fn abandon(mut self) {
        match self.held.take() {
            None => {}
            Some(Held::Memory(m)) => release_memory(&m, &self.key),
            Some(Held::Redis { renewal, .. }) => renewal.cancel(),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match self.held.take() {
            None => {}
            Some(Held::Memory(m)) => release_memory(&m, &self.key),
            Some(Held::Redis { leases, renewal }) => {
                renewal.cancel();
                // Without a runtime (process teardown) the TTL frees the slot instead.
                let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
                let (key, id) = (std::mem::take(&mut self.key), std::mem::take(&mut self.id));
                runtime.spawn(
                    async move {
                        if let Err(err) = leases.release(&key, &id).await {
                            tracing::warn!(lease.key = %key, lease.id = %id, "release dropped lease: {err:#}; it expires after the TTL");
                        }
                    }
                    .in_current_span(),
                );
            }
        }
    }
}

fn release_memory(m: &MemoryLeases, key: &str) {
    let mut counts = m.counts.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = counts.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Leases;

    #[tokio::test]
    async fn memory_slots_are_bounded_and_freed_by_release_drop_and_abandon() {
        let leases = Leases::memory();
        let a = leases.try_acquire("k", 2).await.unwrap().expect("first");
        let b = leases.try_acquire("k", 2).await.unwrap().expect("second");
        assert!(leases.try_acquire("k", 2).await.unwrap().is_none(), "third is over the limit");
        assert!(leases.try_acquire("other", 1).await.unwrap().is_some(), "keys are independent");
        assert_eq!(leases.in_flight("k").await.unwrap(), 2);
        assert!(a.renew().await.unwrap());

        a.release().await.unwrap();
        assert_eq!(leases.in_flight("k").await.unwrap(), 1);
        drop(b);
        assert_eq!(leases.in_flight("k").await.unwrap(), 0);

        let c = leases.try_acquire("k", 1).await.unwrap().expect("free again");
        c.abandon();
        assert_eq!(leases.in_flight("k").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn memory_limit_zero_takes_nothing() {
        let leases = Leases::memory();
        assert!(leases.try_acquire("k", 0).await.unwrap().is_none());
        assert_eq!(leases.in_flight("k").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn clones_share_slots() {
        let leases = Leases::memory();
        let other = leases.clone();
        let _held = leases.try_acquire("k", 1).await.unwrap().expect("first");
        assert!(other.try_acquire("k", 1).await.unwrap().is_none());
    }
}

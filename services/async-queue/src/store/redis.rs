//! Redis backend: a stream read by a consumer group holds the due events, a sorted set the
//! events waiting for a retry. Layout and durability are documented on `Queue::redis`.
//!
//! An event is in exactly one place at a time: the stream (waiting, or pending for the consumer
//! running it) or the delayed set. Every move between the two is one Lua script, so a crash can
//! neither lose an event nor publish it twice. A consumer that died leaves its entries pending;
//! they are taken over with `XAUTOCLAIM` once idle longer than the lease, as SQL leases expire.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use ::redis::streams::{StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply};
use ::redis::{AsyncCommands as _, AsyncConnectionConfig, Client, IntoConnectionInfo, Script};
use anyhow::Context as _;
use lamina_common::time::now_ms;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Attempt, Event, Queue, note_dropped};

/// The consumer group every worker reads through.
const GROUP: &str = "workers";
/// The one field of a stream entry: the event as JSON, `attempts` counting the attempts made.
const FIELD: &str = "event";
/// Longest blocking read: bounds how late a worker sees a retry another worker scheduled, and
/// how long shutdown waits for the read in flight (it is never cancelled: a cancelled read can
/// still hand entries to this consumer, which would then sit out a whole lease).
const MAX_BLOCK: Duration = Duration::from_millis(250);
/// Answer deadline for ordinary commands and scripts.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Delayed events moved to the stream per script call.
const PROMOTE_BATCH: usize = 256;
/// How often a worker deletes consumers that are gone (idle this long, nothing pending).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Finishes an entry, or moves it to the delayed set, if this consumer still owns it (after a
/// lease ran out another consumer may have taken it over; then the new owner decides).
/// KEYS: stream, delayed. ARGV: group, entry id, consumer, due ms ('' to finish), event JSON.
const SETTLE: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5]) end
return 1
";

/// Moves due delayed events to the stream; returns {moved, next due score (absent if none)}.
/// KEYS: stream, delayed. ARGV: now ms, batch size.
const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[1], '*', 'event', m)
  redis.call('ZREM', KEYS[2], m)
end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if nxt[2] then return {tostring(#due), nxt[2]} end
return {tostring(#due)}
";

/// Deletes consumers with nothing pending that have been idle longer than ARGV[2] ms, or, with
/// ARGV[3] set, that one consumer if it has nothing pending. A live consumer deleted this way is
/// recreated by its next read. KEYS: stream. ARGV: group, idle ms, consumer or ''.
const PRUNE: &str = r"
local n = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and (f['name'] == ARGV[3] or (ARGV[3] == '' and f['idle'] > tonumber(ARGV[2]))) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    n = n + 1
  end
end
return n
";

/// Handle to the stream and the delayed set. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RedisQueue {
    inner: Arc<Inner>,
}

struct Inner {
    /// For the dedicated connection each worker's blocking reads use.
    client: Client,
    /// Everything else.
    conn: ConnectionManager,
    /// `{prefix}:events`
    events: String,
    /// `{prefix}:delayed`
    delayed: String,
    settle: Script,
    promote: Script,
    prune: Script,
}

/// A stream entry handed to this consumer.
struct Taken {
    id: String,
    /// `Err` when the entry cannot be read; it is finished without running.
    event: anyhow::Result<Event>,
}

impl RedisQueue {
    pub(crate) async fn connect(url: impl IntoConnectionInfo, prefix: &str) -> anyhow::Result<Self> {
        let client = Client::open(url).context("parse Redis URL")?;
        let config = ConnectionManagerConfig::new().set_response_timeout(Some(COMMAND_TIMEOUT));
        let mut conn = ConnectionManager::new_with_config(client.clone(), config).await.context("connect to Redis")?;
        let events = format!("{prefix}:events");
        create_group(&mut conn, &events).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                conn,
                events,
                delayed: format!("{prefix}:delayed"),
                settle: Script::new(SETTLE),
                promote: Script::new(PROMOTE),
                prune: Script::new(PRUNE),
            }),
        })
    }

    /// Appends the event (attempts 0) to the stream; returns once Redis has answered the `XADD`.
    pub(crate) async fn enqueue(&self, event: &Event) -> anyhow::Result<()> {
        let json = serde_json::to_string(event).context("encode event")?;
        let mut conn = self.inner.conn.clone();
        let _id: String = conn.xadd(&self.inner.events, "*", &[(FIELD, json)]).await?;
        Ok(())
    }

    /// Entries in the stream (waiting or being run) plus delayed events.
    pub(crate) async fn pending(&self) -> anyhow::Result<i64> {
        let mut conn = self.inner.conn.clone();
        let (stream, delayed): (i64, i64) =
            ::redis::pipe().atomic().xlen(&self.inner.events).zcard(&self.inner.delayed).query_async(&mut conn).await?;
        Ok(stream + delayed)
    }

    /// The worker loop: one consumer of the group, running at most `parallelism` events.
    pub(crate) async fn work<F, Fut>(self, queue: Queue, run: F, shutdown: CancellationToken)
    where
        F: Fn(Event) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Attempt> + Send + 'static,
    {
        let consumer: Arc<str> = format!("worker-{}", uuid::Uuid::new_v4().simple()).into();
        let slots = Arc::new(Semaphore::new(queue.config.parallelism.max(1)));
        let freed = Arc::new(Notify::new());
        let tracker = TaskTracker::new();
        let mut reader = Reader {
            conn: None,
            cursor: "0-0".into(),
            last_reclaim: None,
            last_prune: Instant::now(),
            running: Arc::default(),
        };
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = freed.notified() => continue,
                }
            }
            let batch = match self.take(&mut reader, &consumer, free, &queue).await {
                Ok(batch) => {
                    failures = 0;
                    batch
                }
                Err(err) => {
                    tracing::warn!(error = format!("{err:#}"), "read async events from Redis");
                    reader.conn = None;
                    // The keys may have been deleted (`FLUSHALL`, a Redis without persistence
                    // restarted): reads fail with NOGROUP until the group exists again.
                    let mut conn = self.inner.conn.clone();
                    if let Err(err) = create_group(&mut conn, &self.inner.events).await {
                        tracing::debug!(error = format!("{err:#}"), "recreate async event consumer group");
                    }
                    failures = failures.saturating_add(1);
                    let pause =
                        Duration::from_millis(100).saturating_mul(1 << failures.min(6)).min(Duration::from_secs(5));
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            };
            for taken in batch {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    // Cannot happen (at most `free` entries are read); the entry stays pending
                    // and is taken over after the lease.
                    tracing::error!(entry = taken.id, "async worker read more events than it has slots");
                    continue;
                };
                let (redis, queue, run, consumer, freed) =
                    (self.clone(), queue.clone(), run.clone(), consumer.clone(), freed.clone());
                let running = reader.running.clone();
                lock(&running).insert(taken.id.clone());
                tracker.spawn(async move {
                    let id = taken.id.clone();
                    redis.handle(taken, &queue, run, &consumer).await;
                    lock(&running).remove(&id);
                    drop(permit);
                    freed.notify_one();
                });
            }
        }
        tracker.close();
        tracker.wait().await;
        let mut conn = self.inner.conn.clone();
        let left: ::redis::RedisResult<i64> =
            self.inner.prune.key(&self.inner.events).arg(GROUP).arg(0).arg(&*consumer).invoke_async(&mut conn).await;
        if let Err(err) = left {
            tracing::warn!(error = format!("{err:#}"), "remove async worker's Redis consumer");
        }
    }

    /// Moves due retries to the stream, takes over entries whose consumer died, and reads new
    /// entries (blocking up to [`MAX_BLOCK`] or the next due retry when there is nothing).
    async fn take(
        &self,
        reader: &mut Reader,
        consumer: &str,
        free: usize,
        queue: &Queue,
    ) -> anyhow::Result<Vec<Taken>> {
        let inner = &self.inner;
        let mut conn = inner.conn.clone();
        let now = now_ms();
        let promoted: Vec<String> = inner
            .promote
            .key(&inner.events)
            .key(&inner.delayed)
            .arg(now)
            .arg(PROMOTE_BATCH)
            .invoke_async(&mut conn)
            .await
            .context("move due retries to the stream")?;
        let next_due = promoted.get(1).and_then(|score| score.parse::<f64>().ok()).map(|score| score as i64);

        let lease = queue.config.lease;
        let reclaim_every = (lease / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut taken = Vec::new();
        if reader.last_reclaim.is_none_or(|at| at.elapsed() >= reclaim_every) {
            reader.last_reclaim = Some(Instant::now());
            let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
            let reply: StreamAutoClaimReply = conn
                .xautoclaim_options(
                    &inner.events,
                    GROUP,
                    consumer,
                    lease_ms,
                    reader.cursor.as_str(),
                    StreamAutoClaimOptions::default().count(free),
                )
                .await
                .context("take over events of a dead worker")?;
            reader.cursor = reply.next_stream_id;
            let running = lock(&reader.running).clone();
            for entry in &reply.claimed {
                // Our own event outran its lease: it is still running here, and will be settled
                // by that run (unless another worker takes it over first).
                if running.contains(&entry.id) {
                    continue;
                }
                tracing::info!(entry = entry.id, "async event taken over after its lease ran out");
                taken.push(Taken::from(entry));
            }
        }
        if reader.last_prune.elapsed() >= PRUNE_EVERY {
            reader.last_prune = Instant::now();
            let idle_ms = u64::try_from(lease.max(PRUNE_EVERY).as_millis()).unwrap_or(u64::MAX);
            let _pruned: i64 = inner
                .prune
                .key(&inner.events)
                .arg(GROUP)
                .arg(idle_ms)
                .arg("")
                .invoke_async(&mut conn)
                .await
                .context("remove consumers of dead workers")?;
        }
        if taken.len() >= free {
            return Ok(taken);
        }

        let mut options = StreamReadOptions::default().group(GROUP, consumer).count(free - taken.len());
        if taken.is_empty() {
            let until_due = next_due.map_or(MAX_BLOCK, |due| Duration::from_millis((due - now).max(0) as u64));
            let block = until_due.min(MAX_BLOCK).min(reclaim_every);
            // BLOCK 0 would wait forever; a due retry is read without blocking.
            if !block.is_zero() {
                options = options.block(block.as_millis().max(1) as usize);
            }
        }
        let reader_conn = match &mut reader.conn {
            Some(conn) => conn,
            None => {
                // Its own connection: a blocking read would hold up everything multiplexed on it.
                let config = AsyncConnectionConfig::new().set_response_timeout(Some(MAX_BLOCK + COMMAND_TIMEOUT));
                let conn = inner
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .context("connect to Redis for blocking reads")?;
                reader.conn.insert(conn)
            }
        };
        let reply: Option<StreamReadReply> =
            reader_conn.xread_options(&[&inner.events], &[">"], &options).await.context("read new events")?;
        taken.extend(
            reply.into_iter().flat_map(|reply| reply.keys).flat_map(|key| key.ids).map(|entry| Taken::from(&entry)),
        );
        Ok(taken)
    }

    /// Runs one entry and records the outcome: finished, or moved to the delayed set.
    async fn handle<F, Fut>(&self, taken: Taken, queue: &Queue, run: F, consumer: &str)
    where
        F: Fn(Event) -> Fut,
        Fut: Future<Output = Attempt>,
    {
        let event = match taken.event {
            Ok(event) => event,
            Err(err) => {
                tracing::error!(entry = taken.id, error = format!("{err:#}"), "drop unreadable async event");
                if let Err(err) = self.settle(&taken.id, consumer, None).await {
                    tracing::warn!(entry = taken.id, error = format!("{err:#}"), "drop unreadable async event");
                }
                return;
            }
        };
        let outcome = run(event.clone()).await;
        let step = queue.next_step(&event, outcome);
        let retry = step.map(|delay| {
            let due = now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
            (due, event.clone())
        });
        match self.settle(&taken.id, consumer, retry).await {
            Ok(true) => note_dropped(&event, outcome, step),
            Ok(false) => tracing::info!(
                request_id = %event.request_id,
                "async event was taken over by another worker after its lease ran out; its outcome here is ignored"
            ),
            // The entry stays pending and is run again after the lease.
            Err(err) => {
                tracing::warn!(request_id = %event.request_id, error = format!("{err:#}"), "record event outcome")
            }
        }
    }

    /// Acks and deletes the entry, first adding the event to the delayed set when it has a
    /// retry due; `false` if another consumer owns the entry now. A few quick tries, since a
    /// failure means the event runs again after a whole lease.
    async fn settle(&self, id: &str, consumer: &str, retry: Option<(i64, Event)>) -> anyhow::Result<bool> {
        let inner = &self.inner;
        let (due, json) = match retry {
            Some((due, event)) => (due.to_string(), serde_json::to_string(&event).context("encode event")?),
            None => (String::new(), String::new()),
        };
        let mut conn = inner.conn.clone();
        let mut tries = 0;
        loop {
            let result: ::redis::RedisResult<i64> = inner
                .settle
                .key(&inner.events)
                .key(&inner.delayed)
                .arg(GROUP)
                .arg(id)
                .arg(consumer)
                .arg(&due)
                .arg(&json)
                .invoke_async(&mut conn)
                .await;
            match result {
                Ok(n) => return Ok(n == 1),
                Err(err) if tries >= 3 => return Err(err).context("settle event"),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100) * tries).await;
                }
            }
        }
    }
}

/// Creates the stream and the consumer group unless the group exists. From "0": events
/// enqueued before the group existed are delivered too.
async fn create_group(conn: &mut ConnectionManager, events: &str) -> anyhow::Result<()> {
    let created: ::redis::RedisResult<()> = conn.xgroup_create_mkstream(events, GROUP, "0").await;
    match created {
        Ok(()) => Ok(()),
        Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
        Err(err) => Err(err).context("create the async event consumer group"),
    }
}

/// One worker's read state.
struct Reader {
    /// The dedicated connection for blocking reads; replaced after an error.
    conn: Option<MultiplexedConnection>,
    /// Where the next `XAUTOCLAIM` scan starts.
    cursor: String,
    last_reclaim: Option<Instant>,
    last_prune: Instant,
    /// Entry ids this worker is running.
    running: Arc<Mutex<HashSet<String>>>,
}

fn lock(running: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    // The set is only inserted into and removed from; a panic cannot leave it half-changed.
    running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl From<&StreamId> for Taken {
    fn from(entry: &StreamId) -> Self {
        let event = entry.get::<String>(FIELD).context("entry has no event field").and_then(|json| {
            let mut event: Event = serde_json::from_str(&json).context("parse event")?;
            // Stored: attempts made; handed to the runner: this attempt included.
            event.attempts += 1;
            Ok(event)
        });
        Self { id: entry.id.clone(), event }
    }
}

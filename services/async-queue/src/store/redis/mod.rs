//! Redis backend: one stream per account holds the account's due events, all read through one
//! consumer group name, and a sorted set holds the events waiting for a retry. Layout and
//! durability are documented on `Queue::redis`.
//!
//! An event is in exactly one place at a time: its account's stream (waiting, or pending for the
//! consumer running it) or the delayed set. Every move between the two is one Lua script
//! ([`scripts`]), so a crash can neither lose an event nor publish it twice.
//!
//! Fairness: a worker reads the accounts' streams in turn (as many streams per read as it has
//! free slots, starting where the last read stopped), so one account's backlog does not delay
//! another account's events behind it.
//!
//! Leases: a consumer that died leaves its entries pending; they are taken over with
//! `XAUTOCLAIM` once idle longer than the lease, as SQL leases expire. A live consumer touches
//! its running entries (`XCLAIM .. JUSTID` to itself resets their idle time) every third of the
//! lease, so the lease bounds the wait after a crash, not the longest invocation. Each consumer
//! also keeps a short-lived heartbeat key; the entries of a consumer whose heartbeat is gone are
//! marked idle at once, so they are taken over within seconds of its death.

mod scripts;

use std::collections::{HashMap, HashSet};
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
/// How long an accepted request id is remembered, so the same event enqueued again is stored once:
/// longer than a schedule tick's claim (30 s) that a crashed scheduler leaves to expire; short, so
/// the markers of a busy queue stay few (one small key per event accepted in this window).
const ACCEPTED_TTL_SECS: u64 = 600;
/// The one field of a stream entry: the event as JSON, `attempts` counting the attempts made.
const FIELD: &str = "event";
/// Longest blocking read: bounds how late a worker sees a retry another worker scheduled, and
/// how long shutdown waits for the read in flight (it is never cancelled: a cancelled read can
/// still hand entries to this consumer, which would then sit out a whole lease).
const MAX_BLOCK: Duration = Duration::from_millis(250);
/// Answer deadline for ordinary commands and scripts.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Delayed events moved to the streams per script call.
const PROMOTE_BATCH: usize = 256;
/// How often a worker deletes consumers that are gone (idle this long, nothing pending) and
/// streams of accounts that have had nothing queued for [`EMPTY_STREAM_AGE`].
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const EMPTY_STREAM_AGE: Duration = Duration::from_secs(300);
/// How often a worker reads the list of account streams again.
const REFRESH_STREAMS: Duration = Duration::from_secs(1);
/// Most streams named in one read.
const STREAMS_PER_READ: usize = 64;
/// How often a consumer refreshes its heartbeat, and how long the heartbeat lives: a consumer
/// silent this long is taken for dead and its entries are taken over.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
const HEARTBEAT_TTL: Duration = Duration::from_secs(5);

/// Handle to the streams and the delayed set. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RedisQueue {
    inner: Arc<Inner>,
}

struct Inner {
    /// For the dedicated connection each worker's blocking reads use.
    client: Client,
    /// Everything else (its round trips timed as `queue`).
    conn: lamina_fleet::metrics::Timed<ConnectionManager>,
    /// `{prefix}:events`: the one stream of earlier versions, still read until it is empty.
    events: String,
    /// `{prefix}:events:` + account id: each account's stream.
    stream_prefix: String,
    /// `{prefix}:streams`: the set of account streams.
    streams: String,
    /// `{prefix}:delayed`
    delayed: String,
    /// `{prefix}:accepted:` + request id: markers of recently accepted events.
    accepted: String,
    /// `{prefix}:alive:` + consumer name: heartbeat keys.
    alive: String,
    enqueue: Script,
    settle: Script,
    promote: Script,
    prune: Script,
    renew: Script,
    orphans: Script,
    sweep: Script,
    pending: Script,
}

/// A stream entry handed to this consumer.
struct Taken {
    stream: String,
    id: String,
    /// `Err` when the entry cannot be read; it is finished without running.
    event: anyhow::Result<Event>,
}

/// An entry being run here: (stream, entry id).
type Running = Arc<Mutex<HashSet<(String, String)>>>;

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
                conn: lamina_fleet::metrics::Timed::new(conn, "queue"),
                events,
                stream_prefix: format!("{prefix}:events:"),
                streams: format!("{prefix}:streams"),
                delayed: format!("{prefix}:delayed"),
                alive: format!("{prefix}:alive:"),
                accepted: format!("{prefix}:accepted:"),
                enqueue: Script::new(scripts::ENQUEUE),
                settle: Script::new(scripts::SETTLE),
                promote: Script::new(scripts::PROMOTE),
                prune: Script::new(scripts::PRUNE),
                renew: Script::new(scripts::RENEW),
                orphans: Script::new(scripts::ORPHANS),
                sweep: Script::new(scripts::SWEEP),
                pending: Script::new(scripts::PENDING),
            }),
        })
    }

    /// Appends the event (attempts 0) to its account's stream, once per request id within
    /// [`ACCEPTED_TTL_SECS`]; returns once Redis has answered.
    pub(crate) async fn enqueue(&self, event: &Event) -> anyhow::Result<()> {
        let inner = &self.inner;
        let json = serde_json::to_string(event).context("encode event")?;
        let mut conn = inner.conn.clone();
        let _id: String = inner
            .enqueue
            .key(format!("{}{}", inner.stream_prefix, event.account_id))
            .key(&inner.streams)
            .key(format!("{}{}", inner.accepted, event.request_id))
            .arg(GROUP)
            .arg(json)
            .arg(ACCEPTED_TTL_SECS)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Entries in the streams (waiting or being run) plus delayed events.
    pub(crate) async fn pending(&self) -> anyhow::Result<i64> {
        let inner = &self.inner;
        let mut conn = inner.conn.clone();
        Ok(inner.pending.key(&inner.streams).key(&inner.events).key(&inner.delayed).invoke_async(&mut conn).await?)
    }

    /// Events not yet finished, and the accept time (epoch ms) of the oldest at the head of a
    /// stream or among the next delayed retries (`/metrics`; see [`scripts::BACKLOG`]).
    pub(crate) async fn backlog(&self) -> anyhow::Result<(i64, Option<i64>)> {
        let inner = &self.inner;
        let mut conn = inner.conn.clone();
        let (n, oldest): (i64, i64) = Script::new(scripts::BACKLOG)
            .key(&inner.streams)
            .key(&inner.events)
            .key(&inner.delayed)
            .invoke_async(&mut conn)
            .await?;
        Ok((n, (oldest > 0).then_some(oldest)))
    }

    /// The worker loop: one consumer of the group, running at most `parallelism` events.
    pub(crate) async fn work<F, Fut>(self, queue: Queue, run: F, shutdown: CancellationToken)
    where
        F: Fn(Event) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Attempt> + Send + 'static,
    {
        let consumer: Arc<str> = format!("worker-{}", uuid::Uuid::new_v4().simple()).into();
        if let Some(dir) = &queue.config.state_dir {
            self.forget_previous_life(dir, &consumer).await;
        }
        let slots = Arc::new(Semaphore::new(queue.config.parallelism.max(1)));
        let freed = Arc::new(Notify::new());
        let tracker = TaskTracker::new();
        let mut reader = Reader {
            conn: None,
            streams: Vec::new(),
            streams_at: None,
            turn: 0,
            cursors: HashMap::new(),
            last_reclaim: None,
            last_prune: Instant::now(),
            running: Arc::default(),
        };
        let renewer_stop = CancellationToken::new();
        let renewer = tokio::spawn(self.clone().renew_loop(
            consumer.clone(),
            reader.running.clone(),
            queue.config.renew_every(),
            queue.config.lease,
            renewer_stop.clone(),
        ));
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
                    // A stream may be gone (swept, `FLUSHALL`, a Redis without persistence
                    // restarted): list the streams again, and recreate the shared one's group.
                    reader.streams_at = None;
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
                // A blocking read over several streams may return one entry more per stream than
                // there are free slots: those wait here for a slot (their leases renewed).
                let permit = slots.clone().try_acquire_owned().ok();
                let (redis, queue, run, consumer, freed, slots) =
                    (self.clone(), queue.clone(), run.clone(), consumer.clone(), freed.clone(), slots.clone());
                let running = reader.running.clone();
                let key = (taken.stream.clone(), taken.id.clone());
                lock(&running).insert(key.clone());
                tracker.spawn(async move {
                    let permit = match permit {
                        Some(p) => Some(p),
                        None => slots.acquire_owned().await.ok(),
                    };
                    redis.handle(taken, &queue, run, &consumer).await;
                    lock(&running).remove(&key);
                    drop(permit);
                    freed.notify_one();
                });
            }
        }
        tracker.close();
        tracker.wait().await;
        renewer_stop.cancel();
        let _ = renewer.await;
        let mut conn = self.inner.conn.clone();
        let left: ::redis::RedisResult<i64> =
            self.inner.prune.key(&reader.streams).arg(GROUP).arg(0).arg(&*consumer).invoke_async(&mut conn).await;
        if let Err(err) = left {
            tracing::warn!(error = format!("{err:#}"), "remove async worker's Redis consumer");
        }
    }

    /// Deletes the heartbeat of the consumer the previous process on `dir` was (it is dead: this
    /// process replaces it), so the first takeover pass runs its events again now, and records
    /// this consumer's name for the next process.
    async fn forget_previous_life(&self, dir: &std::path::Path, consumer: &str) {
        let file = dir.join("async-queue-consumer");
        if let Ok(previous) = std::fs::read_to_string(&file) {
            let previous = previous.trim();
            let mut conn = self.inner.conn.clone();
            let deleted: ::redis::RedisResult<i64> = conn.del(format!("{}{previous}", self.inner.alive)).await;
            match deleted {
                Ok(_) => tracing::info!(previous, "events of the previous async-queue process are due again"),
                Err(err) => tracing::warn!(error = format!("{err:#}"), "forget the previous consumer's heartbeat"),
            }
        }
        let tmp = dir.join("async-queue-consumer.tmp");
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, consumer))
            .and_then(|()| std::fs::rename(&tmp, &file));
        if let Err(err) = written {
            tracing::warn!(error = %err, file = %file.display(), "record the async-queue consumer name");
        }
    }

    /// Until `stop`: refreshes this consumer's heartbeat every [`HEARTBEAT_EVERY`] and touches
    /// the entries it is running every `every`.
    async fn renew_loop(
        self,
        consumer: Arc<str>,
        running: Running,
        every: Duration,
        lease: Duration,
        stop: CancellationToken,
    ) {
        let inner = &self.inner;
        let heartbeat = format!("{}{consumer}", inner.alive);
        // No longer than a lease: the heartbeat is there to make takeover faster, never slower.
        let ttl_ms = u64::try_from(HEARTBEAT_TTL.min(lease).as_millis()).unwrap_or(u64::MAX).max(1);
        let mut last_renew = Instant::now();
        loop {
            let entries: Vec<(String, String)> =
                if last_renew.elapsed() >= every { lock(&running).iter().cloned().collect() } else { Vec::new() };
            if !entries.is_empty() {
                last_renew = Instant::now();
            }
            let mut conn = inner.conn.clone();
            let mut call = inner.renew.key(&heartbeat);
            call.arg(GROUP).arg(&*consumer).arg(ttl_ms);
            for (stream, id) in &entries {
                call.key(stream).arg(id);
            }
            let renewed: ::redis::RedisResult<i64> = call.invoke_async(&mut conn).await;
            match renewed {
                Ok(n) if usize::try_from(n).is_ok_and(|n| n < entries.len()) => {
                    tracing::info!(lost = entries.len() - n as usize, "leases of running async events were lost")
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = format!("{err:#}"), "renew async event leases"),
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(HEARTBEAT_EVERY.min(every)) => {}
            }
        }
        let mut conn = inner.conn.clone();
        let _: ::redis::RedisResult<i64> = conn.del(&heartbeat).await;
    }

    /// Moves due retries to the streams, takes over entries whose consumer died, and reads new
    /// entries from the accounts' streams in turn (blocking up to [`MAX_BLOCK`] or the next due
    /// retry when there is nothing).
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
            .key(&inner.delayed)
            .key(&inner.streams)
            .arg(now)
            .arg(PROMOTE_BATCH)
            .arg(GROUP)
            .arg(&inner.stream_prefix)
            .invoke_async(&mut conn)
            .await
            .context("move due retries to the streams")?;
        let next_due = promoted.get(1).and_then(|score| score.parse::<f64>().ok()).map(|score| score as i64);
        if promoted.first().is_some_and(|n| n != "0")
            || reader.streams_at.is_none_or(|at| at.elapsed() >= REFRESH_STREAMS)
        {
            let mut streams: Vec<String> = conn.smembers(&inner.streams).await.context("list account streams")?;
            streams.push(inner.events.clone());
            streams.sort_unstable();
            streams.dedup();
            reader.streams = streams;
            reader.streams_at = Some(Instant::now());
        }
        let streams = reader.streams.clone();

        let lease = queue.config.lease;
        let reclaim_every = (lease / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut taken = Vec::new();
        if reader.last_reclaim.is_none_or(|at| at.elapsed() >= reclaim_every) {
            reader.last_reclaim = Some(Instant::now());
            taken = self.reclaim(reader, &streams, consumer, free, lease).await?;
            // A full batch: more may be waiting (a dead worker's events); they go before new
            // entries, so the next turn takes over again instead of a second later.
            if taken.len() >= free {
                reader.last_reclaim = None;
            }
        }
        if reader.last_prune.elapsed() >= PRUNE_EVERY {
            reader.last_prune = Instant::now();
            self.prune(&streams, lease).await?;
        }
        if taken.len() >= free {
            return Ok(taken);
        }

        // Without blocking: the streams in turn, as many per read as there are free slots.
        let n = streams.len();
        let mut tried = 0;
        while tried < n {
            let want = free - taken.len();
            let k = want.min(n - tried).clamp(1, STREAMS_PER_READ);
            let chunk: Vec<&str> = (0..k).map(|j| streams[(reader.turn + j) % n].as_str()).collect();
            reader.turn = (reader.turn + k) % n;
            tried += k;
            let options = StreamReadOptions::default().group(GROUP, consumer).count((want / k).max(1));
            taken.extend(self.read(reader, &chunk, &options).await?);
            if !taken.is_empty() {
                return Ok(taken);
            }
        }
        // Nothing anywhere: wait on the streams for the first new entry.
        let until_due = next_due.map_or(MAX_BLOCK, |due| Duration::from_millis((due - now).max(0) as u64));
        let block = until_due.min(MAX_BLOCK).min(reclaim_every);
        // BLOCK 0 would wait forever; a due retry is read at the next turn.
        if block.is_zero() || n == 0 {
            return Ok(taken);
        }
        let chunk: Vec<&str> = (0..n.min(STREAMS_PER_READ)).map(|j| streams[(reader.turn + j) % n].as_str()).collect();
        let options =
            StreamReadOptions::default().group(GROUP, consumer).count(1).block(block.as_millis().max(1) as usize);
        taken.extend(self.read(reader, &chunk, &options).await?);
        Ok(taken)
    }

    /// One `XREADGROUP` of new entries from `streams`, on the reader's own connection.
    async fn read(
        &self,
        reader: &mut Reader,
        streams: &[&str],
        options: &StreamReadOptions,
    ) -> anyhow::Result<Vec<Taken>> {
        let reader_conn = match &mut reader.conn {
            Some(conn) => conn,
            None => {
                // Its own connection: a blocking read would hold up everything multiplexed on it.
                let config = AsyncConnectionConfig::new().set_response_timeout(Some(MAX_BLOCK + COMMAND_TIMEOUT));
                let conn = self
                    .inner
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .context("connect to Redis for blocking reads")?;
                reader.conn.insert(conn)
            }
        };
        let ids = vec![">"; streams.len()];
        let reply: Option<StreamReadReply> =
            reader_conn.xread_options(streams, &ids, options).await.context("read new events")?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| {
                let stream = key.key;
                key.ids.into_iter().map(move |entry| Taken::of(&stream, &entry))
            })
            .collect())
    }

    /// Marks the entries of consumers without a heartbeat idle, then takes over (`XAUTOCLAIM`)
    /// entries idle longer than the lease, up to `free`.
    async fn reclaim(
        &self,
        reader: &mut Reader,
        streams: &[String],
        consumer: &str,
        free: usize,
        lease: Duration,
    ) -> anyhow::Result<Vec<Taken>> {
        let inner = &self.inner;
        let mut conn = inner.conn.clone();
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let orphaned: i64 = inner
            .orphans
            .key(streams)
            .arg(GROUP)
            .arg(&inner.alive)
            .arg(lease_ms)
            .arg(consumer)
            .invoke_async(&mut conn)
            .await
            .context("find events of dead workers")?;
        if orphaned > 0 {
            tracing::info!(events = orphaned, "async events of a worker without a heartbeat are due again");
        }
        let mut pipe = ::redis::pipe();
        for stream in streams {
            let cursor = reader.cursors.get(stream).map_or("0-0", String::as_str);
            pipe.xautoclaim_options(
                stream,
                GROUP,
                consumer,
                lease_ms,
                cursor,
                StreamAutoClaimOptions::default().count(free.max(1)),
            );
        }
        let replies: Vec<StreamAutoClaimReply> =
            pipe.query_async(&mut conn).await.context("take over events of a dead worker")?;
        let running = lock(&reader.running).clone();
        let mut taken = Vec::new();
        for (stream, reply) in streams.iter().zip(replies) {
            reader.cursors.insert(stream.clone(), reply.next_stream_id);
            for entry in &reply.claimed {
                // Our own event outran its lease (a renewal failed): it is still running here,
                // and will be settled by that run (unless another worker takes it over first).
                if running.contains(&(stream.clone(), entry.id.clone())) {
                    continue;
                }
                tracing::info!(entry = entry.id, "async event taken over after its lease ran out");
                taken.push(Taken::of(stream, entry));
            }
        }
        reader.cursors.retain(|s, _| streams.contains(s));
        Ok(taken)
    }

    /// Deletes consumers that are gone and account streams long empty.
    async fn prune(&self, streams: &[String], lease: Duration) -> anyhow::Result<()> {
        let inner = &self.inner;
        let mut conn = inner.conn.clone();
        let idle_ms = u64::try_from(lease.max(PRUNE_EVERY).as_millis()).unwrap_or(u64::MAX);
        let _pruned: i64 = inner
            .prune
            .key(streams)
            .arg(GROUP)
            .arg(idle_ms)
            .arg("")
            .invoke_async(&mut conn)
            .await
            .context("remove consumers of dead workers")?;
        let _swept: i64 = inner
            .sweep
            .key(&inner.streams)
            .arg(&inner.events)
            .arg(EMPTY_STREAM_AGE.as_millis() as u64)
            .arg(now_ms())
            .invoke_async(&mut conn)
            .await
            .context("remove empty account streams")?;
        Ok(())
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
                if let Err(err) = self.settle(&taken.stream, &taken.id, consumer, None).await {
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
        match self.settle(&taken.stream, &taken.id, consumer, retry).await {
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
    /// failure means the event runs again after a lease.
    async fn settle(
        &self,
        stream: &str,
        id: &str,
        consumer: &str,
        retry: Option<(i64, Event)>,
    ) -> anyhow::Result<bool> {
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
                .key(stream)
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
async fn create_group(
    conn: &mut (impl ::redis::aio::ConnectionLike + Send + Sync),
    events: &str,
) -> anyhow::Result<()> {
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
    /// The streams to read (every account's, and the shared one), sorted; listed again every
    /// [`REFRESH_STREAMS`] and after an error.
    streams: Vec<String>,
    streams_at: Option<Instant>,
    /// Index into `streams` where the next read starts.
    turn: usize,
    /// Where the next `XAUTOCLAIM` scan of each stream starts.
    cursors: HashMap<String, String>,
    last_reclaim: Option<Instant>,
    last_prune: Instant,
    /// Entries this worker is running (or holding for a free slot).
    running: Running,
}

fn lock<T>(running: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The set is only inserted into and removed from; a panic cannot leave it half-changed.
    running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Taken {
    fn of(stream: &str, entry: &StreamId) -> Self {
        let event = entry.get::<String>(FIELD).context("entry has no event field").and_then(|json| {
            let mut event: Event = serde_json::from_str(&json).context("parse event")?;
            // Stored: attempts made; handed to the runner: this attempt included.
            event.attempts += 1;
            Ok(event)
        });
        Self { stream: stream.to_owned(), id: entry.id.clone(), event }
    }
}

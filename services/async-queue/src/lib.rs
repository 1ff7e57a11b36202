//! Event invocations: durable enqueue, retries with backoff, and the worker that runs them.
//!
//! Two backends share one API and one retry policy ([`Queue::next_step`]):
//! - SQL (`lamina serve`): the queue lives in the metadata database (SQLite or Postgres), so an
//!   event acknowledged with 202 is on disk before the answer leaves, and a claimed event whose
//!   worker died is claimed again when its lease runs out.
//! - Redis (distributed mode): a stream per account with a consumer group for due events and a
//!   sorted set for delayed retries; see [`Queue::redis`] for the key layout and what makes it
//!   durable.
//!
//! Both take the accounts in turn (one account's flood does not delay another's events), and
//! both keep a running event's lease short and renewed, so an event whose worker died runs again
//! within seconds; see [`QueueConfig::lease`].

mod client;
mod grpc;
pub mod metrics;
mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use lamina_common::time::now_ms;
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::Store;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use client::QueueClient;
pub use grpc::serve;

use crate::store::redis::RedisQueue;
use crate::store::sql::SqlQueue;

/// Retry behaviour (semantics RETRY Decision, CONC-8).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Delay before each retry after a function error; its length is the number of retries.
    pub retry_delays: Vec<Duration>,
    /// First backoff after a throttle or service error; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest backoff after a throttle or service error.
    pub max_backoff: Duration,
    /// Events older than this are dropped (`MaximumEventAgeInSeconds`).
    pub max_event_age: Duration,
    /// How long a claimed event stays invisible to other workers unless renewed; a running event's
    /// lease is renewed every third of it, so this bounds how late an event whose worker died
    /// runs again, not how long an invocation may take.
    pub lease: Duration,
    /// The name this worker's leases carry. On the SQL queue a worker starting frees the leases
    /// held under its name (the previous process's), so events it was running when it died run
    /// again at once: servers sharing one database need distinct names.
    pub consumer: String,
    /// Redis only: a directory where the worker remembers its consumer name, so that the next
    /// process on it takes over the events it was running at once (the way `lamina serve` frees
    /// its previous leases) instead of after the dead worker's heartbeat expires. One worker per
    /// directory.
    pub state_dir: Option<std::path::PathBuf>,
    /// Events run at the same time by one worker.
    pub parallelism: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            retry_delays: vec![Duration::from_secs(60), Duration::from_secs(120)],
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_event_age: Duration::from_secs(6 * 3600),
            lease: Duration::from_secs(30),
            consumer: "lamina-serve".into(),
            state_dir: None,
            parallelism: 16,
        }
    }
}

impl QueueConfig {
    /// How often a running event's lease is extended.
    pub(crate) fn renew_every(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(10))
    }

    /// Parses `LAMINA_ASYNC_RETRY_DELAYS` (`"1,2"`: seconds per retry).
    pub fn parse_delays(text: &str) -> anyhow::Result<Vec<Duration>> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let secs: f64 = s.trim().parse().with_context(|| format!("retry delay {s:?}"))?;
                Duration::try_from_secs_f64(secs).with_context(|| format!("retry delay {s:?}"))
            })
            .collect()
    }
}

/// One accepted event.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct Event {
    pub request_id: String,
    pub account_id: String,
    pub function_name: String,
    pub qualifier: Option<String>,
    pub payload: String,
    /// Attempts so far, the one being handed to the runner included (1 on the first run).
    pub attempts: i64,
    /// Accepted at, epoch milliseconds.
    pub created_at: i64,
    /// W3C `traceparent` of the span that accepted the event: its runs join that trace. Absent
    /// when traces are off, and on events stored before it existed.
    #[sqlx(default)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
}

/// How one attempt ended, as the runner reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The function ran and succeeded.
    Succeeded,
    /// The function ran and failed (error, timeout, crash): retried per `retry_delays`.
    FunctionError,
    /// Throttled or a service error: retried with backoff until the event is too old.
    Throttled,
    /// The function no longer exists: dropped.
    Gone,
    /// The event failed for good (its last allowed attempt, or too old to run) and its record
    /// went to the function's on-failure destination or dead-letter queue: finished, and not
    /// counted as dropped.
    Delivered,
    /// The runner ended the event without success and with nowhere to send it (e.g. the
    /// function's own `MaximumRetryAttempts` is spent before the queue's retries): dropped.
    Dropped,
}

/// Handle to the queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    backend: Backend,
    config: Arc<QueueConfig>,
}

/// Where the events live; both variants are cheap handles.
#[derive(Clone)]
enum Backend {
    Sql(SqlQueue),
    Redis(RedisQueue),
}

impl Queue {
    /// A queue on the metadata store.
    pub fn new(store: Store, config: QueueConfig) -> Self {
        Self { backend: Backend::Sql(SqlQueue::new(store)), config: Arc::new(config) }
    }

    /// A queue on Redis (`redis://[user:password@]host:port[/db]`, or `rediss://` for TLS), its
    /// keys under `prefix`; creates the stream and its consumer group if they are missing.
    ///
    /// Keys: `{prefix}:events:{account id}` is a stream per account (one entry per event that
    /// is due or being run, its one field `event` the event as JSON with the attempts made so
    /// far) read by the consumer group `workers`, each worker a consumer with a unique name;
    /// `{prefix}:streams` is the set of those streams; workers read them in turn, so one
    /// account's backlog does not hold up another's events. `{prefix}:events` is the single
    /// stream of earlier versions, still read until empty. `{prefix}:delayed` is a sorted set of
    /// events waiting for a retry (same JSON), scored by due time in epoch milliseconds.
    /// `{prefix}:alive:{consumer}` is a worker's heartbeat (a few seconds' TTL): the events of a
    /// worker whose heartbeat is gone are taken over at once instead of after their lease.
    /// Under Redis Cluster, put a hash tag in the prefix (`{lamina}`) so all keys share a slot:
    /// the scripts touch several.
    ///
    /// Durability: [`Queue::enqueue`] returns after `XADD` was answered, which is on disk only
    /// if Redis persists: with `appendonly yes` and `appendfsync always` the entry is fsynced
    /// before the answer; with `appendfsync everysec` up to the last second of accepted events
    /// can be lost when the Redis host crashes; with persistence off (or RDB snapshots only) a
    /// Redis restart loses the queue.
    pub async fn redis(
        url: impl ::redis::IntoConnectionInfo,
        prefix: &str,
        config: QueueConfig,
    ) -> anyhow::Result<Self> {
        let backend = RedisQueue::connect(url, prefix).await?;
        Ok(Self { backend: Backend::Redis(backend), config: Arc::new(config) })
    }

    /// The retry policy this queue applies (a runner that decides the last attempt itself must
    /// not count on more retries than the queue grants).
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Stores an event; returns once it is durable.
    #[tracing::instrument(name = "queue.enqueue", skip_all, fields(request_id = %request_id, account_id = %account_id, function = %function_name))]
    pub async fn enqueue(
        &self,
        request_id: &str,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        payload: &Bytes,
    ) -> ApiResult<()> {
        let payload = String::from_utf8(payload.to_vec())
            .map_err(|_| ApiError::InvalidRequestContent("Could not parse request body into json".into()))?;
        let event = Event {
            request_id: request_id.to_owned(),
            account_id: account_id.to_owned(),
            function_name: function_name.to_owned(),
            qualifier: qualifier.map(str::to_owned),
            payload,
            attempts: 0,
            created_at: now_ms(),
            trace_parent: lamina_rpc::trace::traceparent(),
        };
        match &self.backend {
            Backend::Sql(sql) => sql.enqueue(&event).await.context("enqueue event")?,
            // A queue that cannot reach Redis is unavailable, not broken: the caller may retry.
            Backend::Redis(redis) => redis.enqueue(&event).await.map_err(|e| {
                tracing::warn!("enqueue an event in Redis: {e:#}");
                ApiError::ServiceUnavailable("The event queue is unavailable. Retry the request.".into())
            })?,
        }
        ::metrics::counter!(crate::metrics::EVENTS_ACCEPTED_TOTAL).increment(1);
        Ok(())
    }

    /// Events not yet finished, the ones being run included (for tests and health).
    pub async fn pending(&self) -> ApiResult<i64> {
        Ok(match &self.backend {
            Backend::Sql(sql) => sql.pending().await,
            Backend::Redis(redis) => redis.pending().await,
        }
        .context("count events")?)
    }

    /// What to do after an attempt: finish (`None`), or retry after a delay.
    fn next_step(&self, event: &Event, outcome: Attempt) -> Option<Duration> {
        let age = Duration::from_millis((now_ms() - event.created_at).max(0) as u64);
        match outcome {
            Attempt::Succeeded | Attempt::Gone | Attempt::Delivered | Attempt::Dropped => None,
            Attempt::FunctionError => {
                let failures = usize::try_from(event.attempts).unwrap_or(usize::MAX);
                self.config.retry_delays.get(failures.saturating_sub(1)).copied()
            }
            Attempt::Throttled if age >= self.config.max_event_age => None,
            Attempt::Throttled => {
                let exp = u32::try_from(event.attempts.clamp(1, 20) - 1).unwrap_or(19);
                Some(self.config.min_backoff.saturating_mul(2u32.saturating_pow(exp)).min(self.config.max_backoff))
            }
        }
    }

    /// Runs the worker until `shutdown`: takes due events and hands each to `run`, at most
    /// `parallelism` at a time; waits for the running ones before returning.
    pub async fn work<F, Fut>(self, run: F, shutdown: CancellationToken)
    where
        F: Fn(Event) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Attempt> + Send + 'static,
    {
        // Each run is a span of the trace that accepted the event (request ids in the logs too).
        let run = move |event: Event| {
            let span = tracing::info_span!(
                "queue.run",
                request_id = %event.request_id,
                account_id = %event.account_id,
                function = %event.function_name,
                attempt = event.attempts,
            );
            if let Some(parent) = &event.trace_parent {
                lamina_rpc::trace::set_parent(&span, parent);
            }
            tracing::Instrument::instrument(run(event), span)
        };
        match self.backend.clone() {
            Backend::Sql(sql) => sql.work(self, run, shutdown).await,
            Backend::Redis(redis) => redis.work(self, run, shutdown).await,
        }
    }
}

/// Counts and logs an event that will not run again without having succeeded.
fn note_dropped(event: &Event, outcome: Attempt, step: Option<Duration>) {
    if step.is_none() && !matches!(outcome, Attempt::Succeeded | Attempt::Delivered) {
        ::metrics::counter!(crate::metrics::EVENTS_DROPPED_TOTAL).increment(1);
        tracing::info!(request_id = %event.request_id, ?outcome, "async event discarded after its last attempt");
    }
}

//! Event invocations: durable enqueue, retries with backoff, and the worker that runs them.
//!
//! Embedded mode keeps the queue in the metadata database (SQLite or Postgres), so an event
//! acknowledged with 202 is on disk before the answer leaves, and a claimed event whose worker died
//! is claimed again when its lease runs out.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use lamina_common::time::now_ms;
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::{Store, on_pool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Retry behaviour (semantics RETRY Decision, CONC-8).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Delay before each retry after a function error; its length is the number of retries.
    pub retry_delays: Vec<Duration>,
    /// First backoff after a throttle or service error; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Events older than this are dropped (`MaximumEventAgeInSeconds`).
    pub max_event_age: Duration,
    /// How long a claimed event stays invisible to other workers.
    pub lease: Duration,
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
            lease: Duration::from_secs(960),
            parallelism: 16,
        }
    }
}

impl QueueConfig {
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
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    pub request_id: String,
    pub account_id: String,
    pub function_name: String,
    pub qualifier: Option<String>,
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
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
}

/// Handle to the queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    store: Store,
    config: Arc<QueueConfig>,
    wake: Arc<Notify>,
}

impl Queue {
    /// A queue on the metadata store.
    pub fn new(store: Store, config: QueueConfig) -> Self {
        Self { store, config: Arc::new(config), wake: Arc::new(Notify::new()) }
    }

    /// Stores an event; returns once it is durable.
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
        let now = now_ms();
        let sql = "insert into async_events (request_id, account_id, function_name, qualifier, payload, attempts, \
                   next_attempt_at, lease_until, created_at, updated_at) values ($1, $2, $3, $4, $5, 0, $6, 0, $6, $6)";
        on_pool!(&self.store, pool => sqlx::query(sql)
            .bind(request_id).bind(account_id).bind(function_name).bind(qualifier).bind(&payload).bind(now)
            .execute(pool).await.map(|_| ()))
        .context("enqueue event")?;
        metrics::counter!("lamina_async_events_accepted_total").increment(1);
        self.wake.notify_one();
        Ok(())
    }

    /// Events not yet finished (for tests and health).
    pub async fn pending(&self) -> ApiResult<i64> {
        Ok(on_pool!(&self.store, pool => sqlx::query_scalar::<_, i64>("select count(*) from async_events").fetch_one(pool).await)
            .context("count events")?)
    }

    async fn claim(&self, limit: usize) -> anyhow::Result<Vec<Event>> {
        let now = now_ms();
        let lease = now + self.config.lease.as_millis() as i64;
        let sql = "update async_events set lease_until = $2, attempts = attempts + 1, updated_at = $1 \
                   where request_id in (select request_id from async_events where next_attempt_at <= $1 and lease_until < $1 \
                   order by next_attempt_at limit $3) and lease_until < $1 \
                   returning request_id, account_id, function_name, qualifier, payload, attempts, created_at";
        on_pool!(&self.store, pool => sqlx::query_as::<_, Event>(sql).bind(now).bind(lease).bind(limit as i64).fetch_all(pool).await)
            .context("claim events")
    }

    async fn finish(&self, event: &Event) -> anyhow::Result<()> {
        on_pool!(&self.store, pool => sqlx::query("delete from async_events where request_id = $1")
            .bind(&event.request_id).execute(pool).await.map(|_| ()))
        .context("finish event")
    }

    async fn retry_at(&self, event: &Event, delay: Duration) -> anyhow::Result<()> {
        let now = now_ms();
        let sql =
            "update async_events set next_attempt_at = $2, lease_until = 0, updated_at = $3 where request_id = $1";
        on_pool!(&self.store, pool => sqlx::query(sql)
            .bind(&event.request_id).bind(now + delay.as_millis() as i64).bind(now).execute(pool).await.map(|_| ()))
        .context("reschedule event")
    }

    /// What to do after an attempt: finish, or retry after a delay.
    fn next_step(&self, event: &Event, outcome: Attempt) -> Option<Duration> {
        let age = Duration::from_millis((now_ms() - event.created_at).max(0) as u64);
        match outcome {
            Attempt::Succeeded | Attempt::Gone => None,
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

    /// Runs the worker until `shutdown`: claims due events and hands each to `run`.
    pub async fn work<F, Fut>(self, run: F, shutdown: CancellationToken)
    where
        F: Fn(Event) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Attempt> + Send + 'static,
    {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.config.parallelism));
        let tracker = tokio_util::task::TaskTracker::new();
        loop {
            let free = slots.available_permits();
            let claimed = if free == 0 { Ok(Vec::new()) } else { self.claim(free).await };
            let events = claimed.unwrap_or_else(|err| {
                tracing::warn!(error = format!("{err:#}"), "claim async events");
                Vec::new()
            });
            let idle = events.is_empty();
            for event in events {
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                let (queue, run) = (self.clone(), run.clone());
                tracker.spawn(async move {
                    let outcome = run(event.clone()).await;
                    let step = queue.next_step(&event, outcome);
                    let result = match step {
                        None => queue.finish(&event).await,
                        Some(delay) => queue.retry_at(&event, delay).await,
                    };
                    if let Err(err) = result {
                        tracing::warn!(request_id = %event.request_id, error = format!("{err:#}"), "record event outcome");
                    }
                    if step.is_none() && outcome != Attempt::Succeeded {
                        metrics::counter!("lamina_async_events_dropped_total").increment(1);
                        tracing::info!(request_id = %event.request_id, ?outcome, "async event discarded after its last attempt");
                    }
                    queue.wake.notify_one();
                    drop(permit);
                });
            }
            if idle {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            } else if shutdown.is_cancelled() {
                break;
            }
        }
        tracker.close();
        tracker.wait().await;
    }
}

//! SQL backend: the `async_events` table in the metadata database, claimed with a lease.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use lamina_common::time::now_ms;
use lamina_metadata::{Store, on_pool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{Attempt, Event, Queue, note_dropped};

/// Handle to the table. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SqlQueue {
    store: Store,
    /// Wakes the local worker when an event arrives or a slot frees up.
    wake: Arc<Notify>,
}

impl SqlQueue {
    pub(crate) fn new(store: Store) -> Self {
        Self { store, wake: Arc::new(Notify::new()) }
    }

    pub(crate) async fn enqueue(&self, event: &Event) -> anyhow::Result<()> {
        let sql = "insert into async_events (request_id, account_id, function_name, qualifier, payload, attempts, \
                   next_attempt_at, lease_until, created_at, updated_at) values ($1, $2, $3, $4, $5, 0, $6, 0, $6, $6)";
        on_pool!(&self.store, pool => sqlx::query(sql)
            .bind(&event.request_id).bind(&event.account_id).bind(&event.function_name).bind(&event.qualifier)
            .bind(&event.payload).bind(event.created_at)
            .execute(pool).await.map(|_| ()))?;
        self.wake.notify_one();
        Ok(())
    }

    pub(crate) async fn pending(&self) -> anyhow::Result<i64> {
        Ok(
            on_pool!(&self.store, pool => sqlx::query_scalar::<_, i64>("select count(*) from async_events").fetch_one(pool).await)?,
        )
    }

    async fn claim(&self, lease: Duration, limit: usize) -> anyhow::Result<Vec<Event>> {
        let now = now_ms();
        let lease = now + lease.as_millis() as i64;
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

    /// The worker loop: claims due events and hands each to `run`.
    pub(crate) async fn work<F, Fut>(self, queue: Queue, run: F, shutdown: CancellationToken)
    where
        F: Fn(Event) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Attempt> + Send + 'static,
    {
        let slots = Arc::new(tokio::sync::Semaphore::new(queue.config.parallelism));
        let tracker = tokio_util::task::TaskTracker::new();
        loop {
            let free = slots.available_permits();
            let claimed = if free == 0 { Ok(Vec::new()) } else { self.claim(queue.config.lease, free).await };
            let events = claimed.unwrap_or_else(|err| {
                tracing::warn!(error = format!("{err:#}"), "claim async events");
                Vec::new()
            });
            let idle = events.is_empty();
            for event in events {
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                let (sql, queue, run) = (self.clone(), queue.clone(), run.clone());
                tracker.spawn(async move {
                    let outcome = run(event.clone()).await;
                    let step = queue.next_step(&event, outcome);
                    let result = match step {
                        None => sql.finish(&event).await,
                        Some(delay) => sql.retry_at(&event, delay).await,
                    };
                    if let Err(err) = result {
                        tracing::warn!(request_id = %event.request_id, error = format!("{err:#}"), "record event outcome");
                    }
                    note_dropped(&event, outcome, step);
                    sql.wake.notify_one();
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

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

    /// Idempotent: an event whose request id is still queued is not stored twice (a schedule's tick
    /// fired again after a crash carries the request ids of the first try).
    pub(crate) async fn enqueue(&self, event: &Event) -> anyhow::Result<()> {
        let sql = "insert into async_events (request_id, account_id, function_name, qualifier, payload, attempts, \
                   next_attempt_at, lease_until, created_at, updated_at, trace_parent) \
                   values ($1, $2, $3, $4, $5, 0, $6, 0, $6, $6, $7) \
                   on conflict (request_id) do nothing";
        on_pool!(&self.store, pool => sqlx::query(sql)
            .bind(&event.request_id).bind(&event.account_id).bind(&event.function_name).bind(&event.qualifier)
            .bind(&event.payload).bind(event.created_at).bind(&event.trace_parent)
            .execute(pool).await.map(|_| ()))?;
        self.wake.notify_one();
        Ok(())
    }

    pub(crate) async fn pending(&self) -> anyhow::Result<i64> {
        Ok(
            on_pool!(&self.store, pool => sqlx::query_scalar::<_, i64>("select count(*) from async_events").fetch_one(pool).await)?,
        )
    }

    /// Events not yet finished, and the accept time (epoch ms) of the oldest (`/metrics`).
    pub(crate) async fn backlog(&self) -> anyhow::Result<(i64, Option<i64>)> {
        let sql = "select count(*), min(created_at) from async_events";
        Ok(on_pool!(&self.store, pool => sqlx::query_as::<_, (i64, Option<i64>)>(sql).fetch_one(pool).await)?)
    }

    /// Leases up to `limit` due events to `owner`: first the oldest due event of each account,
    /// accounts taken in turn from the one after `cursor` (the account served last), then the
    /// oldest due events overall. A flood from one account therefore does not delay another
    /// account's events behind it. Every step is an index seek (the accounts are walked with a
    /// recursive query on `async_events_account_due`), so a large backlog does not slow claims.
    async fn claim(&self, lease: Duration, limit: usize, owner: &str, cursor: &str) -> anyhow::Result<Vec<Event>> {
        let now = now_ms();
        let lease = now + lease.as_millis() as i64;
        let sql = "with recursive accts(a) as ( \
                     select min(account_id) from async_events \
                     union all \
                     select (select min(account_id) from async_events where account_id > accts.a) from accts \
                     where accts.a is not null), \
                   firsts(request_id, wrap, account) as ( \
                     select (select x.request_id from async_events x where x.account_id = accts.a \
                             and x.next_attempt_at <= $1 and x.lease_until < $1 order by x.next_attempt_at limit 1), \
                            case when accts.a > $5 then 0 else 1 end, accts.a \
                     from accts where accts.a is not null), \
                   candidates(request_id, turn, wrap, account, at) as ( \
                     select request_id, 0, wrap, account, 0 from firsts where request_id is not null \
                     union all \
                     select request_id, 1, 0, '', next_attempt_at from (select request_id, next_attempt_at \
                       from async_events where next_attempt_at <= $1 and lease_until < $1 \
                       order by next_attempt_at limit $3) fifo \
                     where request_id not in (select request_id from firsts where request_id is not null)) \
                   update async_events set lease_until = $2, lease_owner = $4, attempts = attempts + 1, updated_at = $1 \
                   where request_id in (select request_id from candidates order by turn, wrap, account, at limit $3) \
                   and lease_until < $1 \
                   returning request_id, account_id, function_name, qualifier, payload, attempts, created_at, trace_parent";
        on_pool!(&self.store, pool => sqlx::query_as::<_, Event>(sql)
            .bind(now).bind(lease).bind(limit as i64).bind(owner).bind(cursor).fetch_all(pool).await)
        .context("claim events")
    }

    /// Extends the lease of an event `owner` is running; `false` if the lease is no longer its.
    async fn renew(&self, event: &Event, lease: Duration, owner: &str) -> anyhow::Result<bool> {
        let now = now_ms();
        let sql =
            "update async_events set lease_until = $2 where request_id = $1 and lease_owner = $3 and lease_until > 0";
        let n = on_pool!(&self.store, pool => sqlx::query(sql)
            .bind(&event.request_id).bind(now + lease.as_millis() as i64).bind(owner)
            .execute(pool).await.map(|r| r.rows_affected()))
        .context("renew event lease")?;
        Ok(n > 0)
    }

    /// Frees the leases `owner` held before this process started: the runs they covered died
    /// with the previous process, so those events are due again now, not when the leases expire.
    async fn release_previous(&self, owner: &str) -> anyhow::Result<u64> {
        let sql = "update async_events set lease_until = 0 where lease_owner = $1 and lease_until > 0";
        on_pool!(&self.store, pool => sqlx::query(sql).bind(owner).execute(pool).await.map(|r| r.rows_affected()))
            .context("release leases of the previous process")
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
        let owner = queue.config.consumer.clone();
        match self.release_previous(&owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "async events left running by the previous process are due again"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "release leases of the previous process"),
        }
        let slots = Arc::new(tokio::sync::Semaphore::new(queue.config.parallelism));
        let mut cursor = String::new();
        let tracker = tokio_util::task::TaskTracker::new();
        loop {
            let free = slots.available_permits();
            let claimed =
                if free == 0 { Ok(Vec::new()) } else { self.claim(queue.config.lease, free, &owner, &cursor).await };
            let events = claimed.unwrap_or_else(|err| {
                tracing::warn!(error = format!("{err:#}"), "claim async events");
                Vec::new()
            });
            let idle = events.is_empty();
            // The next claim starts after the account served last in this one's rotation.
            let last = events.iter().map(|e| e.account_id.as_str()).max_by_key(|a| (*a <= cursor.as_str(), *a));
            if let Some(last) = last {
                cursor = last.to_owned();
            }
            for event in events {
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                let (sql, queue, run) = (self.clone(), queue.clone(), run.clone());
                tracker.spawn(async move {
                    let outcome = sql.run_leased(&event, &queue, run).await;
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

    /// Runs the event, renewing its lease every third of the lease while it runs: a lease only
    /// has to outlive a stalled renewal, not the longest invocation, so a crash makes the event
    /// due again within one short lease.
    async fn run_leased<F, Fut>(&self, event: &Event, queue: &Queue, run: F) -> Attempt
    where
        F: Fn(Event) -> Fut,
        Fut: Future<Output = Attempt>,
    {
        let lease = queue.config.lease;
        let every = queue.config.renew_every();
        let running = run(event.clone());
        tokio::pin!(running);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                outcome = &mut running => return outcome,
                _ = tick.tick() => match self.renew(event, lease, &queue.config.consumer).await {
                    Ok(true) => {}
                    Ok(false) => tracing::info!(request_id = %event.request_id, "lease of a running async event was lost"),
                    Err(err) => tracing::warn!(request_id = %event.request_id, error = format!("{err:#}"), "renew event lease"),
                },
            }
        }
    }
}

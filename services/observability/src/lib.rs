//! Function logs and metrics as tenants read them, and the shipping that brings them there.
//!
//! - [`logs`]: the log store (log groups `/aws/lambda/<name>`, one stream per sandbox) and the
//!   CloudWatch Logs operations over it (DescribeLogGroups, DescribeLogStreams, GetLogEvents,
//!   FilterLogEvents, DeleteLogGroup, PutRetentionPolicy), bounded per account by retention and a
//!   size cap ([`logs::janitor`]).
//! - [`metrics`]: per-minute statistics of namespace `AWS/Lambda` and the CloudWatch operations
//!   over them (GetMetricStatistics, GetMetricData, ListMetrics).
//! - [`Shipper`]: what producers (execution hosts, routers, pollers) hand telemetry to; it batches
//!   log events and folds metric samples per minute, and sends them with [`ObservabilityClient::ingest`]
//!   off the invoke path.
//!
//! The state lives in the metadata database; [`Observability`] is its in-process owner and
//! [`ObservabilityClient`] reaches it in process or over gRPC (the metadata process serves it).

mod client;
mod grpc;
pub mod logs;
pub mod metrics;
mod shipper;
mod sql;

use lamina_common::telemetry::{LogBatch, MetricStat};
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::Store;
use serde::{Deserialize, Serialize};

pub use client::ObservabilityClient;
pub use grpc::{serve, service};
pub use shipper::{Shipper, ShipperConfig, ShipperStats};

/// Bounds of the log store.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Bytes of log messages an account may hold; the oldest events go first beyond it.
    pub bytes_per_account: u64,
    /// Retention of a log group without a retention policy (`None`: kept until the size cap).
    pub default_retention_days: Option<u32>,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self { bytes_per_account: 1 << 30, default_retention_days: None }
    }
}

/// The owner of logs' and metrics' state (in process). Cheap to clone.
#[derive(Clone)]
pub struct Observability {
    pub(crate) store: Store,
    pub(crate) region: String,
    pub(crate) limits: LogLimits,
}

/// What a producer's shipper sends in one go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ingest {
    pub logs: Vec<LogBatch>,
    pub metrics: Vec<MetricStat>,
}

impl Observability {
    /// Logs and metrics on the metadata database (its migrations create the tables).
    pub fn new(store: Store, region: impl Into<String>, limits: LogLimits) -> Self {
        Self { store, region: region.into(), limits }
    }

    /// The region ARNs are minted in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Runs the API operation `op` for `account` on its JSON request (the CloudWatch Logs or
    /// CloudWatch request object as the JSON protocols carry it); the reply is the JSON response object.
    pub async fn dispatch(&self, account: &str, op: &str, request: serde_json::Value) -> ApiResult<serde_json::Value> {
        if let Some(reply) = logs::dispatch(self, account, op, &request).await {
            return reply;
        }
        if let Some(reply) = metrics::dispatch(self, account, op, &request).await {
            return reply;
        }
        Err(ApiError::Internal(anyhow::anyhow!("observability: unknown operation {op}")))
    }

    /// Stores what a shipper sent.
    pub async fn ingest(&self, batch: impl std::borrow::Borrow<Ingest>) -> ApiResult<()> {
        let batch: &Ingest = std::borrow::Borrow::borrow(&batch);
        if !batch.logs.is_empty() {
            logs::ingest(self, &batch.logs).await?;
        }
        if !batch.metrics.is_empty() {
            metrics::ingest(self, &batch.metrics).await?;
        }
        Ok(())
    }
}

/// Keeps the stores within their bounds (log retention and size caps, metric age) every `every`
/// until `stop`. Every replica may run it: each pass is idempotent.
pub async fn janitor(obs: Observability, every: std::time::Duration, stop: tokio_util::sync::CancellationToken) {
    loop {
        if let Err(e) = logs::enforce_limits(&obs).await {
            tracing::warn!("log store limits: {e:#}");
        }
        if let Err(e) = metrics::prune(&obs).await {
            tracing::warn!("metric store pruning: {e:#}");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

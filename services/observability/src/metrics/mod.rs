//! Per-minute statistics of namespace `AWS/Lambda` and the CloudWatch operations over them.

use lamina_common::ApiResult;
use lamina_common::telemetry::MetricStat;

use crate::Observability;

/// Answers the CloudWatch operation `op` (`GetMetricStatistics`, `GetMetricData`, `ListMetrics`)
/// for `account`, or `None` when `op` is not one of them.
pub(crate) async fn dispatch(
    obs: &Observability,
    account: &str,
    op: &str,
    request: &serde_json::Value,
) -> Option<ApiResult<serde_json::Value>> {
    let _ = (obs, account, op, request);
    None
}

/// Adds shipped statistics to the stored minutes.
pub(crate) async fn ingest(obs: &Observability, stats: &[MetricStat]) -> ApiResult<()> {
    let _ = (obs, stats);
    Ok(())
}

/// Deletes statistics older than CloudWatch keeps one-minute data (15 days).
pub(crate) async fn prune(obs: &Observability) -> anyhow::Result<()> {
    let _ = obs;
    Ok(())
}

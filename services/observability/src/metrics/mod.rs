//! Per-minute statistics of namespace `AWS/Lambda` and the CloudWatch operations over them.
//!
//! Storage (`store`): one row per (account, function, resource, executed version, metric,
//! minute) holding the minute's SampleCount, Sum, Minimum and Maximum; ingest upserts shipped
//! `MetricStat`s into it. The dimension sets and the rows each aggregates are in `selection`.
//!
//! Time: `StartTime` is rounded down as CloudWatch documents (to the minute for ranges starting
//! less than 15 days ago) and periods are counted from it, so a datapoint's `Timestamp` is
//! `StartTime` (rounded) plus a whole number of periods; `EndTime` is exclusive. Only periods with
//! samples have datapoints.

mod data;
mod list;
mod request;
mod selection;
mod statistics;
mod store;

use lamina_common::ApiResult;
use lamina_common::telemetry::MetricStat;

use crate::Observability;

/// The one namespace Lamina publishes.
const NAMESPACE: &str = "AWS/Lambda";

/// How long one-minute statistics are kept (CloudWatch keeps one-minute data 15 days).
const RETENTION_SECONDS: i64 = 15 * request::DAY;

fn now_seconds() -> i64 {
    lamina_common::time::now_ms().div_euclid(1000)
}

/// Answers the CloudWatch operation `op` (`GetMetricStatistics`, `GetMetricData`, `ListMetrics`)
/// for `account`, or `None` when `op` is not one of them.
pub(crate) async fn dispatch(
    obs: &Observability,
    account: &str,
    op: &str,
    request: &serde_json::Value,
) -> Option<ApiResult<serde_json::Value>> {
    Some(match op {
        "GetMetricStatistics" => statistics::get_metric_statistics(obs, account, request).await,
        "GetMetricData" => data::get_metric_data(obs, account, request).await,
        "ListMetrics" => list::list_metrics(obs, account, request).await,
        _ => return None,
    })
}

/// Adds shipped statistics to the stored minutes.
pub(crate) async fn ingest(obs: &Observability, stats: &[MetricStat]) -> ApiResult<()> {
    store::ingest(&obs.store, stats).await?;
    Ok(())
}

/// Deletes statistics older than CloudWatch keeps one-minute data (15 days).
pub(crate) async fn prune(obs: &Observability) -> anyhow::Result<()> {
    let before = now_seconds() - RETENTION_SECONDS;
    let deleted = store::prune(&obs.store, before).await?;
    if deleted > 0 {
        tracing::debug!(deleted, "pruned metric minutes");
    }
    Ok(())
}

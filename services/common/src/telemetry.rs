//! What producers of function telemetry hand on: log events (execution hosts) and metric samples
//! (invoke routers, pollers). A [`TelemetrySink`] takes them without waiting; the observability
//! service's shipper (`lamina_observability::Shipper`) batches them to the log and metric stores.

use serde::{Deserialize, Serialize};

/// One log event of a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippedEvent {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The line as the runtime wrote it, its newline included.
    pub message: String,
}

/// Log events of one log stream (one sandbox) of one function, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBatch {
    pub account_id: String,
    /// `/aws/lambda/<function name>`.
    pub log_group: String,
    /// `YYYY/MM/DD/[<version>]<32 hex>`.
    pub log_stream: String,
    pub events: Vec<ShippedEvent>,
}

/// The metrics of namespace `AWS/Lambda` that Lamina records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Metric {
    /// 1 per invocation that ran (function errors included, throttles not).
    Invocations,
    /// 0 or 1 per invocation that ran: 1 when it ended in a function error.
    Errors,
    /// 1 per invocation refused for concurrency.
    Throttles,
    /// Milliseconds, per invocation that ran.
    Duration,
    /// The function's invocations running at once, sampled when one starts.
    ConcurrentExecutions,
    /// Milliseconds between a stream record's arrival and its batch's invocation (Kinesis mappings).
    IteratorAge,
}

impl Metric {
    /// Every metric, in a stable order.
    pub const ALL: [Metric; 6] = [
        Metric::Invocations,
        Metric::Errors,
        Metric::Throttles,
        Metric::Duration,
        Metric::ConcurrentExecutions,
        Metric::IteratorAge,
    ];

    /// The CloudWatch metric name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Invocations => "Invocations",
            Metric::Errors => "Errors",
            Metric::Throttles => "Throttles",
            Metric::Duration => "Duration",
            Metric::ConcurrentExecutions => "ConcurrentExecutions",
            Metric::IteratorAge => "IteratorAge",
        }
    }

    /// The metric called `name`.
    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// CloudWatch's unit of the metric.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Duration | Metric::IteratorAge => "Milliseconds",
            _ => "Count",
        }
    }
}

/// The dimensions a sample is recorded under. Queries aggregate over the rows whose dimensions
/// match: `FunctionName` alone covers every `resource` and `executed_version` of the function.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MetricKey {
    pub account_id: String,
    pub function_name: String,
    /// `FunctionName` or `FunctionName:Qualifier`, as invoked (the `Resource` dimension).
    pub resource: String,
    /// The version that ran (`$LATEST` or a number; the `ExecutedVersion` dimension).
    pub executed_version: String,
    pub metric: Metric,
}

/// One observed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    pub key: MetricKey,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub value: f64,
}

/// Samples of one key in one minute, combined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricStat {
    pub key: MetricKey,
    /// Start of the minute, seconds since the Unix epoch (a multiple of 60).
    pub minute: i64,
    pub sample_count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl MetricStat {
    /// The statistic of one sample.
    pub fn of(sample: &MetricSample) -> MetricStat {
        MetricStat {
            key: sample.key.clone(),
            minute: sample.timestamp_ms.div_euclid(60_000) * 60,
            sample_count: 1,
            sum: sample.value,
            min: sample.value,
            max: sample.value,
        }
    }

    /// Folds in another statistic of the same key and minute.
    pub fn merge(&mut self, other: &MetricStat) {
        self.sample_count += other.sample_count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// Where producers hand telemetry. Never blocks and never fails: a sink that cannot keep up
/// drops (and counts) what it cannot hold, so an invocation never waits on its telemetry.
pub trait TelemetrySink: Send + Sync + 'static {
    fn logs(&self, batch: LogBatch);
    fn metric(&self, sample: MetricSample);
}

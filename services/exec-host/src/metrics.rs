//! Metric names of the execution host (recorded through the `metrics` facade).

/// Counter: invocations run, labels `account`, `function`.
pub const INVOCATIONS_TOTAL: &str = "lamina_invocations_total";
/// Counter: invocations that ended in a function error, labels `account`, `function`, `error_type`.
pub const ERRORS_TOTAL: &str = "lamina_errors_total";
/// Histogram: invocation duration in milliseconds, labels `account`, `function`.
pub const DURATION_MS: &str = "lamina_duration_ms";
/// Counter: sandboxes started for an invocation, labels `account`, `function`.
pub const COLD_STARTS_TOTAL: &str = "lamina_cold_starts_total";
/// Gauge: live sandboxes on this host.
pub const LIVE_SANDBOXES: &str = "lamina_live_sandboxes";

/// Registers descriptions of the metrics above with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(INVOCATIONS_TOTAL, "Invocations run by this execution host");
    metrics::describe_counter!(ERRORS_TOTAL, "Invocations that ended in a function error");
    metrics::describe_histogram!(DURATION_MS, metrics::Unit::Milliseconds, "Invocation duration");
    metrics::describe_counter!(COLD_STARTS_TOTAL, "Sandboxes started to serve an invocation");
    metrics::describe_gauge!(LIVE_SANDBOXES, "Live sandboxes on this host");
}

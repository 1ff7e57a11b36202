//! Metric names of the execution host (recorded through the `metrics` facade).

use crate::ExecHost;

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
/// Gauge: live sandboxes (starting, busy or idle) per runtime, label `runtime`; sampled when scraped.
pub const SANDBOXES_LIVE: &str = "lamina_sandboxes_live";
/// Gauge: idle (warm) sandboxes per runtime, label `runtime`; sampled when scraped.
pub const SANDBOXES_IDLE: &str = "lamina_sandboxes_idle";
/// Gauge: function versions with at least one warm sandbox, per runtime, label `runtime`.
pub const WARM_FUNCTIONS: &str = "lamina_warm_functions";
/// Gauge: most sandboxes this host runs at once.
pub const SANDBOXES_MAX: &str = "lamina_sandboxes_max";
/// Gauge: memory reserved by live sandboxes, MB.
pub const SANDBOX_MEMORY_USED_MB: &str = "lamina_sandbox_memory_used_mb";
/// Gauge: memory this host may give to sandboxes, MB.
pub const SANDBOX_MEMORY_BUDGET_MB: &str = "lamina_sandbox_memory_budget_mb";

/// Registers descriptions of the metrics above with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(INVOCATIONS_TOTAL, "Invocations run by this execution host");
    metrics::describe_counter!(ERRORS_TOTAL, "Invocations that ended in a function error");
    metrics::describe_histogram!(DURATION_MS, metrics::Unit::Milliseconds, "Invocation duration");
    metrics::describe_counter!(COLD_STARTS_TOTAL, "Sandboxes started to serve an invocation");
    metrics::describe_gauge!(LIVE_SANDBOXES, "Live sandboxes on this host");
    metrics::describe_gauge!(SANDBOXES_LIVE, "Live sandboxes (starting, busy or idle), by runtime");
    metrics::describe_gauge!(SANDBOXES_IDLE, "Idle (warm) sandboxes waiting for an invocation, by runtime");
    metrics::describe_gauge!(WARM_FUNCTIONS, "Function versions with a warm sandbox, by runtime");
    metrics::describe_gauge!(SANDBOXES_MAX, "Most sandboxes this host runs at once");
    metrics::describe_gauge!(SANDBOX_MEMORY_USED_MB, "Memory reserved by live sandboxes (MB)");
    metrics::describe_gauge!(SANDBOX_MEMORY_BUDGET_MB, "Memory this host may give to sandboxes (MB)");
    metrics::gauge!(LIVE_SANDBOXES).increment(0.0);
}

/// Sets the pool gauges from `host` (called when scraped). Every installed runtime gets a value,
/// 0 included, so a runtime whose last sandbox went does not keep its old count.
pub fn sample(host: &ExecHost) {
    let by_runtime = host.pool_by_runtime();
    let mut runtimes = host.runtimes();
    runtimes.extend(by_runtime.keys().cloned());
    runtimes.sort_unstable();
    runtimes.dedup();
    for runtime in runtimes {
        let usage = by_runtime.get(&runtime).copied().unwrap_or_default();
        metrics::gauge!(SANDBOXES_LIVE, "runtime" => runtime.clone()).set(usage.live as f64);
        metrics::gauge!(SANDBOXES_IDLE, "runtime" => runtime.clone()).set(usage.idle as f64);
        metrics::gauge!(WARM_FUNCTIONS, "runtime" => runtime).set(usage.warm_functions as f64);
    }
    let load = host.load();
    metrics::gauge!(LIVE_SANDBOXES).set(load.live as f64);
    metrics::gauge!(SANDBOXES_MAX).set(load.max_sandboxes as f64);
    metrics::gauge!(SANDBOX_MEMORY_USED_MB).set(load.memory_used_mb as f64);
    metrics::gauge!(SANDBOX_MEMORY_BUDGET_MB).set(load.memory_budget_mb as f64);
}

//! Metric names of the metadata store (recorded through the `metrics` facade).

use std::time::Instant;

/// Histogram: seconds one store call took (a query through [`on_pool!`](crate::on_pool), or a
/// whole write transaction), labels `engine` (`sqlite`, `postgres`) and `kind` (`query`,
/// `transaction`). Calls that leave early with an error are not timed.
pub const DB_DURATION_SECONDS: &str = "lamina_db_query_duration_seconds";

/// Registers descriptions of the metrics above with the installed recorder.
pub fn describe() {
    metrics::describe_histogram!(
        DB_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time of one metadata database call (query or write transaction), by engine and kind"
    );
}

/// Records a store call that began at `started` (the store macros call this).
#[doc(hidden)]
pub fn record(engine: &'static str, kind: &'static str, started: Instant) {
    metrics::histogram!(DB_DURATION_SECONDS, "engine" => engine, "kind" => kind)
        .record(started.elapsed().as_secs_f64());
}

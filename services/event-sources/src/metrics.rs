//! Metric names of the event sources (recorded through the `metrics` facade): the scheduler, the
//! pollers of event-source mappings, and the destinations of Event invocations.

pub use crate::destinations::DELIVERY_FAILURES;
pub use crate::pollers::kinesis::metrics_names::{ITERATOR_AGE_MS, RECORDS_SKIPPED_TOTAL, RECORDS_TOTAL};
pub use crate::scheduler::{DENIED_TOTAL, FIRINGS_TOTAL};

/// Counter: batches a poller failed to read or deliver, labels `source`, `kind`.
pub const BATCH_ERRORS_TOTAL: &str = "lamina_esm_batch_errors_total";
/// Counter: failed batches whose on-failure destination could not be written, label `source`.
pub const DESTINATION_FAILURES_TOTAL: &str = "lamina_esm_destination_failures_total";

/// Registers descriptions of the metrics above with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(FIRINGS_TOTAL, "Scheduled events put on the async queue for rule targets");
    metrics::describe_counter!(DENIED_TOTAL, "Rule targets not invoked: the function's policy does not allow the rule");
    metrics::describe_counter!(RECORDS_TOTAL, "Records delivered by event-source mappings, by source");
    metrics::describe_counter!(RECORDS_SKIPPED_TOTAL, "Records skipped after their retry or age limit, by source");
    metrics::describe_gauge!(
        ITERATOR_AGE_MS,
        metrics::Unit::Milliseconds,
        "Age of the last record of a mapping's latest batch (IteratorAge), by source and mapping"
    );
    metrics::describe_counter!(BATCH_ERRORS_TOTAL, "Batches a poller failed to read or deliver, by source and kind");
    metrics::describe_counter!(
        DESTINATION_FAILURES_TOTAL,
        "Failed batches whose on-failure destination could not be written, by source"
    );
    metrics::describe_counter!(
        DELIVERY_FAILURES,
        "Async destination or dead-letter deliveries that failed, by kind and outcome"
    );
}

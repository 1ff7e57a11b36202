//! Metric names of the HTTP API (recorded through the `metrics` facade).

/// Counter: HTTP requests answered, labels `operation` (see [`crate::http_metrics`]) and `status`
/// (`2xx`, `3xx`, `4xx`, `5xx`).
pub const HTTP_REQUESTS_TOTAL: &str = "lamina_http_requests_total";
/// Histogram: seconds from the request's arrival to its answer's head, labels as above.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "lamina_http_request_duration_seconds";
/// Gauge: requests being answered now, no labels.
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "lamina_http_requests_in_flight";

/// Registers descriptions of the metrics above with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests answered, by API operation and status class");
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by API operation and status class"
    );
    metrics::describe_gauge!(HTTP_REQUESTS_IN_FLIGHT, "HTTP requests being answered now");
    metrics::gauge!(HTTP_REQUESTS_IN_FLIGHT).increment(0.0);
}

//! Request counts and latencies per API operation. The operation is the route template a request
//! matched (`POST /2015-03-31/functions/{name}/invocations`), never the raw path, so tenants'
//! names do not become label values. JSON-protocol APIs share `POST /`; their `X-Amz-Target` becomes
//! the operation once a request for it succeeded (so only real operations are admitted, and at
//! most [`MAX_TARGETS`] of them).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics as m;

/// Distinct `X-Amz-Target` operations given their own label value, per process.
const MAX_TARGETS: usize = 128;
/// The operation of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// Counts the request and times its answer.
pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let target = match route.as_deref() {
        Some("/") => request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).map(str::to_owned),
        _ => None,
    };
    let method = request.method().clone();
    let _in_flight = InFlight::enter();
    let response = next.run(request).await;
    let status = response.status();
    let operation = match (route, target) {
        (Some(_), Some(target)) if admit_target(&target, status.is_success()) => target,
        (Some(route), _) => format!("{method} {}", normalize(&route)),
        (None, _) => UNMATCHED.to_owned(),
    };
    let class = status_class(status.as_u16());
    let labels = [("operation", operation), ("status", class.to_owned())];
    metrics::counter!(m::HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(m::HTTP_REQUEST_DURATION_SECONDS, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Every route is registered with and without its trailing slash: both are one operation.
fn normalize(route: &str) -> &str {
    match route.strip_suffix('/') {
        Some(stripped) if !stripped.is_empty() => stripped,
        _ => route,
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// True when `target` has its own label value: it succeeded now or before, is shaped like an
/// operation name, and the set of admitted targets is not full.
fn admit_target(target: &str, succeeded: bool) -> bool {
    static TARGETS: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let shaped = !target.is_empty()
        && target.len() <= 100
        && target.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
    if !shaped {
        return false;
    }
    let mut targets = TARGETS.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner());
    if targets.contains(target) {
        return true;
    }
    if succeeded && targets.len() < MAX_TARGETS {
        targets.insert(target.to_owned());
        return true;
    }
    false
}

/// Counts a request in flight until dropped (also when the client goes away mid-request).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!(m::HTTP_REQUESTS_IN_FLIGHT).increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(m::HTTP_REQUESTS_IN_FLIGHT).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn operations_are_route_templates_and_admitted_targets() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _local = metrics::set_default_local_recorder(&recorder);
        let app = Router::new()
            .route("/fns/{name}", get(|| async { "ok" }))
            .route("/fns/{name}/", get(|| async { "ok" }))
            .route(
                "/",
                post(|headers: axum::http::HeaderMap| async move {
                    match headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
                        Some("Svc.Good") => axum::http::StatusCode::OK,
                        _ => axum::http::StatusCode::BAD_REQUEST,
                    }
                }),
            )
            .layer(axum::middleware::from_fn(record));
        let call = |method: &str, uri: &str, target: Option<&str>| {
            let mut req = axum::http::Request::builder().method(method).uri(uri);
            if let Some(t) = target {
                req = req.header("x-amz-target", t);
            }
            app.clone().oneshot(req.body(Body::empty()).expect("request"))
        };
        for name in ["a", "b", "c/"] {
            call("GET", &format!("/fns/{name}"), None).await.expect("call");
        }
        call("GET", "/nowhere", None).await.expect("call");
        call("POST", "/", Some("Svc.Bogus1")).await.expect("call");
        call("POST", "/", Some("Svc.Good")).await.expect("call");
        call("POST", "/", Some("Svc.Good")).await.expect("call");
        let text = handle.render();
        let line = |needle: &str| text.lines().find(|l| l.starts_with(needle)).unwrap_or_default().to_owned();
        assert!(
            line(r#"lamina_http_requests_total{operation="GET /fns/{name}",status="2xx"}"#).ends_with(" 3"),
            "{text}"
        );
        assert!(line(r#"lamina_http_requests_total{operation="unmatched",status="4xx"}"#).ends_with(" 1"), "{text}");
        assert!(line(r#"lamina_http_requests_total{operation="POST /",status="4xx"}"#).ends_with(" 1"), "{text}");
        assert!(line(r#"lamina_http_requests_total{operation="Svc.Good",status="2xx"}"#).ends_with(" 2"), "{text}");
        assert!(!text.contains("Bogus"), "a failed target gets no series: {text}");
        assert!(!text.contains("fns/a"), "raw paths get no series: {text}");
    }
}

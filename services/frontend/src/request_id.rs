//! A request id for every request, echoed as `x-amzn-RequestId`, and the request's span: the
//! root of the request's trace, or a child of the caller's `traceparent` / `X-Amzn-Trace-Id`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// The id of this API request (for Invoke, also the invocation's `awsRequestId`).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Assigns the id before routing, runs the request inside its span, and stamps the id on the
/// response.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = lamina_common::ids::random_uuid().to_string();
    request.extensions_mut().insert(RequestId(id.clone()));
    // Span names stay few (the route template, not the path with its function names).
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let name = format!("{} {}", request.method(), route.as_deref().unwrap_or(""));
    let span = tracing::info_span!(
        "request",
        otel.name = %name.trim_end(),
        otel.kind = "server",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    );
    lamina_rpc::trace::set_parent_from_headers(&span, request.headers());
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    tracing::debug!(parent: &span, status, elapsed_ms = started.elapsed().as_secs_f64() * 1000.0, "request finished");
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-amzn-RequestId", value);
    }
    response
}

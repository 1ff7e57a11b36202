//! A request id for every request, echoed as `x-amzn-RequestId`.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The id of this API request (for Invoke, also the invocation's `awsRequestId`).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Assigns the id before routing and stamps it on the response.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = lamina_common::ids::random_uuid().to_string();
    request.extensions_mut().insert(RequestId(id.clone()));
    let span =
        tracing::debug_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let _guard = span.enter();
    drop(_guard);
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-amzn-RequestId", value);
    }
    response
}

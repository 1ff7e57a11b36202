//! The JSON-protocol APIs on the Lambda endpoint (`POST /` with `X-Amz-Target`): EventBridge's
//! schedule subset (`AWSEvents.*`). (Helper H1 fills this file.)

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use lamina_common::ApiError;

use crate::AppState;

/// `POST /`: dispatches on `X-Amz-Target`.
pub async fn dispatch(State(_state): State<AppState>, headers: HeaderMap, _body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    ApiError::UnknownOperation(format!("Unknown operation: {target}")).into_response()
}

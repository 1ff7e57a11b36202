//! The JSON-protocol APIs on the Lambda endpoint (`POST /` with `X-Amz-Target`): EventBridge's
//! schedule subset (`AWSEvents.*`): rules on the default event bus and their targets.
//!
//! Requests and answers are EventBridge's JSON 1.1 (`application/x-amz-json-1.1`), so the AWS CLI
//! and SDKs (`aws events put-rule --endpoint-url ...`) work unchanged. Errors are answered as
//! EventBridge answers them: `x-amzn-ErrorType` and `{"__type": ..., "message": ...}`, HTTP 400 for
//! every client error (ResourceNotFoundException too), 500 `InternalException` for ours. The
//! checks and the state live in `lamina_event_sources::rules`; this file parses and answers.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use lamina_common::{ApiError, ApiResult};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{cloudwatch, cwlogs};
use crate::{AppState, Principal, RequestId};

/// The JSON protocol's content type.
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// `POST /`: dispatches on the `X-Amz-Target` prefix to EventBridge, CloudWatch Logs or CloudWatch
/// (JSON 1.0); a form body without a target is CloudWatch's query protocol.
pub async fn dispatch(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    match target.split_once('.') {
        Some((cwlogs::TARGET_PREFIX, op)) => return cwlogs::dispatch(&state, &principal, op, &body).await,
        Some((cloudwatch::TARGET_PREFIX, op)) => return cloudwatch::json(&state, &principal, op, &body).await,
        None if target.is_empty() && cloudwatch::is_query(&headers) => {
            return cloudwatch::query(&state, &principal, &request_id, &body).await;
        }
        _ => {}
    }
    let Some(op) = target.strip_prefix("AWSEvents.") else {
        if target.is_empty() {
            // Not a JSON-protocol request at all: the Lambda API's answer for a path it lacks.
            return ApiError::UnknownOperation("Unknown operation: POST /".into()).into_response();
        }
        return unknown_operation(target);
    };
    let client = match state.event_sources() {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    let account = principal.account_id.as_str();
    match op {
        "PutRule" => answer(&body, |r| client.put_rule(account, r)).await,
        "DescribeRule" => answer(&body, |r| client.describe_rule(account, r)).await,
        "ListRules" => answer(&body, |r| client.list_rules(account, r)).await,
        "EnableRule" => answer(&body, |r| client.enable_rule(account, r)).await,
        "DisableRule" => answer(&body, |r| client.disable_rule(account, r)).await,
        "DeleteRule" => answer(&body, |r| client.delete_rule(account, r)).await,
        "PutTargets" => answer(&body, |r| client.put_targets(account, r)).await,
        "RemoveTargets" => answer(&body, |r| client.remove_targets(account, r)).await,
        "ListTargetsByRule" => answer(&body, |r| client.list_targets_by_rule(account, r)).await,
        _ => unknown_operation(target),
    }
}

/// Parses the request, runs the operation and answers its result in the JSON protocol.
async fn answer<Req, Resp, F, Fut>(body: &[u8], op: F) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Resp>>,
{
    let request = match parse::<Req>(body) {
        Ok(r) => r,
        Err(message) => return coral_error(StatusCode::BAD_REQUEST, "SerializationException", &message),
    };
    match op(request).await {
        Ok(reply) => json(StatusCode::OK, &serde_json::to_value(reply).unwrap_or_default()),
        Err(e) => error(e),
    }
}

/// The request object: an empty body is `{}`; anything but a JSON object of the operation's
/// member types is a SerializationException, as the protocol answers it.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("Malformed JSON: {e}"))?;
    if !value.is_object() {
        return Err("The request body must be a JSON object.".into());
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
    response
}

fn coral_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let mut response = json(status, &serde_json::json!({ "__type": error_type, "message": message }));
    if let Ok(value) = HeaderValue::from_str(error_type) {
        response.headers_mut().insert("x-amzn-ErrorType", value);
    }
    response
}

/// An operation this endpoint does not serve, as the JSON protocol answers it.
fn unknown_operation(target: &str) -> Response {
    coral_error(StatusCode::BAD_REQUEST, "UnknownOperationException", &format!("Unknown operation: {target}"))
}

/// An error as EventBridge sends it: every client error is a 400.
fn error(err: ApiError) -> Response {
    match err {
        ApiError::Internal(e) => {
            tracing::error!(error = format!("{e:#}"), "internal error");
            coral_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalException",
                "An internal error occurred. Retry the request.",
            )
        }
        ApiError::ServiceUnavailable(m) => {
            coral_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException", &m)
        }
        ApiError::TooManyRequests { message, .. } => {
            coral_error(StatusCode::BAD_REQUEST, "ThrottlingException", &message)
        }
        other => coral_error(StatusCode::BAD_REQUEST, other.error_type(), &other.to_string()),
    }
}

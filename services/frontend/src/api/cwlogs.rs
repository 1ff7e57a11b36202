//! CloudWatch Logs on the Lambda endpoint (SigV4 service `logs`): `POST /` with
//! `X-Amz-Target: Logs_20140328.<Op>`, JSON 1.1 both ways, so `aws logs ...` (CLI v1 and v2,
//! including `aws logs tail --follow`) and the SDKs work unchanged against `--endpoint-url`.
//!
//! The request object goes to the observability service as it is (CloudWatch Logs' own member
//! names, times in epoch milliseconds) and its reply comes back as it is. Errors are answered as
//! CloudWatch Logs answers them: `{"__type", "message"}` and `x-amzn-ErrorType`, HTTP 400 for
//! every client error.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lamina_common::ApiError;
use serde_json::Value;

use crate::{AppState, Principal};

/// The `X-Amz-Target` prefix of CloudWatch Logs.
pub const TARGET_PREFIX: &str = "Logs_20140328";

/// The operations served.
const OPERATIONS: &[&str] = &[
    "CreateLogGroup",
    "DeleteLogGroup",
    "DescribeLogGroups",
    "DescribeLogStreams",
    "GetLogEvents",
    "FilterLogEvents",
    "PutRetentionPolicy",
    "DeleteRetentionPolicy",
];

const JSON_1_1: &str = "application/x-amz-json-1.1";

/// Runs `Logs_20140328.<op>` on a JSON 1.1 body.
pub async fn dispatch(state: &AppState, principal: &Principal, op: &str, body: &[u8]) -> Response {
    if !OPERATIONS.contains(&op) {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("Unknown operation: {TARGET_PREFIX}.{op}"),
        );
    }
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    let request = match serde_json::from_slice::<Value>(text) {
        Ok(r @ Value::Object(_)) => r,
        Ok(_) => {
            return error(StatusCode::BAD_REQUEST, "SerializationException", "The request body must be a JSON object.");
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, "SerializationException", &format!("Malformed JSON: {e}")),
    };
    let reply = match state.observability() {
        Ok(client) => client.call(&principal.account_id, op, request).await,
        Err(e) => Err(e),
    };
    match reply {
        Ok(reply) => json(StatusCode::OK, &reply),
        Err(e) => api_error(e),
    }
}

fn json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
    response
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let mut response = json(status, &serde_json::json!({ "__type": error_type, "message": message }));
    if let Ok(value) = HeaderValue::from_str(error_type) {
        response.headers_mut().insert("x-amzn-ErrorType", value);
    }
    response
}

/// The service's error under CloudWatch Logs' names.
fn api_error(err: ApiError) -> Response {
    let bad = StatusCode::BAD_REQUEST;
    match err {
        ApiError::ResourceNotFound(m) => error(bad, "ResourceNotFoundException", &m),
        ApiError::InvalidParameterValue(m) | ApiError::ValidationMessage(m) | ApiError::InvalidRequestContent(m) => {
            error(bad, "InvalidParameterException", &m)
        }
        e @ ApiError::Validation(_) => error(bad, "InvalidParameterException", &e.to_string()),
        ApiError::LimitExceeded(m) => error(bad, "LimitExceededException", &m),
        ApiError::ResourceConflict(m) => error(bad, "ResourceAlreadyExistsException", &m),
        ApiError::ResourceInUse(m) => error(bad, "OperationAbortedException", &m),
        ApiError::TooManyRequests { message, .. } => error(bad, "ThrottlingException", &message),
        ApiError::ServiceUnavailable(m) => error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException", &m),
        ApiError::Internal(e) => {
            tracing::error!(error = format!("{e:#}"), "internal error");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                "An internal error occurred. Retry the request.",
            )
        }
        other => error(other.status(), other.error_type(), &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_take_cloudwatch_logs_names() {
        let cases = [
            (ApiError::ResourceNotFound("g".into()), 400, "ResourceNotFoundException"),
            (ApiError::InvalidParameterValue("l".into()), 400, "InvalidParameterException"),
            (ApiError::ValidationMessage("v".into()), 400, "InvalidParameterException"),
            (ApiError::LimitExceeded("x".into()), 400, "LimitExceededException"),
            (ApiError::ServiceUnavailable("s".into()), 503, "ServiceUnavailableException"),
            (ApiError::Internal(anyhow::anyhow!("boom")), 500, "InternalFailure"),
        ];
        for (err, status, code) in cases {
            let response = api_error(err);
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()["x-amzn-ErrorType"], code);
            assert_eq!(response.headers()[header::CONTENT_TYPE], JSON_1_1);
        }
    }
}

//! CloudWatch's metrics API (SigV4 service `monitoring`) on the Lambda endpoint, in each protocol
//! today's clients send (the service model lists `smithy-rpc-v2-cbor`, `json` and `query`):
//!
//! - Smithy RPC v2 CBOR (`POST /service/GraniteServiceVersion20100801/operation/<Op>`): the AWS SDK
//!   for Rust (and the other SDKs generated from the Smithy model);
//! - JSON 1.0 (`POST /`, `X-Amz-Target: GraniteServiceVersion20100801.<Op>`): botocore, so boto3
//!   and the AWS CLI, which pick `json` first among the protocols the model lists;
//! - query (`POST /`, form `Action=<Op>&Version=2010-08-01&...`, XML answers): older SDKs and CLIs.
//!
//! Each becomes the JSON request object of the observability service (timestamps as epoch
//! seconds) and its reply goes back in the caller's protocol. CloudWatch is "query compatible":
//! errors keep their query codes (`InvalidParameterValue`, `MissingParameter`, ...), which the JSON
//! and CBOR protocols carry in `__type` and in `x-amzn-query-error: <Code>;<Sender|Receiver>`.

mod cbor;
mod query;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use lamina_common::{ApiError, ApiResult};
use serde_json::Value;

use crate::{AppState, Principal, RequestId};

/// The `X-Amz-Target` prefix (and RPC v2 service name) of CloudWatch.
pub const TARGET_PREFIX: &str = "GraniteServiceVersion20100801";
/// The path prefix of CloudWatch's RPC v2 CBOR operations.
pub const CBOR_PATH_PREFIX: &str = "/service/GraniteServiceVersion20100801/";

/// The operations served (namespace `AWS/Lambda`).
const OPERATIONS: &[&str] = &["GetMetricStatistics", "GetMetricData", "ListMetrics"];

const JSON_1_0: &str = "application/x-amz-json-1.0";
const CBOR: &str = "application/cbor";

/// An error as CloudWatch names it.
struct Fault {
    status: StatusCode,
    /// The query error code (`InvalidParameterValue`, ...).
    code: &'static str,
    message: String,
}

impl Fault {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// `Sender` or `Receiver`, as query errors and `x-amzn-query-error` say whose fault it is.
    fn party(&self) -> &'static str {
        if self.status.is_server_error() { "Receiver" } else { "Sender" }
    }

    fn of(err: ApiError) -> Self {
        let bad = StatusCode::BAD_REQUEST;
        match err {
            ApiError::InvalidParameterValue(m) => Self::new(bad, "InvalidParameterValue", m),
            ApiError::InvalidRequestContent(m) => Self::new(bad, "MissingParameter", m),
            e @ (ApiError::ValidationMessage(_) | ApiError::Validation(_)) => {
                Self::new(bad, "InvalidParameterCombination", e.to_string())
            }
            ApiError::ResourceNotFound(m) => Self::new(StatusCode::NOT_FOUND, "ResourceNotFound", m),
            ApiError::LimitExceeded(m) => Self::new(bad, "LimitExceeded", m),
            ApiError::TooManyRequests { message, .. } => Self::new(bad, "Throttling", message),
            ApiError::ServiceUnavailable(m) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", m),
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServiceError", "An internal error occurred.")
            }
            other => Self::new(other.status(), other.error_type(), other.to_string()),
        }
    }
}

async fn run(state: &AppState, principal: &Principal, op: &str, request: Value) -> ApiResult<Value> {
    if !request.is_object() {
        return Err(ApiError::InvalidParameterValue("The request must be an object.".into()));
    }
    state.observability()?.call(&principal.account_id, op, request).await
}

/// JSON 1.0: `POST /` with `X-Amz-Target: GraniteServiceVersion20100801.<op>`.
pub async fn json(state: &AppState, principal: &Principal, op: &str, body: &[u8]) -> Response {
    if !OPERATIONS.contains(&op) {
        let message = format!("Unknown operation: {TARGET_PREFIX}.{op}");
        return json_error(&Fault::new(StatusCode::BAD_REQUEST, "UnknownOperationException", message));
    }
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    let request = match serde_json::from_slice::<Value>(text) {
        Ok(r @ Value::Object(_)) => r,
        Ok(_) => return serialization_error(JSON_1_0, "The request body must be a JSON object."),
        Err(e) => return serialization_error(JSON_1_0, &format!("Malformed JSON: {e}")),
    };
    match run(state, principal, op, request).await {
        Ok(reply) => with_type(StatusCode::OK, reply.to_string().into_bytes(), JSON_1_0),
        Err(e) => json_error(&Fault::of(e)),
    }
}

/// RPC v2 CBOR: `POST /service/GraniteServiceVersion20100801/operation/<op>`.
pub async fn cbor(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(op): Path<String>,
    body: Bytes,
) -> Response {
    if !OPERATIONS.contains(&op.as_str()) {
        let message = format!("Unknown operation: {TARGET_PREFIX}.{op}");
        return cbor_error(&Fault::new(StatusCode::NOT_FOUND, "UnknownOperationException", message));
    }
    let request = match cbor::decode(&body) {
        Ok(r @ Value::Object(_)) => r,
        Ok(_) => return serialization_error(CBOR, "The request body must be a CBOR map."),
        Err(cbor::Malformed(m)) => return serialization_error(CBOR, &m),
    };
    match run(&state, &principal, &op, request).await {
        Ok(reply) => rpc_v2(with_type(StatusCode::OK, cbor::encode(&reply), CBOR)),
        Err(e) => cbor_error(&Fault::of(e)),
    }
}

/// The query protocol: `POST /` with a form body `Action=<op>&Version=2010-08-01&...`.
pub async fn query(state: &AppState, principal: &Principal, request_id: &RequestId, body: &[u8]) -> Response {
    let id = request_id.0.as_str();
    let request = match query::parse(body) {
        Ok(r) => r,
        Err(message) => {
            return query_error(&Fault::new(StatusCode::BAD_REQUEST, "InvalidParameterValue", message), id);
        }
    };
    if request.version.as_deref().is_some_and(|v| v != query::VERSION) {
        let message =
            format!("Version {} is not supported; use {}.", request.version.unwrap_or_default(), query::VERSION);
        return query_error(&Fault::new(StatusCode::BAD_REQUEST, "NoSuchVersion", message), id);
    }
    let Some(op) = request.action.as_deref() else {
        let message = "The request must contain the parameter Action.";
        return query_error(&Fault::new(StatusCode::BAD_REQUEST, "MissingAction", message), id);
    };
    if !OPERATIONS.contains(&op) {
        let message = format!("The action {op} is not valid for this web service.");
        return query_error(&Fault::new(StatusCode::BAD_REQUEST, "InvalidAction", message), id);
    }
    match run(state, principal, op, request.params).await {
        Ok(reply) => with_type(StatusCode::OK, query::response(op, &reply, id).into_bytes(), "text/xml"),
        Err(e) => query_error(&Fault::of(e), id),
    }
}

fn with_type(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Every RPC v2 answer names its protocol.
fn rpc_v2(mut response: Response) -> Response {
    response.headers_mut().insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    response
}

/// The error headers of the JSON and CBOR protocols.
fn error_headers(mut response: Response, fault: &Fault) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-amzn-ErrorType", HeaderValue::from_static(fault.code));
    if let Ok(value) = HeaderValue::from_str(&format!("{};{}", fault.code, fault.party())) {
        headers.insert("x-amzn-query-error", value);
    }
    response
}

fn error_body(fault: &Fault) -> Value {
    serde_json::json!({ "__type": fault.code, "message": fault.message })
}

fn json_error(fault: &Fault) -> Response {
    error_headers(with_type(fault.status, error_body(fault).to_string().into_bytes(), JSON_1_0), fault)
}

fn cbor_error(fault: &Fault) -> Response {
    rpc_v2(error_headers(with_type(fault.status, cbor::encode(&error_body(fault)), CBOR), fault))
}

/// A body that is not a request object of the protocol (not a query error: the JSON and CBOR
/// protocols have their own).
fn serialization_error(content_type: &'static str, message: &str) -> Response {
    let body = serde_json::json!({ "__type": "SerializationException", "message": message });
    let bytes = if content_type == CBOR { cbor::encode(&body) } else { body.to_string().into_bytes() };
    let mut response = with_type(StatusCode::BAD_REQUEST, bytes, content_type);
    response.headers_mut().insert("x-amzn-ErrorType", HeaderValue::from_static("SerializationException"));
    if content_type == CBOR { rpc_v2(response) } else { response }
}

fn query_error(fault: &Fault, request_id: &str) -> Response {
    let xml = query::error(fault.party(), fault.code, &fault.message, request_id);
    with_type(fault.status, xml.into_bytes(), "text/xml")
}

/// Whether a `POST /` without `X-Amz-Target` is a query-protocol request (a form body).
pub fn is_query(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_query_codes() {
        let cases = [
            (ApiError::InvalidParameterValue("p".into()), 400, "InvalidParameterValue", "Sender"),
            (ApiError::InvalidRequestContent("m".into()), 400, "MissingParameter", "Sender"),
            (ApiError::ValidationMessage("c".into()), 400, "InvalidParameterCombination", "Sender"),
            (ApiError::ServiceUnavailable("s".into()), 503, "ServiceUnavailable", "Receiver"),
            (ApiError::Internal(anyhow::anyhow!("x")), 500, "InternalServiceError", "Receiver"),
        ];
        for (err, status, code, party) in cases {
            let fault = Fault::of(err);
            assert_eq!((fault.status.as_u16(), fault.code, fault.party()), (status, code, party));
            let response = json_error(&fault);
            assert_eq!(response.headers()["x-amzn-query-error"], format!("{code};{party}").as_str());
            assert_eq!(response.status().as_u16(), status);
        }
    }

    #[test]
    fn form_bodies_are_query_requests() {
        let mut headers = http::HeaderMap::new();
        assert!(!is_query(&headers));
        headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"));
        assert!(is_query(&headers));
    }
}

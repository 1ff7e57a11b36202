//! Invoke: parse the request, run it through the invoke router, map the outcome to HTTP.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use lamina_common::{AccountId, ApiError, ApiResult, FunctionName, Qualifier};
use lamina_invoke_router::{InvocationType, InvokeOutcome, InvokeRequest};

use super::resolve;
use crate::{AppState, Principal, RequestId};

/// Synchronous request and response ceiling (6 MB).
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// Event payload ceiling (128 K, the guide's value).
pub const MAX_EVENT_PAYLOAD: usize = 128 * 1024;
/// Largest decoded `X-Amz-Client-Context`.
const MAX_CLIENT_CONTEXT: usize = 3583;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn invocation_type(headers: &HeaderMap) -> ApiResult<InvocationType> {
    match header(headers, "x-amz-invocation-type") {
        None | Some("RequestResponse") => Ok(InvocationType::RequestResponse),
        Some("Event") => Ok(InvocationType::Event),
        Some("DryRun") => Ok(InvocationType::DryRun),
        Some(other) => Err(ApiError::invalid(
            other,
            "invocationType",
            "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
        )),
    }
}

fn check_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let Some(ct) = header(headers, "content-type") else { return Ok(()) };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let json_like = essence.is_empty()
        || essence == "application/json"
        || essence.ends_with("+json")
        || essence == "application/octet-stream"
        || essence == "binary/octet-stream"
        || essence == "application/x-amz-json-1.1"
        || essence == "text/plain";
    if json_like { Ok(()) } else { Err(ApiError::UnsupportedMediaType(format!("Unsupported content type: {ct}"))) }
}

pub(crate) fn client_context(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(raw) = header(headers, "x-amz-client-context") else { return Ok(None) };
    let bad = || ApiError::InvalidParameterValue("Client context must be a valid Base64-encoded JSON object.".into());
    let decoded = STANDARD.decode(raw.trim()).map_err(|_| bad())?;
    if decoded.len() > MAX_CLIENT_CONTEXT {
        return Err(ApiError::InvalidParameterValue(format!(
            "Client context must be smaller than {MAX_CLIENT_CONTEXT} bytes."
        )));
    }
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    serde_json::from_str::<serde_json::Value>(&text).map_err(|_| bad())?;
    Ok(Some(text))
}

pub(crate) fn check_payload(body: &Bytes, kind: InvocationType) -> ApiResult<()> {
    let limit = if kind == InvocationType::Event { MAX_EVENT_PAYLOAD } else { MAX_SYNC_PAYLOAD };
    if body.len() > limit {
        return Err(ApiError::RequestTooLarge(format!(
            "{} byte payload is too large for the {} invocation type (limit {limit} bytes)",
            body.len(),
            if kind == InvocationType::Event { "Event" } else { "RequestResponse" }
        )));
    }
    if !body.iter().all(u8::is_ascii_whitespace)
        && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body)
    {
        return Err(ApiError::InvalidRequestContent(format!(
            "Could not parse request body into json: Could not parse payload into json: {e}"
        )));
    }
    Ok(())
}

/// The invocation's span under the request's (names and ids only: never the payload).
fn invoke_span(req: &InvokeRequest) -> tracing::Span {
    tracing::info_span!(
        "Invoke",
        request_id = %req.request_id,
        account_id = %req.account_id,
        function = %req.function_name,
        invocation_type = ?req.invocation_type,
    )
}

/// `POST /2015-03-31/functions/{name}/invocations`
pub async fn invoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let kind = invocation_type(&headers)?;
    check_content_type(&headers)?;
    let target =
        resolve(&state, &principal, &name, params.get("Qualifier").map(String::as_str), "InvokeFunction").await?;
    check_payload(&body, kind)?;
    let client_context = client_context(&headers)?;
    let tail_log = kind == InvocationType::RequestResponse && header(&headers, "x-amz-log-type") == Some("Tail");
    let req = InvokeRequest {
        account_id: AccountId::parse(&target.account_id)?,
        function_name: FunctionName::parse(&target.name)?,
        qualifier: target.qualifier.as_deref().map(Qualifier::parse).transpose()?,
        request_id,
        invocation_type: kind,
        payload: body,
        client_context,
        tail_log,
    };
    let span = invoke_span(&req);
    match tracing::Instrument::instrument(state.invoker.invoke(req), span).await? {
        InvokeOutcome::Checked => Ok(StatusCode::NO_CONTENT.into_response()),
        InvokeOutcome::Queued => Ok(StatusCode::ACCEPTED.into_response()),
        InvokeOutcome::Ran(ran) => {
            let mut response = (StatusCode::OK, ran.payload).into_response();
            let h = response.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            if let Ok(v) = HeaderValue::from_str(&ran.executed_version) {
                h.insert("x-amz-executed-version", v);
            }
            if ran.function_error {
                h.insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
            }
            if let Some(tail) = ran.log_tail
                && let Ok(v) = HeaderValue::from_str(&STANDARD.encode(tail.as_bytes()))
            {
                h.insert("x-amz-log-result", v);
            }
            Ok(response)
        }
    }
}

/// `POST /2014-11-13/functions/{name}/invoke-async` (deprecated): an `Event` invocation.
pub async fn invoke_async(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let target = resolve(&state, &principal, &name, None, "InvokeFunction").await?;
    check_payload(&body, InvocationType::Event)?;
    let req = InvokeRequest {
        account_id: AccountId::parse(&target.account_id)?,
        function_name: FunctionName::parse(&target.name)?,
        qualifier: target.qualifier.as_deref().map(Qualifier::parse).transpose()?,
        request_id,
        invocation_type: InvocationType::Event,
        payload: body,
        client_context: None,
        tail_log: false,
    };
    let span = invoke_span(&req);
    tracing::Instrument::instrument(state.invoker.invoke(req), span).await?;
    Ok((StatusCode::ACCEPTED, [("content-type", "application/json")], "{\"Status\": 202}").into_response())
}

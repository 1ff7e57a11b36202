//! Reading request bodies: a ceiling per operation, a deadline, and never more memory than the
//! ceiling, whatever the client declares or sends.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use lamina_common::ApiError;

/// Synchronous Invoke request ceiling (6 MB, AWS's value).
const INVOKE_LIMIT: usize = 6 * 1024 * 1024;
/// CreateFunction / UpdateFunctionCode: a 50 MB zip in base64 (4/3 of it) plus the JSON around it.
const CODE_LIMIT: usize = (50 * 1024 * 1024usize).div_ceil(3) * 4 + 1024 * 1024;
// A 50 MB zip in base64 fits, with room for the rest of the document.
const _: () = assert!(CODE_LIMIT > 50 * 1024 * 1024 / 3 * 4 + 64 * 1024);
/// Every other operation carries a small JSON document.
const SMALL_LIMIT: usize = 1024 * 1024;

/// A body past its ceiling, declared no larger than this beyond it, is read and thrown away before
/// the 413 goes out, so a client that is still uploading sees the error rather than a reset
/// connection (spec: a size error never resets the connection). A larger one is answered at once
/// and the connection closed: reading it would cost the server the whole upload.
const DRAIN_SLACK: u64 = 8 * 1024 * 1024;
/// A request refused before its body is read (unauthenticated) has at most this much drained.
const REFUSED_DRAIN: u64 = 1024 * 1024;
/// How long draining a refused body may take.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// The most a request may carry, decided from its method and path before anything is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit {
    pub bytes: usize,
    /// The operation's name in AWS's 413 message.
    pub operation: &'static str,
}

impl BodyLimit {
    fn too_large(&self) -> ApiError {
        ApiError::RequestTooLarge(format!(
            "Request must be smaller than {} bytes for the {} operation",
            self.bytes, self.operation
        ))
    }
}

/// The ceiling of the operation at `method` `path`.
pub fn limit_for(method: &Method, path: &str) -> BodyLimit {
    let path = path.trim_end_matches('/');
    let small = BodyLimit { bytes: SMALL_LIMIT, operation: "request" };
    if *method == Method::POST && (path.ends_with("/invocations") || path.ends_with("/invoke-async")) {
        // Event payloads have a smaller limit of their own, checked (with AWS's message) by the handler.
        return BodyLimit { bytes: INVOKE_LIMIT, operation: "InvokeFunction" };
    }
    if *method == Method::POST && path == "/2015-03-31/functions" {
        return BodyLimit { bytes: CODE_LIMIT, operation: "CreateFunction" };
    }
    if *method == Method::PUT && path.starts_with("/2015-03-31/functions/") && path.ends_with("/code") {
        return BodyLimit { bytes: CODE_LIMIT, operation: "UpdateFunctionCode" };
    }
    small
}

/// A body budget of `bytes` in semaphore permits (KiB; a semaphore counts in `u32`).
pub fn budget_kib(bytes: usize) -> usize {
    (bytes / 1024).clamp(1, u32::MAX as usize)
}

/// The KiB a request reserves from the budget: what it declared, at most its ceiling.
pub fn reservation_kib(declared: Option<u64>, limit: BodyLimit, budget_kib: usize) -> u32 {
    let bytes = declared.map_or(limit.bytes as u64, |d| d.min(limit.bytes as u64));
    // A request larger than the whole budget could never be served: it takes all of it.
    bytes.div_ceil(1024).clamp(1, budget_kib as u64).min(u64::from(u32::MAX)) as u32
}

/// The length the client declared (`Content-Length`, or 0 for a request without a body); `None`
/// for a chunked body.
pub fn declared_length(body: &Body) -> Option<u64> {
    hyper::body::Body::size_hint(body).exact()
}

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// An API error (413, or an unreadable body).
    Api(ApiError),
    /// The body did not arrive in time.
    TimedOut,
}

impl From<ApiError> for BodyError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl BodyError {
    /// The answer; the connection is closed after it when the body was left unread.
    pub fn into_response(self, unread: bool) -> Response {
        let mut response = match self {
            Self::Api(e) => e.into_response(),
            Self::TimedOut => timed_out(),
        };
        if unread || matches!(response.status(), StatusCode::REQUEST_TIMEOUT) {
            response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        response
    }
}

fn timed_out() -> Response {
    let body = serde_json::json!({
        "Type": "User",
        "Message": "The request body was not received in time.",
    });
    let mut response = (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response();
    response.headers_mut().insert("x-amzn-ErrorType", http::HeaderValue::from_static("RequestTimeoutException"));
    response
}

/// Reads at most `limit.bytes` within `timeout`. A body declared larger is refused before any of it
/// is read; one that turns out larger is not kept past the ceiling. Returns whether a refused
/// body was left (partly) unread, in which case the connection must close.
pub async fn read_limited(
    body: Body,
    declared: Option<u64>,
    limit: BodyLimit,
    timeout: Duration,
) -> Result<Bytes, (BodyError, bool)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let ceiling = limit.bytes as u64;
    if let Some(len) = declared
        && len > ceiling
    {
        let drained = len <= ceiling + DRAIN_SLACK && discard(body, len, deadline).await;
        return Err((limit.too_large().into(), !drained));
    }
    let mut body = body;
    // Grown as bytes arrive: a slow client declaring much must not hold memory it has not sent.
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |l| l as usize).min(64 * 1024));
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err((BodyError::TimedOut, true)),
            Ok(None) => break,
            Ok(Some(frame)) => frame,
        };
        let frame = frame.map_err(|e| {
            (BodyError::Api(ApiError::InvalidRequestContent(format!("Could not read request body: {e}"))), true)
        })?;
        let Ok(data) = frame.into_data() else { continue };
        if buf.len() + data.len() > limit.bytes {
            let drained = discard(body, DRAIN_SLACK, deadline).await;
            return Err((limit.too_large().into(), !drained));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// Reads and throws away the rest of a body the request is refused for, if it is small, so the
/// client can read the refusal; true when the body was read to its end.
pub async fn discard_refused(body: Body, declared: Option<u64>) -> bool {
    match declared {
        Some(0) => true,
        Some(len) if len <= REFUSED_DRAIN => {
            discard(body, REFUSED_DRAIN, tokio::time::Instant::now() + DRAIN_TIME).await
        }
        // Unknown or large: not worth reading for a request already refused.
        _ => false,
    }
}

/// Reads up to `max` bytes of `body` without keeping them; true when the body ended.
async fn discard(mut body: Body, max: u64, deadline: tokio::time::Instant) -> bool {
    let mut seen: u64 = 0;
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(None) => return true,
            Ok(Some(Ok(frame))) => {
                seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                if seen > max {
                    return false;
                }
            }
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A body whose bytes never come.
    struct Stalled;

    impl hyper::body::Body for Stalled {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
            Poll::Pending
        }
    }

    #[test]
    fn limits_follow_the_operation() {
        let post = Method::POST;
        assert_eq!(limit_for(&post, "/2015-03-31/functions/f/invocations").bytes, 6 * 1024 * 1024);
        assert_eq!(limit_for(&post, "/2014-11-13/functions/f/invoke-async/").operation, "InvokeFunction");
        assert_eq!(limit_for(&post, "/2015-03-31/functions").operation, "CreateFunction");
        assert_eq!(limit_for(&Method::PUT, "/2015-03-31/functions/f/code").operation, "UpdateFunctionCode");
        assert_eq!(limit_for(&Method::PUT, "/2015-03-31/functions/f/configuration").bytes, SMALL_LIMIT);
        assert_eq!(limit_for(&post, "/2015-03-31/functions/f/policy").bytes, SMALL_LIMIT);
    }

    #[tokio::test]
    async fn a_declared_oversize_body_is_not_read() {
        let limit = BodyLimit { bytes: 10, operation: "X" };
        let started = std::time::Instant::now();
        let (err, unread) = read_limited(Body::new(Stalled), Some(DRAIN_SLACK * 4), limit, Duration::from_secs(30))
            .await
            .expect_err("refused");
        assert!(unread);
        assert!(started.elapsed() < Duration::from_secs(1), "refused without waiting for the body");
        assert_eq!(err.into_response(true).status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_slow_body_times_out() {
        let limit = BodyLimit { bytes: 10, operation: "X" };
        let (err, _) =
            read_limited(Body::new(Stalled), Some(5), limit, Duration::from_millis(100)).await.expect_err("timed out");
        let response = err.into_response(true);
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()["connection"], "close");
    }

    #[tokio::test]
    async fn an_undeclared_oversize_body_is_cut_at_the_ceiling() {
        let limit = BodyLimit { bytes: 10, operation: "X" };
        let (err, unread) =
            read_limited(Body::from(vec![b'a'; 11]), None, limit, Duration::from_secs(5)).await.expect_err("refused");
        assert!(!unread, "a small excess is drained");
        assert_eq!(err.into_response(unread).status(), StatusCode::PAYLOAD_TOO_LARGE);
        let ok = read_limited(Body::from(vec![b'a'; 10]), Some(10), limit, Duration::from_secs(5)).await;
        assert_eq!(ok.map(|b| b.len()).ok(), Some(10));
    }
}

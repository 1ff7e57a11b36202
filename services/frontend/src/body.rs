//! Reading request bodies with a ceiling, without resetting the connection.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use lamina_common::ApiError;

/// How much of an oversized body is read and thrown away before the 413 is sent, so the client
/// sees the error instead of a reset connection.
const DRAIN_LIMIT: usize = 512 * 1024 * 1024;

/// Reads at most `limit` bytes; a larger body is drained and answered with 413.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = body;
    let mut buf = BytesMut::new();
    let mut seen: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::InvalidRequestContent(format!("Could not read request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            buf.extend_from_slice(&data);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::RequestTooLarge(format!("Request must be smaller than {limit} bytes for the operation")));
    }
    Ok(buf.freeze())
}

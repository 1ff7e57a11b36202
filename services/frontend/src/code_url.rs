//! Expiring download URLs for deployment packages (GetFunction's `Code.Location`).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::AppState;

/// How long a URL stays valid (the guide: up to 10 minutes).
pub const VALIDITY_SECS: i64 = 600;

fn signature(key: &[u8; 32], account: &str, sha: &str, expires: i64) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac accepts any key length");
    mac.update(format!("{account}\n{sha}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// An absolute URL on the host the caller used to reach us.
pub fn location(state: &AppState, headers: &HeaderMap, account: &str, sha: &str) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let expires = chrono::Utc::now().timestamp() + VALIDITY_SECS;
    let sig = signature(&state.config.url_key, account, sha, expires);
    format!("http://{host}/_lamina/code/{account}/{sha}?expires={expires}&signature={sig}")
}

#[derive(Deserialize)]
pub struct Params {
    expires: i64,
    signature: String,
}

/// Serves the zip when the URL's signature is good and unexpired.
pub async fn download(
    State(state): State<AppState>,
    Path((account, sha)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Response {
    let expected = signature(&state.config.url_key, &account, &sha, params.expires);
    let valid = bool::from(expected.as_bytes().ct_eq(params.signature.as_bytes()));
    if !valid || chrono::Utc::now().timestamp() > params.expires {
        return (StatusCode::FORBIDDEN, "Request has expired or the signature does not match").into_response();
    }
    match state.code.read(&sha).await {
        Ok(Some(bytes)) => ([(header::CONTENT_TYPE, "application/zip")], Body::from(bytes)).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "NoSuchKey").into_response(),
        Err(e) => e.into_response(),
    }
}

//! Authentication: SigV4 for the Lambda API (with access keys, or with the session credentials
//! function code is given), a bearer token for the admin API.

pub mod resource_policy;
pub mod session;
pub mod sigv4;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lamina_common::ApiError;
use lamina_metadata::MetadataClient;
use subtle::ConstantTimeEq;

use self::session::SessionVerifier;
use crate::AppState;
use crate::body::{budget_kib, declared_length, discard_refused, limit_for, read_limited, reservation_kib};

/// Who signed the request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account_id: String,
    pub access_key_id: String,
}

impl Principal {
    /// The caller as an IAM ARN, for AccessDenied messages.
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::{}:root", self.account_id)
    }
}

/// A short-lived cache of decrypted secrets, so a hot key costs no database read; and the
/// verifier of session credentials, when the installation's session key was given.
#[derive(Default)]
pub struct SecretCache {
    entries: RwLock<HashMap<String, (String, String, Instant)>>,
    sessions: OnceLock<Arc<SessionVerifier>>,
}

const SECRET_TTL: Duration = Duration::from_secs(30);

/// Invalidation topic of revoked access keys.
pub const SECRET_TOPIC: &str = "secret";

impl SecretCache {
    /// `(account_id, secret)` for a key, from cache or the metadata store.
    pub async fn lookup(
        &self,
        metadata: &MetadataClient,
        access_key_id: &str,
    ) -> Result<Option<(String, String)>, ApiError> {
        if let Ok(map) = self.entries.read()
            && let Some((account, secret, at)) = map.get(access_key_id)
            && at.elapsed() < SECRET_TTL
        {
            return Ok(Some((account.clone(), secret.clone())));
        }
        let found = metadata.lookup_secret(access_key_id).await?;
        if let (Some((account, secret)), Ok(mut map)) = (&found, self.entries.write()) {
            if map.len() > 100_000 {
                map.clear();
            }
            map.insert(access_key_id.to_owned(), (account.clone(), secret.clone(), Instant::now()));
        }
        Ok(found)
    }

    /// Forgets every key (after missed invalidations).
    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.write() {
            map.clear();
        }
        if let Some(sessions) = self.sessions.get() {
            sessions.clear();
        }
    }

    /// Forgets a key at once (after it was deleted).
    pub fn forget(&self, access_key_id: &str) {
        if let Ok(mut map) = self.entries.write() {
            map.remove(access_key_id);
        }
    }
}

impl AppState {
    /// Accepts the session credentials function code is given (`X-Amz-Security-Token` with an
    /// `ASIA` key id), minted with `key` (`lamina_common::session::derive_key` of the master key).
    /// Without it such requests are refused as unrecognized.
    pub fn with_session_key(self, key: [u8; 32]) -> Self {
        if self.secrets.sessions.set(Arc::new(SessionVerifier::new(key, self.metadata.clone()))).is_err() {
            tracing::warn!("a session key was already set; keeping the first");
        }
        self
    }

    /// The session verifier (for other APIs taking the same credentials, e.g. S3).
    pub fn session_verifier(&self) -> Option<Arc<SessionVerifier>> {
        self.secrets.sessions.get().cloned()
    }
}

/// Verifies SigV4 and attaches the [`Principal`]. The caller is checked from the headers before any
/// of the body is read; the body is then read under the operation's ceiling and deadline.
pub async fn require_sigv4(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let declared = declared_length(&body);
    let caller = match identify(&state, &parts).await {
        Ok(caller) => caller,
        Err(err) => return refuse(err, body, declared).await,
    };
    let limit = limit_for(&parts.method, parts.uri.path());
    // Held until the answer: the body stays in memory while the operation runs.
    let kib = reservation_kib(declared, limit, budget_kib(state.config.http.body_memory));
    let reserved = tokio::time::timeout(state.config.http.body_timeout, state.bodies.clone().acquire_many_owned(kib));
    let _reservation = match reserved.await {
        Ok(Ok(permit)) => permit,
        _ => {
            let busy = ApiError::ServiceUnavailable("Too many request bodies are being received; retry later.".into());
            return refuse(busy, body, declared).await;
        }
    };
    let body = match read_limited(body, declared, limit, state.config.http.body_timeout).await {
        Ok(body) => body,
        Err((err, unread)) => return err.into_response(unread),
    };
    let checked = if caller.verified {
        sigv4::check_payload_hash(&parts.headers, &body)
    } else {
        // Nothing in the headers vouches for the body: the signature covers its bytes.
        sigv4::verify(
            &caller.claim,
            &caller.secret,
            caller.when,
            &parts.method,
            &parts.uri,
            &parts.headers,
            Some(&body),
        )
    };
    if let Err(err) = checked {
        return err.into_response();
    }
    parts.extensions.insert(Principal { account_id: caller.account_id, access_key_id: caller.claim.access_key_id });
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// A caller whose access key exists.
struct Caller {
    claim: sigv4::SignatureClaim,
    when: chrono::DateTime<chrono::Utc>,
    account_id: String,
    secret: String,
    /// The signature is already verified (over the payload hash the headers declare).
    verified: bool,
}

/// Everything that can be checked without the body: the claim, its scope and time, the key, and
/// the signature itself when the headers declare the payload's hash.
async fn identify(state: &AppState, parts: &http::request::Parts) -> Result<Caller, ApiError> {
    let claim = sigv4::parse_claim(&parts.headers, &parts.uri)?;
    let when = sigv4::check_scope(&claim, &state.config.region, signing_service(parts), chrono::Utc::now())?;
    let (account_id, secret) = if lamina_common::session::is_session_key(&claim.access_key_id) {
        let token = sigv4::security_token(&parts.headers, &parts.uri).ok_or(ApiError::UnrecognizedClient)?;
        let verifier = state.secrets.sessions.get().ok_or(ApiError::UnrecognizedClient)?;
        let (claims, secret) = verifier.verify(&claim.access_key_id, &token).await?;
        (claims.account_id, secret)
    } else {
        state.secrets.lookup(&state.metadata, &claim.access_key_id).await?.ok_or(ApiError::UnrecognizedClient)?
    };
    let mut verified = false;
    if sigv4::declares_payload(&parts.headers) || claim.expires.is_some() {
        match sigv4::verify(&claim, &secret, when, &parts.method, &parts.uri, &parts.headers, None) {
            Ok(()) => verified = true,
            // The declared hash is what was signed: a mismatch cannot be cured by the body.
            Err(err) if sigv4::declares_payload(&parts.headers) => return Err(err),
            // A presigned request may also have signed its body's bytes.
            Err(_) => {}
        }
    }
    Ok(Caller { claim, when, account_id, secret, verified })
}

/// The SigV4 service name a request must be signed for: the other APIs served on the same endpoint
/// are signed for their own service (`POST /` with `X-Amz-Target`; CloudWatch also as RPC v2 CBOR
/// under `/service/GraniteServiceVersion20100801/` and as a query form on `POST /`), everything
/// else for `lambda`.
pub fn signing_service(parts: &http::request::Parts) -> &'static str {
    if parts.uri.path().starts_with(crate::api::CLOUDWATCH_CBOR_PATH) {
        return "monitoring";
    }
    if parts.uri.path() != "/" {
        return "lambda";
    }
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    match target.split_once('.').map(|(prefix, _)| prefix) {
        Some("AWSEvents") => "events",
        Some("Logs_20140328") => "logs",
        Some("GraniteServiceVersion20100801") => "monitoring",
        None if target.is_empty() && crate::api::is_cloudwatch_query(&parts.headers) => "monitoring",
        _ => "lambda",
    }
}

/// Answers a request refused before its body was read; the connection closes unless the body
/// was small enough to read away.
async fn refuse(err: ApiError, body: Body, declared: Option<u64>) -> Response {
    let mut response = err.into_response();
    if !discard_refused(body, declared).await {
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    response
}

/// Admits admin requests carrying `Authorization: Bearer <admin token>`.
pub async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = state.config.admin_token.as_bytes();
    if presented.is_empty() || !bool::from(presented.as_bytes().ct_eq(expected)) {
        return ApiError::AccessDenied("A valid admin token is required.".into()).into_response();
    }
    next.run(request).await
}

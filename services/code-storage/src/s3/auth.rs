//! Authentication for s3s: secrets come from [`Credentials`], with the request's session token.
//!
//! s3s asks `S3Auth::get_secret_key` with the access key only, so the serving loop puts what the
//! lookup also needs (the `X-Amz-Security-Token` header or query parameter) in a task-local
//! [`RequestScope`]; the lookup leaves the resolved principal there, and `S3Access::check` moves it
//! into the request's extensions, where the operations read it.

use std::sync::{Arc, Mutex, PoisonError};

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};

use super::{CodeDownloads, Credentials};

/// Who a verified request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    Account {
        account_id: String,
        access_key: String,
    },
    /// The reserved key that signs GetFunction's `Code.Location`.
    CodeDownloads,
}

/// Per-request facts the s3s callbacks cannot see otherwise.
pub(crate) struct RequestScope {
    pub session_token: Option<String>,
    pub request_id: String,
    pub host_id: String,
    pub source_ip: String,
    resolved: Mutex<Option<(String, Principal)>>,
}

impl RequestScope {
    pub fn new(session_token: Option<String>, request_id: String, host_id: String, source_ip: String) -> Self {
        Self { session_token, request_id, host_id, source_ip, resolved: Mutex::new(None) }
    }
}

tokio::task_local! {
    pub(crate) static SCOPE: Arc<RequestScope>;
}

/// The current request's scope (present inside the serving loop).
pub(crate) fn scope() -> Option<Arc<RequestScope>> {
    SCOPE.try_with(Arc::clone).ok()
}

pub(crate) struct Auth {
    pub credentials: Arc<dyn Credentials>,
    pub code_downloads: Option<CodeDownloads>,
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let scope = scope().ok_or_else(|| s3_error!(InternalError, "request scope missing"))?;
        if let Some(code) = &self.code_downloads
            && code.access_key_id == access_key
        {
            remember(&scope, access_key, Principal::CodeDownloads);
            return Ok(SecretKey::from(code.secret_access_key.clone()));
        }
        let found = self.credentials.lookup(access_key, scope.session_token.as_deref()).await.map_err(|e| {
            tracing::error!(error = format!("{e:#}"), "look up S3 access key");
            s3_error!(InternalError, "We encountered an internal error. Please try again.")
        })?;
        match found {
            Some(caller) => {
                let principal = Principal::Account { account_id: caller.account_id, access_key: access_key.to_owned() };
                remember(&scope, access_key, principal);
                Ok(SecretKey::from(caller.secret_access_key))
            }
            None if scope.session_token.is_some() => {
                Err(s3_error!(InvalidToken, "The provided token is malformed or otherwise invalid."))
            }
            None => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
        }
    }
}

fn remember(scope: &RequestScope, access_key: &str, principal: Principal) {
    *scope.resolved.lock().unwrap_or_else(PoisonError::into_inner) = Some((access_key.to_owned(), principal));
}

pub(crate) struct Access {
    pub code_bucket: Option<String>,
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        let access_key = creds.access_key.clone();
        let scope = scope().ok_or_else(|| s3_error!(InternalError, "request scope missing"))?;
        let principal = scope
            .resolved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(key, _)| *key == access_key)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))?;
        if let Some(header_token) = cx.headers().get("x-amz-security-token")
            && !header_token.is_empty()
            && !token_header_signed(cx)
        {
            return Err(s3_error!(AccessDenied, "x-amz-security-token must be signed"));
        }
        if principal == Principal::CodeDownloads {
            let allowed = matches!(cx.s3_op().name(), "GetObject" | "HeadObject")
                && matches!(cx.s3_path(), S3Path::Object { bucket, .. } if Some(bucket.as_ref()) == self.code_bucket.as_deref());
            if !allowed {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
        }
        cx.extensions_mut().insert(principal);
        Ok(())
    }
}

/// Header-signed requests must cover the session token (presigned URLs sign every query parameter).
fn token_header_signed(cx: &S3AccessContext<'_>) -> bool {
    let Some(auth) = cx.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    auth.split(',')
        .filter_map(|part| part.trim().strip_prefix("SignedHeaders="))
        .any(|list| list.split(';').any(|h| h.eq_ignore_ascii_case("x-amz-security-token")))
        || !auth.starts_with("AWS4-")
}

//! Session credentials of function code (`lamina_common::session`): the token proves who minted
//! them and until when; this adds revocation: a session is refused once its function no longer
//! exists (checked through metadata, remembered for at most [`FUNCTION_TTL`]).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use lamina_common::session::{self, SessionClaims, SessionError};
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::MetadataClient;

/// How long whether a function exists is remembered: a deleted function's sessions are refused
/// at most this long after the deletion.
pub const FUNCTION_TTL: Duration = Duration::from_secs(30);

/// Checks session credentials for any API that takes them (the Lambda API here; the S3 API
/// implements its credentials lookup with [`lookup`](Self::lookup)).
pub struct SessionVerifier {
    key: [u8; 32],
    metadata: MetadataClient,
    /// `account/function` -> (exists, when that was learnt).
    functions: RwLock<HashMap<String, (bool, Instant)>>,
}

impl std::fmt::Debug for SessionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionVerifier { .. }")
    }
}

impl SessionVerifier {
    /// A verifier of credentials minted with `key` (the installation's session key).
    pub fn new(key: [u8; 32], metadata: MetadataClient) -> Self {
        Self { key, metadata, functions: RwLock::default() }
    }

    /// The claims and the signing secret of live session credentials. Errors:
    /// `UnrecognizedClient` (forged, altered, another installation's, or the function is gone),
    /// `ExpiredToken`, or a metadata failure.
    pub async fn verify(&self, access_key_id: &str, session_token: &str) -> ApiResult<(SessionClaims, String)> {
        let (claims, secret) =
            session::verify(&self.key, access_key_id, session_token, unix_now()).map_err(|e| match e {
                SessionError::Invalid => ApiError::UnrecognizedClient,
                SessionError::Expired => ApiError::ExpiredToken,
            })?;
        let name = claims.function_name().ok_or(ApiError::UnrecognizedClient)?;
        if !self.function_exists(&claims.account_id, name).await? {
            return Err(ApiError::UnrecognizedClient);
        }
        Ok((claims, secret))
    }

    /// `(account_id, secret)` of live session credentials, `None` when they are not (forged,
    /// altered, or the function is gone); `Err(ExpiredToken)` when they have expired, so that an
    /// API can answer that in its own words.
    pub async fn lookup(&self, access_key_id: &str, session_token: &str) -> ApiResult<Option<(String, String)>> {
        match self.verify(access_key_id, session_token).await {
            Ok((claims, secret)) => Ok(Some((claims.account_id, secret))),
            Err(ApiError::UnrecognizedClient) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Forgets what is known about functions (after missed invalidations).
    pub fn clear(&self) {
        if let Ok(mut map) = self.functions.write() {
            map.clear();
        }
    }

    async fn function_exists(&self, account_id: &str, name: &str) -> ApiResult<bool> {
        let key = format!("{account_id}/{name}");
        if let Ok(map) = self.functions.read()
            && let Some((exists, at)) = map.get(&key)
            && at.elapsed() < FUNCTION_TTL
        {
            return Ok(*exists);
        }
        let exists = self.metadata.get_version(account_id, name, "$LATEST").await?.is_some();
        if let Ok(mut map) = self.functions.write() {
            if map.len() > 100_000 {
                map.clear();
            }
            map.insert(key, (exists, Instant::now()));
        }
        Ok(exists)
    }
}

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_secs()).unwrap_or(i64::MAX)
}

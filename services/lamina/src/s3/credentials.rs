//! SigV4 callers of the S3 API: the same access keys as the Lambda API, read through the same cache,
//! and the session credentials function code is given, checked by the frontend's verifier.

use std::sync::Arc;

use lamina_code_storage::s3::{BoxFuture, Caller, Credentials};
use lamina_common::ApiError;
use lamina_frontend::auth::SecretCache;
use lamina_frontend::auth::session::SessionVerifier;
use lamina_metadata::MetadataClient;

/// Access keys from metadata, cached as the frontend caches them; session credentials (`ASIA…`
/// with a token) while their function exists.
pub struct KeyCredentials {
    metadata: MetadataClient,
    secrets: Arc<SecretCache>,
    sessions: Arc<SessionVerifier>,
}

impl KeyCredentials {
    /// Keys read through `metadata`, kept in `secrets` (shared with whatever forgets revoked keys).
    pub fn new(metadata: MetadataClient, secrets: Arc<SecretCache>, sessions: Arc<SessionVerifier>) -> Self {
        Self { metadata, secrets, sessions }
    }
}

impl Credentials for KeyCredentials {
    fn lookup<'a>(
        &'a self,
        access_key_id: &'a str,
        session_token: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Option<Caller>>> {
        Box::pin(async move {
            if lamina_common::session::is_session_key(access_key_id) {
                let Some(token) = session_token else { return Ok(None) };
                return match self.sessions.lookup(access_key_id, token).await {
                    Ok(found) => {
                        Ok(found.map(|(account_id, secret_access_key)| Caller { account_id, secret_access_key }))
                    }
                    // Expired credentials are refused like unknown ones.
                    Err(ApiError::ExpiredToken) => Ok(None),
                    Err(other) => Err(anyhow::Error::new(other)),
                };
            }
            if session_token.is_some() {
                // A long-term key with a token: not credentials this server issued.
                return Ok(None);
            }
            let found = self.secrets.lookup(&self.metadata, access_key_id).await.map_err(anyhow::Error::new)?;
            Ok(found.map(|(account_id, secret_access_key)| Caller { account_id, secret_access_key }))
        })
    }
}

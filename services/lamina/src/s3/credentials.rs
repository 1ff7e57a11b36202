//! SigV4 callers of the S3 API: the same access keys as the Lambda API, read through the same cache.

use std::sync::Arc;

use lamina_code_storage::s3::{BoxFuture, Caller, Credentials};
use lamina_frontend::auth::SecretCache;
use lamina_metadata::MetadataClient;

/// Access keys from metadata, cached as the frontend caches them.
pub struct KeyCredentials {
    metadata: MetadataClient,
    secrets: Arc<SecretCache>,
}

impl KeyCredentials {
    /// Keys read through `metadata`, kept in `secrets` (shared with whatever forgets revoked keys).
    pub fn new(metadata: MetadataClient, secrets: Arc<SecretCache>) -> Self {
        Self { metadata, secrets }
    }
}

impl Credentials for KeyCredentials {
    fn lookup<'a>(
        &'a self,
        access_key_id: &'a str,
        session_token: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Option<Caller>>> {
        Box::pin(async move {
            if session_token.is_some() {
                // Session credentials are not issued by this server: the key is unknown.
                return Ok(None);
            }
            let found = self.secrets.lookup(&self.metadata, access_key_id).await.map_err(anyhow::Error::new)?;
            Ok(found.map(|(account_id, secret_access_key)| Caller { account_id, secret_access_key }))
        })
    }
}

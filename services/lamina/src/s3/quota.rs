//! The S3 API's storage limit: an account's objects and its function packages share the account's
//! code-storage quota (`CodeStorageBytes`, GetAccountSettings' `TotalCodeSize`).

use lamina_code_storage::s3::{BoxFuture, Quota, S3Store};
use lamina_metadata::MetadataClient;

/// The account's code-storage quota, counting its objects (every version, uploaded parts) and its
/// functions' packages (as GetAccountSettings counts them).
pub struct AccountQuota {
    metadata: MetadataClient,
    objects: S3Store,
}

impl AccountQuota {
    pub fn new(metadata: MetadataClient, objects: S3Store) -> Self {
        Self { metadata, objects }
    }
}

impl Quota for AccountQuota {
    fn check<'a>(
        &'a self,
        account_id: &'a str,
        adding_bytes: u64,
    ) -> BoxFuture<'a, anyhow::Result<Result<(), String>>> {
        Box::pin(async move {
            let limit = self.metadata.account(account_id).await.map_err(anyhow::Error::new)?.code_storage_bytes;
            let (packages, _) = self.metadata.usage(account_id).await.map_err(anyhow::Error::new)?;
            // A walk of the account's buckets: its cost grows with the number of objects (see docs).
            let objects = self.objects.usage_bytes(account_id).await?;
            let used = u64::try_from(packages).unwrap_or(0).saturating_add(objects);
            let limit = u64::try_from(limit).unwrap_or(0);
            if used.saturating_add(adding_bytes) > limit {
                return Ok(Err(format!(
                    "Your account's storage quota of {limit} bytes (code storage) would be exceeded: \
                     {used} bytes are stored."
                )));
            }
            Ok(Ok(()))
        })
    }
}

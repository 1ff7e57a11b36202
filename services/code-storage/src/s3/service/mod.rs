//! The `s3s::S3` implementation: one method per operation, delegating to the store.

use super::S3Api;

pub(crate) struct Handler {
    pub api: S3Api,
}

#[async_trait::async_trait]
impl s3s::S3 for Handler {}

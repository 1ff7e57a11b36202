//! Accounts, access keys and functions: the metadata service, on SQLite or Postgres.

pub mod accounts;
pub mod aliases;
mod client;
pub mod concurrency;
mod convert;
pub mod crypto;
pub mod functions;
pub mod grpc;
pub mod metrics;
pub mod policies;
mod read_cache;
mod sealed_env;
pub mod store;
pub mod versions;

use std::sync::Arc;

pub use accounts::{Account, AccountLimits, NewAccount};
pub use aliases::{AliasPatch, AliasRow, NewAlias, Resolved, RoutingConfig};
pub use client::{MetadataClient, Remote};
pub use concurrency::InvokeTarget;
pub use convert::Invalid;
pub use crypto::SecretCipher;
pub use functions::{CodeRef, FunctionPatch, FunctionRow, LatestUpdate, NewFunction, regionless_arn};
pub use grpc::serve;
pub use policies::{MAX_POLICY_BYTES, Policy};
pub use store::Store;

/// Handle to the metadata service (in-process implementation). Cheap to clone.
#[derive(Clone)]
pub struct Metadata {
    pub(crate) store: Store,
    pub(crate) cipher: Arc<SecretCipher>,
    pub(crate) cache: Arc<read_cache::ReadCache>,
}

impl Metadata {
    /// Connects to `database_url` (`sqlite://…` or `postgres://…`) and applies migrations.
    pub async fn connect(database_url: &str, cipher: SecretCipher) -> anyhow::Result<Self> {
        let store = Store::connect(database_url).await?;
        let metadata = Self { store, cipher: Arc::new(cipher), cache: Arc::new(read_cache::ReadCache::new()) };
        metadata.seal_plaintext_environments().await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(metadata)
    }

    /// The storage engine in use (`sqlite` or `postgres`).
    pub fn engine(&self) -> &'static str {
        match self.store {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Drops every cached read (another process wrote to the shared database).
    pub fn invalidate_cache(&self) {
        drop(self.cache.writing());
    }

    /// Direct store access, for tests that check what the API cannot show.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

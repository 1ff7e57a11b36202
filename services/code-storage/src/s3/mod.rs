//! The S3-compatible API (built on `s3s`): buckets and versioned objects on the filesystem, multipart
//! uploads, SigV4 with the Lambda API's access keys (and session credentials), S3 event notifications,
//! and presigned downloads of deployment packages (GetFunction's `Code.Location`).

mod auth;
mod notify;
mod policy;
mod serve;
mod service;
mod store;

use std::sync::Arc;

pub use serve::serve;
pub use store::{ReadError, S3Store};

/// A boxed `Send` future, so the traits below stay object safe.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Who signed a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The 12-digit account the key belongs to.
    pub account_id: String,
    /// The key's secret, to check the signature with.
    pub secret_access_key: String,
}

/// The same access keys as the Lambda API, plus session credentials (ASIA… keys with a token).
pub trait Credentials: Send + Sync + 'static {
    /// Ok(None): unknown key, or a session key whose token is missing, invalid, expired or revoked.
    fn lookup<'a>(
        &'a self,
        access_key_id: &'a str,
        session_token: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Option<Caller>>>;
}

/// One S3 event notification to deliver: an Event invocation of `function_arn` with `event`.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The account that owns the bucket (S3's `SourceAccount`).
    pub bucket_owner: String,
    pub function_arn: String,
    /// `{"Records":[record]}`.
    pub event: serde_json::Value,
}

/// Where S3 event notifications go.
pub trait ObjectEvents: Send + Sync + 'static {
    /// Ok(Err(reason)): S3 may not invoke that function.
    fn check_destination<'a>(
        &'a self,
        bucket_owner: &'a str,
        bucket: &'a str,
        function_arn: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Result<(), String>>>;
    /// Durably queues the deliveries (one Event invocation each); called before the request is answered.
    fn deliver<'a>(&'a self, deliveries: Vec<Delivery>) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// A per-account storage limit, asked before a write becomes visible.
pub trait Quota: Send + Sync + 'static {
    /// Ok(Err(reason)): storing `adding_bytes` more would exceed the account's quota.
    fn check<'a>(&'a self, account_id: &'a str, adding_bytes: u64)
    -> BoxFuture<'a, anyhow::Result<Result<(), String>>>;
}

/// The reserved principal that signs GetFunction's `Code.Location` URLs.
#[derive(Debug, Clone)]
pub struct CodeDownloads {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The reserved bucket name: `/<bucket>/<account_id>/<sha256hex>.zip` serves a package blob.
    pub bucket: String,
}

/// Settings of the S3 API.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Reported by GetBucketLocation and in event records.
    pub region: String,
    /// Virtual-host style requests (`<bucket>.<base_domain>`) when set; path style always works.
    pub base_domain: Option<String>,
    pub max_buckets_per_account: usize,
    pub code_downloads: Option<CodeDownloads>,
}

impl Default for S3Config {
    fn default() -> Self {
        Self { region: "us-east-1".to_owned(), base_domain: None, max_buckets_per_account: 100, code_downloads: None }
    }
}

/// Everything the S3 API needs; cheap to clone.
#[derive(Clone)]
pub struct S3Api {
    pub(crate) inner: Arc<ApiInner>,
}

pub(crate) struct ApiInner {
    pub(crate) store: S3Store,
    pub(crate) code: crate::CodeStorage,
    pub(crate) credentials: Arc<dyn Credentials>,
    pub(crate) events: Arc<dyn ObjectEvents>,
    pub(crate) quota: Option<Arc<dyn Quota>>,
    pub(crate) config: S3Config,
}

impl S3Api {
    pub fn new(
        store: S3Store,
        code: crate::CodeStorage,
        credentials: Arc<dyn Credentials>,
        events: Arc<dyn ObjectEvents>,
        quota: Option<Arc<dyn Quota>>,
        config: S3Config,
    ) -> Self {
        Self { inner: Arc::new(ApiInner { store, code, credentials, events, quota, config }) }
    }

    /// The object store behind the API.
    pub fn store(&self) -> &S3Store {
        &self.inner.store
    }
}

//! Deployment packages: zip validation and content-addressed blobs on the filesystem; the
//! S3-compatible API (`s3`) for buckets, objects and event notifications.

mod client;
mod deletion;
mod grpc;
pub mod links;
pub mod s3;
mod validate;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use lamina_common::ApiResult;
use sha2::{Digest, Sha256};

pub use client::CodeClient;
pub use grpc::serve;
pub use validate::{ZipLimits, validate_zip};

/// A package as stored: its digest in both spellings and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    /// Lowercase hex SHA-256; the blob's file name.
    pub sha256_hex: String,
    /// Base64 SHA-256, as `CodeSha256` reports it.
    pub sha256_b64: String,
    /// Bytes of the zip.
    pub size: i64,
}

/// Base64 form of a hex digest (`CodeSha256`).
pub fn hex_to_b64(hex_digest: &str) -> String {
    hex::decode(hex_digest).map(|raw| base64::engine::general_purpose::STANDARD.encode(raw)).unwrap_or_default()
}

/// Blobs under one directory, named by their SHA-256; and, where the S3 API runs, its objects
/// (deployment packages may be read from a bucket).
#[derive(Clone)]
pub struct CodeStorage {
    root: PathBuf,
    limits: ZipLimits,
    objects: Option<s3::S3Store>,
}

impl std::fmt::Debug for CodeStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeStorage")
            .field("root", &self.root)
            .field("limits", &self.limits)
            .field("objects", &self.objects.is_some())
            .finish()
    }
}

impl CodeStorage {
    /// Opens (creating if needed) the blob directory.
    pub fn open(root: impl Into<PathBuf>, limits: ZipLimits) -> anyhow::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).with_context(|| format!("create blob dir {}", root.display()))?;
        let restored = Self::recover_hidden(&root).context("put back blobs hidden by an interrupted delete")?;
        if restored > 0 {
            tracing::info!(restored, "put back blobs hidden by an interrupted delete");
        }
        Ok(Self { root, limits, objects: None })
    }

    /// The same storage, also reading deployment packages from the S3 API's objects.
    pub fn with_objects(mut self, objects: s3::S3Store) -> Self {
        self.objects = Some(objects);
        self
    }

    /// An object of the S3 API as `caller_account` may read it (at most `max_bytes`).
    pub async fn read_object(
        &self,
        caller_account: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        max_bytes: u64,
    ) -> Result<Bytes, s3::ReadError> {
        match &self.objects {
            Some(objects) => objects.read_object(caller_account, bucket, key, version_id, max_bytes).await,
            // No S3 API here: no bucket exists.
            None => Err(s3::ReadError::NoSuchBucket),
        }
    }

    /// The limits packages are checked against.
    pub fn limits(&self) -> &ZipLimits {
        &self.limits
    }

    /// Where the blob with this digest lives.
    pub fn path(&self, sha256_hex: &str) -> PathBuf {
        self.root.join(sha256_hex)
    }

    /// Validates a zip and stores it; nothing is written when validation fails.
    pub async fn put_zip(&self, zip: Bytes) -> ApiResult<StoredCode> {
        let limits = self.limits.clone();
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || -> ApiResult<StoredCode> {
            validate_zip(&zip, &limits)?;
            let digest = Sha256::digest(&zip);
            let stored = StoredCode {
                sha256_hex: hex::encode(digest),
                sha256_b64: base64::engine::general_purpose::STANDARD.encode(digest),
                size: zip.len() as i64,
            };
            write_blob(&root, &stored.sha256_hex, &zip)?;
            Ok(stored)
        })
        .await
        .context("join zip validation")?
    }

    /// Re-writes a blob that a concurrent clean-up removed after validation.
    pub async fn ensure(&self, sha256_hex: &str, zip: &Bytes) -> anyhow::Result<()> {
        if tokio::fs::try_exists(self.path(sha256_hex)).await.unwrap_or(false) {
            return Ok(());
        }
        let (root, name, zip) = (self.root.clone(), sha256_hex.to_owned(), zip.clone());
        tokio::task::spawn_blocking(move || write_blob(&root, &name, &zip)).await.context("join blob write")?
    }

    /// Reads a whole blob.
    pub async fn read(&self, sha256_hex: &str) -> std::io::Result<Vec<u8>> {
        match tokio::fs::read(self.path(sha256_hex)).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.unhide(sha256_hex) => {
                tokio::fs::read(self.path(sha256_hex)).await
            }
            other => other,
        }
    }

    /// The blob's path, taking it back first if a delete is deciding about it right now.
    pub async fn existing_path(&self, sha256_hex: &str) -> PathBuf {
        let path = self.path(sha256_hex);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            self.unhide(sha256_hex);
        }
        path
    }
}

fn write_blob(root: &Path, name: &str, data: &[u8]) -> anyhow::Result<()> {
    let target = root.join(name);
    if target.exists() {
        return Ok(());
    }
    let mut tmp = tempfile::NamedTempFile::new_in(root).context("create temp blob")?;
    std::io::Write::write_all(&mut tmp, data).context("write blob")?;
    tmp.persist(&target).context("persist blob")?;
    Ok(())
}

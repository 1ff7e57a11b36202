//! Buckets and objects on the filesystem, no database.
//!
//! ```text
//! <root>/tmp/                                  temp files (same filesystem, so renames are atomic); emptied at open
//! <root>/buckets/<name>/bucket.json            owner, creation time, versioning, notification rules, policy
//! <root>/buckets/<name>/objects/<sha256(key)>/key            the key
//! <root>/buckets/<name>/objects/<sha256(key)>/v/<version>.json  one record per version ("null" included)
//! <root>/buckets/<name>/objects/<sha256(key)>/d/<uuid>         data files the records name
//! <root>/buckets/<name>/uploads/<upload-id>/upload.json, part-<n>, part-<n>.json
//! ```
//! Data is written to a temp file, fsynced and renamed into place; the version record is written the
//! same way, and its rename is the moment the object becomes visible. A crash before that leaves at
//! most an unreferenced data file, never a partial object.

mod buckets;
mod list;
mod multipart;
mod objects;
mod versions;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

pub(crate) use buckets::{BucketMeta, Versioning};
pub(crate) use list::ListParams;
pub(crate) use multipart::CompletePart;
pub(crate) use objects::{Checksums, Committed, ObjectHeaders, TempData};
pub(crate) use versions::VersionRecord;

/// Why the store refused an operation; the service maps each to S3's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("The specified bucket does not exist")]
    NoSuchBucket,
    #[error("Access Denied")]
    AccessDenied,
    #[error("The specified key does not exist.")]
    NoSuchKey { delete_marker: Option<String> },
    #[error("The specified version does not exist.")]
    NoSuchVersion,
    #[error("The specified method is not allowed against this resource.")]
    MethodNotAllowed { delete_marker: String },
    #[error("Invalid version id specified")]
    InvalidVersionId,
    #[error(
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )]
    NoSuchUpload,
    #[error(
        "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
    )]
    BucketAlreadyExists,
    #[error("Your previous request to create the named bucket succeeded and you already own it.")]
    BucketAlreadyOwnedByYou,
    #[error("You have attempted to create more buckets than allowed")]
    TooManyBuckets,
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    #[error("{0}")]
    InvalidPart(String),
    #[error("The list of parts was not in ascending order. Parts must be ordered by part number.")]
    InvalidPartOrder,
    #[error("Your proposed upload is smaller than the minimum allowed object size.")]
    EntityTooSmall,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<std::io::Error> for StoreError {
    fn from(err: std::io::Error) -> Self {
        Self::Internal(err.into())
    }
}

pub(crate) type StoreResult<T> = Result<T, StoreError>;

/// A deployment package read ([`S3Store::read_object`]) failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("The specified bucket does not exist")]
    NoSuchBucket,
    #[error("The specified key does not exist.")]
    NoSuchKey,
    #[error("The specified version does not exist.")]
    NoSuchVersion,
    #[error("Access Denied")]
    AccessDenied,
    #[error("The object is {size} bytes, more than allowed")]
    TooLarge { size: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The S3 object store; cheap to clone.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    root: PathBuf,
    /// Serialises writers of one key (or one bucket's metadata) inside this process.
    locks: Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>,
    /// Serialises bucket creation and deletion, so the per-account count is exact in one process.
    bucket_lock: tokio::sync::Mutex<()>,
    last_seq: AtomicU64,
}

impl S3Store {
    /// Opens (creating if needed) the store under `root`, removing temp files an earlier crash left.
    pub fn open(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("remove stale temp dir {}", tmp.display()))?;
        }
        for dir in [&tmp, &root.join("buckets")] {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        Ok(Self {
            inner: Arc::new(StoreInner {
                root,
                locks: Mutex::new(HashMap::new()),
                bucket_lock: tokio::sync::Mutex::new(()),
                last_seq: AtomicU64::new(0),
            }),
        })
    }

    /// A deployment package read for CreateFunction/UpdateFunctionCode: the caller must own the bucket or
    /// be granted `s3:GetObject` (`s3:GetObjectVersion` with a version id) by its bucket policy.
    pub async fn read_object(
        &self,
        caller_account: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        max_bytes: u64,
    ) -> Result<Bytes, ReadError> {
        let meta = match self.bucket(bucket).await {
            Ok(meta) => meta,
            Err(StoreError::NoSuchBucket) => return Err(ReadError::NoSuchBucket),
            Err(e) => return Err(ReadError::Internal(anyhow::anyhow!("{e:#}"))),
        };
        let action = if version_id.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
        if !crate::s3::policy::permits(&meta, caller_account, action, &crate::s3::policy::arn(bucket, Some(key))) {
            return Err(ReadError::AccessDenied);
        }
        let record = match self.get_version(bucket, key, version_id).await {
            Ok(record) => record,
            Err(StoreError::NoSuchKey { .. } | StoreError::MethodNotAllowed { .. }) if version_id.is_none() => {
                return Err(ReadError::NoSuchKey);
            }
            Err(StoreError::NoSuchKey { .. } | StoreError::MethodNotAllowed { .. }) => {
                return Err(ReadError::NoSuchKey);
            }
            Err(StoreError::NoSuchVersion | StoreError::InvalidVersionId) => return Err(ReadError::NoSuchVersion),
            Err(e) => return Err(ReadError::Internal(anyhow::anyhow!("{e:#}"))),
        };
        if record.size > max_bytes {
            return Err(ReadError::TooLarge { size: record.size });
        }
        let path = self.data_path(bucket, key, &record).ok_or_else(|| ReadError::NoSuchKey)?;
        let data = tokio::fs::read(&path).await.with_context(|| format!("read {}", path.display()))?;
        Ok(Bytes::from(data))
    }

    /// Bytes an account stores: every version's data and every uploaded part, in its buckets.
    pub async fn usage_bytes(&self, account_id: &str) -> anyhow::Result<u64> {
        let mut total = 0;
        for meta in self.buckets_of(account_id).await.map_err(|e| anyhow::anyhow!("{e:#}"))? {
            total += self.bucket_bytes(&meta.name).await?;
        }
        Ok(total)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }

    fn buckets_dir(&self) -> PathBuf {
        self.inner.root.join("buckets")
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.buckets_dir().join(bucket)
    }

    fn object_dir(&self, bucket: &str, key: &str) -> PathBuf {
        self.bucket_dir(bucket).join("objects").join(hex::encode(Sha256::digest(key.as_bytes())))
    }

    /// A fresh temp path on the store's filesystem.
    fn temp_path(&self) -> PathBuf {
        self.tmp_dir().join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// A lock for `path` shared by everyone holding it now.
    async fn lock(&self, path: PathBuf) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.inner.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(&path).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(path, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// A sequence number larger than every earlier one of this process and (by the clock) of earlier runs.
    fn next_seq(&self) -> u64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let mut prev = self.inner.last_seq.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self.inner.last_seq.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(actual) => prev = actual,
            }
        }
    }

    /// Writes `data` to `target` atomically (temp file, fsync, rename).
    async fn write_atomic(&self, target: PathBuf, data: Vec<u8>) -> anyhow::Result<()> {
        let tmp = self.temp_path();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut file = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            file.write_all(&data).context("write temp file")?;
            file.sync_all().context("sync temp file")?;
            std::fs::rename(&tmp, &target).with_context(|| format!("rename into {}", target.display()))?;
            sync_parent(&target);
            Ok(())
        })
        .await
        .context("join atomic write")?
    }
}

/// Makes a rename durable; best effort, since some filesystems refuse to sync directories.
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Version ids this store hands out are 32 lowercase hex digits, or "null"; anything else cannot name a file.
pub(crate) fn valid_version_id(id: &str) -> bool {
    id == "null" || (id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

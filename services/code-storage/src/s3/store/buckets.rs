//! Buckets: atomic creation (a prepared directory renamed into place), metadata, emptiness, deletion.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{S3Store, StoreError, StoreResult, now_ms};
use crate::s3::notify::NotificationRule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Versioning {
    Enabled,
    Suspended,
}

/// `bucket.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BucketMeta {
    pub name: String,
    pub owner: String,
    pub created_ms: i64,
    #[serde(default)]
    pub versioning: Option<Versioning>,
    #[serde(default)]
    pub notifications: Vec<NotificationRule>,
    /// The bucket policy as PutBucketPolicy received it (validated), returned verbatim by GetBucketPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl S3Store {
    /// Creates a bucket; names are global, so a taken name fails whoever owns it.
    pub(crate) async fn create_bucket(&self, name: &str, owner: &str, max_per_account: usize) -> StoreResult<()> {
        let _guard = self.inner.bucket_lock.lock().await;
        if let Ok(meta) = self.bucket(name).await {
            return Err(if meta.owner == owner {
                StoreError::BucketAlreadyOwnedByYou
            } else {
                StoreError::BucketAlreadyExists
            });
        }
        if self.buckets_of(owner).await?.len() >= max_per_account {
            return Err(StoreError::TooManyBuckets);
        }
        let staging = self.temp_path();
        let meta = BucketMeta {
            name: name.to_owned(),
            owner: owner.to_owned(),
            created_ms: now_ms(),
            versioning: None,
            notifications: Vec::new(),
            policy: None,
        };
        let json = serde_json::to_vec_pretty(&meta).context("encode bucket.json")?;
        let target = self.bucket_dir(name);
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(staging.join("objects"))?;
            std::fs::create_dir_all(staging.join("uploads"))?;
            let mut file = std::fs::File::create(staging.join("bucket.json"))?;
            std::io::Write::write_all(&mut file, &json)?;
            file.sync_all()?;
            // rename(2) of a directory onto an existing non-empty one fails, so of two creators
            // (in this process or another sharing the volume) exactly one wins.
            let renamed = std::fs::rename(&staging, &target);
            if renamed.is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            } else {
                super::sync_parent(&target);
            }
            renamed
        })
        .await
        .context("join bucket creation")?;
        match result {
            Ok(()) => Ok(()),
            Err(_) if self.bucket_dir(name).join("bucket.json").exists() => {
                let meta = self.bucket(name).await?;
                Err(if meta.owner == owner {
                    StoreError::BucketAlreadyOwnedByYou
                } else {
                    StoreError::BucketAlreadyExists
                })
            }
            Err(e) => Err(anyhow::Error::new(e).context("create bucket directory").into()),
        }
    }

    /// The bucket's metadata.
    pub(crate) async fn bucket(&self, name: &str) -> StoreResult<BucketMeta> {
        if !valid_bucket_dir_name(name) {
            return Err(StoreError::NoSuchBucket);
        }
        let path = self.bucket_dir(name).join("bucket.json");
        match tokio::fs::read(&path).await {
            Ok(raw) => Ok(serde_json::from_slice(&raw).with_context(|| format!("parse {}", path.display()))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NoSuchBucket),
            Err(e) => Err(anyhow::Error::new(e).context(format!("read {}", path.display())).into()),
        }
    }

    /// The bucket's metadata, if `account` owns it; another account's bucket is AccessDenied.
    pub(crate) async fn owned_bucket(&self, name: &str, account: &str) -> StoreResult<BucketMeta> {
        let meta = self.bucket(name).await?;
        if meta.owner != account {
            return Err(StoreError::AccessDenied);
        }
        Ok(meta)
    }

    /// Changes `bucket.json` under the bucket's lock.
    pub(crate) async fn update_bucket(
        &self,
        name: &str,
        account: &str,
        change: impl FnOnce(&mut BucketMeta),
    ) -> StoreResult<BucketMeta> {
        let _guard = self.lock(self.bucket_dir(name)).await;
        let mut meta = self.owned_bucket(name, account).await?;
        change(&mut meta);
        let json = serde_json::to_vec_pretty(&meta).context("encode bucket.json")?;
        self.write_atomic(self.bucket_dir(name).join("bucket.json"), json).await?;
        Ok(meta)
    }

    /// Every bucket `owner` has, by name.
    pub(crate) async fn buckets_of(&self, owner: &str) -> StoreResult<Vec<BucketMeta>> {
        let mut out = Vec::new();
        let mut dir = tokio::fs::read_dir(self.buckets_dir()).await.context("list buckets")?;
        while let Some(entry) = dir.next_entry().await.context("list buckets")? {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            match self.bucket(&name).await {
                Ok(meta) if meta.owner == owner => out.push(meta),
                Ok(_) | Err(StoreError::NoSuchBucket) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes an empty bucket (no versions, delete markers or multipart uploads).
    pub(crate) async fn delete_bucket(&self, name: &str, account: &str) -> StoreResult<()> {
        let _guard = self.inner.bucket_lock.lock().await;
        let _meta_guard = self.lock(self.bucket_dir(name)).await;
        self.owned_bucket(name, account).await?;
        if !self.bucket_is_empty(name).await? {
            return Err(StoreError::BucketNotEmpty);
        }
        let doomed = self.temp_path();
        tokio::fs::rename(self.bucket_dir(name), &doomed).await.context("move bucket away")?;
        tokio::fs::remove_dir_all(&doomed).await.context("remove bucket directory")?;
        Ok(())
    }

    async fn bucket_is_empty(&self, name: &str) -> StoreResult<bool> {
        let dir = self.bucket_dir(name);
        if dir_has_entries(dir.join("uploads")).await? {
            return Ok(false);
        }
        let mut objects = tokio::fs::read_dir(dir.join("objects")).await.context("list objects")?;
        while let Some(entry) = objects.next_entry().await.context("list objects")? {
            if dir_has_entries(entry.path().join("v")).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Bytes of every version and part in a bucket.
    pub(crate) async fn bucket_bytes(&self, name: &str) -> anyhow::Result<u64> {
        let dir = self.bucket_dir(name);
        tokio::task::spawn_blocking(move || {
            let mut total = 0;
            let mut stack = vec![dir];
            while let Some(dir) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let Ok(kind) = entry.file_type() else { continue };
                    if kind.is_dir() {
                        stack.push(entry.path());
                    } else if !entry.file_name().to_string_lossy().ends_with(".json")
                        && entry.file_name() != "key"
                        && let Ok(meta) = entry.metadata()
                    {
                        total += meta.len();
                    }
                }
            }
            total
        })
        .await
        .context("join usage scan")
    }
}

async fn dir_has_entries(path: PathBuf) -> anyhow::Result<bool> {
    match tokio::fs::read_dir(&path).await {
        Ok(mut dir) => Ok(dir.next_entry().await.with_context(|| format!("read {}", path.display()))?.is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context(format!("read {}", path.display()))),
    }
}

/// s3s validates names on the wire; this keeps anything else (`..`, separators) off the filesystem.
fn valid_bucket_dir_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

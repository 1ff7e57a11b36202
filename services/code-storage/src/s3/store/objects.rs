//! Object writes and deletes: data to a temp file first, then the version record as the visibility point.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use s3s::crypto::Checksum as _;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

use super::versions::{VersionRecord, read_record, read_versions};
use super::{S3Store, StoreError, StoreResult, Versioning, now_ms, sync_parent, valid_version_id};

/// The standard headers an object keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ObjectHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// RFC 7231 date, as given.
    pub expires: Option<String>,
    pub website_redirect_location: Option<String>,
}

/// Base64 checksums, as S3 reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checksums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub crc64nvme: Option<String>,
}

impl From<s3s::dto::Checksum> for Checksums {
    fn from(c: s3s::dto::Checksum) -> Self {
        Self {
            crc32: c.checksum_crc32,
            crc32c: c.checksum_crc32c,
            sha1: c.checksum_sha1,
            sha256: c.checksum_sha256,
            crc64nvme: c.checksum_crc64nvme,
        }
    }
}

/// Bytes received and synced to a temp file, not yet part of any object.
#[derive(Debug)]
pub(crate) struct TempData {
    pub path: PathBuf,
    pub size: u64,
    /// Raw MD5 of the bytes.
    pub md5: [u8; 16],
    pub checksums: Checksums,
}

impl TempData {
    pub fn md5_hex(&self) -> String {
        hex::encode(self.md5)
    }

    /// Removes the file; for writes that were refused after the bytes arrived.
    pub async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

/// What a committed write or delete produced.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    pub record: VersionRecord,
    /// The bucket was versioned (Enabled or Suspended) at commit: report version ids.
    pub versioned: bool,
}

impl S3Store {
    /// Receives a body into a temp file, hashing as it goes.
    pub(crate) async fn receive<S, E>(
        &self,
        mut body: S,
        mut hasher: s3s::checksum::ChecksumHasher,
    ) -> StoreResult<TempData>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self.temp_path();
        let mut file = tokio::fs::File::create(&path).await.context("create temp data file")?;
        let mut md5 = s3s::crypto::Md5::default();
        let mut size = 0u64;
        let outcome: StoreResult<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| anyhow::anyhow!("read request body: {e}"))?;
                md5.update(&chunk);
                hasher.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await.context("write temp data file")?;
            }
            file.flush().await.context("flush temp data file")?;
            file.sync_all().await.context("sync temp data file")?;
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        let digest = md5.finalize();
        let mut raw = [0u8; 16];
        raw.copy_from_slice(digest.as_ref());
        Ok(TempData { path, size, md5: raw, checksums: hasher.finalize().into() })
    }

    /// Makes `data` the newest version of `key`. `record` carries everything but the version id,
    /// sequence and data file name, which are filled in here.
    pub(crate) async fn commit(
        &self,
        bucket: &str,
        data: TempData,
        mut record: VersionRecord,
    ) -> StoreResult<Committed> {
        let dir = self.object_dir(bucket, &record.key);
        let _guard = self.lock(dir.clone()).await;
        let meta = match self.bucket(bucket).await {
            Ok(meta) => meta,
            Err(e) => {
                data.discard().await;
                return Err(e);
            }
        };
        let outcome = async {
            prepare_object_dir(self, &dir, &record.key).await?;
            let data_name = uuid::Uuid::new_v4().simple().to_string();
            let data_path = dir.join("d").join(&data_name);
            tokio::fs::rename(&data.path, &data_path).await.context("move data into place")?;
            record.data = Some(data_name);
            record.version_id = match meta.versioning {
                Some(Versioning::Enabled) => uuid::Uuid::new_v4().simple().to_string(),
                _ => "null".to_owned(),
            };
            record.seq = self.next_seq();
            self.put_record(&dir, &record).await?;
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = outcome {
            let _ = tokio::fs::remove_file(&data.path).await;
            return Err(e);
        }
        Ok(Committed { record, versioned: meta.versioning.is_some() })
    }

    /// DeleteObject: removes a version (`version_id` given), the null version (unversioned bucket), or
    /// adds a delete marker (versioning Enabled or Suspended). Ok(None) when there was nothing to delete.
    pub(crate) async fn delete(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> StoreResult<Option<Committed>> {
        let dir = self.object_dir(bucket, key);
        let _guard = self.lock(dir.clone()).await;
        let meta = self.bucket(bucket).await?;
        let versioned = meta.versioning.is_some();
        if let Some(id) = version_id {
            if !valid_version_id(id) {
                return Err(StoreError::InvalidVersionId);
            }
            let Some(old) = read_record(&dir.join("v").join(format!("{id}.json"))).await? else {
                return Ok(None);
            };
            self.remove_version(&dir, &old).await?;
            return Ok(Some(Committed { record: old, versioned }));
        }
        match meta.versioning {
            None => {
                let Some(old) = read_record(&dir.join("v").join("null.json")).await? else { return Ok(None) };
                self.remove_version(&dir, &old).await?;
                Ok(Some(Committed { record: old, versioned }))
            }
            Some(mode) => {
                prepare_object_dir(self, &dir, key).await?;
                let marker = VersionRecord {
                    key: key.to_owned(),
                    version_id: match mode {
                        Versioning::Enabled => uuid::Uuid::new_v4().simple().to_string(),
                        Versioning::Suspended => "null".to_owned(),
                    },
                    seq: self.next_seq(),
                    delete_marker: true,
                    last_modified_ms: now_ms(),
                    size: 0,
                    etag: String::new(),
                    data: None,
                    headers: ObjectHeaders::default(),
                    metadata: BTreeMap::new(),
                    checksums: Checksums::default(),
                    parts: None,
                };
                self.put_record(&dir, &marker).await?;
                Ok(Some(Committed { record: marker, versioned }))
            }
        }
    }

    /// Writes a record (replacing one with the same version id, whose data file then goes).
    async fn put_record(&self, dir: &Path, record: &VersionRecord) -> StoreResult<()> {
        let path = dir.join("v").join(format!("{}.json", record.version_id));
        let replaced = read_record(&path).await?;
        let json = serde_json::to_vec(record).context("encode version record")?;
        self.write_atomic(path, json).await?;
        if let Some(old) = replaced
            && let Some(name) = old.data
            && Some(&name) != record.data.as_ref()
        {
            let _ = tokio::fs::remove_file(dir.join("d").join(name)).await;
        }
        Ok(())
    }

    async fn remove_version(&self, dir: &Path, record: &VersionRecord) -> StoreResult<()> {
        let path = dir.join("v").join(format!("{}.json", record.version_id));
        match tokio::fs::remove_file(&path).await {
            Ok(()) => sync_parent(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::new(e).context("remove version record").into()),
        }
        if let Some(name) = &record.data {
            let _ = tokio::fs::remove_file(dir.join("d").join(name)).await;
        }
        if read_versions(dir).await?.is_empty() {
            // Best effort: a leftover empty object directory is invisible and counts as empty.
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
        Ok(())
    }
}

async fn prepare_object_dir(store: &S3Store, dir: &Path, key: &str) -> StoreResult<()> {
    tokio::fs::create_dir_all(dir.join("v")).await.context("create object dir")?;
    tokio::fs::create_dir_all(dir.join("d")).await.context("create object data dir")?;
    if !tokio::fs::try_exists(dir.join("key")).await.unwrap_or(false) {
        store.write_atomic(dir.join("key"), key.as_bytes().to_vec()).await?;
    }
    Ok(())
}

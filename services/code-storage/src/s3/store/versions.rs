//! Version records: one JSON file per version of a key; the latest is the highest sequence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::objects::{Checksums, ObjectHeaders};
use super::{S3Store, StoreError, StoreResult, valid_version_id};

/// `v/<version_id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VersionRecord {
    pub key: String,
    /// "null" in unversioned and suspended buckets.
    pub version_id: String,
    /// Orders the versions of a key (and the event sequencer).
    pub seq: u64,
    #[serde(default)]
    pub delete_marker: bool,
    pub last_modified_ms: i64,
    pub size: u64,
    /// Hex, without quotes; `<md5 of part md5s>-<n>` for multipart objects.
    pub etag: String,
    /// The data file under `d/`; None for delete markers.
    pub data: Option<String>,
    #[serde(default)]
    pub headers: ObjectHeaders,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub checksums: Checksums,
    #[serde(default)]
    pub parts: Option<u32>,
}

impl S3Store {
    /// The latest version (`version_id` None) or the named one.
    pub(crate) async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> StoreResult<VersionRecord> {
        let dir = self.object_dir(bucket, key);
        match version_id {
            None => {
                let latest = read_versions(&dir).await?.into_iter().next();
                match latest {
                    None => Err(StoreError::NoSuchKey { delete_marker: None }),
                    Some(v) if v.delete_marker => Err(StoreError::NoSuchKey { delete_marker: Some(v.version_id) }),
                    Some(v) => Ok(v),
                }
            }
            Some(id) => {
                if !valid_version_id(id) {
                    return Err(StoreError::InvalidVersionId);
                }
                match read_record(&dir.join("v").join(format!("{id}.json"))).await? {
                    None => Err(StoreError::NoSuchVersion),
                    Some(v) if v.delete_marker => Err(StoreError::MethodNotAllowed { delete_marker: v.version_id }),
                    Some(v) => Ok(v),
                }
            }
        }
    }

    /// Where a version's bytes are.
    pub(crate) fn data_path(&self, bucket: &str, key: &str, record: &VersionRecord) -> Option<PathBuf> {
        record.data.as_ref().map(|name| self.object_dir(bucket, key).join("d").join(name))
    }
}

/// The records in `<object dir>/v`, newest first.
pub(super) async fn read_versions(object_dir: &Path) -> StoreResult<Vec<VersionRecord>> {
    let dir = object_dir.join("v");
    let mut entries = match tokio::fs::read_dir(&dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("list {}", dir.display())).into()),
    };
    let mut out = Vec::new();
    while let Some(entry) = entries.next_entry().await.with_context(|| format!("list {}", dir.display()))? {
        if entry.file_name().to_string_lossy().ends_with(".json")
            && let Some(record) = read_record(&entry.path()).await?
        {
            out.push(record);
        }
    }
    out.sort_by_key(|v| std::cmp::Reverse(v.seq));
    Ok(out)
}

/// A record, or None if it is not there (a concurrent delete counts as not there).
pub(super) async fn read_record(path: &Path) -> StoreResult<Option<VersionRecord>> {
    match tokio::fs::read(path).await {
        Ok(raw) => Ok(Some(serde_json::from_slice(&raw).with_context(|| format!("parse {}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("read {}", path.display())).into()),
    }
}

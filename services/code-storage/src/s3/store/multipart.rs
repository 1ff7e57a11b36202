//! Multipart uploads: parts under `uploads/<upload-id>/`, concatenated into a new data file on complete.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use s3s::crypto::Checksum as _;
use serde::{Deserialize, Serialize};

use super::objects::{Checksums, ObjectHeaders, TempData};
use super::{S3Store, StoreError, StoreResult, now_ms};

/// S3's minimum size for every part but the last.
pub(crate) const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// `upload.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UploadRecord {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: i64,
    #[serde(default)]
    pub headers: ObjectHeaders,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// `part-<n>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartRecord {
    pub part_number: i32,
    /// Hex MD5 of the part, without quotes.
    pub etag: String,
    pub size: u64,
    pub last_modified_ms: i64,
    #[serde(default)]
    pub checksums: Checksums,
}

/// A part as CompleteMultipartUpload names it.
#[derive(Debug, Clone)]
pub(crate) struct CompletePart {
    pub part_number: i32,
    pub etag: String,
}

impl S3Store {
    fn upload_dir(&self, bucket: &str, upload_id: &str) -> PathBuf {
        self.bucket_dir(bucket).join("uploads").join(upload_id)
    }

    pub(crate) async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        headers: ObjectHeaders,
        metadata: BTreeMap<String, String>,
    ) -> StoreResult<UploadRecord> {
        let record = UploadRecord {
            upload_id: uuid::Uuid::new_v4().simple().to_string(),
            key: key.to_owned(),
            initiated_ms: now_ms(),
            headers,
            metadata,
        };
        let dir = self.upload_dir(bucket, &record.upload_id);
        tokio::fs::create_dir_all(&dir).await.context("create upload dir")?;
        let json = serde_json::to_vec(&record).context("encode upload record")?;
        self.write_atomic(dir.join("upload.json"), json).await?;
        Ok(record)
    }

    /// The upload, if it exists for this key.
    pub(crate) async fn upload(&self, bucket: &str, upload_id: &str, key: &str) -> StoreResult<UploadRecord> {
        if upload_id.len() != 32 || !upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NoSuchUpload);
        }
        let path = self.upload_dir(bucket, upload_id).join("upload.json");
        let record: UploadRecord = match tokio::fs::read(&path).await {
            Ok(raw) => serde_json::from_slice(&raw).context("parse upload record")?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NoSuchUpload),
            Err(e) => return Err(anyhow::Error::new(e).context("read upload record").into()),
        };
        if record.key != key {
            return Err(StoreError::NoSuchUpload);
        }
        Ok(record)
    }

    /// Stores a part (replacing an earlier upload of the same number).
    pub(crate) async fn put_part(
        &self,
        bucket: &str,
        upload: &UploadRecord,
        part_number: i32,
        data: TempData,
    ) -> StoreResult<PartRecord> {
        let dir = self.upload_dir(bucket, &upload.upload_id);
        let _guard = self.lock(dir.clone()).await;
        if !tokio::fs::try_exists(dir.join("upload.json")).await.unwrap_or(false) {
            data.discard().await;
            return Err(StoreError::NoSuchUpload);
        }
        let part = PartRecord {
            part_number,
            etag: data.md5_hex(),
            size: data.size,
            last_modified_ms: now_ms(),
            checksums: data.checksums.clone(),
        };
        if let Err(e) = tokio::fs::rename(&data.path, dir.join(format!("part-{part_number}"))).await {
            data.discard().await;
            return Err(anyhow::Error::new(e).context("move part into place").into());
        }
        let json = serde_json::to_vec(&part).context("encode part record")?;
        self.write_atomic(dir.join(format!("part-{part_number}.json")), json).await?;
        Ok(part)
    }

    /// The upload's parts by number.
    pub(crate) async fn parts(&self, bucket: &str, upload_id: &str) -> StoreResult<Vec<PartRecord>> {
        let dir = self.upload_dir(bucket, upload_id);
        let mut entries = tokio::fs::read_dir(&dir).await.context("list parts")?;
        let mut parts = Vec::new();
        while let Some(entry) = entries.next_entry().await.context("list parts")? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("part-") && name.ends_with(".json") {
                let raw = tokio::fs::read(entry.path()).await.context("read part record")?;
                parts.push(serde_json::from_slice::<PartRecord>(&raw).context("parse part record")?);
            }
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    /// Checks the part list against the stored parts and concatenates them into a temp file.
    /// Returns the data and the multipart ETag (`<md5 of the part md5s>-<n>`); the upload stays until
    /// [`S3Store::remove_upload`], so a failed complete can be retried or aborted as in S3.
    pub(crate) async fn assemble(
        &self,
        bucket: &str,
        upload: &UploadRecord,
        wanted: &[CompletePart],
    ) -> StoreResult<(TempData, String)> {
        let dir = self.upload_dir(bucket, &upload.upload_id);
        if wanted.is_empty() {
            return Err(StoreError::InvalidPart("You must specify at least one part".to_owned()));
        }
        if wanted.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
            return Err(StoreError::InvalidPartOrder);
        }
        let stored: BTreeMap<i32, PartRecord> =
            self.parts(bucket, &upload.upload_id).await?.into_iter().map(|p| (p.part_number, p)).collect();
        let mut chosen = Vec::with_capacity(wanted.len());
        for want in wanted {
            let Some(part) = stored.get(&want.part_number) else {
                return Err(invalid_part());
            };
            if want.etag.trim_matches('"') != part.etag {
                return Err(invalid_part());
            }
            chosen.push(part.clone());
        }
        // As S3: every part must exist before sizes are judged.
        if chosen.iter().rev().skip(1).any(|p| p.size < MIN_PART_SIZE) {
            return Err(StoreError::EntityTooSmall);
        }
        let target = self.temp_path();
        let (dir2, target2) = (dir.clone(), target.clone());
        let joined = tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, [u8; 16], String)> {
            let mut out = std::fs::File::create(&target2).context("create assembled file")?;
            let mut whole_md5 = s3s::crypto::Md5::default();
            let mut etag_md5 = s3s::crypto::Md5::default();
            let mut size = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            for part in &chosen {
                let mut file =
                    std::fs::File::open(dir2.join(format!("part-{}", part.part_number))).context("open part data")?;
                loop {
                    let n = file.read(&mut buf).context("read part data")?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(&buf[..n]).context("write assembled file")?;
                    whole_md5.update(&buf[..n]);
                    size += n as u64;
                }
                etag_md5.update(&hex::decode(&part.etag).context("decode part etag")?);
            }
            out.sync_all().context("sync assembled file")?;
            let mut raw = [0u8; 16];
            raw.copy_from_slice(whole_md5.finalize().as_ref());
            Ok((size, raw, format!("{}-{}", hex::encode(etag_md5.finalize()), chosen.len())))
        })
        .await
        .context("join part assembly")?;
        match joined {
            Ok((size, md5, etag)) => Ok((TempData { path: target, size, md5, checksums: Checksums::default() }, etag)),
            Err(e) => {
                let _ = tokio::fs::remove_file(&target).await;
                Err(e.into())
            }
        }
    }

    /// AbortMultipartUpload, and the clean-up after a complete.
    pub(crate) async fn remove_upload(&self, bucket: &str, upload_id: &str) -> StoreResult<()> {
        let dir = self.upload_dir(bucket, upload_id);
        let _guard = self.lock(dir.clone()).await;
        let doomed = self.temp_path();
        match tokio::fs::rename(&dir, &doomed).await {
            Ok(()) => {
                tokio::fs::remove_dir_all(&doomed).await.context("remove upload dir")?;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NoSuchUpload),
            Err(e) => Err(anyhow::Error::new(e).context("move upload dir away").into()),
        }
    }

    /// In-progress uploads, by key then initiation time.
    pub(crate) async fn list_uploads(&self, bucket: &str, prefix: &str) -> StoreResult<Vec<UploadRecord>> {
        let dir = self.bucket_dir(bucket).join("uploads");
        let mut entries = tokio::fs::read_dir(&dir).await.context("list uploads")?;
        let mut out = Vec::new();
        while let Some(entry) = entries.next_entry().await.context("list uploads")? {
            let Ok(raw) = tokio::fs::read(entry.path().join("upload.json")).await else { continue };
            let Ok(record) = serde_json::from_slice::<UploadRecord>(&raw) else { continue };
            if record.key.starts_with(prefix) {
                out.push(record);
            }
        }
        out.sort_by(|a, b| (&a.key, a.initiated_ms).cmp(&(&b.key, b.initiated_ms)));
        Ok(out)
    }
}

fn invalid_part() -> StoreError {
    StoreError::InvalidPart(
        "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not have matched the part's entity tag.".to_owned(),
    )
}

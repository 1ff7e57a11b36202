//! Reads: GetObject (ranges, conditions, versions), HeadObject, package downloads, copy sources.

use std::io::SeekFrom;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::io::ReaderStream;

use super::super::{Handler, internal, timestamp, to_s3};
use super::{checksum_hasher, condition_matches, parse_http_date, read_action, to_hash};
use crate::s3::store::{Checksums, StoreError, TempData, VersionRecord};

/// A version and its open data file.
struct Opened {
    record: VersionRecord,
    file: tokio::fs::File,
    versioned: bool,
}

impl Handler {
    pub(in crate::s3::service) async fn get_object_op(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        if let Some(digest) = self.code_download_key(&req, &req.input.key) {
            return self.code_download(&digest?, req.input.range).await;
        }
        let who = self.who(&req)?;
        let input = req.input;
        let action = read_action(input.version_id.as_deref());
        self.authorized(&input.bucket, &who, action, Some(&input.key)).await?;
        let Opened { record, mut file, versioned } =
            self.open(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        check_read_conditions(
            &record,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let (start, len, content_range) = match &input.range {
            None => (0, record.size, None),
            Some(range) => {
                let r = range.check(record.size)?;
                let range_header = format!("bytes {}-{}/{}", r.start, r.end - 1, record.size);
                (r.start, r.end - r.start, Some(range_header))
            }
        };
        file.seek(SeekFrom::Start(start)).await.map_err(|e| internal(&e.into()))?;
        let body = StreamingBlob::wrap(ReaderStream::with_capacity(file.take(len), 64 * 1024));
        let whole = content_range.is_none();
        let h = record.headers;
        let checksums = if whole { record.checksums } else { Checksums::default() };
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body),
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(len as i64),
            content_range,
            e_tag: Some(ETag::Strong(record.etag)),
            last_modified: Some(timestamp(record.last_modified_ms)),
            version_id: versioned.then_some(record.version_id),
            metadata: to_hash(&record.metadata),
            content_type: input.response_content_type.or(h.content_type),
            content_encoding: input.response_content_encoding.or(h.content_encoding),
            content_disposition: input.response_content_disposition.or(h.content_disposition),
            content_language: input.response_content_language.or(h.content_language),
            cache_control: input.response_cache_control.or(h.cache_control),
            expires: input.response_expires.or_else(|| h.expires.as_deref().and_then(parse_http_date)),
            website_redirect_location: h.website_redirect_location,
            parts_count: record.parts.map(|p| p as i32),
            checksum_crc32: checksums.crc32,
            checksum_crc32c: checksums.crc32c,
            checksum_sha1: checksums.sha1,
            checksum_sha256: checksums.sha256,
            checksum_crc64nvme: checksums.crc64nvme,
            ..Default::default()
        }))
    }

    pub(in crate::s3::service) async fn head_object_op(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        if let Some(digest) = self.code_download_key(&req, &req.input.key) {
            let path = self.api.inner.code.existing_path(&digest?).await;
            let meta = tokio::fs::metadata(&path)
                .await
                .map_err(|_| s3_error!(NoSuchKey, "The specified key does not exist."))?;
            return Ok(S3Response::new(HeadObjectOutput {
                content_length: Some(meta.len() as i64),
                content_type: Some("application/zip".to_owned()),
                ..Default::default()
            }));
        }
        let who = self.who(&req)?;
        let input = req.input;
        let action = read_action(input.version_id.as_deref());
        self.authorized(&input.bucket, &who, action, Some(&input.key)).await?;
        let (record, versioned) =
            self.latest_or_version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        check_read_conditions(
            &record,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let (len, content_range) = match &input.range {
            None => (record.size, None),
            Some(range) => {
                let r = range.check(record.size)?;
                (r.end - r.start, Some(format!("bytes {}-{}/{}", r.start, r.end - 1, record.size)))
            }
        };
        let h = record.headers;
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(len as i64),
            content_range,
            e_tag: Some(ETag::Strong(record.etag)),
            last_modified: Some(timestamp(record.last_modified_ms)),
            version_id: versioned.then_some(record.version_id),
            metadata: to_hash(&record.metadata),
            content_type: h.content_type,
            content_encoding: h.content_encoding,
            content_disposition: h.content_disposition,
            content_language: h.content_language,
            cache_control: h.cache_control,
            expires: h.expires.as_deref().and_then(parse_http_date),
            website_redirect_location: h.website_redirect_location,
            parts_count: record.parts.map(|p| p as i32),
            checksum_crc32: record.checksums.crc32,
            checksum_crc32c: record.checksums.crc32c,
            checksum_sha1: record.checksums.sha1,
            checksum_sha256: record.checksums.sha256,
            checksum_crc64nvme: record.checksums.crc64nvme,
            ..Default::default()
        }))
    }

    async fn latest_or_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<(VersionRecord, bool)> {
        let store = &self.api.inner.store;
        let versioned = store.bucket(bucket).await.map_err(to_s3)?.versioning.is_some();
        let record = store.get_version(bucket, key, version_id).await.map_err(to_s3)?;
        Ok((record, versioned))
    }

    /// Opens a version's data; a concurrent overwrite of the "null" version may remove the file
    /// between reading the record and opening it, so look again a few times.
    async fn open(&self, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<Opened> {
        let store = &self.api.inner.store;
        for _ in 0..5 {
            let (record, versioned) = self.latest_or_version(bucket, key, version_id).await?;
            let Some(path) = store.data_path(bucket, key, &record) else {
                return Err(to_s3(StoreError::NoSuchKey { delete_marker: None }));
            };
            match tokio::fs::File::open(&path).await {
                Ok(file) => return Ok(Opened { record, file, versioned }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(internal(&e.into())),
            }
        }
        Err(internal(&anyhow::anyhow!("object data kept disappearing: {bucket}/{key}")))
    }

    /// The source's bytes into a temp file (with its MD5), for CopyObject.
    pub(in crate::s3::service) async fn copy_data(&self, bucket: &str, source: &VersionRecord) -> S3Result<TempData> {
        let Opened { file, .. } = self.open(bucket, &source.key, Some(&source.version_id)).await?;
        let stream = ReaderStream::with_capacity(file, 256 * 1024);
        let algorithm = None;
        let hasher = checksum_hasher(&source.checksums, algorithm, &[])?;
        self.api.inner.store.receive(stream, hasher).await.map_err(to_s3)
    }

    async fn code_download(&self, digest: &str, range: Option<Range>) -> S3Result<S3Response<GetObjectOutput>> {
        let path = self.api.inner.code.existing_path(digest).await;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| s3_error!(NoSuchKey, "The specified key does not exist."))?;
        let size = file.metadata().await.map_err(|e| internal(&e.into()))?.len();
        let (start, len, content_range) = match range {
            None => (0, size, None),
            Some(range) => {
                let r = range.check(size)?;
                (r.start, r.end - r.start, Some(format!("bytes {}-{}/{}", r.start, r.end - 1, size)))
            }
        };
        file.seek(SeekFrom::Start(start)).await.map_err(|e| internal(&e.into()))?;
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(ReaderStream::with_capacity(file.take(len), 64 * 1024))),
            content_length: Some(len as i64),
            content_range,
            content_type: Some("application/zip".to_owned()),
            // Packages are addressed by SHA-256; its first 128 bits stand in for S3's MD5 ETag.
            e_tag: Some(ETag::Strong(digest[..32].to_owned())),
            ..Default::default()
        }))
    }
}

fn check_read_conditions(
    record: &VersionRecord,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = timestamp(record.last_modified_ms);
    let modified_s = time_secs(&modified);
    if let Some(cond) = if_match {
        if !condition_matches(cond, &record.etag) {
            return Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
        }
    } else if let Some(since) = if_unmodified_since
        && modified_s > time_secs(since)
    {
        return Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
    }
    if let Some(cond) = if_none_match {
        if condition_matches(cond, &record.etag) {
            return Err(s3_error!(NotModified));
        }
    } else if let Some(since) = if_modified_since
        && modified_s <= time_secs(since)
    {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

/// Whole seconds, as HTTP dates compare.
fn time_secs(ts: &Timestamp) -> i64 {
    let mut out = Vec::new();
    if ts.format(TimestampFormat::EpochSeconds, &mut out).is_err() {
        return 0;
    }
    String::from_utf8_lossy(&out).split('.').next().and_then(|s| s.parse().ok()).unwrap_or(0)
}

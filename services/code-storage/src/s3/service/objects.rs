//! Object operations: put, get, head, delete (one and many), copy; and package downloads.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::{Handler, Who, internal, timestamp, to_s3};
use crate::s3::auth::Principal;
use crate::s3::policy;
use crate::s3::store::{Checksums, ObjectHeaders, StoreError, TempData, VersionRecord, now_ms};

mod read;
mod write;

pub(super) use write::checksum_hasher;

impl Handler {
    pub(super) async fn put_object_op(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let who = self.who(&req)?;
        // s3s hands browser-form POST uploads to put_object with the method intact.
        let event = if req.method == http::Method::POST { "ObjectCreated:Post" } else { "ObjectCreated:Put" };
        let trailer_names = trailer_names(&req.headers);
        let trailing = req.trailing_headers.clone();
        let input = req.input;
        let meta = self.authorized(&input.bucket, &who, "s3:PutObject", Some(&input.key)).await?;
        let declared = Checksums {
            crc32: input.checksum_crc32.clone(),
            crc32c: input.checksum_crc32c.clone(),
            sha1: input.checksum_sha1.clone(),
            sha256: input.checksum_sha256.clone(),
            crc64nvme: input.checksum_crc64nvme.clone(),
        };
        let hasher = checksum_hasher(&declared, input.checksum_algorithm.as_ref(), &trailer_names)?;
        let data = self.receive(input.body, hasher).await?;
        let data = match verify_upload(data, input.content_md5.as_deref(), declared, trailing).await {
            Ok(data) => data,
            Err(e) => return Err(e),
        };
        if let Err(e) = self.check_conditions(&input.bucket, &input.key, input.if_match, input.if_none_match).await {
            data.discard().await;
            return Err(e);
        }
        let record = VersionRecord {
            key: input.key.clone(),
            version_id: String::new(),
            seq: 0,
            delete_marker: false,
            last_modified_ms: now_ms(),
            size: data.size,
            etag: data.md5_hex(),
            data: None,
            headers: ObjectHeaders {
                content_type: input.content_type,
                content_encoding: input.content_encoding,
                content_disposition: input.content_disposition,
                content_language: input.content_language,
                cache_control: input.cache_control,
                expires: input.expires.as_ref().and_then(http_date),
                website_redirect_location: input.website_redirect_location,
            },
            metadata: to_btree(input.metadata),
            checksums: data.checksums.clone(),
            parts: None,
        };
        let committed = self.commit_checked(&meta.owner, &input.bucket, data, record).await?;
        let rec = &committed.record;
        self.notify(&input.bucket, event, rec, committed.versioned, &who.account_id).await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(rec.etag.clone())),
            version_id: committed.versioned.then(|| rec.version_id.clone()),
            checksum_crc32: rec.checksums.crc32.clone(),
            checksum_crc32c: rec.checksums.crc32c.clone(),
            checksum_sha1: rec.checksums.sha1.clone(),
            checksum_sha256: rec.checksums.sha256.clone(),
            checksum_crc64nvme: rec.checksums.crc64nvme.clone(),
            ..Default::default()
        }))
    }

    /// Quota check, then commit; the temp data goes away on refusal. The bucket owner pays for the
    /// bytes, also when another account writes them (the object belongs to the bucket).
    pub(super) async fn commit_checked(
        &self,
        payer: &str,
        bucket: &str,
        data: TempData,
        record: VersionRecord,
    ) -> S3Result<crate::s3::store::Committed> {
        if let Some(quota) = &self.api.inner.quota {
            match quota.check(payer, data.size).await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    data.discard().await;
                    let mut e = S3Error::with_message(S3ErrorCode::Custom("QuotaExceeded".into()), reason);
                    e.set_status_code(http::StatusCode::FORBIDDEN);
                    return Err(e);
                }
                Err(err) => {
                    data.discard().await;
                    return Err(internal(&err));
                }
            }
        }
        self.api.inner.store.commit(bucket, data, record).await.map_err(to_s3)
    }

    pub(super) async fn receive(
        &self,
        body: Option<StreamingBlob>,
        hasher: s3s::checksum::ChecksumHasher,
    ) -> S3Result<TempData> {
        let store = &self.api.inner.store;
        let result = match body {
            Some(body) => store.receive(body, hasher).await,
            None => store.receive(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>(), hasher).await,
        };
        result.map_err(|e| match e {
            StoreError::Internal(err) if format!("{err:#}").contains("read request body") => {
                S3Error::with_message(S3ErrorCode::IncompleteBody, format!("{err:#}"))
            }
            other => to_s3(other),
        })
    }

    /// If-Match / If-None-Match on writes, against the current latest version.
    async fn check_conditions(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<ETagCondition>,
        if_none_match: Option<ETagCondition>,
    ) -> S3Result<()> {
        if if_match.is_none() && if_none_match.is_none() {
            return Ok(());
        }
        let current = match self.api.inner.store.get_version(bucket, key, None).await {
            Ok(r) => Some(r),
            Err(StoreError::NoSuchKey { .. }) => None,
            Err(e) => return Err(to_s3(e)),
        };
        if let Some(cond) = if_none_match
            && current.as_ref().is_some_and(|c| condition_matches(&cond, &c.etag))
        {
            return Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
        }
        if let Some(cond) = if_match {
            match &current {
                None => return Err(s3_error!(NoSuchKey, "The specified key does not exist.")),
                Some(c) if !condition_matches(&cond, &c.etag) => {
                    return Err(s3_error!(
                        PreconditionFailed,
                        "At least one of the pre-conditions you specified did not hold"
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub(super) async fn delete_object_op(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let action = delete_action(input.version_id.as_deref());
        self.authorized(&input.bucket, &who, action, Some(&input.key)).await?;
        let out = self.delete_one(&who, &input.bucket, &input.key, input.version_id.as_deref()).await?;
        Ok(S3Response::with_status(
            DeleteObjectOutput {
                delete_marker: out.delete_marker.then_some(true),
                version_id: out.version_id,
                ..Default::default()
            },
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn delete_objects_op(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        if self.is_code_bucket(&input.bucket) {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        // Permission is per key (S3 answers AccessDenied for each refused key, not for the request).
        let meta = self.api.inner.store.bucket(&input.bucket).await.map_err(to_s3)?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for object in input.delete.objects {
            let resource = policy::arn(&input.bucket, Some(&object.key));
            let allowed =
                policy::permits(&meta, &who.account_id, delete_action(object.version_id.as_deref()), &resource);
            let result = if allowed {
                self.delete_one(&who, &input.bucket, &object.key, object.version_id.as_deref()).await
            } else {
                Err(s3_error!(AccessDenied, "Access Denied"))
            };
            match result {
                Ok(out) => {
                    if !quiet {
                        let marker_id = out.delete_marker.then(|| out.version_id.clone()).flatten();
                        deleted.push(DeletedObject {
                            key: Some(object.key),
                            version_id: object.version_id,
                            delete_marker: out.delete_marker.then_some(true),
                            delete_marker_version_id: marker_id,
                        });
                    }
                }
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    message: e.message().map(str::to_owned),
                    key: Some(object.key),
                    version_id: object.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn delete_one(&self, who: &Who, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<Deleted> {
        let Some(committed) = self.api.inner.store.delete(bucket, key, version_id).await.map_err(to_s3)? else {
            return Ok(Deleted { delete_marker: false, version_id: version_id.map(str::to_owned) });
        };
        let rec = &committed.record;
        let created_marker = version_id.is_none() && rec.delete_marker;
        let event = if created_marker { "ObjectRemoved:DeleteMarkerCreated" } else { "ObjectRemoved:Delete" };
        self.notify(bucket, event, rec, committed.versioned, &who.account_id).await?;
        Ok(Deleted {
            delete_marker: rec.delete_marker,
            version_id: committed.versioned.then(|| rec.version_id.clone()),
        })
    }

    pub(super) async fn copy_object_op(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let CopySource::Bucket { bucket: src_bucket, key: src_key, version_id: src_version } = &input.copy_source
        else {
            return Err(s3_error!(NotImplemented, "Only bucket copy sources are supported"));
        };
        let meta = self.authorized(&input.bucket, &who, "s3:PutObject", Some(&input.key)).await?;
        let src_meta = self.authorized(src_bucket, &who, read_action(src_version.as_deref()), Some(src_key)).await?;
        let source =
            self.api.inner.store.get_version(src_bucket, src_key, src_version.as_deref()).await.map_err(to_s3)?;
        if let Some(cond) = &input.copy_source_if_match
            && !condition_matches(cond, &source.etag)
        {
            return Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
        }
        if let Some(cond) = &input.copy_source_if_none_match
            && condition_matches(cond, &source.etag)
        {
            return Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
        }
        let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && **src_bucket == *input.bucket && **src_key == *input.key && src_meta.versioning.is_none() {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let data = self.copy_data(src_bucket, &source).await?;
        let (headers, metadata) = if replace {
            (
                ObjectHeaders {
                    content_type: input.content_type,
                    content_encoding: input.content_encoding,
                    content_disposition: input.content_disposition,
                    content_language: input.content_language,
                    cache_control: input.cache_control,
                    expires: input.expires.as_ref().and_then(http_date),
                    website_redirect_location: input.website_redirect_location,
                },
                to_btree(input.metadata),
            )
        } else {
            (source.headers.clone(), source.metadata.clone())
        };
        let record = VersionRecord {
            key: input.key.clone(),
            version_id: String::new(),
            seq: 0,
            delete_marker: false,
            last_modified_ms: now_ms(),
            size: data.size,
            etag: data.md5_hex(),
            data: None,
            headers,
            metadata,
            checksums: source.checksums.clone(),
            parts: None,
        };
        let committed = self.commit_checked(&meta.owner, &input.bucket, data, record).await?;
        let rec = &committed.record;
        self.notify(&input.bucket, "ObjectCreated:Copy", rec, committed.versioned, &who.account_id).await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(rec.etag.clone())),
                last_modified: Some(timestamp(rec.last_modified_ms)),
                ..Default::default()
            }),
            copy_source_version_id: src_meta.versioning.is_some().then(|| source.version_id.clone()),
            version_id: committed.versioned.then(|| rec.version_id.clone()),
            ..Default::default()
        }))
    }

    /// The code-download principal's only operation: a package blob by digest.
    pub(super) fn code_download_key<T>(&self, req: &S3Request<T>, key: &str) -> Option<S3Result<String>> {
        if req.extensions.get::<Principal>() != Some(&Principal::CodeDownloads) {
            return None;
        }
        let valid = key.split_once('/').and_then(|(account, file)| {
            let digest = file.strip_suffix(".zip")?;
            (account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && digest.len() == 64
                && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| digest.to_owned())
        });
        Some(valid.ok_or_else(|| s3_error!(NoSuchKey, "The specified key does not exist.")))
    }
}

/// The policy action of a read: a version id makes it `s3:GetObjectVersion`, as S3 checks it.
pub(super) fn read_action(version_id: Option<&str>) -> &'static str {
    if version_id.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" }
}

fn delete_action(version_id: Option<&str>) -> &'static str {
    if version_id.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" }
}

struct Deleted {
    delete_marker: bool,
    version_id: Option<String>,
}

/// Content-MD5 and the x-amz-checksum-* values (headers or aws-chunked trailers) against the bytes.
pub(super) async fn verify_upload(
    data: TempData,
    content_md5: Option<&str>,
    mut declared: Checksums,
    trailing: Option<s3s::TrailingHeaders>,
) -> S3Result<TempData> {
    if let Some(md5) = content_md5 {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(md5.trim()) else {
            data.discard().await;
            return Err(s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."));
        };
        if raw != data.md5 {
            data.discard().await;
            return Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
        }
    }
    if let Some(trailers) = trailing.and_then(|t| t.take()) {
        let get = |name: &str| trailers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        declared.crc32 = declared.crc32.or_else(|| get("x-amz-checksum-crc32"));
        declared.crc32c = declared.crc32c.or_else(|| get("x-amz-checksum-crc32c"));
        declared.sha1 = declared.sha1.or_else(|| get("x-amz-checksum-sha1"));
        declared.sha256 = declared.sha256.or_else(|| get("x-amz-checksum-sha256"));
        declared.crc64nvme = declared.crc64nvme.or_else(|| get("x-amz-checksum-crc64nvme"));
    }
    let pairs = [
        ("CRC32", &declared.crc32, &data.checksums.crc32),
        ("CRC32C", &declared.crc32c, &data.checksums.crc32c),
        ("SHA1", &declared.sha1, &data.checksums.sha1),
        ("SHA256", &declared.sha256, &data.checksums.sha256),
        ("CRC64NVME", &declared.crc64nvme, &data.checksums.crc64nvme),
    ];
    let mismatch = pairs.iter().find(|(_, want, got)| want.is_some() && want.as_ref() != got.as_ref()).map(|p| p.0);
    if let Some(name) = mismatch {
        data.discard().await;
        return Err(s3_error!(BadDigest, "The {name} you specified did not match the calculated checksum."));
    }
    Ok(data)
}

/// The checksum names an aws-chunked body promises as trailers (`x-amz-trailer`).
fn trailer_names(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all("x-amz-trailer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

pub(super) fn condition_matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

pub(super) fn to_btree(map: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}

pub(super) fn to_hash(map: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!map.is_empty()).then(|| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub(super) fn http_date(ts: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

pub(super) fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

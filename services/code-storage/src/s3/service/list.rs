//! ListObjectsV2, ListObjects (v1) and ListObjectVersions.

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Handler, owner, timestamp, to_s3};
use crate::s3::store::{ListParams, VersionRecord};

/// `encoding-type=url`: keys in the response percent-encoded (clients such as boto3 ask for it and decode).
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

struct Enc(bool);

impl Enc {
    fn new(encoding: Option<&EncodingType>) -> Self {
        Self(encoding.is_some_and(|e| e.as_str().eq_ignore_ascii_case("url")))
    }
    fn s(&self, v: String) -> String {
        if self.0 { utf8_percent_encode(&v, KEY_SET).to_string() } else { v }
    }
    fn o(&self, v: Option<String>) -> Option<String> {
        v.map(|v| self.s(v))
    }
}

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(1000),
        Some(n) if n < 0 => {
            Err(s3_error!(InvalidArgument, "Argument maxKeys must be an integer between 0 and 2147483647"))
        }
        Some(n) => Ok((n as usize).min(1000)),
    }
}

fn object(rec: VersionRecord, enc: &Enc, account: Option<&str>) -> Object {
    Object {
        key: Some(enc.s(rec.key)),
        size: Some(rec.size as i64),
        e_tag: Some(ETag::Strong(rec.etag)),
        last_modified: Some(timestamp(rec.last_modified_ms)),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        owner: account.map(owner),
        ..Default::default()
    }
}

impl Handler {
    pub(super) async fn list_objects_v2_op(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let who = self.who(&req)?;
        let input = req.input;
        let meta = self.authorized(&input.bucket, &who, "s3:ListBucket", None).await?;
        let token_key = match &input.continuation_token {
            None => None,
            Some(t) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t)
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
            ),
        };
        let marker = match (token_key, input.start_after.clone()) {
            (Some(t), Some(s)) => Some(t.max(s)),
            (t, s) => t.or(s),
        };
        let max = max_keys(input.max_keys)?;
        let params = ListParams {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            marker,
            version_marker: None,
            max_keys: max,
        };
        let page = self.api.inner.store.list_objects(&input.bucket, &params).await.map_err(to_s3)?;
        let enc = Enc::new(input.encoding_type.as_ref());
        let key_count = (page.objects.len() + page.common_prefixes.len()) as i32;
        let fetch_owner = input.fetch_owner.unwrap_or(false).then_some(meta.owner.as_str());
        let next = page
            .is_truncated
            .then(|| page.last.as_ref().map(|l| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(l)))
            .flatten();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc.s(input.prefix.unwrap_or_default())),
            delimiter: enc.o(input.delimiter),
            start_after: enc.o(input.start_after),
            encoding_type: input.encoding_type,
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            is_truncated: Some(page.is_truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            contents: Some(page.objects.into_iter().map(|r| object(r, &enc, fetch_owner)).collect()),
            common_prefixes: Some(
                page.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc.s(p)) }).collect(),
            ),
            ..Default::default()
        }))
    }

    pub(super) async fn list_objects_op(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let meta = self.authorized(&input.bucket, &who, "s3:ListBucket", None).await?;
        let max = max_keys(input.max_keys)?;
        let params = ListParams {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            marker: input.marker.clone(),
            version_marker: None,
            max_keys: max,
        };
        let page = self.api.inner.store.list_objects(&input.bucket, &params).await.map_err(to_s3)?;
        let enc = Enc::new(input.encoding_type.as_ref());
        // S3 returns NextMarker only with a delimiter; clients use the last key otherwise.
        let next_marker = (page.is_truncated && input.delimiter.is_some()).then(|| enc.o(page.last.clone())).flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc.s(input.prefix.unwrap_or_default())),
            marker: Some(enc.s(input.marker.unwrap_or_default())),
            delimiter: enc.o(input.delimiter),
            encoding_type: input.encoding_type,
            max_keys: Some(max as i32),
            is_truncated: Some(page.is_truncated),
            next_marker,
            contents: Some(page.objects.into_iter().map(|r| object(r, &enc, Some(&meta.owner))).collect()),
            common_prefixes: Some(
                page.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc.s(p)) }).collect(),
            ),
            ..Default::default()
        }))
    }

    pub(super) async fn list_object_versions_op(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let meta = self.authorized(&input.bucket, &who, "s3:ListBucketVersions", None).await?;
        let max = max_keys(input.max_keys)?;
        let params = ListParams {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            marker: input.key_marker.clone(),
            version_marker: input.version_id_marker.clone(),
            max_keys: max,
        };
        let page = self.api.inner.store.list_versions(&input.bucket, &params).await.map_err(to_s3)?;
        let enc = Enc::new(input.encoding_type.as_ref());
        let (mut versions, mut markers) = (Vec::new(), Vec::new());
        for (rec, latest) in page.versions {
            if rec.delete_marker {
                markers.push(DeleteMarkerEntry {
                    key: Some(enc.s(rec.key)),
                    version_id: Some(rec.version_id),
                    is_latest: Some(latest),
                    last_modified: Some(timestamp(rec.last_modified_ms)),
                    owner: Some(owner(&meta.owner)),
                });
            } else {
                versions.push(ObjectVersion {
                    key: Some(enc.s(rec.key)),
                    version_id: Some(rec.version_id),
                    is_latest: Some(latest),
                    size: Some(rec.size as i64),
                    e_tag: Some(ETag::Strong(rec.etag)),
                    last_modified: Some(timestamp(rec.last_modified_ms)),
                    storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                    owner: Some(owner(&meta.owner)),
                    ..Default::default()
                });
            }
        }
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(enc.s(input.prefix.unwrap_or_default())),
            delimiter: enc.o(input.delimiter),
            encoding_type: input.encoding_type,
            key_marker: Some(enc.s(input.key_marker.unwrap_or_default())),
            version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(page.is_truncated),
            next_key_marker: enc.o(page.next_key_marker),
            next_version_id_marker: page.next_version_marker,
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(
                page.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc.s(p)) }).collect(),
            ),
            ..Default::default()
        }))
    }
}

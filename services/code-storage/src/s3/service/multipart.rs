//! Multipart uploads: create, upload part, complete, abort, list parts, list uploads.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::objects::{checksum_hasher, to_btree};
use super::{Handler, owner, timestamp, to_s3};
use crate::s3::store::{Checksums, CompletePart, ObjectHeaders, VersionRecord, now_ms};

impl Handler {
    pub(super) async fn create_multipart_upload_op(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        self.authorized(&input.bucket, &who, "s3:PutObject", Some(&input.key)).await?;
        let headers = ObjectHeaders {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires.as_ref().and_then(super::objects::http_date),
            website_redirect_location: input.website_redirect_location,
        };
        let upload = self
            .api
            .inner
            .store
            .create_upload(&input.bucket, &input.key, headers, to_btree(input.metadata))
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload.upload_id),
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part_op(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let who = self.who(&req)?;
        let trailer_names: Vec<String> = req
            .headers
            .get_all("x-amz-trailer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        let trailing = req.trailing_headers.clone();
        let input = req.input;
        self.authorized(&input.bucket, &who, "s3:PutObject", Some(&input.key)).await?;
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"));
        }
        let store = &self.api.inner.store;
        let upload = store.upload(&input.bucket, &input.upload_id, &input.key).await.map_err(to_s3)?;
        let declared = Checksums {
            crc32: input.checksum_crc32.clone(),
            crc32c: input.checksum_crc32c.clone(),
            sha1: input.checksum_sha1.clone(),
            sha256: input.checksum_sha256.clone(),
            crc64nvme: input.checksum_crc64nvme.clone(),
        };
        let hasher = checksum_hasher(&declared, input.checksum_algorithm.as_ref(), &trailer_names)?;
        let data = self.receive(input.body, hasher).await?;
        let data = super::objects::verify_upload(data, input.content_md5.as_deref(), declared, trailing).await?;
        let part = store.put_part(&input.bucket, &upload, input.part_number, data).await.map_err(to_s3)?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
            checksum_crc32: part.checksums.crc32,
            checksum_crc32c: part.checksums.crc32c,
            checksum_sha1: part.checksums.sha1,
            checksum_sha256: part.checksums.sha256,
            checksum_crc64nvme: part.checksums.crc64nvme,
            ..Default::default()
        }))
    }

    pub(super) async fn complete_multipart_upload_op(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let meta = self.authorized(&input.bucket, &who, "s3:PutObject", Some(&input.key)).await?;
        let store = &self.api.inner.store;
        let upload = store.upload(&input.bucket, &input.upload_id, &input.key).await.map_err(to_s3)?;
        let mut wanted = Vec::new();
        for part in input.multipart_upload.and_then(|m| m.parts).unwrap_or_default() {
            let (Some(part_number), Some(etag)) = (part.part_number, part.e_tag) else {
                return Err(s3_error!(
                    MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema"
                ));
            };
            wanted.push(CompletePart { part_number, etag: etag.value().to_owned() });
        }
        let (data, etag) = store.assemble(&input.bucket, &upload, &wanted).await.map_err(to_s3)?;
        let record = VersionRecord {
            key: input.key.clone(),
            version_id: String::new(),
            seq: 0,
            delete_marker: false,
            last_modified_ms: now_ms(),
            size: data.size,
            etag,
            data: None,
            headers: upload.headers.clone(),
            metadata: upload.metadata.clone(),
            checksums: Checksums::default(),
            parts: Some(wanted.len() as u32),
        };
        let committed = self.commit_checked(&meta.owner, &input.bucket, data, record).await?;
        if let Err(e) = store.remove_upload(&input.bucket, &upload.upload_id).await {
            tracing::warn!(error = %e, upload = upload.upload_id, "remove completed upload");
        }
        let rec = &committed.record;
        self.notify(&input.bucket, "ObjectCreated:CompleteMultipartUpload", rec, committed.versioned, &who.account_id)
            .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(rec.etag.clone())),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            version_id: committed.versioned.then(|| rec.version_id.clone()),
            ..Default::default()
        }))
    }

    pub(super) async fn abort_multipart_upload_op(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        self.authorized(&input.bucket, &who, "s3:AbortMultipartUpload", Some(&input.key)).await?;
        let store = &self.api.inner.store;
        store.upload(&input.bucket, &input.upload_id, &input.key).await.map_err(to_s3)?;
        store.remove_upload(&input.bucket, &input.upload_id).await.map_err(to_s3)?;
        Ok(S3Response::with_status(AbortMultipartUploadOutput::default(), http::StatusCode::NO_CONTENT))
    }

    pub(super) async fn list_parts_op(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let meta = self.authorized(&input.bucket, &who, "s3:ListMultipartUploadParts", Some(&input.key)).await?;
        let store = &self.api.inner.store;
        store.upload(&input.bucket, &input.upload_id, &input.key).await.map_err(to_s3)?;
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let marker: i32 = input.part_number_marker.unwrap_or(0);
        let all: Vec<_> = store
            .parts(&input.bucket, &input.upload_id)
            .await
            .map_err(to_s3)?
            .into_iter()
            .filter(|p| p.part_number > marker)
            .collect();
        let is_truncated = all.len() > max;
        let parts: Vec<Part> = all
            .into_iter()
            .take(max)
            .map(|p| Part {
                part_number: Some(p.part_number),
                e_tag: Some(ETag::Strong(p.etag)),
                size: Some(p.size as i64),
                last_modified: Some(timestamp(p.last_modified_ms)),
                checksum_crc32: p.checksums.crc32,
                checksum_crc32c: p.checksums.crc32c,
                checksum_sha1: p.checksums.sha1,
                checksum_sha256: p.checksums.sha256,
                checksum_crc64nvme: p.checksums.crc64nvme,
            })
            .collect();
        let next = parts.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            is_truncated: Some(is_truncated),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: if is_truncated { next } else { None },
            owner: Some(owner(&meta.owner)),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    pub(super) async fn list_multipart_uploads_op(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        let meta = self.authorized(&input.bucket, &who, "s3:ListBucketMultipartUploads", None).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let mut all = self.api.inner.store.list_uploads(&input.bucket, &prefix).await.map_err(to_s3)?;
        if let Some(km) = &input.key_marker {
            let um = input.upload_id_marker.clone();
            all.retain(|u| u.key > *km || (u.key == *km && um.as_ref().is_some_and(|m| u.upload_id > *m)));
        }
        let is_truncated = all.len() > max;
        all.truncate(max);
        let (next_key, next_upload) = match (is_truncated, all.last()) {
            (true, Some(u)) => (Some(u.key.clone()), Some(u.upload_id.clone())),
            _ => (None, None),
        };
        let uploads = all
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(u.key),
                upload_id: Some(u.upload_id),
                initiated: Some(timestamp(u.initiated_ms)),
                owner: Some(owner(&meta.owner)),
                initiator: Some(Initiator { id: Some(meta.owner.clone()), display_name: None }),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(is_truncated),
            next_key_marker: next_key,
            next_upload_id_marker: next_upload,
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}

//! The `s3s::S3` implementation: the trait methods delegate to one file per resource family.

mod buckets;
mod events;
mod list;
mod multipart;
mod objects;
mod policy;

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::S3Api;
use super::auth::Principal;
use super::store::{BucketMeta, StoreError};

pub(crate) struct Handler {
    pub api: S3Api,
}

/// The verified caller of an ordinary (account) request.
pub(crate) struct Who {
    pub account_id: String,
}

impl Handler {
    /// The account behind the request; the code-download principal only ever reaches GetObject.
    fn who<T>(&self, req: &S3Request<T>) -> S3Result<Who> {
        match req.extensions.get::<Principal>() {
            Some(Principal::Account { account_id, .. }) => Ok(Who { account_id: account_id.clone() }),
            _ => Err(s3_error!(AccessDenied, "Access Denied")),
        }
    }

    /// The bucket, if the caller owns it.
    async fn owned(&self, bucket: &str, who: &Who) -> S3Result<BucketMeta> {
        if self.is_code_bucket(bucket) {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        self.api.inner.store.owned_bucket(bucket, &who.account_id).await.map_err(to_s3)
    }

    /// The bucket, if the caller may do `action` on it (`key` None) or on one of its objects: the
    /// owner unless a Deny names them, another account when the bucket policy allows it.
    async fn authorized(&self, bucket: &str, who: &Who, action: &str, key: Option<&str>) -> S3Result<BucketMeta> {
        if self.is_code_bucket(bucket) {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        let meta = self.api.inner.store.bucket(bucket).await.map_err(to_s3)?;
        if !super::policy::permits(&meta, &who.account_id, action, &super::policy::arn(bucket, key)) {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        Ok(meta)
    }

    fn is_code_bucket(&self, bucket: &str) -> bool {
        self.api.inner.config.code_downloads.as_ref().is_some_and(|c| c.bucket == bucket)
    }
}

/// S3's error for each store refusal.
pub(crate) fn to_s3(err: StoreError) -> S3Error {
    let msg = err.to_string();
    match err {
        StoreError::NoSuchBucket => S3Error::with_message(S3ErrorCode::NoSuchBucket, msg),
        StoreError::AccessDenied => S3Error::with_message(S3ErrorCode::AccessDenied, msg),
        StoreError::NoSuchKey { delete_marker } => {
            let mut e = S3Error::with_message(S3ErrorCode::NoSuchKey, msg);
            if let Some(id) = delete_marker {
                e.set_headers(delete_marker_headers(&id));
            }
            e
        }
        StoreError::NoSuchVersion => S3Error::with_message(S3ErrorCode::NoSuchVersion, msg),
        StoreError::MethodNotAllowed { delete_marker } => {
            let mut e = S3Error::with_message(S3ErrorCode::MethodNotAllowed, msg);
            e.set_headers(delete_marker_headers(&delete_marker));
            e
        }
        StoreError::InvalidVersionId => S3Error::with_message(S3ErrorCode::InvalidArgument, msg),
        StoreError::NoSuchUpload => S3Error::with_message(S3ErrorCode::NoSuchUpload, msg),
        StoreError::BucketAlreadyExists => S3Error::with_message(S3ErrorCode::BucketAlreadyExists, msg),
        StoreError::BucketAlreadyOwnedByYou => S3Error::with_message(S3ErrorCode::BucketAlreadyOwnedByYou, msg),
        StoreError::TooManyBuckets => S3Error::with_message(S3ErrorCode::TooManyBuckets, msg),
        StoreError::BucketNotEmpty => S3Error::with_message(S3ErrorCode::BucketNotEmpty, msg),
        StoreError::InvalidPart(m) => S3Error::with_message(S3ErrorCode::InvalidPart, m),
        StoreError::InvalidPartOrder => S3Error::with_message(S3ErrorCode::InvalidPartOrder, msg),
        StoreError::EntityTooSmall => S3Error::with_message(S3ErrorCode::EntityTooSmall, msg),
        StoreError::Internal(e) => internal(&e),
    }
}

pub(crate) fn internal(e: &anyhow::Error) -> S3Error {
    tracing::error!(error = format!("{e:#}"), "S3 request failed");
    S3Error::with_message(S3ErrorCode::InternalError, "We encountered an internal error. Please try again.")
}

fn delete_marker_headers(version_id: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
    if let Ok(v) = http::HeaderValue::from_str(version_id) {
        h.insert("x-amz-version-id", v);
    }
    h
}

pub(crate) fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

fn owner(account_id: &str) -> Owner {
    Owner { display_name: None, id: Some(account_id.to_owned()) }
}

#[async_trait::async_trait]
impl s3s::S3 for Handler {
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        self.create_bucket_op(req).await
    }
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.head_bucket_op(req).await
    }
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        self.list_buckets_op(req).await
    }
    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.delete_bucket_op(req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.get_bucket_location_op(req).await
    }
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        self.put_bucket_versioning_op(req).await
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.get_bucket_versioning_op(req).await
    }
    async fn put_bucket_notification_configuration(
        &self,
        req: S3Request<PutBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketNotificationConfigurationOutput>> {
        self.put_notification_op(req).await
    }
    async fn get_bucket_notification_configuration(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        self.get_notification_op(req).await
    }
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        self.put_bucket_policy_op(req).await
    }
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        self.get_bucket_policy_op(req).await
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.delete_bucket_policy_op(req).await
    }
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        self.put_object_op(req).await
    }
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.get_object_op(req).await
    }
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        self.head_object_op(req).await
    }
    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.delete_object_op(req).await
    }
    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.delete_objects_op(req).await
    }
    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        self.copy_object_op(req).await
    }
    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.list_objects_v2_op(req).await
    }
    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        self.list_objects_op(req).await
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        self.list_object_versions_op(req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.create_multipart_upload_op(req).await
    }
    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        self.upload_part_op(req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.complete_multipart_upload_op(req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.abort_multipart_upload_op(req).await
    }
    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        self.list_parts_op(req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.list_multipart_uploads_op(req).await
    }
}

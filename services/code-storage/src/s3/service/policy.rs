//! Put/Get/DeleteBucketPolicy: owner only, whatever the policy says (as S3 lets the bucket owner's
//! root do), so an owner can never lock themselves out of fixing a policy.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::{Handler, to_s3};
use crate::s3::policy::BucketPolicy;

impl Handler {
    pub(super) async fn put_bucket_policy_op(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let who = self.who(&req)?;
        let input = req.input;
        self.owned(&input.bucket, &who).await?;
        if let Err(reason) = BucketPolicy::parse(&input.policy, &input.bucket) {
            return Err(S3Error::with_message(S3ErrorCode::MalformedPolicy, reason));
        }
        let text = input.policy;
        self.api
            .inner
            .store
            .update_bucket(&input.bucket, &who.account_id, |meta| meta.policy = Some(text))
            .await
            .map_err(to_s3)?;
        Ok(S3Response::with_status(PutBucketPolicyOutput {}, http::StatusCode::NO_CONTENT))
    }

    pub(super) async fn get_bucket_policy_op(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let who = self.who(&req)?;
        let meta = self.owned(&req.input.bucket, &who).await?;
        match meta.policy {
            Some(policy) => Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) })),
            None => Err(s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist")),
        }
    }

    pub(super) async fn delete_bucket_policy_op(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let who = self.who(&req)?;
        self.owned(&req.input.bucket, &who).await?;
        self.api
            .inner
            .store
            .update_bucket(&req.input.bucket, &who.account_id, |meta| meta.policy = None)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::with_status(DeleteBucketPolicyOutput {}, http::StatusCode::NO_CONTENT))
    }
}

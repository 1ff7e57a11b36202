//! Bucket operations: create, head, list, delete, location, versioning, notification configuration.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Handler, internal, owner, timestamp, to_s3};
use crate::s3::notify::{NotificationRule, SUPPORTED_EVENTS};
use crate::s3::store::{StoreError, Versioning};

impl Handler {
    pub(super) async fn create_bucket_op(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let who = self.who(&req)?;
        let bucket = req.input.bucket;
        let region = &self.api.inner.config.region;
        if let Some(constraint) =
            req.input.create_bucket_configuration.as_ref().and_then(|c| c.location_constraint.as_ref())
            && constraint.as_str() != region
        {
            return Err(s3_error!(
                IllegalLocationConstraintException,
                "The {} location constraint is incompatible for the region specific endpoint this request was sent to.",
                constraint.as_str()
            ));
        }
        if self.is_code_bucket(&bucket) {
            return Err(to_s3(StoreError::BucketAlreadyExists));
        }
        let limit = self.api.inner.config.max_buckets_per_account;
        // Re-creating your own bucket is 409 BucketAlreadyOwnedByYou in every region: S3 keeps a
        // legacy 200 in us-east-1, but a caller told "created" would miss that the name was taken.
        self.api.inner.store.create_bucket(&bucket, &who.account_id, limit).await.map_err(to_s3)?;
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{bucket}")) }))
    }

    pub(super) async fn head_bucket_op(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let who = self.who(&req)?;
        // S3 answers HeadBucket to whoever may list the bucket.
        self.authorized(&req.input.bucket, &who, "s3:ListBucket", None).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.api.inner.config.region.clone()),
            ..Default::default()
        }))
    }

    pub(super) async fn list_buckets_op(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let who = self.who(&req)?;
        let prefix = req.input.prefix.unwrap_or_default();
        let buckets = self.api.inner.store.buckets_of(&who.account_id).await.map_err(to_s3)?;
        let buckets = buckets
            .into_iter()
            .filter(|b| b.name.starts_with(&prefix))
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ms)),
                bucket_region: Some(self.api.inner.config.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner(&who.account_id)),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_bucket_op(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let who = self.who(&req)?;
        self.owned(&req.input.bucket, &who).await?;
        self.api.inner.store.delete_bucket(&req.input.bucket, &who.account_id).await.map_err(to_s3)?;
        Ok(S3Response::with_status(DeleteBucketOutput {}, http::StatusCode::NO_CONTENT))
    }

    pub(super) async fn get_bucket_location_op(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let who = self.who(&req)?;
        self.authorized(&req.input.bucket, &who, "s3:GetBucketLocation", None).await?;
        let region = &self.api.inner.config.region;
        // S3 reports us-east-1 as an empty LocationConstraint.
        let location_constraint = (region != "us-east-1").then(|| BucketLocationConstraint::from(region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
    }

    pub(super) async fn put_bucket_versioning_op(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let who = self.who(&req)?;
        self.owned(&req.input.bucket, &who).await?;
        let mode = match req.input.versioning_configuration.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema"
                ));
            }
        };
        self.api
            .inner
            .store
            .update_bucket(&req.input.bucket, &who.account_id, |meta| meta.versioning = Some(mode))
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    pub(super) async fn get_bucket_versioning_op(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let who = self.who(&req)?;
        let meta = self.owned(&req.input.bucket, &who).await?;
        let status = meta.versioning.map(|v| {
            BucketVersioningStatus::from_static(match v {
                Versioning::Enabled => BucketVersioningStatus::ENABLED,
                Versioning::Suspended => BucketVersioningStatus::SUSPENDED,
            })
        });
        Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete: None }))
    }

    pub(super) async fn put_notification_op(
        &self,
        req: S3Request<PutBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketNotificationConfigurationOutput>> {
        let who = self.who(&req)?;
        let bucket = req.input.bucket.clone();
        let meta = self.owned(&bucket, &who).await?;
        let config = req.input.notification_configuration;
        if config.queue_configurations.as_ref().is_some_and(|q| !q.is_empty())
            || config.topic_configurations.as_ref().is_some_and(|t| !t.is_empty())
            || config.event_bridge_configuration.is_some()
        {
            return Err(s3_error!(
                InvalidArgument,
                "Unable to validate the following destination configurations (only LambdaFunctionConfigurations are supported)"
            ));
        }
        let mut rules = Vec::new();
        for conf in config.lambda_function_configurations.unwrap_or_default() {
            rules.push(rule_from(conf)?);
        }
        let mut refused = Vec::new();
        for rule in &rules {
            let verdict = self
                .api
                .inner
                .events
                .check_destination(&meta.owner, &bucket, &rule.function_arn)
                .await
                .map_err(|e| internal(&e))?;
            if let Err(reason) = verdict {
                tracing::info!(bucket, function = rule.function_arn, reason, "notification destination refused");
                refused.push(rule.function_arn.clone());
            }
        }
        if !refused.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "Unable to validate the following destination configurations: {}",
                refused.join(", ")
            ));
        }
        self.api
            .inner
            .store
            .update_bucket(&bucket, &who.account_id, |meta| meta.notifications = rules)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(PutBucketNotificationConfigurationOutput {}))
    }

    pub(super) async fn get_notification_op(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        let who = self.who(&req)?;
        let meta = self.owned(&req.input.bucket, &who).await?;
        let confs: Vec<LambdaFunctionConfiguration> = meta
            .notifications
            .into_iter()
            .map(|r| {
                let mut rules = Vec::new();
                for (name, value) in [("prefix", r.prefix), ("suffix", r.suffix)] {
                    if let Some(value) = value {
                        rules
                            .push(FilterRule { name: Some(FilterRuleName::from(name.to_owned())), value: Some(value) });
                    }
                }
                LambdaFunctionConfiguration {
                    id: Some(r.id),
                    lambda_function_arn: r.function_arn,
                    events: r.events.into_iter().map(Event::from).collect(),
                    filter: (!rules.is_empty()).then_some(NotificationConfigurationFilter {
                        key: Some(S3KeyFilter { filter_rules: Some(rules) }),
                    }),
                }
            })
            .collect();
        Ok(S3Response::new(GetBucketNotificationConfigurationOutput {
            lambda_function_configurations: (!confs.is_empty()).then_some(confs),
            ..Default::default()
        }))
    }
}

/// Checks one configuration as S3 does (known events, at most one prefix and one suffix rule).
fn rule_from(conf: LambdaFunctionConfiguration) -> S3Result<NotificationRule> {
    if conf.events.is_empty() {
        return Err(s3_error!(InvalidArgument, "The event list must not be empty"));
    }
    let mut events = Vec::new();
    for event in conf.events {
        let name: String = event.into();
        if !SUPPORTED_EVENTS.contains(&name.as_str()) {
            return Err(s3_error!(InvalidArgument, "The event '{name}' is not supported for notifications"));
        }
        events.push(name);
    }
    if !conf.lambda_function_arn.starts_with("arn:") || !conf.lambda_function_arn.contains(":lambda:") {
        return Err(s3_error!(InvalidArgument, "The ARN could not be parsed"));
    }
    let (mut prefix, mut suffix) = (None, None);
    for rule in conf.filter.and_then(|f| f.key).and_then(|k| k.filter_rules).unwrap_or_default() {
        let name = rule.name.as_ref().map(|n| n.as_str().to_ascii_lowercase()).unwrap_or_default();
        let slot = match name.as_str() {
            "prefix" => &mut prefix,
            "suffix" => &mut suffix,
            _ => return Err(s3_error!(InvalidArgument, "filter rule name must be either prefix or suffix")),
        };
        if slot.is_some() {
            return Err(s3_error!(InvalidArgument, "Cannot specify more than one {name} rule in a filter."));
        }
        *slot = Some(rule.value.unwrap_or_default());
    }
    Ok(NotificationRule {
        id: conf.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        function_arn: conf.lambda_function_arn,
        events,
        prefix,
        suffix,
    })
}

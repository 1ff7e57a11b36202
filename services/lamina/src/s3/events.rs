//! S3 event notifications as Lambda sees them: a destination is accepted only when the function's
//! resource policy lets `s3.amazonaws.com` invoke it for that bucket, and each notification becomes
//! an Event invocation on the durable async queue.

use bytes::Bytes;
use lamina_async_queue::QueueClient;
use lamina_code_storage::s3::{BoxFuture, Delivery, ObjectEvents};
use lamina_common::names::{FunctionRef, function_arn, qualified_arn};
use lamina_common::policy::{Caller, RequestContext, allows};
use lamina_metadata::MetadataClient;

/// The principal S3 invokes functions as.
const S3_PRINCIPAL: &str = "s3.amazonaws.com";

/// Notifications delivered to functions through the async queue.
pub struct FunctionEvents {
    metadata: MetadataClient,
    queue: QueueClient,
    region: String,
}

impl FunctionEvents {
    pub fn new(metadata: MetadataClient, queue: QueueClient, region: impl Into<String>) -> Self {
        Self { metadata, queue, region: region.into() }
    }
}

/// A destination's function: its account (the ARN's, else the bucket owner's), name and qualifier.
struct Destination {
    account_id: String,
    name: String,
    qualifier: Option<String>,
}

impl Destination {
    fn parse(function_arn: &str, bucket_owner: &str, region: &str) -> Result<Self, String> {
        let parsed = FunctionRef::parse(function_arn, "FunctionArn")
            .map_err(|_| format!("{function_arn} is not a Lambda function ARN"))?;
        if parsed.region.as_deref().is_some_and(|r| r != region) {
            return Err(format!("The function {function_arn} is not in this region ({region})"));
        }
        Ok(Self {
            account_id: parsed.account_id.unwrap_or_else(|| bucket_owner.to_owned()),
            name: parsed.name,
            qualifier: parsed.qualifier,
        })
    }

    fn arn(&self, region: &str) -> String {
        match &self.qualifier {
            Some(q) => qualified_arn(region, &self.account_id, &self.name, q),
            None => function_arn(region, &self.account_id, &self.name),
        }
    }
}

impl ObjectEvents for FunctionEvents {
    fn check_destination<'a>(
        &'a self,
        bucket_owner: &'a str,
        bucket: &'a str,
        function_arn: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Result<(), String>>> {
        Box::pin(async move {
            let target = match Destination::parse(function_arn, bucket_owner, &self.region) {
                Ok(t) => t,
                Err(reason) => return Ok(Err(reason)),
            };
            let arn = target.arn(&self.region);
            let exists = self
                .metadata
                .resolve_version(&target.account_id, &target.name, target.qualifier.as_deref())
                .await
                .map_err(anyhow::Error::new)?
                .is_some();
            if !exists {
                return Ok(Err(format!("The function {arn} does not exist")));
            }
            let policy = self
                .metadata
                .get_policy(&target.account_id, &target.name, target.qualifier.as_deref().unwrap_or_default())
                .await
                .map_err(anyhow::Error::new)?;
            let request = RequestContext {
                caller: Caller::Service(S3_PRINCIPAL.to_owned()),
                action: "lambda:InvokeFunction".to_owned(),
                resource: arn.clone(),
                source_arn: Some(format!("arn:aws:s3:::{bucket}")),
                source_account: Some(bucket_owner.to_owned()),
                event_source_token: None,
            };
            if policy.is_some_and(|p| allows(&p.statements, &request)) {
                Ok(Ok(()))
            } else {
                Ok(Err(format!("Not authorized to invoke function [{arn}]")))
            }
        })
    }

    fn deliver<'a>(&'a self, deliveries: Vec<Delivery>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            for delivery in deliveries {
                let target = Destination::parse(&delivery.function_arn, &delivery.bucket_owner, &self.region)
                    .map_err(|reason| anyhow::anyhow!("notification destination: {reason}"))?;
                let payload = Bytes::from(serde_json::to_vec(&delivery.event)?);
                let request_id = lamina_common::ids::random_uuid().to_string();
                self.queue
                    .enqueue(&request_id, &target.account_id, &target.name, target.qualifier.as_deref(), &payload)
                    .await
                    .map_err(anyhow::Error::new)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_name_account_and_qualifier() {
        let d =
            Destination::parse("arn:aws:lambda:us-east-1:111122223333:function:f:live", "444455556666", "us-east-1")
                .expect("parse");
        assert_eq!(
            (d.account_id.as_str(), d.name.as_str(), d.qualifier.as_deref()),
            ("111122223333", "f", Some("live"))
        );
        assert_eq!(d.arn("us-east-1"), "arn:aws:lambda:us-east-1:111122223333:function:f:live");
        let other_region = Destination::parse("arn:aws:lambda:eu-west-1:111122223333:function:f", "1", "us-east-1");
        assert!(other_region.is_err());
    }
}

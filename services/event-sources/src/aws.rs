//! Clients of the external services event sources read and write (SQS, Kinesis), configured the way
//! every AWS SDK is: `AWS_REGION`, credentials from the standard chain, and per-service endpoints
//! from `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL_KINESIS` (or `AWS_ENDPOINT_URL`), so an operator
//! points them at real AWS or at a self-hosted server without Lamina-specific settings.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use tokio::sync::OnceCell;

pub use crate::arn::QueueArn;

static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The shared SDK configuration, loaded once from the environment.
pub async fn sdk_config() -> &'static SdkConfig {
    CONFIG
        .get_or_init(|| async {
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build_https();
            let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
            // Without a region the SDKs refuse to build a request; a laptop setup rarely sets one.
            if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
                loader = loader.region(aws_config::Region::new("us-east-1"));
            }
            loader.load().await
        })
        .await
}

/// An SQS client.
pub async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk_config().await)
}

/// A Kinesis client.
pub async fn kinesis() -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::new(sdk_config().await)
}

/// The URL of the queue an ARN names, asked of the SQS endpoint (`GetQueueUrl` with the owner's
/// account), so it is right whatever URL scheme the server uses.
pub async fn queue_url(client: &aws_sdk_sqs::Client, arn: &QueueArn) -> anyhow::Result<String> {
    let out = client
        .get_queue_url()
        .queue_name(&arn.name)
        .queue_owner_aws_account_id(&arn.account)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GetQueueUrl {}: {}", arn.name, aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    out.queue_url.ok_or_else(|| anyhow::anyhow!("GetQueueUrl {}: no QueueUrl in the answer", arn.name))
}

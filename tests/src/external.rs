//! Clients of the external servers the event-source tests use: kinesalite (Kinesis) and moto's server
//! (SQS), started by `scripts/test.sh` for the run, and the machine's RabbitMQ. They are found through
//! the variables `scripts/test.sh` exports, the same ones Lamina's pollers read through the AWS SDK's
//! standard chain: `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_KINESIS`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `LAMINA_AMQP_URL`.

use std::time::Duration;

/// A variable `scripts/test.sh` exports; panics naming the script when it is missing.
fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: run the tests through scripts/test.sh, which starts kinesalite, moto's server \
             and RabbitMQ and exports it (or start them and export the variables by hand, as scripts/test.sh does)"
        ),
    }
}

fn credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        required("AWS_ACCESS_KEY_ID"),
        required("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "lamina-tests-external",
    )
}

/// An SQS client for the server at `AWS_ENDPOINT_URL_SQS` (no retries: tests see every answer; a
/// long poll fits in the operation timeout).
pub fn sqs() -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new(required("AWS_REGION")))
        .credentials_provider(credentials())
        .endpoint_url(required("AWS_ENDPOINT_URL_SQS"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_sqs::config::timeout::TimeoutConfig::builder().operation_timeout(Duration::from_secs(60)).build(),
        )
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// A Kinesis client for the server at `AWS_ENDPOINT_URL_KINESIS` (no retries).
pub fn kinesis() -> aws_sdk_kinesis::Client {
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesis::config::Region::new(required("AWS_REGION")))
        .credentials_provider(credentials())
        .endpoint_url(required("AWS_ENDPOINT_URL_KINESIS"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_kinesis::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .build();
    aws_sdk_kinesis::Client::from_conf(conf)
}

/// `amqp://...` of the RabbitMQ the tests use (`LAMINA_AMQP_URL`).
pub fn amqp_url() -> String {
    required("LAMINA_AMQP_URL")
}

/// `<prefix>-<16 random hex digits>`: a stream, queue or exchange name no other test or earlier run
/// (the servers may outlive a run) has used. Valid as a Kinesis stream, SQS queue and AMQP name when
/// `prefix` is (letters, digits, `-`, `_`), and short enough for SQS's 80 characters with a prefix
/// of up to 60.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..16])
}

/// Creates a stream of `shards` shards, waits until it is ACTIVE and returns its ARN.
pub async fn create_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) -> String {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStream {name}: {}", aws_sdk_kinesis::error::DisplayErrorContext(e)));
    crate::wait_until(Duration::from_secs(30), &format!("stream {name} ACTIVE"), || async {
        let out = client.describe_stream_summary().stream_name(name).send().await.ok()?;
        let summary = out.stream_description_summary?;
        (summary.stream_status == aws_sdk_kinesis::types::StreamStatus::Active).then_some(summary.stream_arn)
    })
    .await
}

/// Creates a queue with a visibility timeout of `visibility_timeout_s` seconds and returns its URL.
pub async fn create_queue(client: &aws_sdk_sqs::Client, name: &str, visibility_timeout_s: u32) -> String {
    let out = client
        .create_queue()
        .queue_name(name)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, visibility_timeout_s.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateQueue {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
    out.queue_url.unwrap_or_else(|| panic!("CreateQueue {name}: no QueueUrl in the answer"))
}

/// The ARN of the queue at `url` (what an event-source mapping names).
pub async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> String {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueAttributes {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
    out.attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .unwrap_or_else(|| panic!("GetQueueAttributes {url}: no QueueArn in the answer"))
}

#[cfg(test)]
mod tests {
    //! The servers `scripts/test.sh` provides answer as the tests expect.

    use super::*;

    #[tokio::test]
    async fn sqs_server_sends_receives_and_deletes() {
        let client = sqs();
        let name = unique("smoke");
        let url = create_queue(&client, &name, 30).await;
        let arn = queue_arn(&client, &url).await;
        assert!(arn.starts_with("arn:aws:sqs:") && arn.ends_with(&format!(":{name}")), "queue ARN {arn}");
        client.send_message().queue_url(&url).message_body("hello").send().await.expect("SendMessage");
        let got = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(5)
            .send()
            .await
            .expect("ReceiveMessage");
        let messages = got.messages.unwrap_or_default();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(messages[0].body.as_deref(), Some("hello"));
        let handle = messages[0].receipt_handle.clone().expect("receipt handle");
        client.delete_message().queue_url(&url).receipt_handle(handle).send().await.expect("DeleteMessage");
        client.delete_queue().queue_url(&url).send().await.expect("DeleteQueue");
    }

    #[tokio::test]
    async fn kinesis_server_keeps_records_per_shard() {
        let client = kinesis();
        let name = unique("smoke");
        let arn = create_stream(&client, &name, 2).await;
        assert!(arn.starts_with("arn:aws:kinesis:") && arn.ends_with(&format!(":stream/{name}")), "stream ARN {arn}");
        let put = client
            .put_record()
            .stream_name(&name)
            .partition_key("k")
            .data(aws_smithy_types::Blob::new(b"hello".to_vec()))
            .send()
            .await
            .expect("PutRecord");
        let shards =
            client.list_shards().stream_name(&name).send().await.expect("ListShards").shards.unwrap_or_default();
        assert_eq!(shards.len(), 2);
        let iterator = client
            .get_shard_iterator()
            .stream_name(&name)
            .shard_id(put.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator
            .expect("iterator");
        let records = client.get_records().shard_iterator(iterator).send().await.expect("GetRecords").records;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data.as_ref(), b"hello");
        assert_eq!(records[0].sequence_number, put.sequence_number);
        client.delete_stream().stream_name(&name).send().await.expect("DeleteStream");
    }

    #[tokio::test]
    async fn rabbitmq_publishes_and_gets() {
        use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = conn.create_channel().await.expect("channel");
        let queue = unique("smoke");
        channel.queue_declare(&queue, QueueDeclareOptions::default(), Default::default()).await.expect("declare queue");
        channel
            .basic_publish("", &queue, BasicPublishOptions::default(), b"hello", Default::default())
            .await
            .expect("publish")
            .await
            .expect("publish confirm");
        let got = crate::wait_until(Duration::from_secs(10), "the published message", || async {
            channel.basic_get(&queue, BasicGetOptions { no_ack: true }).await.expect("basic.get")
        })
        .await;
        assert_eq!(got.delivery.data, b"hello");
        channel.queue_delete(&queue, QueueDeleteOptions::default()).await.expect("delete queue");
        conn.close(200, "done").await.expect("close");
    }
}

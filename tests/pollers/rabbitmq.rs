//! The RabbitMQ poller end to end (Amazon MQ for RabbitMQ mappings) against the machine's RabbitMQ
//! (`LAMINA_AMQP_URL`): the `aws:rmq` event as Lambda sends it, acks after a successful batch (the
//! queue is empty once the mapping is disabled), redelivery (`redelivered: true`) after a failed one.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime, SourceAccessConfiguration, SourceAccessType};
use base64::Engine as _;
use lamina_tests::external::{amqp_url, unique};
use lamina_tests::{Tenant, TestEnv, backend_tests, python_zip, wait_until};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};

backend_tests!(messages_arrive_in_the_rmq_shape_and_are_acked);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_is_redelivered() {
    let env = TestEnv::start(lamina_tests::Backend::Sqlite).await.expect("sqlite always available");
    a_failed_batch_is_redelivered_on(&env).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_comes_back_when_its_queue_does() {
    let env = TestEnv::start(lamina_tests::Backend::Sqlite).await.expect("sqlite always available");
    the_poller_comes_back_when_its_queue_does_on(&env).await;
    env.stop().await;
}

/// Logs each event (`RMQEVENT`); fails an invocation holding a first delivery of a `boom-once` body.
const RECORDER: &str = r#"import base64, json

def handler(event, context):
    print('RMQEVENT ' + json.dumps(event))
    for messages in event['rmqMessagesByQueue'].values():
        for m in messages:
            if base64.b64decode(m['data']).startswith(b'boom-once') and not m['redelivered']:
                raise Exception('boom')
    return 'ok'
"#;

struct Setup {
    t: Tenant,
    lambda: aws_sdk_lambda::Client,
    connection: Connection,
    channel: Channel,
    queue: String,
    broker_arn: String,
}

async fn setup(env: &TestEnv) -> Setup {
    let t = env.tenant().await;
    let lambda = env.lambda(&t);
    lambda
        .create_function()
        .function_name("recorder")
        .runtime(Runtime::from("python3.11"))
        .role("arn:aws:iam::123456789012:role/lambda-role")
        .handler("lambda_function.handler")
        .code(FunctionCode::builder().zip_file(Blob::new(python_zip(RECORDER))).build())
        .send()
        .await
        .expect("create function");
    let connection =
        Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    let queue = unique("esm");
    channel.queue_declare(&queue, QueueDeclareOptions::default(), FieldTable::default()).await.expect("declare queue");
    let broker_arn = format!("arn:aws:mq:{}:{}:broker:lamina:b-{}", env.region, t.account_id, uuid::Uuid::new_v4());
    Setup { t, lambda, connection, channel, queue, broker_arn }
}

impl Setup {
    /// Maps the queue to the recorder and waits until the mapping is `Enabled`; returns its UUID.
    async fn map(&self, batch_size: i32) -> String {
        let created = self
            .lambda
            .create_event_source_mapping()
            .function_name("recorder")
            .event_source_arn(&self.broker_arn)
            .queues(&self.queue)
            .batch_size(batch_size)
            .maximum_batching_window_in_seconds(1)
            .source_access_configurations(
                SourceAccessConfiguration::builder()
                    .r#type(SourceAccessType::BasicAuth)
                    .uri(format!("arn:aws:secretsmanager:us-east-1:{}:secret:MQaccess", self.t.account_id))
                    .build(),
            )
            .send()
            .await
            .expect("create event source mapping");
        let uuid = created.uuid().expect("UUID").to_owned();
        self.await_state(&uuid, "Enabled").await;
        uuid
    }

    async fn await_state(&self, uuid: &str, state: &str) {
        wait_until(Duration::from_secs(30), &format!("the mapping {state}"), || async {
            let got = self.lambda.get_event_source_mapping().uuid(uuid).send().await.ok()?;
            (got.state() == Some(state)).then_some(())
        })
        .await;
    }

    async fn publish(&self, body: &str, properties: BasicProperties) {
        self.channel
            .basic_publish("", &self.queue, BasicPublishOptions::default(), body.as_bytes(), properties)
            .await
            .expect("publish")
            .await
            .expect("publish confirm");
    }

    /// The events the function logged so far.
    async fn events(&self, env: &TestEnv) -> Vec<Value> {
        env.log_messages(&self.t, "recorder")
            .await
            .iter()
            .filter_map(|m| m.split_once("RMQEVENT ").map(|(_, json)| json.trim().to_owned()))
            .map(|json| serde_json::from_str(&json).expect("a logged event is JSON"))
            .collect()
    }

    /// `(body, message)` of every message of every logged event, in order.
    async fn messages(&self, env: &TestEnv) -> Vec<(String, Value)> {
        let key = format!("{}::/", self.queue);
        let mut out = Vec::new();
        for event in self.events(env).await {
            for m in event["rmqMessagesByQueue"][&key].as_array().cloned().unwrap_or_default() {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(m["data"].as_str().expect("data"))
                    .expect("base64");
                out.push((String::from_utf8(data).expect("utf-8"), m));
            }
        }
        out
    }

    /// Disables the mapping, waits until it is `Disabled` (the poller has let the queue go: whatever
    /// it had not acked is back in the queue) and returns the queue's message count.
    async fn disable_and_count(&self, uuid: &str) -> u32 {
        self.lambda.update_event_source_mapping().uuid(uuid).enabled(false).send().await.expect("disable");
        self.await_state(uuid, "Disabled").await;
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        self.channel
            .queue_declare(&self.queue, passive, FieldTable::default())
            .await
            .expect("inspect queue")
            .message_count()
    }

    async fn cleanup(self) {
        let _ = self.channel.queue_delete(&self.queue, QueueDeleteOptions::default()).await;
        let _ = self.connection.close(200, "done").await;
    }
}

async fn messages_arrive_in_the_rmq_shape_and_are_acked(env: &TestEnv) {
    let s = setup(env).await;
    let mut headers = FieldTable::default();
    headers.insert("header1".into(), AMQPValue::LongString("value1".into()));
    headers.insert("numberInHeader".into(), AMQPValue::LongInt(10));
    let detailed = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(4)
        .with_correlation_id("corr-1".into())
        .with_reply_to("replies".into())
        .with_expiration("600000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(2021)
        .with_type("order".into())
        .with_app_id("tests".into());
    s.publish("detailed", detailed).await;
    let uuid = s.map(10).await;
    for i in 0..14 {
        s.publish(&format!("plain-{i}"), BasicProperties::default()).await;
    }
    let messages = wait_until(Duration::from_secs(60), "15 messages processed", || async {
        let got = s.messages(env).await;
        (got.len() >= 15).then_some(got)
    })
    .await;
    let mut bodies: Vec<&str> = messages.iter().map(|(b, _)| b.as_str()).collect();
    bodies.sort_unstable();
    let mut expected: Vec<String> = (0..14).map(|i| format!("plain-{i}")).collect();
    expected.push("detailed".into());
    expected.sort_unstable();
    assert_eq!(bodies, expected, "each message once");

    for event in s.events(env).await {
        assert_eq!(event["eventSource"], "aws:rmq");
        assert_eq!(event["eventSourceArn"], s.broker_arn.as_str());
        let by_queue = event["rmqMessagesByQueue"].as_object().expect("rmqMessagesByQueue");
        assert_eq!(by_queue.keys().collect::<Vec<_>>(), [&format!("{}::/", s.queue)]);
        let batch = by_queue.values().next().and_then(Value::as_array).expect("messages");
        assert!((1..=10).contains(&batch.len()), "BatchSize 10: {}", batch.len());
    }
    let (_, detailed) = messages.iter().find(|(b, _)| b == "detailed").expect("the detailed message");
    assert_eq!(detailed["redelivered"], false);
    assert_eq!(
        detailed["basicProperties"],
        json!({
            "contentType": "text/plain",
            "contentEncoding": null,
            "headers": {"header1": {"bytes": [118, 97, 108, 117, 101, 49]}, "numberInHeader": 10},
            "deliveryMode": 2,
            "priority": 4,
            "correlationId": "corr-1",
            "replyTo": "replies",
            "expiration": "600000",
            "messageId": "msg-1",
            "timestamp": "Jan 1, 1970, 12:33:41 AM",
            "type": "order",
            "userId": null,
            "appId": "tests",
            "clusterId": null,
            "bodySize": 8
        })
    );
    let (_, plain) = messages.iter().find(|(b, _)| b == "plain-0").expect("a plain message");
    assert_eq!(plain["basicProperties"]["contentType"], Value::Null);
    assert_eq!(plain["basicProperties"]["bodySize"], 7);

    assert_eq!(s.disable_and_count(&uuid).await, 0, "every processed message was acked");
    assert_eq!(s.messages(env).await.len(), 15, "no message processed twice");
    s.cleanup().await;
}

async fn a_failed_batch_is_redelivered_on(env: &TestEnv) {
    let s = setup(env).await;
    s.publish("boom-once", BasicProperties::default()).await;
    s.publish("ok-1", BasicProperties::default()).await;
    let uuid = s.map(10).await;
    let messages = wait_until(Duration::from_secs(60), "the failed batch delivered again", || async {
        let got = s.messages(env).await;
        (got.len() >= 4).then_some(got)
    })
    .await;
    let seen: Vec<(&str, bool)> =
        messages.iter().map(|(b, m)| (b.as_str(), m["redelivered"].as_bool().expect("redelivered"))).collect();
    assert_eq!(seen, [("boom-once", false), ("ok-1", false), ("boom-once", true), ("ok-1", true)]);
    wait_until(Duration::from_secs(10), "LastProcessingResult OK", || async {
        let got = s.lambda.get_event_source_mapping().uuid(&uuid).send().await.ok()?;
        (got.last_processing_result() == Some("OK")).then_some(())
    })
    .await;
    assert_eq!(s.disable_and_count(&uuid).await, 0, "the redelivered batch was acked");
    assert_eq!(s.messages(env).await.len(), 4);
    s.cleanup().await;
}

/// The broker cancels the poller's consumer when its queue is deleted; the poller reports the problem
/// and retries with backoff until the queue is back, then consumes it again.
async fn the_poller_comes_back_when_its_queue_does_on(env: &TestEnv) {
    let s = setup(env).await;
    let uuid = s.map(10).await;
    s.publish("before", BasicProperties::default()).await;
    wait_until(Duration::from_secs(60), "the first message processed", || async {
        (s.messages(env).await.len() == 1).then_some(())
    })
    .await;
    s.channel.queue_delete(&s.queue, QueueDeleteOptions::default()).await.expect("delete queue");
    let result = || async {
        let got = s.lambda.get_event_source_mapping().uuid(&uuid).send().await.ok()?;
        got.last_processing_result().map(str::to_owned)
    };
    wait_until(Duration::from_secs(30), "a PROBLEM result while the queue is gone", || async {
        result().await.filter(|r| r.starts_with("PROBLEM: Connection error"))
    })
    .await;
    s.channel
        .queue_declare(&s.queue, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("declare again");
    s.publish("after", BasicProperties::default()).await;
    let messages = wait_until(Duration::from_secs(60), "the message sent after the queue came back", || async {
        let got = s.messages(env).await;
        (got.len() >= 2).then_some(got)
    })
    .await;
    let bodies: Vec<&str> = messages.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies, ["before", "after"]);
    wait_until(Duration::from_secs(10), "LastProcessingResult OK", || async { result().await.filter(|r| r == "OK") })
        .await;
    s.cleanup().await;
}

//! Asynchronous invocation settings end to end through the Rust AWS SDK: the EventInvokeConfig API
//! and `DeadLetterConfig` (SQLite, Postgres and the cluster), and what the Event runner does with
//! them: records to on-success / on-failure destinations (another Lamina function, an SQS queue on
//! the SQS server `scripts/test.sh` starts), dead letters with their attributes, retries and event
//! age limits, and failures with nowhere to go counted as dropped.

mod api;
mod dead_letters;
mod records;

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use lamina_tests::{Tenant, TestEnv};
use serde_json::Value;

pub use lamina_tests::create_python;

/// Logs `ATTEMPT <request id>` and returns its event.
pub const ECHO: &str =
    "def handler(event, context):\n    print('ATTEMPT ' + context.aws_request_id)\n    return event\n";

/// Logs `ATTEMPT <request id>` and fails with `ValueError('boom')`.
pub const FAILING: &str =
    "def handler(event, context):\n    print('ATTEMPT ' + context.aws_request_id)\n    raise ValueError('boom')\n";

/// Logs the event it receives as `RECORD <json>`: a destination whose invocations the test reads.
pub const CATCHER: &str =
    "import json\n\ndef handler(event, context):\n    print('RECORD ' + json.dumps(event))\n    return {}\n";

/// The JSON documents a [`CATCHER`] function logged.
pub async fn records_of(env: &TestEnv, t: &Tenant, function: &str) -> Vec<Value> {
    env.log_messages(t, function)
        .await
        .iter()
        .filter_map(|m| m.split_once("RECORD ").map(|(_, json)| json.trim().to_owned()))
        .map(|json| serde_json::from_str(&json).expect("a logged record is JSON"))
        .collect()
}

/// The request ids a function of [`ECHO`] / [`FAILING`] logged, one per attempt.
pub async fn attempts_of(env: &TestEnv, t: &Tenant, function: &str) -> Vec<String> {
    env.log_messages(t, function)
        .await
        .iter()
        .filter_map(|m| m.split_once("ATTEMPT ").map(|(_, id)| id.trim().to_owned()))
        .collect()
}

/// Invokes `function` asynchronously with `payload`; returns the request id.
pub async fn invoke_event(client: &aws_sdk_lambda::Client, function: &str, payload: &str) -> String {
    use aws_sdk_lambda::operation::RequestId as _;
    let out = client
        .invoke()
        .function_name(function)
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(Blob::new(payload.as_bytes().to_vec()))
        .send()
        .await
        .expect("Event invoke");
    assert_eq!(out.status_code(), 202);
    out.request_id().expect("the answer names the request").to_owned()
}

/// Long enough for a few Event attempts, their retries (0.2 s apart in tests) and a delivery.
pub const DELIVERY: Duration = Duration::from_secs(90);

/// Receives one message from the queue at `url`, waiting up to [`DELIVERY`].
pub async fn receive_one(sqs: &aws_sdk_sqs::Client, url: &str) -> aws_sdk_sqs::types::Message {
    lamina_tests::wait_until(DELIVERY, &format!("a message on {url}"), || async {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(1)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        out.messages.unwrap_or_default().into_iter().next()
    })
    .await
}

/// A fresh queue on the SQS server; its URL and ARN.
pub async fn new_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> (String, String) {
    let name = lamina_tests::external::unique(prefix);
    let url = lamina_tests::external::create_queue(sqs, &name, 30).await;
    let arn = lamina_tests::external::queue_arn(sqs, &url).await;
    (url, arn)
}

//! The SQS poller end to end: a queue on moto's SQS server, a Python function that logs every record
//! it is given, and a mapping created with the Lambda SDK. Messages reach the function as SQS sent
//! them (the `aws:sqs` shape), succeeded ones are deleted, failed ones (a function error, a batch
//! item failure, an invalid batch response) come back once the queue's visibility timeout has passed.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, FunctionResponseType, Runtime};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};
use lamina_tests::external::{create_queue, queue_arn, sqs, unique};
use lamina_tests::{Tenant, TestEnv, backend_tests, python_zip, wait_until};
use serde_json::Value;

backend_tests!(messages_reach_the_function_as_sent_and_are_deleted);

/// `#[tokio::test]`s on SQLite only (they exercise the poller, not the storage engine).
macro_rules! sqlite_tests {
    ($($name:ident => $body:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let env = TestEnv::start(lamina_tests::Backend::Sqlite).await.expect("sqlite always available");
            $body(&env).await;
            env.stop().await;
        }
    )*};
}

sqlite_tests!(
    reported_batch_item_failures_come_back_alone => reported_batch_item_failures_come_back_alone_on,
    an_invalid_batch_response_fails_the_whole_batch => an_invalid_batch_response_fails_the_whole_batch_on,
    a_function_error_leaves_the_batch_to_its_visibility_timeout =>
        a_function_error_leaves_the_batch_to_its_visibility_timeout_on,
    a_stopped_poller_holds_no_message_back => a_stopped_poller_holds_no_message_back_on,
);

/// Logs each batch (`SQSBATCH`) and record (`SQSRECORD`) with the time it ran; on a message's first
/// delivery, a body starting `fail-once` is reported as a batch item failure, `boom-once` fails the
/// invocation and `badresp-once` makes it answer a batch item failure naming no message of the batch.
const RECORDER: &str = r#"import json, time

def handler(event, context):
    now = time.time()
    records = event['Records']
    print('SQSBATCH ' + json.dumps({'at': now, 'size': len(records)}))
    failures, boom, bad = [], False, False
    for r in records:
        print('SQSRECORD ' + json.dumps({'at': now, 'record': r}))
        if r['attributes']['ApproximateReceiveCount'] == '1':
            body = r['body']
            if body.startswith('fail-once'):
                failures.append({'itemIdentifier': r['messageId']})
            boom = boom or body.startswith('boom-once')
            bad = bad or body.startswith('badresp-once')
    if boom:
        raise Exception('boom')
    if bad:
        return {'batchItemFailures': [{'itemIdentifier': 'no-such-message'}]}
    return {'batchItemFailures': failures}
"#;

struct Setup {
    t: Tenant,
    lambda: aws_sdk_lambda::Client,
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
}

/// A tenant with the recorder function and a fresh queue.
async fn setup(env: &TestEnv, visibility_timeout_s: u32) -> Setup {
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
    let sqs = sqs();
    let url = create_queue(&sqs, &unique("esm"), visibility_timeout_s).await;
    let arn = queue_arn(&sqs, &url).await;
    Setup { t, lambda, sqs, url, arn }
}

impl Setup {
    /// Maps the queue to the recorder and waits until the mapping is `Enabled`; returns its UUID.
    async fn map(&self, batch_size: i32, window_s: i32, report_failures: bool) -> String {
        let created = self
            .lambda
            .create_event_source_mapping()
            .function_name("recorder")
            .event_source_arn(&self.arn)
            .batch_size(batch_size)
            .maximum_batching_window_in_seconds(window_s)
            .set_function_response_types(report_failures.then(|| vec![FunctionResponseType::ReportBatchItemFailures]))
            .send()
            .await
            .expect("create event source mapping");
        let uuid = created.uuid().expect("UUID").to_owned();
        wait_until(Duration::from_secs(30), "the mapping Enabled", || async {
            let got = self.lambda.get_event_source_mapping().uuid(&uuid).send().await.ok()?;
            (got.state() == Some("Enabled")).then_some(())
        })
        .await;
        uuid
    }

    async fn send(&self, bodies: &[&str]) -> HashMap<String, (String, String)> {
        let mut sent = HashMap::new();
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(*body)
                        .build()
                        .expect("entry")
                })
                .collect();
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("SendMessageBatch");
            assert!(out.failed.is_empty(), "{:?}", out.failed);
            for ok in out.successful {
                let body = chunk[ok.id.parse::<usize>().expect("id")];
                sent.insert(ok.message_id, (body.to_owned(), ok.md5_of_message_body));
            }
        }
        sent
    }

    /// Whether the queue holds no message, visible or in flight.
    async fn drained(&self) -> bool {
        let got = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes");
        let attrs = got.attributes.unwrap_or_default();
        let count = |name| attrs.get(&name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(u64::MAX);
        count(QueueAttributeName::ApproximateNumberOfMessages) == 0
            && count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible) == 0
    }

    /// `(time, record)` for every record the function logged so far.
    async fn records(&self, env: &TestEnv) -> Vec<(f64, Value)> {
        self.logged(env, "SQSRECORD ")
            .await
            .into_iter()
            .map(|v| (v["at"].as_f64().expect("at"), v["record"].clone()))
            .collect()
    }

    /// Sizes of the batches the function was invoked with.
    async fn batches(&self, env: &TestEnv) -> Vec<u64> {
        self.logged(env, "SQSBATCH ").await.iter().map(|v| v["size"].as_u64().expect("size")).collect()
    }

    async fn logged(&self, env: &TestEnv, marker: &str) -> Vec<Value> {
        env.log_messages(&self.t, "recorder")
            .await
            .iter()
            .filter_map(|m| m.split_once(marker).map(|(_, json)| json.trim().to_owned()))
            .map(|json| serde_json::from_str(&json).expect("a logged line is JSON"))
            .collect()
    }

    /// Waits until the function has seen `count` records and the queue is empty.
    async fn await_drained(&self, env: &TestEnv, count: usize) -> Vec<(f64, Value)> {
        wait_until(Duration::from_secs(60), &format!("{count} records processed and the queue drained"), || async {
            let got = self.records(env).await;
            (got.len() >= count && self.drained().await).then_some(got)
        })
        .await
    }

    async fn last_processing_result(&self, uuid: &str) -> String {
        let got = self.lambda.get_event_source_mapping().uuid(uuid).send().await.expect("get mapping");
        got.last_processing_result().unwrap_or_default().to_owned()
    }
}

/// Messages sent before and after the mapping exists reach the function once each, as SQS sent them,
/// in batches no larger than `BatchSize` (larger than one ReceiveMessage call returns), and are
/// deleted.
async fn messages_reach_the_function_as_sent_and_are_deleted(env: &TestEnv) {
    let s = setup(env, 30).await;
    let early: Vec<String> = (0..25).map(|i| format!("early-{i}")).collect();
    let mut sent = s.send(&early.iter().map(String::as_str).collect::<Vec<_>>()).await;
    // One message with attributes of every type.
    let with_attributes = s
        .sqs
        .send_message()
        .queue_url(&s.url)
        .message_body("{\"json\": \"body\"}")
        .message_attributes(
            "s",
            MessageAttributeValue::builder().data_type("String").string_value("text").build().expect("attribute"),
        )
        .message_attributes(
            "n",
            MessageAttributeValue::builder().data_type("Number").string_value("12.5").build().expect("attribute"),
        )
        .message_attributes(
            "b",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(aws_sdk_sqs::primitives::Blob::new(b"\x00\x01bin".to_vec()))
                .build()
                .expect("attribute"),
        )
        .send()
        .await
        .expect("SendMessage");
    let attributed = with_attributes.message_id().expect("id").to_owned();
    sent.insert(
        attributed.clone(),
        ("{\"json\": \"body\"}".into(), with_attributes.md5_of_message_body().expect("md5").to_owned()),
    );

    let uuid = s.map(25, 2, false).await;
    let late: Vec<String> = (0..5).map(|i| format!("late-{i}")).collect();
    sent.extend(s.send(&late.iter().map(String::as_str).collect::<Vec<_>>()).await);

    let records = s.await_drained(env, sent.len()).await;
    // SQS delivers at least once, and moto's server can hand one message to two concurrent receives
    // (its ReceiveMessage is not atomic); a copy received within the visibility timeout is that, not
    // the poller failing to delete (which would bring it back only after 30 s, long after the drain).
    let mut copies: HashMap<&str, Vec<&Value>> = HashMap::new();
    for (_, r) in &records {
        copies.entry(r["messageId"].as_str().expect("messageId")).or_default().push(&r["attributes"]);
    }
    assert_eq!(copies.len(), sent.len(), "every message reached the function");
    copies.retain(|_, seen| seen.len() > 1);
    if !copies.is_empty() {
        eprintln!("messages the server delivered twice: {copies:?}");
    }
    for (_, r) in &records {
        let id = r["messageId"].as_str().expect("messageId");
        let (body, md5) = sent.get(id).unwrap_or_else(|| panic!("a message that was sent: {r}"));
        assert_eq!(r["body"], body.as_str());
        assert_eq!(r["md5OfBody"], md5.as_str());
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], s.arn.as_str());
        assert_eq!(r["awsRegion"], s.arn.split(':').nth(3).expect("region"));
        assert!(r["receiptHandle"].as_str().is_some_and(|h| !h.is_empty()), "{r}");
        let attributes = &r["attributes"];
        for name in ["ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"] {
            assert!(attributes[name].is_string(), "{name} in {r}");
        }
        if id == attributed {
            assert_eq!(
                r["messageAttributes"],
                serde_json::json!({
                    "s": {"stringValue": "text", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
                    "n": {"stringValue": "12.5", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
                    "b": {"binaryValue": "AAFiaW4=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
                })
            );
        } else {
            assert_eq!(r["messageAttributes"], serde_json::json!({}), "{r}");
        }
    }
    let batches = s.batches(env).await;
    assert!(batches.iter().all(|&n| (1..=25).contains(&n)), "batch sizes {batches:?}");
    assert!(batches.iter().any(|&n| n > 10), "a batch gathered from several receives: {batches:?}");
    assert_eq!(s.last_processing_result(&uuid).await, "OK");

    // Disabling stops the poller in the middle of its 20 s long polls, not after them.
    let asked = std::time::Instant::now();
    s.lambda.update_event_source_mapping().uuid(&uuid).enabled(false).send().await.expect("disable");
    wait_until(Duration::from_secs(30), "the mapping Disabled", || async {
        let got = s.lambda.get_event_source_mapping().uuid(&uuid).send().await.ok()?;
        (got.state() == Some("Disabled")).then_some(())
    })
    .await;
    assert!(asked.elapsed() < Duration::from_secs(15), "disabled after {:?}, not at once", asked.elapsed());
}

/// With `ReportBatchItemFailures`, the messages the function names come back (after the visibility
/// timeout) and only they: the others are deleted at once.
async fn reported_batch_item_failures_come_back_alone_on(env: &TestEnv) {
    let s = setup(env, 2).await;
    let sent = s.send(&["ok-1", "fail-once-1", "ok-2", "fail-once-2", "ok-3"]).await;
    s.map(10, 1, true).await;
    let records = s.await_drained(env, 7).await;
    let mut seen: HashMap<&str, Vec<(f64, &Value)>> = HashMap::new();
    for (at, r) in &records {
        seen.entry(r["body"].as_str().expect("body")).or_default().push((*at, r));
    }
    assert_eq!(seen.len(), sent.len());
    for (body, deliveries) in &seen {
        let counts: Vec<&str> = deliveries
            .iter()
            .map(|(_, r)| r["attributes"]["ApproximateReceiveCount"].as_str().expect("count"))
            .collect();
        if body.starts_with("fail-once") {
            assert_eq!(counts, ["1", "2"], "{body} failed once, then succeeded");
            let gap = deliveries[1].0 - deliveries[0].0;
            assert!(gap >= 1.5, "{body} came back after the 2 s visibility timeout, not after {gap:.2} s");
        } else {
            assert_eq!(counts, ["1"], "{body} succeeded and was deleted");
        }
    }
}

/// A batch response naming no message of the batch counts as a failure of the whole batch.
async fn an_invalid_batch_response_fails_the_whole_batch_on(env: &TestEnv) {
    let s = setup(env, 2).await;
    s.send(&["badresp-once", "ok-1", "ok-2"]).await;
    s.map(10, 1, true).await;
    let records = s.await_drained(env, 6).await;
    let mut per_body: HashMap<&str, usize> = HashMap::new();
    for (_, r) in &records {
        *per_body.entry(r["body"].as_str().expect("body")).or_default() += 1;
    }
    assert_eq!(per_body, HashMap::from([("badresp-once", 2), ("ok-1", 2), ("ok-2", 2)]), "every message twice");
}

/// A function error deletes nothing: the batch comes back once the visibility timeout has passed
/// (not sooner), then succeeds and is deleted; the mapping's `LastProcessingResult` follows.
async fn a_function_error_leaves_the_batch_to_its_visibility_timeout_on(env: &TestEnv) {
    let s = setup(env, 3).await;
    s.send(&["boom-once", "ok-1", "ok-2"]).await;
    let uuid = s.map(10, 1, false).await;
    let records = s.await_drained(env, 6).await;
    let mut per_id: HashMap<&str, Vec<(f64, &str)>> = HashMap::new();
    for (at, r) in &records {
        let count = r["attributes"]["ApproximateReceiveCount"].as_str().expect("count");
        per_id.entry(r["messageId"].as_str().expect("id")).or_default().push((*at, count));
    }
    assert_eq!(per_id.len(), 3);
    for (id, deliveries) in &per_id {
        assert_eq!(deliveries.iter().map(|d| d.1).collect::<Vec<_>>(), ["1", "2"], "{id}");
        let gap = deliveries[1].0 - deliveries[0].0;
        assert!(gap >= 2.5, "{id} came back after the 3 s visibility timeout, not after {gap:.2} s");
    }
    wait_until(Duration::from_secs(10), "LastProcessingResult OK", || async {
        (s.last_processing_result(&uuid).await == "OK").then_some(())
    })
    .await;
}

/// A poller stops in the middle of its long polls; a message one of them still takes is made visible
/// again at once, not after the queue's 120 s visibility timeout, and is processed once the mapping
/// is enabled again.
async fn a_stopped_poller_holds_no_message_back_on(env: &TestEnv) {
    let s = setup(env, 120).await;
    let uuid = s.map(10, 0, false).await;
    s.lambda.update_event_source_mapping().uuid(&uuid).enabled(false).send().await.expect("disable");
    let state = |want: &'static str| {
        let s = &s;
        let uuid = uuid.clone();
        async move {
            wait_until(Duration::from_secs(30), &format!("the mapping {want}"), || async {
                let got = s.lambda.get_event_source_mapping().uuid(&uuid).send().await.ok()?;
                (got.state() == Some(want)).then_some(())
            })
            .await
        }
    };
    state("Disabled").await;
    s.send(&["after-disable"]).await;
    // Peeks without hiding it (visibility timeout 0 for this receive).
    wait_until(Duration::from_secs(40), "the message visible", || async {
        let got = s
            .sqs
            .receive_message()
            .queue_url(&s.url)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        got.messages.filter(|m| !m.is_empty()).map(|_| ())
    })
    .await;
    assert!(s.records(env).await.is_empty(), "a disabled mapping invokes nothing");
    s.lambda.update_event_source_mapping().uuid(&uuid).enabled(true).send().await.expect("enable");
    state("Enabled").await;
    let records = s.await_drained(env, 1).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].1["body"], "after-disable");
}

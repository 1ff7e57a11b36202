//! Invocation records: what an Event invocation that failed for good, or succeeded, sends to its
//! destination (another Lamina function, an SQS queue), and what happens with nowhere to send it.

use aws_sdk_lambda::types::{DestinationConfig, OnFailure, OnSuccess};
use lamina_tests::{Backend, TestEnv, backend_tests, wait_until};
use serde_json::{Value, json};

use crate::{
    CATCHER, DELIVERY, ECHO, FAILING, attempts_of, create_python, invoke_event, new_queue, receive_one, records_of,
};

backend_tests!(
    failures_go_to_a_function_or_a_queue,
    successes_go_to_their_destination,
    failures_with_nowhere_to_go_are_dropped_and_counted
);

fn on_failure(arn: &str) -> DestinationConfig {
    DestinationConfig::builder().on_failure(OnFailure::builder().destination(arn).build()).build()
}

fn on_success(arn: &str) -> DestinationConfig {
    DestinationConfig::builder().on_success(OnSuccess::builder().destination(arn).build()).build()
}

/// Every event accepted so far has finished (destination invocations included).
async fn drained(env: &TestEnv) {
    wait_until(DELIVERY, "the queue to drain", || async { (env.pending_events().await == 0).then_some(()) }).await;
}

/// Checks the parts of a record every condition shares.
fn assert_record(record: &Value, request_id: &str, function_arn: &str, condition: &str, count: i64) {
    assert_eq!(record["version"], "1.0", "{record:#}");
    let timestamp = record["timestamp"].as_str().expect("timestamp");
    chrono::DateTime::parse_from_rfc3339(timestamp).expect("an RFC 3339 timestamp");
    assert!(timestamp.ends_with('Z') && timestamp.len() == "2019-11-14T18:16:05.568Z".len(), "{timestamp}");
    assert_eq!(
        record["requestContext"],
        json!({
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": count,
        })
    );
}

async fn failures_go_to_a_function_or_a_queue(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let arn = |name: &str| format!("arn:aws:lambda:{}:{}:function:{name}", env.region, t.account_id);
    create_python(&c, "fails", FAILING).send().await.expect("create fails");
    create_python(&c, "catcher", CATCHER).send().await.expect("create catcher");
    c.put_function_event_invoke_config()
        .function_name("fails")
        .maximum_retry_attempts(0)
        .destination_config(on_failure(&arn("catcher")))
        .send()
        .await
        .expect("put");

    let id = invoke_event(&c, "fails", r#"{"order": 7}"#).await;
    let record = wait_until(DELIVERY, "the failure record at the catcher", || async {
        records_of(env, &t, "catcher").await.into_iter().next()
    })
    .await;
    assert_record(&record, &id, &format!("{}:$LATEST", arn("fails")), "RetriesExhausted", 1);
    assert_eq!(record["requestPayload"], json!({"order": 7}));
    assert_eq!(
        record["responseContext"],
        json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
    );
    assert_eq!(record["responsePayload"]["errorMessage"], "boom");
    assert_eq!(record["responsePayload"]["errorType"], "ValueError");
    drained(env).await;
    assert_eq!(attempts_of(env, &t, "fails").await, [id], "MaximumRetryAttempts 0: one attempt, no retry");
    assert_eq!(records_of(env, &t, "catcher").await.len(), 1, "one record");

    // An SQS queue on the SQS server, from a second function (settings are cached for seconds).
    let sqs = lamina_tests::external::sqs();
    let (url, queue) = new_queue(&sqs, "failures").await;
    create_python(&c, "fails-too", FAILING).send().await.expect("create fails-too");
    c.put_function_event_invoke_config()
        .function_name("fails-too")
        .maximum_retry_attempts(1)
        .destination_config(on_failure(&queue))
        .send()
        .await
        .expect("put");
    let id = invoke_event(&c, "fails-too", r#"{"order": 8}"#).await;
    let message = receive_one(&sqs, &url).await;
    let record: Value = serde_json::from_str(message.body().expect("body")).expect("the record is JSON");
    assert_record(&record, &id, &format!("{}:$LATEST", arn("fails-too")), "RetriesExhausted", 2);
    assert_eq!(record["requestPayload"], json!({"order": 8}));
    assert_eq!(record["responsePayload"]["errorMessage"], "boom");
    drained(env).await;
    assert_eq!(attempts_of(env, &t, "fails-too").await, [id.clone(), id], "MaximumRetryAttempts 1: two attempts");
}

async fn successes_go_to_their_destination(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let arn = format!("arn:aws:lambda:{}:{}:function:ok", env.region, t.account_id);
    create_python(&c, "ok", ECHO).publish(true).send().await.expect("create");
    c.create_alias().function_name("ok").name("live").function_version("1").send().await.expect("alias");
    let sqs = lamina_tests::external::sqs();
    let (url, queue) = new_queue(&sqs, "successes").await;
    for qualifier in ["$LATEST", "live"] {
        c.put_function_event_invoke_config()
            .function_name("ok")
            .qualifier(qualifier)
            .destination_config(on_success(&queue))
            .send()
            .await
            .expect("put");
    }

    let id = invoke_event(&c, "ok", r#"{"hello": "world"}"#).await;
    let message = receive_one(&sqs, &url).await;
    let record: Value = serde_json::from_str(message.body().expect("body")).expect("the record is JSON");
    assert_record(&record, &id, &format!("{arn}:$LATEST"), "Success", 1);
    assert_eq!(record["requestPayload"], json!({"hello": "world"}));
    assert_eq!(record["responseContext"], json!({"statusCode": 200, "executedVersion": "$LATEST"}));
    assert_eq!(record["responsePayload"], json!({"hello": "world"}));
    let handle = message.receipt_handle().expect("receipt handle");
    sqs.delete_message().queue_url(&url).receipt_handle(handle).send().await.expect("DeleteMessage");

    // Through an alias: the record names the alias and the version it ran.
    let id = invoke_event(&c, "ok:live", r#"[1, 2]"#).await;
    let message = receive_one(&sqs, &url).await;
    let record: Value = serde_json::from_str(message.body().expect("body")).expect("the record is JSON");
    assert_record(&record, &id, &format!("{arn}:live"), "Success", 1);
    assert_eq!(record["responseContext"], json!({"statusCode": 200, "executedVersion": "1"}));
    assert_eq!(record["responsePayload"], json!([1, 2]));
}

/// `lamina_async_events_dropped_total` of the server's `/metrics` (in process: the counter is the
/// process's, shared by every server the tests run in it).
async fn dropped_total(env: &TestEnv) -> f64 {
    let text = reqwest::get(format!("{}/metrics", env.admin_endpoint()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("lamina_async_events_dropped_total ").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

async fn failures_with_nowhere_to_go_are_dropped_and_counted(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    create_python(&c, "fails", FAILING).send().await.expect("create");
    c.put_function_event_invoke_config().function_name("fails").maximum_retry_attempts(0).send().await.expect("put");
    let in_process = env.backend != Backend::Cluster;
    let before = if in_process { dropped_total(env).await } else { 0.0 };
    let id = invoke_event(&c, "fails", "{}").await;
    drained(env).await;
    // Dropped after the function's own retry limit, before the queue's two retries.
    assert_eq!(attempts_of(env, &t, "fails").await, [id]);
    if in_process {
        let after = dropped_total(env).await;
        assert!(after > before, "the dropped event is counted ({before} -> {after})");
    }
}

//! `DeadLetterConfig`: kept per version, SQS queues only, and what a dead letter carries; events
//! that grow too old to run.

use std::time::Duration;

use aws_sdk_lambda::types::{DeadLetterConfig, DestinationConfig, OnFailure};
use aws_sdk_sqs::types::MessageAttributeValue;
use lamina_tests::{Backend, TestEnv, backend_tests, error_of, wait_until};
use serde_json::{Value, json};

use crate::{ECHO, FAILING, attempts_of, create_python, invoke_event, new_queue, receive_one};

backend_tests!(dead_letter_config_is_kept_per_version, failed_events_reach_the_dead_letter_queue);

fn dlq(arn: &str) -> DeadLetterConfig {
    DeadLetterConfig::builder().target_arn(arn).build()
}

async fn dead_letter_config_is_kept_per_version(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let first = format!("arn:aws:sqs:{}:123456789012:first-dlq", env.region);
    let second = format!("arn:aws:sqs:{}:123456789012:second-dlq", env.region);
    let created = create_python(&c, "f", ECHO).dead_letter_config(dlq(&first)).send().await.expect("create");
    assert_eq!(created.dead_letter_config().and_then(|d| d.target_arn()), Some(first.as_str()));
    let got = c.get_function().function_name("f").send().await.expect("get");
    let config = got.configuration().expect("configuration");
    assert_eq!(config.dead_letter_config().and_then(|d| d.target_arn()), Some(first.as_str()));

    let updated = c
        .update_function_configuration()
        .function_name("f")
        .dead_letter_config(dlq(&second))
        .send()
        .await
        .expect("update");
    assert_eq!(updated.dead_letter_config().and_then(|d| d.target_arn()), Some(second.as_str()));
    let published = c.publish_version().function_name("f").send().await.expect("publish");
    assert_eq!(published.version(), Some("1"));
    assert_eq!(published.dead_letter_config().and_then(|d| d.target_arn()), Some(second.as_str()));

    // An empty TargetArn removes the queue from $LATEST; the published version keeps its own.
    let cleared = c
        .update_function_configuration()
        .function_name("f")
        .dead_letter_config(DeadLetterConfig::builder().target_arn("").build())
        .send()
        .await
        .expect("clear");
    assert!(cleared.dead_letter_config().is_none(), "{cleared:?}");
    let latest = c.get_function_configuration().function_name("f").send().await.expect("get $LATEST");
    assert!(latest.dead_letter_config().is_none());
    let v1 = c.get_function_configuration().function_name("f").qualifier("1").send().await.expect("get 1");
    assert_eq!(v1.dead_letter_config().and_then(|d| d.target_arn()), Some(second.as_str()));
    // Only a DeadLetterConfig member changes it.
    c.update_function_configuration().function_name("f").description("d").send().await.expect("update");
    let published = c.publish_version().function_name("f").send().await.expect("publish 2");
    assert!(published.dead_letter_config().is_none(), "a new version from a changed DLQ: {published:?}");

    // SNS topics are dead-letter targets on AWS; Lamina delivers to SQS only and says so.
    let topic = format!("arn:aws:sns:{}:123456789012:alerts", env.region);
    let sns = c.update_function_configuration().function_name("f").dead_letter_config(dlq(&topic)).send().await;
    let (code, message) = error_of(sns);
    assert_eq!(code, "InvalidParameterValueException");
    assert!(message.contains(&topic) && message.contains("SQS"), "{message}");
    let bad = create_python(&c, "g", ECHO).dead_letter_config(dlq("queue")).send().await;
    let (code, message) = error_of(bad);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("at 'deadLetterConfig.targetArn'"), "{message}");
}

fn string_attribute(
    attributes: &std::collections::HashMap<String, MessageAttributeValue>,
    name: &str,
) -> (String, String) {
    let a = attributes.get(name).unwrap_or_else(|| panic!("attribute {name} in {attributes:?}"));
    (a.data_type().to_owned(), a.string_value().unwrap_or_default().to_owned())
}

async fn failed_events_reach_the_dead_letter_queue(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let sqs = lamina_tests::external::sqs();
    let (url, queue) = new_queue(&sqs, "dead-letters").await;
    create_python(&c, "fails", FAILING).dead_letter_config(dlq(&queue)).send().await.expect("create");
    c.put_function_event_invoke_config().function_name("fails").maximum_retry_attempts(1).send().await.expect("put");

    let payload = r#"{"order": 9, "note": "é"}"#;
    let id = invoke_event(&c, "fails", payload).await;
    let message = receive_one(&sqs, &url).await;
    // The event as it came, with the request id, the status and the error in attributes.
    assert_eq!(message.body(), Some(payload));
    let attributes = message.message_attributes().expect("message attributes");
    assert_eq!(string_attribute(attributes, "RequestID"), ("String".to_owned(), id.clone()));
    assert_eq!(string_attribute(attributes, "ErrorCode"), ("Number".to_owned(), "200".to_owned()));
    assert_eq!(string_attribute(attributes, "ErrorMessage"), ("String".to_owned(), "boom".to_owned()));
    wait_until(crate::DELIVERY, "the queue to drain", || async { (env.pending_events().await == 0).then_some(()) })
        .await;
    assert_eq!(attempts_of(env, &t, "fails").await, [id.clone(), id], "MaximumRetryAttempts 1: two attempts");
}

/// An event that cannot run (reserved concurrency 0) is retried with backoff until it is older
/// than the function's `MaximumEventAgeInSeconds` (60 s, the least AWS allows), then fails with
/// `EventAgeExceeded`: a record without a response to the on-failure destination, and the event
/// to the dead-letter queue. About a minute on SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_events_fail_with_event_age_exceeded() {
    let env = TestEnv::start_with(Backend::Sqlite, |o| {
        o.queue.min_backoff = Duration::from_millis(200);
        o.queue.max_backoff = Duration::from_secs(1);
    })
    .await
    .expect("sqlite always available");
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let sqs = lamina_tests::external::sqs();
    let (records_url, records) = new_queue(&sqs, "expired-records").await;
    let (letters_url, letters) = new_queue(&sqs, "expired-letters").await;
    create_python(&c, "stuck", ECHO).dead_letter_config(dlq(&letters)).send().await.expect("create");
    c.put_function_concurrency().function_name("stuck").reserved_concurrent_executions(0).send().await.expect("zero");
    c.put_function_event_invoke_config()
        .function_name("stuck")
        .maximum_event_age_in_seconds(60)
        .destination_config(
            DestinationConfig::builder().on_failure(OnFailure::builder().destination(&records).build()).build(),
        )
        .send()
        .await
        .expect("put");

    let id = invoke_event(&c, "stuck", r#"{"late": true}"#).await;
    let message = wait_until(Duration::from_secs(150), "the expiry record", || async {
        let out = sqs.receive_message().queue_url(&records_url).wait_time_seconds(5).send().await.expect("receive");
        out.messages.unwrap_or_default().into_iter().next()
    })
    .await;
    let record: Value = serde_json::from_str(message.body().expect("body")).expect("the record is JSON");
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(record["requestContext"]["condition"], "EventAgeExceeded");
    assert_eq!(record["requestPayload"], json!({"late": true}));
    assert!(
        record.get("responseContext").is_none() && record.get("responsePayload").is_none(),
        "never ran: {record:#}"
    );
    let letter = receive_one(&sqs, &letters_url).await;
    assert_eq!(letter.body(), Some(r#"{"late": true}"#));
    let attributes = letter.message_attributes().expect("message attributes");
    assert_eq!(string_attribute(attributes, "RequestID").1, id);
    assert_eq!(string_attribute(attributes, "ErrorCode"), ("Number".to_owned(), "429".to_owned()));
    assert!(attempts_of(&env, &t, "stuck").await.is_empty(), "the function never ran");
    env.stop().await;
}

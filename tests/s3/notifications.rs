//! S3 event notifications: configured only where the function's policy lets S3 invoke it, delivered
//! once per matching object event as an Event invocation, durably.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::FunctionCode;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, LambdaFunctionConfiguration, NotificationConfiguration,
    NotificationConfigurationFilter, S3KeyFilter,
};
use lamina_tests::{Tenant, TestEnv, backend_tests, python_zip, wait_until};
use serde_json::Value;

use crate::{bucket_name, create_python, s3_error};

backend_tests!(notifications_invoke_the_function_once_per_matching_event, function_code_answers_through_s3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_survive_a_restart_sqlite() {
    notifications_survive_a_restart(lamina_tests::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_survive_a_restart_postgres() {
    notifications_survive_a_restart(lamina_tests::Backend::Postgres).await;
}

/// A function that logs each S3 record it receives as one `S3EVENT <json>` line.
fn recorder() -> FunctionCode {
    let code = "import json\n\ndef handler(event, context):\n    for r in event['Records']:\n        print('S3EVENT ' + json.dumps(r))\n    return 'ok'\n";
    FunctionCode::builder().zip_file(Blob::new(python_zip(code))).build()
}

/// The S3 records the function logged so far.
async fn records(env: &TestEnv, t: &Tenant, function: &str) -> Vec<Value> {
    env.log_messages(t, function)
        .await
        .iter()
        .filter_map(|m| m.split_once("S3EVENT ").map(|(_, json)| json.trim().to_owned()))
        .map(|json| serde_json::from_str(&json).expect("a logged record is JSON"))
        .collect()
}

fn notify(function_arn: &str, events: &[Event], prefix: &str, suffix: &str) -> NotificationConfiguration {
    let rules = vec![
        FilterRule::builder().name(FilterRuleName::Prefix).value(prefix).build(),
        FilterRule::builder().name(FilterRuleName::Suffix).value(suffix).build(),
    ];
    let config = LambdaFunctionConfiguration::builder()
        .id("to-recorder")
        .lambda_function_arn(function_arn)
        .set_events(Some(events.to_vec()))
        .filter(
            NotificationConfigurationFilter::builder()
                .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
                .build(),
        )
        .build()
        .expect("lambda configuration");
    NotificationConfiguration::builder().lambda_function_configurations(config).build()
}

/// Creates the recorder, a bucket, and the permission; returns the function's ARN.
async fn setup(env: &TestEnv, t: &Tenant, bucket: &str) -> String {
    let c = env.lambda(t);
    let created = create_python(&c, "recorder", recorder()).send().await.expect("create");
    let arn = created.function_arn().expect("arn").to_owned();
    env.s3(t).create_bucket().bucket(bucket).send().await.expect("create bucket");
    c.add_permission()
        .function_name("recorder")
        .statement_id("s3-invoke")
        .action("lambda:InvokeFunction")
        .principal("s3.amazonaws.com")
        .source_arn(format!("arn:aws:s3:::{bucket}"))
        .source_account(&t.account_id)
        .send()
        .await
        .expect("add permission");
    arn
}

async fn notifications_invoke_the_function_once_per_matching_event(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let s3 = env.s3(&t);
    let bucket = bucket_name("events");
    let created = create_python(&c, "recorder", recorder()).send().await.expect("create");
    let arn = created.function_arn().expect("arn").to_owned();
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    let config = notify(&arn, &[Event::S3ObjectCreated, Event::from("s3:ObjectRemoved:Delete")], "in/", ".txt");

    // Without the permission S3 refuses the configuration.
    let refused = s3.put_bucket_notification_configuration().bucket(&bucket).notification_configuration(config.clone());
    assert_eq!(s3_error(refused.send().await), "InvalidArgument");
    // A permission for another bucket does not do either.
    c.add_permission()
        .function_name("recorder")
        .statement_id("other-bucket")
        .action("lambda:InvokeFunction")
        .principal("s3.amazonaws.com")
        .source_arn("arn:aws:s3:::some-other-bucket")
        .send()
        .await
        .expect("add permission");
    let refused = s3.put_bucket_notification_configuration().bucket(&bucket).notification_configuration(config.clone());
    assert_eq!(s3_error(refused.send().await), "InvalidArgument");
    c.add_permission()
        .function_name("recorder")
        .statement_id("s3-invoke")
        .action("lambda:InvokeFunction")
        .principal("s3.amazonaws.com")
        .source_arn(format!("arn:aws:s3:::{bucket}"))
        .source_account(&t.account_id)
        .send()
        .await
        .expect("add permission");
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(config)
        .send()
        .await
        .expect("configure notifications");
    let got = s3.get_bucket_notification_configuration().bucket(&bucket).send().await.expect("get configuration");
    assert_eq!(got.lambda_function_configurations().len(), 1);
    assert_eq!(got.lambda_function_configurations()[0].lambda_function_arn(), arn.as_str());

    s3.put_object()
        .bucket(&bucket)
        .key("in/hello.txt")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .expect("put");
    let first = wait_until(Duration::from_secs(30), "the ObjectCreated record", || async {
        let got = records(env, &t, "recorder").await;
        (!got.is_empty() && env.pending_events().await == 0).then_some(got)
    })
    .await;
    assert_eq!(first.len(), 1, "one invocation per event: {first:?}");
    let r = &first[0];
    assert_eq!(r["eventSource"], "aws:s3");
    assert_eq!(r["eventName"], "ObjectCreated:Put");
    assert_eq!(r["awsRegion"], env.region.as_str());
    assert_eq!(r["s3"]["bucket"]["name"], bucket.as_str());
    assert_eq!(r["s3"]["bucket"]["arn"], format!("arn:aws:s3:::{bucket}").as_str());
    assert_eq!(r["s3"]["object"]["key"], "in/hello.txt");
    assert_eq!(r["s3"]["object"]["size"], 5);
    assert!(r["eventVersion"].is_string() && r["eventTime"].is_string() && r["s3"]["object"]["sequencer"].is_string());

    // Keys outside the filter: nothing is queued (notifications are queued before PutObject answers).
    for key in ["in/hello.jpg", "out/hello.txt"] {
        s3.put_object().bucket(&bucket).key(key).body(ByteStream::from_static(b"x")).send().await.expect("put");
        assert_eq!(env.pending_events().await, 0, "{key} matched no rule");
    }

    s3.delete_object().bucket(&bucket).key("in/hello.txt").send().await.expect("delete");
    let all = wait_until(Duration::from_secs(30), "the ObjectRemoved record", || async {
        let got = records(env, &t, "recorder").await;
        (got.len() >= 2 && env.pending_events().await == 0).then_some(got)
    })
    .await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1]["eventName"], "ObjectRemoved:Delete");
    assert_eq!(all[1]["s3"]["object"]["key"], "in/hello.txt");
}

/// An acknowledged PutObject's notification is on disk: a server stopped before running it runs it
/// after the restart.
async fn notifications_survive_a_restart(backend: lamina_tests::Backend) {
    let Some(env) = TestEnv::start_with(backend, |o| o.async_worker = false).await else { return };
    let t = env.tenant().await;
    let bucket = bucket_name("durable");
    let arn = setup(&env, &t, &bucket).await;
    let s3 = env.s3(&t);
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(notify(&arn, &[Event::S3ObjectCreatedPut], "", ""))
        .send()
        .await
        .expect("configure notifications");
    s3.put_object().bucket(&bucket).key("k").body(ByteStream::from_static(b"v")).send().await.expect("put");
    assert_eq!(env.pending_events().await, 1, "queued before PutObject answered");
    let resumed = env.restart(|o| o.async_worker = true).await;
    let got = wait_until(Duration::from_secs(30), "the notification to run after the restart", || async {
        let got = records(&resumed, &t, "recorder").await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(got[0]["s3"]["object"]["key"], "k");
    assert_eq!(got[0]["eventName"], "ObjectCreated:Put");
    resumed.stop().await;
}

/// The guide's S3 tutorial in small: an upload under `in/` runs a function that reads the object back
/// through the S3 API with the credentials its sandbox was given (boto3, unconfigured) and writes a
/// processed copy under `out/`.
async fn function_code_answers_through_s3(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let s3 = env.s3(&t);
    let bucket = bucket_name("tutorial");
    let code = "import boto3\n\ns3 = boto3.client('s3')\n\ndef handler(event, context):\n    for r in event['Records']:\n        bucket = r['s3']['bucket']['name']\n        key = r['s3']['object']['key']\n        body = s3.get_object(Bucket=bucket, Key=key)['Body'].read()\n        s3.put_object(Bucket=bucket, Key='out/' + key[3:], Body=body.upper())\n";
    let created = create_python(&c, "upper", FunctionCode::builder().zip_file(Blob::new(python_zip(code))).build())
        .timeout(60)
        .send()
        .await
        .expect("create");
    let arn = created.function_arn().expect("arn").to_owned();
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    c.add_permission()
        .function_name("upper")
        .statement_id("s3")
        .action("lambda:InvokeFunction")
        .principal("s3.amazonaws.com")
        .source_arn(format!("arn:aws:s3:::{bucket}"))
        .send()
        .await
        .expect("add permission");
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(notify(&arn, &[Event::S3ObjectCreated], "in/", ""))
        .send()
        .await
        .expect("configure notifications");
    s3.put_object()
        .bucket(&bucket)
        .key("in/note.txt")
        .body(ByteStream::from_static(b"shout"))
        .send()
        .await
        .expect("put");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let written = loop {
        if let Ok(got) = s3.get_object().bucket(&bucket).key("out/note.txt").send().await {
            break got.body.collect().await.expect("body").into_bytes();
        }
        if tokio::time::Instant::now() > deadline {
            panic!("no copy under out/; the function logged: {:#?}", env.log_messages(&t, "upper").await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(written.as_ref(), b"SHOUT");
    // The copy was written as the function's account: it owns the bucket, so it lists the key.
    let listed = s3.list_objects_v2().bucket(&bucket).prefix("out/").send().await.expect("list");
    assert_eq!(listed.contents().len(), 1);
}

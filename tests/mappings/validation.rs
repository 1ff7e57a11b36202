//! What each source kind accepts, with AWS's error types and messages: model constraints are
//! `ValidationException`, service checks `InvalidParameterValueException`, duplicates
//! `ResourceConflictException`, unknown mappings `ResourceNotFoundException`.
//!
//! The mappings created here are disabled: their sources do not exist and nothing polls them.

use aws_sdk_lambda::primitives::DateTime;
use aws_sdk_lambda::types::{DestinationConfig, EventSourcePosition, FunctionResponseType, OnFailure, OnSuccess};
use lamina_tests::{TestEnv, error_of};

use crate::{StatusProbe, function, require_local_servers};

crate::engine_tests!(sqs_rules, kinesis_rules, mq_rules, function_and_conflict_rules, unknown_mappings);

mod cluster {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn function_and_conflict_rules() {
        let Some(env) = lamina_tests::TestEnv::start(lamina_tests::Backend::Cluster).await else { return };
        super::function_and_conflict_rules(&env).await;
        env.stop().await;
    }
}

fn ipv(message: &str) -> (String, String) {
    ("InvalidParameterValueException".to_owned(), message.to_owned())
}

fn model(violation: &str) -> (String, String) {
    ("ValidationException".to_owned(), format!("1 validation error detected: {violation}"))
}

async fn sqs_rules(env: &TestEnv) {
    require_local_servers();
    let t = env.tenant().await;
    let client = env.lambda(&t);
    function(&client, "f", false).await;
    let queue = format!("arn:aws:sqs:{}:{}:orders", env.region, t.account_id);
    let create = || client.create_event_source_mapping().function_name("f").event_source_arn(&queue).enabled(false);

    assert_eq!(
        error_of(create().starting_position(EventSourcePosition::Latest).send().await),
        ipv("StartingPosition is not valid for SQS event sources.")
    );
    assert_eq!(
        error_of(create().batch_size(11).send().await),
        ipv("Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10")
    );
    assert_eq!(
        error_of(create().batch_size(10_001).maximum_batching_window_in_seconds(1).send().await),
        model(
            "Value '10001' at 'batchSize' failed to satisfy constraint: Member must have value less than or equal to 10000"
        )
    );
    assert_eq!(
        error_of(create().maximum_batching_window_in_seconds(301).send().await),
        model(
            "Value '301' at 'maximumBatchingWindowInSeconds' failed to satisfy constraint: Member must have value less than or equal to 300"
        )
    );
    assert_eq!(
        error_of(create().parallelization_factor(2).send().await),
        ipv("Unsupported ParallelizationFactor parameter for given event source mapping type.")
    );
    assert_eq!(
        error_of(create().queues("q").send().await),
        ipv("Unsupported Queues parameter for given event source mapping type.")
    );
    let on_success = DestinationConfig::builder().on_success(OnSuccess::builder().destination(&queue).build()).build();
    assert_eq!(
        error_of(create().destination_config(on_success).send().await),
        ipv("Unsupported DestinationConfig parameter for given event source mapping type.")
    );

    let created = create()
        .batch_size(10_000)
        .maximum_batching_window_in_seconds(20)
        .function_response_types(FunctionResponseType::ReportBatchItemFailures)
        .send()
        .await
        .expect("the largest batch with a window");
    assert_eq!(created.batch_size(), Some(10_000));
    assert_eq!(created.function_response_types(), &[FunctionResponseType::ReportBatchItemFailures]);
    let uuid = created.uuid().expect("UUID");
    crate::wait_for_state(&client, uuid, "Disabled").await;
    assert_eq!(
        error_of(client.update_event_source_mapping().uuid(uuid).maximum_batching_window_in_seconds(0).send().await),
        ipv("Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10")
    );
    assert_eq!(
        error_of(client.update_event_source_mapping().uuid(uuid).maximum_retry_attempts(1).send().await),
        ipv("Unsupported MaximumRetryAttempts parameter for given event source mapping type.")
    );
    assert_eq!(
        error_of(client.update_event_source_mapping().uuid(uuid).batch_size(0).send().await),
        model(
            "Value '0' at 'batchSize' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )
    );
    let kept = client.get_event_source_mapping().uuid(uuid).send().await.expect("get");
    assert_eq!(
        (kept.batch_size(), kept.maximum_batching_window_in_seconds(), kept.state()),
        (Some(10_000), Some(20), Some("Disabled")),
        "a refused update changes nothing"
    );
}

async fn kinesis_rules(env: &TestEnv) {
    require_local_servers();
    let t = env.tenant().await;
    let client = env.lambda(&t);
    function(&client, "f", false).await;
    let stream = format!("arn:aws:kinesis:{}:{}:stream/clicks", env.region, t.account_id);
    let create = || client.create_event_source_mapping().function_name("f").event_source_arn(&stream).enabled(false);
    let trim = EventSourcePosition::TrimHorizon;

    assert_eq!(
        error_of(create().send().await),
        ipv(
            "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: Member must not be null."
        )
    );
    assert_eq!(
        error_of(create().starting_position(EventSourcePosition::from("invalid")).send().await),
        model(
            "Value 'invalid' at 'startingPosition' failed to satisfy constraint: Member must satisfy enum value set: [LATEST, AT_TIMESTAMP, TRIM_HORIZON]"
        )
    );
    assert_eq!(
        error_of(
            create()
                .starting_position(EventSourcePosition::Latest)
                .starting_position_timestamp(DateTime::from_secs(1_700_000_000))
                .send()
                .await
        ),
        ipv("Timestamp only valid with StartingPosition AT_TIMESTAMP")
    );
    let (code, _) = error_of(create().starting_position(EventSourcePosition::AtTimestamp).send().await);
    assert_eq!(code, "InvalidParameterValueException", "AT_TIMESTAMP needs its timestamp");
    assert_eq!(
        error_of(create().starting_position(trim.clone()).batch_size(0).send().await),
        model(
            "Value '0' at 'batchSize' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )
    );
    assert_eq!(
        error_of(create().starting_position(trim.clone()).parallelization_factor(11).send().await),
        model(
            "Value '11' at 'parallelizationFactor' failed to satisfy constraint: Member must have value less than or equal to 10"
        )
    );
    assert_eq!(
        error_of(create().starting_position(trim.clone()).maximum_retry_attempts(-2).send().await),
        model(
            "Value '-2' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value greater than or equal to -1"
        )
    );
    assert_eq!(
        error_of(create().starting_position(trim.clone()).maximum_record_age_in_seconds(604_801).send().await),
        model(
            "Value '604801' at 'maximumRecordAgeInSeconds' failed to satisfy constraint: Member must have value less than or equal to 604800"
        )
    );
    let (code, _) = error_of(create().starting_position(trim.clone()).maximum_record_age_in_seconds(30).send().await);
    assert_eq!(code, "InvalidParameterValueException", "a record age is -1 or at least 60 s");
    let (code, message) =
        error_of(create().starting_position(trim.clone()).batch_size(0).parallelization_factor(0).send().await);
    assert_eq!(code, "ValidationException");
    assert!(message.starts_with("2 validation errors detected: "), "{message}");
    assert_eq!(
        error_of(create().starting_position(trim.clone()).queues("q").send().await),
        ipv("Unsupported Queues parameter for given event source mapping type.")
    );

    let dlq = format!("arn:aws:sqs:{}:{}:dlq", env.region, t.account_id);
    let created = create()
        .starting_position(trim)
        .batch_size(10_000)
        .maximum_batching_window_in_seconds(300)
        .parallelization_factor(10)
        .maximum_retry_attempts(10_000)
        .maximum_record_age_in_seconds(604_800)
        .destination_config(
            DestinationConfig::builder().on_failure(OnFailure::builder().destination(&dlq).build()).build(),
        )
        .send()
        .await
        .expect("every limit at its maximum");
    assert_eq!(created.maximum_retry_attempts(), Some(10_000));
    assert_eq!(
        created.destination_config().and_then(|d| d.on_failure()).and_then(|f| f.destination()),
        Some(dlq.as_str())
    );
    let created = client
        .create_event_source_mapping()
        .function_name("f:$LATEST")
        .event_source_arn(&stream)
        .starting_position(EventSourcePosition::Latest)
        .maximum_retry_attempts(-1)
        .maximum_record_age_in_seconds(-1)
        .enabled(false)
        .send()
        .await
        .expect("infinite retries and age");
    assert!(created.function_arn().expect("FunctionArn").ends_with(":f:$LATEST"));
}

async fn mq_rules(env: &TestEnv) {
    require_local_servers();
    let t = env.tenant().await;
    let client = env.lambda(&t);
    function(&client, "f", false).await;
    let broker = format!("arn:aws:mq:{}:{}:broker:main:b-0123", env.region, t.account_id);
    let create = || client.create_event_source_mapping().function_name("f").event_source_arn(&broker).enabled(false);

    let (code, message) = error_of(create().send().await);
    assert_eq!(code, "InvalidParameterValueException");
    assert!(message.contains("Queues"), "{message}");
    assert_eq!(
        error_of(create().queues("a").queues("b").send().await),
        model(
            "Value '[a, b]' at 'queues' failed to satisfy constraint: Member must have length less than or equal to 1"
        )
    );
    assert_eq!(
        error_of(create().queues("a").starting_position(EventSourcePosition::Latest).send().await),
        ipv("Unsupported StartingPosition parameter for given event source mapping type.")
    );
    assert_eq!(
        error_of(
            create().queues("a").function_response_types(FunctionResponseType::ReportBatchItemFailures).send().await
        ),
        ipv("Unsupported FunctionResponseTypes parameter for given event source mapping type.")
    );
    assert_eq!(
        error_of(create().queues("a").bisect_batch_on_function_error(true).send().await),
        ipv("Unsupported BisectBatchOnFunctionError parameter for given event source mapping type.")
    );
    let created = create().queues("a").batch_size(10_000).send().await.expect("create");
    assert_eq!(created.batch_size(), Some(10_000));
}

async fn function_and_conflict_rules(env: &TestEnv) {
    require_local_servers();
    let (t, other) = (env.tenant().await, env.tenant().await);
    let client = env.lambda(&t);
    function(&client, "f", true).await;
    let other_client = env.lambda(&other);
    let foreign = function(&other_client, "theirs", false).await;
    let queue = format!("arn:aws:sqs:{}:{}:orders", env.region, t.account_id);
    let stream = format!("arn:aws:kinesis:{}:{}:stream/clicks", env.region, t.account_id);
    let create =
        |name: &str| client.create_event_source_mapping().function_name(name).event_source_arn(&queue).enabled(false);

    assert_eq!(
        error_of(client.create_event_source_mapping().function_name("f").send().await),
        ipv("Unrecognized event source.")
    );
    let (code, message) = error_of(client.create_event_source_mapping().event_source_arn(&queue).send().await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("Value null at 'functionName'"), "{message}");
    let (code, message) = error_of(create("not a name").send().await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("at 'functionName' failed to satisfy constraint"), "{message}");
    let (code, message) = error_of(create("f").event_source_arn("arn:aws:sqs:nowhere:1:q").send().await);
    assert_eq!(code, "ValidationException");
    assert!(
        message.contains(
            "at 'eventSourceArn' failed to satisfy constraint: Member must satisfy regular expression pattern"
        ),
        "{message}"
    );
    let (code, message) = error_of(
        create("f").event_source_arn(format!("arn:aws:sns:{}:{}:topic", env.region, t.account_id)).send().await,
    );
    assert_eq!(code, "InvalidParameterValueException");
    assert!(message.starts_with("Unrecognized event source"), "{message}");

    for missing in ["nope", "f:7", "f:no-such-alias", foreign.as_str()] {
        assert_eq!(error_of(create(missing).send().await), ipv("Function does not exist"), "{missing}");
    }

    let status = StatusProbe::default();
    let first = create("f").customize().interceptor(status.clone()).send().await.expect("create");
    assert_eq!(status.status(), Some(202));
    let uuid = first.uuid().expect("UUID");
    let arn_form = format!("arn:aws:lambda:{}:{}:function:f", env.region, t.account_id);
    for again in ["f", arn_form.as_str()] {
        assert_eq!(
            error_of(create(again).send().await),
            (
                "ResourceConflictException".to_owned(),
                format!(
                    "An event source mapping with SQS arn (\" {queue} \") and function (\" f \") already exists. Please update or delete the existing mapping with UUID {uuid}"
                )
            ),
            "{again}"
        );
    }
    create("f:1").send().await.expect("a version is another function as addressed");
    let status = StatusProbe::default();
    let _ = create("f").customize().interceptor(status.clone()).send().await;
    assert_eq!(status.status(), Some(409));

    let kinesis = || {
        client
            .create_event_source_mapping()
            .function_name("f")
            .event_source_arn(&stream)
            .starting_position(EventSourcePosition::Latest)
            .enabled(false)
    };
    let k = kinesis().send().await.expect("kinesis mapping");
    assert_eq!(
        error_of(kinesis().send().await),
        (
            "ResourceConflictException".to_owned(),
            format!(
                "The event source arn (\" {stream} \") and function (\" f \") provided mapping already exists. Please update or delete the existing mapping with UUID {}",
                k.uuid().expect("UUID")
            )
        )
    );

    // Update checks the function too, and refuses to make a duplicate.
    crate::wait_for_state(&client, uuid, "Disabled").await;
    assert_eq!(
        error_of(client.update_event_source_mapping().uuid(uuid).function_name("nope").send().await),
        ipv("Function does not exist")
    );
    let (code, _) = error_of(client.update_event_source_mapping().uuid(uuid).function_name("f:1").send().await);
    assert_eq!(code, "ResourceConflictException");
}

async fn unknown_mappings(env: &TestEnv) {
    require_local_servers();
    let t = env.tenant().await;
    let client = env.lambda(&t);
    let not_found = ("ResourceNotFoundException".to_owned(), "The resource you requested does not exist.".to_owned());
    let uuid = "14e0db71-5d35-4eb5-b481-8945cf9d10c2";
    assert_eq!(error_of(client.get_event_source_mapping().uuid(uuid).send().await), not_found);
    assert_eq!(error_of(client.delete_event_source_mapping().uuid(uuid).send().await), not_found);
    assert_eq!(error_of(client.update_event_source_mapping().uuid(uuid).enabled(false).send().await), not_found);
    assert_eq!(error_of(client.get_event_source_mapping().uuid("not-a-uuid").send().await), not_found);
    let status = StatusProbe::default();
    let _ = client.get_event_source_mapping().uuid(uuid).customize().interceptor(status.clone()).send().await;
    assert_eq!(status.status(), Some(404));
}

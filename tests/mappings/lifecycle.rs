//! The state machine: Create → `Creating` → `Enabled`; Update → `Disabling`/`Enabling`/`Updating`
//! → settled; Delete → `Deleting` → gone with its checkpoints and leases; each answered 202 with
//! AWS's fields and defaults per source.

use aws_sdk_lambda::primitives::DateTime;
use aws_sdk_lambda::types::{EventSourcePosition, FunctionResponseType};
use lamina_event_sources::{EventSources, EventSourcesClient};
use lamina_tests::external::{create_queue, create_stream, kinesis, queue_arn, sqs, unique};
use lamina_tests::{TestEnv, error_of};

use crate::{
    StatusProbe, function, hold_lease_elsewhere, release_lease_elsewhere, require_local_servers, rows_naming,
    wait_for_state, wait_until_gone,
};

crate::engine_tests!(
    sqs_mapping_lifecycle,
    kinesis_defaults_updates_and_qualifiers,
    mq_mapping_created_disabled,
    transitions_wait_for_the_lease_holder,
    deleting_a_function_keeps_its_mappings,
);

/// In a cluster the manager runs in the async-queue processes and the API reaches the mappings over
/// gRPC (errors keep their types there).
mod cluster {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqs_mapping_lifecycle() {
        let Some(env) = lamina_tests::TestEnv::start(lamina_tests::Backend::Cluster).await else { return };
        super::sqs_mapping_lifecycle(&env).await;
        env.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transitions_wait_for_the_lease_holder() {
        let Some(env) = lamina_tests::TestEnv::start(lamina_tests::Backend::Cluster).await else { return };
        super::transitions_wait_for_the_lease_holder(&env).await;
        env.stop().await;
    }
}

async fn new_queue() -> String {
    let client = sqs();
    let url = create_queue(&client, &unique("esm"), 30).await;
    queue_arn(&client, &url).await
}

async fn sqs_mapping_lifecycle(env: &TestEnv) {
    require_local_servers();
    let t = env.tenant().await;
    let client = env.lambda(&t);
    let function_arn = function(&client, "orders", false).await;
    let queue = new_queue().await;

    let probe = StatusProbe::default();
    let created = client
        .create_event_source_mapping()
        .function_name("orders")
        .event_source_arn(&queue)
        .customize()
        .interceptor(probe.clone())
        .send()
        .await
        .expect("CreateEventSourceMapping");
    assert_eq!(probe.status(), Some(202));
    let uuid = created.uuid().expect("UUID").to_owned();
    assert_eq!(created.state(), Some("Creating"));
    assert_eq!(created.state_transition_reason(), Some("USER_INITIATED"));
    assert_eq!(created.batch_size(), Some(10));
    assert_eq!(created.maximum_batching_window_in_seconds(), Some(0));
    assert_eq!(created.function_arn(), Some(function_arn.as_str()));
    assert_eq!(created.event_source_arn(), Some(queue.as_str()));
    assert_eq!(
        created.event_source_mapping_arn(),
        Some(format!("arn:aws:lambda:{}:{}:event-source-mapping:{uuid}", env.region, t.account_id).as_str())
    );
    assert_eq!(created.starting_position(), None);
    assert!(created.last_modified().is_some());

    let enabled = wait_for_state(&client, &uuid, "Enabled").await;
    assert_eq!(enabled.last_modified(), created.last_modified(), "settling is not a user change");

    // Disable, change while disabled, enable again: each answered 202 in its transitional state.
    let probe = StatusProbe::default();
    let out = client
        .update_event_source_mapping()
        .uuid(&uuid)
        .enabled(false)
        .customize()
        .interceptor(probe.clone())
        .send()
        .await
        .expect("disable");
    assert_eq!((probe.status(), out.state()), (Some(202), Some("Disabling")));
    wait_for_state(&client, &uuid, "Disabled").await;
    let out = client.update_event_source_mapping().uuid(&uuid).batch_size(5).send().await.expect("update");
    assert_eq!((out.state(), out.batch_size()), (Some("Updating"), Some(5)));
    assert!(out.last_modified().expect("LastModified").secs() >= created.last_modified().expect("created").secs());
    let disabled = wait_for_state(&client, &uuid, "Disabled").await;
    assert_eq!(disabled.batch_size(), Some(5), "an update of a disabled mapping leaves it disabled");
    let out = client.update_event_source_mapping().uuid(&uuid).enabled(true).send().await.expect("enable");
    assert_eq!(out.state(), Some("Enabling"));
    wait_for_state(&client, &uuid, "Enabled").await;

    // A position the poller stored goes with the mapping.
    let local = EventSourcesClient::from(EventSources::new(env.server.metadata.store().clone(), &env.region));
    local.put_checkpoint(&uuid, "", "position-1").await.expect("checkpoint");
    assert_eq!(rows_naming(env, "event_source_checkpoints", &uuid).await, 1);

    let probe = StatusProbe::default();
    let deleted = client
        .delete_event_source_mapping()
        .uuid(&uuid)
        .customize()
        .interceptor(probe.clone())
        .send()
        .await
        .expect("DeleteEventSourceMapping");
    assert_eq!((probe.status(), deleted.state()), (Some(202), Some("Deleting")));
    assert_eq!(deleted.uuid(), Some(uuid.as_str()));
    let (code, message) = wait_until_gone(&client, &uuid).await;
    assert_eq!(code, "ResourceNotFoundException");
    assert_eq!(message, "The resource you requested does not exist.");
    assert_eq!(rows_naming(env, "event_source_checkpoints", &uuid).await, 0);
    assert_eq!(rows_naming(env, "event_source_leases", &uuid).await, 0);

    // The same pair again is a new mapping, with no position.
    let again = client
        .create_event_source_mapping()
        .function_name(&function_arn)
        .event_source_arn(&queue)
        .send()
        .await
        .expect("recreate");
    let again_uuid = again.uuid().expect("UUID");
    assert_ne!(again_uuid, uuid);
    assert_eq!(again.state(), Some("Creating"));
    wait_for_state(&client, again_uuid, "Enabled").await;
    assert_eq!(local.get_checkpoint(again_uuid, "").await.expect("checkpoint"), None);
}

async fn kinesis_defaults_updates_and_qualifiers(env: &TestEnv) {
    require_local_servers();
    let t = env.tenant().await;
    let client = env.lambda(&t);
    let function_arn = function(&client, "clicks", true).await;
    client.create_alias().function_name("clicks").name("live").function_version("1").send().await.expect("alias");
    let stream = create_stream(&kinesis(), &unique("esm"), 1).await;

    let created = client
        .create_event_source_mapping()
        .function_name("clicks:1")
        .event_source_arn(&stream)
        .starting_position(EventSourcePosition::TrimHorizon)
        .send()
        .await
        .expect("CreateEventSourceMapping");
    let uuid = created.uuid().expect("UUID").to_owned();
    assert_eq!(created.function_arn(), Some(format!("{function_arn}:1").as_str()), "qualified as given");
    assert_eq!(created.state(), Some("Creating"));
    assert_eq!(created.state_transition_reason(), Some("User action"));
    assert_eq!(created.last_processing_result(), Some("No records processed"));
    assert_eq!(created.batch_size(), Some(100));
    assert_eq!(created.maximum_batching_window_in_seconds(), Some(0));
    assert_eq!(created.starting_position(), Some(&EventSourcePosition::TrimHorizon));
    assert_eq!(created.parallelization_factor(), Some(1));
    assert_eq!(created.maximum_record_age_in_seconds(), Some(-1));
    assert_eq!(created.maximum_retry_attempts(), Some(-1));
    assert_eq!(created.bisect_batch_on_function_error(), Some(false));
    let on_failure = created.destination_config().and_then(|d| d.on_failure()).expect("DestinationConfig.OnFailure");
    assert_eq!(on_failure.destination(), None);
    assert!(created.function_response_types().is_empty());
    wait_for_state(&client, &uuid, "Enabled").await;

    let out = client
        .update_event_source_mapping()
        .uuid(&uuid)
        .maximum_retry_attempts(3)
        .bisect_batch_on_function_error(true)
        .function_response_types(FunctionResponseType::ReportBatchItemFailures)
        .function_name("clicks:live")
        .send()
        .await
        .expect("update");
    assert_eq!(out.state(), Some("Updating"));
    assert_eq!(out.function_arn(), Some(format!("{function_arn}:live").as_str()));
    let updated = wait_for_state(&client, &uuid, "Enabled").await;
    assert_eq!(updated.maximum_retry_attempts(), Some(3));
    assert_eq!(updated.bisect_batch_on_function_error(), Some(true));
    assert_eq!(updated.function_response_types(), &[FunctionResponseType::ReportBatchItemFailures]);
    assert_eq!(updated.starting_position(), Some(&EventSourcePosition::TrimHorizon), "the position stays");
    assert_eq!(updated.batch_size(), Some(100));

    // AT_TIMESTAMP keeps its timestamp; another function on the same stream is another mapping.
    function(&client, "audit", false).await;
    let at = client
        .create_event_source_mapping()
        .function_name("audit")
        .event_source_arn(&stream)
        .starting_position(EventSourcePosition::AtTimestamp)
        .starting_position_timestamp(DateTime::from_secs(1_700_000_000))
        .batch_size(500)
        .maximum_batching_window_in_seconds(2)
        .parallelization_factor(2)
        .maximum_record_age_in_seconds(3600)
        .enabled(false)
        .send()
        .await
        .expect("AT_TIMESTAMP mapping");
    assert_eq!(at.starting_position_timestamp().map(|d| d.secs()), Some(1_700_000_000));
    assert_eq!(
        (at.batch_size(), at.maximum_batching_window_in_seconds(), at.parallelization_factor()),
        (Some(500), Some(2), Some(2))
    );
    assert_eq!(at.maximum_record_age_in_seconds(), Some(3600));
    wait_for_state(&client, at.uuid().expect("UUID"), "Disabled").await;
}

async fn mq_mapping_created_disabled(env: &TestEnv) {
    require_local_servers();
    let t = env.tenant().await;
    let client = env.lambda(&t);
    function(&client, "rabbit", false).await;
    let broker = format!("arn:aws:mq:{}:{}:broker:main:b-0123", env.region, t.account_id);
    let created = client
        .create_event_source_mapping()
        .function_name("rabbit")
        .event_source_arn(&broker)
        .queues("orders")
        .enabled(false)
        .send()
        .await
        .expect("CreateEventSourceMapping");
    assert_eq!(created.state(), Some("Creating"));
    assert_eq!(created.batch_size(), Some(100));
    assert_eq!(created.queues(), &["orders".to_owned()]);
    assert_eq!(created.state_transition_reason(), Some("USER_INITIATED"));
    let uuid = created.uuid().expect("UUID");
    wait_for_state(&client, uuid, "Disabled").await;
    // Another queue of the same broker is another mapping.
    client
        .create_event_source_mapping()
        .function_name("rabbit")
        .event_source_arn(&broker)
        .queues("invoices")
        .enabled(false)
        .send()
        .await
        .expect("second queue");
    let (code, _) = error_of(
        client
            .create_event_source_mapping()
            .function_name("rabbit")
            .event_source_arn(&broker)
            .queues("orders")
            .enabled(false)
            .send()
            .await,
    );
    assert_eq!(code, "ResourceConflictException");
}

async fn transitions_wait_for_the_lease_holder(env: &TestEnv) {
    require_local_servers();
    let t = env.tenant().await;
    let client = env.lambda(&t);
    function(&client, "orders", false).await;
    let queue = new_queue().await;
    let created = client
        .create_event_source_mapping()
        .function_name("orders")
        .event_source_arn(&queue)
        .send()
        .await
        .expect("create");
    let uuid = created.uuid().expect("UUID").to_owned();
    wait_for_state(&client, &uuid, "Enabled").await;

    // Another replica holds the mapping: this server's manager stops polling and cannot settle.
    hold_lease_elsewhere(env, &uuid).await;
    let out = client.update_event_source_mapping().uuid(&uuid).enabled(false).send().await.expect("disable");
    assert_eq!(out.state(), Some("Disabling"));
    let (code, message) = error_of(client.update_event_source_mapping().uuid(&uuid).batch_size(3).send().await);
    assert_eq!(code, "ResourceInUseException");
    assert!(message.contains("Disabling"), "{message}");
    let status = crate::StatusProbe::default();
    let _ = client
        .update_event_source_mapping()
        .uuid(&uuid)
        .enabled(true)
        .customize()
        .interceptor(status.clone())
        .send()
        .await;
    assert_eq!(status.status(), Some(400), "ResourceInUseException is a 400");
    release_lease_elsewhere(env, &uuid).await;
    wait_for_state(&client, &uuid, "Disabled").await;

    // Deleting waits for the lease the same way.
    let out = client.update_event_source_mapping().uuid(&uuid).enabled(true).send().await.expect("enable");
    assert_eq!(out.state(), Some("Enabling"));
    wait_for_state(&client, &uuid, "Enabled").await;
    hold_lease_elsewhere(env, &uuid).await;
    let out = client.delete_event_source_mapping().uuid(&uuid).send().await.expect("delete");
    assert_eq!(out.state(), Some("Deleting"));
    let seen = client.get_event_source_mapping().uuid(&uuid).send().await.expect("still there while held");
    assert_eq!(seen.state(), Some("Deleting"));
    release_lease_elsewhere(env, &uuid).await;
    wait_until_gone(&client, &uuid).await;
}

async fn deleting_a_function_keeps_its_mappings(env: &TestEnv) {
    require_local_servers();
    let t = env.tenant().await;
    let client = env.lambda(&t);
    let function_arn = function(&client, "short-lived", false).await;
    let queue = format!("arn:aws:sqs:{}:{}:never-polled", env.region, t.account_id);
    let created = client
        .create_event_source_mapping()
        .function_name("short-lived")
        .event_source_arn(&queue)
        .enabled(false)
        .send()
        .await
        .expect("create");
    let uuid = created.uuid().expect("UUID");
    wait_for_state(&client, uuid, "Disabled").await;
    client.delete_function().function_name("short-lived").send().await.expect("DeleteFunction");
    let kept = client.get_event_source_mapping().uuid(uuid).send().await.expect("the mapping survives");
    assert_eq!(kept.function_arn(), Some(function_arn.as_str()));
    let listed =
        client.list_event_source_mappings().function_name("short-lived").send().await.expect("list by function");
    assert_eq!(listed.event_source_mappings().len(), 1);
    client.delete_event_source_mapping().uuid(uuid).send().await.expect("deleted separately");
    wait_until_gone(&client, uuid).await;
}

//! Event invocations: 202 once durable, run soon, retried on failure with the same request id,
//! and not lost when the server stops before running them.

use std::time::Duration;

use aws_sdk_lambda::operation::RequestId as _;
use aws_sdk_lambda::primitives::{Blob, ByteStream};
use aws_sdk_lambda::types::{FunctionCode, InvocationType};
use lamina_tests::{Tenant, TestEnv, backend_tests, python_zip, wait_until};

use crate::{code_of, create_python, status_of};

backend_tests!(events_run_and_failures_are_retried);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_restart_sqlite() {
    events_survive_a_restart(lamina_tests::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_restart_postgres() {
    events_survive_a_restart(lamina_tests::Backend::Postgres).await;
}

async fn starts_of(env: &TestEnv, t: &Tenant, function: &str, request_id: &str) -> usize {
    let needle = format!("START RequestId: {request_id} ");
    env.log_messages(t, function).await.iter().filter(|m| m.contains(&needle)).count()
}

async fn events_run_and_failures_are_retried(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    create_python(&c, "ev-ok").send().await.expect("create");
    let failing = python_zip("def handler(event, context):\n    raise Exception('always')\n");
    create_python(&c, "ev-fail")
        .code(FunctionCode::builder().zip_file(Blob::new(failing)).build())
        .send()
        .await
        .expect("create");

    let accepted = c
        .invoke()
        .function_name("ev-ok")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new("{}"))
        .send()
        .await
        .expect("event");
    assert_eq!(accepted.status_code(), 202);
    assert!(accepted.payload().is_none_or(|p| p.as_ref().is_empty()), "202 has no body");
    let id = accepted.request_id().expect("request id").to_owned();
    wait_until(Duration::from_secs(10), "the event to run", || async {
        (starts_of(env, &t, "ev-ok", &id).await == 1).then_some(())
    })
    .await;

    let failed =
        c.invoke().function_name("ev-fail").invocation_type(InvocationType::Event).send().await.expect("event");
    let id = failed.request_id().expect("request id").to_owned();
    wait_until(Duration::from_secs(20), "three attempts with one request id", || async {
        (starts_of(env, &t, "ev-fail", &id).await == 3).then_some(())
    })
    .await;
    wait_until(Duration::from_secs(10), "the queue to drain", || async {
        (env.pending_events().await == 0).then_some(())
    })
    .await;
    assert_eq!(starts_of(env, &t, "ev-fail", &id).await, 3, "two retries, no more");

    #[allow(deprecated)] // InvokeAsync is deprecated, and still served.
    let old = c
        .invoke_async()
        .function_name("ev-ok")
        .invoke_args(ByteStream::from_static(b"{\"a\":1}"))
        .send()
        .await
        .expect("InvokeAsync");
    assert_eq!(old.status(), 202);

    let big = c
        .invoke()
        .function_name("ev-ok")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(vec![b' '; 128 * 1024 + 1]))
        .send()
        .await;
    let status = status_of(&big);
    assert_eq!(code_of(big), "RequestEntityTooLargeException");
    assert_eq!(status, 413);
    let missing = c.invoke().function_name("nope").invocation_type(InvocationType::Event).send().await;
    assert_eq!(code_of(missing), "ResourceNotFoundException");
}

async fn events_survive_a_restart(backend: lamina_tests::Backend) {
    // A server whose worker never runs: the event is only on disk when it stops.
    let Some(env) = TestEnv::start_with(backend, |o| o.async_worker = false).await else { return };
    let t = env.tenant().await;
    let c = env.lambda(&t);
    create_python(&c, "durable").send().await.expect("create");
    let accepted =
        c.invoke().function_name("durable").invocation_type(InvocationType::Event).send().await.expect("event");
    assert_eq!(accepted.status_code(), 202);
    let id = accepted.request_id().expect("id").to_owned();
    assert_eq!(env.pending_events().await, 1);
    let resumed = env.restart(|o| o.async_worker = true).await;
    wait_until(Duration::from_secs(10), "the event to run after the restart", || async {
        (starts_of(&resumed, &t, "durable", &id).await == 1).then_some(())
    })
    .await;
    resumed.stop().await;
}

//! A server SIGKILLed while it runs an Event invocation: its successor on the same data runs the
//! event again within seconds (it frees the leases of its previous life), not when a lease
//! sized for the longest invocation (960 s before) runs out.

use std::time::{Duration, Instant};

use aws_sdk_lambda::operation::RequestId as _;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, InvocationType, Runtime};

use crate::{ServeProcess, Sink, client_of, free_port, reporting_function};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_servers_running_event_runs_again_within_seconds_of_the_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (sink, sink_port) = Sink::start().await;
    let port = free_port();
    let server = ServeProcess::start(&data, port, sink_port).await;
    let client = client_of(&data, &server.endpoint);
    client
        .create_function()
        .function_name("long")
        .runtime(Runtime::Python311)
        .role("arn:aws:iam::123456789012:role/test")
        .handler("lambda_function.handler")
        .timeout(300)
        .code(FunctionCode::builder().zip_file(Blob::new(reporting_function(sink_port))).build())
        .send()
        .await
        .expect("create function");

    // Long enough that only a redelivery, not this run, can finish within the test.
    let accepted = client
        .invoke()
        .function_name("long")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(r#"{"sleep": 120}"#))
        .send()
        .await
        .expect("event accepted");
    assert_eq!(accepted.status_code(), 202);
    let id = accepted.request_id().expect("request id").to_owned();
    lamina_tests::wait_until(Duration::from_secs(20), "the event to start", || async {
        (!sink.times("start", &id).is_empty()).then_some(())
    })
    .await;

    server.kill().await;
    let server = ServeProcess::start(&data, port, sink_port).await;
    let ready = Instant::now();
    lamina_tests::wait_until(Duration::from_secs(30), "the event to start again", || async {
        (sink.times("start", &id).len() >= 2).then_some(())
    })
    .await;
    let again = sink.times("start", &id)[1];
    let delay = again.saturating_duration_since(ready);
    assert!(delay < Duration::from_secs(5), "the event ran again {delay:?} after the restart");
    server.kill().await;
}

//! Payload ceilings, request validation, DryRun and account concurrency (semantics INV-4, INV-8,
//! INV-9, CONC).

use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, ThrottleReason};
use serde_json::json;

use crate::{Fixture, code_of, create_python, invoke, invoke_request, log_messages, send, status_of};

const SIZES: &str = r#"
def handler(event, context):
    if isinstance(event, dict) and "respond_bytes" in event:
        return "x" * event["respond_bytes"]
    return len(event) if isinstance(event, str) else event
"#;

const SIX_MB: usize = 6 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_limits_and_request_validation() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    create_python(c, "sizes", SIZES).send().await.expect("create");

    // INV-8: a request body of exactly 6 MB is accepted, one byte more is 413.
    let at_limit = format!("\"{}\"", "a".repeat(SIX_MB - 2));
    assert_eq!(at_limit.len(), SIX_MB);
    let ok = send(invoke_request(c, "sizes", at_limit)).await;
    assert_eq!(ok.ok(), json!(SIX_MB - 2));
    let over = format!("\"{}\"", "a".repeat(SIX_MB - 1));
    let too_big = c.invoke().function_name("sizes").payload(Blob::new(over)).send().await;
    assert_eq!(status_of(&too_big), 413);
    assert_eq!(code_of(too_big), "RequestEntityTooLargeException");

    // Later AWS: a result over 6 MB is an Unhandled function error; the sandbox stays usable.
    let huge = invoke(c, "sizes", &json!({"respond_bytes": 7 * 1024 * 1024})).await;
    let doc = huge.unhandled();
    assert_eq!(doc["errorType"], "Function.ResponseSizeTooLarge", "{doc}");
    assert!(doc["errorMessage"].as_str().is_some_and(|m| m.contains("6291556")), "{doc}");
    assert_eq!(invoke(c, "sizes", &json!({"respond_bytes": 3})).await.ok(), json!("xxx"));

    // INV-9: a body that does not parse as JSON is 400 InvalidRequestContentException.
    let bad = c.invoke().function_name("sizes").payload(Blob::new(b"not json".to_vec())).send().await;
    assert_eq!(status_of(&bad), 400);
    assert_eq!(code_of(bad), "InvalidRequestContentException");

    // INV-4: DryRun answers 204 and runs nothing.
    let before = log_messages(&fx.env, &fx.tenant, "sizes").await;
    let starts_before = before.iter().filter(|m| m.starts_with("START RequestId:")).count();
    assert_eq!(starts_before, 3, "the log API sees the three runs so far: {before:?}");
    let dry = c
        .invoke()
        .function_name("sizes")
        .invocation_type(InvocationType::DryRun)
        .payload(Blob::new(br#"{"respond_bytes": 1}"#.to_vec()))
        .send()
        .await
        .expect("dry run");
    assert_eq!(dry.status_code(), 204);
    assert_eq!(dry.function_error(), None);
    assert!(dry.payload().is_none_or(|p| p.as_ref().is_empty()), "no body");
    let after = log_messages(&fx.env, &fx.tenant, "sizes").await;
    assert_eq!(after, before, "DryRun wrote no log: the function did not run");
    fx.stop().await;
}

/// Sleeps, exits or answers, as asked.
const WORKER: &str = r#"
import os
import time

def handler(event, context):
    if "exit" in event:
        os._exit(event["exit"])
    time.sleep(event.get("sleep", 0))
    return "done"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_concurrency_throttles_and_frees_slots() {
    let fx = Fixture::start_with(json!({"ConcurrentExecutions": 2})).await;
    let c = &fx.client;
    create_python(c, "worker", WORKER).timeout(10).send().await.expect("create worker");
    create_python(c, "stuck", WORKER).timeout(1).send().await.expect("create stuck");

    // CONC-6/7: the third concurrent call is throttled with 429; the others run.
    let slow = json!({"sleep": 1.5}).to_string();
    let call = || c.invoke().function_name("worker").payload(Blob::new(slow.clone())).send();
    let (a, b, d) = tokio::join!(call(), call(), call());
    let results = [a, b, d];
    let statuses: Vec<u16> = results.iter().map(status_of).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "exactly one throttled: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "two ran: {statuses:?}");
    for r in results {
        match r {
            Ok(out) => {
                assert_eq!(out.function_error(), None);
                assert_eq!(out.payload().map(|p| p.as_ref().to_vec()), Some(b"\"done\"".to_vec()));
            }
            Err(e) => {
                let err = e.into_service_error();
                let InvokeError::TooManyRequestsException(throttled) = err else {
                    panic!("expected TooManyRequestsException, got {err:?}");
                };
                assert_eq!(throttled.reason(), Some(&ThrottleReason::ConcurrentInvocationLimitExceeded));
            }
        }
    }
    assert_eq!(invoke(c, "worker", &json!({})).await.ok(), json!("done"), "slots are free once calls end");

    // A timed-out and a crashed invocation give their slots back too.
    let timed_out = invoke(c, "stuck", &json!({"sleep": 5})).await;
    assert!(timed_out.unhandled()["errorMessage"].as_str().is_some_and(|m| m.ends_with("1.00 seconds")));
    let crashed = invoke(c, "worker", &json!({"exit": 3})).await;
    assert_eq!(crashed.unhandled()["errorType"], "Runtime.ExitError");
    let half = json!({"sleep": 0.5});
    let (x, y) = tokio::join!(invoke(c, "worker", &half), invoke(c, "stuck", &half));
    assert_eq!(x.ok(), json!("done"));
    assert_eq!(y.ok(), json!("done"));

    // Throttling is per account: another tenant is not limited by this one's load.
    let other = fx.env.tenant().await;
    let oc = fx.env.lambda(&other);
    create_python(&oc, "free", WORKER).send().await.expect("create other");
    let busy = json!({"sleep": 1.0});
    let (p, q, r) =
        tokio::join!(invoke(c, "worker", &busy), invoke(c, "worker", &busy), invoke(&oc, "free", json!({})));
    assert_eq!((p.ok(), q.ok(), r.ok()), (json!("done"), json!("done"), json!("done")));
    fx.stop().await;
}

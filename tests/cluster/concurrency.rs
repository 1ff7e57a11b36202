//! The account concurrency limit across routers, measured inside the functions.

use std::time::Duration;

use aws_sdk_lambda::operation::invoke::InvokeError;
use lamina_tests::ClusterOptions;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::probe::Probe;
use crate::{create_python, error_of, join_all, payload, serial, start};

const LIMIT: u32 = 10;
const CALLERS: usize = 50;

#[derive(Default)]
struct Tally {
    ok: u32,
    throttled: u32,
}

/// Invokes `held` in a loop until `until`: each answer is the right 200 or a 429
/// `ConcurrentInvocationLimitExceeded`.
async fn caller(client: aws_sdk_lambda::Client, id: usize, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut i = 0;
    while Instant::now() < until {
        i += 1;
        let tag = format!("c{id}-{i}");
        let event = json!({"tag": tag, "hold": 1.0});
        let sent = client.invoke().function_name("held").payload(payload(&event)).send();
        match tokio::time::timeout(Duration::from_secs(20), sent).await.expect("call answered in time") {
            Ok(out) => {
                assert_eq!(out.function_error(), None, "call {tag} failed in the function");
                let body: Value =
                    serde_json::from_slice(out.payload().map(|b| b.as_ref()).unwrap_or_default()).expect("JSON body");
                assert_eq!(body, event, "call {tag}: the right body");
                tally.ok += 1;
            }
            Err(err) => {
                let (status, code) = error_of(&err);
                let reason = match err.as_service_error() {
                    Some(InvokeError::TooManyRequestsException(e)) => e.reason().map(|r| r.as_str().to_owned()),
                    _ => None,
                };
                assert_eq!(
                    (status, code.as_str(), reason.as_deref()),
                    (429, "TooManyRequestsException", Some("ConcurrentInvocationLimitExceeded")),
                    "call {tag}"
                );
                tally.throttled += 1;
                // Pacing, not synchronisation: 50 callers spinning on 429s would starve the
                // sandboxes of CPU on a small machine.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tally
}

/// Account limit 10, two routers, 50 callers for a few seconds of a function that holds ~1 s.
/// The functions report to a TCP server in the test: at most 10 ever ran at once, and 10 did (so
/// the measurement can fail both ways); the others were throttled with 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn account_limit_holds_across_routers() {
    let _serial = serial().await;
    let probe = Probe::start().await;
    let layout = ClusterOptions { routers: 2, extra_args: vec![probe.allow_arg()], ..ClusterOptions::default() };
    let Some(env) = start(&layout).await else { return };
    let tenant = env.tenant_with(json!({"ConcurrentExecutions": LIMIT})).await;
    let client = env.lambda(&tenant);
    create_python(&client, "held", &probe.function_source(), 15).send().await.expect("create held");

    let until = Instant::now() + Duration::from_secs(12);
    let tallies = join_all((0..CALLERS).map(|id| caller(client.clone(), id, until))).await;
    let ok: u32 = tallies.iter().map(|t| t.ok).sum();
    let throttled: u32 = tallies.iter().map(|t| t.throttled).sum();
    let report = probe.report();
    eprintln!("{ok} ran, {throttled} throttled; at most {} at once (limit {LIMIT})", report.max);
    assert_eq!(report.current, 0, "every run reported its end");
    assert!(report.max <= LIMIT, "{} ran at once, over the limit {LIMIT}", report.max);
    assert!(report.max >= LIMIT, "the limit was reached ({} at most): the test measures something", report.max);
    assert!(throttled > 0, "callers over the limit were throttled");
    assert!(ok >= LIMIT, "calls ran: {ok}");
    env.stop().await;
}

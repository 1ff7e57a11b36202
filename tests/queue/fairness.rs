//! One account's flood does not starve another: queued events are taken from the accounts in
//! turn, and an account's running sandboxes may hold only its share of the execution host.

use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::operation::RequestId as _;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, InvocationType, Runtime};
use lamina_tests::{Backend, TestEnv, status_of};

use crate::{Sink, reporting_function};

async fn create(client: &Client, name: &str, zip: Vec<u8>) {
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::Python311)
        .role("arn:aws:iam::123456789012:role/test")
        .handler("lambda_function.handler")
        .timeout(60)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .expect("create function");
}

async fn event(client: &Client, name: &str, payload: &'static str) -> String {
    let out = client
        .invoke()
        .function_name(name)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(payload))
        .send()
        .await
        .expect("event accepted");
    out.request_id().expect("request id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_account_does_not_delay_another_accounts_event() {
    let (sink, sink_port) = Sink::start().await;
    let env = TestEnv::start_with(Backend::Sqlite, |o| o.exec.allow_host_ports = sink_port.to_string())
        .await
        .expect("server");
    let (a, b) = (env.tenant().await, env.tenant().await);
    let (ca, cb) = (env.lambda(&a), env.lambda(&b));
    create(&ca, "slow", reporting_function(sink_port)).await;
    create(&cb, "quick", reporting_function(sink_port)).await;

    // 500 one-second events: with 16 run at a time, about 30 s of work queued ahead of B.
    let sent = flood(&ca, 500).await;
    assert_eq!(sent, 500);
    let queued = Instant::now();
    let id = event(&cb, "quick", "{}").await;
    lamina_tests::wait_until(Duration::from_secs(20), "B's event to run", || async {
        (!sink.times("done", &id).is_empty()).then_some(())
    })
    .await;
    let waited = sink.times("done", &id)[0].saturating_duration_since(queued);
    assert!(waited < Duration::from_secs(5), "B's event waited {waited:?} behind A's flood");
    let pending = env.pending_events().await;
    assert!(pending > 300, "A's flood was still draining ({pending} left): the bound means something");
    env.stop().await;
}

/// Sends `n` slow events from a few concurrent tasks; returns how many were accepted.
async fn flood(client: &Client, n: usize) -> usize {
    let tasks: Vec<_> = (0..8)
        .map(|k| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut ok = 0;
                for _ in (k..n).step_by(8) {
                    event(&client, "slow", r#"{"sleep": 1}"#).await;
                    ok += 1;
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("sender");
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_beyond_its_host_share_is_throttled_while_another_runs() {
    let (_sink, sink_port) = Sink::start().await;
    // Default share 50 %: 512 of 1024 MB, four 128 MB sandboxes per account.
    let env = TestEnv::start_with(Backend::Sqlite, |o| {
        o.exec.memory_budget_mb = 1024;
        o.exec.allow_host_ports = sink_port.to_string();
    })
    .await
    .expect("server");
    let (a, b) = (env.tenant().await, env.tenant().await);
    let (ca, cb) = (env.lambda(&a), env.lambda(&b));
    create(&ca, "hog", reporting_function(sink_port)).await;
    create(&cb, "other", reporting_function(sink_port)).await;

    let burst = |client: Client, name: &'static str, n: usize| async move {
        let calls: Vec<_> = (0..n)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    client.invoke().function_name(name).payload(Blob::new(r#"{"sleep": 3}"#)).send().await
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for c in calls {
            statuses.push(status_of(&c.await.expect("call")));
        }
        statuses
    };
    let hog = tokio::spawn(burst(ca.clone(), "hog", 6));
    // B starts once A holds its share.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let other = burst(cb.clone(), "other", 1).await;
    let hog = hog.await.expect("hog");
    assert_eq!(other, vec![200], "B runs while A is at its share");
    assert_eq!(hog.iter().filter(|s| **s == 200).count(), 4, "A runs up to its share: {hog:?}");
    assert_eq!(hog.iter().filter(|s| **s == 429).count(), 2, "and is throttled beyond it: {hog:?}");

    // The operator raises A's share: the same burst fits.
    let (status, body) = env
        .admin(
            reqwest::Method::PUT,
            &format!("/accounts/{}/limits", a.account_id),
            Some(serde_json::json!({"HostSharePercent": 100})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["HostSharePercent"], 100);
    let hog = burst(ca.clone(), "hog", 6).await;
    assert!(hog.iter().all(|s| *s == 200), "{hog:?}");
    env.stop().await;
}

//! One trace per invocation across the cluster's processes: frontend → router → exec-host →
//! runtime for a synchronous Invoke, and on through the async queue's worker for an Event; the
//! function sees the trace as `_X_AMZN_TRACE_ID`.

use std::time::Duration;

use aws_sdk_lambda::operation::RequestId as _;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use lamina_tests::{ClusterOptions, TestEnv, create_python, wait_until};

use crate::collector::{Collector, Span};

const SOURCE: &str = r#"
import os

def handler(event, context):
    return {"trace": os.environ.get("_X_AMZN_TRACE_ID"), "request_id": context.aws_request_id}
"#;

/// In every payload: no span may carry it.
const PAYLOAD_MARKER: &str = "p4yl0ad-must-not-be-traced";

/// The frontend's request span, named for its route.
const INVOKE_ROUTE: &str = "POST /2015-03-31/functions/{name}/invocations";

const SPANS_DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_is_one_trace_from_the_frontend_into_the_function() {
    let collector = Collector::start().await;
    let layout = ClusterOptions {
        routers: 1,
        exec_hosts: 1,
        env: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.endpoint.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
        ],
        ..ClusterOptions::default()
    };
    let Some(env) = TestEnv::start_cluster(&layout).await else { return };
    let tenant = env.tenant().await;
    let client = env.lambda(&tenant);
    create_python(&client, "traced", SOURCE).send().await.expect("create function");
    let payload = format!(r#"{{"marker": "{PAYLOAD_MARKER}"}}"#);

    // Synchronous, cold.
    let (request_id, header) = invoke(&client, &payload).await;
    let chain = chain_of(&collector, &request_id, "lamina-exec-host", "runtime").await;
    assert_sync_chain(&chain, &tenant.account_id);
    let runtime = &chain[0];
    assert_eq!(attr(&chain, "exec_host.invoke", "cold_start"), "true");
    // The function's X-Ray header is the same trace, its parent the runtime span.
    let trace = &runtime.trace_id;
    let want = format!("Root=1-{}-{};Parent={};Sampled=1", &trace[..8], &trace[8..], runtime.span_id);
    assert_eq!(header, want, "the function's _X_AMZN_TRACE_ID");

    // Synchronous, warm: a trace of its own.
    let (warm_id, warm_header) = invoke(&client, &payload).await;
    let warm = chain_of(&collector, &warm_id, "lamina-exec-host", "runtime").await;
    assert_sync_chain(&warm, &tenant.account_id);
    assert_eq!(attr(&warm, "exec_host.invoke", "cold_start"), "false");
    assert_ne!(warm[0].trace_id, *trace, "each invocation is its own trace");
    assert!(warm_header.contains(&warm[0].trace_id[8..]), "{warm_header}");

    // Event: the worker's run continues the trace of the request that queued it.
    let accepted = client
        .invoke()
        .function_name("traced")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(payload.clone()))
        .send()
        .await
        .expect("event accepted");
    assert_eq!(accepted.status_code(), 202);
    let event_id = accepted.request_id().expect("request id").to_owned();
    let chain = chain_of(&collector, &event_id, "lamina-exec-host", "runtime").await;
    let names: Vec<&str> = chain.iter().rev().map(|s| s.name.as_str()).collect();
    let services = services_in_order(&chain);
    assert_eq!(
        services,
        ["lamina-frontend", "lamina-invoke-router", "lamina-async-queue", "lamina-invoke-router", "lamina-exec-host"],
        "services from the request to the worker's run: {names:?}"
    );
    for name in [INVOKE_ROUTE, "Invoke", "router.invoke", "queue.enqueue", "queue.run", "exec_host.invoke", "runtime"] {
        assert!(names.contains(&name), "{name} missing from the Event's chain {names:?}");
    }
    let frontend_invoke = chain.iter().find(|s| s.service == "lamina-frontend" && s.name == "Invoke").expect("Invoke");
    assert_eq!(frontend_invoke.attr("invocation_type"), Some("Event"));
    let run = chain.iter().find(|s| s.name == "queue.run").expect("queue.run");
    assert_eq!(run.trace_id, frontend_invoke.trace_id, "the worker's run is in the Invoke span's trace");
    assert_eq!(run.attr("request_id"), Some(event_id.as_str()));

    let leaked: Vec<Span> = collector
        .spans()
        .into_iter()
        .filter(|s| s.attributes.values().any(|v| v.contains(PAYLOAD_MARKER)) || s.name.contains(PAYLOAD_MARKER))
        .collect();
    assert!(leaked.is_empty(), "spans carry the payload: {leaked:?}");
    env.stop().await;
}

/// Invokes `traced` synchronously; its request id and the `_X_AMZN_TRACE_ID` it saw.
async fn invoke(client: &aws_sdk_lambda::Client, payload: &str) -> (String, String) {
    let out =
        client.invoke().function_name("traced").payload(Blob::new(payload.to_owned())).send().await.expect("invoke");
    assert_eq!(out.function_error(), None, "{:?}", out.payload());
    let body: serde_json::Value =
        serde_json::from_slice(out.payload().expect("payload").as_ref()).expect("a JSON reply");
    let request_id = out.request_id().expect("request id").to_owned();
    assert_eq!(body["request_id"], request_id.as_str());
    let header = body["trace"].as_str().unwrap_or_else(|| panic!("no _X_AMZN_TRACE_ID in {body}")).to_owned();
    (request_id, header)
}

/// The span `name` of `service` for `request_id` and its ancestors up to the root, leaf first,
/// once all of them have been exported.
async fn chain_of(collector: &Collector, request_id: &str, service: &str, name: &str) -> Vec<Span> {
    wait_until(SPANS_DEADLINE, &format!("the spans of {request_id} up from {service} {name}"), || {
        let spans = collector.spans();
        let found = spans
            .iter()
            .find(|s| s.service == service && s.name == name && s.attr("request_id") == Some(request_id))
            .and_then(|leaf| ancestors(&spans, leaf));
        async move { found }
    })
    .await
}

/// `leaf` and its ancestors, leaf first; `None` while one is missing.
fn ancestors(spans: &[Span], leaf: &Span) -> Option<Vec<Span>> {
    let mut chain = vec![leaf.clone()];
    while let Some(last) = chain.last()
        && !last.parent_span_id.is_empty()
    {
        let parent = spans.iter().find(|s| s.span_id == last.parent_span_id && s.trace_id == last.trace_id)?;
        assert!(chain.len() < 64, "a parent cycle: {chain:?}");
        chain.push(parent.clone());
    }
    Some(chain)
}

/// The services along `chain`, root first, runs of one service counted once.
fn services_in_order(chain: &[Span]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in chain.iter().rev() {
        if out.last() != Some(&s.service) {
            out.push(s.service.clone());
        }
    }
    out
}

/// The attribute `key` of the span named `name` in `chain`.
fn attr<'a>(chain: &'a [Span], name: &str, key: &str) -> &'a str {
    let span = chain.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name} in {chain:?}"));
    span.attr(key).unwrap_or_else(|| panic!("{name} has no {key}: {span:?}"))
}

fn assert_sync_chain(chain: &[Span], account_id: &str) {
    let names: Vec<&str> = chain.iter().rev().map(|s| s.name.as_str()).collect();
    assert_eq!(
        services_in_order(chain),
        ["lamina-frontend", "lamina-invoke-router", "lamina-exec-host"],
        "services from the request to the runtime: {names:?}"
    );
    let trace = &chain[0].trace_id;
    assert!(chain.iter().all(|s| &s.trace_id == trace), "one trace id: {chain:?}");
    let root = chain.last().expect("a root");
    assert_eq!((root.service.as_str(), root.name.as_str()), ("lamina-frontend", INVOKE_ROUTE), "the root: {root:?}");
    for name in ["Invoke", "router.invoke", "exec_host.invoke"] {
        assert_eq!(attr(chain, name, "account_id"), account_id, "{name}");
        assert_eq!(attr(chain, name, "function"), "traced", "{name}");
    }
    // Each hop between processes goes through the callee's gRPC server span.
    for (child, parent) in [("router.invoke", "Invoke"), ("exec_host.invoke", "router.invoke")] {
        let i = chain.iter().position(|s| s.name == child).expect("child");
        let grpc = &chain[i + 1];
        assert!(grpc.name.starts_with("/lamina."), "{child}'s parent is a gRPC server span: {grpc:?}");
        assert_eq!(grpc.service, chain[i].service);
        assert_eq!(chain[i + 2].name, parent, "{names:?}");
    }
}

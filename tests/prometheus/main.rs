//! Prometheus `/metrics`: each distributed process serves its own families, and every expression
//! of the Grafana dashboard (`deploy/grafana/lamina-dashboard.json`) names families the code
//! really serves, described (`# HELP`) and typed (`# TYPE`).

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use lamina_tests::{Backend, ClusterOptions, TestEnv, create_python};
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../deploy/grafana/lamina-dashboard.json");

/// Families each `lamina cluster` process serves once it has answered an invocation, a throttle
/// and an Event invocation (the frontend's on its admin listener).
const PROCESS_FAMILIES: &[(&str, &[&str])] = &[
    (
        "frontend",
        &[
            "lamina_http_requests_total",
            "lamina_http_request_duration_seconds",
            "lamina_http_requests_in_flight",
            "lamina_redis_command_duration_seconds",
            "lamina_redis_errors_total",
        ],
    ),
    (
        "metadata",
        &[
            "lamina_db_query_duration_seconds",
            "lamina_grpc_server_requests_total",
            "lamina_grpc_server_request_duration_seconds",
        ],
    ),
    ("code-storage", &["lamina_grpc_server_requests_total", "lamina_grpc_server_request_duration_seconds"]),
    (
        "invoke-router",
        &[
            "lamina_throttles_total",
            "lamina_grpc_server_requests_total",
            "lamina_grpc_server_request_duration_seconds",
            "lamina_redis_command_duration_seconds",
            "lamina_redis_errors_total",
            "lamina_telemetry_shipped_events_total",
            "lamina_telemetry_dropped_events_total",
            "lamina_telemetry_ingest_seconds",
        ],
    ),
    (
        "async-queue",
        &[
            "lamina_async_queue_depth",
            "lamina_async_queue_oldest_event_age_seconds",
            "lamina_async_events_accepted_total",
            "lamina_async_events_dropped_total",
            "lamina_grpc_server_requests_total",
            "lamina_redis_command_duration_seconds",
        ],
    ),
    (
        "exec-host",
        &[
            "lamina_invocations_total",
            "lamina_duration_ms",
            "lamina_cold_starts_total",
            "lamina_live_sandboxes",
            "lamina_sandboxes_live",
            "lamina_sandboxes_idle",
            "lamina_warm_functions",
            "lamina_sandboxes_max",
            "lamina_sandbox_memory_used_mb",
            "lamina_sandbox_memory_budget_mb",
            "lamina_grpc_server_requests_total",
            "lamina_redis_command_duration_seconds",
            "lamina_telemetry_shipped_events_total",
            "lamina_telemetry_dropped_events_total",
            "lamina_telemetry_ingest_seconds",
        ],
    ),
];

/// The families a `/metrics` text declares: (typed, described).
fn families(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let named = |prefix: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
    };
    (named("# TYPE "), named("# HELP "))
}

/// The families `wanted` that `text` lacks a `# TYPE` or a `# HELP` line for.
fn missing(text: &str, wanted: &[&str]) -> Vec<String> {
    let (typed, described) = families(text);
    wanted.iter().filter(|f| !typed.contains(**f) || !described.contains(**f)).map(|f| f.to_string()).collect()
}

async fn scrape(url: &str) -> Option<String> {
    let response = reqwest::get(url).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

/// Scrapes `url` until it serves every family of `wanted` (some appear a moment after the
/// answers the test saw: shipping, the queue's worker); fails naming the ones still missing.
async fn until_served(url: &str, wanted: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(url).await.unwrap_or_default();
        let lacking = missing(&text, wanted);
        if lacking.is_empty() {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{url} lacks {lacking:?}:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every family named in an expression of the dashboard (a histogram's `_bucket`, `_sum` and
/// `_count` series are its family).
fn dashboard_families() -> BTreeSet<String> {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let name = regex::Regex::new(r"\blamina_[a-z0-9_]+").expect("regex");
    let mut out = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expression");
            for m in name.find_iter(expr) {
                let series = m.as_str();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| series.strip_suffix(suffix))
                    .unwrap_or(series);
                out.insert(family.to_owned());
            }
        }
    }
    out
}

/// A run, a function error, a throttle and an Event invocation.
async fn lambda_work(client: &Client) {
    for (name, body) in [
        ("ok", "def handler(event, context):\n    return {'ok': True}\n"),
        ("boom", "def handler(event, context):\n    raise ValueError('boom')\n"),
        ("held", "def handler(event, context):\n    return 1\n"),
    ] {
        create_python(client, name, body).send().await.expect("create function");
    }
    let ok = client.invoke().function_name("ok").send().await.expect("invoke");
    assert!(ok.function_error().is_none(), "ok runs");
    let boom = client.invoke().function_name("boom").send().await.expect("invoke");
    assert!(boom.function_error().is_some(), "boom raises");
    client
        .put_function_concurrency()
        .function_name("held")
        .reserved_concurrent_executions(0)
        .send()
        .await
        .expect("reserve");
    let held = client.invoke().function_name("held").send().await;
    let status = held.err().and_then(|e| e.raw_response().map(|r| r.status().as_u16()));
    assert_eq!(status, Some(429), "no slot: throttled");
    let queued = client
        .invoke()
        .function_name("ok")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new("{}"))
        .send()
        .await
        .expect("Event invoke");
    assert_eq!(queued.status_code(), 202);
}

/// The `/metrics` address of each `service` process of the cluster (its `--http-listen`).
fn http_addrs(env: &TestEnv, service: &str) -> Vec<String> {
    env.server
        .cluster_children(service)
        .into_iter()
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            cmdline
                .split(|b| *b == 0)
                .filter_map(|a| std::str::from_utf8(a).ok())
                .find_map(|a| a.strip_prefix("--http-listen=").map(str::to_owned))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cluster_process_serves_its_families() {
    let layout = ClusterOptions { routers: 1, exec_hosts: 1, ..ClusterOptions::default() };
    let Some(env) = TestEnv::start_cluster(&layout).await else { return };
    let tenant = env.tenant().await;
    let client = env.lambda(&tenant);
    lambda_work(&client).await;
    for (service, wanted) in PROCESS_FAMILIES {
        let urls: Vec<String> = if *service == "frontend" {
            vec![format!("{}/metrics", env.admin_endpoint())]
        } else {
            http_addrs(&env, service).into_iter().map(|a| format!("http://{a}/metrics")).collect()
        };
        assert!(!urls.is_empty(), "the cluster runs a {service} process");
        for url in urls {
            until_served(&url, wanted).await;
        }
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_names_only_served_families() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    assert!(dashboard["schemaVersion"].as_i64().is_some_and(|v| v >= 36), "a current schema");
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "panel {}", panel["title"]);
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} queries something", panel["title"]);
        assert!(targets.iter().all(|t| t["datasource"]["uid"] == "${DS_PROMETHEUS}"), "panel {}", panel["title"]);
    }
    let named = dashboard_families();
    assert!(named.len() >= 20, "the dashboard covers the families: {named:?}");

    let env = TestEnv::start(Backend::Sqlite).await.expect("sqlite always available");
    let tenant = env.tenant().await;
    let client = env.lambda(&tenant);
    lambda_work(&client).await;
    // Families only distributed processes serve: the other test proves each is served.
    let distributed: BTreeSet<&str> = PROCESS_FAMILIES.iter().flat_map(|(_, f)| f.iter().copied()).collect();
    let url = format!("{}/metrics", env.admin_endpoint());
    // Shipping's families appear a moment after the answers the test saw.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape(&url).await.unwrap_or_default();
        let (typed, _) = families(&text);
        let complete = named.iter().all(|f| typed.contains(f) || distributed.contains(f.as_str()));
        if complete || tokio::time::Instant::now() >= deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (typed, described) = families(&text);
    for family in &named {
        if typed.contains(family) {
            assert!(described.contains(family), "{family} is served without # HELP (no describe_*)");
        } else {
            assert!(distributed.contains(family.as_str()), "{family} is on the dashboard but served nowhere");
        }
    }
    // What `lamina serve` records of one function's run, per function and per account.
    for needle in [
        "lamina_invocations_total{account=\"",
        "lamina_errors_total{account=\"",
        "lamina_throttles_total{account=\"",
        "lamina_http_requests_total{operation=\"POST /2015-03-31/functions/{name}/invocations\",status=\"2xx\"}",
        "lamina_http_requests_total{operation=\"POST /2015-03-31/functions/{name}/invocations\",status=\"4xx\"}",
        "lamina_db_query_duration_seconds_bucket{engine=\"sqlite\",kind=\"query\"",
        "lamina_sandboxes_live{runtime=\"python3.11\"} ",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
    assert!(
        text.lines().any(|l| l.starts_with("lamina_async_queue_depth ")),
        "the queue's depth is sampled when scraped:\n{text}"
    );
    env.stop().await;
}

//! The shipper against a real observability service on SQLite: what producers hand over is stored
//! exactly once and in order after `flush`, a flood beyond the buffer drops the oldest and counts
//! it, sends to a service that is away (over gRPC) are retried, in order, bounded and never
//! blocking producers, until it comes up, and stopping ships what is pending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lamina_common::telemetry::{LogBatch, Metric, MetricKey, MetricSample, ShippedEvent, TelemetrySink};
use lamina_common::time::now_ms;
use lamina_observability::{LogLimits, Observability, ObservabilityClient, Shipper, ShipperConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "123456789012";
const FUNCTION: &str = "shipped";
const GROUP: &str = "/aws/lambda/shipped";

async fn observability(dir: &tempfile::TempDir) -> Observability {
    let url = format!("sqlite://{}", dir.path().join("metadata.db").display());
    let store = lamina_metadata::Store::connect(&url).await.expect("open sqlite");
    Observability::new(store, "us-east-1", LogLimits::default())
}

fn batch(stream: &str, messages: impl IntoIterator<Item = String>, timestamp_ms: i64) -> LogBatch {
    LogBatch {
        account_id: ACCOUNT.into(),
        log_group: GROUP.into(),
        log_stream: stream.into(),
        events: messages.into_iter().map(|message| ShippedEvent { timestamp_ms, message }).collect(),
    }
}

fn sample(metric: Metric, timestamp_ms: i64, value: f64) -> MetricSample {
    MetricSample {
        key: MetricKey {
            account_id: ACCOUNT.into(),
            function_name: FUNCTION.into(),
            resource: FUNCTION.into(),
            executed_version: "$LATEST".into(),
            metric,
        },
        timestamp_ms,
        value,
    }
}

/// Every message of `stream`, oldest first.
async fn stored_messages(obs: &Observability, stream: &str) -> Vec<String> {
    let request = json!({"logGroupName": GROUP, "logStreamName": stream, "startFromHead": true, "limit": 10_000});
    let reply = obs.dispatch(ACCOUNT, "GetLogEvents", request).await.expect("GetLogEvents");
    reply["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["message"].as_str().expect("message").to_owned())
        .collect()
}

/// Datapoints of `metric` for the function over [start, end) seconds, per minute.
async fn datapoints(obs: &Observability, metric: Metric, start: i64, end: i64) -> Vec<Value> {
    let request = json!({
        "Namespace": "AWS/Lambda", "MetricName": metric.name(),
        "Dimensions": [{"Name": "FunctionName", "Value": FUNCTION}],
        "StartTime": start, "EndTime": end, "Period": 60,
        "Statistics": ["SampleCount", "Sum", "Minimum", "Maximum"],
    });
    let reply = obs.dispatch(ACCOUNT, "GetMetricStatistics", request).await.expect("GetMetricStatistics");
    let mut points = reply["Datapoints"].as_array().expect("Datapoints").clone();
    points.sort_by(|a, b| a["Timestamp"].as_f64().partial_cmp(&b["Timestamp"].as_f64()).expect("timestamps"));
    points
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_are_stored_exactly_and_in_order_after_flush() {
    let dir = tempfile::tempdir().expect("temp dir");
    let obs = observability(&dir).await;
    let stop = CancellationToken::new();
    // A long interval: what is stored below was sent by `flush`.
    let config = ShipperConfig { flush_interval: Duration::from_secs(3600), ..ShipperConfig::default() };
    let (shipper, task) = Shipper::start(obs.clone().into(), config, stop.clone());

    // Three minutes, ten minutes ago; 4 producers × 3 minutes × 500 invocations.
    let first_minute = (now_ms() / 60_000 - 10) * 60;
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let sink: Arc<dyn TelemetrySink> = shipper.clone();
            std::thread::spawn(move || {
                for minute in 0..3i64 {
                    let at = (first_minute + minute * 60) * 1000 + 1000;
                    for i in 0..500i64 {
                        sink.metric(sample(Metric::Invocations, at + i, 1.0));
                        sink.metric(sample(Metric::Duration, at + i, (p * 1000 + i) as f64));
                        sink.metric(sample(Metric::Errors, at + i, if i % 10 == 0 { 1.0 } else { 0.0 }));
                    }
                    // Each producer its own stream, lines in order, sometimes several per batch.
                    let lines = (0..50).map(move |i| format!("p{p} m{minute} line {i:03}\n"));
                    let lines: Vec<String> = lines.collect();
                    for chunk in lines.chunks(7) {
                        sink.logs(batch(&format!("2026/01/01/[$LATEST]p{p}"), chunk.to_vec(), at));
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().expect("producer");
    }
    shipper.flush().await;
    let stats = shipper.stats();
    assert_eq!((stats.pending_events, stats.pending_stats, stats.dropped_events), (0, 0, 0), "{stats:?}");
    assert_eq!(stats.shipped_events, 4 * 3 * 50);

    let (start, end) = (first_minute, first_minute + 180);
    let invocations = datapoints(&obs, Metric::Invocations, start, end).await;
    assert_eq!(invocations.len(), 3, "{invocations:?}");
    for point in &invocations {
        assert_eq!((point["Sum"].as_f64(), point["SampleCount"].as_f64()), (Some(2000.0), Some(2000.0)), "{point}");
    }
    let errors = datapoints(&obs, Metric::Errors, start, end).await;
    assert_eq!(errors.iter().map(|p| p["Sum"].as_f64().expect("Sum")).sum::<f64>(), 3.0 * 4.0 * 50.0);
    let durations = datapoints(&obs, Metric::Duration, start, end).await;
    let per_minute: f64 = (0..4).flat_map(|p| (0..500).map(move |i| (p * 1000 + i) as f64)).sum();
    for point in &durations {
        assert_eq!(point["Sum"].as_f64(), Some(per_minute), "{point}");
        assert_eq!((point["Minimum"].as_f64(), point["Maximum"].as_f64()), (Some(0.0), Some(3499.0)), "{point}");
    }
    for p in 0..4 {
        let want: Vec<String> = (0..3).flat_map(|m| (0..50).map(move |i| format!("p{p} m{m} line {i:03}\n"))).collect();
        assert_eq!(stored_messages(&obs, &format!("2026/01/01/[$LATEST]p{p}")).await, want);
    }

    // A second flush with nothing new sends nothing twice.
    shipper.flush().await;
    let again = datapoints(&obs, Metric::Invocations, start, end).await;
    assert_eq!(again, invocations);
    stop.cancel();
    task.await.expect("shipping task");
}

/// A port nothing listens on (yet).
fn free_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_buffer_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let obs = observability(&dir).await;
    let stop = CancellationToken::new();
    // The task stays idle: the counts below are exact.
    let config =
        ShipperConfig { flush_interval: Duration::from_secs(3600), max_pending_events: 100, ..Default::default() };
    let (shipper, task) = Shipper::start(obs.clone().into(), config, stop.clone());
    let stream = "2026/01/01/[$LATEST]flood";
    let at = now_ms();
    for i in 0..1000 {
        shipper.logs(batch(stream, [format!("event {i:04}\n")], at + i));
    }
    let stats = shipper.stats();
    assert_eq!((stats.pending_events, stats.dropped_events), (100, 900), "{stats:?}");
    shipper.flush().await;
    let want: Vec<String> = (900..1000).map(|i| format!("event {i:04}\n")).collect();
    assert_eq!(stored_messages(&obs, stream).await, want);
    let stats = shipper.stats();
    assert_eq!((stats.pending_events, stats.dropped_events, stats.shipped_events), (0, 900, 100), "{stats:?}");
    stop.cancel();
    task.await.expect("shipping task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_a_service_that_is_away_are_retried_until_it_comes_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let obs = observability(&dir).await;
    let addr = free_port();
    let client = ObservabilityClient::connect(&[addr.to_string()]).expect("client");
    let stop = CancellationToken::new();
    let config =
        ShipperConfig { flush_interval: Duration::from_millis(20), max_pending_events: 100, ..Default::default() };
    let (shipper, task) = Shipper::start(client, config, stop.clone());
    let stream = "2026/01/01/[$LATEST]retried";
    let at = now_ms();

    // Producers never wait on the service, and the buffer stays bounded while it is away.
    let started = Instant::now();
    for i in 0..1000 {
        shipper.logs(batch(stream, [format!("event {i:04}\n")], at + i));
        shipper.metric(sample(Metric::Invocations, at, 1.0));
    }
    assert!(started.elapsed() < Duration::from_secs(1), "handing over took {:?}", started.elapsed());
    assert!(shipper.try_flush().await.is_err(), "nothing listens yet");
    wait_until("the shipping task's sends fail", Duration::from_secs(5), || shipper.stats().failed_sends >= 3).await;
    let stats = shipper.stats();
    assert!(stats.pending_events <= 100 && stats.shipped_events == 0, "{stats:?}");

    // The service comes up: the task's retries deliver the newest 100 events in order (a failed
    // send went back ahead of newer events, and the oldest were dropped first), and every sample.
    let (incoming, _) = lamina_rpc::transport::bind(addr).await.expect("bind the service's port");
    let served = CancellationToken::new();
    let server = tokio::spawn(lamina_observability::serve(obs.clone(), incoming, served.clone()));
    wait_until("the pending telemetry is shipped", Duration::from_secs(20), || {
        let s = shipper.stats();
        s.shipped_events == 100 && s.shipped_stats == 1 && s.pending_events == 0 && s.pending_stats == 0
    })
    .await;
    let want: Vec<String> = (900..1000).map(|i| format!("event {i:04}\n")).collect();
    assert_eq!(stored_messages(&obs, stream).await, want);
    assert_eq!(shipper.stats().dropped_events, 900);
    let minute = at / 60_000 * 60;
    let points = datapoints(&obs, Metric::Invocations, minute, minute + 60).await;
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(points[0]["Sum"].as_f64(), Some(1000.0));

    stop.cancel();
    task.await.expect("shipping task");
    served.cancel();
    server.await.expect("server").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ships_what_is_pending() {
    let dir = tempfile::tempdir().expect("temp dir");
    let obs = observability(&dir).await;
    let stop = CancellationToken::new();
    let config = ShipperConfig { flush_interval: Duration::from_secs(3600), ..ShipperConfig::default() };
    let (shipper, task) = Shipper::start(obs.clone().into(), config, stop.clone());
    let stream = "2026/01/01/[$LATEST]last";
    shipper.logs(batch(stream, ["START\n".to_owned(), "END\n".to_owned()], now_ms()));
    assert_eq!(shipper.stats().pending_events, 2);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("the task ends").expect("shipping task");
    assert_eq!(stored_messages(&obs, stream).await, ["START\n", "END\n"]);
    assert_eq!(shipper.stats().pending_events, 0);
}

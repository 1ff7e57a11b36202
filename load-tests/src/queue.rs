//! `enqueue-redis`: how fast `Queue::redis` accepts events, without the rest of Lamina; `events`:
//! Event invokes through the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use lamina_async_queue::{Queue, QueueConfig};

use crate::client::Client;
use crate::procs::Snapshot;
use crate::stats::Stats;

/// Enqueues `events` events from `concurrency` tasks under a fresh key prefix, prints latency
/// and events/s, checks they were all counted, and deletes the keys.
pub async fn enqueue_redis(url: &str, events: usize, concurrency: usize, payload_bytes: usize) -> anyhow::Result<()> {
    let prefix = format!("lamina-load:{}", uuid::Uuid::new_v4().simple());
    let queue = Queue::redis(url, &prefix, QueueConfig::default()).await.context("connect the queue to Redis")?;
    let payload = Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(payload_bytes)));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (queue, payload, next) = (queue.clone(), payload.clone(), next.clone());
            tokio::spawn(async move {
                let mut stats = Stats::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= events {
                        return stats;
                    }
                    let t = Instant::now();
                    match queue.enqueue(&format!("load-{i}"), "000000000000", "load", None, &payload).await {
                        Ok(()) => stats.record(t.elapsed()),
                        Err(_) => stats.errors += 1,
                    }
                }
            })
        })
        .collect();
    let mut stats = Stats::default();
    for task in tasks {
        stats.merge(task.await.context("enqueue task")?);
    }
    stats.elapsed = started.elapsed();
    println!("enqueue-redis (concurrency {concurrency}, payload {payload_bytes} B): {}", stats.summary());
    let pending = queue.pending().await.context("count events")?;
    println!("pending after the run: {pending} (accepted {})", events - stats.errors);

    let client = redis::Client::open(url).context("parse Redis URL")?;
    let mut conn = tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection())
        .await
        .context("connect to Redis")??;
    let keys = [format!("{prefix}:events"), format!("{prefix}:delayed")];
    redis::cmd("DEL").arg(&keys).query_async::<i64>(&mut conn).await.context("delete the run's keys")?;
    Ok(())
}

/// `events`: Event invokes of a no-op function through the API, `concurrency` clients back to
/// back; prints accepted/s and latency of the 202, and with `drain` (a cluster's Redis URL and
/// key prefix) how long the queue took to run them all.
pub async fn events(
    client: &Client,
    requests: usize,
    concurrency: usize,
    server_pid: Option<u32>,
    drain: Option<(String, String)>,
) -> anyhow::Result<()> {
    let name = "bench-events";
    crate::ensure_function(client, name, "python3.11", crate::noop_body("python3.11"), 128).await?;
    client.invoke(name, b"{}").await?;
    let queue = match &drain {
        Some((url, prefix)) => {
            Some(Queue::redis(url.as_str(), prefix, QueueConfig::default()).await.context("connect to the queue")?)
        }
        None => None,
    };
    let request = client.presigned_event(name, b"{}")?;
    // Connections open and the queue's workers awake before the clock starts.
    let warmup = client.fixed_count(request.clone(), concurrency, concurrency * 10).await?;
    anyhow::ensure!(warmup.errors == 0, "Event invokes failed during the warm-up: {}", warmup.summary());
    match &queue {
        Some(queue) => {
            wait_empty(queue, Duration::from_secs(60)).await?;
        }
        None => tokio::time::sleep(Duration::from_secs(2)).await,
    }
    let before = server_pid.map(Snapshot::take);
    let started = Instant::now();
    let stats = client.fixed_count(request, concurrency, requests).await?;
    println!("Event invokes accepted (HTTP 202), {concurrency} concurrent: {}", stats.summary());
    if let Some(before) = &before {
        println!("CPU while accepting (the queue runs events meanwhile):");
        before.report_since(stats.count());
    }
    if let Some(queue) = &queue {
        let left = queue.pending().await.context("count events")?;
        println!("Left in the queue when the last was accepted: {left}");
        let done = wait_empty(queue, Duration::from_secs(300)).await?;
        let wall = started.elapsed();
        println!(
            "All {} events run {:.2} s after the first was sent ({:.0} events/s end to end; drained {:.2} s after the last was accepted)",
            stats.count(),
            wall.as_secs_f64(),
            stats.count() as f64 / wall.as_secs_f64(),
            done.as_secs_f64()
        );
        if let Some(before) = &before {
            println!("CPU from the first event sent to the queue empty:");
            before.report_since(stats.count());
        }
    }
    Ok(())
}

/// Polls the queue until it holds nothing; returns how long that took.
async fn wait_empty(queue: &Queue, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if queue.pending().await.context("count events")? == 0 {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(started.elapsed() < limit, "the queue did not empty within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

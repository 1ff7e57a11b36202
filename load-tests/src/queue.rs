//! `enqueue-redis`: how fast `Queue::redis` accepts events, without the rest of Lamina.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use lamina_async_queue::{Queue, QueueConfig};

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

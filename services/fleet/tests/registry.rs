//! The host registry against a real Redis.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lamina_fleet::{HostInfo, HostRegistry, spawn_heartbeats};
use tokio_util::sync::CancellationToken;

use common::{TestRedis, wait_until};

fn info(id: &str) -> HostInfo {
    HostInfo {
        id: id.to_owned(),
        grpc_addr: format!("{id}.hosts:7104"),
        capacity_sandboxes: 16,
        memory_budget_mb: 8192,
        memory_used_mb: 512,
        in_flight: 1,
        warm: vec!["acct/fn/1/rev".to_owned()],
        runtimes: vec!["python3.12".to_owned(), "nodejs22.x".to_owned()],
        draining: false,
    }
}

async fn ids(registry: &HostRegistry) -> Vec<String> {
    registry.list().await.expect("list").into_iter().map(|h| h.id).collect()
}

#[tokio::test]
async fn heartbeat_list_and_remove() {
    let Some(redis) = TestRedis::start().await else { return };
    let host = HostRegistry::new(redis.another_connection().await, &redis.prefix, Duration::from_secs(10));
    let router = HostRegistry::new(redis.conn.clone(), &redis.prefix, Duration::from_secs(10));
    assert!(router.list().await.unwrap().is_empty());

    host.heartbeat(&info("h2")).await.unwrap();
    host.heartbeat(&info("h1")).await.unwrap();
    let listed = router.list().await.unwrap();
    assert_eq!(listed, vec![info("h1"), info("h2")], "full info, sorted by id");

    let mut changed = info("h1");
    changed.in_flight = 7;
    changed.draining = true;
    host.heartbeat(&changed).await.unwrap();
    assert_eq!(router.list().await.unwrap()[0], changed, "the latest heartbeat wins");

    host.remove("h1").await.unwrap();
    assert_eq!(ids(&router).await, vec!["h2"]);
    let mut keys = redis.keys().await;
    keys.sort();
    assert_eq!(keys, vec![format!("{}:host:h2", redis.prefix), format!("{}:hosts", redis.prefix)]);
    redis.cleanup().await;
}

#[tokio::test]
async fn a_host_without_heartbeats_expires_and_is_pruned() {
    let Some(redis) = TestRedis::start().await else { return };
    let short = HostRegistry::new(redis.conn.clone(), &redis.prefix, Duration::from_millis(300));
    let long = HostRegistry::new(redis.conn.clone(), &redis.prefix, Duration::from_secs(10));
    short.heartbeat(&info("dies")).await.unwrap();
    long.heartbeat(&info("lives")).await.unwrap();
    assert_eq!(ids(&long).await, vec!["dies", "lives"]);

    assert!(wait_until(Duration::from_secs(3), || async { ids(&long).await == vec!["lives"] }).await, "expired");
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{}:hosts", redis.prefix))
        .query_async(&mut redis.conn.clone())
        .await
        .unwrap();
    assert_eq!(members, vec!["lives"], "the expired id was pruned from the set");
    redis.cleanup().await;
}

#[tokio::test]
async fn spawned_heartbeats_keep_the_host_listed_until_shutdown() {
    let Some(redis) = TestRedis::start().await else { return };
    let ttl = Duration::from_millis(300);
    let registry = HostRegistry::new(redis.another_connection().await, &redis.prefix, ttl);
    let router = HostRegistry::new(redis.conn.clone(), &redis.prefix, ttl);
    let beats = Arc::new(AtomicU32::new(0));
    let shutdown = CancellationToken::new();

    let counter = beats.clone();
    let task = spawn_heartbeats(
        registry,
        ttl / 3,
        move || {
            let mut i = info("h1");
            i.in_flight = counter.fetch_add(1, Ordering::SeqCst);
            i
        },
        shutdown.clone(),
    );

    // Listed, and still listed with fresh info after many TTLs' worth of heartbeats.
    let fresh = wait_until(Duration::from_secs(5), || async {
        router.list().await.unwrap().first().is_some_and(|h| h.id == "h1" && h.in_flight >= 12)
    })
    .await;
    assert!(fresh, "heartbeats keep coming, beats so far: {}", beats.load(Ordering::SeqCst));
    assert_eq!(ids(&router).await, vec!["h1"]);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(3), task).await.expect("stops").expect("task");
    assert!(router.list().await.unwrap().is_empty(), "removed at shutdown, not left to expire");
    assert!(redis.keys().await.is_empty());
    redis.cleanup().await;
}

//! Concurrency leases against a real Redis, with two handles on separate connections standing in
//! for two routers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lamina_fleet::{LeaseConfig, Leases};

use common::{TestRedis, wait_until};

async fn two_routers(redis: &TestRedis, ttl: Duration) -> (Leases, Leases) {
    let config = LeaseConfig { prefix: redis.prefix.clone(), ttl };
    (Leases::redis(redis.conn.clone(), config.clone()), Leases::redis(redis.another_connection().await, config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_holds_under_fifty_concurrent_acquirers() {
    let Some(redis) = TestRedis::start().await else { return };
    let (a, b) = two_routers(&redis, Duration::from_secs(10)).await;
    const LIMIT: u32 = 5;
    let held = Arc::new(AtomicU32::new(0));
    let max_held = Arc::new(AtomicU32::new(0));
    let refused = Arc::new(AtomicU32::new(0));

    let mut tasks = Vec::new();
    for i in 0..50 {
        let leases = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (held, max_held, refused) = (held.clone(), max_held.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 3 {
                let Some(lease) = leases.try_acquire("acct", LIMIT).await.expect("try_acquire") else {
                    refused.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                    continue;
                };
                // Counted only between acquire and release, so it never exceeds what Redis holds.
                let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                max_held.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await; // The "invocation".
                held.fetch_sub(1, Ordering::SeqCst);
                lease.release().await.expect("release");
                done += 1;
            }
        }));
    }
    let observer = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut seen = 0;
            for _ in 0..50 {
                seen = seen.max(a.in_flight("acct").await.expect("in_flight"));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    for task in tasks {
        task.await.expect("acquirer");
    }
    let seen_in_redis = observer.await.expect("observer");

    assert!(max_held.load(Ordering::SeqCst) <= LIMIT, "held {} at once", max_held.load(Ordering::SeqCst));
    assert!(max_held.load(Ordering::SeqCst) >= 1);
    assert!(seen_in_redis <= LIMIT, "Redis counted {seen_in_redis} live leases");
    assert!(refused.load(Ordering::Relaxed) > 0, "50 acquirers for 5 slots must contend");
    assert_eq!(a.in_flight("acct").await.unwrap(), 0, "all released");
    redis.cleanup().await;
}

#[tokio::test]
async fn release_frees_the_slot_for_the_other_router() {
    let Some(redis) = TestRedis::start().await else { return };
    let (a, b) = two_routers(&redis, Duration::from_secs(10)).await;

    let first = a.try_acquire("acct", 2).await.unwrap().expect("first");
    let second = b.try_acquire("acct", 2).await.unwrap().expect("second");
    assert_ne!(first.id(), second.id());
    assert_eq!(first.key(), "acct");
    assert!(a.try_acquire("acct", 2).await.unwrap().is_none(), "full");
    assert!(b.try_acquire("acct", 2).await.unwrap().is_none(), "full for the other router too");
    assert!(b.try_acquire("other", 2).await.unwrap().is_some(), "keys are independent");
    assert_eq!(b.in_flight("acct").await.unwrap(), 2);

    first.release().await.unwrap();
    assert_eq!(b.in_flight("acct").await.unwrap(), 1);
    let third = b.try_acquire("acct", 2).await.unwrap().expect("freed by release");

    // Dropping without release frees the slot too, from a spawned task.
    drop(third);
    assert!(wait_until(Duration::from_secs(2), || async { a.in_flight("acct").await.unwrap() == 1 }).await);
    second.release().await.unwrap();
    assert!(wait_until(Duration::from_secs(2), || async { redis.keys().await.is_empty() }).await, "empty sets vanish");
    redis.cleanup().await;
}

#[tokio::test]
async fn limit_zero_takes_nothing() {
    let Some(redis) = TestRedis::start().await else { return };
    let (a, _) = two_routers(&redis, Duration::from_secs(10)).await;
    assert!(a.try_acquire("acct", 0).await.unwrap().is_none());
    assert_eq!(a.in_flight("acct").await.unwrap(), 0);
    redis.cleanup().await;
}

#[tokio::test]
async fn lease_of_a_dead_router_expires_after_the_ttl() {
    let Some(redis) = TestRedis::start().await else { return };
    let ttl = Duration::from_millis(300);
    let (dead, alive) = two_routers(&redis, ttl).await;

    let lease = dead.try_acquire("acct", 1).await.unwrap().expect("acquire");
    lease.abandon(); // No renewal, no release: what a crashed router leaves behind.
    assert_eq!(alive.in_flight("acct").await.unwrap(), 1, "still held right after the crash");
    assert!(alive.try_acquire("acct", 1).await.unwrap().is_none());

    let freed = wait_until(Duration::from_secs(3), || async { alive.in_flight("acct").await.unwrap() == 0 }).await;
    assert!(freed, "the slot came back after the TTL");
    let taken = alive.try_acquire("acct", 1).await.unwrap().expect("the freed slot can be taken");
    taken.release().await.unwrap();
    redis.cleanup().await;
}

#[tokio::test]
async fn renewal_keeps_a_lease_past_its_ttl() {
    let Some(redis) = TestRedis::start().await else { return };
    let ttl = Duration::from_millis(300);
    let (a, b) = two_routers(&redis, ttl).await;

    let lease = a.try_acquire("acct", 1).await.unwrap().expect("acquire");
    // The passing of time is what is under test here: several TTLs.
    tokio::time::sleep(ttl * 4).await;
    assert_eq!(b.in_flight("acct").await.unwrap(), 1, "renewed in the background");
    assert!(b.try_acquire("acct", 1).await.unwrap().is_none());
    assert!(lease.renew().await.unwrap(), "an explicit renewal succeeds too");

    lease.release().await.unwrap();
    assert!(b.try_acquire("acct", 1).await.unwrap().is_some());
    redis.cleanup().await;
}

#[tokio::test]
async fn renew_reports_a_lost_lease() {
    let Some(redis) = TestRedis::start().await else { return };
    let (a, _) = two_routers(&redis, Duration::from_secs(10)).await;
    let lease = a.try_acquire("acct", 1).await.unwrap().expect("acquire");
    redis::cmd("DEL")
        .arg(format!("{}:lease:acct", redis.prefix))
        .query_async::<()>(&mut redis.conn.clone())
        .await
        .unwrap();
    assert!(!lease.renew().await.unwrap(), "the lease is gone");
    assert_eq!(a.in_flight("acct").await.unwrap(), 0, "a lost lease does not come back");
    lease.release().await.unwrap();
    redis.cleanup().await;
}

#[tokio::test]
async fn keys_follow_the_layout_and_expire_with_the_last_lease() {
    let Some(redis) = TestRedis::start().await else { return };
    // A trailing ':' on the prefix is ignored.
    let config = LeaseConfig { prefix: format!("{}:", redis.prefix), ttl: Duration::from_secs(10) };
    let leases = Leases::redis(redis.conn.clone(), config);
    let lease = leases.try_acquire("acct-1", 3).await.unwrap().expect("acquire");

    let key = format!("{}:lease:acct-1", redis.prefix);
    assert_eq!(redis.keys().await, vec![key.clone()]);
    let mut conn = redis.conn.clone();
    let members: Vec<String> = redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
    assert_eq!(members, vec![lease.id().to_owned()]);
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert!((1..=10_000).contains(&pttl), "the set expires with its last lease, PTTL {pttl}");

    lease.release().await.unwrap();
    redis.cleanup().await;
}

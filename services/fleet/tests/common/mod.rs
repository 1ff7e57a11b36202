//! Shared set-up for the tests against a real Redis: a fresh prefix per test, keys deleted at the end.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

/// A reachable Redis and a prefix no other test uses.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
    pub conn: ConnectionManager,
}

impl TestRedis {
    /// Connects to `LAMINA_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). When Redis is
    /// unreachable: panics under `CI`, else prints why and returns `None` (the test then skips).
    pub async fn start() -> Option<Self> {
        let url = std::env::var("LAMINA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let reachable = async {
            let mut conn = lamina_fleet::connect(&url).await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            anyhow::Ok(conn)
        };
        match tokio::time::timeout(Duration::from_secs(3), reachable).await {
            Ok(Ok(conn)) => Some(Self { url, prefix: format!("lamina-test:{}", uuid::Uuid::new_v4().simple()), conn }),
            outcome => {
                let why = match outcome {
                    Ok(Err(err)) => format!("{err:#}"),
                    _ => "timed out".to_owned(),
                };
                assert!(std::env::var_os("CI").is_none(), "Redis at {url} is required under CI: {why}");
                eprintln!("skipping: Redis at {url} is unreachable ({why}); set LAMINA_TEST_REDIS_URL");
                None
            }
        }
    }

    /// A second, separate connection (another router or host).
    pub async fn another_connection(&self) -> ConnectionManager {
        lamina_fleet::connect(&self.url).await.expect("connect to redis")
    }

    /// Keys under this test's prefix.
    pub async fn keys(&self) -> Vec<String> {
        let mut conn = self.conn.clone();
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .expect("scan keys");
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    /// Deletes every key under the prefix.
    pub async fn cleanup(self) {
        let keys = self.keys().await;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).query_async::<()>(&mut self.conn.clone()).await.expect("delete test keys");
        }
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

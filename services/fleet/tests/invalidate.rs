//! Cache invalidation over a real Redis's pub/sub.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lamina_fleet::{Invalidation, Invalidator, Subscription, subscribe};
use redis::{ConnectionAddr, IntoConnectionInfo as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use common::TestRedis;

async fn next(sub: &mut Subscription) -> Invalidation {
    tokio::time::timeout(Duration::from_secs(1), sub.recv()).await.expect("delivered within 1 s").expect("open")
}

fn key(topic: &str, key: &str) -> Invalidation {
    Invalidation::Key { topic: topic.to_owned(), key: key.to_owned() }
}

#[tokio::test]
async fn every_subscriber_receives_within_a_second() {
    let Some(redis) = TestRedis::start().await else { return };
    let mut frontend_a = subscribe(redis.url.as_str(), &redis.prefix).await.unwrap();
    let mut frontend_b = subscribe(redis.url.as_str(), &redis.prefix).await.unwrap();
    let invalidator = Invalidator::new(redis.conn.clone(), &redis.prefix);

    invalidator.publish("secret", "AKIAEXAMPLE").await.unwrap();
    invalidator.publish("function", "acct/fn").await.unwrap();
    for sub in [&mut frontend_a, &mut frontend_b] {
        assert_eq!(next(sub).await, key("secret", "AKIAEXAMPLE"));
        assert_eq!(next(sub).await, key("function", "acct/fn"));
    }
    redis.cleanup().await;
}

#[tokio::test]
async fn other_prefixes_are_not_heard() {
    let Some(redis) = TestRedis::start().await else { return };
    let mut sub = subscribe(redis.url.as_str(), &redis.prefix).await.unwrap();
    let other = Invalidator::new(redis.conn.clone(), &format!("{}-other", redis.prefix));
    // Same prefix with a trailing ':' is the same channel.
    let ours = Invalidator::new(redis.conn.clone(), &format!("{}:", redis.prefix));

    other.publish("secret", "theirs").await.unwrap();
    ours.publish("secret", "ours").await.unwrap();
    assert_eq!(next(&mut sub).await, key("secret", "ours"), "the other prefix's message never arrives");
    redis.cleanup().await;
}

#[tokio::test]
async fn reconnects_and_reports_missed_messages() {
    let Some(redis) = TestRedis::start().await else { return };
    // The subscriber goes through a proxy whose connections the test can cut, so no other
    // client of the shared Redis is disturbed.
    let info = redis.url.as_str().into_connection_info().expect("parse url");
    let ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
        eprintln!("skipping: the reconnect test needs a plain TCP Redis url");
        return;
    };
    let proxy = Proxy::start(format!("{host}:{port}")).await;
    let via_proxy = info.set_addr(ConnectionAddr::Tcp("127.0.0.1".to_owned(), proxy.port));
    let mut sub = subscribe(via_proxy, &redis.prefix).await.unwrap();
    let invalidator = Invalidator::new(redis.conn.clone(), &redis.prefix);
    invalidator.publish("secret", "before").await.unwrap();
    assert_eq!(next(&mut sub).await, key("secret", "before"));

    proxy.cut();
    let missed = tokio::time::timeout(Duration::from_secs(5), sub.recv()).await.expect("reconnected").expect("open");
    assert_eq!(missed, Invalidation::Missed, "told to drop everything after the gap");
    invalidator.publish("secret", "after").await.unwrap();
    assert_eq!(next(&mut sub).await, key("secret", "after"));
    redis.cleanup().await;
}

/// A TCP proxy to Redis that can drop all its current connections.
struct Proxy {
    port: u16,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let tracked = connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tracked.lock().unwrap().push(conn.abort_handle());
            }
        });
        Self { port, connections, accept: accept.abort_handle() }
    }

    /// Closes every connection made so far (both sockets drop); new ones are still accepted.
    fn cut(&self) {
        for conn in self.connections.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

//! Cross-process cache invalidation over Redis pub/sub, e.g. a revoked access key is published on
//! topic `secret` so that every frontend drops its cached secret within a second.
//!
//! Everything goes through one channel, `{prefix}:invalidate`, carrying `{"topic":..,"key":..}`.
//! Pub/sub keeps nothing for absent subscribers, so after a reconnect a subscriber receives
//! [`Invalidation::Missed`] and should drop everything it caches.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rand::Rng as _;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument as _;

use crate::connection::normalize_prefix;

/// How often an idle subscription checks that its connection is alive.
const PING_EVERY: Duration = Duration::from_secs(5);
/// Limit on connecting, subscribing and each ping.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// Drop the cached entry `key` of `topic`.
    Key {
        /// What kind of entry, e.g. `secret`.
        topic: String,
        /// Which entry, e.g. an access key id.
        key: String,
    },
    /// The subscription was down for a while and messages may have been lost: drop everything.
    Missed,
}

#[derive(Serialize, Deserialize)]
struct Message {
    topic: String,
    key: String,
}

fn channel(prefix: &str) -> String {
    format!("{}:invalidate", normalize_prefix(prefix))
}

/// Publishes invalidations. Cheap to clone.
#[derive(Clone)]
pub struct Invalidator {
    conn: crate::metrics::Timed<ConnectionManager>,
    channel: Arc<str>,
}

impl Invalidator {
    /// Publishes on `prefix`'s channel through `conn`.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self { conn: crate::metrics::Timed::new(conn, "invalidations"), channel: channel(prefix).into() }
    }

    /// Tells every subscriber to drop `key` of `topic`.
    pub async fn publish(&self, topic: &str, key: &str) -> anyhow::Result<()> {
        let payload = serde_json::to_string(&Message { topic: topic.to_owned(), key: key.to_owned() })
            .context("encode invalidation")?;
        redis::cmd("PUBLISH")
            .arg(&*self.channel)
            .arg(payload)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .context("publish invalidation")
    }
}

/// The receiving end of [`subscribe`]. Dropping it stops the background task.
pub struct Subscription {
    rx: mpsc::Receiver<Invalidation>,
    _stop: DropGuard,
}

impl Subscription {
    /// The next invalidation; `None` only once the background task has stopped.
    pub async fn recv(&mut self) -> Option<Invalidation> {
        self.rx.recv().await
    }
}

/// Subscribes to `prefix`'s invalidations on the Redis at `redis` (a URL such as
/// `redis://127.0.0.1:6379` or a [`redis::ConnectionInfo`]). Returns once subscribed, so anything
/// published afterwards is delivered. A background task on a dedicated connection reconnects (with
/// backoff) whenever the connection fails, and then sends [`Invalidation::Missed`].
pub async fn subscribe(redis: impl redis::IntoConnectionInfo, prefix: &str) -> anyhow::Result<Subscription> {
    let client = redis::Client::open(redis).context("parse redis url")?;
    let channel = channel(prefix);
    let (sink, stream) = connect(&client, &channel).await?;
    let (tx, rx) = mpsc::channel(1024);
    let stop = CancellationToken::new();
    tokio::spawn(forward(client, channel, sink, stream, tx, stop.clone()).in_current_span());
    Ok(Subscription { rx, _stop: stop.drop_guard() })
}

async fn connect(client: &redis::Client, channel: &str) -> anyhow::Result<(PubSubSink, PubSubStream)> {
    let subscribed = async {
        let (mut sink, stream) = client.get_async_pubsub().await.context("connect to redis")?.split();
        sink.subscribe(channel).await.context("subscribe to invalidations")?;
        anyhow::Ok((sink, stream))
    };
    tokio::time::timeout(IO_TIMEOUT, subscribed).await.context("subscribe to invalidations: timed out")?
}

/// Forwards messages to `tx` until `stop` fires or the receiver is gone, reconnecting as needed.
async fn forward(
    client: redis::Client,
    channel: String,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    tx: mpsc::Sender<Invalidation>,
    stop: CancellationToken,
) {
    loop {
        let lost = relay(&mut sink, &mut stream, &tx, &stop).await;
        let Some(err) = lost else { return };
        tracing::warn!("invalidation subscription lost: {err:#}; reconnecting");
        let mut delay = BACKOFF_MIN;
        (sink, stream) = loop {
            let attempt = tokio::select! {
                () = stop.cancelled() => return,
                attempt = connect(&client, &channel) => attempt,
            };
            match attempt {
                Ok(pair) => break pair,
                Err(err) => tracing::warn!("reconnect invalidation subscription: {err:#}"),
            }
            let jitter = Duration::from_millis(rand::rng().random_range(0..=delay.as_millis() as u64 / 2));
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay + jitter) => {}
            }
            delay = (delay * 2).min(BACKOFF_MAX);
        };
        tracing::info!("invalidation subscription restored");
        if tx.send(Invalidation::Missed).await.is_err() {
            return;
        }
    }
}

/// Relays until the connection fails (returns the reason) or the subscriber is gone (`None`).
async fn relay(
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    tx: &mpsc::Sender<Invalidation>,
    stop: &CancellationToken,
) -> Option<anyhow::Error> {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        let msg = tokio::select! {
            () = stop.cancelled() => return None,
            () = tx.closed() => return None,
            _ = ping.tick() => {
                // A half-open connection delivers nothing and reports nothing; a ping finds it out.
                match tokio::time::timeout(IO_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(err)) => return Some(anyhow::Error::new(err).context("ping")),
                    Err(_) => return Some(anyhow::anyhow!("ping timed out")),
                }
            }
            msg = stream.next() => msg,
        };
        let Some(msg) = msg else { return Some(anyhow::anyhow!("connection closed")) };
        let decoded = msg
            .get_payload::<String>()
            .context("read payload")
            .and_then(|p| serde_json::from_str::<Message>(&p).context("decode payload"));
        match decoded {
            Ok(Message { topic, key }) => {
                if tx.send(Invalidation::Key { topic, key }).await.is_err() {
                    return None;
                }
            }
            Err(err) => tracing::warn!("skip invalidation message: {err:#}"),
        }
    }
}

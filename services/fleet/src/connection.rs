//! Opening Redis connections and naming keys under the configured prefix.

use anyhow::Context as _;
use redis::aio::ConnectionManager;

/// Opens a [`ConnectionManager`] to `url`: it reconnects by itself (two quick attempts per command,
/// 500 ms to connect, the default 500 ms response timeout).
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).context("parse redis url")?;
    // Few, quick reconnect attempts: a command issued while Redis is down fails within about a
    // second (the caller answers 503) instead of waiting out a long retry loop.
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_min_delay(std::time::Duration::from_millis(50))
        .set_max_delay(std::time::Duration::from_millis(500))
        .set_connection_timeout(Some(std::time::Duration::from_millis(500)));
    client.get_connection_manager_with_config(config).await.context("connect to redis")
}

/// The prefix with any trailing `:` removed, so that keys read `{prefix}:lease:..`.
pub(crate) fn normalize_prefix(prefix: &str) -> String {
    prefix.trim_end_matches(':').to_owned()
}

//! Opening Redis connections and naming keys under the configured prefix.

use anyhow::Context as _;
use redis::aio::ConnectionManager;

/// Opens a [`ConnectionManager`] (reconnects by itself; 500 ms response timeout) to `url`.
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).context("parse redis url")?;
    client.get_connection_manager().await.context("connect to redis")
}

/// The prefix with any trailing `:` removed, so that keys read `{prefix}:lease:..`.
pub(crate) fn normalize_prefix(prefix: &str) -> String {
    prefix.trim_end_matches(':').to_owned()
}

//! The log store and the CloudWatch Logs operations over it.
//!
//! Tables (migration 0011): `log_groups`, `log_streams` and `log_events`, every row keyed by
//! `account_id` and every statement filtered on it. Events are ordered by (timestamp, id), `id`
//! being the insertion order; a group's and a stream's `stored_bytes` are kept equal to the sum of
//! their events' sizes (message bytes + 26, AWS's event size) by every change, in the change's
//! transaction. Writers take rows in one order (groups, then streams, each sorted by key), so
//! concurrent ingests and deletions on Postgres cannot deadlock.

mod bounds;
mod events;
pub(crate) mod filter_pattern;
mod groups;
mod ingest;
mod request;
mod streams;
pub(crate) mod tokens;

use anyhow::Context as _;
use lamina_common::ApiResult;
use lamina_common::telemetry::LogBatch;
use lamina_metadata::on_pool;

use crate::Observability;

/// Runs `$body` in one write transaction on either engine and commits it; `$lock` is the clause
/// to append to a `select` of a row the transaction changes (`for update` on Postgres; SQLite's
/// `begin immediate` already holds the database write lock).
macro_rules! in_tx {
    ($store:expr, $tx:ident, $lock:ident => $body:block) => {
        match $store {
            lamina_metadata::Store::Sqlite(pool) => {
                let $lock = "";
                let mut $tx = pool.begin_with("begin immediate").await.context("begin transaction")?;
                let out = $body;
                $tx.commit().await.context("commit transaction")?;
                out
            }
            lamina_metadata::Store::Postgres(pool) => {
                let $lock = " for update";
                let mut $tx = pool.begin().await.context("begin transaction")?;
                let out = $body;
                $tx.commit().await.context("commit transaction")?;
                out
            }
        }
    };
}
pub(crate) use in_tx;

/// The size an event counts for, in stored bytes and the size cap: AWS's event size.
pub(crate) fn event_size(message: &str) -> i64 {
    i64::try_from(message.len()).unwrap_or(i64::MAX).saturating_add(26)
}

/// `arn:aws:logs:<region>:<account>:log-group:<name>:*` (DescribeLogGroups' `arn`).
pub(crate) fn group_arn(region: &str, account: &str, name: &str) -> String {
    format!("{}:*", group_arn_bare(region, account, name))
}

/// The ARN without the trailing `:*` (DescribeLogGroups' `logGroupArn`).
pub(crate) fn group_arn_bare(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:logs:{region}:{account}:log-group:{name}")
}

/// Whether `account` has a log group called `name`.
pub(crate) async fn group_exists(obs: &Observability, account: &str, name: &str) -> anyhow::Result<bool> {
    let sql = "select name from log_groups where account_id = $1 and name = $2";
    let found: Option<String> = on_pool!(&obs.store, pool => sqlx::query_scalar(sql)
        .bind(account).bind(name)
        .fetch_optional(pool).await)
    .context("read log group")?;
    Ok(found.is_some())
}

/// Answers the CloudWatch Logs operation `op` (`DescribeLogGroups`, ...) for `account`, or `None`
/// when `op` is not one of them.
pub(crate) async fn dispatch(
    obs: &Observability,
    account: &str,
    op: &str,
    request: &serde_json::Value,
) -> Option<ApiResult<serde_json::Value>> {
    let reply = match op {
        "CreateLogGroup" => groups::create(obs, account, request).await,
        "DescribeLogGroups" => groups::describe(obs, account, request).await,
        "DeleteLogGroup" => groups::delete(obs, account, request).await,
        "PutRetentionPolicy" => groups::put_retention(obs, account, request).await,
        "DeleteRetentionPolicy" => groups::delete_retention(obs, account, request).await,
        "DescribeLogStreams" => streams::describe(obs, account, request).await,
        "GetLogEvents" => events::get(obs, account, request).await,
        "FilterLogEvents" => events::filter(obs, account, request).await,
        _ => return None,
    };
    Some(reply)
}

/// Stores shipped log events (creating their groups and streams).
pub(crate) async fn ingest(obs: &Observability, batches: &[LogBatch]) -> ApiResult<()> {
    ingest::ingest(obs, batches).await
}

/// Deletes events past their group's retention and, per account, the oldest events beyond the
/// size cap. One pass; the janitor repeats it (public so that tests and tools can run one).
pub async fn enforce_limits(obs: &Observability) -> anyhow::Result<()> {
    bounds::enforce(obs).await
}

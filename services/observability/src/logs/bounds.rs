//! Keeping the log store within its bounds: retention per group, then a size cap per account.
//!
//! Each pass costs two statements over `log_groups` (with index probes into `log_events`) plus
//! work only for the groups and accounts that are over a bound, so many idle accounts cost little.
//! Deletions run in chunks, each its own transaction that takes the affected group rows first
//! (the order ingest and DeleteLogGroup take them), deletes events, and subtracts their sizes
//! from the groups' and streams' `stored_bytes`.
//!
//! A stream left without events is deleted. AWS keeps a log stream's metadata until it is deleted
//! by hand, but here a stream is per sandbox, so keeping them would grow `log_streams` without
//! bound; a stream that receives events again is recreated by ingest. Groups are kept.

use std::collections::BTreeMap;

use anyhow::Context as _;
use lamina_common::time::now_ms;

use super::in_tx;
use crate::Observability;

/// Events deleted per transaction: short enough not to stall ingest.
const CHUNK: i64 = 5000;
const DAY_MS: i64 = 86_400_000;

#[derive(sqlx::FromRow)]
struct ExpiredGroup {
    account_id: String,
    name: String,
    days: i64,
}

#[derive(sqlx::FromRow)]
struct OverCap {
    account_id: String,
    bytes: i64,
}

#[derive(sqlx::FromRow)]
struct Deleted {
    log_group: String,
    log_stream: String,
    bytes: i64,
}

/// Which events of an account a chunk deletes, oldest first.
enum Victims<'a> {
    /// Of one group, older than a timestamp.
    Expired { group: &'a str, before: i64 },
    /// Of any group, up to a number of bytes.
    Oldest { bytes: i64 },
}

pub(crate) async fn enforce(obs: &Observability) -> anyhow::Result<()> {
    let now = now_ms();
    let default_days = obs.limits.default_retention_days.map(i64::from);
    let sql = "select g.account_id, g.name, coalesce(g.retention_in_days, $2) as days from log_groups g \
               where coalesce(g.retention_in_days, $2) is not null and exists (select 1 from log_events e \
               where e.account_id = g.account_id and e.log_group = g.name \
               and e.event_timestamp < $1 - coalesce(g.retention_in_days, $2) * 86400000)";
    let expired: Vec<ExpiredGroup> = lamina_metadata::on_pool!(&obs.store, pool => sqlx::query_as(sql)
        .bind(now).bind(default_days)
        .fetch_all(pool).await)
    .context("find groups past retention")?;
    for g in expired {
        let before = now.saturating_sub(g.days.saturating_mul(DAY_MS));
        while delete_chunk(obs, &g.account_id, Victims::Expired { group: &g.name, before }).await? == CHUNK {}
    }

    let cap = i64::try_from(obs.limits.bytes_per_account).unwrap_or(i64::MAX);
    let sql = "select account_id, cast(sum(stored_bytes) as bigint) as bytes from log_groups \
               group by account_id having sum(stored_bytes) > $1";
    let over: Vec<OverCap> =
        lamina_metadata::on_pool!(&obs.store, pool => sqlx::query_as(sql).bind(cap).fetch_all(pool).await)
            .context("find accounts over the log size cap")?;
    for account in over {
        let mut excess = account.bytes - cap;
        while excess > 0 {
            let freed = delete_chunk(obs, &account.account_id, Victims::Oldest { bytes: excess }).await?;
            if freed == 0 {
                break;
            }
            excess -= freed;
        }
    }
    Ok(())
}

/// Deletes one chunk of `account`'s events; returns the number of events deleted (`Expired`) or
/// the bytes freed (`Oldest`).
async fn delete_chunk(obs: &Observability, account: &str, victims: Victims<'_>) -> anyhow::Result<i64> {
    let now = now_ms();
    let out = in_tx!(&obs.store, tx, lock => {
        let deleted: Vec<Deleted> = match victims {
            Victims::Expired { group, before } => {
                let sql = format!("select name from log_groups where account_id = $1 and name = $2{lock}");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(account).bind(group)
                    .fetch_optional(&mut *tx).await.context("lock log group")?;
                let sql = "delete from log_events where id in (select id from log_events \
                           where account_id = $1 and log_group = $2 and event_timestamp < $3 \
                           order by event_timestamp, id limit $4) returning log_group, log_stream, bytes";
                sqlx::query_as(sql)
                    .bind(account).bind(group).bind(before).bind(CHUNK)
                    .fetch_all(&mut *tx).await.context("delete expired log events")?
            }
            Victims::Oldest { bytes } => {
                let sql = format!("select name from log_groups where account_id = $1 order by name{lock}");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(account)
                    .fetch_all(&mut *tx).await.context("lock log groups")?;
                let sql = "select bytes from log_events where account_id = $1 \
                           order by event_timestamp, id limit $2";
                let sizes: Vec<i64> = sqlx::query_scalar(sql)
                    .bind(account).bind(CHUNK)
                    .fetch_all(&mut *tx).await.context("read oldest log events")?;
                let mut sum = 0;
                let count = sizes.iter().take_while(|b| {
                    let under = sum < bytes;
                    sum += **b;
                    under
                }).count();
                let sql = "delete from log_events where id in (select id from log_events where account_id = $1 \
                           order by event_timestamp, id limit $2) returning log_group, log_stream, bytes";
                sqlx::query_as(sql)
                    .bind(account).bind(i64::try_from(count).unwrap_or(CHUNK))
                    .fetch_all(&mut *tx).await.context("delete oldest log events")?
            }
        };
        let mut groups: BTreeMap<&str, i64> = BTreeMap::new();
        let mut streams: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for d in &deleted {
            *groups.entry(&d.log_group).or_default() += d.bytes;
            *streams.entry((&d.log_group, &d.log_stream)).or_default() += d.bytes;
        }
        for (group, bytes) in &groups {
            sqlx::query("update log_groups set stored_bytes = stored_bytes - $3, updated_at = $4 \
                         where account_id = $1 and name = $2")
                .bind(account).bind(*group).bind(*bytes).bind(now)
                .execute(&mut *tx).await.context("count log group bytes")?;
        }
        for ((group, stream), bytes) in &streams {
            sqlx::query("update log_streams set stored_bytes = stored_bytes - $4, updated_at = $5 \
                         where account_id = $1 and log_group = $2 and name = $3")
                .bind(account).bind(*group).bind(*stream).bind(*bytes).bind(now)
                .execute(&mut *tx).await.context("count log stream bytes")?;
            sqlx::query("delete from log_streams where account_id = $1 and log_group = $2 and name = $3 \
                         and stored_bytes <= 0")
                .bind(account).bind(*group).bind(*stream)
                .execute(&mut *tx).await.context("delete empty log stream")?;
        }
        match victims {
            Victims::Expired { .. } => i64::try_from(deleted.len()).unwrap_or(CHUNK),
            Victims::Oldest { .. } => groups.values().sum(),
        }
    });
    Ok(out)
}

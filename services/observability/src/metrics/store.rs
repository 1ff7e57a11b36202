//! The metric tables of migration 0012: upserting shipped minutes, aggregating minutes into
//! periods, listing the keys with recent data, and pruning old minutes. Queries are the same SQL on
//! both engines (`$n` parameters, `on conflict do update`, `case` instead of `greatest`/`max`);
//! batched inserts differ: arrays through `unnest` on Postgres, multi-row `values` on SQLite.

use std::collections::BTreeMap;

use anyhow::Context as _;
use lamina_common::telemetry::{Metric, MetricKey, MetricStat};
use lamina_metadata::{Store, on_pool};

use super::selection::{KeyRow, Selection};
use crate::sql::{pieces, value_rows};

const STAT_COLUMNS: &str = "account_id, function_name, resource, executed_version, metric, minute, \
     sample_count, sum_value, min_value, max_value";
const KEY_COLUMNS: &str = "account_id, function_name, resource, executed_version, metric, last_minute";

/// What an existing minute becomes: counts and sums add up, minima and maxima widen.
const MERGE_STATS: &str = "on conflict (account_id, function_name, resource, executed_version, metric, minute) \
     do update set sample_count = function_metrics.sample_count + excluded.sample_count, \
     sum_value = function_metrics.sum_value + excluded.sum_value, \
     min_value = case when excluded.min_value < function_metrics.min_value \
                 then excluded.min_value else function_metrics.min_value end, \
     max_value = case when excluded.max_value > function_metrics.max_value \
                 then excluded.max_value else function_metrics.max_value end";

/// A key's latest minute; the `where` leaves a key whose latest minute is already stored unwritten.
const MERGE_KEYS: &str = "on conflict (account_id, function_name, resource, executed_version, metric) \
     do update set last_minute = excluded.last_minute where excluded.last_minute > function_metric_keys.last_minute";

/// Postgres: the whole batch as arrays, one prepared statement per table whatever the batch size.
const PG_STATS: &str = "insert into function_metrics (account_id, function_name, resource, executed_version, metric, \
     minute, sample_count, sum_value, min_value, max_value) \
     select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], \
     $8::float8[], $9::float8[], $10::float8[]) ";
const PG_KEYS: &str = "insert into function_metric_keys (account_id, function_name, resource, executed_version, \
     metric, last_minute) \
     select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) ";

/// SQLite: `insert into <table> (<columns>) values (?1, .., ?n), (..) <merge>` for `rows` rows of
/// `columns` parameters.
fn sqlite_insert(table: &str, columns: &str, rows: usize, merge: &str) -> String {
    let template = vec!["?"; columns.split(',').count()].join(", ");
    format!("insert into {table} ({columns}) values {} {merge}", value_rows(&template, rows, 1, '?'))
}

/// Adds `stats` to the stored minutes (counts and sums add up, minima and maxima widen), all in
/// one transaction. Rows go in key order so that concurrent ingests lock shared rows in the same
/// order (no deadlocks on Postgres).
pub(crate) async fn ingest(store: &Store, stats: &[MetricStat]) -> anyhow::Result<()> {
    // One row per key and minute: Postgres refuses to update a row twice in one statement.
    let mut merged: BTreeMap<(&MetricKey, i64), MetricStat> = BTreeMap::new();
    for s in stats {
        merged.entry((&s.key, s.minute)).and_modify(|m| m.merge(s)).or_insert_with(|| s.clone());
    }
    let mut latest: BTreeMap<&MetricKey, i64> = BTreeMap::new();
    for s in stats {
        let last = latest.entry(&s.key).or_insert(s.minute);
        *last = (*last).max(s.minute);
    }
    let stats: Vec<MetricStat> = merged.into_values().collect();
    let keys: Vec<(&MetricKey, i64)> = latest.into_iter().collect();
    match store {
        Store::Sqlite(pool) => {
            // `begin immediate`: take the write lock first, so the busy timeout applies.
            let mut tx = pool.begin_with("begin immediate").await.context("begin transaction")?;
            for chunk in pieces(&stats) {
                let sql =
                    sqlx::AssertSqlSafe(sqlite_insert("function_metrics", STAT_COLUMNS, chunk.len(), MERGE_STATS));
                let mut q = sqlx::query(sql);
                for s in chunk {
                    q = q
                        .bind(s.key.account_id.as_str())
                        .bind(s.key.function_name.as_str())
                        .bind(s.key.resource.as_str())
                        .bind(s.key.executed_version.as_str())
                        .bind(s.key.metric.name())
                        .bind(s.minute)
                        .bind(count(s))
                        .bind(s.sum)
                        .bind(s.min)
                        .bind(s.max);
                }
                q.execute(&mut *tx).await.context("store metric minutes")?;
            }
            for chunk in pieces(&keys) {
                let sql =
                    sqlx::AssertSqlSafe(sqlite_insert("function_metric_keys", KEY_COLUMNS, chunk.len(), MERGE_KEYS));
                let mut q = sqlx::query(sql);
                for (key, last) in chunk {
                    q = q
                        .bind(key.account_id.as_str())
                        .bind(key.function_name.as_str())
                        .bind(key.resource.as_str())
                        .bind(key.executed_version.as_str())
                        .bind(key.metric.name())
                        .bind(*last);
                }
                q.execute(&mut *tx).await.context("store metric keys")?;
            }
            tx.commit().await.context("commit metrics")?;
        }
        Store::Postgres(pool) => {
            let column = |f: fn(&MetricStat) -> &str| stats.iter().map(f).collect::<Vec<&str>>();
            let mut tx = pool.begin().await.context("begin transaction")?;
            sqlx::query(sqlx::AssertSqlSafe(format!("{PG_STATS}{MERGE_STATS}")))
                .bind(column(|s| &s.key.account_id))
                .bind(column(|s| &s.key.function_name))
                .bind(column(|s| &s.key.resource))
                .bind(column(|s| &s.key.executed_version))
                .bind(column(|s| s.key.metric.name()))
                .bind(stats.iter().map(|s| s.minute).collect::<Vec<i64>>())
                .bind(stats.iter().map(count).collect::<Vec<i64>>())
                .bind(stats.iter().map(|s| s.sum).collect::<Vec<f64>>())
                .bind(stats.iter().map(|s| s.min).collect::<Vec<f64>>())
                .bind(stats.iter().map(|s| s.max).collect::<Vec<f64>>())
                .execute(&mut *tx)
                .await
                .context("store metric minutes")?;
            let key_column = |f: fn(&MetricKey) -> &str| keys.iter().map(|(k, _)| f(k)).collect::<Vec<&str>>();
            sqlx::query(sqlx::AssertSqlSafe(format!("{PG_KEYS}{MERGE_KEYS}")))
                .bind(key_column(|k| &k.account_id))
                .bind(key_column(|k| &k.function_name))
                .bind(key_column(|k| &k.resource))
                .bind(key_column(|k| &k.executed_version))
                .bind(key_column(|k| k.metric.name()))
                .bind(keys.iter().map(|(_, last)| *last).collect::<Vec<i64>>())
                .execute(&mut *tx)
                .await
                .context("store metric keys")?;
            tx.commit().await.context("commit metrics")?;
        }
    }
    Ok(())
}

fn count(s: &MetricStat) -> i64 {
    i64::try_from(s.sample_count).unwrap_or(i64::MAX)
}

/// One period's combined minutes.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(crate) struct Bucket {
    /// Start of the period, epoch seconds.
    pub(crate) ts: i64,
    pub(crate) sample_count: i64,
    pub(crate) sum_value: f64,
    pub(crate) min_value: f64,
    pub(crate) max_value: f64,
}

/// What one series query reads.
#[derive(Debug, Clone)]
pub(crate) struct SeriesQuery<'a> {
    pub(crate) account: &'a str,
    pub(crate) metric: Metric,
    pub(crate) selection: &'a Selection,
    /// First minute (epoch seconds); periods are counted from here.
    pub(crate) start: i64,
    /// Minutes before this one (epoch seconds) are read.
    pub(crate) end: i64,
    /// Seconds, a multiple of 60.
    pub(crate) period: i64,
}

/// The periods of a series that have samples, oldest first.
pub(crate) async fn series(store: &Store, q: &SeriesQuery<'_>) -> anyhow::Result<Vec<Bucket>> {
    let (predicate, binds) = q.selection.predicate(q.metric, 6);
    let sql = sqlx::AssertSqlSafe(format!(
        "select cast($3 + ((minute - $3) / $5) * $5 as bigint) as ts, \
         cast(sum(sample_count) as bigint) as sample_count, sum(sum_value) as sum_value, \
         min(min_value) as min_value, max(max_value) as max_value \
         from function_metrics \
         where account_id = $1 and metric = $2 and minute >= $3 and minute < $4 and {predicate} \
         group by ts order by ts"
    ));
    on_pool!(store, pool => {
        let mut query = sqlx::query_as::<_, Bucket>(sql)
            .bind(q.account)
            .bind(q.metric.name())
            .bind(q.start)
            .bind(q.end)
            .bind(q.period);
        for b in binds {
            query = query.bind(b);
        }
        query.fetch_all(pool).await.context("read metric minutes")
    })
}

/// The keys of `account` with data since `since` (epoch seconds), of `metric` if given.
pub(crate) async fn keys(
    store: &Store,
    account: &str,
    metric: Option<Metric>,
    since: i64,
) -> anyhow::Result<Vec<KeyRow>> {
    on_pool!(store, pool => {
        match metric {
            Some(m) => sqlx::query_as::<_, KeyRow>(
                "select function_name, resource, executed_version, metric from function_metric_keys \
                 where account_id = $1 and last_minute >= $2 and metric = $3",
            )
            .bind(account)
            .bind(since)
            .bind(m.name())
            .fetch_all(pool)
            .await,
            None => sqlx::query_as::<_, KeyRow>(
                "select function_name, resource, executed_version, metric from function_metric_keys \
                 where account_id = $1 and last_minute >= $2",
            )
            .bind(account)
            .bind(since)
            .fetch_all(pool)
            .await,
        }
        .context("read metric keys")
    })
}

/// Deletes the minutes, and the keys, older than `before` (epoch seconds); returns the minutes deleted.
pub(crate) async fn prune(store: &Store, before: i64) -> anyhow::Result<u64> {
    on_pool!(store, pool => {
        let minutes = sqlx::query("delete from function_metrics where minute < $1")
            .bind(before)
            .execute(pool)
            .await
            .context("prune metric minutes")?
            .rows_affected();
        sqlx::query("delete from function_metric_keys where last_minute < $1")
            .bind(before)
            .execute(pool)
            .await
            .context("prune metric keys")?;
        Ok(minutes)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_inserts_number_every_parameter() {
        assert_eq!(
            super::sqlite_insert("t", "a, b, c", 2, "on conflict do nothing"),
            "insert into t (a, b, c) values (?1, ?2, ?3), (?4, ?5, ?6) on conflict do nothing"
        );
    }
}

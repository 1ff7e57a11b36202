//! Storing shipped events: one transaction per call, multi-row statements (groups, then streams,
//! then events), so a shipper's batch of thousands of events costs a handful of round trips.

use std::borrow::Cow;
use std::collections::BTreeMap;

use anyhow::Context as _;
use lamina_common::ApiResult;
use lamina_common::telemetry::LogBatch;
use lamina_common::time::now_ms;

use super::{event_size, in_tx};
use crate::Observability;
use crate::sql::{marker, pieces, value_rows};

/// A stream's share of the batch.
#[derive(Default)]
struct StreamDelta {
    bytes: i64,
    first: i64,
    last: i64,
}

struct EventRow<'a> {
    account: &'a str,
    group: &'a str,
    stream: &'a str,
    timestamp: i64,
    message: Cow<'a, str>,
    bytes: i64,
}

/// Postgres text cannot hold NUL; both engines store the same replacement so they answer alike.
fn storable(message: &str) -> Cow<'_, str> {
    if message.contains('\0') { Cow::Owned(message.replace('\0', "\u{fffd}")) } else { Cow::Borrowed(message) }
}

pub(crate) async fn ingest(obs: &Observability, batches: &[LogBatch]) -> ApiResult<()> {
    let mut events: Vec<EventRow<'_>> = batches
        .iter()
        .flat_map(|b| {
            b.events.iter().map(move |e| {
                let message = storable(&e.message);
                let bytes = event_size(&message);
                EventRow {
                    account: &b.account_id,
                    group: &b.log_group,
                    stream: &b.log_stream,
                    timestamp: e.timestamp_ms,
                    message,
                    bytes,
                }
            })
        })
        .collect();
    if events.is_empty() {
        return Ok(());
    }
    // Ids follow timestamps within a stream's batch, and rows are taken in key order.
    events
        .sort_by(|a, b| (a.account, a.group, a.stream, a.timestamp).cmp(&(b.account, b.group, b.stream, b.timestamp)));

    let mut streams: BTreeMap<(&str, &str, &str), StreamDelta> = BTreeMap::new();
    let mut groups: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for e in &events {
        let s = streams.entry((e.account, e.group, e.stream)).or_insert(StreamDelta {
            bytes: 0,
            first: e.timestamp,
            last: e.timestamp,
        });
        s.bytes += e.bytes;
        s.first = s.first.min(e.timestamp);
        s.last = s.last.max(e.timestamp);
        *groups.entry((e.account, e.group)).or_default() += e.bytes;
    }
    let groups: Vec<_> = groups.into_iter().collect();
    let streams: Vec<_> = streams.into_iter().collect();
    let now = now_ms();
    let marker = marker(&obs.store);

    in_tx!(&obs.store, tx, _lock => {
        for chunk in pieces(&groups) {
            let sql = format!(
                "insert into log_groups (account_id, name, creation_time, stored_bytes, created_at, updated_at) \
                 values {} on conflict (account_id, name) do update set \
                 stored_bytes = log_groups.stored_bytes + excluded.stored_bytes, updated_at = excluded.updated_at",
                value_rows("?, ?, $1, ?, $1, $1", chunk.len(), 2, marker)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
            for ((account, group), bytes) in chunk {
                q = q.bind(*account).bind(*group).bind(*bytes);
            }
            q.execute(&mut *tx).await.context("upsert log groups")?;
        }
        for chunk in pieces(&streams) {
            let sql = format!(
                "insert into log_streams (account_id, log_group, name, creation_time, first_event_timestamp, \
                 last_event_timestamp, last_ingestion_time, stored_bytes, created_at, updated_at) \
                 values {} on conflict (account_id, log_group, name) do update set \
                 first_event_timestamp = case when log_streams.first_event_timestamp is null \
                   or excluded.first_event_timestamp < log_streams.first_event_timestamp \
                   then excluded.first_event_timestamp else log_streams.first_event_timestamp end, \
                 last_event_timestamp = case when log_streams.last_event_timestamp is null \
                   or excluded.last_event_timestamp > log_streams.last_event_timestamp \
                   then excluded.last_event_timestamp else log_streams.last_event_timestamp end, \
                 last_ingestion_time = excluded.last_ingestion_time, \
                 stored_bytes = log_streams.stored_bytes + excluded.stored_bytes, updated_at = excluded.updated_at",
                value_rows("?, ?, ?, $1, ?, ?, $1, ?, $1, $1", chunk.len(), 2, marker)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
            for ((account, group, stream), d) in chunk {
                q = q.bind(*account).bind(*group).bind(*stream).bind(d.first).bind(d.last).bind(d.bytes);
            }
            q.execute(&mut *tx).await.context("upsert log streams")?;
        }
        for chunk in pieces(&events) {
            let sql = format!(
                "insert into log_events (account_id, log_group, log_stream, event_timestamp, ingestion_time, message, bytes) \
                 values {}",
                value_rows("?, ?, ?, ?, $1, ?, ?", chunk.len(), 2, marker)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
            for e in chunk {
                q = q.bind(e.account).bind(e.group).bind(e.stream).bind(e.timestamp).bind(e.message.as_ref()).bind(e.bytes);
            }
            q.execute(&mut *tx).await.context("insert log events")?;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_bytes_are_replaced() {
        assert_eq!(storable("a\0b"), "a\u{fffd}b");
        assert!(matches!(storable("plain"), Cow::Borrowed("plain")));
    }
}

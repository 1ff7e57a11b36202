//! GetLogEvents (one stream, forward and backward tokens) and FilterLogEvents (a group's streams
//! interleaved, filter patterns, a bounded scan per call).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use lamina_common::names::Violations;
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::{Store, on_pool};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::filter_pattern::FilterPattern;
use super::request::{self, GroupRef, check_stream_name, finish, group_not_found, required, stream_not_found};
use super::tokens::{self, Position, StreamToken};
use super::{event_size, group_exists};
use crate::Observability;

/// AWS caps a reply at 1 MB of events (counted as [`event_size`]); a page holds at least one.
const MAX_REPLY_BYTES: i64 = 1_048_576;
/// Rows FilterLogEvents reads per round trip.
const SCAN_PAGE: usize = 1000;
/// FilterLogEvents stops scanning after this many events or this long and returns a nextToken
/// (possibly with no events), as AWS does, so a rare pattern over a large group never makes one
/// call slow; the client carries on with the token.
const SCAN_EVENTS: usize = 50_000;
const SCAN_TIME: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetRequest {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    next_token: Option<String>,
    limit: Option<i64>,
    start_from_head: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterRequest {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_names: Option<Vec<String>>,
    log_stream_name_prefix: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    log_stream: String,
    event_timestamp: i64,
    ingestion_time: i64,
    message: String,
}

impl EventRow {
    fn position(&self) -> Position {
        Position { timestamp: self.event_timestamp, id: self.id }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutputEvent {
    timestamp: i64,
    message: String,
    ingestion_time: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FilteredEvent {
    log_stream_name: String,
    timestamp: i64,
    message: String,
    ingestion_time: i64,
    event_id: String,
}

/// The streams a scan reads.
enum Streams<'a> {
    One(&'a str),
    Names(&'a [String]),
    Prefix(&'a str),
    All,
}

/// Events of one group within inclusive timestamp bounds.
struct Scan<'a> {
    account: &'a str,
    group: &'a str,
    streams: Streams<'a>,
    from: i64,
    to: i64,
}

impl Scan<'_> {
    /// Up to `limit` events after `from` (ascending) or before it (descending).
    async fn page(&self, store: &Store, from: Position, forward: bool, limit: usize) -> anyhow::Result<Vec<EventRow>> {
        let (cmp, dir) = if forward { (">", "") } else { ("<", " desc") };
        let mut sql = format!(
            "select id, log_stream, event_timestamp, ingestion_time, message from log_events \
             where account_id = $1 and log_group = $2 and event_timestamp >= $3 and event_timestamp <= $4 \
             and (event_timestamp, id) {cmp} ($5, $6)"
        );
        let mut next = 7;
        match &self.streams {
            Streams::One(_) => {
                sql.push_str(" and log_stream = $7");
                next += 1;
            }
            Streams::Names(names) => {
                let list: Vec<String> = (0..names.len()).map(|i| format!("${}", next + i)).collect();
                sql.push_str(&format!(" and log_stream in ({})", list.join(", ")));
                next += names.len();
            }
            Streams::Prefix(_) => {
                sql.push_str(" and substr(log_stream, 1, length($7)) = $7");
                next += 1;
            }
            Streams::All => {}
        }
        sql.push_str(&format!(" order by event_timestamp{dir}, id{dir} limit ${next}"));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = on_pool!(store, pool => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(self.account).bind(self.group).bind(self.from).bind(self.to)
                .bind(from.timestamp).bind(from.id);
            match &self.streams {
                Streams::One(s) | Streams::Prefix(s) => q = q.bind(*s),
                Streams::Names(names) => {
                    for n in names.iter() {
                        q = q.bind(n.as_str());
                    }
                }
                Streams::All => {}
            }
            q.bind(limit).fetch_all(pool).await
        })
        .context("read log events")?;
        Ok(rows)
    }
}

fn check_time(v: &mut Violations, value: Option<i64>, member: &str) {
    if let Some(t) = value {
        v.range(t, member, 0, i64::MAX);
    }
}

/// The group an operation names, or the caller's not-found error.
async fn existing_group(obs: &Observability, account: &str, group: GroupRef) -> ApiResult<String> {
    match group {
        GroupRef::Name(name) if group_exists(obs, account, &name).await? => Ok(name),
        _ => Err(group_not_found()),
    }
}

pub(crate) async fn get(obs: &Observability, account: &str, request: &Value) -> ApiResult<Value> {
    let r: GetRequest = request::parse(request)?;
    let mut v = Violations::default();
    let group = request::group_ref(&mut v, account, r.log_group_name.as_deref(), r.log_group_identifier.as_deref())?;
    let stream = required(&mut v, r.log_stream_name.as_deref(), "logStreamName");
    if r.log_stream_name.is_some() {
        check_stream_name(&mut v, stream, "logStreamName");
    }
    check_time(&mut v, r.start_time, "startTime");
    check_time(&mut v, r.end_time, "endTime");
    let limit = request::limit(&mut v, r.limit, 10_000, 10_000);
    finish(v)?;
    let token = r.next_token.as_deref().map(StreamToken::parse).transpose()?;

    let GroupRef::Name(group) = group else { return Err(group_not_found()) };
    let sql = "select name from log_streams where account_id = $1 and log_group = $2 and name = $3";
    let found: Option<String> = on_pool!(&obs.store, pool => sqlx::query_scalar(sql)
        .bind(account).bind(&group).bind(stream)
        .fetch_optional(pool).await)
    .context("read log stream")?;
    if found.is_none() {
        return Err(if group_exists(obs, account, &group).await? { stream_not_found() } else { group_not_found() });
    }

    // GetLogEvents' endTime is exclusive.
    let scan = Scan {
        account,
        group: &group,
        streams: Streams::One(stream),
        from: r.start_time.unwrap_or(i64::MIN),
        to: r.end_time.map_or(i64::MAX, |t| t.saturating_sub(1)),
    };
    let (from, forward) = match token {
        None if r.start_from_head.unwrap_or(false) => (Position::before(i64::MIN), true),
        // Without a token AWS returns the newest events (in ascending order).
        None => (Position::after(i64::MAX), false),
        Some(StreamToken::Forward(p)) => (p, true),
        Some(StreamToken::Backward(p)) => (p, false),
    };
    let mut rows = scan.page(&obs.store, from, forward, limit).await?;
    let mut bytes = 0;
    let keep = rows
        .iter()
        .position(|e| {
            bytes += event_size(&e.message);
            bytes > MAX_REPLY_BYTES
        })
        .map_or(rows.len(), |n| n.max(1));
    rows.truncate(keep);
    if !forward {
        rows.reverse();
    }

    let (next_forward, next_backward) = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) => {
            (StreamToken::Forward(last.position()).format(), StreamToken::Backward(first.position()).format())
        }
        // Nothing further in the token's direction: the same token again (the paginators' stop signal).
        _ => match (token, r.next_token) {
            (Some(StreamToken::Forward(p)), Some(sent)) => (sent, StreamToken::Backward(p).format()),
            (Some(StreamToken::Backward(p)), Some(sent)) => (StreamToken::Forward(p).format(), sent),
            _ => {
                let p = Position::before(scan.from);
                (StreamToken::Forward(p).format(), StreamToken::Backward(p).format())
            }
        },
    };
    let events: Vec<OutputEvent> = rows
        .into_iter()
        .map(|e| OutputEvent { timestamp: e.event_timestamp, message: e.message, ingestion_time: e.ingestion_time })
        .collect();
    Ok(json!({ "events": events, "nextForwardToken": next_forward, "nextBackwardToken": next_backward }))
}

pub(crate) async fn filter(obs: &Observability, account: &str, request: &Value) -> ApiResult<Value> {
    let r: FilterRequest = request::parse(request)?;
    let mut v = Violations::default();
    let group = request::group_ref(&mut v, account, r.log_group_name.as_deref(), r.log_group_identifier.as_deref())?;
    if let Some(names) = &r.log_stream_names {
        if names.is_empty() {
            v.push("[]", "logStreamNames", "Member must have length greater than or equal to 1");
        } else if names.len() > 100 {
            v.push(&format!("{names:?}"), "logStreamNames", "Member must have length less than or equal to 100");
        }
        for name in names {
            check_stream_name(&mut v, name, "logStreamNames");
        }
    }
    if let Some(prefix) = &r.log_stream_name_prefix {
        check_stream_name(&mut v, prefix, "logStreamNamePrefix");
    }
    if let Some(pattern) = &r.filter_pattern {
        v.length(pattern, "filterPattern", 0, 1024);
    }
    check_time(&mut v, r.start_time, "startTime");
    check_time(&mut v, r.end_time, "endTime");
    let limit = request::limit(&mut v, r.limit, 10_000, 10_000);
    finish(v)?;
    let streams = match (&r.log_stream_names, &r.log_stream_name_prefix) {
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidParameterValue(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.".into(),
            ));
        }
        (Some(names), None) => Streams::Names(names),
        (None, Some(prefix)) => Streams::Prefix(prefix),
        (None, None) => Streams::All,
    };
    let pattern = FilterPattern::parse(r.filter_pattern.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::InvalidParameterValue(e.to_string()))?;
    let mut position = match &r.next_token {
        Some(t) => tokens::decode_position(t)?,
        None => Position::before(i64::MIN),
    };
    let group = existing_group(obs, account, group).await?;

    // Both bounds are inclusive, as AWS's are for FilterLogEvents.
    let scan = Scan {
        account,
        group: &group,
        streams,
        from: r.start_time.unwrap_or(i64::MIN),
        to: r.end_time.unwrap_or(i64::MAX),
    };
    let started = Instant::now();
    let mut events = Vec::new();
    let mut bytes = 0;
    let mut scanned = 0;
    // Paging follows (timestamp, id), never id alone, so that an event stored later with a
    // timestamp at or after a follower's startTime still shows up in its next poll.
    let more = 'scan: loop {
        let want = if pattern.is_all() { (limit - events.len()).min(SCAN_PAGE) } else { SCAN_PAGE };
        let rows = scan.page(&obs.store, position, true, want).await?;
        let exhausted = rows.len() < want;
        let count = rows.len();
        for (i, row) in rows.into_iter().enumerate() {
            if pattern.matches(&row.message) {
                let size = event_size(&row.message);
                if !events.is_empty() && bytes + size > MAX_REPLY_BYTES {
                    break 'scan true;
                }
                bytes += size;
                position = row.position();
                events.push(FilteredEvent {
                    event_id: format!("{:056}", row.id),
                    log_stream_name: row.log_stream,
                    timestamp: row.event_timestamp,
                    message: row.message,
                    ingestion_time: row.ingestion_time,
                });
                if events.len() == limit {
                    break 'scan !(exhausted && i + 1 == count);
                }
            } else {
                position = row.position();
            }
            scanned += 1;
        }
        if exhausted {
            break false;
        }
        if scanned >= SCAN_EVENTS || started.elapsed() >= SCAN_TIME {
            break true;
        }
    };
    let mut reply = json!({ "events": events, "searchedLogStreams": [] });
    if more {
        reply["nextToken"] = json!(tokens::encode_position(position));
    }
    Ok(reply)
}

//! DescribeLogStreams.

use anyhow::Context as _;
use lamina_common::names::Violations;
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::on_pool;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::request::{self, GroupRef, check_stream_name, finish, group_not_found};
use super::{group_arn_bare, group_exists, tokens};
use crate::Observability;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRequest {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name_prefix: Option<String>,
    order_by: Option<String>,
    descending: Option<bool>,
    limit: Option<i64>,
    next_token: Option<String>,
}

#[derive(sqlx::FromRow)]
struct StreamRow {
    name: String,
    creation_time: i64,
    first_event_timestamp: Option<i64>,
    last_event_timestamp: Option<i64>,
    last_ingestion_time: Option<i64>,
    stored_bytes: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogStream {
    log_stream_name: String,
    creation_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_event_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_event_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_ingestion_time: Option<i64>,
    arn: String,
    stored_bytes: i64,
}

#[derive(Clone, Copy, PartialEq)]
enum Order {
    Name,
    LastEventTime,
}

/// Where the previous page ended, in the page's order.
enum Cursor {
    Name(String),
    Time(i64, String),
}

impl Cursor {
    fn encode(&self) -> String {
        match self {
            Self::Name(n) => tokens::encode_text(&format!("n:{n}")),
            Self::Time(t, n) => tokens::encode_text(&format!("t:{t}:{n}")),
        }
    }

    fn decode(token: &str, order: Order) -> ApiResult<Self> {
        let text = tokens::decode_text(token)?;
        match (order, text.split_once(':')) {
            (Order::Name, Some(("n", name))) => Ok(Self::Name(name.to_owned())),
            (Order::LastEventTime, Some(("t", rest))) => {
                let (t, name) = rest.split_once(':').ok_or_else(tokens::invalid_token)?;
                Ok(Self::Time(t.parse().map_err(|_| tokens::invalid_token())?, name.to_owned()))
            }
            _ => Err(tokens::invalid_token()),
        }
    }
}

/// The order key of streams by last event (a stream always has one; 0 keeps the SQL total).
const LAST_EVENT: &str = "coalesce(last_event_timestamp, 0)";

pub(crate) async fn describe(obs: &Observability, account: &str, request: &Value) -> ApiResult<Value> {
    let r: DescribeRequest = request::parse(request)?;
    let mut v = Violations::default();
    let group = request::group_ref(&mut v, account, r.log_group_name.as_deref(), r.log_group_identifier.as_deref())?;
    if let Some(prefix) = &r.log_stream_name_prefix {
        check_stream_name(&mut v, prefix, "logStreamNamePrefix");
    }
    let order = match r.order_by.as_deref() {
        None | Some("LogStreamName") => Order::Name,
        Some("LastEventTime") => Order::LastEventTime,
        Some(other) => {
            v.push(other, "orderBy", "Member must satisfy enum value set: [LogStreamName, LastEventTime]");
            Order::Name
        }
    };
    let limit = request::limit(&mut v, r.limit, 50, 50);
    finish(v)?;
    if order == Order::LastEventTime && r.log_stream_name_prefix.is_some() {
        return Err(ApiError::InvalidParameterValue(
            "Cannot order by LastEventTime with a logStreamNamePrefix.".into(),
        ));
    }
    let GroupRef::Name(group) = group else { return Err(group_not_found()) };
    if !group_exists(obs, account, &group).await? {
        return Err(group_not_found());
    }
    let descending = r.descending.unwrap_or(false);
    let cursor = r.next_token.as_deref().map(|t| Cursor::decode(t, order)).transpose()?;

    let (cmp, dir) = if descending { ("<", " desc") } else { (">", "") };
    let mut sql = String::from(
        "select name, creation_time, first_event_timestamp, last_event_timestamp, last_ingestion_time, stored_bytes \
         from log_streams where account_id = $1 and log_group = $2",
    );
    let mut next_param = 3;
    if r.log_stream_name_prefix.is_some() {
        sql.push_str(&format!(" and substr(name, 1, length(${next_param})) = ${next_param}"));
        next_param += 1;
    }
    match &cursor {
        Some(Cursor::Name(_)) => {
            sql.push_str(&format!(" and name {cmp} ${next_param}"));
            next_param += 1;
        }
        Some(Cursor::Time(..)) => {
            sql.push_str(&format!(" and ({LAST_EVENT}, name) {cmp} (${next_param}, ${})", next_param + 1));
            next_param += 2;
        }
        None => {}
    }
    match order {
        Order::Name => sql.push_str(&format!(" order by name{dir}")),
        Order::LastEventTime => sql.push_str(&format!(" order by {LAST_EVENT}{dir}, name{dir}")),
    }
    sql.push_str(&format!(" limit ${next_param}"));
    let fetch = i64::try_from(limit).unwrap_or(50) + 1;
    let mut rows: Vec<StreamRow> = on_pool!(&obs.store, pool => {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(account).bind(&group);
        if let Some(prefix) = &r.log_stream_name_prefix {
            q = q.bind(prefix);
        }
        match &cursor {
            Some(Cursor::Name(n)) => q = q.bind(n),
            Some(Cursor::Time(t, n)) => q = q.bind(*t).bind(n),
            None => {}
        }
        q.bind(fetch).fetch_all(pool).await
    })
    .context("list log streams")?;

    let next_token = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|s| match order {
            Order::Name => Cursor::Name(s.name.clone()).encode(),
            Order::LastEventTime => Cursor::Time(s.last_event_timestamp.unwrap_or(0), s.name.clone()).encode(),
        })
    } else {
        None
    };
    let group_arn = group_arn_bare(&obs.region, account, &group);
    let streams: Vec<LogStream> = rows
        .into_iter()
        .map(|s| LogStream {
            arn: format!("{group_arn}:log-stream:{}", s.name),
            log_stream_name: s.name,
            creation_time: s.creation_time,
            first_event_timestamp: s.first_event_timestamp,
            last_event_timestamp: s.last_event_timestamp,
            last_ingestion_time: s.last_ingestion_time,
            stored_bytes: s.stored_bytes,
        })
        .collect();
    let mut reply = json!({ "logStreams": streams });
    if let Some(t) = next_token {
        reply["nextToken"] = json!(t);
    }
    Ok(reply)
}

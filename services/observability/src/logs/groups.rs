//! Log groups: CreateLogGroup, DescribeLogGroups, DeleteLogGroup, PutRetentionPolicy and
//! DeleteRetentionPolicy.

use anyhow::Context as _;
use lamina_common::names::Violations;
use lamina_common::time::now_ms;
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::on_pool;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::request::{self, check_group_name, finish, group_not_found, required};
use super::{group_arn, group_arn_bare, in_tx, tokens};
use crate::Observability;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupNameRequest {
    log_group_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRequest {
    log_group_name_prefix: Option<String>,
    log_group_name_pattern: Option<String>,
    limit: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetentionRequest {
    log_group_name: Option<String>,
    retention_in_days: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    name: String,
    creation_time: i64,
    retention_in_days: Option<i64>,
    stored_bytes: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogGroup {
    log_group_name: String,
    creation_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    retention_in_days: Option<i64>,
    metric_filter_count: i64,
    arn: String,
    stored_bytes: i64,
    log_group_class: &'static str,
    log_group_arn: String,
}

/// Rows read per round trip while collecting a page (a pattern may skip many).
const SCAN_ROWS: i64 = 500;

fn name_of(v: &mut Violations, r: &GroupNameRequest) -> String {
    let name = required(v, r.log_group_name.as_deref(), "logGroupName");
    if r.log_group_name.is_some() {
        check_group_name(v, name, "logGroupName");
    }
    name.to_owned()
}

pub(crate) async fn create(obs: &Observability, account: &str, request: &Value) -> ApiResult<Value> {
    let r: GroupNameRequest = request::parse(request)?;
    let mut v = Violations::default();
    let name = name_of(&mut v, &r);
    finish(v)?;
    let now = now_ms();
    let sql = "insert into log_groups (account_id, name, creation_time, stored_bytes, created_at, updated_at) \
               values ($1, $2, $3, 0, $3, $3) on conflict (account_id, name) do nothing";
    let created = on_pool!(&obs.store, pool => sqlx::query(sql)
        .bind(account).bind(&name).bind(now)
        .execute(pool).await.map(|r| r.rows_affected()))
    .context("create log group")?;
    if created == 0 {
        return Err(ApiError::ResourceConflict("The specified log group already exists".into()));
    }
    Ok(json!({}))
}

pub(crate) async fn describe(obs: &Observability, account: &str, request: &Value) -> ApiResult<Value> {
    let r: DescribeRequest = request::parse(request)?;
    let mut v = Violations::default();
    if let Some(prefix) = &r.log_group_name_prefix {
        check_group_name(&mut v, prefix, "logGroupNamePrefix");
    }
    if let Some(pattern) = &r.log_group_name_pattern {
        v.length(pattern, "logGroupNamePattern", 0, 512);
    }
    let limit = request::limit(&mut v, r.limit, 50, 50);
    finish(v)?;
    if r.log_group_name_prefix.is_some() && r.log_group_name_pattern.is_some() {
        return Err(ApiError::InvalidParameterValue(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.".into(),
        ));
    }
    let prefix = r.log_group_name_prefix.as_deref().unwrap_or("");
    let pattern = r.log_group_name_pattern.as_deref().map(str::to_lowercase);
    let mut cursor = match &r.next_token {
        Some(t) => tokens::decode_text(t)?,
        None => String::new(),
    };
    let mut page: Vec<GroupRow> = Vec::new();
    // Collects one more than the page to know whether a next token is due.
    'scan: loop {
        let sql = "select name, creation_time, retention_in_days, stored_bytes from log_groups \
                   where account_id = $1 and name > $2 and name >= $3 order by name limit $4";
        let rows: Vec<GroupRow> = on_pool!(&obs.store, pool => sqlx::query_as(sql)
            .bind(account).bind(&cursor).bind(prefix).bind(SCAN_ROWS)
            .fetch_all(pool).await)
        .context("list log groups")?;
        let exhausted = rows.len() < SCAN_ROWS as usize;
        for row in rows {
            if !row.name.starts_with(prefix) {
                break 'scan;
            }
            cursor.clone_from(&row.name);
            if pattern.as_ref().is_none_or(|p| row.name.to_lowercase().contains(p.as_str())) {
                page.push(row);
                if page.len() > limit {
                    break 'scan;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    let next_token = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|g| tokens::encode_text(&g.name))
    } else {
        None
    };
    let groups: Vec<LogGroup> = page
        .into_iter()
        .map(|g| LogGroup {
            arn: group_arn(&obs.region, account, &g.name),
            log_group_arn: group_arn_bare(&obs.region, account, &g.name),
            log_group_name: g.name,
            creation_time: g.creation_time,
            retention_in_days: g.retention_in_days,
            metric_filter_count: 0,
            stored_bytes: g.stored_bytes,
            log_group_class: "STANDARD",
        })
        .collect();
    let mut reply = json!({ "logGroups": groups });
    if let Some(t) = next_token {
        reply["nextToken"] = json!(t);
    }
    Ok(reply)
}

pub(crate) async fn delete(obs: &Observability, account: &str, request: &Value) -> ApiResult<Value> {
    let r: GroupNameRequest = request::parse(request)?;
    let mut v = Violations::default();
    let name = name_of(&mut v, &r);
    finish(v)?;
    // The group row is locked first, as ingest takes it first: an ingest racing the deletion either
    // commits before it (its events are deleted too) or recreates the group after it.
    in_tx!(&obs.store, tx, lock => {
        let sql = "select name from log_groups where account_id = $1 and name = $2";
        let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("{sql}{lock}")))
            .bind(account).bind(&name)
            .fetch_optional(&mut *tx).await.context("lock log group")?;
        if found.is_none() {
            return Err(group_not_found());
        }
        sqlx::query("delete from log_events where account_id = $1 and log_group = $2")
            .bind(account).bind(&name)
            .execute(&mut *tx).await.context("delete log events")?;
        sqlx::query("delete from log_streams where account_id = $1 and log_group = $2")
            .bind(account).bind(&name)
            .execute(&mut *tx).await.context("delete log streams")?;
        sqlx::query("delete from log_groups where account_id = $1 and name = $2")
            .bind(account).bind(&name)
            .execute(&mut *tx).await.context("delete log group")?;
    });
    Ok(json!({}))
}

async fn set_retention(obs: &Observability, account: &str, name: &str, days: Option<i64>) -> ApiResult<()> {
    let sql = "update log_groups set retention_in_days = $3, updated_at = $4 where account_id = $1 and name = $2";
    let changed = on_pool!(&obs.store, pool => sqlx::query(sql)
        .bind(account).bind(name).bind(days).bind(now_ms())
        .execute(pool).await.map(|r| r.rows_affected()))
    .context("set retention")?;
    if changed == 0 {
        return Err(group_not_found());
    }
    Ok(())
}

pub(crate) async fn put_retention(obs: &Observability, account: &str, request: &Value) -> ApiResult<Value> {
    let r: RetentionRequest = request::parse(request)?;
    let mut v = Violations::default();
    let name = name_of(&mut v, &GroupNameRequest { log_group_name: r.log_group_name.clone() });
    let days = request::check_retention(&mut v, r.retention_in_days);
    finish(v)?;
    set_retention(obs, account, &name, Some(days)).await?;
    Ok(json!({}))
}

pub(crate) async fn delete_retention(obs: &Observability, account: &str, request: &Value) -> ApiResult<Value> {
    let r: GroupNameRequest = request::parse(request)?;
    let mut v = Violations::default();
    let name = name_of(&mut v, &r);
    finish(v)?;
    set_retention(obs, account, &name, None).await?;
    Ok(json!({}))
}

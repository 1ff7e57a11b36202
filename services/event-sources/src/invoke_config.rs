//! Functions' async invocation settings (EventInvokeConfig): retries, event age and destinations
//! of a function, version or alias, in the table of migration 0009.
//!
//! The unqualified function is kept under the qualifier `$LATEST`: AWS applies an unqualified
//! configuration to `$LATEST` and reports its `FunctionArn` with `:$LATEST`. A configuration
//! belongs to exactly the qualifier it was put on: invoking an alias or a version without one of
//! its own does not fall back to the unqualified function's (as on AWS). Deleting a function (or a
//! version) deletes its configurations in the same transaction (services/metadata); an alias's
//! goes with the alias.

use anyhow::Context as _;
use lamina_common::ApiResult;
use lamina_common::names::FunctionRef;
use lamina_common::time::now_ms;
use lamina_metadata::on_pool;
use serde::{Deserialize, Serialize};

use crate::arn::QueueArn;
use crate::{EventSources, EventSourcesClient};

/// The qualifier the unqualified function's settings are kept (and reported) under.
pub const LATEST: &str = "$LATEST";

/// Lambda's defaults when a setting is unset.
pub const DEFAULT_RETRY_ATTEMPTS: i64 = 2;
pub const DEFAULT_EVENT_AGE_SECS: i64 = 21_600;

/// One function's (version's, alias's) async invocation settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct InvokeConfig {
    pub account_id: String,
    pub function_name: String,
    /// `$LATEST` for the unqualified function, else a version number or alias name.
    pub qualifier: String,
    pub maximum_retry_attempts: Option<i64>,
    pub maximum_event_age_in_seconds: Option<i64>,
    /// `DestinationConfig.OnSuccess.Destination`.
    pub on_success: Option<String>,
    /// `DestinationConfig.OnFailure.Destination`.
    pub on_failure: Option<String>,
    /// Epoch milliseconds (set by the store).
    pub last_modified: i64,
}

impl InvokeConfig {
    /// Retries after a function error.
    pub fn retry_attempts(&self) -> i64 {
        self.maximum_retry_attempts.unwrap_or(DEFAULT_RETRY_ATTEMPTS)
    }

    /// Longest an event may wait to be run, in seconds.
    pub fn event_age_secs(&self) -> i64 {
        self.maximum_event_age_in_seconds.unwrap_or(DEFAULT_EVENT_AGE_SECS)
    }
}

/// Which configuration: a function and qualifier (`$LATEST` for the unqualified function).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigKey {
    pub account_id: String,
    pub function_name: String,
    pub qualifier: String,
}

/// UpdateFunctionEventInvokeConfig: `None` keeps a setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigUpdate {
    pub key: ConfigKey,
    pub maximum_retry_attempts: Option<i64>,
    pub maximum_event_age_in_seconds: Option<i64>,
    /// A `DestinationConfig` given replaces both destinations (an absent one is removed).
    pub destinations: Option<Destinations>,
}

/// Both destinations of a `DestinationConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Destinations {
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

/// A destination Lamina can deliver a record to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A Lamina function: the record is its Event invocation's payload.
    Function { region: String, account_id: String, name: String, qualifier: Option<String> },
    /// An SQS queue: the record is a message's body.
    Queue(QueueArn),
}

/// Why a destination ARN cannot be delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// A service AWS delivers to and Lamina does not (SNS, EventBridge, S3).
    Service(String),
    /// Not an ARN of a function or queue at all.
    Invalid,
}

impl Destination {
    /// The destination an ARN names.
    pub fn parse(arn: &str) -> Result<Self, Unsupported> {
        let service = arn.split(':').nth(2).unwrap_or_default();
        match service {
            "lambda" => {
                let r = FunctionRef::parse(arn, "destination").map_err(|_| Unsupported::Invalid)?;
                match (r.region, r.account_id) {
                    // A full ARN only (`FunctionRef` also takes names and partial ARNs).
                    (Some(region), Some(account_id))
                        if arn.starts_with("arn:") && arn.split(':').nth(5) == Some("function") =>
                    {
                        Ok(Self::Function { region, account_id, name: r.name, qualifier: r.qualifier })
                    }
                    _ => Err(Unsupported::Invalid),
                }
            }
            "sqs" => QueueArn::parse(arn).map(Self::Queue).ok_or(Unsupported::Invalid),
            "sns" | "events" | "s3" => Err(Unsupported::Service(service.to_owned())),
            _ => Err(Unsupported::Invalid),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ListRequest {
    account_id: String,
    function_name: String,
}

const COLUMNS: &str = "account_id, function_name, qualifier, maximum_retry_attempts, maximum_event_age_in_seconds, \
                       on_success, on_failure, last_modified";

/// Answers the operations this module owns; `None` for any other.
pub(crate) async fn dispatch(local: &EventSources, op: &str, json: &[u8]) -> Option<ApiResult<Vec<u8>>> {
    let reply = match op {
        "PutFunctionEventInvokeConfig" => put(local, json).await,
        "UpdateFunctionEventInvokeConfig" => update(local, json).await,
        "GetFunctionEventInvokeConfig" => get(local, json).await,
        "DeleteFunctionEventInvokeConfig" => delete(local, json).await,
        "ListFunctionEventInvokeConfigs" => list(local, json).await,
        _ => return None,
    };
    Some(reply)
}

async fn put(local: &EventSources, json: &[u8]) -> ApiResult<Vec<u8>> {
    let c: InvokeConfig = crate::decode("PutFunctionEventInvokeConfig", json)?;
    let sql = sqlx::AssertSqlSafe(format!(
        "insert into function_event_invoke_configs ({COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8) \
         on conflict (account_id, function_name, qualifier) do update set \
         maximum_retry_attempts = excluded.maximum_retry_attempts, \
         maximum_event_age_in_seconds = excluded.maximum_event_age_in_seconds, \
         on_success = excluded.on_success, on_failure = excluded.on_failure, last_modified = excluded.last_modified \
         returning {COLUMNS}"
    ));
    let stored: InvokeConfig = on_pool!(&local.store, pool => sqlx::query_as(sql)
        .bind(&c.account_id).bind(&c.function_name).bind(&c.qualifier)
        .bind(c.maximum_retry_attempts).bind(c.maximum_event_age_in_seconds)
        .bind(&c.on_success).bind(&c.on_failure).bind(now_ms())
        .fetch_one(pool).await)
    .context("put event invoke config")?;
    crate::encode(&stored)
}

async fn update(local: &EventSources, json: &[u8]) -> ApiResult<Vec<u8>> {
    let u: ConfigUpdate = crate::decode("UpdateFunctionEventInvokeConfig", json)?;
    // One statement: a concurrent Put or Update of the same configuration cannot interleave.
    let sql = sqlx::AssertSqlSafe(format!(
        "update function_event_invoke_configs set \
         maximum_retry_attempts = coalesce($4, maximum_retry_attempts), \
         maximum_event_age_in_seconds = coalesce($5, maximum_event_age_in_seconds), \
         on_success = case when $6 then $7 else on_success end, \
         on_failure = case when $6 then $8 else on_failure end, \
         last_modified = $9 \
         where account_id = $1 and function_name = $2 and qualifier = $3 returning {COLUMNS}"
    ));
    let replace = u.destinations.is_some();
    let d = u.destinations.unwrap_or_default();
    let stored: Option<InvokeConfig> = on_pool!(&local.store, pool => sqlx::query_as(sql)
        .bind(&u.key.account_id).bind(&u.key.function_name).bind(&u.key.qualifier)
        .bind(u.maximum_retry_attempts).bind(u.maximum_event_age_in_seconds)
        .bind(replace).bind(&d.on_success).bind(&d.on_failure).bind(now_ms())
        .fetch_optional(pool).await)
    .context("update event invoke config")?;
    crate::encode(&stored)
}

async fn get(local: &EventSources, json: &[u8]) -> ApiResult<Vec<u8>> {
    let k: ConfigKey = crate::decode("GetFunctionEventInvokeConfig", json)?;
    let sql = sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from function_event_invoke_configs \
         where account_id = $1 and function_name = $2 and qualifier = $3"
    ));
    let found: Option<InvokeConfig> = on_pool!(&local.store, pool => sqlx::query_as(sql)
        .bind(&k.account_id).bind(&k.function_name).bind(&k.qualifier)
        .fetch_optional(pool).await)
    .context("get event invoke config")?;
    crate::encode(&found)
}

async fn delete(local: &EventSources, json: &[u8]) -> ApiResult<Vec<u8>> {
    let k: ConfigKey = crate::decode("DeleteFunctionEventInvokeConfig", json)?;
    let sql =
        "delete from function_event_invoke_configs where account_id = $1 and function_name = $2 and qualifier = $3";
    let n = on_pool!(&local.store, pool => sqlx::query(sql)
        .bind(&k.account_id).bind(&k.function_name).bind(&k.qualifier)
        .execute(pool).await.map(|r| r.rows_affected()))
    .context("delete event invoke config")?;
    crate::encode(&(n > 0))
}

async fn list(local: &EventSources, json: &[u8]) -> ApiResult<Vec<u8>> {
    let r: ListRequest = crate::decode("ListFunctionEventInvokeConfigs", json)?;
    let sql = sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from function_event_invoke_configs where account_id = $1 and function_name = $2 \
         order by qualifier"
    ));
    let rows: Vec<InvokeConfig> = on_pool!(&local.store, pool => sqlx::query_as(sql)
        .bind(&r.account_id).bind(&r.function_name)
        .fetch_all(pool).await)
    .context("list event invoke configs")?;
    crate::encode(&rows)
}

impl EventSourcesClient {
    /// Stores `config` in place of any configuration of its qualifier (`last_modified` is set
    /// here); answers it as stored.
    pub async fn put_invoke_config(&self, config: &InvokeConfig) -> ApiResult<InvokeConfig> {
        self.call("PutFunctionEventInvokeConfig", config).await
    }

    /// Changes the settings `update` names; `None` when the qualifier has no configuration.
    pub async fn update_invoke_config(&self, update: &ConfigUpdate) -> ApiResult<Option<InvokeConfig>> {
        self.call("UpdateFunctionEventInvokeConfig", update).await
    }

    /// The configuration of one qualifier (`$LATEST` for the unqualified function).
    pub async fn get_invoke_config(&self, key: &ConfigKey) -> ApiResult<Option<InvokeConfig>> {
        self.call("GetFunctionEventInvokeConfig", key).await
    }

    /// Deletes one configuration; whether there was one.
    pub async fn delete_invoke_config(&self, key: &ConfigKey) -> ApiResult<bool> {
        self.call("DeleteFunctionEventInvokeConfig", key).await
    }

    /// Every configuration of a function, by qualifier.
    pub async fn list_invoke_configs(&self, account_id: &str, function_name: &str) -> ApiResult<Vec<InvokeConfig>> {
        let req = ListRequest { account_id: account_id.to_owned(), function_name: function_name.to_owned() };
        self.call("ListFunctionEventInvokeConfigs", &req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(
            Destination::parse("arn:aws:lambda:us-east-1:123456789012:function:f:live"),
            Ok(Destination::Function {
                region: "us-east-1".into(),
                account_id: "123456789012".into(),
                name: "f".into(),
                qualifier: Some("live".into()),
            })
        );
        assert!(matches!(Destination::parse("arn:aws:sqs:us-east-1:123456789012:q"), Ok(Destination::Queue(_))));
        assert_eq!(Destination::parse("arn:aws:sns:us-east-1:123456789012:t"), Err(Unsupported::Service("sns".into())));
        assert_eq!(Destination::parse("arn:aws:lambda:us-east-1:123456789012:layer:x"), Err(Unsupported::Invalid));
        assert_eq!(Destination::parse("arn:aws:kinesis:us-east-1:123456789012:stream/s"), Err(Unsupported::Invalid));
    }
}

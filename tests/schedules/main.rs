//! EventBridge-style schedules through the AWS SDK for EventBridge pointed at Lamina: the rule and
//! target API with its validation errors and tenant isolation (on SQLite, Postgres and the
//! cluster), the permission a function's policy must grant the rule, the scheduled event's shape,
//! firings counted over real minutes (one SQLite run across a scheduler outage; one cluster run
//! with two scheduler replicas), and the claim protocol raced by replicas on SQLite and Postgres.

mod api;
mod claims;
mod firing;
mod protocol;

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use lamina_tests::{Tenant, TestEnv, python_zip};
use serde_json::Value;

pub use lamina_tests::error_of;

/// An EventBridge client signed with the tenant's keys, pointed at Lamina (no retries).
pub fn events(env: &TestEnv, t: &Tenant) -> aws_sdk_eventbridge::Client {
    let creds = aws_credential_types::Credentials::new(&t.access_key_id, &t.secret_access_key, None, None, "tests");
    let conf = aws_sdk_eventbridge::Config::builder()
        .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
        .region(aws_sdk_eventbridge::config::Region::new(env.region.clone()))
        .credentials_provider(creds)
        .endpoint_url(env.endpoint())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(aws_sdk_eventbridge::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_eventbridge::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .build();
    aws_sdk_eventbridge::Client::from_conf(conf)
}

/// `arn:aws:events:<region>:<account>:rule/<name>`.
pub fn rule_arn(env: &TestEnv, t: &Tenant, name: &str) -> String {
    format!("arn:aws:events:{}:{}:rule/{name}", env.region, t.account_id)
}

/// Creates a Python function that logs each event it gets as one `SCHEDEVENT <json>` line; returns
/// its ARN.
pub async fn recorder(env: &TestEnv, t: &Tenant, name: &str) -> String {
    let code =
        "import json\n\ndef handler(event, context):\n    print('SCHEDEVENT ' + json.dumps(event))\n    return 'ok'\n";
    let created = env
        .lambda(t)
        .create_function()
        .function_name(name)
        .runtime(Runtime::from("python3.11"))
        .role("arn:aws:iam::123456789012:role/lambda-role")
        .handler("lambda_function.handler")
        .code(FunctionCode::builder().zip_file(Blob::new(python_zip(code))).build())
        .send()
        .await
        .expect("create recorder");
    created.function_arn().expect("arn").to_owned()
}

/// Lets rule `rule` invoke `function` (`aws lambda add-permission --principal events.amazonaws.com
/// --source-arn <rule arn>`).
pub async fn allow_rule(env: &TestEnv, t: &Tenant, function: &str, rule: &str) {
    env.lambda(t)
        .add_permission()
        .function_name(function)
        .statement_id(format!("events-{rule}"))
        .action("lambda:InvokeFunction")
        .principal("events.amazonaws.com")
        .source_arn(rule_arn(env, t, rule))
        .send()
        .await
        .expect("add permission");
}

/// The events `function` logged so far, in order.
pub async fn recorded(env: &TestEnv, t: &Tenant, function: &str) -> Vec<Value> {
    env.log_messages(t, function)
        .await
        .iter()
        .filter_map(|m| m.split_once("SCHEDEVENT ").map(|(_, json)| json.trim().to_owned()))
        .map(|json| serde_json::from_str(&json).expect("a logged event is JSON"))
        .collect()
}

/// The rule's stored next tick and claim (what the API does not show).
pub async fn timing(env: &TestEnv, t: &Tenant, rule: &str) -> (Option<i64>, Option<String>) {
    let sql = "select next_fire_at, claimed_by from event_rules where account_id = $1 and name = $2";
    let row: Option<(Option<i64>, Option<String>)> = lamina_metadata::on_pool!(env.server.metadata.store(), pool => {
        sqlx::query_as(sql).bind(&t.account_id).bind(rule).fetch_optional(pool).await
    })
    .expect("read rule timing");
    row.expect("the rule exists")
}

/// Epoch milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Waits until the scheduler has fired the rule's tick due at or before `since_ms` and released it.
pub async fn tick_done(env: &TestEnv, t: &Tenant, rule: &str, since_ms: i64) {
    lamina_tests::wait_until(Duration::from_secs(30), "the scheduler to fire the due tick", || async {
        match timing(env, t, rule).await {
            (Some(next), None) if next > since_ms => Some(()),
            _ => None,
        }
    })
    .await;
}

//! CloudWatch Logs and CloudWatch metrics APIs, end to end, with real clients: the AWS SDKs for Rust
//! (`aws-sdk-cloudwatchlogs` over JSON 1.1, `aws-sdk-cloudwatch` over Smithy RPC v2 CBOR), signed
//! raw requests in the other protocols CloudWatch clients send (JSON 1.0 as botocore sends it, the
//! query protocol of older SDKs), the exact FilterLogEvents polling of CLI v2's `aws logs tail
//! --follow`, and the AWS CLI v1 and boto3 themselves.
//!
//! - `logs`: log events within 1 s of the invocation, ordering, tokens, filter patterns, retention,
//!   deletion, tenant isolation and error shapes (SQLite, Postgres, cluster);
//! - `tail`: `aws logs tail --follow`'s requests replayed (SQLite, Postgres, cluster);
//! - `metrics`: metric sums equal to the invocations, errors and throttles caused, per dimension
//!   set, through GetMetricStatistics and GetMetricData (SQLite, Postgres, cluster);
//! - `protocols`: query and JSON 1.0 requests and errors, SigV4 service scoping (SQLite);
//! - `cli`: `aws logs ...`, `aws cloudwatch get-metric-statistics` and boto3, with botocore made to
//!   speak each of CloudWatch's three protocols (SQLite).

mod cli;
mod logs;
mod metrics;
mod protocols;
mod tail;

use std::time::{Duration, Instant};

use aws_sdk_lambda::operation::RequestId as _;
use aws_sdk_lambda::primitives::Blob;
use lamina_tests::{Tenant, TestEnv};

/// Prints `n` lines `line <i> <tag>` (event `{"tag": .., "n": ..}`); fails when `fail` is set.
pub const PRINTER: &str = "def handler(event, context):\n    for i in range(event.get('n', 3)):\n        \
                           print('line %d %s' % (i, event.get('tag', '')))\n    if event.get('fail'):\n        \
                           raise ValueError('boom')\n    return 'ok'\n";

/// A CloudWatch Logs client signed with the tenant's keys, pointed at Lamina (no retries).
pub fn logs(env: &TestEnv, t: &Tenant) -> aws_sdk_cloudwatchlogs::Client {
    use aws_sdk_cloudwatchlogs::config;
    let creds = aws_credential_types::Credentials::new(&t.access_key_id, &t.secret_access_key, None, None, "tests");
    let conf = config::Builder::new()
        .behavior_version(config::BehaviorVersion::latest())
        .region(config::Region::new(env.region.clone()))
        .credentials_provider(creds)
        .endpoint_url(env.endpoint())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(config::retry::RetryConfig::disabled())
        .timeout_config(config::timeout::TimeoutConfig::builder().operation_timeout(Duration::from_secs(60)).build())
        .build();
    aws_sdk_cloudwatchlogs::Client::from_conf(conf)
}

/// A CloudWatch client signed with the tenant's keys, pointed at Lamina (no retries).
pub fn cloudwatch(env: &TestEnv, t: &Tenant) -> aws_sdk_cloudwatch::Client {
    use aws_sdk_cloudwatch::config;
    let creds = aws_credential_types::Credentials::new(&t.access_key_id, &t.secret_access_key, None, None, "tests");
    let conf = config::Builder::new()
        .behavior_version(config::BehaviorVersion::latest())
        .region(config::Region::new(env.region.clone()))
        .credentials_provider(creds)
        .endpoint_url(env.endpoint())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(config::retry::RetryConfig::disabled())
        .timeout_config(config::timeout::TimeoutConfig::builder().operation_timeout(Duration::from_secs(60)).build())
        .build();
    aws_sdk_cloudwatch::Client::from_conf(conf)
}

/// Invokes `function` synchronously with `payload`; returns the request id and when the answer came.
pub async fn invoke(lambda: &aws_sdk_lambda::Client, function: &str, payload: &str) -> (String, Instant) {
    let out = lambda
        .invoke()
        .function_name(function)
        .payload(Blob::new(payload.as_bytes().to_vec()))
        .send()
        .await
        .expect("invoke");
    let returned = Instant::now();
    (out.request_id().expect("x-amzn-RequestId").to_owned(), returned)
}

/// An answer to a raw request.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("JSON answer ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `POST {path}` with `headers` and `body`, SigV4-signed with the tenant's keys for `service`
/// (the way the SDKs sign: host, x-amz-date and the listed headers, over the body's hash).
pub async fn signed_post(
    env: &TestEnv,
    t: &Tenant,
    service: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Raw {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let url = format!("{}{path}", env.endpoint());
    let host = env.server.addr.to_string();
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(&t.access_key_id, &t.secret_access_key, None, None, "t").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&env.region)
        .name(service)
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let mut all: Vec<(&str, &str)> = vec![("host", host.as_str())];
    all.extend_from_slice(headers);
    let signable =
        SignableRequest::new("POST", &url, all.iter().copied(), SignableBody::Bytes(body)).expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut request = http::Request::builder().method("POST").uri(&url);
    for (name, value) in &all {
        request = request.header(*name, *value);
    }
    let mut request = request.body(()).expect("request");
    instructions.apply_to_request_http1x(&mut request);
    let mut out = reqwest::Client::new().post(&url).body(body.to_vec());
    for (name, value) in request.headers() {
        out = out.header(name.as_str(), value.as_bytes());
    }
    let response = out.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("answer body").to_vec();
    Raw { status, headers, body }
}

/// A CloudWatch Logs operation as the JSON 1.1 protocol sends it, signed for `logs`.
pub async fn logs_call(env: &TestEnv, t: &Tenant, op: &str, body: &serde_json::Value) -> Raw {
    let target = format!("Logs_20140328.{op}");
    let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target.as_str())];
    signed_post(env, t, "logs", "/", &headers, body.to_string().as_bytes()).await
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

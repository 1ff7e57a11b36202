//! The JSON 1.1 protocol as EventBridge speaks it, seen from raw signed requests: content type,
//! error type header and body, unknown operations, malformed bodies.

use lamina_tests::{Tenant, TestEnv};
use serde_json::{Value, json};

/// POSTs `body` to `/` with `X-Amz-Target: <target>`, SigV4-signed for `events`; returns the status,
/// the content type, `x-amzn-ErrorType` and the body.
async fn raw(env: &TestEnv, t: &Tenant, target: &str, body: &str) -> (u16, String, String, Value) {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let url = format!("{}/", env.endpoint());
    let host = env.server.addr.to_string();
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(&t.access_key_id, &t.secret_access_key, None, None, "t").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&env.region)
        .name("events")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let headers = [("host", host.as_str()), ("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target)];
    let signable = SignableRequest::new("POST", &url, headers.into_iter(), SignableBody::Bytes(body.as_bytes()))
        .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut req = http::Request::builder().method("POST").uri(&url).body(()).expect("request");
    for (k, v) in headers {
        req.headers_mut().insert(k, v.parse().expect("header"));
    }
    instructions.apply_to_request_http1x(&mut req);
    let mut out = reqwest::Client::new().post(req.uri().to_string()).body(body.to_owned());
    for (k, v) in req.headers() {
        out = out.header(k.as_str(), v.as_bytes());
    }
    let resp = out.send().await.expect("send");
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (status, content_type, error_type) =
        (resp.status().as_u16(), header("content-type"), header("x-amzn-errortype"));
    let text = resp.text().await.expect("body");
    (status, content_type, error_type, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_protocol_answers_as_eventbridge() {
    let env = TestEnv::start(lamina_tests::Backend::Sqlite).await.expect("sqlite");
    let t = env.tenant().await;

    let body = json!({"Name": "raw", "ScheduleExpression": "rate(10 minutes)"}).to_string();
    let (status, content_type, _, reply) = raw(&env, &t, "AWSEvents.PutRule", &body).await;
    assert_eq!((status, content_type.as_str()), (200, "application/x-amz-json-1.1"));
    let arn = format!("arn:aws:events:{}:{}:rule/raw", env.region, t.account_id);
    assert_eq!(reply, json!({ "RuleArn": arn }));

    let (status, content_type, _, reply) = raw(&env, &t, "AWSEvents.DescribeRule", r#"{"Name":"raw"}"#).await;
    assert_eq!((status, content_type.as_str()), (200, "application/x-amz-json-1.1"));
    assert_eq!(reply["ScheduleExpression"], "rate(10 minutes)");
    assert_eq!(reply["State"], "ENABLED");
    assert_eq!(reply["EventBusName"], "default");

    let (status, _, _, reply) = raw(&env, &t, "AWSEvents.EnableRule", r#"{"Name":"raw"}"#).await;
    assert_eq!((status, reply), (200, json!({})));

    // Errors: 400 with the type in the header and in `__type`, the text in `message`.
    let (status, content_type, error_type, reply) = raw(&env, &t, "AWSEvents.DescribeRule", r#"{"Name":"nope"}"#).await;
    assert_eq!(
        (status, content_type.as_str(), error_type.as_str()),
        (400, "application/x-amz-json-1.1", "ResourceNotFoundException")
    );
    assert_eq!(
        reply,
        json!({"__type": "ResourceNotFoundException", "message": "Rule nope does not exist on EventBus default."})
    );
    let (status, _, error_type, reply) = raw(&env, &t, "AWSEvents.DescribeRule", "{}").await;
    assert_eq!((status, error_type.as_str()), (400, "ValidationException"));
    assert_eq!(
        reply["message"],
        "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null"
    );

    // Operations EventBridge has and Lamina does not serve, and targets of other services.
    for target in ["AWSEvents.PutEvents", "AWSEvents.CreateEventBus", "AWSEvents.Nope"] {
        let (status, _, error_type, reply) = raw(&env, &t, target, "{}").await;
        assert_eq!((status, error_type.as_str()), (400, "UnknownOperationException"), "{target}");
        assert_eq!(reply["__type"], "UnknownOperationException", "{target}");
    }

    // Bodies that are not the operation's JSON.
    for body in ["not json", "[1]", r#"{"Name": 5}"#] {
        let (status, _, error_type, _) = raw(&env, &t, "AWSEvents.DescribeRule", body).await;
        assert_eq!((status, error_type.as_str()), (400, "SerializationException"), "{body}");
    }
    env.stop().await;
}

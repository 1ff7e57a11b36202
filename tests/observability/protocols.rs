//! CloudWatch's other protocols, as signed raw requests shaped like the clients' own: JSON 1.0
//! (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`, botocore's choice) and the query protocol
//! (a form body, XML answers; older SDKs and CLIs). The same numbers as the CBOR SDK sees, errors in
//! each protocol's shape with the query error codes, and the SigV4 scope each must be signed for.

use std::time::Duration;

use lamina_tests::{TestEnv, create_python};
use serde_json::json;

use super::metrics::totals;
use super::{PRINTER, Raw, cloudwatch, invoke, signed_post};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_json_protocols() {
    let env = TestEnv::start(lamina_tests::Backend::Sqlite).await.expect("sqlite always available");
    run(&env).await;
    env.stop().await;
}

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const JSON_1_0: &str = "application/x-amz-json-1.0";

fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).expect("time").format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Every `<tag>text</tag>` of an XML document.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let re = regex::Regex::new(&format!("<{tag}>([^<]*)</{tag}>")).expect("regex");
    re.captures_iter(xml).map(|c| c[1].to_owned()).collect()
}

async fn run(env: &TestEnv) {
    let t = env.tenant().await;
    let lambda = env.lambda(&t);
    create_python(&lambda, "proto", PRINTER).send().await.expect("create");
    let since = chrono::Utc::now().timestamp() - 120;
    for _ in 0..2 {
        invoke(&lambda, "proto", r#"{"n": 1}"#).await;
    }
    let window = (since, chrono::Utc::now().timestamp() + 120);
    let cw = cloudwatch(env, &t);
    lamina_tests::wait_until(Duration::from_secs(10), "2 invocations in the metrics", || async {
        (totals(&cw, "Invocations", &[("FunctionName", "proto")], window).await.sum == 2.0).then_some(())
    })
    .await;

    // The query protocol, as botocore's query serializer writes it.
    let form = |period: u32| {
        format!(
            "Action=GetMetricStatistics&Version=2010-08-01&Namespace=AWS%2FLambda&MetricName=Invocations\
             &Dimensions.member.1.Name=FunctionName&Dimensions.member.1.Value=proto&StartTime={}&EndTime={}\
             &Period={period}&Statistics.member.1=Sum&Statistics.member.2=SampleCount",
            iso(window.0).replace(':', "%3A"),
            iso(window.1).replace(':', "%3A"),
        )
    };
    let answer = signed_post(env, &t, "monitoring", "/", &[("content-type", FORM)], form(60).as_bytes()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let xml = answer.text();
    assert!(
        xml.starts_with("<GetMetricStatisticsResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\">"),
        "{xml}"
    );
    assert!(xml.contains("<GetMetricStatisticsResult>") && xml.contains("<Datapoints><member>"), "{xml}");
    let sum: f64 = elements(&xml, "Sum").iter().map(|s| s.parse::<f64>().expect("a number")).sum();
    assert_eq!(sum, 2.0, "{xml}");
    for at in elements(&xml, "Timestamp") {
        let parsed = chrono::DateTime::parse_from_rfc3339(&at).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert!(at.ends_with('Z') && parsed.timestamp() % 60 == 0, "{at}");
    }
    assert_eq!(elements(&xml, "Unit").first().map(String::as_str), Some("Count"));
    assert_eq!(elements(&xml, "RequestId"), [answer.header("x-amzn-RequestId").expect("request id").to_owned()]);

    let refused = signed_post(env, &t, "monitoring", "/", &[("content-type", FORM)], form(30).as_bytes()).await;
    check_query_error(&refused, "InvalidParameterValue");
    let unknown = b"Action=PutMetricAlarm&Version=2010-08-01&AlarmName=a";
    check_query_error(
        &signed_post(env, &t, "monitoring", "/", &[("content-type", FORM)], unknown).await,
        "InvalidAction",
    );
    let malformed = b"Action=GetMetricStatistics&Version=2010-08-01&Period=sixty";
    let refused = signed_post(env, &t, "monitoring", "/", &[("content-type", FORM)], malformed).await;
    check_query_error(&refused, "InvalidParameterValue");
    // A query request must be signed for CloudWatch.
    let wrong = signed_post(env, &t, "lambda", "/", &[("content-type", FORM)], form(60).as_bytes()).await;
    assert_eq!(wrong.status, 403, "{}", wrong.text());

    // JSON 1.0, as botocore sends it: epoch-second timestamps both ways.
    let request = json!({
        "Namespace": "AWS/Lambda", "MetricName": "Invocations",
        "Dimensions": [{"Name": "FunctionName", "Value": "proto"}],
        "StartTime": window.0, "EndTime": window.1, "Period": 60, "Statistics": ["Sum"],
    });
    let answer = json_1_0(env, &t, "GetMetricStatistics", &request).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some(JSON_1_0));
    let body = answer.json();
    let points = body["Datapoints"].as_array().expect("Datapoints");
    assert_eq!(points.iter().map(|p| p["Sum"].as_f64().expect("Sum")).sum::<f64>(), 2.0, "{body}");
    assert!(points.iter().all(|p| p["Timestamp"].as_f64().is_some_and(|t| t as i64 % 60 == 0)), "{body}");

    let mut bad = request.clone();
    bad["Period"] = json!(30);
    let refused = json_1_0(env, &t, "GetMetricStatistics", &bad).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("x-amzn-query-error"), Some("InvalidParameterValue;Sender"));
    assert_eq!(refused.json()["__type"], "InvalidParameterValue");
    let unknown = json_1_0(env, &t, "PutMetricAlarm", &json!({})).await;
    assert_eq!((unknown.status, unknown.json()["__type"].as_str()), (400, Some("UnknownOperationException")));
    let wrong = signed_post(
        env,
        &t,
        "lambda",
        "/",
        &[("content-type", JSON_1_0), ("x-amz-target", "GraniteServiceVersion20100801.ListMetrics")],
        b"{}",
    )
    .await;
    assert_eq!(wrong.status, 403, "{}", wrong.text());

    // RPC v2 CBOR: the SDK's path must be signed for CloudWatch too, and garbage is refused.
    let path = "/service/GraniteServiceVersion20100801/operation/ListMetrics";
    let cbor = [("content-type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")];
    let wrong = signed_post(env, &t, "lambda", path, &cbor, b"\xa0").await;
    assert_eq!(wrong.status, 403, "{}", wrong.text());
    let garbage = signed_post(env, &t, "monitoring", path, &cbor, b"\xa1\x61").await;
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.header("smithy-protocol"), Some("rpc-v2-cbor"));
    let listed = signed_post(env, &t, "monitoring", path, &cbor, b"\xa0").await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.header("content-type"), Some("application/cbor"));
}

async fn json_1_0(env: &TestEnv, t: &lamina_tests::Tenant, op: &str, body: &serde_json::Value) -> Raw {
    let target = format!("GraniteServiceVersion20100801.{op}");
    let headers = [("content-type", JSON_1_0), ("x-amz-target", target.as_str())];
    signed_post(env, t, "monitoring", "/", &headers, body.to_string().as_bytes()).await
}

fn check_query_error(answer: &Raw, code: &str) {
    let xml = answer.text();
    assert_eq!(answer.status, 400, "{xml}");
    assert!(xml.starts_with("<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\">"), "{xml}");
    assert_eq!(elements(&xml, "Code"), [code], "{xml}");
    assert_eq!(elements(&xml, "Type"), ["Sender"], "{xml}");
    assert_eq!(elements(&xml, "RequestId").len(), 1, "{xml}");
}

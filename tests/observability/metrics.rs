//! CloudWatch metrics through `aws-sdk-cloudwatch` (Smithy RPC v2 CBOR): after a known number of
//! successful, failed and throttled invocations, unqualified and through an alias, the sums of
//! namespace `AWS/Lambda` equal them exactly, per dimension set, in GetMetricStatistics and
//! GetMetricData; ListMetrics names the metrics; invalid requests get CloudWatch's error codes.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat, Statistic};
use aws_sdk_lambda::primitives::Blob;
use lamina_tests::{TestEnv, code_of, create_python};

use super::{PRINTER, cloudwatch};

lamina_tests::backend_tests!(metric_sums_match_invocations);

/// Runs of each kind, unqualified and through alias `live`.
const OK: usize = 3;
const FAILED: usize = 2;
const THROTTLED: usize = 2;
const LIVE_OK: usize = 2;
const LIVE_FAILED: usize = 1;
const LIVE_THROTTLED: usize = 1;

/// A metric, its dimensions, and the Sum and SampleCount it must reach (`None`: not checked).
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<f64>, Option<f64>);

pub fn dimensions(pairs: &[(&str, &str)]) -> Vec<Dimension> {
    pairs.iter().map(|(name, value)| Dimension::builder().name(*name).value(*value).build()).collect()
}

/// What GetMetricStatistics says of one metric over the test's window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Totals {
    pub sum: f64,
    pub samples: f64,
    pub maximum: f64,
    pub units: Vec<String>,
}

/// GetMetricStatistics (Sum, SampleCount, Maximum per minute) of `metric` with `dims`, added up.
pub async fn totals(
    cw: &aws_sdk_cloudwatch::Client,
    metric: &str,
    dims: &[(&str, &str)],
    window: (i64, i64),
) -> Totals {
    let answer = cw
        .get_metric_statistics()
        .namespace("AWS/Lambda")
        .metric_name(metric)
        .set_dimensions(Some(dimensions(dims)))
        .start_time(DateTime::from_secs(window.0))
        .end_time(DateTime::from_secs(window.1))
        .period(60)
        .statistics(Statistic::Sum)
        .statistics(Statistic::SampleCount)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetMetricStatistics {metric} {dims:?}: {e:?}"));
    let mut totals = Totals::default();
    for point in answer.datapoints() {
        let at = point.timestamp().expect("a datapoint's Timestamp").secs();
        assert_eq!(at % 60, 0, "periods start on the minute");
        assert!(at >= window.0 - 60 && at < window.1, "datapoint {at} outside {window:?}");
        totals.sum += point.sum().expect("Sum asked for");
        totals.samples += point.sample_count().expect("SampleCount asked for");
        totals.maximum = totals.maximum.max(point.maximum().expect("Maximum asked for"));
        if let Some(unit) = point.unit()
            && !totals.units.iter().any(|u| u == unit.as_str())
        {
            totals.units.push(unit.as_str().to_owned());
        }
    }
    totals
}

async fn metric_sums_match_invocations(env: &TestEnv) {
    let t = env.tenant().await;
    let lambda = env.lambda(&t);
    let cw = cloudwatch(env, &t);
    let since = chrono::Utc::now().timestamp() - 120;
    create_python(&lambda, "counted", PRINTER).publish(true).send().await.expect("create counted");
    lambda.create_alias().function_name("counted").name("live").function_version("1").send().await.expect("alias");

    let run = |qualifier: Option<&'static str>, fail: bool| {
        let payload = if fail { r#"{"n": 1, "fail": true}"# } else { r#"{"n": 1}"# };
        lambda.invoke().function_name("counted").set_qualifier(qualifier.map(str::to_owned)).payload(Blob::new(payload))
    };
    for (qualifier, ok, failed) in [(None, OK, FAILED), (Some("live"), LIVE_OK, LIVE_FAILED)] {
        for _ in 0..ok {
            let out = run(qualifier, false).send().await.expect("invoke");
            assert_eq!(out.function_error(), None);
        }
        for _ in 0..failed {
            let out = run(qualifier, true).send().await.expect("invoke");
            assert_eq!(out.function_error(), Some("Unhandled"));
        }
    }
    // Reserved concurrency 0 throttles every invocation.
    lambda
        .put_function_concurrency()
        .function_name("counted")
        .reserved_concurrent_executions(0)
        .send()
        .await
        .expect("0");
    for (qualifier, throttled) in [(None, THROTTLED), (Some("live"), LIVE_THROTTLED)] {
        for _ in 0..throttled {
            assert_eq!(code_of(run(qualifier, false).send().await), "TooManyRequestsException");
        }
    }
    lambda.delete_function_concurrency().function_name("counted").send().await.expect("lift the throttle");

    let window = (since, chrono::Utc::now().timestamp() + 120);
    let function = [("FunctionName", "counted")];
    let live = [("FunctionName", "counted"), ("Resource", "counted:live")];
    let live_v1 = [("FunctionName", "counted"), ("Resource", "counted:live"), ("ExecutedVersion", "1")];
    let all_runs = (OK + FAILED + LIVE_OK + LIVE_FAILED) as f64;
    let live_runs = (LIVE_OK + LIVE_FAILED) as f64;
    // (metric, dimensions, Sum, SampleCount); None: not checked.
    let want: Vec<Expected> = vec![
        ("Invocations", &function, Some(all_runs), None),
        ("Errors", &function, Some((FAILED + LIVE_FAILED) as f64), Some(all_runs)),
        ("Throttles", &function, Some((THROTTLED + LIVE_THROTTLED) as f64), None),
        ("Duration", &function, None, Some(all_runs)),
        ("Invocations", &live, Some(live_runs), None),
        ("Errors", &live, Some(LIVE_FAILED as f64), None),
        ("Throttles", &live, Some(LIVE_THROTTLED as f64), None),
        ("Duration", &live, None, Some(live_runs)),
        ("Invocations", &live_v1, Some(live_runs), None),
    ];
    // Shipping is asynchronous: the sums must become exact within a few seconds, and stay so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen: HashMap<String, Totals> = HashMap::new();
    loop {
        let mut exact = true;
        for (metric, dims, sum, samples) in &want {
            let got = totals(&cw, metric, dims, window).await;
            exact &= sum.is_none_or(|s| got.sum == s) && samples.is_none_or(|s| got.samples == s);
            seen.insert(format!("{metric} {dims:?}"), got);
        }
        if exact {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "metrics never matched: want {want:?}, got {seen:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let invocations = &seen[&format!("Invocations {:?}", &function[..])];
    assert_eq!(invocations.units, ["Count"]);
    let duration = &seen[&format!("Duration {:?}", &function[..])];
    assert_eq!(duration.units, ["Milliseconds"]);
    assert!(duration.sum > 0.0 && duration.maximum > 0.0, "{duration:?}");
    let concurrent = totals(&cw, "ConcurrentExecutions", &function, window).await;
    assert!(concurrent.maximum >= 1.0, "{concurrent:?}");
    // Other namespaces and unknown dimensions have no data (not an error).
    let elsewhere = cw
        .get_metric_statistics()
        .namespace("AWS/EC2")
        .metric_name("Invocations")
        .start_time(DateTime::from_secs(window.0))
        .end_time(DateTime::from_secs(window.1))
        .period(60)
        .statistics(Statistic::Sum)
        .send()
        .await
        .expect("another namespace");
    assert!(elsewhere.datapoints().is_empty());

    // GetMetricData over the same window.
    let query = |id: &str, metric: &str, dims: &[(&str, &str)]| {
        let metric =
            Metric::builder().namespace("AWS/Lambda").metric_name(metric).set_dimensions(Some(dimensions(dims)));
        let stat = MetricStat::builder().metric(metric.build()).period(60).stat("Sum").build();
        MetricDataQuery::builder().id(id).metric_stat(stat).return_data(true).build()
    };
    let data = cw
        .get_metric_data()
        .metric_data_queries(query("invocations", "Invocations", &function))
        .metric_data_queries(query("live_errors", "Errors", &live))
        .metric_data_queries(query("throttles", "Throttles", &function))
        .start_time(DateTime::from_secs(window.0))
        .end_time(DateTime::from_secs(window.1))
        .send()
        .await
        .expect("GetMetricData");
    let sums: HashMap<&str, f64> = data
        .metric_data_results()
        .iter()
        .map(|r| {
            assert_eq!(r.timestamps().len(), r.values().len());
            assert!(r.timestamps().iter().all(|ts| ts.secs() % 60 == 0));
            (r.id().unwrap_or_default(), r.values().iter().sum())
        })
        .collect();
    assert_eq!(sums.get("invocations"), Some(&all_runs));
    assert_eq!(sums.get("live_errors"), Some(&(LIVE_FAILED as f64)));
    assert_eq!(sums.get("throttles"), Some(&((THROTTLED + LIVE_THROTTLED) as f64)));

    let listed = cw
        .list_metrics()
        .namespace("AWS/Lambda")
        .metric_name("Invocations")
        .dimensions(DimensionFilter::builder().name("FunctionName").value("counted").build())
        .send()
        .await
        .expect("ListMetrics");
    assert!(!listed.metrics().is_empty());
    for metric in listed.metrics() {
        assert_eq!((metric.namespace(), metric.metric_name()), (Some("AWS/Lambda"), Some("Invocations")));
        assert!(metric.dimensions().iter().any(|d| d.name() == Some("FunctionName") && d.value() == Some("counted")));
    }

    // CloudWatch's error codes, as the SDK types them.
    let short = cw
        .get_metric_statistics()
        .namespace("AWS/Lambda")
        .metric_name("Invocations")
        .start_time(DateTime::from_secs(window.0))
        .end_time(DateTime::from_secs(window.1))
        .period(30)
        .statistics(Statistic::Sum)
        .send()
        .await;
    let err = short.expect_err("Period 30");
    assert!(err.as_service_error().is_some_and(|e| e.is_invalid_parameter_value_exception()), "{err:?}");
    let backwards = cw
        .get_metric_statistics()
        .namespace("AWS/Lambda")
        .metric_name("Invocations")
        .start_time(DateTime::from_secs(window.1))
        .end_time(DateTime::from_secs(window.0))
        .period(60)
        .statistics(Statistic::Sum)
        .send()
        .await;
    assert_eq!(code_of(backwards), "InvalidParameterValue");
    let math = cw
        .get_metric_data()
        .metric_data_queries(MetricDataQuery::builder().id("m").expression("SUM(METRICS())").build())
        .start_time(DateTime::from_secs(window.0))
        .end_time(DateTime::from_secs(window.1))
        .send()
        .await;
    assert_eq!(code_of(math), "InvalidParameterValue");
}

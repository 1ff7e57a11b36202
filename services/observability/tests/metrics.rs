//! The metric store and the CloudWatch operations over it (GetMetricStatistics, GetMetricData,
//! ListMetrics), driven through `Observability::ingest` and `Observability::dispatch` (JSON in and
//! out) on both engines. Expected values are computed here from the raw samples, so every sum,
//! count, minimum and maximum the store answers is checked exactly.
//!
//! Postgres tests create a fresh database on `LAMINA_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432`); they fail under CI when it is unreachable and are
//! skipped otherwise.

use std::time::Duration;

use lamina_common::ApiError;
use lamina_common::telemetry::{Metric, MetricKey, MetricSample, MetricStat};
use lamina_common::time::now_ms;
use lamina_metadata::Store;
use lamina_observability::{Ingest, Observability};
use serde_json::{Value, json};

#[macro_use]
mod common;

use common::obs;

engine_tests!(
    sums_are_exact_over_repeated_and_concurrent_ingests,
    every_dimension_set_aggregates_its_rows,
    periods_count_from_the_start_time_and_end_time_is_exclusive,
    get_metric_data_labels_orders_and_pages,
    list_metrics_lists_published_dimension_sets,
    requests_are_validated,
    tenants_are_isolated,
    prune_deletes_minutes_older_than_15_days,
);

const ACCOUNT: &str = "111122223333";
const OTHER: &str = "444455556666";

/// The top of the hour four hours ago: recent enough for minute rounding and ListMetrics, older than
/// `RecentlyActive`'s three hours.
fn base() -> i64 {
    (now_ms() / 1000 / 3600) * 3600 - 4 * 3600
}

fn key(account: &str, f: &str, r: &str, v: &str, metric: Metric) -> MetricKey {
    MetricKey {
        account_id: account.into(),
        function_name: f.into(),
        resource: r.into(),
        executed_version: v.into(),
        metric,
    }
}

/// The statistic of `values` sampled under `key` in the minute starting at `minute`.
fn stat(key: &MetricKey, minute: i64, values: &[f64]) -> MetricStat {
    let mut out: Option<MetricStat> = None;
    for (i, v) in values.iter().enumerate() {
        let s = MetricStat::of(&MetricSample { key: key.clone(), timestamp_ms: minute * 1000 + i as i64, value: *v });
        match &mut out {
            Some(o) => o.merge(&s),
            None => out = Some(s),
        }
    }
    out.expect("at least one value")
}

async fn ingest(obs: &Observability, stats: Vec<MetricStat>) {
    obs.ingest(Ingest { logs: vec![], metrics: stats }).await.expect("ingest");
}

async fn call(obs: &Observability, account: &str, op: &str, request: Value) -> Value {
    match obs.dispatch(account, op, request.clone()).await {
        Ok(v) => v,
        Err(e) => panic!("{op} {request}: {e:?}"),
    }
}

async fn call_err(obs: &Observability, op: &str, request: Value) -> ApiError {
    match obs.dispatch(ACCOUNT, op, request.clone()).await {
        Ok(v) => panic!("{op} {request} succeeded: {v}"),
        Err(e) => e,
    }
}

fn dims(pairs: &[(&str, &str)]) -> Value {
    Value::Array(pairs.iter().map(|(n, v)| json!({ "Name": n, "Value": v })).collect())
}

/// GetMetricStatistics of all five statistics; the datapoints as (timestamp, object).
async fn gms(
    obs: &Observability,
    account: &str,
    metric: &str,
    dimensions: &[(&str, &str)],
    start: f64,
    end: f64,
    period: i64,
) -> Vec<(i64, Value)> {
    let reply = call(
        obs,
        account,
        "GetMetricStatistics",
        json!({
            "Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": dims(dimensions),
            "StartTime": start, "EndTime": end, "Period": period,
            "Statistics": ["SampleCount", "Sum", "Average", "Minimum", "Maximum"],
        }),
    )
    .await;
    assert_eq!(reply["Label"], metric);
    let mut points: Vec<(i64, Value)> = reply["Datapoints"]
        .as_array()
        .expect("Datapoints")
        .iter()
        .map(|p| (p["Timestamp"].as_i64().expect("Timestamp"), p.clone()))
        .collect();
    points.sort_by_key(|(t, _)| *t);
    points
}

/// Dimensions as (name, value) pairs.
type Dims<'a> = &'a [(&'a str, &'a str)];

/// (SampleCount, Sum, Minimum, Maximum).
type Stats = (f64, f64, f64, f64);

/// (count, sum, min, max) of a datapoint, checking that Average is Sum / SampleCount.
fn stats_of(point: &Value) -> Stats {
    let f = |name: &str| point[name].as_f64().unwrap_or_else(|| panic!("{name} in {point}"));
    let (count, sum) = (f("SampleCount"), f("Sum"));
    assert_eq!(f("Average"), sum / count, "{point}");
    (count, sum, f("Minimum"), f("Maximum"))
}

/// (count, sum, min, max) of raw samples.
fn expected(values: &[f64]) -> Stats {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (values.len() as f64, values.iter().sum(), min, max)
}

async fn sums_are_exact_over_repeated_and_concurrent_ingests(store: Store) {
    let obs = obs(&store);
    let t = base();
    let inv = key(ACCOUNT, "f", "f", "$LATEST", Metric::Invocations);
    let dur = key(ACCOUNT, "f", "f", "$LATEST", Metric::Duration);
    // Three calls for the same minute, the second holding the same key and minute twice.
    let durations = [[12.5, 3.25, 40.0], [7.75, 0.5, 99.0], [1.0, 2.0, 64.125]];
    ingest(&obs, vec![stat(&inv, t, &[1.0; 3]), stat(&dur, t, &durations[0])]).await;
    ingest(
        &obs,
        vec![stat(&inv, t, &[1.0, 1.0]), stat(&dur, t, &durations[1][..2]), stat(&dur, t, &durations[1][2..])],
    )
    .await;
    ingest(&obs, vec![stat(&inv, t, &[1.0]), stat(&dur, t, &durations[2])]).await;
    let points = gms(&obs, ACCOUNT, "Invocations", &[("FunctionName", "f")], t as f64, (t + 60) as f64, 60).await;
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].0, t);
    assert_eq!(stats_of(&points[0].1), expected(&[1.0; 6]));
    assert_eq!(points[0].1["Unit"], "Count");
    let points = gms(&obs, ACCOUNT, "Duration", &[("FunctionName", "f")], t as f64, (t + 60) as f64, 60).await;
    assert_eq!(stats_of(&points[0].1), expected(&durations.concat()));
    assert_eq!(points[0].1["Unit"], "Milliseconds");

    // One batch of more rows than one statement holds: 700 minutes of one key (t-1h .. t+10h40).
    let big = key(ACCOUNT, "big", "big", "$LATEST", Metric::Invocations);
    let batch: Vec<MetricStat> =
        (0..700).map(|i| stat(&big, t - 3600 + i * 60, &vec![1.0; (i % 7 + 1) as usize])).collect();
    let total: f64 = (0..700).map(|i| (i % 7 + 1) as f64).sum();
    ingest(&obs, batch).await;
    let points = gms(
        &obs,
        ACCOUNT,
        "Invocations",
        &[("FunctionName", "big")],
        (t - 3600) as f64,
        (t - 3600 + 700 * 60) as f64,
        3600,
    )
    .await;
    assert_eq!(points.len(), 12);
    assert_eq!(points.iter().map(|(_, p)| stats_of(p).1).sum::<f64>(), total);

    // Concurrent ingests of the same keys and minutes add up exactly (no lost update, no deadlock).
    let hot = key(ACCOUNT, "hot", "hot", "1", Metric::Invocations);
    let hot_alias = key(ACCOUNT, "hot", "hot:live", "1", Metric::Invocations);
    let mut tasks = Vec::new();
    for task in 0..8 {
        let obs = obs.clone();
        let (hot, hot_alias) = (hot.clone(), hot_alias.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..10 {
                // Alternate the order in which the keys appear in the batch.
                let mut stats = vec![stat(&hot, t, &[1.0; 2]), stat(&hot_alias, t + 60, &[1.0; 3])];
                if (task + round) % 2 == 1 {
                    stats.reverse();
                }
                obs.ingest(Ingest { logs: vec![], metrics: stats }).await.expect("concurrent ingest");
            }
        }));
    }
    for task in tasks {
        task.await.expect("ingest task");
    }
    let points = gms(&obs, ACCOUNT, "Invocations", &[("FunctionName", "hot")], t as f64, (t + 120) as f64, 60).await;
    let sums: Vec<f64> = points.iter().map(|(_, p)| stats_of(p).1).collect();
    assert_eq!(sums, vec![160.0, 240.0]);
}

async fn every_dimension_set_aggregates_its_rows(store: Store) {
    let obs = obs(&store);
    let t = base();
    let (m0, m1) = (t + 600, t + 660);
    let inv = Metric::Invocations;
    // f invoked unqualified ($LATEST), through alias live (version 3) and as f:3; g unqualified.
    let f_latest = key(ACCOUNT, "f", "f", "$LATEST", inv);
    let f_live = key(ACCOUNT, "f", "f:live", "3", inv);
    let f_3 = key(ACCOUNT, "f", "f:3", "3", inv);
    let g = key(ACCOUNT, "g", "g", "$LATEST", inv);
    let ce = Metric::ConcurrentExecutions;
    let ce_account = key(ACCOUNT, "", "", "", ce);
    let ce_f = key(ACCOUNT, "f", "", "", ce);
    let ce_f_live = key(ACCOUNT, "f", "f:live", "", ce);
    let dur = key(ACCOUNT, "f", "f:live", "3", Metric::Duration);
    let iter_age = key(ACCOUNT, "f", "f", "", Metric::IteratorAge);
    ingest(
        &obs,
        vec![
            stat(&f_latest, m0, &[1.0; 4]),
            stat(&f_live, m0, &[1.0; 2]),
            stat(&f_live, m1, &[1.0; 5]),
            stat(&f_3, m1, &[1.0; 7]),
            stat(&g, m0, &[1.0; 11]),
            stat(&ce_account, m0, &[1.0, 5.0, 3.0]),
            stat(&ce_f, m0, &[1.0, 4.0]),
            stat(&ce_f_live, m0, &[2.0]),
            stat(&dur, m0, &[10.0, 30.0]),
            stat(&iter_age, m1, &[1500.0, 250.0]),
        ],
    )
    .await;
    let (start, end) = (t as f64, (t + 3600) as f64);
    let sum_of = |points: Vec<(i64, Value)>| points.iter().map(|(_, p)| stats_of(p).1).sum::<f64>();
    let cases: &[(&str, Dims, f64)] = &[
        ("Invocations", &[], 4.0 + 2.0 + 5.0 + 7.0 + 11.0),
        ("Invocations", &[("FunctionName", "f")], 18.0),
        ("Invocations", &[("FunctionName", "g")], 11.0),
        ("Invocations", &[("FunctionName", "f"), ("Resource", "f:live")], 7.0),
        ("Invocations", &[("Resource", "f"), ("FunctionName", "f")], 4.0),
        ("Invocations", &[("FunctionName", "f"), ("Resource", "f:live"), ("ExecutedVersion", "3")], 7.0),
        ("Invocations", &[("FunctionName", "f"), ("ExecutedVersion", "3")], 14.0),
        ("Invocations", &[("FunctionName", "f"), ("ExecutedVersion", "$LATEST")], 4.0),
        ("Duration", &[("FunctionName", "f")], 40.0),
        ("IteratorAge", &[("FunctionName", "f"), ("Resource", "f")], 1750.0),
        ("IteratorAge", &[], 1750.0),
    ];
    for (metric, d, want) in cases {
        let points = gms(&obs, ACCOUNT, metric, d, start, end, 3600).await;
        assert_eq!(sum_of(points), *want, "{metric} {d:?}");
    }
    // Per minute at function level: the two minutes of f.
    let points = gms(&obs, ACCOUNT, "Invocations", &[("FunctionName", "f")], start, end, 60).await;
    let per_minute: Vec<(i64, f64)> = points.iter().map(|(t, p)| (*t, stats_of(p).1)).collect();
    assert_eq!(per_minute, vec![(m0, 6.0), (m1, 12.0)]);
    // IteratorAge statistics at resource level.
    let points = gms(&obs, ACCOUNT, "IteratorAge", &[("FunctionName", "f"), ("Resource", "f")], start, end, 60).await;
    assert_eq!(stats_of(&points[0].1), expected(&[1500.0, 250.0]));
    assert_eq!(points[0].1["Unit"], "Milliseconds");

    // ConcurrentExecutions: each set reads its own rows only.
    let ce_cases: &[(Dims, Stats)] = &[
        (&[], expected(&[1.0, 5.0, 3.0])),
        (&[("FunctionName", "f")], expected(&[1.0, 4.0])),
        (&[("FunctionName", "f"), ("Resource", "f:live")], expected(&[2.0])),
    ];
    for (d, want) in ce_cases {
        let points = gms(&obs, ACCOUNT, "ConcurrentExecutions", d, start, end, 60).await;
        assert_eq!(points.len(), 1, "{d:?}");
        assert_eq!(stats_of(&points[0].1), *want, "{d:?}");
    }
    let none: &[(&str, Dims)] = &[
        ("ConcurrentExecutions", &[("FunctionName", "f"), ("Resource", "f:live"), ("ExecutedVersion", "3")]),
        ("ConcurrentExecutions", &[("FunctionName", "g")]),
        ("Invocations", &[("FunctionName", "nope")]),
        ("Invocations", &[("FunctionName", "f"), ("Color", "red")]),
        ("Invocations", &[("Resource", "f")]),
        ("Throttles", &[("FunctionName", "f")]),
        ("NotAMetric", &[]),
    ];
    for (metric, d) in none {
        assert!(gms(&obs, ACCOUNT, metric, d, start, end, 60).await.is_empty(), "{metric} {d:?}");
    }
    // Another namespace and a unit other than the metric's have no datapoints; the right unit does.
    let request = |namespace: &str, unit: Option<&str>| {
        let mut r = json!({
            "Namespace": namespace, "MetricName": "Invocations", "Dimensions": dims(&[("FunctionName", "f")]),
            "StartTime": start, "EndTime": end, "Period": 3600, "Statistics": ["Sum"],
        });
        if let Some(u) = unit {
            r["Unit"] = json!(u);
        }
        r
    };
    for (namespace, unit, count) in
        [("AWS/EC2", None, 0), ("AWS/Lambda", Some("Seconds"), 0), ("AWS/Lambda", Some("Count"), 1)]
    {
        let reply = call(&obs, ACCOUNT, "GetMetricStatistics", request(namespace, unit)).await;
        assert_eq!(reply["Datapoints"].as_array().expect("Datapoints").len(), count, "{namespace} {unit:?}");
    }
    // Only the statistics asked for are answered.
    let reply = call(&obs, ACCOUNT, "GetMetricStatistics", request("AWS/Lambda", None)).await;
    let point = &reply["Datapoints"][0];
    assert_eq!(point["Sum"], 18.0);
    assert!(point.get("Average").is_none() && point.get("SampleCount").is_none(), "{point}");
}

async fn periods_count_from_the_start_time_and_end_time_is_exclusive(store: Store) {
    let obs = obs(&store);
    let t = base();
    let k = key(ACCOUNT, "f", "f", "1", Metric::Duration);
    // Minute i (0..10) holds samples i+1 and 10*(i+1).
    let samples: Vec<Vec<f64>> = (0..10).map(|i| vec![(i + 1) as f64, (10 * (i + 1)) as f64]).collect();
    ingest(&obs, (0..10).map(|i| stat(&k, t + i * 60, &samples[i as usize])).collect()).await;
    let minutes = |range: std::ops::Range<usize>| samples[range].concat();
    let fd = [("FunctionName", "f")];

    let points = gms(&obs, ACCOUNT, "Duration", &fd, t as f64, (t + 600) as f64, 300).await;
    assert_eq!(points.iter().map(|(ts, _)| *ts).collect::<Vec<_>>(), vec![t, t + 300]);
    assert_eq!(stats_of(&points[0].1), expected(&minutes(0..5)));
    assert_eq!(stats_of(&points[1].1), expected(&minutes(5..10)));

    // Periods start at StartTime (rounded down to its minute), not at clock multiples of the period.
    let points = gms(&obs, ACCOUNT, "Duration", &fd, (t + 120) as f64 + 30.5, (t + 600) as f64, 300).await;
    assert_eq!(points.iter().map(|(ts, _)| *ts).collect::<Vec<_>>(), vec![t + 120, t + 420]);
    assert_eq!(stats_of(&points[0].1), expected(&minutes(2..7)));
    assert_eq!(stats_of(&points[1].1), expected(&minutes(7..10)));

    // EndTime is exclusive: a minute starting at EndTime is out, one starting before it is in.
    let points = gms(&obs, ACCOUNT, "Duration", &fd, t as f64, (t + 300) as f64, 600).await;
    assert_eq!(stats_of(&points[0].1), expected(&minutes(0..5)));
    let points = gms(&obs, ACCOUNT, "Duration", &fd, t as f64, (t + 300) as f64 + 0.5, 600).await;
    assert_eq!(stats_of(&points[0].1), expected(&minutes(0..6)));
    // StartTime is inclusive; the minutes before it are out.
    let points = gms(&obs, ACCOUNT, "Duration", &fd, (t + 540) as f64, (t + 3600) as f64, 60).await;
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].0, t + 540);
    // A range without data, and only periods with samples have datapoints.
    assert!(gms(&obs, ACCOUNT, "Duration", &fd, (t - 3600) as f64, t as f64, 60).await.is_empty());
    let points = gms(&obs, ACCOUNT, "Duration", &fd, (t - 3600) as f64, (t + 3600) as f64, 60).await;
    assert_eq!(points.len(), 10);
    // Exactly 1,440 datapoints is allowed.
    let points = gms(&obs, ACCOUNT, "Duration", &fd, t as f64, (t + 86_400) as f64, 60).await;
    assert_eq!(points.len(), 10);
}

/// One page of GetMetricData.
async fn gmd(obs: &Observability, mut request: Value, token: Option<&str>) -> Value {
    if let Some(t) = token {
        request["NextToken"] = json!(t);
    }
    let reply = call(obs, ACCOUNT, "GetMetricData", request).await;
    assert_eq!(reply["Messages"], json!([]));
    reply
}

fn metric_query(id: &str, metric: &str, function: &str, stat: &str, period: i64) -> Value {
    json!({
        "Id": id,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": dims(&[("FunctionName", function)]),
            },
            "Period": period, "Stat": stat,
        },
    })
}

/// (timestamp, value) pairs of one result.
fn series(result: &Value) -> Vec<(i64, f64)> {
    let ts = result["Timestamps"].as_array().expect("Timestamps");
    let vs = result["Values"].as_array().expect("Values");
    assert_eq!(ts.len(), vs.len(), "{result}");
    ts.iter().zip(vs).map(|(t, v)| (t.as_i64().expect("timestamp"), v.as_f64().expect("value"))).collect()
}

async fn get_metric_data_labels_orders_and_pages(store: Store) {
    let obs = obs(&store);
    let t = base();
    let inv = key(ACCOUNT, "f", "f", "$LATEST", Metric::Invocations);
    let dur = key(ACCOUNT, "f", "f", "$LATEST", Metric::Duration);
    let errors = key(ACCOUNT, "f", "f", "$LATEST", Metric::Errors);
    let mut stats = Vec::new();
    for i in 0..6 {
        stats.push(stat(&inv, t + i * 60, &vec![1.0; (i + 1) as usize]));
        stats.push(stat(&dur, t + i * 60, &[i as f64, 100.0 + i as f64]));
        stats.push(stat(&errors, t + i * 60, &[0.0, 1.0]));
    }
    ingest(&obs, stats).await;
    let mut labelled = metric_query("dur", "Duration", "f", "Maximum", 60);
    labelled["Label"] = json!("slowest of ${PROP('Dim.FunctionName')}");
    let mut hidden = metric_query("errs", "Errors", "f", "Sum", 60);
    hidden["ReturnData"] = json!(false);
    let queries = json!([
        metric_query("inv", "Invocations", "f", "Sum", 60),
        labelled,
        hidden,
        metric_query("nothing", "Throttles", "f", "Sum", 60),
        metric_query("avg5", "Duration", "f", "Average", 300),
    ]);
    let request = json!({ "MetricDataQueries": queries, "StartTime": t, "EndTime": t + 600 });
    let reply = gmd(&obs, request.clone(), None).await;
    assert!(reply.get("NextToken").is_none(), "{reply}");
    let results = reply["MetricDataResults"].as_array().expect("results");
    let ids: Vec<&str> = results.iter().map(|r| r["Id"].as_str().expect("Id")).collect();
    assert_eq!(ids, vec!["inv", "dur", "nothing", "avg5"]);
    assert!(results.iter().all(|r| r["StatusCode"] == "Complete"));
    // Newest first by default.
    let want_inv: Vec<(i64, f64)> = (0..6).rev().map(|i| (t + i * 60, (i + 1) as f64)).collect();
    assert_eq!(series(&results[0]), want_inv);
    assert_eq!(results[0]["Label"], "Invocations");
    assert_eq!(results[1]["Label"], "slowest of f");
    assert_eq!(series(&results[1]), (0..6).rev().map(|i| (t + i * 60, 100.0 + i as f64)).collect::<Vec<_>>());
    assert!(series(&results[2]).is_empty());
    // Average over 5 minutes: minutes 0..4 then minute 5.
    let avg = |range: std::ops::Range<i64>| {
        let v: Vec<f64> = range.flat_map(|i| [i as f64, 100.0 + i as f64]).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert_eq!(series(&results[3]), vec![(t + 300, avg(5..6)), (t, avg(0..5))]);

    // Oldest first.
    let mut ascending = request.clone();
    ascending["ScanBy"] = json!("TimestampAscending");
    let reply = gmd(&obs, ascending.clone(), None).await;
    let mut want_asc = want_inv.clone();
    want_asc.reverse();
    assert_eq!(series(&reply["MetricDataResults"][0]), want_asc);

    // Pages of at most 4 datapoints give every datapoint exactly once, in order, both ways.
    for (mut paged, full) in [
        (request.clone(), reply_series(&obs, &request).await),
        (ascending.clone(), reply_series(&obs, &ascending).await),
    ] {
        paged["MaxDatapoints"] = json!(4);
        let mut token: Option<String> = None;
        let mut seen: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
        let mut pages = 0;
        loop {
            let reply = gmd(&obs, paged.clone(), token.as_deref()).await;
            pages += 1;
            let results = reply["MetricDataResults"].as_array().expect("results");
            let count: usize = results.iter().map(|r| series(r).len()).sum();
            assert!(count <= 4, "{reply}");
            let last = results.len().saturating_sub(1);
            for (i, r) in results.iter().enumerate() {
                // Only the last result of a full page with a NextToken may continue.
                if r["StatusCode"] == "PartialData" {
                    assert!(i == last && reply.get("NextToken").is_some() && count == 4, "{reply}");
                }
                let id = r["Id"].as_str().expect("Id").to_owned();
                match seen.last_mut() {
                    Some((last_id, points)) if *last_id == id => points.extend(series(r)),
                    _ => seen.push((id, series(r))),
                }
            }
            match reply["NextToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
            assert!(pages < 20, "pagination does not end");
        }
        assert_eq!(seen, full);
        // 6 + 6 + 0 + 2 datapoints in pages of 4.
        assert_eq!(pages, 4);
    }
    // Pages of 6 end exactly at the end of a query; the next page starts with the next query.
    let mut six = request.clone();
    six["MaxDatapoints"] = json!(6);
    let first = gmd(&obs, six.clone(), None).await;
    assert_eq!(first["MetricDataResults"].as_array().map(Vec::len), Some(1));
    assert_eq!(first["MetricDataResults"][0]["StatusCode"], "Complete");
    let token = first["NextToken"].as_str().expect("NextToken").to_owned();
    let second = gmd(&obs, six, Some(&token)).await;
    assert_eq!(second["MetricDataResults"][0]["Id"], "dur");
}

/// Every returned query's (id, datapoints) in one page.
async fn reply_series(obs: &Observability, request: &Value) -> Vec<(String, Vec<(i64, f64)>)> {
    let reply = gmd(obs, request.clone(), None).await;
    reply["MetricDataResults"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| (r["Id"].as_str().expect("Id").to_owned(), series(r)))
        .collect()
}

/// ListMetrics' metrics as sorted (name, [(dimension, value)]) pairs, over every page.
async fn list(obs: &Observability, account: &str, request: Value) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut request = request;
    loop {
        let reply = call(obs, account, "ListMetrics", request.clone()).await;
        for m in reply["Metrics"].as_array().expect("Metrics") {
            assert_eq!(m["Namespace"], "AWS/Lambda");
            let mut d: Vec<(String, String)> = m["Dimensions"]
                .as_array()
                .expect("Dimensions")
                .iter()
                .map(|d| (d["Name"].as_str().expect("Name").to_owned(), d["Value"].as_str().expect("Value").to_owned()))
                .collect();
            d.sort();
            out.push((m["MetricName"].as_str().expect("MetricName").to_owned(), d));
        }
        match reply["NextToken"].as_str() {
            Some(t) => request["NextToken"] = json!(t),
            None => break,
        }
    }
    out.sort();
    out
}

fn listed(name: &str, d: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let mut d: Vec<(String, String)> = d.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    d.sort();
    (name.to_owned(), d)
}

async fn list_metrics_lists_published_dimension_sets(store: Store) {
    let obs = obs(&store);
    let t = base();
    let ce = Metric::ConcurrentExecutions;
    ingest(
        &obs,
        vec![
            stat(&key(ACCOUNT, "f", "f:live", "3", Metric::Invocations), t, &[1.0]),
            stat(&key(ACCOUNT, "f", "f", "", Metric::IteratorAge), t, &[5.0]),
            stat(&key(ACCOUNT, "", "", "", ce), t, &[1.0]),
            stat(&key(ACCOUNT, "f", "", "", ce), t, &[1.0]),
            stat(&key(ACCOUNT, "f", "f:live", "", ce), t, &[1.0]),
            // Data 14 days and an hour ago is past ListMetrics' two weeks.
            stat(&key(ACCOUNT, "old", "old", "1", Metric::Errors), t - 14 * 86_400 + 2 * 3600, &[0.0]),
        ],
    )
    .await;
    let all = list(&obs, ACCOUNT, json!({})).await;
    let mut want = vec![
        listed("Invocations", &[]),
        listed("Invocations", &[("FunctionName", "f")]),
        listed("Invocations", &[("FunctionName", "f"), ("Resource", "f:live")]),
        listed("Invocations", &[("FunctionName", "f"), ("Resource", "f:live"), ("ExecutedVersion", "3")]),
        listed("Invocations", &[("FunctionName", "f"), ("ExecutedVersion", "3")]),
        listed("IteratorAge", &[]),
        listed("IteratorAge", &[("FunctionName", "f")]),
        listed("IteratorAge", &[("FunctionName", "f"), ("Resource", "f")]),
        listed("ConcurrentExecutions", &[]),
        listed("ConcurrentExecutions", &[("FunctionName", "f")]),
        listed("ConcurrentExecutions", &[("FunctionName", "f"), ("Resource", "f:live")]),
    ];
    want.sort();
    assert_eq!(all, want);
    // Every listed metric has datapoints.
    for (name, d) in &all {
        let d: Vec<(&str, &str)> = d.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(gms(&obs, ACCOUNT, name, &d, t as f64, (t + 60) as f64, 60).await.len(), 1, "{name} {d:?}");
    }
    // Filters.
    let by_name = list(&obs, ACCOUNT, json!({ "Namespace": "AWS/Lambda", "MetricName": "ConcurrentExecutions" })).await;
    assert_eq!(by_name.len(), 3);
    let versioned = list(&obs, ACCOUNT, json!({ "Dimensions": [{ "Name": "ExecutedVersion" }] })).await;
    assert_eq!(versioned.len(), 2);
    let live = list(
        &obs,
        ACCOUNT,
        json!({ "Dimensions": [{ "Name": "Resource", "Value": "f:live" }, { "Name": "FunctionName", "Value": "f" }] }),
    )
    .await;
    assert_eq!(live.len(), 3);
    assert!(list(&obs, ACCOUNT, json!({ "Namespace": "AWS/EC2" })).await.is_empty());
    assert!(list(&obs, ACCOUNT, json!({ "MetricName": "CPUUtilization" })).await.is_empty());
    assert!(list(&obs, ACCOUNT, json!({ "Dimensions": [{ "Name": "FunctionName", "Value": "g" }] })).await.is_empty());
    // RecentlyActive: only keys with data in the last three hours (the data above is older).
    let fresh = (now_ms() / 1000 - 120) / 60 * 60;
    ingest(&obs, vec![stat(&key(ACCOUNT, "fresh", "fresh", "1", Metric::Errors), fresh, &[1.0])]).await;
    let active = list(&obs, ACCOUNT, json!({ "RecentlyActive": "PT3H" })).await;
    assert_eq!(active.len(), 5, "{active:?}");
    assert!(active.iter().all(|(name, _)| name == "Errors"), "{active:?}");
    assert_eq!(list(&obs, ACCOUNT, json!({})).await.len(), all.len() + 5);

    // More than a page: 130 functions publish 4 sets each beside the account-wide one.
    let many: Vec<MetricStat> = (0..130)
        .map(|i| {
            let f = format!("fn{i:03}");
            stat(&key(ACCOUNT, &f, &f, "$LATEST", Metric::Throttles), t, &[1.0])
        })
        .collect();
    ingest(&obs, many).await;
    let first = call(&obs, ACCOUNT, "ListMetrics", json!({ "MetricName": "Throttles" })).await;
    assert_eq!(first["Metrics"].as_array().map(Vec::len), Some(500));
    assert!(first["NextToken"].is_string());
    let throttles = list(&obs, ACCOUNT, json!({ "MetricName": "Throttles" })).await;
    assert_eq!(throttles.len(), 130 * 4 + 1);
    let mut unique = throttles.clone();
    unique.dedup();
    assert_eq!(unique.len(), throttles.len());
}

fn message_of(e: &ApiError) -> String {
    e.to_string()
}

async fn requests_are_validated(store: Store) {
    let obs = obs(&store);
    let t = base() as f64;
    let good = json!({
        "Namespace": "AWS/Lambda", "MetricName": "Invocations", "StartTime": t, "EndTime": t + 3600.0,
        "Period": 60, "Statistics": ["Sum"],
    });
    call(&obs, ACCOUNT, "GetMetricStatistics", good.clone()).await;
    let with = |patch: Value| {
        let mut r = good.clone();
        for (k, v) in patch.as_object().expect("patch") {
            if v.is_null() {
                r.as_object_mut().expect("request").remove(k);
            } else {
                r[k] = v.clone();
            }
        }
        r
    };
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "Namespace": null }))).await;
    assert!(matches!(e, ApiError::InvalidRequestContent(_)), "{e:?}");
    assert_eq!(message_of(&e), "The parameter Namespace is required.");
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "Period": null }))).await;
    assert!(matches!(e, ApiError::InvalidRequestContent(_)), "{e:?}");
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "Period": 30 }))).await;
    assert!(matches!(e, ApiError::InvalidParameterValue(_)), "{e:?}");
    assert_eq!(message_of(&e), "The parameter Period must be a multiple of 60.");
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "Period": 0 }))).await;
    assert!(matches!(e, ApiError::InvalidParameterValue(_)), "{e:?}");
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "EndTime": t }))).await;
    assert!(matches!(e, ApiError::InvalidParameterValue(_)), "{e:?}");
    assert_eq!(message_of(&e), "The parameter StartTime must be less than the parameter EndTime.");
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "EndTime": t + 86_460.0 }))).await;
    assert!(matches!(e, ApiError::ValidationMessage(_)), "{e:?}");
    assert_eq!(
        message_of(&e),
        "You have requested up to 1,441 datapoints, which exceeds the limit of 1,440. You may reduce the datapoints \
         requested by increasing Period, or decreasing the time range."
    );
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "Statistics": null }))).await;
    assert!(matches!(e, ApiError::InvalidRequestContent(_)), "{e:?}");
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "Statistics": ["Avg"] }))).await;
    assert!(matches!(e, ApiError::InvalidParameterValue(_)), "{e:?}");
    let e =
        call_err(&obs, "GetMetricStatistics", with(json!({ "Statistics": null, "ExtendedStatistics": ["p99"] }))).await;
    assert!(matches!(e, ApiError::InvalidParameterValue(_)), "{e:?}");
    assert!(message_of(&e).contains("p99"), "{e}");
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "ExtendedStatistics": ["p99"] }))).await;
    assert!(matches!(e, ApiError::ValidationMessage(_)), "{e:?}");
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "Unit": "Parsecs" }))).await;
    assert!(matches!(e, ApiError::InvalidParameterValue(_)), "{e:?}");
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "Dimensions": [{ "Name": "FunctionName" }] }))).await;
    assert!(matches!(e, ApiError::InvalidRequestContent(_)), "{e:?}");
    let e = call_err(&obs, "GetMetricStatistics", with(json!({ "Period": "soon" }))).await;
    assert!(matches!(e, ApiError::InvalidParameterValue(_)), "{e:?}");
    // Numbers may come as strings.
    call(&obs, ACCOUNT, "GetMetricStatistics", with(json!({ "Period": "300", "StartTime": t.to_string() }))).await;

    let q = |id: &str| metric_query(id, "Invocations", "f", "Sum", 60);
    let gmd = |queries: Value| json!({ "MetricDataQueries": queries, "StartTime": t, "EndTime": t + 3600.0 });
    call(&obs, ACCOUNT, "GetMetricData", gmd(json!([q("a"), q("b_2")]))).await;
    let cases: Vec<(Value, &str)> = vec![
        (gmd(json!([q("a"), q("a")])), "InvalidParameterValue"),
        (gmd(json!([q("A1")])), "InvalidParameterValue"),
        (gmd(json!([q("1a")])), "InvalidParameterValue"),
        (gmd(json!([{ "Id": "m", "Expression": "SUM(METRICS())" }])), "InvalidParameterValue"),
        (gmd(json!([metric_query("m", "Invocations", "f", "p99", 60)])), "InvalidParameterValue"),
        (gmd(json!([metric_query("m", "Invocations", "f", "Median", 60)])), "InvalidParameterValue"),
        (gmd(json!([metric_query("m", "Invocations", "f", "Sum", 90)])), "InvalidParameterValue"),
        (gmd(json!([{ "Id": "m" }])), "ValidationMessage"),
        (gmd(json!([{ "Id": "m", "MetricStat": { "Period": 60, "Stat": "Sum" } }])), "InvalidRequestContent"),
        (gmd(Value::Array((0..501).map(|i| q(&format!("q{i}"))).collect())), "InvalidParameterValue"),
        (json!({ "MetricDataQueries": [q("a")], "StartTime": t, "EndTime": t }), "InvalidParameterValue"),
        (json!({ "MetricDataQueries": [q("a")], "StartTime": t }), "InvalidRequestContent"),
        (json!({ "StartTime": t, "EndTime": t + 60.0 }), "InvalidRequestContent"),
        (
            json!({ "MetricDataQueries": [q("a")], "StartTime": t, "EndTime": t + 60.0, "ScanBy": "Sideways" }),
            "InvalidParameterValue",
        ),
        (
            json!({ "MetricDataQueries": [q("a")], "StartTime": t, "EndTime": t + 60.0, "MaxDatapoints": 0 }),
            "InvalidParameterValue",
        ),
        (
            json!({ "MetricDataQueries": [q("a")], "StartTime": t, "EndTime": t + 60.0, "NextToken": "%%%" }),
            "InvalidParameterValue",
        ),
    ];
    for (request, kind) in cases {
        let e = call_err(&obs, "GetMetricData", request.clone()).await;
        let got = match e {
            ApiError::InvalidParameterValue(_) => "InvalidParameterValue",
            ApiError::InvalidRequestContent(_) => "InvalidRequestContent",
            ApiError::ValidationMessage(_) => "ValidationMessage",
            ref other => panic!("{request}: {other:?}"),
        };
        assert_eq!(got, kind, "{request}: {e}");
    }
    let e = call_err(&obs, "GetMetricData", gmd(json!([{ "Id": "m", "Expression": "m1 * 2" }]))).await;
    assert_eq!(message_of(&e), "Metric math is not supported by Lamina.");

    let e = call_err(&obs, "ListMetrics", json!({ "RecentlyActive": "PT1H" })).await;
    assert!(matches!(e, ApiError::InvalidParameterValue(_)), "{e:?}");
    let e = call_err(&obs, "ListMetrics", json!({ "NextToken": "%%%" })).await;
    assert!(matches!(e, ApiError::InvalidParameterValue(_)), "{e:?}");
}

async fn tenants_are_isolated(store: Store) {
    let obs = obs(&store);
    let t = base();
    let inv = Metric::Invocations;
    ingest(
        &obs,
        vec![
            stat(&key(ACCOUNT, "f", "f", "$LATEST", inv), t, &[1.0; 3]),
            stat(&key(OTHER, "f", "f", "$LATEST", inv), t, &[1.0; 5]),
            stat(&key(OTHER, "only-other", "only-other", "$LATEST", inv), t, &[1.0]),
            stat(&key(OTHER, "", "", "", Metric::ConcurrentExecutions), t, &[9.0]),
        ],
    )
    .await;
    let (start, end) = (t as f64, (t + 60) as f64);
    let sum = |points: Vec<(i64, Value)>| points.iter().map(|(_, p)| stats_of(p).1).sum::<f64>();
    assert_eq!(sum(gms(&obs, ACCOUNT, "Invocations", &[("FunctionName", "f")], start, end, 60).await), 3.0);
    assert_eq!(sum(gms(&obs, OTHER, "Invocations", &[("FunctionName", "f")], start, end, 60).await), 5.0);
    assert_eq!(sum(gms(&obs, ACCOUNT, "Invocations", &[], start, end, 60).await), 3.0);
    assert_eq!(sum(gms(&obs, OTHER, "Invocations", &[], start, end, 60).await), 6.0);
    assert!(gms(&obs, ACCOUNT, "ConcurrentExecutions", &[], start, end, 60).await.is_empty());
    assert!(gms(&obs, ACCOUNT, "Invocations", &[("FunctionName", "only-other")], start, end, 60).await.is_empty());

    let mine = list(&obs, ACCOUNT, json!({})).await;
    assert!(
        mine.iter().all(|(name, d)| name == "Invocations" && d.iter().all(|(_, v)| !v.starts_with("only"))),
        "{mine:?}"
    );
    assert_eq!(mine.len(), 5);
    assert!(list(&obs, ACCOUNT, json!({ "OwningAccount": OTHER })).await.is_empty());

    let request = json!({
        "MetricDataQueries": [metric_query("m", "Invocations", "f", "Sum", 60)], "StartTime": start, "EndTime": end,
    });
    let reply = call(&obs, ACCOUNT, "GetMetricData", request.clone()).await;
    assert_eq!(series(&reply["MetricDataResults"][0]), vec![(t, 3.0)]);
    let mut foreign = request;
    foreign["MetricDataQueries"][0]["AccountId"] = json!(OTHER);
    let e = call_err(&obs, "GetMetricData", foreign).await;
    assert!(matches!(e, ApiError::InvalidParameterValue(_)), "{e:?}");
}

/// Rows of `table` whose `column` is before `before`, read directly: the API cannot show keys
/// older than ListMetrics' two weeks.
async fn rows_before(store: &Store, table: &str, column: &str, before: i64) -> i64 {
    let sql = format!("select count(*) from {table} where {column} < $1");
    match store {
        Store::Sqlite(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(before).fetch_one(pool).await,
        Store::Postgres(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(before).fetch_one(pool).await,
    }
    .expect("count rows")
}

async fn prune_deletes_minutes_older_than_15_days(store: Store) {
    let obs = obs(&store);
    let now = now_ms() / 1000;
    let old = (now - 16 * 86_400) / 60 * 60;
    let kept = (now - 14 * 86_400) / 60 * 60;
    let recent = (now - 3600) / 60 * 60;
    let k = key(ACCOUNT, "f", "f", "$LATEST", Metric::Invocations);
    let stale = key(ACCOUNT, "stale", "stale", "$LATEST", Metric::Invocations);
    ingest(
        &obs,
        vec![
            stat(&k, old, &[1.0; 2]),
            stat(&k, kept, &[1.0; 3]),
            stat(&k, recent, &[1.0; 4]),
            stat(&stale, old, &[1.0]),
        ],
    )
    .await;
    assert_eq!(sum_since(&obs, now - 17 * 86_400, now).await, 9.0, "old minutes are readable before pruning");
    assert_eq!(rows_before(&store, "function_metric_keys", "last_minute", now - 15 * 86_400).await, 1);

    let stop = tokio_util::sync::CancellationToken::new();
    stop.cancel();
    // One pass: the token is already cancelled.
    lamina_observability::janitor(obs.clone(), Duration::from_secs(3600), stop).await;

    assert_eq!(sum_since(&obs, now - 17 * 86_400, now).await, 7.0);
    assert_eq!(sum_since(&obs, now - 86_400, now).await, 4.0);
    assert_eq!(rows_before(&store, "function_metrics", "minute", now - 15 * 86_400).await, 0);
    assert_eq!(rows_before(&store, "function_metric_keys", "last_minute", now - 15 * 86_400).await, 0);
    assert!(
        gms(&obs, ACCOUNT, "Invocations", &[("FunctionName", "stale")], (now - 17 * 86_400) as f64, now as f64, 86_400)
            .await
            .is_empty()
    );
}

/// The Invocations of function `f` from `from` to a minute past `now`, summed.
async fn sum_since(obs: &Observability, from: i64, now: i64) -> f64 {
    let points =
        gms(obs, ACCOUNT, "Invocations", &[("FunctionName", "f")], from as f64, (now + 60) as f64, 86_400).await;
    points.iter().map(|(_, p)| stats_of(p).1).sum()
}

//! The log store and the CloudWatch Logs operations, driven through `Observability::ingest` and
//! `Observability::dispatch` (JSON in and out) on both engines. Postgres tests create a fresh
//! database on `LAMINA_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432`); they fail
//! under CI when it is unreachable and are skipped otherwise.

use std::collections::HashSet;

use lamina_common::ApiError;
use lamina_common::telemetry::{LogBatch, ShippedEvent};
use lamina_common::time::now_ms;
use lamina_metadata::Store;
use lamina_observability::{Ingest, LogLimits, Observability};
use serde_json::{Value, json};

#[macro_use]
mod common;

use common::obs;

engine_tests!(
    get_log_events_orders_and_pages_both_ways,
    get_log_events_time_window_and_late_events,
    filter_log_events_windows_streams_and_pages,
    filter_log_events_patterns,
    follow_polls_see_late_events,
    groups_and_streams_are_described,
    retention_and_policies,
    size_cap_deletes_the_oldest_events_first,
    delete_log_group_removes_everything,
    tenants_are_isolated,
    requests_are_validated,
);

const A: &str = "111111111111";
const B: &str = "222222222222";
const GROUP: &str = "/aws/lambda/orders";
const S1: &str = "2024/05/01/[$LATEST]00000000000000000000000000000001";
const S2: &str = "2024/05/01/[$LATEST]00000000000000000000000000000002";
const S3: &str = "2024/05/02/[7]00000000000000000000000000000003";

fn batch(account: &str, group: &str, stream: &str, events: &[(i64, &str)]) -> LogBatch {
    LogBatch {
        account_id: account.into(),
        log_group: group.into(),
        log_stream: stream.into(),
        events: events.iter().map(|(t, m)| ShippedEvent { timestamp_ms: *t, message: (*m).into() }).collect(),
    }
}

async fn ingest(o: &Observability, logs: Vec<LogBatch>) {
    o.ingest(Ingest { logs, metrics: vec![] }).await.expect("ingest");
}

/// One janitor pass over the log store.
async fn enforce(o: &Observability) {
    lamina_observability::logs::enforce_limits(o).await.expect("enforce limits");
}

async fn call(o: &Observability, account: &str, op: &str, request: Value) -> Value {
    o.dispatch(account, op, request).await.unwrap_or_else(|e| panic!("{op}: {e:?}"))
}

async fn fail(o: &Observability, account: &str, op: &str, request: Value) -> ApiError {
    match o.dispatch(account, op, request.clone()).await {
        Ok(reply) => panic!("{op} {request} should fail, got {reply}"),
        Err(e) => e,
    }
}

fn assert_not_found(e: ApiError, message: &str) {
    match e {
        ApiError::ResourceNotFound(m) => assert_eq!(m, message),
        other => panic!("expected ResourceNotFound({message}), got {other:?}"),
    }
}

fn assert_invalid(e: ApiError, fragment: &str) {
    match e {
        ApiError::InvalidParameterValue(m) => assert!(m.contains(fragment), "{m:?} should contain {fragment:?}"),
        other => panic!("expected InvalidParameterValue({fragment}), got {other:?}"),
    }
}

fn messages(reply: &Value) -> Vec<String> {
    reply["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["message"].as_str().expect("message").to_owned())
        .collect()
}

fn token(reply: &Value, name: &str) -> String {
    reply[name].as_str().unwrap_or_else(|| panic!("{name} in {reply}")).to_owned()
}

/// Follows FilterLogEvents' nextToken to the end, as the CLI's paginator does.
async fn filter_all(o: &Observability, account: &str, mut request: Value) -> (Vec<Value>, usize) {
    let mut events = Vec::new();
    let mut calls = 0;
    loop {
        let reply = call(o, account, "FilterLogEvents", request.clone()).await;
        calls += 1;
        events.extend(reply["events"].as_array().expect("events").iter().cloned());
        assert!(reply["searchedLogStreams"].is_array());
        match reply.get("nextToken") {
            Some(t) => request["nextToken"] = t.clone(),
            None => return (events, calls),
        }
        assert!(calls < 1000, "runaway pagination");
    }
}

fn texts(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["message"].as_str().expect("message").to_owned()).collect()
}

async fn get_log_events_orders_and_pages_both_ways(store: Store) {
    let o = obs(&store);
    let t0 = now_ms() - 60_000;
    // Two shipments, the second holding events older than some of the first (equal timestamps too).
    let first: Vec<(i64, String)> = (0..15).map(|i| (t0 + i * 10, format!("e{:02}", i * 2))).collect();
    let mut second: Vec<(i64, String)> = (0..10).map(|i| (t0 + i * 10 + 5, format!("e{:02}", i * 2 + 1))).collect();
    // Same timestamp as e28: ordered after it, by arrival.
    second.push((t0 + 140, "e29".into()));
    fn refs(v: &[(i64, String)]) -> Vec<(i64, &str)> {
        v.iter().map(|(t, m)| (*t, m.as_str())).collect()
    }
    ingest(&o, vec![batch(A, GROUP, S1, &refs(&first))]).await;
    ingest(&o, vec![batch(A, GROUP, S1, &refs(&second)), batch(A, GROUP, S2, &[(t0, "other stream")])]).await;
    let mut all: Vec<(i64, String)> = first.iter().chain(&second).cloned().collect();
    all.sort();
    let expected: Vec<String> = all.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(expected.len(), 26);

    // From the head, forward tokens until the same token comes back (the paginators' stop rule).
    let mut request = json!({"logGroupName": GROUP, "logStreamName": S1, "startFromHead": true, "limit": 10});
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let reply = call(&o, A, "GetLogEvents", request.clone()).await;
        calls += 1;
        for e in reply["events"].as_array().expect("events") {
            assert!(e["timestamp"].is_i64() && e["ingestionTime"].is_i64(), "{e}");
        }
        seen.extend(messages(&reply));
        let forward = token(&reply, "nextForwardToken");
        assert!(forward.starts_with("f/") && forward[2..].bytes().all(|b| b.is_ascii_digit()), "{forward}");
        assert_eq!(forward.len(), 58);
        assert!(token(&reply, "nextBackwardToken").starts_with("b/"));
        if request.get("nextToken").and_then(Value::as_str) == Some(forward.as_str()) {
            assert!(reply["events"].as_array().expect("events").is_empty());
            break;
        }
        request["nextToken"] = json!(forward);
        assert!(calls < 10, "forward paging did not stop");
    }
    assert_eq!(seen, expected);
    assert_eq!(calls, 4, "10 + 10 + 6, then the same token back");

    // Without a token: the newest `limit` events, ascending; backward tokens page to older ones.
    let reply = call(&o, A, "GetLogEvents", json!({"logGroupName": GROUP, "logStreamName": S1, "limit": 10})).await;
    assert_eq!(messages(&reply), expected[16..]);
    let mut backward = token(&reply, "nextBackwardToken");
    let reply = call(
        &o,
        A,
        "GetLogEvents",
        json!({"logGroupName": GROUP, "logStreamName": S1, "limit": 10, "nextToken": backward}),
    )
    .await;
    assert_eq!(messages(&reply), expected[6..16]);
    // The forward token of a backward page leads back to the newer events.
    let reply_fwd = call(
        &o,
        A,
        "GetLogEvents",
        json!({"logGroupName": GROUP, "logStreamName": S1, "limit": 3, "nextToken": token(&reply, "nextForwardToken")}),
    )
    .await;
    assert_eq!(messages(&reply_fwd), expected[16..19]);
    backward = token(&reply, "nextBackwardToken");
    let reply = call(
        &o,
        A,
        "GetLogEvents",
        json!({"logGroupName": GROUP, "logStreamName": S1, "limit": 10, "nextToken": backward}),
    )
    .await;
    assert_eq!(messages(&reply), expected[..6]);
    backward = token(&reply, "nextBackwardToken");
    let reply = call(
        &o,
        A,
        "GetLogEvents",
        json!({"logGroupName": GROUP, "logStreamName": S1, "limit": 10, "nextToken": backward.clone()}),
    )
    .await;
    assert!(messages(&reply).is_empty());
    assert_eq!(token(&reply, "nextBackwardToken"), backward, "at the start the backward token repeats");

    // The default limit returns the whole (small) stream; the group ARN works as identifier.
    let arn = format!("arn:aws:logs:us-east-1:{A}:log-group:{GROUP}:*");
    let reply = call(&o, A, "GetLogEvents", json!({"logGroupIdentifier": arn, "logStreamName": S1})).await;
    assert_eq!(messages(&reply), expected);
    let end = token(&reply, "nextForwardToken");

    // The token that ended the stream picks up what is stored later.
    ingest(&o, vec![batch(A, GROUP, S1, &[(t0 + 1000, "later")])]).await;
    let reply =
        call(&o, A, "GetLogEvents", json!({"logGroupName": GROUP, "logStreamName": S1, "nextToken": end.clone()}))
            .await;
    assert_eq!(messages(&reply), ["later"]);
    assert_ne!(token(&reply, "nextForwardToken"), end);
}

async fn get_log_events_time_window_and_late_events(store: Store) {
    let o = obs(&store);
    let t0 = 1_700_000_000_000;
    let events: Vec<(i64, String)> = (0..10).map(|i| (t0 + i * 1000, format!("m{i}"))).collect();
    let refs: Vec<(i64, &str)> = events.iter().map(|(t, m)| (*t, m.as_str())).collect();
    ingest(&o, vec![batch(A, GROUP, S1, &refs)]).await;
    // startTime inclusive, endTime exclusive.
    let reply = call(
        &o,
        A,
        "GetLogEvents",
        json!({"logGroupName": GROUP, "logStreamName": S1, "startTime": t0 + 2000, "endTime": t0 + 5000, "startFromHead": true}),
    )
    .await;
    assert_eq!(messages(&reply), ["m2", "m3", "m4"]);
    // An empty window still hands out tokens, and the forward one then repeats.
    let request = json!({"logGroupName": GROUP, "logStreamName": S1, "startTime": t0 + 20_000});
    let reply = call(&o, A, "GetLogEvents", request.clone()).await;
    assert!(messages(&reply).is_empty());
    let forward = token(&reply, "nextForwardToken");
    let mut again = request.clone();
    again["nextToken"] = json!(forward);
    let reply = call(&o, A, "GetLogEvents", again.clone()).await;
    assert_eq!(token(&reply, "nextForwardToken"), forward);
    // A late event inside the window shows up on that token.
    ingest(&o, vec![batch(A, GROUP, S1, &[(t0 + 30_000, "late")])]).await;
    let reply = call(&o, A, "GetLogEvents", again).await;
    assert_eq!(messages(&reply), ["late"]);

    // Unicode and NUL survive (NUL as U+FFFD on both engines); messages are kept verbatim.
    ingest(&o, vec![batch(A, GROUP, S2, &[(t0, "héllo ✓\n"), (t0 + 1, "a\0b")])]).await;
    let reply = call(&o, A, "GetLogEvents", json!({"logGroupName": GROUP, "logStreamName": S2})).await;
    assert_eq!(messages(&reply), ["héllo ✓\n", "a\u{fffd}b"]);
}

async fn filter_log_events_windows_streams_and_pages(store: Store) {
    let o = obs(&store);
    let t0 = 1_700_000_000_000;
    // Interleaved timestamps across three streams; S3 gets a late shipment.
    ingest(
        &o,
        vec![
            batch(A, GROUP, S1, &[(t0, "s1 a"), (t0 + 30, "s1 b"), (t0 + 60, "s1 c")]),
            batch(A, GROUP, S2, &[(t0 + 10, "s2 a"), (t0 + 40, "s2 b"), (t0 + 60, "s2 c")]),
        ],
    )
    .await;
    ingest(&o, vec![batch(A, GROUP, S3, &[(t0 + 20, "s3 a"), (t0 + 50, "s3 b")])]).await;
    let in_order = ["s1 a", "s2 a", "s3 a", "s1 b", "s2 b", "s3 b", "s1 c", "s2 c"];

    let (events, _) = filter_all(&o, A, json!({"logGroupName": GROUP, "interleaved": true})).await;
    assert_eq!(texts(&events), in_order);
    let ids: HashSet<&str> = events.iter().map(|e| e["eventId"].as_str().expect("eventId")).collect();
    assert_eq!(ids.len(), in_order.len(), "eventIds are unique");
    assert_eq!(events[0]["logStreamName"], S1);
    assert_eq!(events[1]["logStreamName"], S2);
    assert!(events.iter().all(|e| e["timestamp"].is_i64() && e["ingestionTime"].is_i64()));

    // Both ends of the window are inclusive.
    let (events, _) = filter_all(&o, A, json!({"logGroupName": GROUP, "startTime": t0 + 20, "endTime": t0 + 50})).await;
    assert_eq!(texts(&events), ["s3 a", "s1 b", "s2 b", "s3 b"]);

    // Stream names and prefixes.
    let (events, _) = filter_all(&o, A, json!({"logGroupName": GROUP, "logStreamNames": [S1, S3]})).await;
    assert_eq!(texts(&events), ["s1 a", "s3 a", "s1 b", "s3 b", "s1 c"]);
    let (events, _) = filter_all(&o, A, json!({"logGroupName": GROUP, "logStreamNamePrefix": "2024/05/02/"})).await;
    assert_eq!(texts(&events), ["s3 a", "s3 b"]);
    let (events, _) =
        filter_all(&o, A, json!({"logGroupName": GROUP, "logStreamNamePrefix": "2024/05/01/[$LATEST]"})).await;
    assert_eq!(events.len(), 6);
    let e = fail(
        &o,
        A,
        "FilterLogEvents",
        json!({"logGroupName": GROUP, "logStreamNames": [S1], "logStreamNamePrefix": "2024"}),
    )
    .await;
    assert_invalid(e, "mutually exclusive");

    // Pages of 3 cover every event once, in order; the last page has no nextToken.
    let (events, calls) = filter_all(&o, A, json!({"logGroupName": GROUP, "limit": 3})).await;
    assert_eq!(texts(&events), in_order);
    assert_eq!(calls, 3);
    let first = call(&o, A, "FilterLogEvents", json!({"logGroupName": GROUP, "limit": 3})).await;
    assert!(first["nextToken"].is_string());
    let all = call(&o, A, "FilterLogEvents", json!({"logGroupName": GROUP})).await;
    assert!(all.get("nextToken").is_none(), "no token when everything was returned: {all}");
    // eventIds are stable across calls.
    assert_eq!(first["events"][0]["eventId"], all["events"][0]["eventId"]);

    // Many events: pagination through several SQL pages and a pattern that skips most of them.
    let many: Vec<(i64, String)> = (0..2500)
        .map(|i| (t0 + 100_000 + i, if i % 100 == 7 { format!("hit {i}") } else { format!("miss {i}") }))
        .collect();
    let refs: Vec<(i64, &str)> = many.iter().map(|(t, m)| (*t, m.as_str())).collect();
    ingest(&o, vec![batch(A, GROUP, S2, &refs)]).await;
    let (events, _) = filter_all(
        &o,
        A,
        json!({"logGroupName": GROUP, "startTime": t0 + 100_000, "filterPattern": "hit", "limit": 7}),
    )
    .await;
    let expected: Vec<String> = (0..25).map(|k| format!("hit {}", k * 100 + 7)).collect();
    assert_eq!(texts(&events), expected);
    let (events, _) = filter_all(&o, A, json!({"logGroupName": GROUP, "startTime": t0 + 100_000})).await;
    assert_eq!(events.len(), 2500);
}

async fn filter_log_events_patterns(store: Store) {
    let o = obs(&store);
    let t0 = 1_700_000_000_000;
    let lines = [
        "START RequestId: 1 Version: $LATEST\n",
        "2024-05-01T00:00:00Z\t1\tERROR\tboom: timeout after 3s\n",
        "{\"level\":\"ERROR\",\"ms\":250,\"user\":{\"id\":\"u-1\"}}\n",
        "{\"level\":\"INFO\",\"ms\":12,\"user\":{\"id\":\"u-2\"}}\n",
        "{\"level\":\"WARN\",\"ms\":150}\n",
        "END RequestId: 1\n",
        "REPORT RequestId: 1\tDuration: 3.1 ms\n",
    ];
    let events: Vec<(i64, &str)> = lines.iter().enumerate().map(|(i, l)| (t0 + i as i64, *l)).collect();
    ingest(&o, vec![batch(A, GROUP, S1, &events)]).await;
    let run = |pattern: &'static str| {
        let o = o.clone();
        async move {
            let (events, _) = filter_all(&o, A, json!({"logGroupName": GROUP, "filterPattern": pattern})).await;
            events.iter().map(|e| e["timestamp"].as_i64().expect("timestamp") - t0).collect::<Vec<_>>()
        }
    };
    assert_eq!(run("").await, [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(run("ERROR").await, [1, 2]);
    assert_eq!(run("ERROR timeout").await, [1]);
    assert_eq!(run("error").await, Vec::<i64>::new(), "terms are case-sensitive");
    assert_eq!(run("\"RequestId: 1\"").await, [0, 5, 6]);
    assert_eq!(run("?START ?END").await, [0, 5]);
    assert_eq!(run("RequestId -REPORT").await, [0, 5]);
    assert_eq!(run("{ $.level = \"ERROR\" }").await, [2]);
    assert_eq!(run("{ $.ms > 100 }").await, [2, 4]);
    assert_eq!(run("{ $.ms >= 12 && $.level != \"ERROR\" }").await, [3, 4]);
    assert_eq!(run("{ ($.level = \"WARN\" || $.user.id = \"u-*\") && $.ms < 200 }").await, [3, 4]);
    assert_eq!(run("{ $.user.id NOT EXISTS }").await, [4]);
    assert_eq!(run("%Duration: [0-9.]+ ms%").await, [6]);
    for bad in ["{ $.level = ", "\"unterminated", "[ip, user]", "{ $.ms > \"x\" }"] {
        let e = fail(&o, A, "FilterLogEvents", json!({"logGroupName": GROUP, "filterPattern": bad})).await;
        match e {
            ApiError::InvalidParameterValue(m) => assert_eq!(m, "Invalid filter pattern"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

async fn follow_polls_see_late_events(store: Store) {
    let o = obs(&store);
    let t0 = now_ms() - 10_000;
    ingest(&o, vec![batch(A, GROUP, S1, &[(t0, "one"), (t0 + 100, "two")])]).await;
    // `aws logs tail --follow`: poll with startTime, follow nextToken, then poll again from the
    // newest timestamp seen, dropping eventIds already shown for that timestamp.
    let mut shown: Vec<String> = Vec::new();
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut start = t0 - 1000;
    let arn = format!("arn:aws:logs:us-east-1:{A}:log-group:{GROUP}");
    let mut poll = async |start: &mut i64, shown: &mut Vec<String>| {
        let request = json!({"logGroupIdentifier": arn, "startTime": *start, "interleaved": true});
        let (events, _) = filter_all(&o, A, request).await;
        for e in events {
            let id = e["eventId"].as_str().expect("eventId").to_owned();
            if seen_ids.insert(id) {
                shown.push(e["message"].as_str().expect("message").to_owned());
            }
            *start = (*start).max(e["timestamp"].as_i64().expect("timestamp"));
        }
    };
    poll(&mut start, &mut shown).await;
    assert_eq!(shown, ["one", "two"]);
    assert_eq!(start, t0 + 100);
    // Stored later: one at the newest timestamp seen (another stream), one after, one before it
    // (before startTime: AWS's follower misses it too).
    ingest(
        &o,
        vec![
            batch(A, GROUP, S2, &[(t0 + 100, "same millisecond"), (t0 + 50, "too late to show")]),
            batch(A, GROUP, S1, &[(t0 + 200, "three")]),
        ],
    )
    .await;
    poll(&mut start, &mut shown).await;
    assert_eq!(shown, ["one", "two", "same millisecond", "three"]);
    ingest(&o, vec![batch(A, GROUP, S1, &[(t0 + 150, "late but after the start")])]).await;
    let before = shown.len();
    poll(&mut start, &mut shown).await;
    assert_eq!(shown.len(), before, "events before the poll's startTime are not shown");
    ingest(&o, vec![batch(A, GROUP, S3, &[(t0 + 200, "late at the start")])]).await;
    poll(&mut start, &mut shown).await;
    assert_eq!(shown.last().map(String::as_str), Some("late at the start"));

    // With a filter pattern and stream names, as `aws logs tail` passes them.
    let request = json!({"logGroupName": GROUP, "startTime": t0, "filterPattern": "three", "logStreamNames": [S1]});
    let (events, _) = filter_all(&o, A, request).await;
    assert_eq!(texts(&events), ["three"]);
}

async fn groups_and_streams_are_described(store: Store) {
    let o = obs(&store);
    let before = now_ms();
    let t0 = 1_700_000_000_000;
    ingest(
        &o,
        vec![
            batch(A, GROUP, S1, &[(t0 + 5, "abc"), (t0 + 1, "de")]),
            batch(A, GROUP, S2, &[(t0 + 9, "x")]),
            batch(A, "/aws/lambda/billing", S1, &[(t0, "y")]),
        ],
    )
    .await;
    ingest(&o, vec![batch(A, GROUP, S1, &[(t0 + 3, "fghi")])]).await;
    call(&o, A, "CreateLogGroup", json!({"logGroupName": "/custom/empty"})).await;
    let e = fail(&o, A, "CreateLogGroup", json!({"logGroupName": "/custom/empty"})).await;
    assert!(matches!(e, ApiError::ResourceConflict(ref m) if m == "The specified log group already exists"), "{e:?}");

    let reply = call(&o, A, "DescribeLogGroups", json!({})).await;
    let groups = reply["logGroups"].as_array().expect("logGroups");
    let names: Vec<&str> = groups.iter().map(|g| g["logGroupName"].as_str().expect("name")).collect();
    assert_eq!(names, ["/aws/lambda/billing", GROUP, "/custom/empty"]);
    let g = &groups[1];
    assert_eq!(g["arn"], format!("arn:aws:logs:us-east-1:{A}:log-group:{GROUP}:*"));
    assert_eq!(g["logGroupArn"], format!("arn:aws:logs:us-east-1:{A}:log-group:{GROUP}"));
    assert_eq!(g["storedBytes"], 3 + 2 + 1 + 4 + 4 * 26);
    assert_eq!(g["metricFilterCount"], 0);
    assert!(g.get("retentionInDays").is_none());
    assert!(g["creationTime"].as_i64().expect("creationTime") >= before);
    assert_eq!(reply.get("nextToken"), None);

    // Prefix, pattern (case-insensitive substring) and pages.
    let reply = call(&o, A, "DescribeLogGroups", json!({"logGroupNamePrefix": "/aws/lambda/"})).await;
    assert_eq!(reply["logGroups"].as_array().expect("groups").len(), 2);
    let reply = call(&o, A, "DescribeLogGroups", json!({"logGroupNamePattern": "BILL"})).await;
    assert_eq!(reply["logGroups"][0]["logGroupName"], "/aws/lambda/billing");
    assert_eq!(reply["logGroups"].as_array().expect("groups").len(), 1);
    let page1 = call(&o, A, "DescribeLogGroups", json!({"limit": 2})).await;
    assert_eq!(page1["logGroups"].as_array().expect("groups").len(), 2);
    let page2 = call(&o, A, "DescribeLogGroups", json!({"limit": 2, "nextToken": token(&page1, "nextToken")})).await;
    assert_eq!(page2["logGroups"][0]["logGroupName"], "/custom/empty");
    assert!(page2.get("nextToken").is_none());

    // Retention shows up in DescribeLogGroups and goes away again.
    call(&o, A, "PutRetentionPolicy", json!({"logGroupName": GROUP, "retentionInDays": 14})).await;
    let reply = call(&o, A, "DescribeLogGroups", json!({"logGroupNamePrefix": GROUP})).await;
    assert_eq!(reply["logGroups"][0]["retentionInDays"], 14);
    call(&o, A, "DeleteRetentionPolicy", json!({"logGroupName": GROUP})).await;
    let reply = call(&o, A, "DescribeLogGroups", json!({"logGroupNamePrefix": GROUP})).await;
    assert!(reply["logGroups"][0].get("retentionInDays").is_none());
    let e = fail(&o, A, "PutRetentionPolicy", json!({"logGroupName": GROUP, "retentionInDays": 2})).await;
    assert_invalid(e, "Member must satisfy enum value set: [1, 3, 5, 7, 14, 30, 60, 90, 120");
    let e = fail(&o, A, "PutRetentionPolicy", json!({"logGroupName": "/nope", "retentionInDays": 1})).await;
    assert_not_found(e, "The specified log group does not exist.");

    // Streams: by name (default), counters and event times.
    let reply = call(&o, A, "DescribeLogStreams", json!({"logGroupName": GROUP})).await;
    let streams = reply["logStreams"].as_array().expect("logStreams");
    assert_eq!(streams.len(), 2);
    let s = &streams[0];
    assert_eq!(s["logStreamName"], S1);
    assert_eq!(s["firstEventTimestamp"], t0 + 1);
    assert_eq!(s["lastEventTimestamp"], t0 + 5);
    assert_eq!(s["storedBytes"], 3 + 2 + 4 + 3 * 26);
    assert!(s["lastIngestionTime"].as_i64().expect("lastIngestionTime") >= before);
    assert_eq!(s["arn"], format!("arn:aws:logs:us-east-1:{A}:log-group:{GROUP}:log-stream:{S1}"));
    // By last event time, newest first; S2's last event is the newest.
    let reply = call(
        &o,
        A,
        "DescribeLogStreams",
        json!({"logGroupIdentifier": GROUP, "orderBy": "LastEventTime", "descending": true, "limit": 1}),
    )
    .await;
    assert_eq!(reply["logStreams"][0]["logStreamName"], S2);
    let reply = call(
        &o,
        A,
        "DescribeLogStreams",
        json!({"logGroupName": GROUP, "orderBy": "LastEventTime", "descending": true, "limit": 1,
               "nextToken": token(&reply, "nextToken")}),
    )
    .await;
    assert_eq!(reply["logStreams"][0]["logStreamName"], S1);
    assert!(reply.get("nextToken").is_none());
    // Prefix and name pages, both directions.
    let reply = call(&o, A, "DescribeLogStreams", json!({"logGroupName": GROUP, "logStreamNamePrefix": S2})).await;
    assert_eq!(reply["logStreams"].as_array().expect("streams").len(), 1);
    let page = call(&o, A, "DescribeLogStreams", json!({"logGroupName": GROUP, "descending": true, "limit": 1})).await;
    assert_eq!(page["logStreams"][0]["logStreamName"], S2);
    let page = call(
        &o,
        A,
        "DescribeLogStreams",
        json!({"logGroupName": GROUP, "descending": true, "limit": 1, "nextToken": token(&page, "nextToken")}),
    )
    .await;
    assert_eq!(page["logStreams"][0]["logStreamName"], S1);
    let e = fail(
        &o,
        A,
        "DescribeLogStreams",
        json!({"logGroupName": GROUP, "orderBy": "LastEventTime", "logStreamNamePrefix": "2024"}),
    )
    .await;
    assert_invalid(e, "Cannot order by LastEventTime with a logStreamNamePrefix.");
    let e = fail(&o, A, "DescribeLogStreams", json!({"logGroupName": "/aws/lambda/none"})).await;
    assert_not_found(e, "The specified log group does not exist.");
    let reply = call(&o, A, "DescribeLogStreams", json!({"logGroupName": "/custom/empty"})).await;
    assert_eq!(reply["logStreams"], json!([]));
}

async fn stored_bytes(o: &Observability, account: &str, group: &str) -> i64 {
    let reply = call(o, account, "DescribeLogGroups", json!({"logGroupNamePrefix": group})).await;
    reply["logGroups"][0]["storedBytes"].as_i64().expect("storedBytes")
}

async fn stream_names(o: &Observability, account: &str, group: &str) -> Vec<String> {
    let reply = call(o, account, "DescribeLogStreams", json!({"logGroupName": group})).await;
    reply["logStreams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| s["logStreamName"].as_str().expect("name").to_owned())
        .collect()
}

async fn retention_and_policies(store: Store) {
    let o = obs(&store);
    let day = 86_400_000;
    let now = now_ms();
    let kept = "/aws/lambda/kept";
    let policy = "/aws/lambda/policy";
    let defaulted = "/aws/lambda/defaulted";
    for group in [kept, policy, defaulted] {
        ingest(
            &o,
            vec![
                batch(A, group, S1, &[(now - 10 * day, "old-1"), (now - 8 * day, "old-2")]),
                batch(A, group, S2, &[(now - 9 * day, "old-3"), (now - day, "new-1"), (now, "new-2")]),
            ],
        )
        .await;
    }
    call(&o, A, "PutRetentionPolicy", json!({"logGroupName": policy, "retentionInDays": 7})).await;
    call(&o, A, "PutRetentionPolicy", json!({"logGroupName": kept, "retentionInDays": 3653})).await;

    // No default retention: only the group with a (short) policy loses events.
    enforce(&o).await;
    let all = |group: &'static str| {
        let o = o.clone();
        async move { texts(&filter_all(&o, A, json!({"logGroupName": group})).await.0) }
    };
    assert_eq!(all(policy).await, ["new-1", "new-2"]);
    assert_eq!(all(kept).await, ["old-1", "old-3", "old-2", "new-1", "new-2"]);
    assert_eq!(all(defaulted).await.len(), 5);
    assert_eq!(stored_bytes(&o, A, policy).await, 2 * (5 + 26));
    // S1 lost all its events and is gone; S2 keeps its counters right.
    assert_eq!(stream_names(&o, A, policy).await, [S2]);
    let reply = call(&o, A, "DescribeLogStreams", json!({"logGroupName": policy})).await;
    assert_eq!(reply["logStreams"][0]["storedBytes"], 2 * (5 + 26));

    // A default retention applies to groups without a policy, not over a longer policy.
    let with_default = Observability::new(
        store.clone(),
        "us-east-1",
        LogLimits { default_retention_days: Some(5), ..LogLimits::default() },
    );
    enforce(&with_default).await;
    assert_eq!(all(defaulted).await, ["new-1", "new-2"]);
    assert_eq!(all(kept).await.len(), 5);
    assert_eq!(stored_bytes(&o, A, defaulted).await, 2 * (5 + 26));
    // Idempotent, and a stream that receives events again is recreated.
    enforce(&with_default).await;
    assert_eq!(all(defaulted).await.len(), 2);
    ingest(&o, vec![batch(A, defaulted, S1, &[(now, "back")])]).await;
    assert_eq!(stream_names(&o, A, defaulted).await, [S1, S2]);
    assert_eq!(stored_bytes(&o, A, defaulted).await, 2 * (5 + 26) + 4 + 26);
}

async fn size_cap_deletes_the_oldest_events_first(store: Store) {
    let now = now_ms();
    let o = obs(&store);
    // Account A: 100 events of 100 bytes (126 counted) over two groups, oldest in g1.
    let msg = "x".repeat(100);
    let g1: Vec<(i64, &str)> = (0..50).map(|i| (now - 100_000 + i * 2, msg.as_str())).collect();
    let g2: Vec<(i64, &str)> = (0..50).map(|i| (now - 100_000 + i * 2 + 1, msg.as_str())).collect();
    ingest(&o, vec![batch(A, "/aws/lambda/g1", S1, &g1), batch(A, "/aws/lambda/g2", S1, &g2)]).await;
    // Account B stays under the cap.
    ingest(&o, vec![batch(B, "/aws/lambda/g1", S1, &g1[..10])]).await;
    let cap = 126 * 30 + 50;
    let capped =
        Observability::new(store.clone(), "us-east-1", LogLimits { bytes_per_account: cap, ..LogLimits::default() });
    enforce(&capped).await;
    let total = stored_bytes(&o, A, "/aws/lambda/g1").await + stored_bytes(&o, A, "/aws/lambda/g2").await;
    assert_eq!(total, 126 * 30, "just under the cap");
    let (events, _) = filter_all(&o, A, json!({"logGroupName": "/aws/lambda/g1"})).await;
    let (events2, _) = filter_all(&o, A, json!({"logGroupName": "/aws/lambda/g2"})).await;
    assert_eq!(events.len() + events2.len(), 30);
    // The newest 30 remain: timestamps from now - 100_000 + 70 on.
    let mut ts: Vec<i64> = events.iter().chain(&events2).map(|e| e["timestamp"].as_i64().expect("ts")).collect();
    ts.sort();
    assert_eq!(ts[0], now - 100_000 + 70);
    assert_eq!(stored_bytes(&o, B, "/aws/lambda/g1").await, 126 * 10, "other accounts untouched");
    let reply = call(&o, A, "DescribeLogStreams", json!({"logGroupName": "/aws/lambda/g1"})).await;
    assert_eq!(reply["logStreams"][0]["storedBytes"], 126 * events.len() as i64);
    // Under the cap, a pass deletes nothing.
    enforce(&capped).await;
    let total = stored_bytes(&o, A, "/aws/lambda/g1").await + stored_bytes(&o, A, "/aws/lambda/g2").await;
    assert_eq!(total, 126 * 30);

    // Beyond one deletion chunk: 12,000 small events of one stream down to the newest 100.
    let many: Vec<(i64, String)> = (0..12_000).map(|i| (now - 50_000 + i, format!("{i:05}"))).collect();
    let refs: Vec<(i64, &str)> = many.iter().map(|(t, m)| (*t, m.as_str())).collect();
    ingest(&o, vec![batch(B, "/aws/lambda/big", S2, &refs)]).await;
    let tiny = Observability::new(
        store.clone(),
        "us-east-1",
        LogLimits { bytes_per_account: 31 * 100, ..LogLimits::default() },
    );
    enforce(&tiny).await;
    let (left, _) = filter_all(&o, B, json!({"logGroupName": "/aws/lambda/big"})).await;
    assert_eq!(texts(&left).first().map(String::as_str), Some("11900"));
    assert_eq!(left.len(), 100);
    assert_eq!(stored_bytes(&o, B, "/aws/lambda/g1").await, 0, "B's older group emptied first");
    assert_eq!(stream_names(&o, B, "/aws/lambda/g1").await, Vec::<String>::new());
}

async fn delete_log_group_removes_everything(store: Store) {
    let o = obs(&store);
    let t0 = now_ms();
    ingest(&o, vec![batch(A, GROUP, S1, &[(t0, "gone")]), batch(A, "/aws/lambda/other", S1, &[(t0, "stays")])]).await;
    call(&o, A, "DeleteLogGroup", json!({"logGroupName": GROUP})).await;
    let reply = call(&o, A, "DescribeLogGroups", json!({})).await;
    assert_eq!(reply["logGroups"].as_array().expect("groups").len(), 1);
    let group_missing = "The specified log group does not exist.";
    assert_not_found(fail(&o, A, "DeleteLogGroup", json!({"logGroupName": GROUP})).await, group_missing);
    assert_not_found(
        fail(&o, A, "GetLogEvents", json!({"logGroupName": GROUP, "logStreamName": S1})).await,
        group_missing,
    );
    assert_not_found(fail(&o, A, "FilterLogEvents", json!({"logGroupName": GROUP})).await, group_missing);
    assert_not_found(fail(&o, A, "DescribeLogStreams", json!({"logGroupName": GROUP})).await, group_missing);
    // The next invocation's logs recreate the group, without the old events.
    ingest(&o, vec![batch(A, GROUP, S1, &[(t0 + 1, "new")])]).await;
    let (events, _) = filter_all(&o, A, json!({"logGroupName": GROUP})).await;
    assert_eq!(texts(&events), ["new"]);
    assert_eq!(stored_bytes(&o, A, GROUP).await, 3 + 26);
    let (events, _) = filter_all(&o, A, json!({"logGroupName": "/aws/lambda/other"})).await;
    assert_eq!(texts(&events), ["stays"]);
}

async fn tenants_are_isolated(store: Store) {
    let o = obs(&store);
    let t0 = now_ms();
    ingest(&o, vec![batch(A, GROUP, S1, &[(t0, "from A")]), batch(B, GROUP, S1, &[(t0, "from B")])]).await;
    ingest(&o, vec![batch(B, "/aws/lambda/only-b", S2, &[(t0, "b only")])]).await;
    for (account, mine) in [(A, "from A"), (B, "from B")] {
        let (events, _) = filter_all(&o, account, json!({"logGroupName": GROUP})).await;
        assert_eq!(texts(&events), [mine]);
        let reply = call(&o, account, "GetLogEvents", json!({"logGroupName": GROUP, "logStreamName": S1})).await;
        assert_eq!(messages(&reply), [mine]);
        let reply = call(&o, account, "DescribeLogStreams", json!({"logGroupName": GROUP})).await;
        assert_eq!(reply["logStreams"].as_array().expect("streams").len(), 1);
    }
    let reply = call(&o, A, "DescribeLogGroups", json!({})).await;
    assert_eq!(reply["logGroups"].as_array().expect("groups").len(), 1);
    let missing = "The specified log group does not exist.";
    assert_not_found(fail(&o, A, "FilterLogEvents", json!({"logGroupName": "/aws/lambda/only-b"})).await, missing);
    assert_not_found(
        fail(&o, A, "GetLogEvents", json!({"logGroupName": "/aws/lambda/only-b", "logStreamName": S2})).await,
        missing,
    );
    // B's ARN does not reach B's group from A.
    let b_arn = format!("arn:aws:logs:us-east-1:{B}:log-group:{GROUP}:*");
    assert_not_found(fail(&o, A, "FilterLogEvents", json!({"logGroupIdentifier": b_arn})).await, missing);
    // A's deletion and retention leave B's group alone.
    call(&o, A, "PutRetentionPolicy", json!({"logGroupName": GROUP, "retentionInDays": 1})).await;
    let reply = call(&o, B, "DescribeLogGroups", json!({"logGroupNamePrefix": GROUP})).await;
    assert!(reply["logGroups"][0].get("retentionInDays").is_none());
    call(&o, A, "DeleteLogGroup", json!({"logGroupName": GROUP})).await;
    let (events, _) = filter_all(&o, B, json!({"logGroupName": GROUP})).await;
    assert_eq!(texts(&events), ["from B"]);
}

async fn requests_are_validated(store: Store) {
    let o = obs(&store);
    ingest(&o, vec![batch(A, GROUP, S1, &[(now_ms(), "x")])]).await;
    let e = fail(&o, A, "DescribeLogGroups", json!({"limit": 0})).await;
    match e {
        ApiError::InvalidParameterValue(m) => assert_eq!(
            m,
            "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: \
             Member must have value greater than or equal to 1"
        ),
        other => panic!("{other:?}"),
    }
    assert_invalid(
        fail(&o, A, "DescribeLogGroups", json!({"limit": 51})).await,
        "Member must have value less than or equal to 50",
    );
    assert_invalid(
        fail(&o, A, "DescribeLogStreams", json!({"logGroupName": GROUP, "limit": 51})).await,
        "Value '51' at 'limit'",
    );
    assert_invalid(
        fail(&o, A, "GetLogEvents", json!({"logGroupName": GROUP, "logStreamName": S1, "limit": 10_001})).await,
        "Member must have value less than or equal to 10000",
    );
    assert_invalid(
        fail(&o, A, "FilterLogEvents", json!({"logGroupName": GROUP, "limit": 0})).await,
        "Member must have value greater than or equal to 1",
    );
    call(&o, A, "FilterLogEvents", json!({"logGroupName": GROUP, "limit": 10_000})).await;
    assert_invalid(
        fail(&o, A, "GetLogEvents", json!({"logGroupName": GROUP})).await,
        "Value null at 'logStreamName' failed to satisfy constraint: Member must not be null",
    );
    assert_not_found(
        fail(&o, A, "GetLogEvents", json!({"logGroupName": GROUP, "logStreamName": "nope"})).await,
        "The specified log stream does not exist.",
    );
    assert_not_found(
        fail(&o, A, "GetLogEvents", json!({"logGroupName": "/aws/lambda/nope", "logStreamName": "nope"})).await,
        "The specified log group does not exist.",
    );
    assert_invalid(
        fail(&o, A, "GetLogEvents", json!({"logGroupName": GROUP, "logStreamName": S1, "nextToken": "x/1"})).await,
        "nextToken",
    );
    assert_invalid(
        fail(&o, A, "FilterLogEvents", json!({"logGroupName": GROUP, "nextToken": "%%"})).await,
        "nextToken",
    );
    assert_invalid(
        fail(&o, A, "FilterLogEvents", json!({"logGroupName": GROUP, "logGroupIdentifier": GROUP})).await,
        "mutually exclusive",
    );
    assert_invalid(fail(&o, A, "FilterLogEvents", json!({})).await, "logGroupIdentifier");
    assert_invalid(
        fail(&o, A, "FilterLogEvents", json!({"logGroupName": GROUP, "logStreamNames": []})).await,
        "Member must have length greater than or equal to 1",
    );
    assert_invalid(
        fail(&o, A, "DescribeLogGroups", json!({"logGroupNamePrefix": "/a", "logGroupNamePattern": "a"})).await,
        "mutually exclusive",
    );
    assert_invalid(
        fail(&o, A, "CreateLogGroup", json!({"logGroupName": "bad name"})).await,
        "Member must satisfy regular expression pattern",
    );
    assert_invalid(fail(&o, A, "DeleteLogGroup", json!({})).await, "Value null at 'logGroupName'");
    assert_invalid(
        fail(&o, A, "DescribeLogStreams", json!({"logGroupName": GROUP, "orderBy": "Size"})).await,
        "Member must satisfy enum value set: [LogStreamName, LastEventTime]",
    );
    assert_invalid(
        fail(&o, A, "GetLogEvents", json!({"logGroupName": GROUP, "logStreamName": S1, "startTime": -1})).await,
        "at 'startTime'",
    );
}

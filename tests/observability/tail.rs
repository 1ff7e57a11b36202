//! `aws logs tail /aws/lambda/NAME --follow` (CLI v2, not installable here) replayed request for
//! request: its FilterLogEvents body (`logGroupName`, `interleaved: true`, `startTime` in epoch
//! milliseconds from `--since 10m`, then `nextToken` while one comes back), and its bookkeeping
//! (awscli/customizations/logs/tail.py, `FollowLogEventsGenerator`): once a poll ends without a
//! token, the next starts at the newest timestamp seen, so events of that millisecond come back
//! again and are dropped by `eventId`. New invocations must show up in later polls, each line once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use lamina_tests::{Tenant, TestEnv, create_python};
use serde_json::{Value, json};

use super::{PRINTER, invoke, logs_call, now_ms};

lamina_tests::backend_tests!(tail_follow_sees_new_events_once);

/// The state `FollowLogEventsGenerator` keeps between its FilterLogEvents calls.
struct Follow {
    kwargs: serde_json::Map<String, Value>,
    event_ids_per_timestamp: HashMap<i64, HashSet<String>>,
    /// Messages yielded to the terminal, in order.
    shown: Vec<String>,
    /// Events the server sent again and the CLI dropped (the newest millisecond, re-read).
    repeated: usize,
    /// Requests that started at the newest timestamp seen.
    restarts: usize,
}

impl Follow {
    fn new(group: &str, since_ms: i64) -> Self {
        let kwargs = json!({ "logGroupName": group, "interleaved": true, "startTime": since_ms });
        let Value::Object(kwargs) = kwargs else { unreachable!("an object literal") };
        Self { kwargs, event_ids_per_timestamp: HashMap::new(), shown: Vec::new(), repeated: 0, restarts: 0 }
    }

    /// One turn of the CLI's loop: a FilterLogEvents call and what it does with the answer.
    async fn poll(&mut self, env: &TestEnv, t: &Tenant) {
        let answer = logs_call(env, t, "FilterLogEvents", &Value::Object(self.kwargs.clone())).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let response = answer.json();
        for event in response["events"].as_array().expect("events") {
            let timestamp = event["timestamp"].as_i64().expect("timestamp");
            let id = event["eventId"].as_str().expect("eventId").to_owned();
            assert!(event["ingestionTime"].is_i64() && event["logStreamName"].is_string(), "{event}");
            if self.event_ids_per_timestamp.entry(timestamp).or_default().insert(id) {
                self.shown.push(event["message"].as_str().expect("message").trim_end().to_owned());
            } else {
                self.repeated += 1;
            }
        }
        // Keep only the ids of the newest timestamp.
        if let Some(&newest) = self.event_ids_per_timestamp.keys().max() {
            self.event_ids_per_timestamp.retain(|&ts, _| ts == newest);
        }
        match response.get("nextToken").and_then(Value::as_str) {
            Some(token) => {
                self.kwargs.insert("nextToken".into(), Value::from(token));
            }
            None => {
                if let Some(&newest) = self.event_ids_per_timestamp.keys().max() {
                    self.kwargs.insert("startTime".into(), Value::from(newest));
                    self.restarts += 1;
                }
                self.kwargs.remove("nextToken");
                // The CLI sleeps 5 s here; the requests are the same with a shorter pause.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Polls until a shown line starts with `prefix`.
    async fn until_shown(&mut self, env: &TestEnv, t: &Tenant, prefix: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.shown.iter().any(|m| m.starts_with(prefix)) {
            assert!(tokio::time::Instant::now() < deadline, "tail never showed {prefix:?}; shown: {:?}", self.shown);
            self.poll(env, t).await;
        }
    }
}

/// START .. REPORT of one invocation of [`PRINTER`] with `n: 2`.
fn expected(id: &str, tag: &str) -> Vec<String> {
    vec![
        format!("START RequestId: {id} Version: $LATEST"),
        format!("line 0 {tag}"),
        format!("line 1 {tag}"),
        format!("END RequestId: {id}"),
        format!("REPORT RequestId: {id}"),
    ]
}

async fn tail_follow_sees_new_events_once(env: &TestEnv) {
    let t = env.tenant().await;
    let lambda = env.lambda(&t);
    create_python(&lambda, "tailed", PRINTER).send().await.expect("create");
    let (first, _) = invoke(&lambda, "tailed", r#"{"tag": "one", "n": 2}"#).await;

    // The CLI fails on a group that does not exist (yet): a user tails one that does.
    let client = super::logs(env, &t);
    lamina_tests::wait_until(Duration::from_secs(5), "the log group", || async {
        let groups = client.describe_log_groups().log_group_name_prefix("/aws/lambda/tailed").send().await.ok()?;
        (!groups.log_groups().is_empty()).then_some(())
    })
    .await;
    // `--since 10m` (the default).
    let mut follow = Follow::new("/aws/lambda/tailed", now_ms() - 10 * 60 * 1000);
    follow.until_shown(env, &t, &format!("REPORT RequestId: {first}")).await;
    // Polls with nothing new show nothing, however often the newest millisecond comes back.
    for _ in 0..3 {
        follow.poll(env, &t).await;
    }
    assert_eq!(follow.shown.len(), 5, "{:?}", follow.shown);

    let (second, _) = invoke(&lambda, "tailed", r#"{"tag": "two", "n": 2}"#).await;
    follow.until_shown(env, &t, &format!("REPORT RequestId: {second}")).await;
    let (third, _) = invoke(&lambda, "tailed", r#"{"tag": "three", "n": 2}"#).await;
    follow.until_shown(env, &t, &format!("REPORT RequestId: {third}")).await;

    let mut want = expected(&first, "one");
    want.extend(expected(&second, "two"));
    want.extend(expected(&third, "three"));
    let shown: Vec<String> = follow
        .shown
        .iter()
        .map(|m| if m.starts_with("REPORT ") { m.split('\t').next().unwrap_or_default().to_owned() } else { m.clone() })
        .collect();
    assert_eq!(shown, want, "every line once, in order");
    assert!(follow.restarts >= 3, "later polls start at the newest timestamp seen");
    // startTime is inclusive: the newest millisecond's events came back and were dropped by id.
    assert!(follow.repeated >= 3, "re-read events: {}", follow.repeated);
}

//! Rules firing: only where the function's policy lets the rule invoke it, with the guide's
//! scheduled event (or the target's constant Input), once per tick, across a scheduler outage and
//! across two scheduler replicas.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_eventbridge::types::Target;
use lamina_tests::{Backend, ClusterOptions, Tenant, TestEnv, backend_tests, wait_until};
use serde_json::{Value, json};

use crate::{allow_rule, events, now_ms, recorded, recorder, rule_arn, tick_done, timing};

backend_tests!(the_policy_decides_and_events_have_the_guide_shape);

fn target(id: &str, arn: &str) -> Target {
    Target::builder().id(id).arn(arn).build().expect("target")
}

/// Creates `rule` (`rate(1 minute)`) with `targets`; returns the time the targets were put (the
/// rule's first tick is then, at the latest).
async fn minutely(env: &TestEnv, t: &Tenant, rule: &str, targets: Vec<Target>) -> i64 {
    let ev = events(env, t);
    ev.put_rule().name(rule).schedule_expression("rate(1 minute)").send().await.expect("put rule");
    let out = ev.put_targets().rule(rule).set_targets(Some(targets)).send().await.expect("put targets");
    assert_eq!(out.failed_entry_count(), 0, "{:?}", out.failed_entries());
    now_ms()
}

/// Waits until `function` has logged `n` events and nothing is left to run; returns them all.
async fn await_events(env: &TestEnv, t: &Tenant, function: &str, n: usize, within: Duration) -> Vec<Value> {
    wait_until(within, &format!("{n} scheduled events"), || async {
        let got = recorded(env, t, function).await;
        (got.len() >= n && env.pending_events().await == 0).then_some(got)
    })
    .await
}

/// A scheduled event's `time` as epoch seconds.
fn seconds(event: &Value) -> i64 {
    let time = event["time"].as_str().expect("time");
    assert!(time.ends_with('Z') && time.len() == 20, "RFC 3339 UTC to the second: {time}");
    chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339").timestamp()
}

async fn the_policy_decides_and_events_have_the_guide_shape(env: &TestEnv) {
    let t = env.tenant().await;
    let function = recorder(env, &t, "recorder").await;
    allow_rule(env, &t, "recorder", "allowed").await;

    // Without a statement for this rule (there is one for another rule), the tick passes unfired.
    let since = minutely(env, &t, "denied", vec![target("f", &function)]).await;
    tick_done(env, &t, "denied", since).await;
    assert_eq!(env.pending_events().await, 0, "nothing was queued");
    assert!(recorded(env, &t, "recorder").await.is_empty(), "the function did not run");

    // With it, the rule fires at once (a new rate schedule's first tick), each target once: the
    // scheduled event, and the constant Input as given.
    let input = r#"{"constant": true, "n": 1}"#;
    let constant = Target::builder().id("constant").arn(&function).input(input).build().expect("target");
    let put_at = minutely(env, &t, "allowed", vec![target("event", &function), constant]).await;
    let got = await_events(env, &t, "recorder", 2, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&serde_json::from_str(input).expect("json")), "{got:?}");
    let event = got.iter().find(|e| e.get("source").is_some()).expect("the scheduled event");
    let arn = rule_arn(env, &t, "allowed");
    assert_eq!(event["version"], "0");
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
    assert_eq!(event["account"], t.account_id.as_str());
    assert_eq!(event["region"], env.region.as_str());
    assert_eq!(event["resources"], json!([arn]));
    assert_eq!(event["detail"], json!({}));
    let id = event["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "a UUID: {id}");
    let fired = seconds(event);
    assert!(
        (put_at / 1000 - 10..=put_at / 1000 + 1).contains(&fired),
        "the tick is the first one: {fired} vs {put_at}"
    );
    let keys: Vec<&str> = event.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 9, "exactly the guide's members and version: {keys:?}");

    // The 2016 guide's form, `--principal <account id>`, is accepted too.
    env.lambda(&t)
        .add_permission()
        .function_name("recorder")
        .statement_id("by-account")
        .action("lambda:InvokeFunction")
        .principal(&t.account_id)
        .source_arn(rule_arn(env, &t, "by-account"))
        .send()
        .await
        .expect("add permission");
    minutely(env, &t, "by-account", vec![target("f", &function)]).await;
    let got = await_events(env, &t, "recorder", 3, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[2]["resources"], json!([rule_arn(env, &t, "by-account")]));

    // Another tenant's rule of the same name targeting this function is another rule ARN (and
    // account): the policy does not let it in.
    let other = env.tenant().await;
    let since = minutely(env, &other, "allowed", vec![target("f", &function)]).await;
    tick_done(env, &other, "allowed", since).await;
    assert_eq!(env.pending_events().await, 0);
    assert_eq!(recorded(env, &t, "recorder").await.len(), 3, "the other tenant's rule did not invoke it");
}

/// `rate(1 minute)` over two minutes with the scheduler down across the second tick: three
/// firings in all, the missed tick fired once when the scheduler is back, the third on time.
async fn firings_count_across_an_outage(backend: Backend) {
    let env = TestEnv::start(backend).await.expect("server");
    let t = env.tenant().await;
    let function = recorder(&env, &t, "counter").await;
    allow_rule(&env, &t, "counter", "minutely").await;
    minutely(&env, &t, "minutely", vec![target("f", &function)]).await;
    let first = await_events(&env, &t, "counter", 1, Duration::from_secs(60)).await;
    let t0 = seconds(&first[0]);
    tick_done(&env, &t, "minutely", t0 * 1000 + 999).await;
    let (next, _) = timing(&env, &t, "minutely").await;
    let second_tick_ms = next.expect("a next tick");
    assert_eq!(second_tick_ms / 1000, t0 + 60);

    // The scheduler stops (the API stays up) until the second tick is 5 s overdue.
    let env = env.restart(|o| o.async_worker = false).await;
    wait_until(Duration::from_secs(90), "the second tick to pass", || async {
        (now_ms() > second_tick_ms + 5_000).then_some(())
    })
    .await;
    assert_eq!(timing(&env, &t, "minutely").await.0, Some(second_tick_ms), "nothing fired during the outage");
    let env = env.restart(|o| o.async_worker = true).await;
    // Logs live in the execution host: the events of this process only from here on.
    let rest = await_events(&env, &t, "counter", 2, Duration::from_secs(90)).await;
    let all: Vec<&Value> = first.iter().chain(rest.iter()).collect();
    let times: Vec<i64> = all.iter().map(|e| seconds(e) - t0).collect();
    assert_eq!(times, [0, 60, 120], "{all:?}");
    let ids: std::collections::BTreeSet<&str> = all.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 3);
    // The third tick is done and nothing else was queued.
    tick_done(&env, &t, "minutely", (t0 + 120) * 1000).await;
    assert_eq!(env.pending_events().await, 0);
    assert_eq!(recorded(&env, &t, "counter").await.len(), 2);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firings_count_across_an_outage_sqlite() {
    firings_count_across_an_outage(Backend::Sqlite).await;
}

/// Twelve `rate(1 minute)` rules in a cluster whose two async-queue processes both run the
/// scheduler: every rule fires once per tick over two ticks, never twice.
async fn two_schedulers_fire_each_tick_once(layout: ClusterOptions) {
    let Some(env) = TestEnv::start_cluster(&layout).await else { return };
    let replicas = env.server.cluster_children("async-queue").len();
    assert_eq!(replicas, 2, "two async-queue processes run the scheduler");
    let t = env.tenant().await;
    let function = recorder(&env, &t, "counter").await;
    let rules: Vec<String> = (0..12).map(|i| format!("r{i:02}")).collect();
    for rule in &rules {
        allow_rule(&env, &t, "counter", rule).await;
    }
    for rule in &rules {
        minutely(&env, &t, rule, vec![target("f", &function)]).await;
    }
    let first = await_events(&env, &t, "counter", rules.len(), Duration::from_secs(60)).await;
    let got = await_events(&env, &t, "counter", 2 * rules.len(), Duration::from_secs(100)).await;
    for rule in &rules {
        tick_done(&env, &t, rule, now_ms()).await;
    }
    let got_after = recorded(&env, &t, "counter").await;
    assert_eq!(got_after.len(), got.len(), "no third firing before the third tick");
    let mut per_rule: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in &got {
        per_rule.entry(e["resources"][0].as_str().expect("rule").to_owned()).or_default().push(seconds(e));
    }
    assert_eq!(per_rule.len(), rules.len(), "{first:?}");
    for (rule, mut times) in per_rule {
        times.sort_unstable();
        assert_eq!(times.len(), 2, "{rule} fired {times:?}");
        assert_eq!(times[1] - times[0], 60, "{rule} fired {times:?}");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_fire_each_tick_once_cluster() {
    let layout = ClusterOptions { extra_args: vec!["--queues=2".into()], ..ClusterOptions::default() };
    two_schedulers_fire_each_tick_once(layout).await;
}

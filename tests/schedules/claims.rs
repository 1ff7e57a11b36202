//! The claim protocol on each database engine, raced by several replicas at once (the server's own
//! scheduler is off; the test is the replicas).

use std::collections::BTreeSet;

use aws_sdk_eventbridge::types::Target;
use lamina_event_sources::EventSources;
use lamina_event_sources::rules::Firing;
use lamina_tests::{Backend, TestEnv};

use crate::{events, now_ms};

async fn racing_replicas_claim_each_tick_once(backend: Backend) {
    let Some(env) = TestEnv::start_with(backend, |o| o.async_worker = false).await else { return };
    let t = env.tenant().await;
    let ev = events(&env, &t);
    let function = format!("arn:aws:lambda:{}:{}:function:f", env.region, t.account_id);
    for i in 0..40 {
        let name = format!("r{i:02}");
        ev.put_rule().name(&name).schedule_expression("rate(1 minute)").send().await.expect("put rule");
        let target = Target::builder().id("t").arn(&function).build().expect("target");
        ev.put_targets().rule(&name).targets(target).send().await.expect("put targets");
    }
    let sources = EventSources::new(env.server.metadata.store().clone(), env.region.clone());
    let now = now_ms();
    // Four replicas claim in small batches and complete what they claimed, all at once.
    let replicas: Vec<_> = (0..4)
        .map(|r| {
            let sources = sources.clone();
            tokio::spawn(async move {
                let owner = format!("replica-{r}");
                let mut fired: Vec<Firing> = Vec::new();
                loop {
                    let batch = sources.claim_due(now, &owner, 30_000, 3).await.expect("claim");
                    if batch.is_empty() {
                        break fired;
                    }
                    for firing in batch {
                        assert!(sources.complete_firing(&firing, &owner, now).await.expect("complete"));
                        fired.push(firing);
                    }
                }
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for replica in replicas {
        let fired = replica.await.expect("replica");
        total += fired.len();
        seen.extend(fired.into_iter().map(|f| (f.rule_name, f.tick)));
    }
    assert_eq!((total, seen.len()), (40, 40), "every rule's tick fired once: {seen:?}");
    assert!(sources.claim_due(now, "late", 30_000, 100).await.expect("claim").is_empty(), "nothing left due");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_replicas_claim_each_tick_once_sqlite() {
    racing_replicas_claim_each_tick_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_replicas_claim_each_tick_once_postgres() {
    racing_replicas_claim_each_tick_once(Backend::Postgres).await;
}

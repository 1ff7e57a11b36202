//! The scheduler: fires due rules, exactly once per tick across replicas.
//!
//! Every second it claims the rules whose tick is due (see [`crate::rules::Firing`] and the claim
//! protocol in `rules/claims.rs`), and for each target of each claimed rule puts an Event
//! invocation on the durable async queue, if the function's resource policy lets
//! `events.amazonaws.com` (or, as in the 2016 guide, the rule's account) invoke it with the rule as
//! `SourceArn`. Then it completes the firing. The request id of each invocation derives from the
//! rule ARN, the tick and the target id, so a tick fired again after a crash is the same event.

use std::time::Duration;

use bytes::Bytes;
use lamina_async_queue::QueueClient;
use lamina_common::policy::{Caller, RequestContext, allows};
use lamina_common::time::now_ms;
use lamina_metadata::MetadataClient;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::EventSourcesClient;
use crate::rules::Firing;
use crate::rules::validate::function_target;

/// The principal EventBridge invokes functions as.
pub const EVENTS_PRINCIPAL: &str = "events.amazonaws.com";
/// Scheduled events put on the queue.
pub const FIRINGS_TOTAL: &str = "lamina_schedule_firings_total";
/// Targets not invoked because the function's policy does not allow the rule.
pub const DENIED_TOTAL: &str = "lamina_schedule_denied_total";

/// How often due rules are looked for (the schedules' precision is one minute).
const POLL: Duration = Duration::from_secs(1);
/// How long a claimed rule stays claimed: firing it takes a policy read and an enqueue per target.
const LEASE_MS: i64 = 30_000;
/// Rules claimed at a time.
const BATCH: i64 = 100;

/// Runs the scheduler until `shutdown`.
pub async fn run(
    client: EventSourcesClient,
    metadata: MetadataClient,
    queue: QueueClient,
    owner: String,
    region: String,
    shutdown: CancellationToken,
) {
    metrics::describe_counter!(FIRINGS_TOTAL, "Scheduled events put on the async queue for rule targets");
    metrics::describe_counter!(DENIED_TOTAL, "Rule targets not invoked: the function's policy does not allow the rule");
    let scheduler = Scheduler { client, metadata, queue, owner, region };
    tracing::info!(owner = %scheduler.owner, "scheduler started");
    // Ticks this owner's previous process claimed and did not complete are fired now, not after
    // their lease (the owner name survives restarts).
    match scheduler.client.release_rule_claims(&scheduler.owner).await {
        Ok(0) => {}
        Ok(freed) => tracing::info!(freed, "took back the rule claims of this scheduler's previous run"),
        Err(e) => tracing::warn!("release this scheduler's previous rule claims (they expire by themselves): {e:#}"),
    }
    loop {
        let full = scheduler.round().await;
        if !full {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(POLL) => {}
            }
        } else if shutdown.is_cancelled() {
            break;
        }
    }
}

struct Scheduler {
    client: EventSourcesClient,
    metadata: MetadataClient,
    queue: QueueClient,
    owner: String,
    region: String,
}

/// Why a target was not invoked this tick.
enum Skip {
    /// Not now, not later: a foreign ARN or a policy that does not allow the rule.
    Refused,
    /// Metadata or the queue failed: the tick is fired again once the claim expires.
    Retry(String),
}

impl Scheduler {
    /// Claims and fires one batch; `true` when the batch was full (more may be due).
    async fn round(&self) -> bool {
        let firings = match self.client.claim_due_rules(now_ms(), &self.owner, LEASE_MS, BATCH).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("claim due rules: {e:#}");
                return false;
            }
        };
        let full = firings.len() as i64 >= BATCH;
        for firing in firings {
            self.fire(&firing).await;
        }
        full
    }

    async fn fire(&self, firing: &Firing) {
        let mut retry = None;
        for target in &firing.targets {
            match self.deliver(firing, &target.id, &target.arn, target.input.as_deref()).await {
                Ok(()) => metrics::counter!(FIRINGS_TOTAL).increment(1),
                Err(Skip::Refused) => {}
                Err(Skip::Retry(reason)) => retry = Some(reason),
            }
        }
        if let Some(reason) = retry {
            // The claim runs out and the tick is fired again, with the same request ids.
            tracing::warn!(rule = %firing.rule_arn, tick = firing.tick, "firing a rule failed, retried after its lease: {reason}");
            return;
        }
        match self.client.complete_rule_firing(firing, &self.owner, now_ms()).await {
            Ok(true) => {}
            Ok(false) => tracing::info!(rule = %firing.rule_arn, "rule changed or was claimed again while firing"),
            Err(e) => tracing::warn!(rule = %firing.rule_arn, "complete a rule firing: {e:#}"),
        }
    }

    async fn deliver(&self, firing: &Firing, target_id: &str, arn: &str, input: Option<&str>) -> Result<(), Skip> {
        let Some(f) = function_target(arn).filter(|f| f.region == self.region) else {
            tracing::info!(rule = %firing.rule_arn, target = %arn, "rule target is not a function of this region; skipped");
            return Err(Skip::Refused);
        };
        let policy = self
            .metadata
            .get_policy(&f.account_id, &f.name, f.qualifier.as_deref().unwrap_or_default())
            .await
            .map_err(|e| Skip::Retry(format!("read the policy of {arn}: {e:#}")))?;
        let allowed = policy.is_some_and(|p| {
            let request = |caller| RequestContext {
                caller,
                action: "lambda:InvokeFunction".to_owned(),
                resource: arn.to_owned(),
                source_arn: Some(firing.rule_arn.clone()),
                source_account: Some(firing.account_id.clone()),
                event_source_token: None,
            };
            allows(&p.statements, &request(Caller::Service(EVENTS_PRINCIPAL.to_owned())))
                || allows(&p.statements, &request(Caller::Account(firing.account_id.clone())))
        });
        if !allowed {
            metrics::counter!(DENIED_TOTAL).increment(1);
            tracing::info!(rule = %firing.rule_arn, function = %arn,
                "the function's policy does not let the rule invoke it (lambda add-permission --principal events.amazonaws.com --source-arn <rule ARN>); not invoked");
            return Err(Skip::Refused);
        }
        let payload = match input {
            Some(constant) => Bytes::from(constant.to_owned()),
            None => Bytes::from(scheduled_event(firing, &self.region).to_string()),
        };
        let request_id = derived_uuid(&[&firing.rule_arn, &firing.tick.to_string(), target_id]);
        self.queue
            .enqueue(&request_id, &f.account_id, &f.name, f.qualifier.as_deref(), &payload)
            .await
            .map_err(|e| Skip::Retry(format!("enqueue for {arn}: {e:#}")))
    }
}

/// The guide's scheduled event (one per tick: every target of the tick gets the same `id`).
pub fn scheduled_event(firing: &Firing, region: &str) -> serde_json::Value {
    let time = chrono::DateTime::from_timestamp_millis(firing.tick)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    serde_json::json!({
        "version": "0",
        "id": derived_uuid(&[&firing.rule_arn, &firing.tick.to_string()]),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": firing.account_id,
        "time": time,
        "region": region,
        "resources": [firing.rule_arn],
        "detail": {},
    })
}

/// A UUID (version-4 shaped) that is a function of `parts`.
fn derived_uuid(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Firing;

    #[test]
    fn scheduled_events_have_the_guide_shape_and_stable_ids() {
        let firing = Firing {
            account_id: "123456789012".into(),
            rule_name: "my-schedule".into(),
            rule_arn: "arn:aws:events:us-east-1:123456789012:rule/my-schedule".into(),
            schedule_expression: "rate(1 minute)".into(),
            tick: 1_700_000_000_123,
            targets: vec![],
        };
        let event = scheduled_event(&firing, "us-east-1");
        assert_eq!(event["version"], "0");
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["source"], "aws.events");
        assert_eq!(event["account"], "123456789012");
        assert_eq!(event["time"], "2023-11-14T22:13:20Z");
        assert_eq!(event["region"], "us-east-1");
        assert_eq!(event["resources"], serde_json::json!(["arn:aws:events:us-east-1:123456789012:rule/my-schedule"]));
        assert_eq!(event["detail"], serde_json::json!({}));
        assert_eq!(event, scheduled_event(&firing, "us-east-1"), "the same tick is the same event");
        let id = event["id"].as_str().expect("id");
        assert_eq!(uuid::Uuid::parse_str(id).expect("uuid").get_version_num(), 4);
        let next = Firing { tick: firing.tick + 60_000, ..firing.clone() };
        assert_ne!(scheduled_event(&next, "us-east-1")["id"], event["id"]);
        assert_ne!(derived_uuid(&["a", "bc"]), derived_uuid(&["ab", "c"]));
    }
}

//! Exactly one firing per tick across scheduler replicas.
//!
//! A due rule (enabled, `next_fire_at <= now`) is claimed with one conditional update that also
//! requires the rule to be unclaimed or its claim expired: of replicas racing for it, one update
//! matches and the others see the row already claimed. The claimant fires the tick, then completes
//! it: `next_fire_at` moves to the first tick after now and the claim is cleared, only if the
//! claim is still its own. A claimant that dies leaves its claim to expire (the lease; a replica
//! restarted under the same owner name releases its old claims at once), and the tick is fired
//! again by whoever claims it next, with the same request ids (they derive from the
//! rule, the tick and the target), so the queue stores it once.
//!
//! Ticks missed while no scheduler ran (an outage longer than the period) are fired once: the
//! first missed tick is due, is fired late with its own time, and completing it moves the rule to
//! the first tick after now.

use anyhow::Context as _;
use lamina_common::ApiResult;
use lamina_metadata::on_pool;
use serde::{Deserialize, Serialize};

use crate::EventSources;
use crate::schedule::Schedule;

/// One tick of one rule to fire, with the rule's targets at claim time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firing {
    pub account_id: String,
    pub rule_name: String,
    pub rule_arn: String,
    pub schedule_expression: String,
    /// The tick, epoch milliseconds (the rule's `next_fire_at` when claimed).
    pub tick: i64,
    pub targets: Vec<FiringTarget>,
}

/// A target of a fired rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiringTarget {
    pub id: String,
    pub arn: String,
    /// The constant JSON sent instead of the scheduled event.
    pub input: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Claimed {
    account_id: String,
    name: String,
    arn: String,
    schedule_expression: String,
    next_fire_at: i64,
}

impl EventSources {
    /// Leases up to `limit` due rules to `owner` until `now_ms + lease_ms`, oldest tick first.
    pub async fn claim_due(&self, now_ms: i64, owner: &str, lease_ms: i64, limit: i64) -> ApiResult<Vec<Firing>> {
        let due = "state = 'ENABLED' and schedule_expression is not null and next_fire_at <= $3 \
                   and (claimed_by is null or claimed_until <= $3)";
        let sql = sqlx::AssertSqlSafe(format!(
            "update event_rules set claimed_by = $1, claimed_until = $2 \
             where {due} and (account_id, name) in \
               (select account_id, name from event_rules where {due} order by next_fire_at limit $4) \
             returning account_id, name, arn, schedule_expression, next_fire_at"
        ));
        let claimed: Vec<Claimed> = on_pool!(&self.store, pool => sqlx::query_as(sql)
            .bind(owner).bind(now_ms.saturating_add(lease_ms)).bind(now_ms).bind(limit)
            .fetch_all(pool).await)
        .context("claim due rules")?;
        let mut firings = Vec::with_capacity(claimed.len());
        for c in claimed {
            let sql = "select target_id, arn, input from event_rule_targets \
                       where account_id = $1 and rule_name = $2 order by target_id";
            let targets: Vec<(String, String, Option<String>)> = on_pool!(&self.store, pool => sqlx::query_as(sql)
                .bind(&c.account_id).bind(&c.name)
                .fetch_all(pool).await)
            .context("read rule targets")?;
            firings.push(Firing {
                account_id: c.account_id,
                rule_name: c.name,
                rule_arn: c.arn,
                schedule_expression: c.schedule_expression,
                tick: c.next_fire_at,
                targets: targets.into_iter().map(|(id, arn, input)| FiringTarget { id, arn, input }).collect(),
            });
        }
        firings.sort_by_key(|f| f.tick);
        Ok(firings)
    }

    /// Frees the claims held under `owner`: a scheduler starting takes back at once the ticks its
    /// previous process (same owner name) claimed and did not complete, instead of after the lease.
    pub async fn release_claims(&self, owner: &str) -> ApiResult<u64> {
        let sql = "update event_rules set claimed_by = null, claimed_until = null where claimed_by = $1";
        let freed = on_pool!(&self.store, pool => sqlx::query(sql).bind(owner)
            .execute(pool).await.map(|r| r.rows_affected()))
        .context("release rule claims")?;
        Ok(freed)
    }

    /// Records that `firing` was fired: the rule's next tick becomes the first one after `now_ms`
    /// and the claim is released, if `owner` still holds it (`false` otherwise). A rule whose
    /// schedule changed meanwhile keeps the tick its new schedule was given.
    pub async fn complete_firing(&self, firing: &Firing, owner: &str, now_ms: i64) -> ApiResult<bool> {
        let next = match Schedule::parse(&firing.schedule_expression) {
            Ok(schedule) => schedule.next_after(firing.tick, now_ms),
            Err(_) => {
                tracing::warn!(rule = %firing.rule_arn, expression = %firing.schedule_expression,
                    "a stored schedule expression no longer parses; the rule stops firing");
                None
            }
        };
        let sql = "update event_rules set \
                     next_fire_at = case when next_fire_at = $4 and schedule_expression = $5 then $6 else next_fire_at end, \
                     claimed_by = null, claimed_until = null \
                   where account_id = $1 and name = $2 and claimed_by = $3";
        let done = on_pool!(&self.store, pool => sqlx::query(sql)
            .bind(&firing.account_id).bind(&firing.rule_name).bind(owner)
            .bind(firing.tick).bind(&firing.schedule_expression).bind(next)
            .execute(pool).await.map(|r| r.rows_affected()))
        .context("complete rule firing")?;
        Ok(done == 1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use lamina_metadata::Store;

    use super::*;
    use crate::rules::{PutRuleRequest, PutTargetsRequest, RuleNameRequest, Scoped, Target};

    const ACCOUNT: &str = "111111111111";

    async fn sources(dir: &tempfile::TempDir) -> EventSources {
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("m.db").display())).await.expect("store");
        store
            .execute_raw(&format!(
                "insert into accounts (account_id, name, concurrent_executions, code_storage_bytes, created_at, \
                 updated_at) values ('{ACCOUNT}', 'a', 10, 10, 0, 0)"
            ))
            .await
            .expect("account");
        EventSources::new(store, "us-east-1")
    }

    fn scoped<T>(request: T) -> Scoped<T> {
        Scoped { account_id: ACCOUNT.into(), request }
    }

    /// A `rate(1 minute)` rule with one target; returns the time its first tick was set.
    async fn rule(es: &EventSources, name: &str) -> i64 {
        let put = PutRuleRequest {
            name: Some(name.into()),
            schedule_expression: Some("rate(1 minute)".into()),
            ..Default::default()
        };
        es.put_rule(scoped(put)).await.expect("put rule");
        let target = Target {
            id: Some("t".into()),
            arn: Some(format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:f")),
            ..Default::default()
        };
        let targets = PutTargetsRequest { rule: Some(name.into()), targets: Some(vec![target]), ..Default::default() };
        es.put_targets(scoped(targets)).await.expect("put targets");
        lamina_common::time::now_ms()
    }

    #[tokio::test]
    async fn one_claimant_per_tick_and_only_it_completes() {
        let dir = tempfile::tempdir().expect("dir");
        let es = sources(&dir).await;
        let set = rule(&es, "r").await;
        let now = set + 10;
        let claimed = es.claim_due(now, "a", 30_000, 10).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        let firing = &claimed[0];
        assert!(firing.tick <= set && firing.tick > set - 5_000, "the first tick is when the target came");
        assert_eq!(firing.rule_arn, format!("arn:aws:events:us-east-1:{ACCOUNT}:rule/r"));
        assert_eq!(firing.targets.len(), 1);
        assert!(es.claim_due(now, "b", 30_000, 10).await.expect("claim").is_empty(), "claimed by a");
        assert!(!es.complete_firing(firing, "b", now).await.expect("complete"), "only the claimant completes");
        assert!(es.complete_firing(firing, "a", now).await.expect("complete"));
        assert!(es.claim_due(now, "b", 30_000, 10).await.expect("claim").is_empty(), "not due any more");

        // The next tick: b claims it and dies; a cannot take it before b's lease runs out.
        let second = firing.tick + 60_000;
        let by_b = es.claim_due(second, "b", 30_000, 10).await.expect("claim");
        assert_eq!(by_b.iter().map(|f| f.tick).collect::<Vec<_>>(), [second]);
        assert!(es.claim_due(second + 29_000, "a", 30_000, 10).await.expect("claim").is_empty());
        let by_a = es.claim_due(second + 30_000, "a", 30_000, 10).await.expect("claim");
        assert_eq!(by_a, by_b, "the same tick, fired again with the same targets");
        // b's late completion changes nothing; a's moves the rule on.
        assert!(!es.complete_firing(&by_b[0], "b", second + 31_000).await.expect("complete"));
        // Its own claim is not claimable again by a running a; a restarted a (same owner name)
        // releases it and takes it back at once.
        assert!(es.claim_due(second + 31_000, "a", 30_000, 10).await.expect("claim").is_empty());
        assert_eq!(es.release_claims("a").await.expect("release"), 1);
        assert_eq!(es.claim_due(second + 31_000, "a", 30_000, 10).await.expect("claim"), by_a);
        assert!(es.complete_firing(&by_a[0], "a", second + 31_000).await.expect("complete"));
        assert!(es.claim_due(second + 59_000, "b", 30_000, 10).await.expect("claim").is_empty());
    }

    #[tokio::test]
    async fn an_outage_fires_the_first_missed_tick_once_then_the_next_future_one() {
        let dir = tempfile::tempdir().expect("dir");
        let es = sources(&dir).await;
        rule(&es, "r").await;
        let first = es.claim_due(lamina_common::time::now_ms(), "a", 30_000, 10).await.expect("claim");
        let tick = first[0].tick;
        assert!(es.complete_firing(&first[0], "a", tick + 100).await.expect("complete"));
        // Ten minutes and a half without a scheduler.
        let back = tick + 630_500;
        let late = es.claim_due(back, "a", 30_000, 10).await.expect("claim");
        assert_eq!(
            late.iter().map(|f| f.tick).collect::<Vec<_>>(),
            [tick + 60_000],
            "one firing, the first missed tick"
        );
        assert!(es.complete_firing(&late[0], "a", back).await.expect("complete"));
        assert!(es.claim_due(back, "a", 30_000, 10).await.expect("claim").is_empty());
        let next = es.claim_due(tick + 660_000, "a", 30_000, 10).await.expect("claim");
        assert_eq!(next.iter().map(|f| f.tick).collect::<Vec<_>>(), [tick + 660_000], "the period's phase is kept");
    }

    #[tokio::test]
    async fn disabled_and_pattern_rules_are_not_claimed() {
        let dir = tempfile::tempdir().expect("dir");
        let es = sources(&dir).await;
        rule(&es, "off").await;
        let name = RuleNameRequest { name: Some("off".into()), ..Default::default() };
        es.set_rule_state(scoped(name.clone()), false).await.expect("disable");
        let pattern = PutRuleRequest {
            name: Some("pattern".into()),
            event_pattern: Some(r#"{"source":["aws.ec2"]}"#.into()),
            ..Default::default()
        };
        es.put_rule(scoped(pattern)).await.expect("pattern rule");
        let later = lamina_common::time::now_ms() + 600_000;
        assert!(es.claim_due(later, "a", 30_000, 10).await.expect("claim").is_empty());
        // Enabled again, the rule resumes at its next tick after now, not with the ticks it missed.
        es.set_rule_state(scoped(name), true).await.expect("enable");
        let now = lamina_common::time::now_ms();
        assert!(es.claim_due(now, "a", 30_000, 10).await.expect("claim").is_empty());
        assert_eq!(es.claim_due(now + 60_000, "a", 30_000, 10).await.expect("claim").len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_replicas_split_the_due_rules() {
        let dir = tempfile::tempdir().expect("dir");
        let es = sources(&dir).await;
        for i in 0..30 {
            rule(&es, &format!("r{i:02}")).await;
        }
        let now = lamina_common::time::now_ms();
        let claim = |owner: &'static str| {
            let es = es.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..10 {
                    got.extend(es.claim_due(now, owner, 30_000, 4).await.expect("claim"));
                }
                got
            })
        };
        let (a, b) = (claim("a"), claim("b"));
        let (a, b) = (a.await.expect("a"), b.await.expect("b"));
        let names = |v: &[Firing]| v.iter().map(|f| f.rule_name.clone()).collect::<BTreeSet<_>>();
        let (na, nb) = (names(&a), names(&b));
        assert_eq!(na.len() + nb.len(), 30, "a: {na:?} b: {nb:?}");
        assert!(na.is_disjoint(&nb));
    }
}

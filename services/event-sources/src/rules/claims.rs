//! Exactly one firing per tick across scheduler replicas.
//!
//! A due rule (enabled, `next_fire_at <= now`) is claimed with one conditional update that also
//! requires the rule to be unclaimed or its claim expired: of replicas racing for it, one update
//! matches and the others see the row already claimed. The claimant fires the tick, then completes
//! it: `next_fire_at` moves to the first tick after now and the claim is cleared, only if the
//! claim is still its own. A claimant that dies leaves its claim to expire (the lease), and the
//! tick is fired again by whoever claims it next, with the same request ids (they derive from the
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
    /// Leases up to `limit` due rules to `owner` until `now_ms + lease_ms`, oldest tick first. A
    /// rule claimed by `owner` itself is claimable again: the one scheduler of `owner` fires rules
    /// one claim at a time, so such a claim was left by its previous process.
    pub async fn claim_due(&self, now_ms: i64, owner: &str, lease_ms: i64, limit: i64) -> ApiResult<Vec<Firing>> {
        let due = "state = 'ENABLED' and schedule_expression is not null and next_fire_at <= $3 \
                   and (claimed_by is null or claimed_until <= $3 or claimed_by = $1)";
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

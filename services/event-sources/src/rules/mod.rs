//! Schedule rules and their targets: EventBridge's rule API on the default event bus.
//!
//! A rule with a `ScheduleExpression` fires on its schedule (see [`crate::scheduler`]); a rule with
//! only an `EventPattern` is stored and listed as on AWS but never fires: Lamina has no event bus
//! that events could be put on. Targets are Lamina function ARNs, each with an optional constant
//! `Input`. Every query is scoped to the caller's account; names are unique per account.
//!
//! When a rule fires: a rate rule at once when it gets its first target (the guide: "the first
//! execution is immediate"; with `put-rule` then `put-targets` that is the second call), then every
//! period; a cron rule on the minutes it names. A changed expression starts over; a rule enabled
//! again resumes at its next tick after now. A tick missed while no scheduler ran is fired once,
//! late (see `claims.rs`).
//!
//! Quotas as AWS's defaults: 300 rules per account (per event bus on AWS), 5 targets per rule.

mod claims;
mod store;
pub mod validate;

use lamina_common::ApiResult;
use serde::{Deserialize, Serialize};

pub use claims::Firing;

use crate::{EventSources, EventSourcesClient};

/// Rules one account may hold.
pub const MAX_RULES: i64 = 300;
/// Targets one rule may hold.
pub const MAX_TARGETS: usize = 5;
/// The one event bus.
pub const DEFAULT_BUS: &str = "default";
/// AWS's words for a quota reached.
pub const LIMIT_MESSAGE: &str = "The requested resource exceeds the maximum number allowed.";

/// `arn:aws:events:<region>:<account>:rule/<name>` (a rule on the default bus).
pub fn rule_arn(region: &str, account_id: &str, name: &str) -> String {
    format!("arn:aws:events:{region}:{account_id}:rule/{name}")
}

/// An operation's request with the account it runs for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scoped<T> {
    pub account_id: String,
    pub request: T,
}

/// The wire shapes below are EventBridge's JSON (PascalCase members), so the frontend parses and
/// answers them as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRuleRequest {
    pub name: Option<String>,
    pub schedule_expression: Option<String>,
    pub event_pattern: Option<String>,
    pub state: Option<String>,
    pub description: Option<String>,
    pub role_arn: Option<String>,
    pub event_bus_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRuleResponse {
    pub rule_arn: String,
}

/// DescribeRule, EnableRule, DisableRule, DeleteRule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleNameRequest {
    pub name: Option<String>,
    pub event_bus_name: Option<String>,
    /// DeleteRule only: for rules managed by an AWS service, which Lamina has none of.
    pub force: Option<bool>,
}

/// A rule as DescribeRule and ListRules print it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rule {
    pub name: String,
    pub arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_pattern: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    pub event_bus_name: String,
    /// DescribeRule only: the account that created the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRulesRequest {
    pub name_prefix: Option<String>,
    pub event_bus_name: Option<String>,
    pub next_token: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRulesResponse {
    pub rules: Vec<Rule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// A target as PutTargets takes it and ListTargetsByRule prints it. Members Lamina does not
/// deliver with are kept only to be refused by name (see [`validate::put_targets`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Target {
    pub id: Option<String>,
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_transformer: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutTargetsRequest {
    pub rule: Option<String>,
    pub event_bus_name: Option<String>,
    pub targets: Option<Vec<Target>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailedEntry {
    pub target_id: String,
    pub error_code: String,
    pub error_message: String,
}

/// PutTargets' and RemoveTargets' answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetsResponse {
    pub failed_entry_count: i64,
    pub failed_entries: Vec<FailedEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveTargetsRequest {
    pub rule: Option<String>,
    pub event_bus_name: Option<String>,
    pub ids: Option<Vec<String>>,
    pub force: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTargetsRequest {
    pub rule: Option<String>,
    pub event_bus_name: Option<String>,
    pub next_token: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTargetsResponse {
    pub targets: Vec<Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// An answer without members (EnableRule, DisableRule, DeleteRule).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Empty {}

/// The scheduler's claim request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub now_ms: i64,
    pub owner: String,
    pub lease_ms: i64,
    pub limit: i64,
}

/// A starting scheduler's release of its previous process's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub owner: String,
}

/// The scheduler's completion of one firing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteRequest {
    pub firing: Firing,
    pub owner: String,
    pub now_ms: i64,
}

/// Answers the operations this module owns; `None` for any other.
pub(crate) async fn dispatch(local: &EventSources, op: &str, json: &[u8]) -> Option<ApiResult<Vec<u8>>> {
    Some(match op {
        "PutRule" => run(op, json, |r: Scoped<PutRuleRequest>| local.put_rule(r)).await,
        "DescribeRule" => run(op, json, |r: Scoped<RuleNameRequest>| local.describe_rule(r)).await,
        "ListRules" => run(op, json, |r: Scoped<ListRulesRequest>| local.list_rules(r)).await,
        "EnableRule" => run(op, json, |r: Scoped<RuleNameRequest>| local.set_rule_state(r, true)).await,
        "DisableRule" => run(op, json, |r: Scoped<RuleNameRequest>| local.set_rule_state(r, false)).await,
        "DeleteRule" => run(op, json, |r: Scoped<RuleNameRequest>| local.delete_rule(r)).await,
        "PutTargets" => run(op, json, |r: Scoped<PutTargetsRequest>| local.put_targets(r)).await,
        "RemoveTargets" => run(op, json, |r: Scoped<RemoveTargetsRequest>| local.remove_targets(r)).await,
        "ListTargetsByRule" => run(op, json, |r: Scoped<ListTargetsRequest>| local.list_targets(r)).await,
        "ClaimDueRules" => {
            let claim = |r: ClaimRequest| async move { local.claim_due(r.now_ms, &r.owner, r.lease_ms, r.limit).await };
            run(op, json, claim).await
        }
        "ReleaseRuleClaims" => {
            let release = |r: ReleaseRequest| async move { local.release_claims(&r.owner).await };
            run(op, json, release).await
        }
        "CompleteRuleFiring" => {
            let complete =
                |r: CompleteRequest| async move { local.complete_firing(&r.firing, &r.owner, r.now_ms).await };
            run(op, json, complete).await
        }
        _ => return None,
    })
}

async fn run<Req, Resp, F, Fut>(op: &str, json: &[u8], f: F) -> ApiResult<Vec<u8>>
where
    Req: serde::de::DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Resp>>,
{
    let request = crate::decode::<Req>(op, json)?;
    crate::encode(&f(request).await?)
}

fn scoped<T>(account_id: &str, request: T) -> Scoped<T> {
    Scoped { account_id: account_id.to_owned(), request }
}

/// Typed calls of the rule operations (in process or over gRPC).
impl EventSourcesClient {
    pub async fn put_rule(&self, account_id: &str, request: PutRuleRequest) -> ApiResult<PutRuleResponse> {
        self.call("PutRule", &scoped(account_id, request)).await
    }

    pub async fn describe_rule(&self, account_id: &str, request: RuleNameRequest) -> ApiResult<Rule> {
        self.call("DescribeRule", &scoped(account_id, request)).await
    }

    pub async fn list_rules(&self, account_id: &str, request: ListRulesRequest) -> ApiResult<ListRulesResponse> {
        self.call("ListRules", &scoped(account_id, request)).await
    }

    pub async fn enable_rule(&self, account_id: &str, request: RuleNameRequest) -> ApiResult<Empty> {
        self.call("EnableRule", &scoped(account_id, request)).await
    }

    pub async fn disable_rule(&self, account_id: &str, request: RuleNameRequest) -> ApiResult<Empty> {
        self.call("DisableRule", &scoped(account_id, request)).await
    }

    pub async fn delete_rule(&self, account_id: &str, request: RuleNameRequest) -> ApiResult<Empty> {
        self.call("DeleteRule", &scoped(account_id, request)).await
    }

    pub async fn put_targets(&self, account_id: &str, request: PutTargetsRequest) -> ApiResult<TargetsResponse> {
        self.call("PutTargets", &scoped(account_id, request)).await
    }

    pub async fn remove_targets(&self, account_id: &str, request: RemoveTargetsRequest) -> ApiResult<TargetsResponse> {
        self.call("RemoveTargets", &scoped(account_id, request)).await
    }

    pub async fn list_targets_by_rule(
        &self,
        account_id: &str,
        request: ListTargetsRequest,
    ) -> ApiResult<ListTargetsResponse> {
        self.call("ListTargetsByRule", &scoped(account_id, request)).await
    }

    /// Leases up to `limit` due rules to `owner` for `lease_ms` (see [`EventSources::claim_due`]).
    pub async fn claim_due_rules(&self, now_ms: i64, owner: &str, lease_ms: i64, limit: i64) -> ApiResult<Vec<Firing>> {
        let request = ClaimRequest { now_ms, owner: owner.to_owned(), lease_ms, limit };
        self.call("ClaimDueRules", &request).await
    }

    /// Frees the claims `owner`'s previous process left (see [`EventSources::release_claims`]).
    pub async fn release_rule_claims(&self, owner: &str) -> ApiResult<u64> {
        self.call("ReleaseRuleClaims", &ReleaseRequest { owner: owner.to_owned() }).await
    }

    /// Records a fired tick (see [`EventSources::complete_firing`]); `false` when the claim was lost.
    pub async fn complete_rule_firing(&self, firing: &Firing, owner: &str, now_ms: i64) -> ApiResult<bool> {
        let request = CompleteRequest { firing: firing.clone(), owner: owner.to_owned(), now_ms };
        self.call("CompleteRuleFiring", &request).await
    }
}

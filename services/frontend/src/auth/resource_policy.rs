//! Cross-account access: which operations another account may perform on a function, and whether
//! the function's resource policy grants it. The one place this rule lives; handlers only name
//! their operation.

use lamina_common::policy::{Caller, RequestContext, allows};
use lamina_common::{ApiError, ApiResult};

use crate::{AppState, Principal};

/// The operations AWS lets a function's resource policy grant to another account (AWS Lambda
/// Developer Guide, "Using resource-based policies for AWS Lambda", section "Cross-account APIs").
/// Every other operation is refused to a foreign caller whatever the policy says: AWS refuses
/// AddPermission, RemovePermission and UpdateFunctionConfiguration across accounts
/// (awsdocs/aws-lambda-developer-guide#139), and logs belong to the owner's account.
/// `InvokeFunction` covers Invoke and the deprecated InvokeAsync, which AWS authorises with the
/// same action.
pub const CROSS_ACCOUNT_ACTIONS: &[&str] = &[
    "InvokeFunction",
    "GetFunction",
    "GetFunctionConfiguration",
    "UpdateFunctionCode",
    "DeleteFunction",
    "PublishVersion",
    "ListVersionsByFunction",
    "CreateAlias",
    "GetAlias",
    "ListAliases",
    "UpdateAlias",
    "DeleteAlias",
    "GetPolicy",
    "PutFunctionConcurrency",
    "DeleteFunctionConcurrency",
    "ListTags",
    "TagResource",
    "UntagResource",
];

/// The IAM action name of an operation as AccessDenied messages spell it.
fn iam_action(operation: &str) -> String {
    match operation {
        // Lamina's log API stands in for CloudWatch Logs, which has its own action names.
        "GetLogEvents" => "logs:GetLogEvents".to_owned(),
        other => format!("lambda:{other}"),
    }
}

/// Whether `principal` may perform `operation` on another account's function addressed as
/// `resource` (the exact ARN of the request, POL-6), whose policy is kept under
/// (`account_id`, `name`, `policy_key`). Decided before any lookup of the function itself, so a
/// refusal never reveals whether it exists; an operation AWS does not grant across accounts is
/// refused without reading the policy at all.
pub async fn authorize_foreign(
    state: &AppState,
    principal: &Principal,
    (account_id, name, policy_key): (&str, &str, &str),
    resource: &str,
    operation: &str,
) -> ApiResult<()> {
    let action = iam_action(operation);
    let grantable = CROSS_ACCOUNT_ACTIONS.contains(&operation);
    let allowed = grantable
        && match state.metadata.get_policy(account_id, name, policy_key).await? {
            Some(policy) => allows(
                &policy.statements,
                &RequestContext {
                    caller: Caller::Account(principal.account_id.clone()),
                    action: action.clone(),
                    resource: resource.to_owned(),
                    source_arn: None,
                    source_account: None,
                    event_source_token: None,
                },
            ),
            None => false,
        };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::AccessDenied(format!(
            "User: {} is not authorized to perform: {action} on resource: {resource}",
            principal.arn()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_only_operations_are_not_grantable() {
        for op in ["AddPermission", "RemovePermission", "UpdateFunctionConfiguration", "GetLogEvents", "CreateFunction"]
        {
            assert!(!CROSS_ACCOUNT_ACTIONS.contains(&op), "{op}");
        }
        assert_eq!(iam_action("GetLogEvents"), "logs:GetLogEvents");
        assert_eq!(iam_action("GetAlias"), "lambda:GetAlias");
    }
}

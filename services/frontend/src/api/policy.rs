//! AddPermission, RemovePermission, GetPolicy: resource policies per function, version or alias.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use bytes::Bytes;
use lamina_common::names::{Violations, is_account_id};
use lamina_common::policy::Statement;
use lamina_common::{ApiError, ApiResult};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};

use super::functions::in_region;
use super::{Target, parse_body, resolve};
use crate::{AppState, Principal};

static SID_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9._-]+$").expect("static regex"));
static ACTION_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(lambda:[*]|lambda:[a-zA-Z]+|[*])$").expect("static regex"));
static SOURCE_ARN_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}(-gov)?-[a-z]+-[0-9]{1})?:([0-9]{12})?:(.*)$")
        .expect("static regex")
});
// `[0-9]`: the regex crate's `\d` also matches non-ASCII digits.
static ACCOUNT_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[0-9]{12}$").expect("static regex"));
static TOKEN_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9._\-]+$").expect("static regex"));

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct AddPermissionRequest {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    source_arn: Option<String>,
    source_account: Option<String>,
    event_source_token: Option<String>,
    revision_id: Option<String>,
}

impl AddPermissionRequest {
    /// AddPermission's model checks.
    pub(crate) fn check(&self) -> ApiResult<()> {
        let mut v = Violations::default();
        match &self.statement_id {
            Some(sid) => {
                v.length(sid, "statementId", 1, 100);
                v.pattern(sid, "statementId", &SID_RE, r"([a-zA-Z0-9-_.]+)");
            }
            None => v.missing("statementId"),
        }
        match &self.action {
            Some(a) => v.pattern(a, "action", &ACTION_RE, r"(lambda:[*]|lambda:[a-zA-Z]+|[*])"),
            None => v.missing("action"),
        }
        if self.principal.is_none() {
            v.missing("principal");
        }
        if let Some(arn) = &self.source_arn {
            v.pattern(
                arn,
                "sourceArn",
                &SOURCE_ARN_RE,
                r"arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}(-gov)?-[a-z]+-\d{1})?:(\d{12})?:(.*)",
            );
        }
        if let Some(acct) = &self.source_account {
            v.pattern(acct, "sourceAccount", &ACCOUNT_RE, r"\d{12}");
        }
        if let Some(tok) = &self.event_source_token {
            v.length(tok, "eventSourceToken", 0, 256);
            v.pattern(tok, "eventSourceToken", &TOKEN_RE, r"[a-zA-Z0-9._\-]+");
        }
        v.finish()
    }
}

/// The key of the qualifier's policy (`""`: the unqualified ARN).
fn policy_key(target: &Target) -> &str {
    target.qualifier.as_deref().unwrap_or_default()
}

/// `POST /2015-03-31/functions/{name}/policy`
pub async fn add(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let target =
        resolve(&state, &principal, &name, params.get("Qualifier").map(String::as_str), "AddPermission").await?;
    let req: AddPermissionRequest = parse_body(&body)?;
    req.check()?;
    let sid = req.statement_id.clone().unwrap_or_default();
    let raw_principal = req.principal.clone().unwrap_or_default();
    let principal_json = if raw_principal == "*" {
        Value::String("*".into())
    } else if is_account_id(&raw_principal) {
        json!({ "AWS": format!("arn:aws:iam::{raw_principal}:root") })
    } else if raw_principal.starts_with("arn:aws:iam::") {
        json!({ "AWS": raw_principal })
    } else {
        json!({ "Service": raw_principal })
    };
    let mut condition = serde_json::Map::new();
    if let Some(arn) = &req.source_arn {
        condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": arn }));
    }
    let mut equals = serde_json::Map::new();
    if let Some(acct) = &req.source_account {
        equals.insert("AWS:SourceAccount".into(), Value::String(acct.clone()));
    }
    if let Some(tok) = &req.event_source_token {
        equals.insert("lambda:EventSourceToken".into(), Value::String(tok.clone()));
    }
    if !equals.is_empty() {
        condition.insert("StringEquals".into(), Value::Object(equals));
    }
    let statement = Statement {
        sid: sid.clone(),
        effect: "Allow".into(),
        principal: principal_json,
        action: req.action.clone().unwrap_or_default(),
        resource: target.addressed_arn(&state.config.region),
        condition: if condition.is_empty() { None } else { Some(Value::Object(condition)) },
    };
    let text = serde_json::to_string(&statement).map_err(|e| ApiError::Internal(e.into()))?;
    state
        .metadata
        .add_permission(&target.account_id, &target.name, policy_key(&target), statement, req.revision_id.as_deref())
        .await
        .map_err(|e| in_region(e, &state.config.region))?;
    Ok((StatusCode::CREATED, Json(json!({ "Statement": text }))))
}

/// `GET /2015-03-31/functions/{name}/policy`
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let target = resolve(&state, &principal, &name, params.get("Qualifier").map(String::as_str), "GetPolicy").await?;
    let resolved =
        state.metadata.resolve_version(&target.account_id, &target.name, target.qualifier.as_deref()).await?;
    if resolved.is_none() {
        return Err(ApiError::function_not_found(&target.addressed_arn(&state.config.region)));
    }
    let policy = state
        .metadata
        .get_policy(&target.account_id, &target.name, policy_key(&target))
        .await?
        .ok_or_else(|| ApiError::ResourceNotFound("The resource you requested does not exist.".into()))?;
    Ok(Json(json!({ "Policy": policy.document(), "RevisionId": policy.revision_id })))
}

/// `DELETE /2015-03-31/functions/{name}/policy/{sid}`
pub async fn remove(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, sid)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let target =
        resolve(&state, &principal, &name, params.get("Qualifier").map(String::as_str), "RemovePermission").await?;
    let mut v = Violations::default();
    v.length(&sid, "statementId", 1, 100);
    v.pattern(&sid, "statementId", &SID_RE, r"([a-zA-Z0-9-_.]+)");
    v.finish()?;
    state
        .metadata
        .remove_permission(
            &target.account_id,
            &target.name,
            policy_key(&target),
            &sid,
            params.get("RevisionId").map(String::as_str),
        )
        .await
        .map_err(|e| in_region(e, &state.config.region))?;
    Ok(StatusCode::NO_CONTENT)
}

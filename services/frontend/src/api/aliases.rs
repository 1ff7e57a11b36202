//! CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use bytes::Bytes;
use lamina_common::names::{Violations, qualified_arn};
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::{AliasPatch, AliasRow, NewAlias};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};

use super::functions::in_region;
use super::{Target, paginate, parse_body, resolve};
use crate::{AppState, Principal};

static ALIAS_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9_-]+$").expect("static regex"));
static VERSION_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(\$LATEST|[0-9]+)$").expect("static regex"));
const ALIAS_PATTERN: &str = r"(?!^[0-9]+$)([a-zA-Z0-9-_]+)";

fn check_alias_name(name: &str, v: &mut Violations) {
    v.length(name, "name", 1, 128);
    if !ALIAS_RE.is_match(name) || name.bytes().all(|b| b.is_ascii_digit()) {
        v.push(name, "name", &format!("Member must satisfy regular expression pattern: {ALIAS_PATTERN}"));
    }
}

fn check_version(version: &str, v: &mut Violations) {
    v.length(version, "functionVersion", 1, 1024);
    v.pattern(version, "functionVersion", &VERSION_RE, r"(\$LATEST|[0-9]+)");
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingConfig {
    additional_version_weights: Option<BTreeMap<String, f64>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct AliasRequest {
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingConfig>,
    revision_id: Option<String>,
}

impl AliasRequest {
    /// CreateAlias's model checks.
    pub(crate) fn check_create(&self) -> ApiResult<()> {
        let mut v = Violations::default();
        match &self.name {
            Some(n) => check_alias_name(n, &mut v),
            None => v.missing("name"),
        }
        match &self.function_version {
            Some(fv) => check_version(fv, &mut v),
            None => v.missing("functionVersion"),
        }
        if let Some(d) = &self.description {
            v.length(d, "description", 0, 256);
        }
        v.finish()
    }

    /// UpdateAlias's model checks (the alias name comes from the path).
    pub(crate) fn check_update(&self) -> ApiResult<()> {
        let mut v = Violations::default();
        if let Some(fv) = &self.function_version {
            check_version(fv, &mut v);
        }
        if let Some(d) = &self.description {
            v.length(d, "description", 0, 256);
        }
        v.finish()
    }
}

fn alias_json(state: &AppState, a: &AliasRow) -> Value {
    let mut out = json!({
        "AliasArn": qualified_arn(&state.config.region, &a.account_id, &a.function_name, &a.alias_name),
        "Name": a.alias_name,
        "FunctionVersion": a.function_version,
        "Description": a.description,
        "RevisionId": a.revision_id,
    });
    if let Some(rc) = a.routing_config.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()) {
        out["RoutingConfig"] = rc;
    }
    out
}

impl From<RoutingConfig> for lamina_metadata::RoutingConfig {
    fn from(rc: RoutingConfig) -> Self {
        Self { weights: rc.additional_version_weights.unwrap_or_default() }
    }
}

async fn function_must_exist(state: &AppState, target: &Target) -> ApiResult<()> {
    match state.metadata.get_version(&target.account_id, &target.name, "$LATEST").await? {
        Some(_) => Ok(()),
        None => Err(ApiError::function_not_found(&target.arn(&state.config.region))),
    }
}

/// `POST /2015-03-31/functions/{name}/aliases`
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let target = resolve(&state, &principal, &name, None, "CreateAlias").await?;
    let req: AliasRequest = parse_body(&body)?;
    req.check_create()?;
    let new = NewAlias {
        alias_name: req.name.unwrap_or_default(),
        function_version: req.function_version.unwrap_or_default(),
        description: req.description.unwrap_or_default(),
        routing_config: req.routing_config.map(Into::into),
    };
    let row = state
        .metadata
        .create_alias(&target.account_id, &target.name, new)
        .await
        .map_err(|e| in_region(e, &state.config.region))?;
    Ok((StatusCode::CREATED, Json(alias_json(&state, &row))))
}

async fn load(state: &AppState, target: &Target, alias: &str) -> ApiResult<AliasRow> {
    let mut v = Violations::default();
    check_alias_name(alias, &mut v);
    v.finish()?;
    function_must_exist(state, target).await?;
    state.metadata.get_alias(&target.account_id, &target.name, alias).await?.ok_or_else(|| {
        ApiError::ResourceNotFound(format!(
            "Alias not found: {}",
            qualified_arn(&state.config.region, &target.account_id, &target.name, alias)
        ))
    })
}

/// `GET /2015-03-31/functions/{name}/aliases/{alias}`
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let target = resolve(&state, &principal, &name, None, "GetAlias").await?;
    let row = load(&state, &target, &alias).await?;
    Ok(Json(alias_json(&state, &row)))
}

/// `PUT /2015-03-31/functions/{name}/aliases/{alias}`
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, alias)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let target = resolve(&state, &principal, &name, None, "UpdateAlias").await?;
    let req: AliasRequest = parse_body(&body)?;
    req.check_update()?;
    let mut v = Violations::default();
    check_alias_name(&alias, &mut v);
    v.finish()?;
    let patch = AliasPatch {
        function_version: req.function_version,
        description: req.description,
        routing_config: req.routing_config.map(Into::into),
    };
    let row = state
        .metadata
        .update_alias(&target.account_id, &target.name, &alias, patch, req.revision_id.as_deref())
        .await
        .map_err(|e| in_region(e, &state.config.region))?;
    Ok(Json(alias_json(&state, &row)))
}

/// `DELETE /2015-03-31/functions/{name}/aliases/{alias}`
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let target = resolve(&state, &principal, &name, None, "DeleteAlias").await?;
    load(&state, &target, &alias).await?;
    state.metadata.delete_alias(&target.account_id, &target.name, &alias).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /2015-03-31/functions/{name}/aliases`
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let target = resolve(&state, &principal, &name, None, "ListAliases").await?;
    if let Some(fv) = params.get("FunctionVersion") {
        let mut v = Violations::default();
        check_version(fv, &mut v);
        v.finish()?;
    }
    function_must_exist(&state, &target).await?;
    let mut rows = state.metadata.list_aliases(&target.account_id, &target.name).await?;
    if let Some(fv) = params.get("FunctionVersion") {
        rows.retain(|a| &a.function_version == fv);
    }
    let (page, next) = paginate(rows, |a| a.alias_name.clone(), &params)?;
    let aliases: Vec<_> = page.iter().map(|a| alias_json(&state, a)).collect();
    Ok(Json(json!({ "Aliases": aliases, "NextMarker": next })))
}

//! PublishVersion and ListVersionsByFunction.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use base64::Engine as _;
use bytes::Bytes;
use lamina_common::names::Violations;
use lamina_common::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::json;

use super::model::configuration;
use super::{paginate, parse_body, resolve};
use crate::{AppState, Principal};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PublishRequest {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

impl PublishRequest {
    /// PublishVersion's model checks.
    pub(crate) fn check(&self) -> ApiResult<()> {
        let mut v = Violations::default();
        if let Some(d) = &self.description {
            v.length(d, "description", 0, 256);
        }
        v.finish()
    }
}

/// `POST /2015-03-31/functions/{name}/versions`
pub async fn publish(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let target = resolve(&state, &principal, &name, None, "PublishVersion").await?;
    let req: PublishRequest = parse_body(&body)?;
    req.check()?;
    if target.qualifier.is_some() {
        return Err(ApiError::InvalidParameterValue("PublishVersion takes an unqualified function name.".into()));
    }
    let expected_hex = req.code_sha256.as_ref().map(|b64| {
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map(hex::encode)
            .unwrap_or_else(|_| format!("invalid:{b64}"))
    });
    let row = state
        .metadata
        .publish_version(
            &target.account_id,
            &target.name,
            expected_hex.as_deref(),
            req.description.as_deref(),
            req.revision_id.as_deref(),
        )
        .await
        .map_err(|e| match e {
            ApiError::ResourceNotFound(_) => ApiError::function_not_found(&target.arn(&state.config.region)),
            other => other,
        })?;
    Ok((StatusCode::CREATED, Json(configuration(&state.config.region, &row, true))))
}

/// `GET /2015-03-31/functions/{name}/versions`
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let target = resolve(&state, &principal, &name, None, "ListVersionsByFunction").await?;
    let rows = state.metadata.list_versions(&target.account_id, &target.name).await?;
    if rows.is_empty() {
        return Err(ApiError::function_not_found(&target.arn(&state.config.region)));
    }
    let (page, next) = paginate(rows, |r| r.version.clone(), &params)?;
    let versions: Vec<_> =
        page.iter().map(|r| configuration(&state.config.region, r, r.version != "$LATEST")).collect();
    Ok(Json(json!({ "Versions": versions, "NextMarker": next })))
}

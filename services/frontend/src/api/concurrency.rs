//! PutFunctionConcurrency, GetFunctionConcurrency, DeleteFunctionConcurrency.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use bytes::Bytes;
use lamina_common::names::Violations;
use lamina_common::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::json;

use super::{Target, parse_body, resolve};
use crate::{AppState, Principal};

/// The unreserved pool may not shrink below this (or below the whole limit when that is smaller).
const MIN_UNRESERVED: i64 = 100;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PutRequest {
    reserved_concurrent_executions: Option<i64>,
}

impl PutRequest {
    /// PutFunctionConcurrency's model checks; returns the reservation.
    pub(crate) fn check(&self) -> ApiResult<i64> {
        let mut v = Violations::default();
        match self.reserved_concurrent_executions {
            None => v.missing("reservedConcurrentExecutions"),
            Some(n) => v.range(n, "reservedConcurrentExecutions", 0, i64::from(i32::MAX)),
        }
        v.finish()?;
        Ok(self.reserved_concurrent_executions.unwrap_or(0))
    }
}

async fn unqualified_function(state: &AppState, principal: &Principal, name: &str, action: &str) -> ApiResult<Target> {
    let target = resolve(state, principal, name, None, action).await?;
    if target.qualifier.is_some() {
        return Err(ApiError::InvalidParameterValue(
            "Reserved concurrency applies to the unqualified function.".into(),
        ));
    }
    if state.metadata.get_version(&target.account_id, &target.name, "$LATEST").await?.is_none() {
        return Err(ApiError::function_not_found(&target.arn(&state.config.region)));
    }
    Ok(target)
}

/// `PUT /2017-10-31/functions/{name}/concurrency`
pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let req: PutRequest = parse_body(&body)?;
    let n = req.check()?;
    let target = unqualified_function(&state, &principal, &name, "PutFunctionConcurrency").await?;
    let limit = state.metadata.account(&target.account_id).await?.concurrent_executions;
    let others = state.metadata.reserved_total(&target.account_id, Some(&target.name)).await?;
    let minimum = MIN_UNRESERVED.min(limit);
    if limit - others - n < minimum {
        return Err(ApiError::InvalidParameterValue(format!(
            "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution \
             below its minimum value of [{minimum}]."
        )));
    }
    state.metadata.put_reserved_concurrency(&target.account_id, &target.name, n).await?;
    Ok(Json(json!({ "ReservedConcurrentExecutions": n })))
}

/// `GET /2019-09-30/functions/{name}/concurrency`
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let target = unqualified_function(&state, &principal, &name, "GetFunctionConcurrency").await?;
    Ok(Json(match state.metadata.reserved_concurrency(&target.account_id, &target.name).await? {
        Some(n) => json!({ "ReservedConcurrentExecutions": n }),
        None => json!({}),
    }))
}

/// `DELETE /2017-10-31/functions/{name}/concurrency`
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let target = unqualified_function(&state, &principal, &name, "DeleteFunctionConcurrency").await?;
    state.metadata.delete_reserved_concurrency(&target.account_id, &target.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! The operator's admin API: accounts, limits and access keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::{AccountLimits, NewAccount};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/accounts", post(create_account).get(list_accounts))
        .route("/accounts/{id}/limits", put(set_limits))
        .route("/accounts/{id}/keys", post(create_key).get(list_keys))
        .route("/accounts/{id}/keys/{key}", delete(delete_key))
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidRequestContent(format!("Could not parse request body: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateAccount {
    name: String,
    concurrent_executions: Option<i64>,
    code_storage_bytes: Option<i64>,
}

async fn create_account(State(state): State<AppState>, body: Bytes) -> ApiResult<impl IntoResponse> {
    let req: CreateAccount = parse(&body)?;
    let key = state
        .metadata
        .create_account(NewAccount {
            name: req.name,
            concurrent_executions: req.concurrent_executions,
            code_storage_bytes: req.code_storage_bytes,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

async fn list_accounts(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({ "Accounts": state.metadata.list_accounts().await? })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Limits {
    concurrent_executions: Option<i64>,
    code_storage_bytes: Option<i64>,
    /// Percent of an execution host the account's running sandboxes may hold (1-100; 0: the
    /// host's default, `exec_host.account_share_percent`).
    host_share_percent: Option<i64>,
}

async fn set_limits(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let req: Limits = parse(&body)?;
    let account = state
        .metadata
        .set_limits(
            &id,
            AccountLimits {
                concurrent_executions: req.concurrent_executions,
                code_storage_bytes: req.code_storage_bytes,
                host_share_percent: req.host_share_percent,
            },
        )
        .await?;
    Ok(Json(account))
}

async fn create_key(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    state.metadata.account(&id).await?;
    Ok((StatusCode::CREATED, Json(state.metadata.create_access_key(&id).await?)))
}

async fn list_keys(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    state.metadata.account(&id).await?;
    Ok(Json(json!({ "AccessKeyIds": state.metadata.list_access_keys(&id).await? })))
}

async fn delete_key(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    state.metadata.delete_access_key(&id, &key).await?;
    state.secrets.forget(&key);
    if let Some(revocations) = &state.revocations {
        // The key is already gone from the database; other frontends' caches follow within a second
        // through this message, or within their cache TTL if Redis is down.
        if let Err(e) = revocations.publish(crate::auth::SECRET_TOPIC, &key).await {
            tracing::warn!("announcing a revoked access key failed: {e:#}");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

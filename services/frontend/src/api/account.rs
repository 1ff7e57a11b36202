//! GetAccountSettings.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use lamina_common::ApiResult;
use serde_json::json;

use crate::{AppState, Principal};

/// `GET /2016-08-19/account-settings`
pub async fn get_settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<impl IntoResponse> {
    let account = state.metadata.account(&principal.account_id).await?;
    let (total_code, functions) = state.metadata.usage(&principal.account_id).await?;
    let limits = state.code.limits();
    let reserved = state.metadata.reserved_total(&principal.account_id, None).await?;
    Ok(Json(json!({
        "AccountLimit": {
            "TotalCodeSize": account.code_storage_bytes,
            "CodeSizeUnzipped": limits.max_unzipped,
            "CodeSizeZipped": limits.max_zipped,
            "ConcurrentExecutions": account.concurrent_executions,
            "UnreservedConcurrentExecutions": account.concurrent_executions - reserved,
        },
        "AccountUsage": { "TotalCodeSize": total_code, "FunctionCount": functions },
    })))
}

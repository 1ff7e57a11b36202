//! Reading a function's logs (Lamina's own API; CloudWatch Logs is not emulated).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use lamina_common::ApiResult;
use serde_json::json;

use super::resolve;
use crate::{AppState, Principal};

/// `GET /_lamina/v1/functions/{name}/logs?Limit=N`: the newest log events of the function.
pub async fn get_logs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<serde_json::Value>> {
    let target = resolve(&state, &principal, &name, None, "GetLogEvents").await?;
    let limit = params.get("Limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(1000).clamp(1, 10_000);
    let events = state.invoker.log_events(&target.account_id, &target.name, limit).await?;
    Ok(Json(json!({
        "LogGroupName": format!("/aws/lambda/{}", target.name),
        "Events": events,
    })))
}

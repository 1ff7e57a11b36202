//! Async invocation settings (`/2019-09-25/functions/{name}/event-invoke-config`). (Helper H2 fills this file.)

use axum::extract::{Path, State};
use lamina_common::{ApiError, ApiResult};

use crate::AppState;

fn unavailable() -> ApiError {
    ApiError::UnknownOperation("Unknown operation: event-invoke-config".into())
}

pub async fn list(State(_state): State<AppState>, Path(_name): Path<String>) -> ApiResult<String> {
    Err(unavailable())
}

pub async fn put(State(_state): State<AppState>, Path(_name): Path<String>) -> ApiResult<String> {
    Err(unavailable())
}

pub async fn get(State(_state): State<AppState>, Path(_name): Path<String>) -> ApiResult<String> {
    Err(unavailable())
}

pub async fn update(State(_state): State<AppState>, Path(_name): Path<String>) -> ApiResult<String> {
    Err(unavailable())
}

pub async fn delete(State(_state): State<AppState>, Path(_name): Path<String>) -> ApiResult<String> {
    Err(unavailable())
}

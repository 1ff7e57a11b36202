//! Event-source mappings (`/2015-03-31/event-source-mappings`). (Helper H3 fills this file.)

use axum::extract::{Path, State};
use lamina_common::{ApiError, ApiResult};

use crate::AppState;

fn unavailable() -> ApiError {
    ApiError::UnknownOperation("Unknown operation: event-source-mappings".into())
}

pub async fn list(State(_state): State<AppState>) -> ApiResult<String> {
    Err(unavailable())
}

pub async fn create(State(_state): State<AppState>) -> ApiResult<String> {
    Err(unavailable())
}

pub async fn get(State(_state): State<AppState>, Path(_uuid): Path<String>) -> ApiResult<String> {
    Err(unavailable())
}

pub async fn update(State(_state): State<AppState>, Path(_uuid): Path<String>) -> ApiResult<String> {
    Err(unavailable())
}

pub async fn delete(State(_state): State<AppState>, Path(_uuid): Path<String>) -> ApiResult<String> {
    Err(unavailable())
}

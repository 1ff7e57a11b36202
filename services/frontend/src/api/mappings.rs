//! CreateEventSourceMapping, GetEventSourceMapping, ListEventSourceMappings,
//! UpdateEventSourceMapping, DeleteEventSourceMapping (`/2015-03-31/event-source-mappings`).
//!
//! The request checks live with the mappings (`lamina_event_sources::mappings::validate`); this
//! file adds what needs the metadata service: the function must exist in the caller's account, as
//! addressed (version or alias included). A mapping always belongs to the caller's account, so
//! another tenant's function "does not exist" here, as AWS answers for a function it cannot find.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use bytes::Bytes;
use lamina_common::names::{FunctionRef, Violations};
use lamina_common::{ApiError, ApiResult};
use lamina_event_sources::mappings::validate::{self, CreateRequest, UpdateRequest};
use lamina_event_sources::mappings::{ListQuery, MAX_PAGE, MappingUpdate, NewMapping};
use serde_json::json;

use super::parse_body;
use crate::{AppState, Principal};

type Params = Query<HashMap<String, String>>;

fn function_missing() -> ApiError {
    ApiError::InvalidParameterValue("Function does not exist".into())
}

/// The (name, qualifier) of a function of the caller's that exists as addressed.
async fn existing_function(
    state: &AppState,
    principal: &Principal,
    function: &FunctionRef,
) -> ApiResult<(String, Option<String>)> {
    let foreign_account = function.account_id.as_deref().is_some_and(|a| a != principal.account_id);
    let foreign_region = function.region.as_deref().is_some_and(|r| r != state.config.region);
    if foreign_account || foreign_region {
        return Err(function_missing());
    }
    let found =
        state.metadata.resolve_version(&principal.account_id, &function.name, function.qualifier.as_deref()).await?;
    match found {
        Some(_) => Ok((function.name.clone(), function.qualifier.clone())),
        None => Err(function_missing()),
    }
}

/// `POST /2015-03-31/event-source-mappings`
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let client = state.event_sources()?;
    let req: CreateRequest = parse_body(&body)?;
    let prepared = validate::prepare_create(&req)?;
    let (function_name, qualifier) = existing_function(&state, &principal, &prepared.function).await?;
    let new = NewMapping {
        account_id: principal.account_id.clone(),
        function_name,
        qualifier,
        enabled: prepared.enabled,
        mapping: prepared.mapping,
    };
    let mapping = client.create_mapping(&new).await?;
    Ok((StatusCode::ACCEPTED, Json(mapping)))
}

/// `GET /2015-03-31/event-source-mappings/{uuid}`
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(uuid): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let mapping = state.event_sources()?.get_mapping(&principal.account_id, &uuid).await?;
    Ok(Json(mapping))
}

/// `PUT /2015-03-31/event-source-mappings/{uuid}`
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let client = state.event_sources()?;
    let req: UpdateRequest = parse_body(&body)?;
    let function = validate::check_update(&req)?;
    // An unknown mapping is reported before anything about the function.
    client.get_mapping(&principal.account_id, &uuid).await?;
    let function = match &function {
        Some(f) => Some(existing_function(&state, &principal, f).await?),
        None => None,
    };
    let update = MappingUpdate {
        account_id: principal.account_id.clone(),
        uuid,
        function,
        enabled: req.enabled,
        settings: req.settings,
    };
    let mapping = client.update_mapping(&update).await?;
    Ok((StatusCode::ACCEPTED, Json(mapping)))
}

/// `DELETE /2015-03-31/event-source-mappings/{uuid}`
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(uuid): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let mapping = state.event_sources()?.delete_mapping(&principal.account_id, &uuid).await?;
    Ok((StatusCode::ACCEPTED, Json(mapping)))
}

/// `GET /2015-03-31/event-source-mappings?FunctionName=&EventSourceArn=&Marker=&MaxItems=`
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Params,
) -> ApiResult<impl IntoResponse> {
    let client = state.event_sources()?;
    let mut v = Violations::default();
    let function = match params.get("FunctionName") {
        None => None,
        Some(raw) => match FunctionRef::parse(raw, "functionName") {
            Ok(f) => Some(f),
            Err(ApiError::Validation(found)) => {
                found.iter().for_each(|text| v.push_raw(text));
                None
            }
            Err(other) => return Err(other),
        },
    };
    let max_items = match params.get("MaxItems") {
        None => MAX_PAGE as i64,
        Some(raw) => {
            let n: i64 = raw.parse().map_err(|_| ApiError::invalid(raw, "maxItems", "Member must be a number"))?;
            v.range(n, "maxItems", 1, 10_000);
            n
        }
    };
    v.finish()?;
    if let Some(arn) = params.get("EventSourceArn") {
        validate::check_source_filter(arn)?;
    }
    // Filters name things that may not exist (or belong to someone else): they just match nothing.
    if let Some(f) = &function
        && (f.account_id.as_deref().is_some_and(|a| a != principal.account_id)
            || f.region.as_deref().is_some_and(|r| r != state.config.region))
    {
        return Ok(Json(json!({ "EventSourceMappings": [], "NextMarker": null })));
    }
    let query = ListQuery {
        account_id: principal.account_id.clone(),
        function_name: function.as_ref().map(|f| f.name.clone()),
        qualifier: function.and_then(|f| f.qualifier),
        event_source_arn: params.get("EventSourceArn").cloned(),
        marker: params.get("Marker").cloned(),
        max_items: max_items.clamp(1, MAX_PAGE as i64) as usize,
    };
    let page = client.list_mappings(&query).await?;
    Ok(Json(json!({ "EventSourceMappings": page.mappings, "NextMarker": page.next_marker })))
}

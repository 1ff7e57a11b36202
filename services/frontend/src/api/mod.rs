//! Lambda REST operations, one file per resource family.

mod account;
mod functions;
mod invoke;
mod logs;
mod model;
mod validate;

use axum::Router;
use axum::http::Uri;
use axum::routing::{get, post, put};
use lamina_common::names::{FunctionRef, function_arn, qualified_arn};
use lamina_common::{ApiError, ApiResult};
use serde::de::DeserializeOwned;

use crate::{AppState, Principal};

/// Every Lambda route, each with and without its trailing slash.
pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    let both = |r: Router<AppState>, path: &str, route: axum::routing::MethodRouter<AppState>| {
        r.route(path, route.clone()).route(&format!("{path}/"), route)
    };
    r = both(r, "/2015-03-31/functions", get(functions::list).post(functions::create));
    r = both(r, "/2015-03-31/functions/{name}", get(functions::get).delete(functions::delete));
    r = both(
        r,
        "/2015-03-31/functions/{name}/configuration",
        get(functions::get_configuration).put(functions::update_configuration),
    );
    r = both(r, "/2015-03-31/functions/{name}/code", put(functions::update_code));
    r = both(r, "/2015-03-31/functions/{name}/invocations", post(invoke::invoke));
    r = both(r, "/_lamina/v1/functions/{name}/logs", get(logs::get_logs));
    r = both(r, "/2016-08-19/account-settings", get(account::get_settings));
    r
}

/// Unknown paths get AWS's 404.
pub async fn unknown_operation(uri: Uri) -> ApiError {
    ApiError::UnknownOperation(format!("Unknown operation: {}", uri.path()))
}

/// A function addressed by a request, resolved to its owner and qualifier.
#[derive(Debug, Clone)]
pub struct Target {
    pub account_id: String,
    pub name: String,
    pub qualifier: Option<String>,
}

impl Target {
    /// Unqualified ARN.
    pub fn arn(&self, region: &str) -> String {
        function_arn(region, &self.account_id, &self.name)
    }

    /// ARN as addressed (qualified when a qualifier was given).
    pub fn addressed_arn(&self, region: &str) -> String {
        match &self.qualifier {
            Some(q) => qualified_arn(region, &self.account_id, &self.name, q),
            None => self.arn(region),
        }
    }
}

/// Parses a FunctionName path segment and decides whose function it is.
///
/// Another tenant's function is refused before any lookup, so the answer never reveals
/// whether it exists (semantics ARN Decision).
pub fn resolve(
    state: &AppState,
    principal: &Principal,
    raw: &str,
    qualifier: Option<&str>,
    action: &str,
) -> ApiResult<Target> {
    let r = FunctionRef::parse(raw, "functionName")?;
    let qualifier = r.effective_qualifier(qualifier)?;
    let account_id = r.account_id.clone().unwrap_or_else(|| principal.account_id.clone());
    let target = Target { account_id, name: r.name.clone(), qualifier };
    if let Some(region) = &r.region
        && region != &state.config.region
    {
        return Err(ApiError::function_not_found(&target.addressed_arn(region)));
    }
    if target.account_id != principal.account_id {
        return Err(ApiError::AccessDenied(format!(
            "User: {} is not authorized to perform: lambda:{action} on resource: {}",
            principal.arn(),
            target.addressed_arn(&state.config.region)
        )));
    }
    Ok(target)
}

/// Parses a JSON request body into `T`; anything that is not JSON is InvalidRequestContent.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidRequestContent(format!("Could not parse request body into json: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::InvalidRequestContent("Request body must be a JSON object.".into()));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::InvalidRequestContent(format!("Could not parse request body into json: {e}")))
}

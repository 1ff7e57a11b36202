//! Lambda REST operations, one file per resource family.

mod account;
mod aliases;
mod cloudwatch;
mod concurrency;
mod cwlogs;
mod events;
mod functions;
#[doc(hidden)]
pub mod fuzzing;
mod invoke;
mod invoke_config;
mod logs;
mod mappings;
mod model;
mod policy;
mod validate;
mod versions;

use axum::Router;
use axum::http::Uri;
use axum::routing::{delete, get, post, put};
use lamina_common::names::{FunctionRef, function_arn, qualified_arn};
use lamina_common::{ApiError, ApiResult};
use serde::de::DeserializeOwned;

pub(crate) use self::cloudwatch::{CBOR_PATH_PREFIX as CLOUDWATCH_CBOR_PATH, is_query as is_cloudwatch_query};
use crate::auth::resource_policy::authorize_foreign;
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
    r = both(r, "/2014-11-13/functions/{name}/invoke-async", post(invoke::invoke_async));
    r = both(r, "/2015-03-31/functions/{name}/versions", get(versions::list).post(versions::publish));
    r = both(r, "/2015-03-31/functions/{name}/aliases", get(aliases::list).post(aliases::create));
    r = both(
        r,
        "/2015-03-31/functions/{name}/aliases/{alias}",
        get(aliases::get).put(aliases::update).delete(aliases::delete),
    );
    r = both(r, "/2015-03-31/functions/{name}/policy", get(policy::get).post(policy::add));
    r = both(r, "/2015-03-31/functions/{name}/policy/{sid}", delete(policy::remove));
    r = both(r, "/2017-10-31/functions/{name}/concurrency", put(concurrency::put).delete(concurrency::delete));
    r = both(r, "/2019-09-30/functions/{name}/concurrency", get(concurrency::get));
    r = both(r, "/_lamina/v1/functions/{name}/logs", get(logs::get_logs));
    r = both(r, "/2016-08-19/account-settings", get(account::get_settings));
    r = both(
        r,
        "/2019-09-25/functions/{name}/event-invoke-config",
        get(invoke_config::get).put(invoke_config::put).post(invoke_config::update).delete(invoke_config::delete),
    );
    r = both(r, "/2019-09-25/functions/{name}/event-invoke-config/list", get(invoke_config::list));
    r = both(r, "/2015-03-31/event-source-mappings", get(mappings::list).post(mappings::create));
    r = both(
        r,
        "/2015-03-31/event-source-mappings/{uuid}",
        get(mappings::get).put(mappings::update).delete(mappings::delete),
    );
    // The JSON-protocol APIs (`X-Amz-Target`: EventBridge, CloudWatch Logs, CloudWatch) and
    // CloudWatch's query protocol (a form body).
    r = r.route("/", post(events::dispatch));
    r = r.route("/service/GraniteServiceVersion20100801/operation/{op}", post(cloudwatch::cbor));
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

/// Parses a FunctionName path segment and decides whether the caller may act on it.
///
/// Another tenant's function is allowed only for the operations AWS lets a resource policy grant
/// across accounts, and only by a statement of the resource policy of the exact ARN addressed
/// (POL-6): see [`authorize_foreign`].
pub async fn resolve(
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
        let resource = target.addressed_arn(&state.config.region);
        let policy_key = target.qualifier.as_deref().unwrap_or_default();
        let policy = (target.account_id.as_str(), target.name.as_str(), policy_key);
        authorize_foreign(state, principal, policy, &resource, action).await?;
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

/// Pages an ordered list by an opaque marker (the key of the last item returned).
pub fn paginate<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    params: &std::collections::HashMap<String, String>,
) -> ApiResult<(Vec<T>, Option<String>)> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let limit = functions::max_items(params)? as usize;
    let start = match params.get("Marker") {
        None => 0,
        Some(m) => {
            let after = URL_SAFE_NO_PAD
                .decode(m)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or_else(|| ApiError::InvalidParameterValue(format!("Invalid marker: {m}")))?;
            items
                .iter()
                .position(|i| key(i) == after)
                .map(|p| p + 1)
                .ok_or_else(|| ApiError::InvalidParameterValue(format!("Invalid marker: {m}")))?
        }
    };
    let mut page: Vec<T> = items.into_iter().skip(start).collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|last| URL_SAFE_NO_PAD.encode(key(last).as_bytes()))
    } else {
        None
    };
    Ok((page, next))
}

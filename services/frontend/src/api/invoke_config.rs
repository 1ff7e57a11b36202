//! PutFunctionEventInvokeConfig, UpdateFunctionEventInvokeConfig, GetFunctionEventInvokeConfig,
//! DeleteFunctionEventInvokeConfig, ListFunctionEventInvokeConfigs
//! (`/2019-09-25/functions/{name}/event-invoke-config[/list]`). The settings live in event
//! sources (`lamina_event_sources::invoke_config`); the runner applies them to Event invocations.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use bytes::Bytes;
use lamina_common::names::{Violations, qualified_arn};
use lamina_common::{ApiError, ApiResult};
use lamina_event_sources::invoke_config::{
    ConfigKey, ConfigUpdate, Destination, Destinations, InvokeConfig, LATEST, Unsupported,
};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Target, paginate, parse_body, resolve};
use crate::{AppState, Principal};

type Params = Query<HashMap<String, String>>;

const DESTINATION_PATTERN: &str =
    r"^$|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*)";
static DESTINATION_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*))$",
    )
    .expect("static regex")
});

/// The body of Put and Update.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigRequest {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
    destination_config: Option<DestinationConfigIn>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DestinationConfigIn {
    on_success: Option<DestinationIn>,
    on_failure: Option<DestinationIn>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DestinationIn {
    destination: Option<String>,
}

impl ConfigRequest {
    /// The model's constraints.
    pub(crate) fn check(&self) -> ApiResult<()> {
        let mut v = Violations::default();
        if let Some(n) = self.maximum_retry_attempts {
            v.range(n, "maximumRetryAttempts", 0, 2);
        }
        if let Some(n) = self.maximum_event_age_in_seconds {
            v.range(n, "maximumEventAgeInSeconds", 60, 21_600);
        }
        if let Some(d) = &self.destination_config {
            for (member, given) in [("onSuccess", &d.on_success), ("onFailure", &d.on_failure)] {
                if let Some(arn) = given.as_ref().and_then(|g| g.destination.as_deref()) {
                    let member = format!("destinationConfig.{member}.destination");
                    v.length(arn, &member, 0, 350);
                    v.pattern(arn, &member, &DESTINATION_RE, DESTINATION_PATTERN);
                }
            }
        }
        v.finish()
    }

    /// Both destinations, when a `DestinationConfig` was given (an empty ARN is none).
    fn destinations(&self) -> Option<Destinations> {
        let arn =
            |d: &Option<DestinationIn>| d.as_ref().and_then(|d| d.destination.clone()).filter(|arn| !arn.is_empty());
        self.destination_config
            .as_ref()
            .map(|d| Destinations { on_success: arn(&d.on_success), on_failure: arn(&d.on_failure) })
    }

    fn is_empty(&self) -> bool {
        self.maximum_retry_attempts.is_none()
            && self.maximum_event_age_in_seconds.is_none()
            && self.destination_config.is_none()
    }
}

/// Where a target's configuration is kept: the unqualified function under `$LATEST`.
fn key(target: &Target) -> ConfigKey {
    ConfigKey {
        account_id: target.account_id.clone(),
        function_name: target.name.clone(),
        qualifier: target.qualifier.clone().unwrap_or_else(|| LATEST.to_owned()),
    }
}

fn no_config(arn: &str) -> ApiError {
    ApiError::ResourceNotFound(format!("The function {arn} doesn't have an EventInvokeConfig"))
}

fn no_function() -> ApiError {
    ApiError::ResourceNotFound("The function doesn't exist.".into())
}

/// The function (and the version or alias, when qualified) must exist to be configured.
async fn ensure_exists(state: &AppState, target: &Target) -> ApiResult<()> {
    let found = state.metadata.resolve_version(&target.account_id, &target.name, target.qualifier.as_deref()).await?;
    found.map(drop).ok_or_else(no_function)
}

/// The service's checks of the destinations: only what Lamina can deliver to, and a function
/// destination must be another existing function of the same account in this region.
async fn check_destinations(state: &AppState, target: &Target, d: &Destinations) -> ApiResult<()> {
    let mut invalid = false;
    let mut unsupported = false;
    for arn in [&d.on_success, &d.on_failure].into_iter().flatten() {
        match Destination::parse(arn) {
            Ok(Destination::Function { region, account_id, name, qualifier }) => {
                if account_id == target.account_id && name == target.name {
                    return Err(ApiError::InvalidParameterValue(
                        "You can't specify the function as a destination for itself.".into(),
                    ));
                }
                // Records are delivered as the configured function's owner: another tenant's
                // function would be invoked without its owner's consent.
                let exists = region == state.config.region
                    && account_id == target.account_id
                    && state.metadata.resolve_version(&account_id, &name, qualifier.as_deref()).await?.is_some();
                if !exists {
                    return Err(ApiError::InvalidParameterValue(format!("The destination ARN {arn} is invalid.")));
                }
            }
            Ok(Destination::Queue(_)) => {}
            Err(Unsupported::Service(_)) => unsupported = true,
            Err(Unsupported::Invalid) => invalid = true,
        }
    }
    if invalid || unsupported {
        let part = |kind: &str, arn: &Option<String>| match arn {
            Some(a) => format!("{kind}(destination={a})"),
            None => "null".to_owned(),
        };
        let mut message = format!(
            "The provided destination config DestinationConfig(onSuccess={}, onFailure={}) is invalid.",
            part("OnSuccess", &d.on_success),
            part("OnFailure", &d.on_failure)
        );
        // SNS topics, event buses and buckets are valid on AWS; say why they are not here.
        if unsupported {
            message.push_str(" Lamina delivers records to Lambda functions and Amazon SQS queues only.");
        }
        return Err(ApiError::InvalidParameterValue(message));
    }
    Ok(())
}

/// FunctionEventInvokeConfig as AWS prints it (`LastModified` in epoch seconds).
fn config_json(region: &str, c: &InvokeConfig) -> Value {
    let destination = |arn: &Option<String>| match arn {
        Some(a) => json!({ "Destination": a }),
        None => json!({}),
    };
    let mut out = json!({
        "LastModified": c.last_modified as f64 / 1000.0,
        "FunctionArn": qualified_arn(region, &c.account_id, &c.function_name, &c.qualifier),
        "DestinationConfig": { "OnSuccess": destination(&c.on_success), "OnFailure": destination(&c.on_failure) },
    });
    if let Some(n) = c.maximum_retry_attempts {
        out["MaximumRetryAttempts"] = json!(n);
    }
    if let Some(n) = c.maximum_event_age_in_seconds {
        out["MaximumEventAgeInSeconds"] = json!(n);
    }
    out
}

/// Resolves and authorises the function (with the `Qualifier` parameter) a request addresses.
async fn addressed(
    state: &AppState,
    principal: &Principal,
    name: &str,
    params: &HashMap<String, String>,
    operation: &str,
) -> ApiResult<Target> {
    resolve(state, principal, name, params.get("Qualifier").map(String::as_str), operation).await
}

/// The qualified ARN a configuration is reported under.
fn config_arn(region: &str, key: &ConfigKey) -> String {
    qualified_arn(region, &key.account_id, &key.function_name, &key.qualifier)
}

/// Parses and checks a Put or Update request; resolves and authorises its target.
async fn prepare(
    state: &AppState,
    principal: &Principal,
    name: &str,
    params: &HashMap<String, String>,
    body: &[u8],
    operation: &str,
) -> ApiResult<(ConfigRequest, Target)> {
    let req: ConfigRequest = parse_body(body)?;
    req.check()?;
    let target = addressed(state, principal, name, params, operation).await?;
    if req.is_empty() {
        return Err(ApiError::InvalidParameterValue(
            "You must specify at least one of error handling or destination setting.".into(),
        ));
    }
    ensure_exists(state, &target).await?;
    if let Some(d) = req.destinations() {
        check_destinations(state, &target, &d).await?;
    }
    Ok((req, target))
}

/// `PUT /2019-09-25/functions/{name}/event-invoke-config`: replaces the configuration (settings
/// left out are removed).
pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let (req, target) = prepare(&state, &principal, &name, &params, &body, "PutFunctionEventInvokeConfig").await?;
    let key = key(&target);
    let d = req.destinations().unwrap_or_default();
    let config = InvokeConfig {
        account_id: key.account_id,
        function_name: key.function_name,
        qualifier: key.qualifier,
        maximum_retry_attempts: req.maximum_retry_attempts,
        maximum_event_age_in_seconds: req.maximum_event_age_in_seconds,
        on_success: d.on_success,
        on_failure: d.on_failure,
        last_modified: 0,
    };
    let stored = state.event_sources()?.put_invoke_config(&config).await?;
    Ok(Json(config_json(&state.config.region, &stored)))
}

/// `POST /2019-09-25/functions/{name}/event-invoke-config`: changes the settings given.
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let (req, target) = prepare(&state, &principal, &name, &params, &body, "UpdateFunctionEventInvokeConfig").await?;
    let key = key(&target);
    let arn = config_arn(&state.config.region, &key);
    let update = ConfigUpdate {
        key,
        maximum_retry_attempts: req.maximum_retry_attempts,
        maximum_event_age_in_seconds: req.maximum_event_age_in_seconds,
        destinations: req.destinations(),
    };
    let stored = state.event_sources()?.update_invoke_config(&update).await?.ok_or_else(|| no_config(&arn))?;
    Ok(Json(config_json(&state.config.region, &stored)))
}

/// `GET /2019-09-25/functions/{name}/event-invoke-config`
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Params,
) -> ApiResult<impl IntoResponse> {
    let target = addressed(&state, &principal, &name, &params, "GetFunctionEventInvokeConfig").await?;
    let key = key(&target);
    let arn = config_arn(&state.config.region, &key);
    let found = state.event_sources()?.get_invoke_config(&key).await?.ok_or_else(|| no_config(&arn))?;
    Ok(Json(config_json(&state.config.region, &found)))
}

/// `DELETE /2019-09-25/functions/{name}/event-invoke-config`
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Params,
) -> ApiResult<impl IntoResponse> {
    let target = addressed(&state, &principal, &name, &params, "DeleteFunctionEventInvokeConfig").await?;
    if !state.event_sources()?.delete_invoke_config(&key(&target)).await? {
        // AWS names the function as addressed here (unqualified when no qualifier was given).
        return Err(no_config(&target.addressed_arn(&state.config.region)));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /2019-09-25/functions/{name}/event-invoke-config/list`
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Params,
) -> ApiResult<impl IntoResponse> {
    if let Some(raw) = params.get("MaxItems") {
        let n: i64 = raw.parse().map_err(|_| ApiError::invalid(raw, "maxItems", "Member must be a number"))?;
        let mut v = Violations::default();
        v.range(n, "maxItems", 1, 50);
        v.finish()?;
    }
    let target = resolve(&state, &principal, &name, None, "ListFunctionEventInvokeConfigs").await?;
    if state.metadata.get_version(&target.account_id, &target.name, LATEST).await?.is_none() {
        return Err(no_function());
    }
    let configs = state.event_sources()?.list_invoke_configs(&target.account_id, &target.name).await?;
    let (page, next) = paginate(configs, |c| c.qualifier.clone(), &params)?;
    let items: Vec<Value> = page.iter().map(|c| config_json(&state.config.region, c)).collect();
    let mut out = json!({ "FunctionEventInvokeConfigs": items });
    if let Some(marker) = next {
        out["NextMarker"] = json!(marker);
    }
    Ok(Json(out))
}

//! CreateFunction, GetFunction(Configuration), ListFunctions, Update*, DeleteFunction.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use lamina_code_storage::StoredCode;
use lamina_code_storage::s3::ReadError;
use lamina_common::names::{FunctionRef, Violations};
use lamina_common::{ApiError, ApiResult};
use lamina_metadata::{CodeRef, FunctionPatch, FunctionRow, NewFunction};
use regex::Regex;
use serde::Deserialize;
use serde_json::json;

use super::model::configuration;
use super::validate::{CodeIn, ConfigIn, check_config, check_service_rules, environment_json, vpc_json};
use super::{Target, parse_body, resolve};
use crate::{AppState, Config, Principal};

type Params = Query<HashMap<String, String>>;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    function_name: Option<String>,
    pub(crate) code: Option<CodeIn>,
    publish: Option<bool>,
    dead_letter_config: Option<DeadLetterConfigIn>,
    #[serde(flatten)]
    config: ConfigIn,
}

/// `DeadLetterConfig`: where failed Event invocations go.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DeadLetterConfigIn {
    target_arn: Option<String>,
}

static TARGET_ARN_RE: std::sync::LazyLock<Regex> =
    std::sync::LazyLock::new(|| Regex::new(r"^(?:(arn:(aws[a-zA-Z-]*)?:[a-z0-9-.]+:.*)|())$").expect("static regex"));

/// `DeadLetterConfig.TargetArn`'s model constraint.
fn check_dead_letter(dlq: Option<&DeadLetterConfigIn>, v: &mut Violations) {
    if let Some(arn) = dlq.and_then(|d| d.target_arn.as_deref()) {
        v.pattern(arn, "deadLetterConfig.targetArn", &TARGET_ARN_RE, "(arn:(aws[a-zA-Z-]*)?:[a-z0-9-.]+:.*)|()");
    }
}

/// What a `DeadLetterConfig` member changes: `None` keeps the queue, `Some(None)` removes it (an
/// empty `TargetArn`, as AWS takes it), `Some(Some(arn))` sets it.
///
/// Only SQS queues are taken: Lamina delivers dead letters with SQS `SendMessage` and reaches no
/// SNS. An SNS topic that AWS would take is refused here rather than accepted and then never
/// delivered to, so that no failed event is lost to a setting that cannot work.
fn dead_letter_change(dlq: Option<&DeadLetterConfigIn>) -> ApiResult<Option<Option<String>>> {
    let Some(dlq) = dlq else { return Ok(None) };
    match dlq.target_arn.as_deref() {
        None | Some("") => Ok(Some(None)),
        Some(arn) if lamina_event_sources::arn::QueueArn::parse(arn).is_some() => Ok(Some(Some(arn.to_owned()))),
        Some(arn) => Err(ApiError::InvalidParameterValue(format!(
            "The provided target arn {arn} is not supported: Lamina delivers dead letters to Amazon SQS queues \
             (arn:aws:sqs:<region>:<account>:<queue>) only."
        ))),
    }
}

impl CreateRequest {
    /// The request's model and service checks; returns the parsed, unqualified name.
    pub(crate) fn check(&self, limits: &Config) -> ApiResult<FunctionRef> {
        let mut v = Violations::default();
        let name = match &self.function_name {
            None => {
                v.missing("functionName");
                None
            }
            Some(raw) => match FunctionRef::parse(raw, "functionName") {
                Ok(r) if r.qualifier.is_some() => {
                    v.push(raw, "functionName", "Member must not include a qualifier");
                    None
                }
                Ok(r) => Some(r),
                Err(ApiError::Validation(errs)) => {
                    errs.iter().for_each(|e| v.push_raw(e));
                    None
                }
                Err(other) => return Err(other),
            },
        };
        let cfg = &self.config;
        for (member, present) in
            [("runtime", cfg.runtime.is_some()), ("role", cfg.role.is_some()), ("handler", cfg.handler.is_some())]
        {
            if !present {
                v.missing(member);
            }
        }
        match &self.code {
            None => v.missing("code"),
            Some(code) => check_code(code, "code.", &mut v),
        }
        check_config(cfg, limits, &mut v);
        check_dead_letter(self.dead_letter_config.as_ref(), &mut v);
        v.finish()?;
        check_service_rules(cfg)?;
        dead_letter_change(self.dead_letter_config.as_ref())?;
        name.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("name validated above")))
    }
}

/// Where a `Code`-shaped member's package comes from.
enum Source<'a> {
    /// `ZipFile`: the base64 text of the zip.
    Zip(&'a str),
    /// `S3Bucket`/`S3Key`(/`S3ObjectVersion`): an object of code storage's S3 API.
    S3 { bucket: &'a str, key: &'a str, version: Option<&'a str> },
}

/// The source a `Code`-shaped member names; AWS's errors when it names both or neither.
fn source(code: &CodeIn) -> ApiResult<Source<'_>> {
    let s3_given = code.s3_bucket.is_some() || code.s3_key.is_some() || code.s3_object_version.is_some();
    match (&code.zip_file, &code.s3_bucket, &code.s3_key) {
        (Some(_), _, _) if s3_given => Err(ApiError::InvalidParameterValue(
            "Please do not provide other FunctionCode parameters when providing a ZipFile.".into(),
        )),
        (Some(zip), _, _) => Ok(Source::Zip(zip)),
        (None, Some(bucket), Some(key)) => Ok(Source::S3 { bucket, key, version: code.s3_object_version.as_deref() }),
        _ => Err(ApiError::InvalidParameterValue("Please provide a source for function code.".into())),
    }
}

/// The model constraints of the S3 members of a `Code`-shaped member (`prefix`: `code.` inside
/// CreateFunction, empty for UpdateFunctionCode's top-level members).
pub(crate) fn check_code(code: &CodeIn, prefix: &str, v: &mut Violations) {
    if let Some(bucket) = &code.s3_bucket {
        let member = format!("{prefix}s3Bucket");
        v.length(bucket, &member, 3, 63);
        // `^[0-9A-Za-z\.\-_]*(?<!\.)$` (the regex crate has no look-behind).
        let allowed = bucket.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !allowed || bucket.ends_with('.') {
            v.push(bucket, &member, "Member must satisfy regular expression pattern: ^[0-9A-Za-z\\.\\-_]*(?<!\\.)$");
        }
    }
    if let Some(key) = &code.s3_key {
        v.length(key, &format!("{prefix}s3Key"), 1, 1024);
    }
    if let Some(version) = &code.s3_object_version {
        v.length(version, &format!("{prefix}s3ObjectVersion"), 1, 1024);
    }
}

/// Reads, validates and stores the package a `Code`-shaped member names; an S3 object is read as
/// `caller_account` may read it.
async fn store_code(state: &AppState, caller_account: &str, code: &CodeIn) -> ApiResult<(StoredCode, Bytes)> {
    let bytes = match source(code)? {
        Source::Zip(zip) => decode_zip(zip)?,
        Source::S3 { bucket, key, version } => read_package(state, caller_account, bucket, key, version).await?,
    };
    Ok((state.code.put_zip(bytes.clone()).await?, bytes))
}

/// A package from the S3 API; what keeps it from being read is reported as AWS reports it.
async fn read_package(
    state: &AppState,
    caller_account: &str,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> ApiResult<Bytes> {
    let max = state.code.limits().max_zipped;
    let failed = |code: &str, message: &str| {
        ApiError::InvalidParameterValue(format!(
            "Error occurred while GetObject. S3 Error Code: {code}. S3 Error Message: {message}"
        ))
    };
    match state.code.read_object(caller_account, bucket, key, version, max).await {
        Ok(bytes) => Ok(bytes),
        Err(ReadError::NoSuchBucket) => Err(failed("NoSuchBucket", "The specified bucket does not exist")),
        Err(ReadError::NoSuchKey) => Err(failed("NoSuchKey", "The specified key does not exist.")),
        Err(ReadError::NoSuchVersion) => Err(failed("NoSuchVersion", "The specified version does not exist.")),
        Err(ReadError::AccessDenied) => Err(failed("AccessDenied", "Access Denied")),
        // Packages from S3 share the direct upload's zipped-size limit (AWS allows more; see docs).
        Err(ReadError::TooLarge { .. }) => {
            Err(ApiError::InvalidParameterValue(format!("Zipped size must be smaller than {max} bytes")))
        }
        Err(ReadError::Internal(e)) => Err(ApiError::Internal(e.context("read a package from S3"))),
    }
}

/// The zip a `Code`-shaped member carries, base64-decoded (not yet validated as a zip).
pub(crate) fn decode_code(code: &CodeIn) -> ApiResult<Bytes> {
    match source(code)? {
        Source::Zip(zip) => decode_zip(zip),
        Source::S3 { .. } => Err(ApiError::InvalidParameterValue("The package is in S3, not in the request.".into())),
    }
}

fn decode_zip(zip: &str) -> ApiResult<Bytes> {
    Ok(Bytes::from(STANDARD.decode(zip.as_bytes()).map_err(|_| {
        ApiError::InvalidParameterValue(
            "Could not unzip uploaded file. Please check your file, then try to upload again.".into(),
        )
    })?))
}

/// `POST /2015-03-31/functions`
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let req: CreateRequest = parse_body(&body)?;
    let name = req.check(&state.config)?;
    let cfg = &req.config;
    let target =
        resolve(&state, &principal, req.function_name.as_deref().unwrap_or_default(), None, "CreateFunction").await?;
    let code = req.code.as_ref().unwrap_or(&CodeIn::default()).clone();
    let (stored, zip) = store_code(&state, &principal.account_id, &code).await?;
    let new = NewFunction {
        function_name: name.name,
        description: cfg.description.clone().unwrap_or_default(),
        runtime: cfg.runtime.clone().unwrap_or_default(),
        role: cfg.role.clone().unwrap_or_default(),
        handler: cfg.handler.clone().unwrap_or_default(),
        memory_size: cfg.memory_size.unwrap_or(128),
        timeout: cfg.timeout.unwrap_or(3),
        environment: cfg.environment.as_ref().and_then(environment_json),
        vpc_config: cfg.vpc_config.as_ref().and_then(vpc_json),
        code_sha256: stored.sha256_hex.clone(),
        code_size: stored.size,
        ephemeral_storage: cfg.ephemeral_storage.as_ref().and_then(|e| e.size).unwrap_or(512),
        dead_letter_arn: dead_letter_change(req.dead_letter_config.as_ref())?.flatten(),
    };
    let created = state.metadata.create_function(&target.account_id, new, req.publish.unwrap_or(false)).await;
    let row = match created {
        Ok(row) => row,
        Err(err) => {
            release_unless_unavailable(&state, &err, stored.sha256_hex).await;
            return Err(err);
        }
    };
    state.code.ensure(&stored.sha256_hex, &zip).await?;
    Ok((StatusCode::CREATED, Json(configuration(&state.config.region, &row, false))))
}

/// After a failed write: releases the package just stored, unless metadata itself is failing (then
/// the reference check would only wait out the same outage; the blob stays until a later release).
async fn release_unless_unavailable(state: &AppState, err: &ApiError, sha: String) {
    if err.status().is_server_error() {
        return;
    }
    // Most failed writes reuse a package some version holds (a CreateFunction of a taken name):
    // checked first, so such a blob is not even hidden for a moment.
    match state.metadata.code_referenced(&sha).await {
        Ok(false) => delete_blobs(state, &[sha]).await,
        Ok(true) => {}
        Err(err) => tracing::warn!(sha, error = %err, "check blob references"),
    }
}

/// Deletes blobs that no version referred to when last checked. Code storage hides each one
/// before references are checked again, so a CreateFunction of the same package (in any account)
/// that commits meanwhile keeps it (see `lamina_code_storage`'s `deletion.rs`).
async fn delete_blobs(state: &AppState, shas: &[String]) {
    for sha in shas {
        let still_referenced = state.metadata.code_referenced(sha);
        if let Err(err) = state.code.delete_unless_referenced(sha, still_referenced).await {
            tracing::warn!(sha, error = %err, "delete unreferenced blob");
        }
    }
}

/// Loads the version a target names (an alias resolves to the version it points to).
pub async fn load_version(state: &AppState, target: &Target) -> ApiResult<FunctionRow> {
    state
        .metadata
        .resolve_version(&target.account_id, &target.name, target.qualifier.as_deref())
        .await?
        .map(|r| r.row)
        .ok_or_else(|| ApiError::function_not_found(&target.addressed_arn(&state.config.region)))
}

pub(crate) fn max_items(params: &HashMap<String, String>) -> ApiResult<i64> {
    match params.get("MaxItems") {
        None => Ok(50),
        Some(raw) => {
            let n: i64 = raw.parse().map_err(|_| ApiError::invalid(raw, "maxItems", "Member must be a number"))?;
            let mut v = Violations::default();
            v.range(n, "maxItems", 1, 10_000);
            v.finish()?;
            Ok(n.min(50))
        }
    }
}

/// `GET /2015-03-31/functions`
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Params,
) -> ApiResult<impl IntoResponse> {
    let limit = max_items(&params)?;
    let after = match params.get("Marker") {
        None => None,
        Some(m) => Some(
            URL_SAFE_NO_PAD
                .decode(m)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or_else(|| ApiError::InvalidParameterValue(format!("Invalid marker: {m}")))?,
        ),
    };
    let mut rows = state.metadata.list_latest(&principal.account_id, after.as_deref(), limit + 1).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| URL_SAFE_NO_PAD.encode(r.function_name.as_bytes()))
    } else {
        None
    };
    let functions: Vec<_> = rows.iter().map(|r| configuration(&state.config.region, r, false)).collect();
    Ok(Json(json!({ "Functions": functions, "NextMarker": next })))
}

/// `GET /2015-03-31/functions/{name}`
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Params,
) -> ApiResult<impl IntoResponse> {
    let target = resolve(&state, &principal, &name, params.get("Qualifier").map(String::as_str), "GetFunction").await?;
    let row = load_version(&state, &target).await?;
    let location = state.config.code_locations.location(&state.config.region, &row.account_id, &row.code_sha256)?;
    let mut out = json!({
        "Configuration": configuration(&state.config.region, &row, target.qualifier.is_some()),
        "Code": { "RepositoryType": "S3", "Location": location },
    });
    if let Some(n) = state.metadata.reserved_concurrency(&target.account_id, &target.name).await? {
        out["Concurrency"] = json!({ "ReservedConcurrentExecutions": n });
    }
    Ok(Json(out))
}

/// `GET /2015-03-31/functions/{name}/configuration`
pub async fn get_configuration(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Params,
) -> ApiResult<impl IntoResponse> {
    let target =
        resolve(&state, &principal, &name, params.get("Qualifier").map(String::as_str), "GetFunctionConfiguration")
            .await?;
    let row = load_version(&state, &target).await?;
    Ok(Json(configuration(&state.config.region, &row, target.qualifier.is_some())))
}

fn only_latest(target: &Target) -> ApiResult<()> {
    match target.qualifier.as_deref() {
        None | Some("$LATEST") => Ok(()),
        Some(_) => Err(ApiError::InvalidParameterValue(
            "Cannot modify a published version or alias: only $LATEST can be updated.".into(),
        )),
    }
}

/// Fills the region into the ARNs of a metadata error: the metadata service names resources by
/// [`lamina_metadata::regionless_arn`], the region being the frontend's.
pub(crate) fn in_region(err: ApiError, region: &str) -> ApiError {
    let fill = |message: String| message.replace("arn:aws:lambda::", &format!("arn:aws:lambda:{region}:"));
    match err {
        ApiError::ResourceNotFound(m) => ApiError::ResourceNotFound(fill(m)),
        ApiError::ResourceConflict(m) => ApiError::ResourceConflict(fill(m)),
        other => other,
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateConfigRequest {
    revision_id: Option<String>,
    #[serde(default)]
    publish: bool,
    dead_letter_config: Option<DeadLetterConfigIn>,
    #[serde(flatten)]
    config: ConfigIn,
}

impl UpdateConfigRequest {
    /// The request's model and service checks.
    pub(crate) fn check(&self, limits: &Config) -> ApiResult<()> {
        let mut v = Violations::default();
        check_config(&self.config, limits, &mut v);
        check_dead_letter(self.dead_letter_config.as_ref(), &mut v);
        v.finish()?;
        check_service_rules(&self.config)?;
        dead_letter_change(self.dead_letter_config.as_ref()).map(drop)
    }
}

/// `PUT /2015-03-31/functions/{name}/configuration`
pub async fn update_configuration(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let target = resolve(&state, &principal, &name, None, "UpdateFunctionConfiguration").await?;
    let req: UpdateConfigRequest = parse_body(&body)?;
    req.check(&state.config)?;
    only_latest(&target)?;
    let dead_letter_arn = dead_letter_change(req.dead_letter_config.as_ref())?;
    let cfg = req.config;
    let patch = FunctionPatch {
        description: cfg.description,
        runtime: cfg.runtime,
        role: cfg.role,
        handler: cfg.handler,
        memory_size: cfg.memory_size,
        timeout: cfg.timeout,
        environment: cfg.environment.as_ref().map(environment_json),
        vpc_config: cfg.vpc_config.as_ref().map(vpc_json),
        code: None,
        ephemeral_storage: cfg.ephemeral_storage.as_ref().and_then(|e| e.size),
        dead_letter_arn,
    };
    let updated = state
        .metadata
        .update_latest(&target.account_id, &target.name, patch, req.revision_id.as_deref())
        .await
        .map_err(|e| in_region(e, &state.config.region))?;
    let row = publish_if(&state, &target, req.publish, updated.row).await?;
    Ok(Json(configuration(&state.config.region, &row, false)))
}

/// With `Publish: true`, the version just published from the updated `$LATEST`.
async fn publish_if(state: &AppState, target: &Target, publish: bool, row: FunctionRow) -> ApiResult<FunctionRow> {
    if !publish {
        return Ok(row);
    }
    state
        .metadata
        .publish_version(&target.account_id, &target.name, None, None, Some(&row.revision_id))
        .await
        .map_err(|e| in_region(e, &state.config.region))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCodeRequest {
    revision_id: Option<String>,
    #[serde(default)]
    publish: bool,
    #[serde(flatten)]
    pub(crate) code: CodeIn,
}

/// `PUT /2015-03-31/functions/{name}/code`
pub async fn update_code(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let target = resolve(&state, &principal, &name, None, "UpdateFunctionCode").await?;
    let req: UpdateCodeRequest = parse_body(&body)?;
    let mut v = Violations::default();
    check_code(&req.code, "", &mut v);
    v.finish()?;
    only_latest(&target)?;
    let (stored, zip) = store_code(&state, &principal.account_id, &req.code).await?;
    let patch = FunctionPatch {
        code: Some(CodeRef { sha256_hex: stored.sha256_hex.clone(), size: stored.size }),
        ..FunctionPatch::default()
    };
    let result =
        state.metadata.update_latest(&target.account_id, &target.name, patch, req.revision_id.as_deref()).await;
    let updated = match result {
        Ok(updated) => updated,
        Err(err) => {
            release_unless_unavailable(&state, &err, stored.sha256_hex).await;
            return Err(in_region(err, &state.config.region));
        }
    };
    state.code.ensure(&stored.sha256_hex, &zip).await?;
    if let Some(old_sha) = updated.replaced_code_sha256 {
        delete_blobs(&state, &[old_sha]).await;
    }
    let row = publish_if(&state, &target, req.publish, updated.row).await?;
    Ok(Json(configuration(&state.config.region, &row, false)))
}

/// `DELETE /2015-03-31/functions/{name}`
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Params,
) -> ApiResult<impl IntoResponse> {
    let target =
        resolve(&state, &principal, &name, params.get("Qualifier").map(String::as_str), "DeleteFunction").await?;
    let shas = match target.qualifier.as_deref() {
        None => state
            .metadata
            .delete_function(&target.account_id, &target.name)
            .await
            .map_err(|e| in_region(e, &state.config.region))?,
        Some("$LATEST") => {
            return Err(ApiError::InvalidParameterValue(
                "$LATEST version cannot be deleted without deleting the function.".into(),
            ));
        }
        Some(q) if q.bytes().all(|b| b.is_ascii_digit()) => state
            .metadata
            .delete_version(&target.account_id, &target.name, q)
            .await
            .map_err(|e| in_region(e, &state.config.region))?,
        Some(_) => {
            return Err(ApiError::InvalidParameterValue(
                "Deletion of aliases is not supported; use DeleteAlias.".into(),
            ));
        }
    };
    delete_blobs(&state, &shas).await;
    Ok(StatusCode::NO_CONTENT)
}

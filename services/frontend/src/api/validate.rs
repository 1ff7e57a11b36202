//! Request members of CreateFunction / UpdateFunctionConfiguration and their checks
//! (model constraints → ValidationException, service checks → InvalidParameterValueException).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use lamina_common::names::Violations;
use lamina_common::{ApiError, ApiResult};
use regex::Regex;
use serde::Deserialize;

use super::model::VpcConfig;
use crate::Config;

static ROLE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^arn:aws:iam::[0-9]{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$").expect("static regex"));
const ROLE_PATTERN: &str = r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+";
static HANDLER_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[^\s]+$").expect("static regex"));
static ENV_KEY_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-zA-Z]([a-zA-Z0-9_])+$").expect("static regex"));

/// Variables the runtime sets itself; a function may not define them.
const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// `Environment` member.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentIn {
    pub variables: Option<BTreeMap<String, String>>,
}

/// `Code` member of CreateFunction (and the body of UpdateFunctionCode).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CodeIn {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub s3_object_version: Option<String>,
}

/// Configuration members shared by CreateFunction and UpdateFunctionConfiguration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigIn {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub vpc_config: Option<VpcConfig>,
    pub environment: Option<EnvironmentIn>,
    pub ephemeral_storage: Option<EphemeralStorageIn>,
}

/// `EphemeralStorage`: the size of the function's `/tmp`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorageIn {
    pub size: Option<i64>,
}

/// Model-constraint checks of whatever members are present.
pub fn check_config(cfg: &ConfigIn, limits: &Config, v: &mut Violations) {
    if let Some(runtime) = &cfg.runtime
        && !limits.runtimes.iter().any(|r| r == runtime)
    {
        v.push(runtime, "runtime", &format!("Member must satisfy enum value set: [{}]", limits.runtimes.join(", ")));
    }
    if let Some(role) = &cfg.role {
        v.pattern(role, "role", &ROLE_RE, ROLE_PATTERN);
    }
    if let Some(handler) = &cfg.handler {
        v.length(handler, "handler", 0, 128);
        v.pattern(handler, "handler", &HANDLER_RE, r"[^\s]+");
    }
    if let Some(d) = &cfg.description {
        v.length(d, "description", 0, 256);
    }
    if let Some(t) = cfg.timeout {
        v.range(t, "timeout", 1, limits.max_timeout_s);
    }
    if let Some(m) = cfg.memory_size {
        v.range(m, "memorySize", 128, limits.max_memory_mb);
    }
    if let Some(e) = &cfg.ephemeral_storage {
        match e.size {
            Some(size) => v.range(size, "ephemeralStorage.size", 512, 10240),
            None => v.missing("ephemeralStorage.size"),
        }
    }
    if let Some(vpc) = &cfg.vpc_config {
        if vpc.security_group_ids.len() > 5 {
            v.push(
                &format!("{:?}", vpc.security_group_ids),
                "vpcConfig.securityGroupIds",
                "Member must have length less than or equal to 5",
            );
        }
        if vpc.subnet_ids.len() > 16 {
            v.push(
                &format!("{:?}", vpc.subnet_ids),
                "vpcConfig.subnetIds",
                "Member must have length less than or equal to 16",
            );
        }
    }
    if let Some(vars) = cfg.environment.as_ref().and_then(|e| e.variables.as_ref())
        && vars.keys().any(|k| !ENV_KEY_RE.is_match(k))
    {
        v.push_raw(
            "Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: \
             [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
        );
    }
}

/// Service checks that need Lamina's own knowledge; run after the model checks pass.
pub fn check_service_rules(cfg: &ConfigIn) -> ApiResult<()> {
    if let Some(m) = cfg.memory_size
        && m % 64 != 0
    {
        return Err(ApiError::InvalidParameterValue(format!("MemorySize must be a multiple of 64 MB, got {m}.")));
    }
    if let Some(vpc) = &cfg.vpc_config
        && (vpc.subnet_ids.is_empty() != vpc.security_group_ids.is_empty())
    {
        return Err(ApiError::InvalidParameterValue(
            "VpcConfig needs at least one subnet and one security group, or neither.".into(),
        ));
    }
    if let Some(vars) = cfg.environment.as_ref().and_then(|e| e.variables.as_ref()) {
        let reserved: Vec<&str> = vars.keys().map(String::as_str).filter(|k| RESERVED_ENV.contains(k)).collect();
        if !reserved.is_empty() {
            return Err(ApiError::InvalidParameterValue(format!(
                "Lambda was unable to configure your environment variables because the environment variables you have \
                 provided contains reserved keys that are currently not supported for modification. Reserved keys used \
                 in this request: {}",
                reserved.join(", ")
            )));
        }
        let size = serde_json::to_string(vars).map(|s| s.len()).unwrap_or(0);
        if size > 4096 {
            return Err(ApiError::InvalidParameterValue(format!(
                "Lambda was unable to configure your environment variables because the environment variables you have \
                 provided exceeded the 4KB limit. String measured: {size} bytes"
            )));
        }
    }
    Ok(())
}

/// The JSON stored for an `Environment` member; an empty map clears it.
pub fn environment_json(env: &EnvironmentIn) -> Option<String> {
    env.variables.as_ref().filter(|vars| !vars.is_empty()).and_then(|vars| serde_json::to_string(vars).ok())
}

/// The JSON stored for a `VpcConfig`; empty lists remove VPC access.
pub fn vpc_json(vpc: &VpcConfig) -> Option<String> {
    if vpc.subnet_ids.is_empty() && vpc.security_group_ids.is_empty() { None } else { serde_json::to_string(vpc).ok() }
}

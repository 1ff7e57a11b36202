//! Response shapes: FunctionConfiguration as AWS prints it.

use std::collections::BTreeMap;

use lamina_code_storage::hex_to_b64;
use lamina_common::names::{function_arn, qualified_arn};
use lamina_common::time::last_modified_ms;
use lamina_metadata::FunctionRow;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// VpcConfig as stored (request shape).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcConfig {
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
}

/// FunctionConfiguration of one stored version; `qualified` picks the ARN form.
pub fn configuration(region: &str, row: &FunctionRow, qualified: bool) -> Value {
    let arn = if qualified || row.version != "$LATEST" {
        qualified_arn(region, &row.account_id, &row.function_name, &row.version)
    } else {
        function_arn(region, &row.account_id, &row.function_name)
    };
    let mut out = json!({
        "FunctionName": row.function_name,
        "FunctionArn": arn,
        "Runtime": row.runtime,
        "Role": row.role,
        "Handler": row.handler,
        "CodeSize": row.code_size,
        "Description": row.description,
        "Timeout": row.timeout,
        "MemorySize": row.memory_size,
        "LastModified": last_modified_ms(row.last_modified),
        "CodeSha256": hex_to_b64(&row.code_sha256),
        "Version": row.version,
        "RevisionId": row.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
        "EphemeralStorage": {"Size": row.ephemeral_storage},
    });
    if let Some(env) = row.environment.as_deref().and_then(|e| serde_json::from_str::<BTreeMap<String, String>>(e).ok())
    {
        out["Environment"] = json!({ "Variables": env });
    }
    if let Some(arn) = &row.dead_letter_arn {
        out["DeadLetterConfig"] = json!({ "TargetArn": arn });
    }
    if let Some(vpc) = row.vpc_config.as_deref().and_then(|v| serde_json::from_str::<VpcConfig>(v).ok()) {
        let vpc_id = if vpc.subnet_ids.is_empty() {
            String::new()
        } else {
            let digest = Sha256::digest(vpc.subnet_ids.join(",").as_bytes());
            format!("vpc-{}", &hex::encode(digest)[..17])
        };
        out["VpcConfig"] = json!({
            "SubnetIds": vpc.subnet_ids,
            "SecurityGroupIds": vpc.security_group_ids,
            "VpcId": vpc_id,
        });
    }
    out
}

//! The immutable description of one runnable function version, handed from the router to a host.

use std::collections::BTreeMap;

/// Everything an execution host needs to start and run one function version.
///
/// A snapshot never changes: `$LATEST` gets a new `revision_id` whenever its code or configuration
/// changes, so `(account_id, function_name, version, revision_id)` keys warm sandboxes safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSnapshot {
    /// 12-digit owning account.
    pub account_id: String,
    /// Function name (not an ARN).
    pub function_name: String,
    /// Unqualified function ARN.
    pub function_arn: String,
    /// `$LATEST` or a published version number.
    pub version: String,
    /// Opaque id that changes on every change of `$LATEST`.
    pub revision_id: String,
    /// Runtime identifier, e.g. `python3.11`, `nodejs20.x`, `provided.al2023`.
    pub runtime: String,
    /// Handler string as configured.
    pub handler: String,
    /// Configured memory in MB.
    pub memory_mb: u32,
    /// Configured timeout in seconds.
    pub timeout_s: u32,
    /// The function's own `Environment.Variables`.
    pub environment: BTreeMap<String, String>,
    /// Lowercase hex SHA-256 of the deployment package: hosts fetch the package from code storage
    /// by it (a host may run on another machine than code storage).
    pub code_sha256_hex: String,
    /// Size of the sandbox's `/tmp` (`EphemeralStorage.Size`) in MB; 0 means the host's default.
    pub ephemeral_storage_mb: u32,
}

impl FunctionSnapshot {
    /// Log group of the function, as Lambda names it.
    pub fn log_group(&self) -> String {
        format!("/aws/lambda/{}", self.function_name)
    }
}

//! An event-source mapping as the API shows it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API's `EventSourceMappingConfiguration` (what Create/Get/Update/Delete answer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventSourceMapping {
    #[serde(rename = "UUID")]
    pub uuid: String,
    /// `arn:aws:lambda:<region>:<account>:event-source-mapping:<uuid>` (today's API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_source_mapping_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_source_arn: Option<String>,
    pub function_arn: String,
    /// `Creating`, `Enabling`, `Enabled`, `Disabling`, `Disabled`, `Updating`, `Deleting`.
    pub state: String,
    pub state_transition_reason: String,
    /// Epoch seconds.
    pub last_modified: f64,
    pub last_processing_result: String,
    pub batch_size: i64,
    pub maximum_batching_window_in_seconds: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_position: Option<String>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_position_timestamp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelization_factor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_record_age_in_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bisect_batch_on_function_error: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_retry_attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub function_response_types: Vec<String>,
    /// RabbitMQ / Amazon MQ: the queue names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_access_configurations: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_config: Option<Value>,
}

/// A mapping with its owner, as the poller manager sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingRecord {
    pub account_id: String,
    pub mapping: EventSourceMapping,
    /// What the user asked for (`Enabled`): where `Creating` and `Updating` settle.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

//! Event-source mappings: the API's state (Create/Get/List/Update/DeleteEventSourceMapping) and the
//! leases and checkpoints pollers keep, in the metadata database.
//!
//! States: Create answers `Creating`; Update answers `Enabling`/`Disabling` when it flips `Enabled`
//! and `Updating` otherwise; Delete answers `Deleting`. The poller manager ([`crate::pollers`])
//! settles them (`Enabled`/`Disabled`, or the row gone) once no poller of the mapping runs.

mod model;
mod store;
#[cfg(test)]
mod tests;
pub mod validate;

use std::time::Duration;

use lamina_common::ApiResult;
use serde::{Deserialize, Serialize};

pub use model::{EventSourceMapping, MappingRecord};
pub use validate::{SourceKind, UpdateRequest};

use crate::{EventSources, EventSourcesClient, decode, encode};

/// ListEventSourceMappings answers at most this many per page, whatever `MaxItems` says.
pub const MAX_PAGE: usize = 100;

/// A mapping to create (the function checked to exist by the caller).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewMapping {
    pub account_id: String,
    pub function_name: String,
    pub qualifier: Option<String>,
    pub enabled: bool,
    /// The configuration with its defaults ([`validate::prepare_create`]).
    pub mapping: EventSourceMapping,
}

/// An UpdateEventSourceMapping call (model-checked; the new function, if any, checked to exist).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MappingUpdate {
    pub account_id: String,
    pub uuid: String,
    /// The function (name, qualifier) to invoke from now on.
    pub function: Option<(String, Option<String>)>,
    pub enabled: Option<bool>,
    pub settings: validate::Settings,
}

/// A ListEventSourceMappings call.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListQuery {
    pub account_id: String,
    /// Only the mappings of this function; with `qualifier`, only those of that version or alias.
    pub function_name: Option<String>,
    pub qualifier: Option<String>,
    pub event_source_arn: Option<String>,
    /// The `NextMarker` of the previous page.
    pub marker: Option<String>,
    pub max_items: usize,
}

/// One page of ListEventSourceMappings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MappingPage {
    pub mappings: Vec<EventSourceMapping>,
    pub next_marker: Option<String>,
}

const OPS: &[&str] = &[
    "CreateEventSourceMapping",
    "GetEventSourceMapping",
    "ListEventSourceMappings",
    "UpdateEventSourceMapping",
    "DeleteEventSourceMapping",
    "AcquireLease",
    "ReleaseLease",
    "GetCheckpoint",
    "PutCheckpoint",
    "SetProcessingResult",
    "ActiveMappings",
    "SettleMappingState",
];

/// Answers the operations this module owns; `None` for any other.
pub(crate) async fn dispatch(local: &EventSources, op: &str, json: &[u8]) -> Option<ApiResult<Vec<u8>>> {
    if !OPS.contains(&op) {
        return None;
    }
    Some(run(local, op, json).await)
}

async fn run(local: &EventSources, op: &str, json: &[u8]) -> ApiResult<Vec<u8>> {
    match op {
        "CreateEventSourceMapping" => encode(&local.create_mapping(decode(op, json)?).await?),
        "GetEventSourceMapping" => {
            let (account_id, uuid): (String, String) = decode(op, json)?;
            encode(&local.get_mapping(&account_id, &uuid).await?)
        }
        "ListEventSourceMappings" => encode(&local.list_mappings(decode(op, json)?).await?),
        "UpdateEventSourceMapping" => encode(&local.update_mapping(decode(op, json)?).await?),
        "DeleteEventSourceMapping" => {
            let (account_id, uuid): (String, String) = decode(op, json)?;
            encode(&local.delete_mapping(&account_id, &uuid).await?)
        }
        "AcquireLease" => {
            let (key, owner, ttl_ms): (String, String, i64) = decode(op, json)?;
            encode(&local.acquire_lease(&key, &owner, ttl_ms).await?)
        }
        "ReleaseLease" => {
            let (key, owner): (String, String) = decode(op, json)?;
            encode(&local.release_lease(&key, &owner).await?)
        }
        "GetCheckpoint" => {
            let (uuid, partition): (String, String) = decode(op, json)?;
            encode(&local.get_checkpoint(&uuid, &partition).await?)
        }
        "PutCheckpoint" => {
            let (uuid, partition, position): (String, String, String) = decode(op, json)?;
            encode(&local.put_checkpoint(&uuid, &partition, &position).await?)
        }
        "SetProcessingResult" => {
            let (uuid, result): (String, String) = decode(op, json)?;
            encode(&local.set_processing_result(&uuid, &result).await?)
        }
        "ActiveMappings" => encode(&local.active_mappings().await?),
        "SettleMappingState" => {
            let (uuid, from, to): (String, String, String) = decode(op, json)?;
            encode(&local.settle_mapping_state(&uuid, &from, &to).await?)
        }
        other => Err(lamina_common::ApiError::Internal(anyhow::anyhow!("mappings: unknown operation {other}"))),
    }
}

impl EventSourcesClient {
    /// Creates a mapping in state `Creating`; `ResourceConflictException` when the same function
    /// (as addressed) already reads the same source.
    pub async fn create_mapping(&self, new: &NewMapping) -> ApiResult<EventSourceMapping> {
        self.call("CreateEventSourceMapping", new).await
    }

    /// The mapping `uuid` of `account_id` (`ResourceNotFoundException` for another tenant's).
    pub async fn get_mapping(&self, account_id: &str, uuid: &str) -> ApiResult<EventSourceMapping> {
        self.call("GetEventSourceMapping", &(account_id, uuid)).await
    }

    /// One page of an account's mappings, oldest first.
    pub async fn list_mappings(&self, query: &ListQuery) -> ApiResult<MappingPage> {
        self.call("ListEventSourceMappings", query).await
    }

    /// Applies an update; the mapping must be `Enabled` or `Disabled` (else `ResourceInUseException`).
    pub async fn update_mapping(&self, update: &MappingUpdate) -> ApiResult<EventSourceMapping> {
        self.call("UpdateEventSourceMapping", update).await
    }

    /// Marks the mapping `Deleting` (the poller manager removes it); answers it as it now is.
    pub async fn delete_mapping(&self, account_id: &str, uuid: &str) -> ApiResult<EventSourceMapping> {
        self.call("DeleteEventSourceMapping", &(account_id, uuid)).await
    }

    /// Takes or renews the lease `key` for `owner` for `ttl`; false when another owner holds it
    /// unexpired.
    pub async fn acquire_lease(&self, key: &str, owner: &str, ttl: Duration) -> ApiResult<bool> {
        self.call("AcquireLease", &(key, owner, ttl.as_millis() as i64)).await
    }

    /// Gives the lease up if `owner` holds it.
    pub async fn release_lease(&self, key: &str, owner: &str) -> ApiResult<()> {
        self.call("ReleaseLease", &(key, owner)).await
    }

    /// The stored position of `partition` (a shard id, or `""` for a queue) of mapping `uuid`.
    pub async fn get_checkpoint(&self, uuid: &str, partition: &str) -> ApiResult<Option<String>> {
        self.call("GetCheckpoint", &(uuid, partition)).await
    }

    /// Stores the position of `partition` of mapping `uuid` (the last record processed). A no-op
    /// once the mapping is gone, so a poller finishing its batch cannot outlive its mapping's data.
    pub async fn put_checkpoint(&self, uuid: &str, partition: &str, position: &str) -> ApiResult<()> {
        self.call("PutCheckpoint", &(uuid, partition, position)).await
    }

    /// Sets `LastProcessingResult` of mapping `uuid` (`OK`, `PROBLEM: <reason>`, ...).
    pub async fn set_processing_result(&self, uuid: &str, result: &str) -> ApiResult<()> {
        self.call("SetProcessingResult", &(uuid, result)).await
    }

    /// Every mapping of every account that pollers should be running or settling (states other
    /// than `Disabled`), for the poller manager.
    pub async fn active_mappings(&self) -> ApiResult<Vec<MappingRecord>> {
        self.call("ActiveMappings", &()).await
    }

    /// Moves mapping `uuid` from `from` to `to` (e.g. `Creating`→`Enabled`, `Disabling`→`Disabled`,
    /// `Deleting`→ gone when `to` is `Deleted`); false when it was not in `from` any more.
    pub async fn settle_mapping_state(&self, uuid: &str, from: &str, to: &str) -> ApiResult<bool> {
        self.call("SettleMappingState", &(uuid, from, to)).await
    }
}

/// The lease a replica holds while it polls mapping `uuid`.
pub fn lease_key(uuid: &str) -> String {
    format!("mapping:{uuid}")
}

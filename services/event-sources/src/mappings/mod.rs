//! Event-source mappings: the API's state and the leases and checkpoints pollers keep.
//! (Helper H3 fills this module; the types and client calls below are the agreed interface.)

mod model;

use std::time::Duration;

use lamina_common::ApiResult;

pub use model::{EventSourceMapping, MappingRecord};

use crate::{EventSources, EventSourcesClient};

/// Answers the operations this module owns; `None` for any other.
pub(crate) async fn dispatch(_local: &EventSources, _op: &str, _json: &[u8]) -> Option<ApiResult<Vec<u8>>> {
    None
}

impl EventSourcesClient {
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

    /// Stores the position of `partition` of mapping `uuid` (the last record processed).
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
